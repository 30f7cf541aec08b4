#pragma once
// Device-generic (ATen) kv_cache_append: registered for CPU, reused by the CUDA binding for
// float64 (its kernel covers float32, float16 and bfloat16).
#include <ATen/ATen.h>

#include <optional>

namespace headmix::cpu {

void kv_cache_append_aten(const at::Tensor& k_new, const at::Tensor& v_new, at::Tensor& k_cache,
                          at::Tensor& v_cache, const at::Tensor& cache_seqlens,
                          const std::optional<at::Tensor>& block_table,
                          const std::optional<at::Tensor>& cos, const std::optional<at::Tensor>& sin,
                          const std::optional<at::Tensor>& pos);

}  // namespace headmix::cpu
