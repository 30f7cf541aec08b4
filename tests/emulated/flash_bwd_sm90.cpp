// The Hopper flash-attention backward (csrc/kernels/sm90/flash_bwd.cu: the portable row-dot pass,
// the sm90 dK/dV kernel with its own TMA descriptors, grid and smem size, and the portable dq
// conversion or deterministic dq pass), launched on the CPU emulator with the binding's own
// checks and Params (cuda/flash_attn_params.h), as csrc/cuda/flash_attn.cpp does on an sm_90 GPU.
#define HEADMIX_WITH_SM90_KERNELS 1
#include "flash_launch.h"
#include "sm90/flash_bwd.cu"

std::vector<at::Tensor> emulated_flash_attn_bwd_sm90(const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k,
                                                     const at::Tensor& v, const at::Tensor& out, const at::Tensor& lse,
                                                     const std::optional<at::Tensor>& dlse, std::optional<double> scale,
                                                     bool causal, int64_t window_left, int64_t window_right,
                                                     bool deterministic) {
  return harness::flash_attn_bwd(headmix::kernels::launch_flash_attn_bwd_sm90, "flash_attn_bwd (sm90)", dout, q, k, v,
                                 out, lse, dlse, scale, causal, window_left, window_right, deterministic);
}
