#pragma once
// Device-generic (ATen) mix_heads: registered for CPU, reused by the CUDA binding for float64
// (no float64 kernels).
#include <ATen/ATen.h>

#include <optional>
#include <tuple>

namespace headmix::cpu {

at::Tensor mix_heads_aten(const at::Tensor& x, const at::Tensor& w, int64_t pseudo,
                          const std::optional<at::Tensor>& cos,
                          const std::optional<at::Tensor>& sin, int64_t pos_offset);

std::tuple<std::optional<at::Tensor>, std::optional<at::Tensor>> mix_heads_backward_aten(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& w, int64_t pseudo,
    const std::optional<at::Tensor>& cos, const std::optional<at::Tensor>& sin,
    int64_t pos_offset, bool need_dx, bool need_dw);

}  // namespace headmix::cpu
