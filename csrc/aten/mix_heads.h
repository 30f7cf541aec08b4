#pragma once
// mix_heads and its backward with ATen ops on any device: the CUDA binding's float64 path (no
// float64 kernels); the CPU binding runs cpu/mix_heads_blocked.h.
// The caller has run check_mix_heads (and check_mix_heads_grad); nothing is checked again here.
#include <ATen/ATen.h>

#include <optional>
#include <tuple>

namespace headmix::aten {

at::Tensor mix_heads(const at::Tensor& x, const at::Tensor& w, int64_t pseudo,
                     const std::optional<at::Tensor>& cos, const std::optional<at::Tensor>& sin,
                     int64_t pos_offset);

std::tuple<std::optional<at::Tensor>, std::optional<at::Tensor>> mix_heads_backward(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& w, int64_t pseudo,
    const std::optional<at::Tensor>& cos, const std::optional<at::Tensor>& sin,
    int64_t pos_offset, bool need_dx, bool need_dw);

}  // namespace headmix::aten
