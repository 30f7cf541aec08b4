#pragma once
// GPT-NeoX rotate-half RoPE on register fragments: a holds features [c, c+VEC) of the first
// half, b the matching features [c + r/2, c + r/2 + VEC) of the second half.
#include <cstdint>

#include "params.h"

namespace headmix::kernels {

// Position of head `head` (of `rotated_heads`) of token n.
__device__ __forceinline__ int64_t rope_position(const RopeParams& rope, int64_t n, int64_t head,
                                                 int64_t rotated_heads) {
  return rope.pos_offset + n * rope.pseudo + head / (rotated_heads / rope.pseudo);
}

// Rotates by the position's angle, or by its negative (the transpose) when INVERSE.
template <bool INVERSE, int VEC>
__device__ __forceinline__ void rotate_pair(float (&a)[VEC], float (&b)[VEC], const RopeParams& rope,
                                            int64_t pos, int64_t col) {
  const float* cos_row = rope.cos + pos * rope.rotary_half + col;
  const float* sin_row = rope.sin + pos * rope.rotary_half + col;
#pragma unroll
  for (int i = 0; i < VEC; ++i) {
    const float c = __ldg(cos_row + i);
    const float s = INVERSE ? -__ldg(sin_row + i) : __ldg(sin_row + i);
    const float rotated_a = a[i] * c - b[i] * s;
    b[i] = b[i] * c + a[i] * s;
    a[i] = rotated_a;
  }
}

}  // namespace headmix::kernels
