#pragma once
// mix_heads and its backward on the host as blocked GEMMs over tokens (mix_heads_blocked.cpp):
// one pass over x for y, one over grad and x for dx and dw. The caller has run check_mix_heads
// (and check_mix_heads_grad).
#include <ATen/ATen.h>

#include <optional>
#include <tuple>

namespace headmix::cpu {

at::Tensor mix_heads_blocked(const at::Tensor& x, const at::Tensor& w, int64_t pseudo,
                             const std::optional<at::Tensor>& cos, const std::optional<at::Tensor>& sin,
                             int64_t pos_offset);

std::tuple<std::optional<at::Tensor>, std::optional<at::Tensor>> mix_heads_backward_blocked(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& w, int64_t pseudo,
    const std::optional<at::Tensor>& cos, const std::optional<at::Tensor>& sin,
    int64_t pos_offset, bool need_dx, bool need_dw);

}  // namespace headmix::cpu
