// CUDA binding of kv_cache_append: checks -> Params -> current stream -> launcher. By default
// the lengths, pages and RoPE positions are checked on the host first (one sync), so an
// overflowing append is rejected before anything is written; HEADMIX_CACHE_RANGE_CHECKS=0 and
// CUDA-graph capture skip that read, and the kernel then skips rows it cannot place
// (cuda/cache_checks.h). float64 runs the device-generic ATen implementation.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "checks.h"
#include "cpu/kv_cache_append.h"
#include "cuda/cache_checks.h"
#include "cuda/device.h"
#include "kernels/kv_cache_append.h"
#include "registration.h"

namespace headmix::cuda {
namespace {

void kv_cache_append(const at::Tensor& k_new, const at::Tensor& v_new, at::Tensor& k_cache,
                     at::Tensor& v_cache, const at::Tensor& cache_seqlens,
                     const std::optional<at::Tensor>& block_table, const std::optional<at::Tensor>& cos,
                     const std::optional<at::Tensor>& sin, const std::optional<at::Tensor>& pos) {
  if (k_new.scalar_type() == at::kDouble) {
    cpu::kv_cache_append_aten(k_new, v_new, k_cache, v_cache, cache_seqlens, block_table, cos, sin, pos);
    return;
  }
  const auto dims = check_kv_cache_append(k_new, v_new, k_cache, v_cache, cache_seqlens, block_table, cos,
                                          sin, pos);
  const c10::cuda::CUDAGuard device_guard(k_new.device());
  require_kernel_arch(k_new.device(), "kv_cache_append");
  if (host_range_checks(CacheOp::kAppend)) {
    check_cache_ranges(dims, cache_seqlens, block_table, k_cache.size(0), k_new.size(1), cos, pos);
  }
  const auto table = block_table ? block_table->contiguous() : at::Tensor();
  const auto cos_table = cos ? cos->contiguous() : at::Tensor();
  const auto sin_table = sin ? sin->contiguous() : at::Tensor();

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
  p.layout.block_table = block_table ? table.data_ptr<int>() : nullptr;
  p.layout.table_stride = block_table ? table.stride(0) : 0;
  p.layout.block_size = dims.block_size;
  p.layout.num_blocks = k_cache.size(0);
  p.layout.capacity = dims.capacity;
  p.rope.cos = cos ? cos_table.data_ptr<float>() : nullptr;
  p.rope.sin = sin ? sin_table.data_ptr<float>() : nullptr;
  p.rope.rotary_half = cos ? cos->size(1) : 0;
  p.max_pos = cos ? cos->size(0) : 0;
  C10_CUDA_CHECK(kernels::launch_kv_cache_append_portable(p, at::cuda::getCurrentCUDAStream()));
}

}  // namespace

TORCH_LIBRARY_IMPL(HEADMIX_NAMESPACE, CUDA, m) { m.impl("kv_cache_append", &kv_cache_append); }

}  // namespace headmix::cuda
