#pragma once
// mix_heads Params from checked tensors (ATen only, no CUDA call, so the CPU emulator of
// tests/emulated launches the kernels with the binding's own code).
#include <ATen/ATen.h>

#include <optional>

#include "cuda/kernel_dtype.h"
#include "kernels/params.h"

namespace headmix::cuda {

// Holds the fp32 contiguous tables the kernels read, alive until the launch is queued.
struct RopeTables {
  at::Tensor cos, sin;
  kernels::RopeParams params{};
  RopeTables(const std::optional<at::Tensor>& c, const std::optional<at::Tensor>& s, int64_t pseudo,
             int64_t pos_offset) {
    params.pseudo = pseudo;
    params.pos_offset = pos_offset;
    if (!c) return;
    cos = c->contiguous();
    sin = s->contiguous();
    params.cos = cos.data_ptr<float>();
    params.sin = sin.data_ptr<float>();
    params.rotary_half = cos.size(1);
  }
};

// The mix of x ([B, N, H_in, d]) into y ([B, N, heads_out, d]) by w32 (fp32) with the given
// strides: weight(i, o) = w32[i * w_in_stride + o * w_out_stride].
inline kernels::MixHeadsParams mix_heads_params(const at::Tensor& x, const at::Tensor& w32, const at::Tensor& y,
                                                int64_t w_in_stride, int64_t w_out_stride, const RopeTables& rope,
                                                bool rotate_inputs) {
  kernels::MixHeadsParams p{};
  p.x = x.data_ptr();
  p.w = w32.data_ptr<float>();
  p.y = y.data_ptr();
  p.dtype = kernel_dtype(x.scalar_type());
  p.batch = x.size(0);
  p.tokens = x.size(1);
  p.heads_in = x.size(2);
  p.heads_out = y.size(2);
  p.head_dim = x.size(3);
  p.x_batch_stride = x.stride(0);
  p.x_token_stride = x.stride(1);
  p.x_head_stride = x.stride(2);
  p.w_in_stride = w_in_stride;
  p.w_out_stride = w_out_stride;
  p.rope = rope.params;
  p.rotate_inputs = rotate_inputs;
  return p;
}

// The output gradient as the backward kernels read it: x's element type, contiguous last dim
// (autograd may hand over any strides, e.g. those of an einsum's output).
inline at::Tensor kernel_grad(const at::Tensor& grad, const at::Tensor& x) {
  return grad.scalar_type() == x.scalar_type() && grad.stride(-1) == 1 ? grad
                                                                       : grad.to(x.scalar_type()).contiguous();
}

// dw ([H_in, heads_out] fp32) of the mix of x, from its output gradient `grad` (x's element
// type, contiguous last dim), in `partial.size(0)` token chunks.
inline kernels::MixHeadsWeightGradParams mix_heads_dw_params(const at::Tensor& grad, const at::Tensor& x,
                                                             const at::Tensor& partial, const at::Tensor& dw,
                                                             const RopeTables& rope) {
  kernels::MixHeadsWeightGradParams p{};
  p.x = x.data_ptr();
  p.grad = grad.data_ptr();
  p.partial = partial.data_ptr<float>();
  p.dw = dw.data_ptr<float>();
  p.dtype = kernel_dtype(x.scalar_type());
  p.batch = x.size(0);
  p.tokens = x.size(1);
  p.heads_in = x.size(2);
  p.heads_out = dw.size(1);
  p.head_dim = x.size(3);
  p.x_batch_stride = x.stride(0);
  p.x_token_stride = x.stride(1);
  p.x_head_stride = x.stride(2);
  p.grad_batch_stride = grad.stride(0);
  p.grad_token_stride = grad.stride(1);
  p.grad_head_stride = grad.stride(2);
  p.chunks = partial.size(0);
  p.rope = rope.params;
  return p;
}

}  // namespace headmix::cuda
