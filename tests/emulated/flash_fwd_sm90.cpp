// The Hopper flash-attention forward (csrc/kernels/sm90/flash_fwd.cu: TMA descriptors, grid and
// shared-memory size from its own host code), launched on the CPU emulator with the binding's
// own checks and Params (cuda/flash_attn_params.h), as csrc/cuda/flash_attn.cpp does on an sm_90 GPU.
#define HEADMIX_WITH_SM90_KERNELS 1
#include "flash_launch.h"
#include "sm90/flash_fwd.cu"

std::vector<at::Tensor> emulated_flash_attn_fwd_sm90(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                     std::optional<double> scale, bool causal, int64_t window_left,
                                                     int64_t window_right) {
  return harness::flash_attn_fwd(headmix::kernels::launch_flash_attn_fwd_sm90, "flash_attn_fwd (sm90)", q, k, v, scale,
                                 causal, window_left, window_right);
}
