// The portable flash-attention backward (csrc/kernels/sm80/flash_bwd.cu: row-dot pass, dK/dV
// kernel, dQ by atomics or the deterministic pass), launched on the CPU emulator with the
// binding's own checks and Params (cuda/flash_attn_params.h).
#include "flash_launch.h"
#include "sm80/flash_bwd.cu"

std::vector<at::Tensor> emulated_flash_attn_bwd(const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k,
                                                const at::Tensor& v, const at::Tensor& out, const at::Tensor& lse,
                                                const std::optional<at::Tensor>& dlse, std::optional<double> scale,
                                                bool causal, int64_t window_left, int64_t window_right,
                                                bool deterministic) {
  return harness::flash_attn_bwd(headmix::kernels::launch_flash_attn_bwd_portable, "flash_attn_bwd", dout, q, k, v, out,
                                 lse, dlse, scale, causal, window_left, window_right, deterministic);
}
