// CPU binding of kv_cache_append: checks -> the ATen implementation (aten/kv_cache_append.h).
#include <ATen/ATen.h>
#include <torch/library.h>

#include "aten/kv_cache_append.h"
#include "checks.h"
#include "registration.h"

namespace headmix::cpu {
namespace {

void kv_cache_append(const at::Tensor& k_new, const at::Tensor& v_new, at::Tensor& k_cache,
                     at::Tensor& v_cache, const at::Tensor& cache_seqlens,
                     const std::optional<at::Tensor>& block_table, const std::optional<at::Tensor>& cos,
                     const std::optional<at::Tensor>& sin, const std::optional<at::Tensor>& pos) {
  const auto dims = check_kv_cache_append(k_new, v_new, k_cache, v_cache, cache_seqlens, block_table, cos,
                                          sin, pos);
  aten::kv_cache_append(dims, k_new, v_new, k_cache, v_cache, cache_seqlens, block_table, cos, sin, pos);
}

}  // namespace

TORCH_LIBRARY_IMPL(HEADMIX_NAMESPACE, CPU, m) { m.impl("kv_cache_append", &kv_cache_append); }

}  // namespace headmix::cpu
