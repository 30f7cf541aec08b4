#pragma once
// Input checks shared by every backend's entry point. Each failure names the argument, what
// was expected and what was given, so a bad call never reaches a kernel.
// python/headmix/_checks.py states the same rules, in the same order and with the same
// messages, for the fake kernels (which cannot call C++: their sizes may be symbolic). Change
// both together: tests/check_rules.py lists every rule with one bad input, and
// tests/test_check_parity.py requires the same error from the native op and from its fake.
#include <ATen/ATen.h>

#include <optional>
#include <string>

namespace headmix {

// Sizes read off validated attention inputs.
struct AttnDims {
  int64_t batch, seqlen_q, seqlen_k, heads, kv_heads, head_dim, head_dim_v;
};

// Sizes read off validated decode inputs.
struct DecodeDims {
  int64_t batch, seqlen_q, heads, kv_heads, cache_heads, head_dim, head_dim_v;
  bool paged;
  int64_t block_size;  // rows per page, or T_max for a contiguous cache
  int64_t capacity;    // rows a sequence may hold
};

// A dtype as Python spells it ("float32", "int64"), so the messages read the same as the
// fakes' (python/headmix/_checks.py) and as the user's code.
std::string dtype_name(at::ScalarType dtype);

// Accumulation type of a compute dtype: float64 stays float64, everything else float32.
at::ScalarType accumulate_type(at::ScalarType dtype);

void check_mix_heads(const at::Tensor& x, const at::Tensor& w, int64_t pseudo,
                     const std::optional<at::Tensor>& cos, const std::optional<at::Tensor>& sin,
                     int64_t pos_offset);
void check_mix_heads_grad(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& w);

AttnDims check_flash_attn(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          int64_t window_left, int64_t window_right);
void check_flash_attn_bwd(const AttnDims& dims, const at::Tensor& dout, const at::Tensor& out,
                          const at::Tensor& lse, const std::optional<at::Tensor>& dlse);

DecodeDims check_vhead_decode(const at::Tensor& q, const at::Tensor& k_cache,
                              const at::Tensor& v_cache, const at::Tensor& cache_seqlens,
                              const std::optional<at::Tensor>& w_k,
                              const std::optional<at::Tensor>& w_v,
                              const std::optional<at::Tensor>& block_table, int64_t window_left);

DecodeDims check_kv_cache_append(const at::Tensor& k_new, const at::Tensor& v_new,
                                 const at::Tensor& k_cache, const at::Tensor& v_cache,
                                 const at::Tensor& cache_seqlens,
                                 const std::optional<at::Tensor>& block_table,
                                 const std::optional<at::Tensor>& cos,
                                 const std::optional<at::Tensor>& sin,
                                 const std::optional<at::Tensor>& pos);

// Value checks that read cache_seqlens / block_table / pos on the host: every sequence's rows
// [0, cache_seqlens[b] + extra) fit the cache, its pages exist, and the RoPE table covers the
// positions pos[b] .. pos[b] + extra - 1 (pos defaults to cache_seqlens).
void check_cache_ranges(const DecodeDims& dims, const at::Tensor& cache_seqlens,
                        const std::optional<at::Tensor>& block_table, int64_t num_blocks,
                        int64_t extra, const std::optional<at::Tensor>& cos,
                        const std::optional<at::Tensor>& pos);

}  // namespace headmix
