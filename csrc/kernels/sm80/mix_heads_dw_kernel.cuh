#pragma once
// Portable weight gradient of mix_heads: dw[i, o] = sum over tokens and d of
// x[t, i, :] . unrotate(grad[t, o, :]), a GEMM whose reduction (tokens x d) is long and whose
// output (H_in x H_out) is small. Split-K, deterministic: stage 1 gives each CTA a chunk of
// tokens and a 16 x 16 tile of (input head, output head) pairs, one pair per thread; per token
// the CTA stages the 16 x rows and the 16 un-rotated grad rows in shared memory (rows padded by
// one float so the 16 grad rows read by a warp fall in different banks) and every thread adds
// its d-long dot product. Stage 2 sums the chunks' partials in a fixed order.
#include <cstdint>

#include "common/vec.cuh"
#include "params.h"

namespace headmix::kernels {

constexpr int kDwTile = 16;  // input heads x output heads per CTA: 256 threads

template <typename T>
__global__ void __launch_bounds__(kDwTile * kDwTile) mix_heads_dw_partial_kernel(const MixHeadsWeightGradParams p) {
  extern __shared__ float staged[];  // x rows then grad rows, each kDwTile x (d + 1)
  const int64_t row = p.head_dim + 1;
  float* x_rows = staged;
  float* grad_rows = staged + kDwTile * row;
  const int64_t in0 = int64_t(blockIdx.y) * kDwTile, out0 = int64_t(blockIdx.z) * kDwTile;
  const int ti = threadIdx.x / kDwTile, to = threadIdx.x % kDwTile;
  const int64_t total = p.batch * p.tokens;
  const int64_t per_chunk = (total + p.chunks - 1) / p.chunks;
  const int64_t t_begin = blockIdx.x * per_chunk, t_end = min(total, t_begin + per_chunk);
  const int64_t half = p.rope.rotary_half;
  const T* x = static_cast<const T*>(p.x);
  const T* grad = static_cast<const T*>(p.grad);

  float acc = 0.f;
  for (int64_t t = t_begin; t < t_end; ++t) {
    const int64_t b = t / p.tokens, n = t % p.tokens;
    for (int64_t idx = threadIdx.x; idx < kDwTile * p.head_dim; idx += blockDim.x) {
      const int64_t r = idx / p.head_dim, e = idx % p.head_dim;
      const int64_t in = in0 + r, out = out0 + r;
      x_rows[r * row + e] = in < p.heads_in
          ? to_float(x[b * p.x_batch_stride + n * p.x_token_stride + in * p.x_head_stride + e]) : 0.f;
      if (half > 0 && e >= half && e < 2 * half) continue;  // written with its first-half partner
      const T* g = grad + b * p.grad_batch_stride + n * p.grad_token_stride + out * p.grad_head_stride;
      if (out >= p.heads_out) {
        grad_rows[r * row + e] = 0.f;
        if (e < half) grad_rows[r * row + e + half] = 0.f;
      } else if (e < half) {
        // Undo the forward rotation (rotate by the negative angle).
        const int64_t pos = p.rope.pos_offset + n * p.rope.pseudo + out / (p.heads_out / p.rope.pseudo);
        const float c = __ldg(p.rope.cos + pos * half + e), s = __ldg(p.rope.sin + pos * half + e);
        const float a = to_float(g[e]), bb = to_float(g[e + half]);
        grad_rows[r * row + e] = a * c + bb * s;
        grad_rows[r * row + e + half] = bb * c - a * s;
      } else {
        grad_rows[r * row + e] = to_float(g[e]);
      }
    }
    __syncthreads();
    for (int64_t e = 0; e < p.head_dim; ++e) acc = fmaf(x_rows[ti * row + e], grad_rows[to * row + e], acc);
    __syncthreads();
  }
  const int64_t in = in0 + ti, out = out0 + to;
  if (in < p.heads_in && out < p.heads_out) {
    p.partial[(blockIdx.x * p.heads_in + in) * p.heads_out + out] = acc;
  }
}

// Stage 2: dw[i, o] = sum over chunks, in chunk order (bitwise reproducible).
__global__ void __launch_bounds__(256) mix_heads_dw_reduce_kernel(const MixHeadsWeightGradParams p) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t size = p.heads_in * p.heads_out;
  if (idx >= size) return;
  float sum = 0.f;
  for (int64_t c = 0; c < p.chunks; ++c) sum += p.partial[c * size + idx];
  p.dw[idx] = sum;
}

}  // namespace headmix::kernels
