// CPU decode over a KV cache that holds H' virtual heads (or plain GQA heads). Each sequence's
// valid rows are gathered (positions >= cache_seqlens[b] are never read), the H_kv composite
// heads are rebuilt with w_k / w_v in the accumulate dtype, and the blockwise attention core
// runs with bottom-right alignment, so S_q > 1 (IHA decode, S_q = P) works the same way.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <cmath>

#include "attention_scale.h"
#include "checks.h"
#include "cpu/attention.h"
#include "cpu/kv_cache.h"
#include "registration.h"

namespace headmix::cpu {
namespace {

std::tuple<at::Tensor, at::Tensor> vhead_decode(
    const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
    const at::Tensor& cache_seqlens, const std::optional<at::Tensor>& w_k,
    const std::optional<at::Tensor>& w_v, const std::optional<at::Tensor>& block_table,
    std::optional<double> scale, bool causal, int64_t window_left,
    const std::optional<at::Tensor>& /*workspace: scratch of the CUDA kernels*/) {
  const auto dims = check_vhead_decode(q, k_cache, v_cache, cache_seqlens, w_k, w_v, block_table,
                                       window_left);
  check_cache_ranges(dims, cache_seqlens, block_table, k_cache.size(0), 0, std::nullopt,
                     std::nullopt);
  const auto acc = accumulate_type(q.scalar_type());
  const double softmax_scale = attention_scale(scale, dims.head_dim);
  auto out = at::empty({dims.batch, dims.seqlen_q, dims.heads, dims.head_dim_v}, q.options());
  auto lse = at::empty({dims.batch, dims.heads, dims.seqlen_q}, q.options().dtype(acc));
  const auto lengths = cache_seqlens.to(at::kCPU);
  for (int64_t b = 0; b < dims.batch; ++b) {
    const int64_t length = lengths[b].item<int64_t>();
    const auto keys = rebuild_heads(cache_rows(k_cache, block_table, b, length), w_k, acc);
    const auto values = rebuild_heads(cache_rows(v_cache, block_table, b, length), w_v, acc);
    auto [out_b, lse_b] = attention_forward(q.narrow(0, b, 1), keys.unsqueeze(0),
                                            values.unsqueeze(0), softmax_scale, causal,
                                            window_left, -1);
    out.narrow(0, b, 1).copy_(out_b);
    lse.narrow(0, b, 1).copy_(lse_b);
  }
  return {out, lse};
}

}  // namespace

TORCH_LIBRARY_IMPL(HEADMIX_NAMESPACE, CPU, m) { m.impl("vhead_decode", &vhead_decode); }

}  // namespace headmix::cpu
