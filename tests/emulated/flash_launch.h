#pragma once
// One flash-attention launch on the emulator, for either kernel family (the portable launchers
// in flash_fwd.cpp / flash_bwd.cpp, the sm90 ones in flash_fwd_sm90.cpp / flash_bwd_sm90.cpp):
// the binding's own checks and Params (cuda/flash_attn_params.h), NaN-poisoned outputs, the
// buffers the kernels may touch, then `launch(params, stream)`.
#include "harness.h"

#include "cuda/flash_attn_params.h"

namespace harness {

template <class Launch>
std::vector<at::Tensor> flash_attn_fwd(Launch launch, const char* what, const at::Tensor& q, const at::Tensor& k,
                                       const at::Tensor& v, std::optional<double> scale, bool causal,
                                       int64_t window_left, int64_t window_right) {
  const auto dims = headmix::check_flash_attn(q, k, v, window_left, window_right);
  headmix::cuda::check_kernel_coverage(dims, q, v, "flash_attn_fwd");
  headmix::cuda::FlashFwdCall call(dims, q, k, v, scale, causal, window_left, window_right);
  poison(call.out);
  poison(call.lse);
  use_buffers({{"q", call.q, false}, {"k", call.k, false}, {"v", call.v, false}, {"out", call.out, true},
               {"lse", call.lse, true}});
  check(launch(call.params, nullptr), what);
  return {call.out, call.lse};
}

template <class Launch>
std::vector<at::Tensor> flash_attn_bwd(Launch launch, const char* what, const at::Tensor& dout, const at::Tensor& q,
                                       const at::Tensor& k, const at::Tensor& v, const at::Tensor& out,
                                       const at::Tensor& lse, const std::optional<at::Tensor>& dlse,
                                       std::optional<double> scale, bool causal, int64_t window_left,
                                       int64_t window_right, bool deterministic) {
  const auto dims = headmix::check_flash_attn(q, k, v, window_left, window_right);
  headmix::check_flash_attn_bwd(dims, dout, out, lse, dlse);
  headmix::cuda::check_kernel_coverage(dims, q, v, "flash_attn_bwd");
  headmix::cuda::FlashBwdCall call(dims, dout, q, k, v, out, lse, dlse, scale, causal, window_left, window_right,
                                   deterministic);
  for (const auto& t : {call.row_dot, call.dq, call.dk, call.dv}) poison(t);
  use_buffers({{"q", call.q, false}, {"k", call.k, false}, {"v", call.v, false}, {"out", call.out, false},
               {"dout", call.dout, false}, {"lse", call.lse, false}, {"dlse", call.dlse, false},
               {"row_dot", call.row_dot, true}, {"dq_accum", call.dq_accum, true}, {"dq", call.dq, true},
               {"dk", call.dk, true}, {"dv", call.dv, true}});
  check(launch(call.params, nullptr), what);
  return {call.dq, call.dk, call.dv};
}

}  // namespace harness
