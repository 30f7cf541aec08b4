// The portable flash-attention forward (csrc/kernels/sm80/flash_fwd.cu), launched on the CPU
// emulator with the binding's own checks and Params (cuda/flash_attn_params.h).
#include "flash_launch.h"
#include "sm80/flash_fwd.cu"

std::vector<at::Tensor> emulated_flash_attn_fwd(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                std::optional<double> scale, bool causal, int64_t window_left,
                                                int64_t window_right) {
  return harness::flash_attn_fwd(headmix::kernels::launch_flash_attn_fwd_portable, "flash_attn_fwd", q, k, v, scale,
                                 causal, window_left, window_right);
}
