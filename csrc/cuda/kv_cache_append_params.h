#pragma once
// KvCacheAppendParams from checked tensors: ATen accessors only, no CUDA call, so the CPU test
// that runs the kernel sources on an emulator (tests/emulated) uses the binding's own set-up.
#include <ATen/ATen.h>

#include <optional>

#include "checks.h"
#include "cuda/kernel_dtype.h"
#include "kernels/params.h"

namespace headmix::cuda {

// The block table and RoPE tables as the kernel reads them (contiguous), alive until the
// launch is queued.
struct AppendOperands {
  at::Tensor block_table, cos, sin;
  AppendOperands(const std::optional<at::Tensor>& table, const std::optional<at::Tensor>& c,
                 const std::optional<at::Tensor>& s) {
    if (table) block_table = table->contiguous();
    if (c) {
      cos = c->contiguous();
      sin = s->contiguous();
    }
  }
};

inline kernels::KvCacheAppendParams kv_cache_append_params(
    const DecodeDims& dims, const at::Tensor& k_new, const at::Tensor& v_new, const at::Tensor& k_cache,
    const at::Tensor& v_cache, const at::Tensor& cache_seqlens, const std::optional<at::Tensor>& pos,
    const AppendOperands& operands) {
  kernels::KvCacheAppendParams p{};
  p.k_new = k_new.data_ptr();
  p.v_new = v_new.data_ptr();
  p.k_cache = k_cache.data_ptr();
  p.v_cache = v_cache.data_ptr();
  p.cache_seqlens = cache_seqlens.data_ptr<int>();
  p.pos = pos ? pos->data_ptr<int>() : nullptr;
  p.dtype = kernel_dtype(k_new.scalar_type());
  p.batch = dims.batch;
  p.new_rows = k_new.size(1);
  p.cache_heads = dims.cache_heads;
  p.head_dim = dims.head_dim;
  p.head_dim_v = dims.head_dim_v;
  p.k_new_batch_stride = k_new.stride(0);
  p.k_new_row_stride = k_new.stride(1);
  p.k_new_head_stride = k_new.stride(2);
  p.v_new_batch_stride = v_new.stride(0);
  p.v_new_row_stride = v_new.stride(1);
  p.v_new_head_stride = v_new.stride(2);
  p.k_batch_stride = k_cache.stride(0);
  p.k_row_stride = k_cache.stride(1);
  p.k_head_stride = k_cache.stride(2);
  p.v_batch_stride = v_cache.stride(0);
  p.v_row_stride = v_cache.stride(1);
  p.v_head_stride = v_cache.stride(2);
  p.seqlens_stride = cache_seqlens.stride(0);
  p.pos_stride = pos ? pos->stride(0) : 0;
  const bool paged = operands.block_table.defined();
  p.layout.block_table = paged ? operands.block_table.data_ptr<int>() : nullptr;
  p.layout.table_stride = paged ? operands.block_table.stride(0) : 0;
  p.layout.block_size = dims.block_size;
  p.layout.num_blocks = k_cache.size(0);
  p.layout.capacity = dims.capacity;
  const bool rotated = operands.cos.defined();
  p.rope.cos = rotated ? operands.cos.data_ptr<float>() : nullptr;
  p.rope.sin = rotated ? operands.sin.data_ptr<float>() : nullptr;
  p.rope.rotary_half = rotated ? operands.cos.size(1) : 0;
  p.max_pos = rotated ? operands.cos.size(0) : 0;
  return p;
}

}  // namespace headmix::cuda
