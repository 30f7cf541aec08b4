// headmix._C: loading it registers the ops (TORCH_LIBRARY in registration.cpp); the Python
// module itself reports how this build was configured and exposes the CUDA cache ops'
// HEADMIX_CACHE_RANGE_CHECKS rule, so a CPU test pins it down.
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "build_archs.h"
#include "cache_range_checks.h"
#include "headmix_build_config.h"

namespace {

pybind11::list sm_names(const std::vector<std::string>& archs) {
  pybind11::list out;
  for (const auto& arch : archs) out.append("sm_" + arch);
  return out;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "headmix native extension (ops register under torch.ops.headmix)";
  pybind11::dict info;
#ifdef HEADMIX_WITH_CUDA
  info["cuda_backend"] = true;
#else
  info["cuda_backend"] = false;
#endif
  info["cuda_archs"] = sm_names(headmix::build_archs());
  info["cuda_version"] = std::string(HEADMIX_BUILD_CUDA_VERSION);
  info["cutlass_version"] = std::string(HEADMIX_BUILD_CUTLASS_VERSION);
  m.attr("build_info") = info;
  m.def("cache_range_checks", &headmix::cache_range_checks_enabled,
        "Whether the CUDA kv_cache_append and vhead_decode check lengths, pages and RoPE positions on the "
        "host now, outside CUDA-graph capture (HEADMIX_CACHE_RANGE_CHECKS, cache_range_checks.h).");
}
