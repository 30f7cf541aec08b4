#pragma once
// vhead_decode with ATen ops on any device: the CUDA binding's path for what its kernel does not
// cover (float32/float64, head dims other than 64/128, d_v != d, unaligned or unlike-strided
// caches, more latent heads than shared memory holds).
#include <ATen/ATen.h>

#include <optional>
#include <tuple>

#include "checks.h"

namespace headmix::cuda {

// Reads cache_seqlens on the host (one sync; not capturable in a CUDA graph), checks them and
// the pages, gathers each sequence's valid rows and scores them densely: decode has few query
// rows, so the [H, S_q, L_b] scores of a sequence stay small.
std::tuple<at::Tensor, at::Tensor> vhead_decode_aten(const DecodeDims& dims, const at::Tensor& q,
                                                     const at::Tensor& k_cache, const at::Tensor& v_cache,
                                                     const at::Tensor& cache_seqlens,
                                                     const std::optional<at::Tensor>& w_k,
                                                     const std::optional<at::Tensor>& w_v,
                                                     const std::optional<at::Tensor>& block_table,
                                                     double scale, bool causal, int64_t window_left);

}  // namespace headmix::cuda
