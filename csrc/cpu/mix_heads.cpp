// CPU binding of mix_heads and its backward: checks -> the blocked host implementation
// (cpu/mix_heads_blocked.h).
#include <ATen/ATen.h>
#include <torch/library.h>

#include "checks.h"
#include "cpu/mix_heads_blocked.h"
#include "registration.h"

namespace headmix::cpu {
namespace {

at::Tensor mix_heads(const at::Tensor& x, const at::Tensor& w, int64_t pseudo,
                     const std::optional<at::Tensor>& cos, const std::optional<at::Tensor>& sin,
                     int64_t pos_offset) {
  check_mix_heads(x, w, pseudo, cos, sin, pos_offset);
  return mix_heads_blocked(x, w, pseudo, cos, sin, pos_offset);
}

std::tuple<std::optional<at::Tensor>, std::optional<at::Tensor>> mix_heads_backward(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& w, int64_t pseudo,
    const std::optional<at::Tensor>& cos, const std::optional<at::Tensor>& sin,
    int64_t pos_offset, bool need_dx, bool need_dw) {
  check_mix_heads(x, w, pseudo, cos, sin, pos_offset);
  check_mix_heads_grad(grad, x, w);
  return mix_heads_backward_blocked(grad, x, w, pseudo, cos, sin, pos_offset, need_dx, need_dw);
}

}  // namespace

TORCH_LIBRARY_IMPL(HEADMIX_NAMESPACE, CPU, m) {
  m.impl("mix_heads", &mix_heads);
  m.impl("mix_heads_backward", &mix_heads_backward);
}

}  // namespace headmix::cpu
