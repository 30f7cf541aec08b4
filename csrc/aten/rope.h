#pragma once
// GPT-NeoX "rotate-half" RoPE with ATen ops (any device), shared by mix_heads and
// kv_cache_append.
#include <ATen/ATen.h>

namespace headmix::aten {

// cos/sin rows for the given positions, as `dtype`: [positions.numel(), r/2].
inline std::pair<at::Tensor, at::Tensor> gather_rope_rows(const at::Tensor& cos,
                                                          const at::Tensor& sin,
                                                          const at::Tensor& positions,
                                                          at::ScalarType dtype) {
  return {cos.index_select(0, positions).to(dtype), sin.index_select(0, positions).to(dtype)};
}

// A private contiguous copy of t in `dtype`, safe to rotate in place.
inline at::Tensor owned_copy(const at::Tensor& t, at::ScalarType dtype) {
  auto copy = at::empty(t.sizes(), t.options().dtype(dtype));
  copy.copy_(t);
  return copy;
}

// Rotates y[..., :r] in place, r = 2 * cos_rows.size(-1); cos_rows/sin_rows broadcast against
// y[..., :r/2]. `inverse` rotates by the negative angle: the transpose, used by backward.
inline void rotate_half_(at::Tensor& y, const at::Tensor& cos_rows, const at::Tensor& sin_rows,
                         bool inverse) {
  const int64_t half = cos_rows.size(-1);
  if (half == 0) return;
  auto a = y.narrow(-1, 0, half);
  auto b = y.narrow(-1, half, half);
  const auto s = inverse ? -sin_rows : sin_rows;
  auto rotated_a = a * cos_rows - b * s;
  b.copy_(b * cos_rows + a * s);
  a.copy_(rotated_a);
}

}  // namespace headmix::aten
