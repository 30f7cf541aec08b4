// headmix._C: loading it registers the ops (TORCH_LIBRARY in registration.cpp); the Python
// module itself reports how this build was configured and exposes the CUDA decode plan, so
// headmix.vhead_decode_workspace_size sizes workspaces with the launcher's own arithmetic, and
// the CUDA cache ops' HEADMIX_CACHE_RANGE_CHECKS rule, so a CPU test pins it down.
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "build_archs.h"
#include "cache_range_checks.h"
#include "headmix_build_config.h"
#include "kernels/vhead_decode_plan.h"

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
  m.def(
      "vhead_decode_plan",
      [](int64_t batch, int64_t seqlen_q, int64_t heads, int64_t latent_groups, int64_t latent_heads,
         int64_t head_dim, int64_t capacity, int num_sms, int64_t max_smem) {
        const auto plan = headmix::kernels::plan_vhead_decode(
            {batch, seqlen_q, heads, latent_groups, latent_heads, head_dim, capacity}, num_sms, max_smem);
        pybind11::dict d;
        d["rows_per_cta"] = plan.rows_per_cta;
        d["row_tiles"] = plan.row_tiles;
        d["num_splits"] = plan.num_splits;
        d["smem_bytes"] = plan.smem_bytes;
        d["workspace_floats"] = plan.workspace_floats;
        return d;
      },
      "The CUDA vhead_decode plan (kernels/vhead_decode_plan.h) for these shapes on a GPU with num_sms SMs "
      "and max_smem bytes of opt-in shared memory per block.");
  m.def("cache_range_checks", &headmix::cache_range_checks_enabled,
        "Whether the CUDA kv_cache_append and vhead_decode check lengths, pages and RoPE positions on the "
        "host now, outside CUDA-graph capture (HEADMIX_CACHE_RANGE_CHECKS, cache_range_checks.h).");
}
