// The portable flash-attention forward (csrc/kernels/sm80/flash_fwd.cu), launched on the CPU
// emulator with the binding's own checks and Params (cuda/flash_attn_params.h).
#include "harness.h"

#include "cuda/flash_attn_params.h"
#include "sm80/flash_fwd.cu"

std::vector<at::Tensor> emulated_flash_attn_fwd(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                std::optional<double> scale, bool causal, int64_t window_left,
                                                int64_t window_right) {
  const auto dims = headmix::check_flash_attn(q, k, v, window_left, window_right);
  headmix::cuda::check_kernel_coverage(dims, q, v, "flash_attn_fwd");
  headmix::cuda::FlashFwdCall call(dims, q, k, v, scale, causal, window_left, window_right);
  harness::poison(call.out);
  harness::poison(call.lse);
  harness::use_buffers({{"q", call.q, false}, {"k", call.k, false}, {"v", call.v, false}, {"out", call.out, true},
                        {"lse", call.lse, true}});
  harness::check(headmix::kernels::launch_flash_attn_fwd_portable(call.params, nullptr), "flash_attn_fwd");
  return {call.out, call.lse};
}
