#pragma once
// Portable mix_heads forward: one thread per (token, output head, column unit). A column unit
// is VEC features [c, c+VEC) of the rotary first half together with their partners
// [c + r/2, c + r/2 + VEC) (so RoPE needs no exchange between threads), or VEC pass-through
// features past r. Each thread reduces over the H_in input heads with fp32 FMAs; the threads
// of one token are adjacent, so x is read from DRAM once and re-served from L1/L2, and w
// (a few KB) stays in the read-only cache. Pipeline: none; this is the simple, always-correct
// kernel that the tuned per-arch kernels are measured against.
#include <cstdint>

#include "common/rope.cuh"
#include "common/vec.cuh"
#include "params.h"

namespace headmix::kernels {

template <typename T, int VEC>
__global__ void __launch_bounds__(256) mix_heads_fwd_portable_kernel(const MixHeadsParams p) {
  const int64_t rotary_units = p.rotary_half / VEC;
  const int64_t units = rotary_units + (p.head_dim - 2 * p.rotary_half) / VEC;
  const int64_t thread = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (thread >= p.batch * p.tokens * p.heads_out * units) return;
  const int64_t unit = thread % units;
  const int64_t head = thread / units % p.heads_out;
  const int64_t token = thread / (units * p.heads_out);  // b * N + n
  const int64_t b = token / p.tokens, n = token % p.tokens;
  const bool paired = unit < rotary_units;
  const int64_t col = paired ? unit * VEC : 2 * p.rotary_half + (unit - rotary_units) * VEC;

  const T* x_token = static_cast<const T*>(p.x) + b * p.x_batch_stride + n * p.x_token_stride;
  float first[VEC] = {}, second[VEC] = {};
  for (int64_t m = 0; m < p.heads_in; ++m) {
    const float weight = __ldg(p.w + m * p.heads_out + head);
    const T* x_head = x_token + m * p.x_head_stride;
    float loaded[VEC];
    load_floats<T, VEC>(x_head + col, loaded);
#pragma unroll
    for (int i = 0; i < VEC; ++i) first[i] = fmaf(weight, loaded[i], first[i]);
    if (paired) {
      load_floats<T, VEC>(x_head + col + p.rotary_half, loaded);
#pragma unroll
      for (int i = 0; i < VEC; ++i) second[i] = fmaf(weight, loaded[i], second[i]);
    }
  }
  T* y_row = static_cast<T*>(p.y) + (token * p.heads_out + head) * p.head_dim;
  if (paired) {
    if (p.cos != nullptr) {
      const int64_t pos = p.pos_offset + n * p.pseudo + head / (p.heads_out / p.pseudo);
      rotate_pair<VEC>(first, second, p.cos + pos * p.rotary_half + col,
                       p.sin + pos * p.rotary_half + col);
    }
    store_floats<T, VEC>(y_row + col + p.rotary_half, second);
  }
  store_floats<T, VEC>(y_row + col, first);
}

}  // namespace headmix::kernels
