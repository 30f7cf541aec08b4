#pragma once
// Helpers shared by the CUDA bindings: architecture gate and dtype mapping.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>

#include "kernels/params.h"

namespace headmix::cuda {

// The kernels need sm_80 or newer (cp.async, bf16 arithmetic); older GPUs get a clear error.
inline void require_kernel_arch(const at::Device& device, const char* op) {
  const auto* props = at::cuda::getDeviceProperties(device.index());
  TORCH_CHECK(props->major >= 8, "headmix.", op, " on CUDA needs compute capability 8.0 or newer, ",
              "got ", props->major, ".", props->minor, " (", props->name, ")");
}

inline kernels::DType kernel_dtype(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return kernels::DType::kFloat32;
    case at::kHalf: return kernels::DType::kFloat16;
    case at::kBFloat16: return kernels::DType::kBFloat16;
    default: TORCH_CHECK(false, "headmix CUDA kernels take float32, float16 or bfloat16, got ", t);
  }
}

}  // namespace headmix::cuda
