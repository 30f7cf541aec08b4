#include "aten/vhead_decode.h"

#include <algorithm>
#include <limits>
#include <tuple>

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

namespace {

// Rows per attention call over a paged cache: each chunk's pages are gathered just before it is
// read, so the copy never holds the whole sequence (a chunk holds at least S_q rows). A
// contiguous cache is read in place in one call. Not smaller: ATen's CPU flash kernel pays per call (at S_q = 4, 8 heads, d = 64,
// 16 calls over 2048 rows cost 4.7x one call over 32k, 4 calls over 8192 rows 1.26x).
constexpr int64_t kPagedChunkRows = 8192;

// Folds one chunk's (out, lse) into the running (out, lse) of the same query rows:
// out [1, S_q, H, d_v] and lse [1, H, S_q] in the accumulate dtype. Rows that have seen no key
// yet (lse -inf on both sides) stay out 0, lse -inf.
void merge_partial(at::Tensor& out, at::Tensor& lse, const at::Tensor& chunk_out, const at::Tensor& chunk_lse) {
  const auto merged = at::logaddexp(lse, chunk_lse);
  const auto weight = [&](const at::Tensor& part) {
    return (part - merged).exp_().nan_to_num_(0.0).transpose(1, 2).unsqueeze(-1);  // [1, S_q, H, 1]
  };
  out = out * weight(lse) + chunk_out * weight(chunk_lse);
  lse = merged;
}

}  // namespace

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
  const auto q_acc = q.to(acc);  // chunk results merge in the accumulate dtype, rounded once
  for (int64_t b = 0; b < dims.batch; ++b) {
    const int64_t length = lengths[b].item<int64_t>();
    const auto q_b = q_acc.narrow(0, b, 1);
    at::Tensor k_scratch, v_scratch;
    const auto attend_rows = [&](int64_t first, int64_t count, bool chunk_causal, int64_t chunk_window) {
      const auto keys = rebuild_heads(cache_rows(k_cache, block_table, b, first, count, k_scratch), w_k, acc);
      const auto values = rebuild_heads(cache_rows(v_cache, block_table, b, first, count, v_scratch), w_v, acc);
      return attend(q_b, keys.unsqueeze(0), values.unsqueeze(0), scale, chunk_causal, chunk_window, -1);
    };
    at::Tensor out_b, lse_b;
    if (window_left >= 0 || !block_table) {
      std::tie(out_b, lse_b) = attend_rows(0, length, causal, window_left);
    } else {
      // A paged cache goes in chunks: the last chunk, which ends at row `length`, keeps the
      // bottom-right causal mask; every query row sees all rows before it (the chunk holds at
      // least S_q rows), so those chunks run unmasked. Partial results merge by lse.
      const int64_t chunk = std::max(kPagedChunkRows, dims.seqlen_q);
      const int64_t last_first = std::max<int64_t>(0, length - chunk);
      std::tie(out_b, lse_b) = attend_rows(last_first, length - last_first, causal, -1);
      for (int64_t first = 0; first < last_first; first += chunk) {
        auto [chunk_out, chunk_lse] = attend_rows(first, std::min(chunk, last_first - first), false, -1);
        merge_partial(out_b, lse_b, chunk_out, chunk_lse);
      }
    }
    out.narrow(0, b, 1).copy_(out_b);
    lse.narrow(0, b, 1).copy_(lse_b);
  }
  return {out, lse};
}

}  // namespace headmix::aten
