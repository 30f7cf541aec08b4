// CUDA binding of flash attention: checks -> Params -> current stream -> kernels (bf16/fp16,
// d = d_v in {64, 128}; other inputs get an error naming what is supported). An sm_90 GPU
// runs the Hopper kernels when the build has them, every other GPU the portable ones.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cstdlib>
#include <string>

#include "checks.h"
#include "cuda/device.h"
#include "cuda/flash_attn_params.h"
#include "headmix_build_config.h"
#include "kernels/flash_attn.h"
#include "registration.h"

namespace headmix::cuda {
namespace {

// HEADMIX_FLASH_KERNELS=portable runs the portable kernels on any GPU (to compare, or to rule
// the Hopper ones out); =sm90 insists on the Hopper ones; unset or =auto picks by device.
bool use_sm90_kernels(const at::Device& device, const char* op) {
  const char* env = std::getenv("HEADMIX_FLASH_KERNELS");
  const std::string choice = env != nullptr && *env != '\0' ? env : "auto";
  TORCH_CHECK(choice == "auto" || choice == "portable" || choice == "sm90",
              "HEADMIX_FLASH_KERNELS must be auto, portable or sm90, got '", choice, "'");
#if HEADMIX_WITH_SM90_KERNELS
  const auto* props = at::cuda::getDeviceProperties(device.index());
  const bool hopper = props->major == 9 && props->minor == 0;
#else
  const bool hopper = false;
#endif
  TORCH_CHECK(choice != "sm90" || hopper, "headmix.", op, ": HEADMIX_FLASH_KERNELS=sm90 needs an sm_90 GPU and a ",
              "build whose HEADMIX_CUDA_ARCHS includes 90a (this build: '", HEADMIX_BUILD_ARCHS, "')");
  return hopper && choice != "portable";
}

#if HEADMIX_WITH_SM90_KERNELS
// The Hopper launchers refuse (cudaErrorInvalidValue) operands a TMA descriptor cannot describe
// rather than launch a kernel that would wait forever on a zeroed one.
void check_sm90_launch(cudaError_t err, const char* op) {
  TORCH_CHECK(err != cudaErrorInvalidValue, "headmix.", op, ": the Hopper kernels cannot describe these operands ",
              "with TMA descriptors (base address and strides must be multiples of 16 bytes); ",
              "HEADMIX_FLASH_KERNELS=portable runs the portable kernels");
  C10_CUDA_CHECK(err);
}
#endif

std::tuple<at::Tensor, at::Tensor> flash_attn_fwd(const at::Tensor& q_in, const at::Tensor& k_in,
                                                  const at::Tensor& v_in, std::optional<double> scale,
                                                  bool causal, int64_t window_left, int64_t window_right) {
  const auto dims = check_flash_attn(q_in, k_in, v_in, window_left, window_right);
  check_kernel_coverage(dims, q_in, v_in, "flash_attn_fwd");
  const c10::cuda::CUDAGuard device_guard(q_in.device());
  require_kernel_arch(q_in.device(), "flash_attn_fwd");
  FlashFwdCall call(dims, q_in, k_in, v_in, scale, causal, window_left, window_right);
  const auto stream = at::cuda::getCurrentCUDAStream();
  if (use_sm90_kernels(q_in.device(), "flash_attn_fwd")) {  // never true without them
#if HEADMIX_WITH_SM90_KERNELS
    check_sm90_launch(kernels::launch_flash_attn_fwd_sm90(call.params, stream), "flash_attn_fwd");
#endif
  } else {
    C10_CUDA_CHECK(kernels::launch_flash_attn_fwd_portable(call.params, stream));
  }
  return {call.out, call.lse};
}

// torch.use_deterministic_algorithms(True) asks for bitwise-reproducible dq (FlashBwdCall).
std::tuple<at::Tensor, at::Tensor, at::Tensor> flash_attn_bwd(
    const at::Tensor& dout_in, const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
    const at::Tensor& out_in, const at::Tensor& lse_in, const std::optional<at::Tensor>& dlse_in,
    std::optional<double> scale, bool causal, int64_t window_left, int64_t window_right) {
  const auto dims = check_flash_attn(q_in, k_in, v_in, window_left, window_right);
  check_flash_attn_bwd(dims, dout_in, out_in, lse_in, dlse_in);
  check_kernel_coverage(dims, q_in, v_in, "flash_attn_bwd");
  const c10::cuda::CUDAGuard device_guard(q_in.device());
  require_kernel_arch(q_in.device(), "flash_attn_bwd");
  FlashBwdCall call(dims, dout_in, q_in, k_in, v_in, out_in, lse_in, dlse_in, scale, causal, window_left,
                    window_right, at::globalContext().deterministicAlgorithms());
  const auto stream = at::cuda::getCurrentCUDAStream();
  if (use_sm90_kernels(q_in.device(), "flash_attn_bwd")) {  // never true without them
#if HEADMIX_WITH_SM90_KERNELS
    check_sm90_launch(kernels::launch_flash_attn_bwd_sm90(call.params, stream), "flash_attn_bwd");
#endif
  } else {
    C10_CUDA_CHECK(kernels::launch_flash_attn_bwd_portable(call.params, stream));
  }
  return {call.dq, call.dk, call.dv};
}

}  // namespace

TORCH_LIBRARY_IMPL(HEADMIX_NAMESPACE, CUDA, m) {
  m.impl("flash_attn_fwd", &flash_attn_fwd);
  m.impl("flash_attn_bwd", &flash_attn_bwd);
}

}  // namespace headmix::cuda
