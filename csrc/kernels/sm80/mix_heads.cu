// Launchers of the portable mix_heads kernels: the head mix picks the widest vector (16 bytes
// at most) that pointers, strides, head dim and rotary half allow; the weight gradient picks
// its token chunks from the SM count.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "common/dispatch.cuh"
#include "common/launch.cuh"
#include "mix_heads.h"
#include "sm80/mix_heads_dw_kernel.cuh"
#include "sm80/mix_heads_kernel.cuh"

namespace headmix::kernels {
namespace {

constexpr int kThreads = 256;

bool vector_fits(const MixHeadsParams& p, int vec, int elem_bytes) {
  const auto aligned = [&](const void* ptr) {
    return reinterpret_cast<uintptr_t>(ptr) % (uintptr_t(vec) * elem_bytes) == 0;
  };
  return p.head_dim % vec == 0 && p.rope.rotary_half % vec == 0 && p.x_batch_stride % vec == 0 &&
         p.x_token_stride % vec == 0 && p.x_head_stride % vec == 0 && aligned(p.x) && aligned(p.y);
}

template <typename T, int VEC>
cudaError_t launch_mix_with_vec(const MixHeadsParams& p, cudaStream_t stream) {
  const int64_t units = p.rope.rotary_half / VEC + (p.head_dim - 2 * p.rope.rotary_half) / VEC;
  const int64_t threads = p.batch * p.tokens * p.heads_out * units;
  if (threads == 0) return cudaSuccess;
  const dim3 grid(unsigned((threads + kThreads - 1) / kThreads));
  const auto kernel =
      p.rotate_inputs ? mix_heads_portable_kernel<T, VEC, true> : mix_heads_portable_kernel<T, VEC, false>;
  return launch_kernel(kernel, grid, kThreads, 0, stream, p);
}

template <typename T>
cudaError_t launch_mix_typed(const MixHeadsParams& p, cudaStream_t stream) {
  constexpr int kWidest = 16 / sizeof(T);
  if (vector_fits(p, kWidest, sizeof(T))) return launch_mix_with_vec<T, kWidest>(p, stream);
  if (vector_fits(p, 2, sizeof(T))) return launch_mix_with_vec<T, 2>(p, stream);
  return launch_mix_with_vec<T, 1>(p, stream);
}

template <typename T>
cudaError_t launch_dw_typed(const MixHeadsWeightGradParams& p, cudaStream_t stream) {
  const size_t smem = 2 * kDwTile * (p.head_dim + 1) * sizeof(float);
  const dim3 grid(unsigned(p.chunks), unsigned((p.heads_in + kDwTile - 1) / kDwTile),
                  unsigned((p.heads_out + kDwTile - 1) / kDwTile));
  const cudaError_t err = launch_kernel(mix_heads_dw_partial_kernel<T>, grid, kDwTile * kDwTile, smem, stream, p);
  if (err != cudaSuccess) return err;
  const int64_t outputs = p.heads_in * p.heads_out;
  return launch_kernel(mix_heads_dw_reduce_kernel, unsigned((outputs + kThreads - 1) / kThreads), kThreads, 0, stream,
                       p);
}

}  // namespace

cudaError_t launch_mix_heads_portable(const MixHeadsParams& p, cudaStream_t stream) {
  return with_element<Elements::kAll>(p.dtype, [&](auto element) {
    return launch_mix_typed<decltype(element)>(p, stream);
  });
}

int64_t mix_heads_dw_chunks(int64_t total_tokens, int64_t heads_in, int64_t heads_out, int num_sms) {
  const int64_t tiles = ((heads_in + kDwTile - 1) / kDwTile) * ((heads_out + kDwTile - 1) / kDwTile);
  const int64_t wanted = (4 * int64_t(num_sms) + tiles - 1) / tiles;
  return std::max<int64_t>(1, std::min(total_tokens, wanted));
}

cudaError_t launch_mix_heads_dw_portable(const MixHeadsWeightGradParams& p, cudaStream_t stream) {
  if (p.heads_in * p.heads_out == 0) return cudaSuccess;
  return with_element<Elements::kAll>(p.dtype, [&](auto element) {
    return launch_dw_typed<decltype(element)>(p, stream);
  });
}

}  // namespace headmix::kernels
