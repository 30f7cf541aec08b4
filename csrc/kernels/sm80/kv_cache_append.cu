// Launcher of kv_cache_append: 16-byte vectors when every size, stride and pointer allows
// them, single elements otherwise.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "common/dispatch.cuh"
#include "common/launch.cuh"
#include "kv_cache_append.h"
#include "sm80/kv_cache_append_kernel.cuh"

namespace headmix::kernels {
namespace {

constexpr int kThreads = 256;

bool vector_fits(const KvCacheAppendParams& p, int64_t vec, int64_t elem_bytes) {
  const auto aligned = [&](const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % (vec * elem_bytes) == 0; };
  const int64_t sizes[] = {p.head_dim, p.head_dim_v, p.rope.rotary_half,
                           p.k_new_batch_stride, p.k_new_row_stride, p.k_new_head_stride,
                           p.v_new_batch_stride, p.v_new_row_stride, p.v_new_head_stride,
                           p.k_batch_stride, p.k_row_stride, p.k_head_stride,
                           p.v_batch_stride, p.v_row_stride, p.v_head_stride};
  for (const int64_t size : sizes) {
    if (size % vec != 0) return false;
  }
  return aligned(p.k_new) && aligned(p.v_new) && aligned(p.k_cache) && aligned(p.v_cache);
}

template <typename T, int VEC>
cudaError_t launch_vec(const KvCacheAppendParams& p, cudaStream_t stream) {
  const int64_t units = p.rope.rotary_half / VEC + (p.head_dim - 2 * p.rope.rotary_half) / VEC + p.head_dim_v / VEC;
  const int64_t threads = p.batch * p.new_rows * p.cache_heads * units;
  if (threads == 0) return cudaSuccess;
  return launch_kernel(sm80::kv_cache_append_kernel<T, VEC>, unsigned((threads + kThreads - 1) / kThreads), kThreads,
                       0, stream, p);
}

template <typename T>
cudaError_t launch_typed(const KvCacheAppendParams& p, cudaStream_t stream) {
  constexpr int kWidest = 16 / sizeof(T);
  return vector_fits(p, kWidest, sizeof(T)) ? launch_vec<T, kWidest>(p, stream) : launch_vec<T, 1>(p, stream);
}

}  // namespace

cudaError_t launch_kv_cache_append_portable(const KvCacheAppendParams& p, cudaStream_t stream) {
  return with_element<Elements::kAll>(p.dtype, [&](auto element) {
    return launch_typed<decltype(element)>(p, stream);
  });
}

}  // namespace headmix::kernels
