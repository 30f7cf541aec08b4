// CUDA binding of vhead_decode: checks -> plan -> Params -> current stream -> launcher.
//
// A decode step can be captured in a CUDA graph and replayed as lengths grow: under capture
// only shapes are checked here, while cache_seqlens and the block table are read only by the
// kernel, which answers NaN (out and lse) for a sequence longer than the cache or with a page id
// out of range. Outside capture the lengths and pages are also checked on the host (one sync)
// for a clear error, unless HEADMIX_CACHE_RANGE_CHECKS=0 (cache_range_checks.h).
// The key splits are planned once per call, from shapes and the SM count alone
// (kernels/vhead_decode_plan.h), so a captured graph stays valid for any lengths up to the
// capacity.
//
// Workspace: with more than one split the kernel writes fp32 partial results to scratch
// allocated here on the current stream. PyTorch's caching allocator serves allocations made
// during CUDA-graph capture from the graph's private memory pool and keeps them for its
// replays (docs/ops.md, "CUDA graphs"), so the op stays capturable without a caller-owned buffer.
//
// What the kernel does not cover (float32/float64, d not in {64, 128}, d_v != d, unaligned or
// unlike-strided caches, too many latent heads for shared memory) runs the device-neutral ATen
// decode (aten/vhead_decode.h) with its dense attention core; it reads and checks the lengths
// on the host.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>

#include "attention_scale.h"
#include "aten/vhead_decode.h"
#include "checks.h"
#include "cuda/cache_checks.h"
#include "cuda/device.h"
#include "cuda/vhead_decode_params.h"
#include "kernels/vhead_decode.h"
#include "registration.h"

namespace headmix::cuda {
namespace {

// 16-byte aligned base and row/head strides (the kernel moves 8-element chunks).
bool rows_aligned(const at::Tensor& t) {
  if (reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 != 0) return false;
  for (int64_t i = 0; i + 1 < t.dim(); ++i) {
    if (t.stride(i) % 8 != 0) return false;
  }
  return true;
}

// The kernel addresses cache rows in 32-bit counts of 16-byte chunks.
bool chunk_addressable(const at::Tensor& cache) {
  int64_t last = 0;
  for (int64_t i = 0; i < cache.dim(); ++i) last += (cache.size(i) - 1) * cache.stride(i);
  return last / 8 < int64_t(UINT32_MAX);
}

bool kernel_covers(const DecodeDims& dims, const at::Tensor& q, const at::Tensor& k_cache,
                   const at::Tensor& v_cache, const kernels::VheadDecodePlan& plan, int64_t max_smem) {
  const auto dtype = q.scalar_type();
  return (dtype == at::kBFloat16 || dtype == at::kHalf) && (dims.head_dim == 64 || dims.head_dim == 128) &&
         dims.head_dim_v == dims.head_dim && dims.capacity < INT32_MAX / 2 &&
         k_cache.strides() == v_cache.strides() && rows_aligned(q) &&
         rows_aligned(k_cache) && rows_aligned(v_cache) && chunk_addressable(k_cache) &&
         plan.smem_bytes <= max_smem;
}

std::tuple<at::Tensor, at::Tensor> vhead_decode(
    const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
    const at::Tensor& cache_seqlens, const std::optional<at::Tensor>& w_k,
    const std::optional<at::Tensor>& w_v, const std::optional<at::Tensor>& block_table,
    std::optional<double> scale, bool causal, int64_t window_left) {
  const auto dims = check_vhead_decode(q, k_cache, v_cache, cache_seqlens, w_k, w_v, block_table,
                                       window_left);
  const c10::cuda::CUDAGuard device_guard(q.device());
  const double softmax_scale = attention_scale(scale, dims.head_dim);
  const auto* props = at::cuda::getDeviceProperties(q.device().index());
  const int64_t max_smem = int64_t(props->sharedMemPerBlockOptin);
  const auto shape = vhead_decode_shape(dims, w_k.has_value());
  const auto plan = kernels::plan_vhead_decode(shape, props->multiProcessorCount, max_smem);
  if (!kernel_covers(dims, q, k_cache, v_cache, plan, max_smem)) {
    return aten::vhead_decode(dims, q, k_cache, v_cache, cache_seqlens, w_k, w_v, block_table, softmax_scale,
                              causal, window_left, &aten::attention_dense);
  }
  require_kernel_arch(q.device(), "vhead_decode");
  if (host_range_checks()) {
    check_cache_ranges(dims, cache_seqlens, block_table, k_cache.size(0), 0, std::nullopt, std::nullopt);
  }
  auto out = at::empty({dims.batch, dims.seqlen_q, dims.heads, dims.head_dim}, q.options());
  auto lse = at::empty({dims.batch, dims.heads, dims.seqlen_q}, q.options().dtype(at::kFloat));
  // The caching allocator aligns blocks to 512 bytes, beyond the 16 the kernels need.
  const auto workspace = at::empty({plan.workspace_floats}, q.options().dtype(at::kFloat));
  const DecodeOperands operands(q, w_k, w_v, block_table);
  const auto params = vhead_decode_params(dims, shape, q, k_cache, v_cache, cache_seqlens, operands, out, lse,
                                          softmax_scale, causal, window_left);
  C10_CUDA_CHECK(kernels::launch_vhead_decode_portable(params, plan, workspace.data_ptr<float>(),
                                                       at::cuda::getCurrentCUDAStream()));
  return {out, lse};
}

}  // namespace

TORCH_LIBRARY_IMPL(HEADMIX_NAMESPACE, CUDA, m) { m.impl("vhead_decode", &vhead_decode); }

}  // namespace headmix::cuda
