// Launcher of the portable mix_heads forward: picks the widest vector (16 bytes at most) that
// the pointers, strides, head dim and rotary half allow, then launches one thread per
// (token, output head, column unit).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "mix_heads.h"
#include "sm80/mix_heads_fwd_kernel.cuh"

namespace headmix::kernels {
namespace {

constexpr int kThreads = 256;

bool vector_fits(const MixHeadsParams& p, int vec, int elem_bytes) {
  const auto aligned = [&](const void* ptr) {
    return reinterpret_cast<uintptr_t>(ptr) % (uintptr_t(vec) * elem_bytes) == 0;
  };
  return p.head_dim % vec == 0 && p.rotary_half % vec == 0 && p.x_batch_stride % vec == 0 &&
         p.x_token_stride % vec == 0 && p.x_head_stride % vec == 0 && aligned(p.x) && aligned(p.y);
}

template <typename T, int VEC>
cudaError_t launch_with_vec(const MixHeadsParams& p, cudaStream_t stream) {
  const int64_t units = p.rotary_half / VEC + (p.head_dim - 2 * p.rotary_half) / VEC;
  const int64_t threads = p.batch * p.tokens * p.heads_out * units;
  if (threads == 0) return cudaSuccess;
  const int64_t blocks = (threads + kThreads - 1) / kThreads;
  mix_heads_fwd_portable_kernel<T, VEC><<<dim3(unsigned(blocks)), kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_typed(const MixHeadsParams& p, cudaStream_t stream) {
  constexpr int kWidest = 16 / sizeof(T);
  if (vector_fits(p, kWidest, sizeof(T))) return launch_with_vec<T, kWidest>(p, stream);
  if (vector_fits(p, 2, sizeof(T))) return launch_with_vec<T, 2>(p, stream);
  return launch_with_vec<T, 1>(p, stream);
}

}  // namespace

cudaError_t launch_mix_heads_fwd_portable(const MixHeadsParams& p, cudaStream_t stream) {
  switch (p.dtype) {
    case DType::kFloat32: return launch_typed<float>(p, stream);
    case DType::kFloat16: return launch_typed<__half>(p, stream);
    case DType::kBFloat16: return launch_typed<__nv_bfloat16>(p, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace headmix::kernels
