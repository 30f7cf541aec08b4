#pragma once
// Portable head mix, y[b,n,o] = sum_i weight(i, o) * x[b,n,i], with RoPE on the outputs
// (forward) or inverse RoPE on the inputs (dx of the backward: the mix by w transposed of the
// un-rotated gradient). One thread per (token, output head, column unit); a column unit is VEC
// features [c, c+VEC) of the rotary first half together with their partners
// [c + r/2, c + r/2 + VEC) (so RoPE needs no exchange between threads), or VEC pass-through
// features past r. Each thread reduces over the input heads with fp32 FMAs; the threads of one
// token are adjacent, so x is read from DRAM once and re-served from L1/L2, and w (a few KB)
// stays in the read-only cache. No shared memory, no pipeline: the simple, always-correct
// kernel that tuned per-arch kernels are measured against.
#include <cstdint>

#include "common/rope.cuh"
#include "common/vec.cuh"
#include "params.h"

namespace headmix::kernels {

template <typename T, int VEC, bool ROTATE_INPUTS>
__global__ void __launch_bounds__(256) mix_heads_portable_kernel(const MixHeadsParams p) {
  const int64_t rotary_units = p.rope.rotary_half / VEC;
  const int64_t units = rotary_units + (p.head_dim - 2 * p.rope.rotary_half) / VEC;
  const int64_t thread = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (thread >= p.batch * p.tokens * p.heads_out * units) return;
  const int64_t unit = thread % units;
  const int64_t head = thread / units % p.heads_out;
  const int64_t token = thread / (units * p.heads_out);  // b * N + n
  const int64_t b = token / p.tokens, n = token % p.tokens;
  const bool paired = unit < rotary_units;
  const bool rotated = paired && p.rope.cos != nullptr;
  const int64_t half = p.rope.rotary_half;
  const int64_t col = paired ? unit * VEC : 2 * half + (unit - rotary_units) * VEC;

  const T* x_token = static_cast<const T*>(p.x) + b * p.x_batch_stride + n * p.x_token_stride;
  float first[VEC] = {}, second[VEC] = {};
  for (int64_t i = 0; i < p.heads_in; ++i) {
    const float weight = __ldg(p.w + i * p.w_in_stride + head * p.w_out_stride);
    const T* x_head = x_token + i * p.x_head_stride;
    float a[VEC], c[VEC];
    load_floats<T, VEC>(x_head + col, a);
    if (paired) load_floats<T, VEC>(x_head + col + half, c);
    if (ROTATE_INPUTS && rotated) {
      rotate_pair<true, VEC>(a, c, p.rope, rope_position(p.rope, n, i, p.heads_in), col);
    }
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      first[k] = fmaf(weight, a[k], first[k]);
      if (paired) second[k] = fmaf(weight, c[k], second[k]);
    }
  }
  if (!ROTATE_INPUTS && rotated) {
    rotate_pair<false, VEC>(first, second, p.rope, rope_position(p.rope, n, head, p.heads_out), col);
  }
  T* y_row = static_cast<T*>(p.y) + (token * p.heads_out + head) * p.head_dim;
  store_floats<T, VEC>(y_row + col, first);
  if (paired) store_floats<T, VEC>(y_row + col + half, second);
}

}  // namespace headmix::kernels
