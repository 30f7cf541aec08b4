// CUDA binding of mix_heads and its backward: checks -> Params -> current stream -> launcher.
// float64 runs the device-neutral ATen implementation (aten/mix_heads.h; no float64 kernels).
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "aten/mix_heads.h"
#include "checks.h"
#include "cuda/device.h"
#include "cuda/mix_heads_params.h"
#include "kernels/mix_heads.h"
#include "registration.h"

namespace headmix::cuda {
namespace {

// y = mix of x ([B, N, H_in, d]) into `heads_out` heads, w given as fp32 with its strides.
at::Tensor launch_mix(const at::Tensor& x, const at::Tensor& w32, int64_t heads_out,
                      int64_t w_in_stride, int64_t w_out_stride, const RopeTables& rope,
                      bool rotate_inputs) {
  auto y = at::empty({x.size(0), x.size(1), heads_out, x.size(3)}, x.options());
  const auto params = mix_heads_params(x, w32, y, w_in_stride, w_out_stride, rope, rotate_inputs);
  C10_CUDA_CHECK(kernels::launch_mix_heads_portable(params, at::cuda::getCurrentCUDAStream()));
  return y;
}

at::Tensor launch_dw(const at::Tensor& grad, const at::Tensor& x, int64_t heads_out,
                     const RopeTables& rope) {
  const auto* props = at::cuda::getCurrentDeviceProperties();
  const int64_t chunks = kernels::mix_heads_dw_chunks(x.size(0) * x.size(1), x.size(2), heads_out,
                                                      props->multiProcessorCount);
  const auto f32 = x.options().dtype(at::kFloat);
  auto partial = at::empty({chunks, x.size(2), heads_out}, f32);
  auto dw = at::empty({x.size(2), heads_out}, f32);
  const auto params = mix_heads_dw_params(grad, x, partial, dw, rope);
  C10_CUDA_CHECK(kernels::launch_mix_heads_dw_portable(params, at::cuda::getCurrentCUDAStream()));
  return dw;
}

at::Tensor mix_heads(const at::Tensor& x, const at::Tensor& w, int64_t pseudo,
                     const std::optional<at::Tensor>& cos, const std::optional<at::Tensor>& sin,
                     int64_t pos_offset) {
  check_mix_heads(x, w, pseudo, cos, sin, pos_offset);
  if (x.scalar_type() == at::kDouble) return aten::mix_heads(x, w, pseudo, cos, sin, pos_offset);
  const c10::cuda::CUDAGuard device_guard(x.device());
  require_kernel_arch(x.device(), "mix_heads");
  const auto w32 = w.to(at::kFloat).contiguous();
  const RopeTables rope(cos, sin, pseudo, pos_offset);
  // weight(i, o) = w[i, o]
  return launch_mix(x, w32, w.size(1), w.size(1), 1, rope, /*rotate_inputs=*/false);
}

std::tuple<std::optional<at::Tensor>, std::optional<at::Tensor>> mix_heads_backward(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& w, int64_t pseudo,
    const std::optional<at::Tensor>& cos, const std::optional<at::Tensor>& sin,
    int64_t pos_offset, bool need_dx, bool need_dw) {
  check_mix_heads(x, w, pseudo, cos, sin, pos_offset);
  check_mix_heads_grad(grad, x, w);
  if (x.scalar_type() == at::kDouble) {
    return aten::mix_heads_backward(grad, x, w, pseudo, cos, sin, pos_offset, need_dx, need_dw);
  }
  const c10::cuda::CUDAGuard device_guard(x.device());
  require_kernel_arch(x.device(), "mix_heads_backward");
  const auto g = kernel_grad(grad, x);
  const RopeTables rope(cos, sin, pseudo, pos_offset);
  std::optional<at::Tensor> dx, dw;
  if (need_dx) {
    // dx[m] = sum_j w[m, j] * unrotate(g[j]): weight(i = j, o = m) = w[m, j]
    const auto w32 = w.to(at::kFloat).contiguous();
    dx = launch_mix(g, w32, x.size(2), 1, w.size(1), rope, /*rotate_inputs=*/true);
  }
  if (need_dw) dw = launch_dw(g, x, w.size(1), rope).to(w.scalar_type());
  return {dx, dw};
}

}  // namespace

TORCH_LIBRARY_IMPL(HEADMIX_NAMESPACE, CUDA, m) {
  m.impl("mix_heads", &mix_heads);
  m.impl("mix_heads_backward", &mix_heads_backward);
}

}  // namespace headmix::cuda
