#pragma once
// The CUDA bindings' architecture gate.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>

#include <string>

#include "build_archs.h"
#include "cuda/kernel_dtype.h"
#include "headmix_build_config.h"

namespace headmix::cuda {

// True when the build holds kernels for this device: an arch-specific entry ("90a") runs only
// on that exact compute capability, a plain one ("80") on it and on newer ones of the same
// major version.
inline bool built_for(int major, int minor) {
  for (const std::string& entry : build_archs()) {
    const bool specific = entry.back() == 'a' || entry.back() == 'f';
    const int cc = std::stoi(specific ? entry.substr(0, entry.size() - 1) : entry);
    if (specific ? cc == major * 10 + minor : (cc / 10 == major && cc % 10 <= minor)) return true;
  }
  return false;
}

// The kernels need sm_80 or newer and a build that contains the device's architecture;
// otherwise the error says how to rebuild instead of failing at launch.
inline void require_kernel_arch(const at::Device& device, const char* op) {
  const auto* props = at::cuda::getDeviceProperties(device.index());
  TORCH_CHECK(props->major >= 8, "headmix.", op, " on CUDA needs compute capability 8.0 or newer, ",
              "got ", props->major, ".", props->minor, " (", props->name, ")");
  TORCH_CHECK(built_for(props->major, props->minor), "headmix.", op, ": this build has kernels for ",
              "HEADMIX_CUDA_ARCHS = '", HEADMIX_BUILD_ARCHS, "' but the GPU is sm_", props->major,
              props->minor, " (", props->name, "); rebuild with HEADMIX_CUDA_ARCHS including '",
              props->major, props->minor, "'");
}

}  // namespace headmix::cuda
