// mix_heads forward and backward as blocked GEMMs over tokens.
//
// Forward: y[t] = w^T @ x[t] per token, rotated. A block of tokens is transposed to
// [H_in, tokens * d] in an L2-sized buffer of the accumulate type, one GEMM gives
// [H_out, tokens * d], which is rotated and written out in the [T, H_out, d] layout: one pass
// over x and y, where ATen's matmul broadcast w over every token and RoPE took five
// element-wise passes over y.
//
// Backward: over the T = B*N tokens, dx[t] = w @ g[t] ([H_in, H_out] @ [H_out, d]) and
// dw = sum_t x[t] @ g[t]^T, g the un-rotated grad. Neither is one GEMM on the [T, heads, d]
// layout: the head index sits between the token and the feature index, so a single GEMM needs
// [heads, T*d] copies of all of x and grad (what at::tensordot did: half of the backward was
// copy_, another sixth a zero fill and a sum from matmul's broadcast of w). Here a block of
// tokens is transposed to [heads, tokens * d] in an L2-sized buffer of the accumulate type,
// converted and un-rotated on the way, and both GEMMs read that buffer while it is hot:
// dx_block = w @ g_block and dw += x_block @ g_block^T. Each thread owns a contiguous range of
// blocks and its own dw; the partial dw are summed in a fixed order, so results do not depend
// on scheduling.
#include "cpu/mix_heads_blocked.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>

#include "checks.h"

namespace headmix::cpu {
namespace {

// Elements of the accumulate type per [heads, tokens, d] buffer: 256 KiB of float32.
constexpr int64_t kBlockElements = int64_t{1} << 16;

// A [B, N, heads, d] tensor read token by token; the feature stride is 1.
template <typename scalar_t>
struct TokenRows {
  const scalar_t* data;
  int64_t stride_b, stride_n, stride_h, tokens_per_batch;

  explicit TokenRows(const at::Tensor& t)
      : data(t.const_data_ptr<scalar_t>()), stride_b(t.stride(0)), stride_n(t.stride(1)),
        stride_h(t.stride(2)), tokens_per_batch(t.size(1)) {}

  const scalar_t* row(int64_t token, int64_t head) const {
    const int64_t b = token / tokens_per_batch, n = token % tokens_per_batch;
    return data + b * stride_b + n * stride_n + head * stride_h;
  }
};

// The rotation of output row (n, j) at pos(n, j) = pos_offset + n*pseudo + j/(H_out/pseudo)
// (docs/math.md "mix_heads"); `inverse` rotates by the negative angle, the transpose, for grad.
struct Rope {
  const float* cos;
  const float* sin;
  int64_t half, pseudo, heads_per_pseudo, pos_offset;
  bool inverse;

  template <typename acc_t>
  void apply(acc_t* v, int64_t n, int64_t head) const {
    const int64_t pos = pos_offset + n * pseudo + head / heads_per_pseudo;
    const float* c = cos + pos * half;
    const float* s = sin + pos * half;
    const acc_t sign = inverse ? acc_t(-1) : acc_t(1);
    for (int64_t e = 0; e < half; ++e) {
      const acc_t a = v[e], b = v[e + half], sn = sign * acc_t(s[e]);
      v[e] = a * acc_t(c[e]) - b * sn;
      v[e + half] = b * acc_t(c[e]) + a * sn;
    }
  }
};

// buffer[h, i, :] = rows(first + i, h, :) as acc_t for i < count (rows of `block` tokens apart),
// un-rotated when rope is given.
template <typename scalar_t, typename acc_t>
void to_head_major(const TokenRows<scalar_t>& rows, int64_t first, int64_t count, int64_t heads,
                   int64_t dim, int64_t block, const Rope* rope, acc_t* buffer) {
  for (int64_t i = 0; i < count; ++i) {
    const int64_t n = (first + i) % rows.tokens_per_batch;
    for (int64_t h = 0; h < heads; ++h) {
      const scalar_t* src = rows.row(first + i, h);
      acc_t* dst = buffer + (h * block + i) * dim;
      for (int64_t e = 0; e < dim; ++e) dst[e] = static_cast<acc_t>(src[e]);
      if (rope) rope->apply(dst, n, h);
    }
  }
}

// out[first + i, h, :] = buffer[h, i, :] for i < count, rotated first when rope is given; out
// is a contiguous [T, heads, dim] and the buffer is rotated in place.
template <typename scalar_t, typename acc_t>
void from_head_major(acc_t* buffer, int64_t first, int64_t count, int64_t heads, int64_t dim,
                     int64_t block, int64_t tokens_per_batch, const Rope* rope, scalar_t* out) {
  for (int64_t i = 0; i < count; ++i) {
    for (int64_t h = 0; h < heads; ++h) {
      acc_t* src = buffer + (h * block + i) * dim;
      if (rope) rope->apply(src, (first + i) % tokens_per_batch, h);
      scalar_t* dst = out + ((first + i) * heads + h) * dim;
      for (int64_t e = 0; e < dim; ++e) dst[e] = static_cast<scalar_t>(src[e]);
    }
  }
}

// [heads, count * dim] matrix of a [heads, block, dim] buffer (rows `block * dim` apart).
at::Tensor block_matrix(const at::Tensor& buffer, int64_t count) {
  return buffer.narrow(1, 0, count).flatten(1);
}

// Owns contiguous copies of the tables for the Rope that reads them; get() is null without RoPE.
class RopeTables {
 public:
  RopeTables(const std::optional<at::Tensor>& cos, const std::optional<at::Tensor>& sin,
             int64_t pseudo, int64_t heads_out, int64_t pos_offset, bool inverse) {
    if (!cos) return;
    cos_ = cos->contiguous(), sin_ = sin->contiguous();
    rope_ = Rope{cos_.const_data_ptr<float>(), sin_.const_data_ptr<float>(), cos_.size(1),
                 pseudo, heads_out / pseudo, pos_offset, inverse};
  }
  const Rope* get() const { return cos_.defined() ? &rope_ : nullptr; }

 private:
  at::Tensor cos_, sin_;
  Rope rope_{};
};

// Tokens per block: the larger of the [heads, tokens, d] buffers stays kBlockElements.
int64_t block_tokens(int64_t heads_in, int64_t heads_out, int64_t dim) {
  return std::max<int64_t>(1, kBlockElements / (std::max(heads_in, heads_out) * std::max<int64_t>(dim, 1)));
}

}  // namespace

at::Tensor mix_heads_blocked(const at::Tensor& x, const at::Tensor& w, int64_t pseudo,
                             const std::optional<at::Tensor>& cos, const std::optional<at::Tensor>& sin,
                             int64_t pos_offset) {
  const auto acc = accumulate_type(x.scalar_type());
  const int64_t tokens = x.size(0) * x.size(1), heads_in = x.size(2), heads_out = w.size(1), dim = x.size(3);
  auto y = at::empty({x.size(0), x.size(1), heads_out, dim}, x.options());
  // Detached: the out= GEMM below refuses an input that requires grad.
  const auto w_t = w.detach().to(acc).t().contiguous();  // [H_out, H_in]
  const auto buffer_options = x.options().dtype(acc);
  const RopeTables tables(cos, sin, pseudo, heads_out, pos_offset, /*inverse=*/false);
  const int64_t block = block_tokens(heads_in, heads_out, dim);
  const int64_t num_blocks = (tokens + block - 1) / block;
  if (num_blocks == 0 || dim == 0) return y;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "mix_heads", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const TokenRows<scalar_t> x_rows(x);
    scalar_t* y_data = y.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, num_blocks, 1, [&](int64_t begin, int64_t end) {
      auto x_buffer = at::empty({heads_in, block, dim}, buffer_options);
      auto y_buffer = at::empty({heads_out, block, dim}, buffer_options);
      for (int64_t b = begin; b < end; ++b) {
        const int64_t first = b * block, count = std::min(block, tokens - first);
        to_head_major(x_rows, first, count, heads_in, dim, block, nullptr, x_buffer.mutable_data_ptr<acc_t>());
        auto out = block_matrix(y_buffer, count);
        at::mm_out(out, w_t, block_matrix(x_buffer, count));  // [H_out, H_in] @ [H_in, count*d]
        from_head_major(y_buffer.mutable_data_ptr<acc_t>(), first, count, heads_out, dim, block, x.size(1),
                        tables.get(), y_data);
      }
    });
  });
  return y;
}

std::tuple<std::optional<at::Tensor>, std::optional<at::Tensor>> mix_heads_backward_blocked(
    const at::Tensor& grad_in, const at::Tensor& x, const at::Tensor& w, int64_t pseudo,
    const std::optional<at::Tensor>& cos, const std::optional<at::Tensor>& sin,
    int64_t pos_offset, bool need_dx, bool need_dw) {
  const auto acc = accumulate_type(x.scalar_type());
  // The block loops read features with unit stride; a broadcast grad (stride 0) is rare.
  const auto grad = grad_in.scalar_type() == x.scalar_type() && grad_in.stride(3) == 1
                        ? grad_in
                        : grad_in.to(x.scalar_type()).contiguous();
  const int64_t batch = x.size(0), tokens = batch * x.size(1), heads_in = x.size(2),
                heads_out = w.size(1), dim = x.size(3);
  // Detached: the out= GEMMs below refuse an input that requires grad (double backward calls
  // this op with grad mode on).
  const auto w_acc = w.detach().to(acc).contiguous();
  const auto buffer_options = x.options().dtype(acc);

  std::optional<at::Tensor> dx, dw;
  if (need_dx) dx = at::empty(x.sizes(), x.options());  // contiguous: every element is written
  const int64_t block = block_tokens(heads_in, heads_out, dim);
  const int64_t num_blocks = (tokens + block - 1) / block;
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), num_blocks));
  auto dw_parts = at::zeros({parts, heads_in, heads_out}, buffer_options);

  const RopeTables tables(cos, sin, pseudo, heads_out, pos_offset, /*inverse=*/true);
  const Rope* rope_or_null = tables.get();

  if (num_blocks > 0 && dim > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "mix_heads_backward", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const TokenRows<scalar_t> g_rows(grad), x_rows(x);
      scalar_t* dx_data = need_dx ? dx->mutable_data_ptr<scalar_t>() : nullptr;
      at::parallel_for(0, parts, 1, [&](int64_t part_begin, int64_t part_end) {
        auto g_buffer = at::empty({heads_out, block, dim}, buffer_options);
        auto x_buffer = need_dw ? at::empty({heads_in, block, dim}, buffer_options) : at::Tensor();
        auto dx_buffer = need_dx ? at::empty({heads_in, block, dim}, buffer_options) : at::Tensor();
        for (int64_t part = part_begin; part < part_end; ++part) {
          auto dw_part = dw_parts[part];
          for (int64_t b = part * num_blocks / parts; b < (part + 1) * num_blocks / parts; ++b) {
            const int64_t first = b * block, count = std::min(block, tokens - first);
            to_head_major(g_rows, first, count, heads_out, dim, block, rope_or_null,
                          g_buffer.mutable_data_ptr<acc_t>());
            const auto g = block_matrix(g_buffer, count);  // [H_out, count*d]
            if (need_dx) {
              auto out = block_matrix(dx_buffer, count);
              at::mm_out(out, w_acc, g);  // [H_in, H_out] @ [H_out, count*d]
              from_head_major(dx_buffer.mutable_data_ptr<acc_t>(), first, count, heads_in, dim,
                              block, x.size(1), nullptr, dx_data);
            }
            if (need_dw) {
              to_head_major(x_rows, first, count, heads_in, dim, block, nullptr,
                            x_buffer.mutable_data_ptr<acc_t>());
              dw_part.addmm_(block_matrix(x_buffer, count), g.t());  // [H_in, count*d] @ [count*d, H_out]
            }
          }
        }
      });
    });
  } else if (need_dx) {
    dx->zero_();
  }
  if (need_dw) dw = dw_parts.sum(0).to(w.scalar_type());
  return {dx, dw};
}

}  // namespace headmix::cpu
