// headmix._C: loading it registers the ops (TORCH_LIBRARY in registration.cpp); the Python
// module itself only reports how this build was configured.
#include <pybind11/pybind11.h>

#include <string>

namespace {

pybind11::list split_archs(const std::string& archs) {
  pybind11::list out;
  size_t start = 0;
  while (start < archs.size()) {
    size_t end = archs.find(';', start);
    if (end == std::string::npos) end = archs.size();
    if (end > start) out.append("sm_" + archs.substr(start, end - start));
    start = end + 1;
  }
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
  info["cuda_archs"] = split_archs(HEADMIX_BUILD_ARCHS);
  info["cuda_version"] = std::string(HEADMIX_BUILD_CUDA_VERSION);
  info["cutlass_version"] = std::string(HEADMIX_BUILD_CUTLASS_VERSION);
  m.attr("build_info") = info;
}
