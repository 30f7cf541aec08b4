#pragma once
// kv_cache_append with ATen ops on any device: the CPU binding's implementation and the CUDA
// binding's float64 path (its kernel covers float32, float16 and bfloat16). The caller has run
// check_kv_cache_append, whose sizes come in as `dims`.
#include <ATen/ATen.h>

#include <optional>

#include "checks.h"

namespace headmix::aten {

// Checks every row, page and RoPE position on the host first (check_cache_ranges, one sync), so
// a rejected append leaves the cache untouched; then rotates the new keys at their positions
// and scatters K and V rows into the contiguous or paged cache in place.
void kv_cache_append(const DecodeDims& dims, const at::Tensor& k_new, const at::Tensor& v_new,
                     at::Tensor& k_cache, at::Tensor& v_cache, const at::Tensor& cache_seqlens,
                     const std::optional<at::Tensor>& block_table, const std::optional<at::Tensor>& cos,
                     const std::optional<at::Tensor>& sin, const std::optional<at::Tensor>& pos);

}  // namespace headmix::aten
