#pragma once
// The CUDA architectures this build holds kernels for: HEADMIX_BUILD_ARCHS, the list CMake
// normalised from HEADMIX_CUDA_ARCHS ("90a;100a"; empty without the CUDA backend). The one
// parse of it in C++, shared by the device gate (cuda/device.h) and headmix.build_info.
// tools/headmix_build_version.py parses the same setting for the wheel's label before CMake
// runs; tests/test_shared_definitions.py checks that the label and build_info agree.
#include <string>
#include <vector>

#include "headmix_build_config.h"

namespace headmix {

inline std::vector<std::string> build_archs() {
  const std::string list = HEADMIX_BUILD_ARCHS;
  std::vector<std::string> archs;
  size_t start = 0;
  while (start < list.size()) {
    size_t end = list.find(';', start);
    if (end == std::string::npos) end = list.size();
    if (end > start) archs.push_back(list.substr(start, end - start));
    start = end + 1;
  }
  return archs;
}

}  // namespace headmix
