// The portable flash-attention backward (csrc/kernels/sm80/flash_bwd.cu: row-dot pass, dK/dV
// kernel, dQ by atomics or the deterministic pass), launched on the CPU emulator with the
// binding's own checks and Params (cuda/flash_attn_params.h).
#include "harness.h"

#include "cuda/flash_attn_params.h"
#include "sm80/flash_bwd.cu"

std::vector<at::Tensor> emulated_flash_attn_bwd(const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k,
                                                const at::Tensor& v, const at::Tensor& out, const at::Tensor& lse,
                                                const std::optional<at::Tensor>& dlse, std::optional<double> scale,
                                                bool causal, int64_t window_left, int64_t window_right,
                                                bool deterministic) {
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
  harness::check(headmix::kernels::launch_flash_attn_bwd_portable(call.params, nullptr), "flash_attn_bwd");
  return {call.dq, call.dk, call.dv};
}
