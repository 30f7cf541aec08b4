#include "aten/vhead_decode.h"

#include <limits>

#include "aten/kv_cache.h"

namespace headmix::aten {

std::tuple<at::Tensor, at::Tensor> attention_dense(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                   double scale, bool causal, int64_t window_left,
                                                   int64_t window_right) {
  const auto acc = accumulate_type(q.scalar_type());
  const int64_t batch = q.size(0), seqlen_q = q.size(1), heads = q.size(2);
  const int64_t kv_heads = k.size(2), group = heads / kv_heads, seqlen_k = k.size(1);
  // [B, S_q, H_kv, group, d] . [B, S_k, H_kv, d] -> [B, H_kv, group, S_q, S_k]
  const auto queries = q.to(acc).reshape({batch, seqlen_q, kv_heads, group, q.size(3)});
  auto scores = at::einsum("bsgid,btgd->bgist", {queries, k.to(acc)}).mul_(scale);
  // Query row s sits at key position s + S_k - S_q (bottom-right alignment).
  const auto opts = scores.options().dtype(at::kLong);
  const auto position = at::arange(seqlen_q, opts).unsqueeze(1) + (seqlen_k - seqlen_q);  // [S_q, 1]
  const auto key = at::arange(seqlen_k, opts).unsqueeze(0);                              // [1, S_k]
  auto allowed = at::ones({seqlen_q, seqlen_k}, opts.dtype(at::kBool));
  const int64_t right = causal ? 0 : window_right;
  if (right >= 0) allowed &= key <= position + right;
  if (window_left >= 0) allowed &= key >= position - window_left;
  scores.masked_fill_(allowed.logical_not(), -std::numeric_limits<double>::infinity());
  const auto lse = at::logsumexp(scores, -1);  // -inf for rows without keys
  const auto probs = (scores - lse.unsqueeze(-1)).exp_().nan_to_num_(0.0);
  const auto out = at::einsum("bgist,btge->bsgie", {probs, v.to(acc)});  // [B, S_q, H_kv, group, d_v]
  return {out.reshape({batch, seqlen_q, heads, v.size(3)}).to(q.scalar_type()),
          lse.reshape({batch, heads, seqlen_q})};
}

std::tuple<at::Tensor, at::Tensor> vhead_decode(const DecodeDims& dims, const at::Tensor& q,
                                                const at::Tensor& k_cache, const at::Tensor& v_cache,
                                                const at::Tensor& cache_seqlens,
                                                const std::optional<at::Tensor>& w_k,
                                                const std::optional<at::Tensor>& w_v,
                                                const std::optional<at::Tensor>& block_table, double scale,
                                                bool causal, int64_t window_left, AttentionCore attend) {
  check_cache_ranges(dims, cache_seqlens, block_table, k_cache.size(0), 0, std::nullopt, std::nullopt);
  const auto acc = accumulate_type(q.scalar_type());
  auto out = at::empty({dims.batch, dims.seqlen_q, dims.heads, dims.head_dim_v}, q.options());
  auto lse = at::empty({dims.batch, dims.heads, dims.seqlen_q}, q.options().dtype(acc));
  const auto lengths = cache_seqlens.to(at::kCPU);
  for (int64_t b = 0; b < dims.batch; ++b) {
    const int64_t length = lengths[b].item<int64_t>();
    const auto keys = rebuild_heads(cache_rows(k_cache, block_table, b, length), w_k, acc);
    const auto values = rebuild_heads(cache_rows(v_cache, block_table, b, length), w_v, acc);
    auto [out_b, lse_b] = attend(q.narrow(0, b, 1), keys.unsqueeze(0), values.unsqueeze(0), scale, causal,
                                 window_left, -1);
    out.narrow(0, b, 1).copy_(out_b);
    lse.narrow(0, b, 1).copy_(lse_b);
  }
  return {out, lse};
}

}  // namespace headmix::aten
