#pragma once
// VheadDecodeParams from checked tensors: ATen accessors only, no CUDA call, so the CPU test that
// runs the kernel sources on an emulator (tests/emulated) builds its launches with the
// binding's own code.
#include <ATen/ATen.h>

#include <optional>

#include "checks.h"
#include "cuda/kernel_dtype.h"
#include "kernels/params.h"
#include "kernels/vhead_decode_plan.h"

namespace headmix::cuda {

// The call as the kernel plans it: with w_k/w_v all query heads share one latent of the H'
// cache heads; without, each cache head is the latent of its GQA group. Derived once per call:
// the plan and the Params both take it.
inline kernels::VheadDecodeShape vhead_decode_shape(const DecodeDims& dims, bool mixed) {
  return {dims.batch,        dims.seqlen_q, dims.heads, mixed ? 1 : dims.cache_heads, mixed ? dims.cache_heads : 1,
          dims.head_dim, dims.capacity};
}

// What the kernel reads besides the call's own tensors: w_k/w_v contiguous, both in q's dtype or
// both float32, and a contiguous block table. Holds them alive until the launch is queued.
struct DecodeOperands {
  at::Tensor w_k, w_v, block_table;
  bool w_fp32 = false;
  DecodeOperands(const at::Tensor& q, const std::optional<at::Tensor>& wk, const std::optional<at::Tensor>& wv,
                 const std::optional<at::Tensor>& table) {
    if (wk) {
      w_fp32 = wk->scalar_type() == at::kFloat || wv->scalar_type() == at::kFloat;
      const auto dtype = w_fp32 ? at::kFloat : q.scalar_type();
      w_k = wk->to(dtype).contiguous();
      w_v = wv->to(dtype).contiguous();
    }
    if (table) block_table = table->contiguous();
  }
};

// `shape` is vhead_decode_shape of the call; the launcher adds its plan's fields.
inline kernels::VheadDecodeParams vhead_decode_params(
    const DecodeDims& dims, const kernels::VheadDecodeShape& shape, const at::Tensor& q, const at::Tensor& k_cache,
    const at::Tensor& v_cache, const at::Tensor& cache_seqlens, const DecodeOperands& operands, const at::Tensor& out,
    const at::Tensor& lse, double scale, bool causal, int64_t window_left) {
  const bool mixed = operands.w_k.defined();
  kernels::VheadDecodeParams p{};
  p.q = q.data_ptr();
  p.k_cache = k_cache.data_ptr();
  p.v_cache = v_cache.data_ptr();
  p.cache_seqlens = cache_seqlens.data_ptr<int>();
  p.w_k = mixed ? operands.w_k.data_ptr() : nullptr;
  p.w_v = mixed ? operands.w_v.data_ptr() : nullptr;
  p.out = out.data_ptr();
  p.lse = lse.data_ptr<float>();
  p.dtype = kernel_dtype(q.scalar_type());
  p.w_fp32 = operands.w_fp32;
  p.batch = dims.batch;
  p.seqlen_q = dims.seqlen_q;
  p.heads = dims.heads;
  p.kv_heads = dims.kv_heads;
  p.cache_heads = dims.cache_heads;
  p.head_dim = dims.head_dim;
  p.latent_groups = shape.latent_groups;
  p.latent_heads = shape.latent_heads;
  p.q_batch_stride = q.stride(0);
  p.q_row_stride = q.stride(1);
  p.q_head_stride = q.stride(2);
  p.cache_batch_stride = k_cache.stride(0);
  p.cache_row_stride = k_cache.stride(1);
  p.cache_head_stride = k_cache.stride(2);
  p.seqlens_stride = cache_seqlens.stride(0);
  const bool paged = operands.block_table.defined();
  p.layout.block_table = paged ? operands.block_table.data_ptr<int>() : nullptr;
  p.layout.table_stride = paged ? operands.block_table.stride(0) : 0;
  p.layout.block_size = dims.block_size;
  p.layout.num_blocks = k_cache.size(0);
  p.layout.capacity = dims.capacity;
  p.scale = float(scale);
  p.causal = causal;
  p.window_left = window_left >= dims.capacity ? -1 : window_left;  // as wide as the cache: no limit
  return p;
}

}  // namespace headmix::cuda
