// A per-token head mix is one GEMM batched over tokens with a shared w, so ATen's matmul does
// the work in the accumulate dtype; RoPE is applied to the mixed result (mixing and RoPE commute
// because all heads of a token share a position).
#include "aten/mix_heads.h"

#include "aten/rope.h"
#include "checks.h"

namespace headmix::aten {
namespace {

// Rotates y [B, N, H_out, d] at pos(n, j) = pos_offset + n*pseudo + j / (H_out/pseudo).
void rotate_mixed_(at::Tensor& y, int64_t pseudo, const at::Tensor& cos, const at::Tensor& sin,
                   int64_t pos_offset, bool inverse) {
  const int64_t tokens = y.size(1), heads_per_pseudo = y.size(2) / pseudo;
  const auto positions = at::arange(pos_offset, pos_offset + tokens * pseudo,
                                    y.options().dtype(at::kLong));
  auto [c, s] = gather_rope_rows(cos, sin, positions, y.scalar_type());
  c = c.view({tokens, pseudo, 1, c.size(-1)});
  s = s.view({tokens, pseudo, 1, s.size(-1)});
  auto grouped = y.view({y.size(0), tokens, pseudo, heads_per_pseudo, y.size(3)});
  rotate_half_(grouped, c, s, inverse);
}

}  // namespace

at::Tensor mix_heads(const at::Tensor& x, const at::Tensor& w, int64_t pseudo,
                     const std::optional<at::Tensor>& cos, const std::optional<at::Tensor>& sin,
                     int64_t pos_offset) {
  const auto acc = accumulate_type(x.scalar_type());
  // [H_out, H_in] @ [B, N, H_in, d] -> [B, N, H_out, d]
  auto y = at::matmul(w.to(acc).t(), x.to(acc)).contiguous();
  if (cos) rotate_mixed_(y, pseudo, *cos, *sin, pos_offset, /*inverse=*/false);
  return y.to(x.scalar_type());
}

std::tuple<std::optional<at::Tensor>, std::optional<at::Tensor>> mix_heads_backward(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& w, int64_t pseudo,
    const std::optional<at::Tensor>& cos, const std::optional<at::Tensor>& sin,
    int64_t pos_offset, bool need_dx, bool need_dw) {
  const auto acc = accumulate_type(x.scalar_type());
  // Un-rotating needs a private contiguous copy; without RoPE the gradient is read as it is.
  auto g = cos ? owned_copy(grad, acc) : grad.to(acc);
  if (cos) rotate_mixed_(g, pseudo, *cos, *sin, pos_offset, /*inverse=*/true);
  std::optional<at::Tensor> dx, dw;
  if (need_dx) dx = at::matmul(w.to(acc), g).to(x.scalar_type());  // [H_in, H_out] @ g
  if (need_dw) {
    // dw[m, j] = sum over b, n, d of x[b, n, m, d] * g[b, n, j, d]
    dw = at::tensordot(x.to(acc), g, {0, 1, 3}, {0, 1, 3}).to(w.scalar_type());
  }
  return {dx, dw};
}

}  // namespace headmix::aten
