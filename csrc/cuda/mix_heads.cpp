// CUDA binding of mix_heads: checks -> MixHeadsParams -> current stream -> launcher. float64
// and the backward run through the device-generic ATen implementation until kernels cover them.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "checks.h"
#include "cpu/mix_heads.h"
#include "cuda/device.h"
#include "kernels/mix_heads.h"
#include "registration.h"

namespace headmix::cuda {
namespace {

at::Tensor mix_heads(const at::Tensor& x, const at::Tensor& w, int64_t pseudo,
                     const std::optional<at::Tensor>& cos, const std::optional<at::Tensor>& sin,
                     int64_t pos_offset) {
  check_mix_heads(x, w, pseudo, cos, sin, pos_offset);
  if (x.scalar_type() == at::kDouble) return cpu::mix_heads_aten(x, w, pseudo, cos, sin, pos_offset);
  const c10::cuda::CUDAGuard device_guard(x.device());
  require_kernel_arch(x.device(), "mix_heads");
  const auto w32 = w.to(at::kFloat).contiguous();
  const auto cos32 = cos ? cos->contiguous() : at::Tensor();
  const auto sin32 = sin ? sin->contiguous() : at::Tensor();
  auto y = at::empty({x.size(0), x.size(1), w.size(1), x.size(3)}, x.options());

  kernels::MixHeadsParams params{};
  params.x = x.data_ptr();
  params.w = w32.data_ptr<float>();
  params.y = y.data_ptr();
  params.cos = cos ? cos32.data_ptr<float>() : nullptr;
  params.sin = sin ? sin32.data_ptr<float>() : nullptr;
  params.dtype = kernel_dtype(x.scalar_type());
  params.batch = x.size(0);
  params.tokens = x.size(1);
  params.heads_in = x.size(2);
  params.heads_out = w.size(1);
  params.head_dim = x.size(3);
  params.x_batch_stride = x.stride(0);
  params.x_token_stride = x.stride(1);
  params.x_head_stride = x.stride(2);
  params.pseudo = pseudo;
  params.pos_offset = pos_offset;
  params.rotary_half = cos ? cos->size(1) : 0;
  C10_CUDA_CHECK(kernels::launch_mix_heads_fwd_portable(params, at::cuda::getCurrentCUDAStream()));
  return y;
}

}  // namespace

TORCH_LIBRARY_IMPL(HEADMIX_NAMESPACE, CUDA, m) {
  m.impl("mix_heads", &mix_heads);
  m.impl("mix_heads_backward", &cpu::mix_heads_backward_aten);
}

}  // namespace headmix::cuda
