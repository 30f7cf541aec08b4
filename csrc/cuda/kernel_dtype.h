#pragma once
// The kernels' element type of a tensor dtype (ATen only: shared by the bindings and by the
// Params headers the CPU emulator also compiles).
#include <ATen/ATen.h>

#include "checks.h"
#include "kernels/params.h"

namespace headmix::cuda {

inline kernels::DType kernel_dtype(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return kernels::DType::kFloat32;
    case at::kHalf: return kernels::DType::kFloat16;
    case at::kBFloat16: return kernels::DType::kBFloat16;
    default: TORCH_CHECK(false, "headmix CUDA kernels take float32, float16 or bfloat16, got ", dtype_name(t));
  }
}

}  // namespace headmix::cuda
