// The Hopper flash-attention backward (csrc/kernels/sm90/flash_bwd.cu: the portable row-dot pass,
// the sm90 dK/dV kernel with its own TMA descriptors, grid and smem size, and the portable dq
// conversion or deterministic dq pass), launched on the CPU emulator with the binding's own
// checks and Params (cuda/flash_attn_params.h), as csrc/cuda/flash_attn.cpp does on an sm_90 GPU.
#define HEADMIX_WITH_SM90_KERNELS 1
#include "harness.h"

#include "cuda/flash_attn_params.h"
#include "sm90/flash_bwd.cu"

std::vector<at::Tensor> emulated_flash_attn_bwd_sm90(const at::Tensor& dout, const at::Tensor& q,
                                                     const at::Tensor& k, const at::Tensor& v, const at::Tensor& out,
                                                     const at::Tensor& lse, const std::optional<at::Tensor>& dlse,
                                                     std::optional<double> scale, bool causal, int64_t window_left,
                                                     int64_t window_right, bool deterministic) {
  const auto dims = headmix::check_flash_attn(q, k, v, window_left, window_right);
  headmix::check_flash_attn_bwd(dims, dout, out, lse, dlse);
  headmix::cuda::check_kernel_coverage(dims, q, v, "flash_attn_bwd");
  headmix::cuda::FlashBwdCall call(dims, dout, q, k, v, out, lse, dlse, scale, causal, window_left, window_right,
                                   deterministic);
  for (const auto& t : {call.row_dot, call.dq, call.dk, call.dv}) harness::poison(t);
  harness::use_buffers({{"q", call.q, false}, {"k", call.k, false}, {"v", call.v, false}, {"out", call.out, false},
                        {"dout", call.dout, false}, {"lse", call.lse, false}, {"dlse", call.dlse, false},
                        {"row_dot", call.row_dot, true}, {"dq_accum", call.dq_accum, true}, {"dq", call.dq, true},
                        {"dk", call.dk, true}, {"dv", call.dv, true}});
  harness::check(headmix::kernels::launch_flash_attn_bwd_sm90(call.params, nullptr), "flash_attn_bwd (sm90)");
  return {call.dq, call.dk, call.dv};
}
