// CUDA binding of kv_cache_append: checks -> Params -> current stream -> launcher. By default
// the lengths, pages and RoPE positions are checked on the host first (one sync), so an
// overflowing append is rejected before anything is written; HEADMIX_CACHE_RANGE_CHECKS=0 and
// CUDA-graph capture skip that read, and the kernel then skips rows it cannot place
// (cache_range_checks.h). float64 runs the device-neutral ATen implementation
// (aten/kv_cache_append.h), which always checks the ranges on the host.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "aten/kv_cache_append.h"
#include "checks.h"
#include "cuda/cache_checks.h"
#include "cuda/device.h"
#include "cuda/kv_cache_append_params.h"
#include "kernels/kv_cache_append.h"
#include "registration.h"

namespace headmix::cuda {
namespace {

void kv_cache_append(const at::Tensor& k_new, const at::Tensor& v_new, at::Tensor& k_cache,
                     at::Tensor& v_cache, const at::Tensor& cache_seqlens,
                     const std::optional<at::Tensor>& block_table, const std::optional<at::Tensor>& cos,
                     const std::optional<at::Tensor>& sin, const std::optional<at::Tensor>& pos) {
  const auto dims = check_kv_cache_append(k_new, v_new, k_cache, v_cache, cache_seqlens, block_table, cos,
                                          sin, pos);
  if (k_new.scalar_type() == at::kDouble) {
    aten::kv_cache_append(dims, k_new, v_new, k_cache, v_cache, cache_seqlens, block_table, cos, sin, pos);
    return;
  }
  const c10::cuda::CUDAGuard device_guard(k_new.device());
  require_kernel_arch(k_new.device(), "kv_cache_append");
  if (host_range_checks()) {
    check_cache_ranges(dims, cache_seqlens, block_table, k_cache.size(0), k_new.size(1), cos, pos);
  }
  const AppendOperands operands(block_table, cos, sin);
  const auto params = kv_cache_append_params(dims, k_new, v_new, k_cache, v_cache, cache_seqlens, pos, operands);
  C10_CUDA_CHECK(kernels::launch_kv_cache_append_portable(params, at::cuda::getCurrentCUDAStream()));
}

}  // namespace

TORCH_LIBRARY_IMPL(HEADMIX_NAMESPACE, CUDA, m) { m.impl("kv_cache_append", &kv_cache_append); }

}  // namespace headmix::cuda
