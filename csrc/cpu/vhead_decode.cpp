// CPU binding of vhead_decode: checks -> the ATen decode (aten/vhead_decode.h) with the CPU's
// blockwise attention core (cpu/attention.h), whose memory does not grow with S_q x S_k.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "attention_scale.h"
#include "aten/vhead_decode.h"
#include "checks.h"
#include "cpu/attention.h"
#include "registration.h"

namespace headmix::cpu {
namespace {

std::tuple<at::Tensor, at::Tensor> vhead_decode(
    const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
    const at::Tensor& cache_seqlens, const std::optional<at::Tensor>& w_k,
    const std::optional<at::Tensor>& w_v, const std::optional<at::Tensor>& block_table,
    std::optional<double> scale, bool causal, int64_t window_left) {
  const auto dims = check_vhead_decode(q, k_cache, v_cache, cache_seqlens, w_k, w_v, block_table,
                                       window_left);
  return aten::vhead_decode(dims, q, k_cache, v_cache, cache_seqlens, w_k, w_v, block_table,
                            attention_scale(scale, dims.head_dim), causal, window_left, &attention_forward);
}

}  // namespace

TORCH_LIBRARY_IMPL(HEADMIX_NAMESPACE, CPU, m) { m.impl("vhead_decode", &vhead_decode); }

}  // namespace headmix::cpu
