#pragma once
// vhead_decode with ATen ops on any device: the CPU binding's implementation and the CUDA
// binding's path for what its kernel does not cover (float32/float64, head dims other than
// 64/128, d_v != d, unaligned or unlike-strided caches, more latent heads than shared memory
// holds). The caller has run check_vhead_decode, whose sizes come in as `dims`.
#include <ATen/ATen.h>

#include <optional>
#include <tuple>

#include "checks.h"

namespace headmix::aten {

// Attention of q [B, S_q, H, d] over k [B, S_k, H_kv, d] and v [B, S_k, H_kv, d_v] with
// bottom-right alignment, a causal mask and a left/right window (-1 = unbounded): out
// [B, S_q, H, d_v] in q's dtype and natural-log lse [B, H, S_q] in the accumulate dtype (-inf
// and 0 for a row without keys). cpu::attention_forward is one; attention_dense another.
using AttentionCore = std::tuple<at::Tensor, at::Tensor> (*)(const at::Tensor& q, const at::Tensor& k,
                                                             const at::Tensor& v, double scale, bool causal,
                                                             int64_t window_left, int64_t window_right);

// The core with a dense [B, H, S_q, S_k] score tensor, for devices without a blockwise one.
// Decode has few query rows, so a sequence's scores are no larger than its rebuilt keys.
std::tuple<at::Tensor, at::Tensor> attention_dense(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                   double scale, bool causal, int64_t window_left,
                                                   int64_t window_right);

// Reads cache_seqlens on the host (one sync; not capturable in a CUDA graph) and checks them and
// the pages (check_cache_ranges); then per sequence gathers its valid rows (positions >=
// cache_seqlens[b] are never read), rebuilds the H_kv composite heads with w_k / w_v in the
// accumulate dtype and runs `attend` with bottom-right alignment, so S_q > 1 (IHA decode,
// S_q = P) works the same way.
std::tuple<at::Tensor, at::Tensor> vhead_decode(const DecodeDims& dims, const at::Tensor& q,
                                                const at::Tensor& k_cache, const at::Tensor& v_cache,
                                                const at::Tensor& cache_seqlens,
                                                const std::optional<at::Tensor>& w_k,
                                                const std::optional<at::Tensor>& w_v,
                                                const std::optional<at::Tensor>& block_table, double scale,
                                                bool causal, int64_t window_left, AttentionCore attend);

}  // namespace headmix::aten
