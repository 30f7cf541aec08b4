#pragma once
// GPT-NeoX rotate-half RoPE on register fragments: a holds features [c, c+VEC) of the first
// half, b the matching features [c + r/2, c + r/2 + VEC) of the second half.
namespace headmix::kernels {

template <int VEC>
__device__ __forceinline__ void rotate_pair(float (&a)[VEC], float (&b)[VEC], const float* cos_row,
                                            const float* sin_row) {
#pragma unroll
  for (int i = 0; i < VEC; ++i) {
    const float c = __ldg(cos_row + i), s = __ldg(sin_row + i);
    const float rotated_a = a[i] * c - b[i] * s;
    b[i] = b[i] * c + a[i] * s;
    a[i] = rotated_a;
  }
}

}  // namespace headmix::kernels
