#include "cuda/decode_aten.h"

#include <limits>

#include "cpu/kv_cache.h"

namespace headmix::cuda {

std::tuple<at::Tensor, at::Tensor> vhead_decode_aten(const DecodeDims& dims, const at::Tensor& q,
                                                     const at::Tensor& k_cache, const at::Tensor& v_cache,
                                                     const at::Tensor& cache_seqlens,
                                                     const std::optional<at::Tensor>& w_k,
                                                     const std::optional<at::Tensor>& w_v,
                                                     const std::optional<at::Tensor>& block_table,
                                                     double scale, bool causal, int64_t window_left) {
  check_cache_ranges(dims, cache_seqlens, block_table, k_cache.size(0), 0, std::nullopt, std::nullopt);
  const auto acc = accumulate_type(q.scalar_type());
  const int64_t group = dims.heads / dims.kv_heads, seqlen_q = dims.seqlen_q;
  auto out = at::empty({dims.batch, seqlen_q, dims.heads, dims.head_dim_v}, q.options());
  auto lse = at::empty({dims.batch, dims.heads, seqlen_q}, q.options().dtype(acc));
  const auto lengths = cache_seqlens.to(at::kCPU);
  const auto steps = at::arange(seqlen_q, q.options().dtype(at::kLong)).unsqueeze(1);  // [S_q, 1]
  for (int64_t b = 0; b < dims.batch; ++b) {
    const int64_t length = lengths[b].item<int64_t>();
    const auto keys = cpu::rebuild_heads(cpu::cache_rows(k_cache, block_table, b, length), w_k, acc).to(acc);
    const auto values = cpu::rebuild_heads(cpu::cache_rows(v_cache, block_table, b, length), w_v, acc).to(acc);
    // [S_q, H_kv, group, d] . [L, H_kv, d] -> [H_kv, group, S_q, L]
    const auto queries = q[b].to(acc).view({seqlen_q, dims.kv_heads, group, dims.head_dim});
    auto scores = at::einsum("sgid,tgd->gist", {queries, keys}).mul_(scale);
    // Step s sits at key position s + length - S_q (bottom-right alignment).
    const auto position = steps + (length - seqlen_q);
    const auto key = at::arange(length, steps.options()).unsqueeze(0);  // [1, L]
    auto allowed = at::ones({seqlen_q, length}, steps.options().dtype(at::kBool));
    if (causal) allowed &= key <= position;
    if (window_left >= 0) allowed &= key >= position - window_left;
    scores.masked_fill_(allowed.logical_not(), -std::numeric_limits<double>::infinity());
    const auto lse_b = at::logsumexp(scores, -1);  // -inf for rows without keys
    const auto probs = (scores - lse_b.unsqueeze(-1)).exp_().nan_to_num_(0.0);
    const auto o = at::einsum("gist,tge->sgie", {probs, values});  // [S_q, H_kv, group, d_v]
    out[b].copy_(o.reshape({seqlen_q, dims.heads, dims.head_dim_v}));
    lse[b].copy_(lse_b.reshape({dims.heads, seqlen_q}));
  }
  return {out, lse};
}

}  // namespace headmix::cuda
