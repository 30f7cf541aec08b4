// The Hopper flash-attention forward (csrc/kernels/sm90/flash_fwd.cu: TMA descriptors, grid and
// shared-memory size from its own host code), launched on the CPU emulator with the binding's
// own checks and Params (cuda/flash_attn_params.h), as csrc/cuda/flash_attn.cpp does on an sm_90 GPU.
#define HEADMIX_WITH_SM90_KERNELS 1
#include "harness.h"

#include "cuda/flash_attn_params.h"
#include "sm90/flash_fwd.cu"

std::vector<at::Tensor> emulated_flash_attn_fwd_sm90(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                     std::optional<double> scale, bool causal, int64_t window_left,
                                                     int64_t window_right) {
  const auto dims = headmix::check_flash_attn(q, k, v, window_left, window_right);
  headmix::cuda::check_kernel_coverage(dims, q, v, "flash_attn_fwd");
  headmix::cuda::FlashFwdCall call(dims, q, k, v, scale, causal, window_left, window_right);
  harness::poison(call.out);
  harness::poison(call.lse);
  harness::use_buffers({{"q", call.q, false}, {"k", call.k, false}, {"v", call.v, false}, {"out", call.out, true},
                        {"lse", call.lse, true}});
  harness::check(headmix::kernels::launch_flash_attn_fwd_sm90(call.params, nullptr), "flash_attn_fwd (sm90)");
  return {call.out, call.lse};
}
