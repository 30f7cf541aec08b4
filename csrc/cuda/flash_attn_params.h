#pragma once
// Flash-attention Params from checked tensors: the operands as the kernels read them, the
// outputs and workspaces, and the Params structs. ATen only, no CUDA call, so the CPU emulator
// (tests/emulated) launches the kernels with the binding's own code.
#include <ATen/ATen.h>

#include <cmath>
#include <optional>

#include "attention_scale.h"
#include "checks.h"
#include "cuda/kernel_dtype.h"
#include "kernels/params.h"

namespace headmix::cuda {

// What both kernel families (portable and Hopper) cover: bf16/fp16, d = d_v in {64, 128}, grid
// and int32 limits.
inline void check_kernel_coverage(const AttnDims& dims, const at::Tensor& q, const at::Tensor& v,
                                  const char* op) {
  TORCH_CHECK(q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf, "headmix.", op,
              " on CUDA takes bfloat16 or float16 q/k/v, got ", dtype_name(q.scalar_type()));
  TORCH_CHECK(dims.head_dim == 64 || dims.head_dim == 128,
              "q must be [B, S_q, H, d] with d in {64, 128} on CUDA, got ", q.sizes());
  TORCH_CHECK(dims.head_dim_v == dims.head_dim, "v must be [B, S_k, H_kv, d_v] with d_v = d = ", dims.head_dim,
              " on CUDA, got ", v.sizes());
  // Grid dimensions and the kernels' 32-bit row indices.
  TORCH_CHECK(dims.heads <= 65535 && dims.batch <= 65535, "headmix.", op,
              " on CUDA takes at most 65535 heads and batches, got H = ", dims.heads, ", B = ", dims.batch);
  constexpr int64_t kMaxRows = int64_t(1) << 28;  // band arithmetic stays inside int32
  TORCH_CHECK(dims.seqlen_q <= kMaxRows && dims.seqlen_k <= kMaxRows, "headmix.", op,
              " on CUDA takes sequences of at most ", kMaxRows, " rows, got S_q = ", dims.seqlen_q,
              ", S_k = ", dims.seqlen_k);
}

// The kernels move 16-byte vectors of `dtype` along a contiguous last dim: the base pointer
// and every stride of a dim that is actually stepped must be 16-byte aligned, otherwise the
// tensor is copied (contiguous). A stepped dim with stride 0 (an expand()ed tensor) is copied
// too: a TMA descriptor cannot express it.
inline at::Tensor aligned_operand(const at::Tensor& t, at::ScalarType dtype) {
  if (t.scalar_type() != dtype) return t.to(dtype).contiguous();
  const int64_t vec = 16 / t.element_size();
  bool aligned = reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0 && t.stride(3) == 1;
  for (int64_t d = 0; d < 3; ++d) {
    aligned = aligned && (t.size(d) <= 1 || (t.stride(d) != 0 && t.stride(d) % vec == 0));
  }
  return aligned ? t : t.clone(at::MemoryFormat::Contiguous);
}

inline kernels::FlashAttnParams attn_params(const AttnDims& dims, const at::Tensor& q, const at::Tensor& k,
                                            const at::Tensor& v, std::optional<double> scale, bool causal,
                                            int64_t window_left, int64_t window_right) {
  kernels::FlashAttnParams p{};
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.dtype = kernel_dtype(q.scalar_type());
  p.batch = dims.batch;
  p.seqlen_q = dims.seqlen_q;
  p.seqlen_k = dims.seqlen_k;
  p.heads = dims.heads;
  p.kv_heads = dims.kv_heads;
  p.head_dim = dims.head_dim;
  p.q_batch_stride = q.stride(0);
  p.q_row_stride = q.stride(1);
  p.q_head_stride = q.stride(2);
  p.k_batch_stride = k.stride(0);
  p.k_row_stride = k.stride(1);
  p.k_head_stride = k.stride(2);
  p.v_batch_stride = v.stride(0);
  p.v_row_stride = v.stride(1);
  p.v_head_stride = v.stride(2);
  p.scale = float(attention_scale(scale, dims.head_dim));
  // Windows wider than both sequences are unbounded; this keeps the kernels' ints small.
  const int64_t span = dims.seqlen_q + dims.seqlen_k;
  p.window_left = window_left > span ? -1 : window_left;
  p.window_right = causal ? 0 : (window_right > span ? -1 : window_right);
  return p;
}

// The forward's operands and outputs, alive until the launch is queued.
struct FlashFwdCall {
  at::Tensor q, k, v, out, lse;
  kernels::FlashAttnFwdParams params{};

  FlashFwdCall(const AttnDims& dims, const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
               std::optional<double> scale, bool causal, int64_t window_left, int64_t window_right) {
    const auto dtype = q_in.scalar_type();
    q = aligned_operand(q_in, dtype);
    k = aligned_operand(k_in, dtype);
    v = aligned_operand(v_in, dtype);
    out = at::empty({dims.batch, dims.seqlen_q, dims.heads, dims.head_dim}, q.options());
    lse = at::empty({dims.batch, dims.heads, dims.seqlen_q}, q.options().dtype(at::kFloat));
    params.attn = attn_params(dims, q, k, v, scale, causal, window_left, window_right);
    params.out = out.data_ptr();
    params.lse = lse.data_ptr<float>();
  }
};

// The backward's operands, workspaces and outputs. dq accumulates in fp32 with atomics unless
// `deterministic`, which runs a separate, bitwise-reproducible dq pass over the key tiles.
struct FlashBwdCall {
  at::Tensor q, k, v, out, dout, lse, dlse, row_dot, dq_accum, dq, dk, dv;
  kernels::FlashAttnBwdParams params{};

  FlashBwdCall(const AttnDims& dims, const at::Tensor& dout_in, const at::Tensor& q_in, const at::Tensor& k_in,
               const at::Tensor& v_in, const at::Tensor& out_in, const at::Tensor& lse_in,
               const std::optional<at::Tensor>& dlse_in, std::optional<double> scale, bool causal,
               int64_t window_left, int64_t window_right, bool deterministic) {
    const auto dtype = q_in.scalar_type();
    q = aligned_operand(q_in, dtype);
    k = aligned_operand(k_in, dtype);
    v = aligned_operand(v_in, dtype);
    out = aligned_operand(out_in, dtype);
    dout = aligned_operand(dout_in, dtype);
    lse = lse_in.to(at::kFloat).contiguous();
    if (dlse_in) dlse = dlse_in->to(at::kFloat).contiguous();
    const auto f32 = q.options().dtype(at::kFloat);
    row_dot = at::empty({dims.batch, dims.heads, dims.seqlen_q}, f32);
    if (!deterministic) dq_accum = at::zeros({dims.batch, dims.seqlen_q, dims.heads, dims.head_dim}, f32);
    dq = at::empty({dims.batch, dims.seqlen_q, dims.heads, dims.head_dim}, q.options());
    dk = at::empty({dims.batch, dims.seqlen_k, dims.kv_heads, dims.head_dim}, q.options());
    dv = at::empty({dims.batch, dims.seqlen_k, dims.kv_heads, dims.head_dim}, q.options());
    kernels::FlashAttnBwdParams& p = params;
    p.attn = attn_params(dims, q, k, v, scale, causal, window_left, window_right);
    p.out = out.data_ptr();
    p.dout = dout.data_ptr();
    p.lse = lse.data_ptr<float>();
    p.dlse = dlse.defined() ? dlse.data_ptr<float>() : nullptr;
    p.row_dot = row_dot.data_ptr<float>();
    p.dq_accum = deterministic ? nullptr : dq_accum.data_ptr<float>();
    p.dq = dq.data_ptr();
    p.dk = dk.data_ptr();
    p.dv = dv.data_ptr();
    p.out_batch_stride = out.stride(0);
    p.out_row_stride = out.stride(1);
    p.out_head_stride = out.stride(2);
    p.dout_batch_stride = dout.stride(0);
    p.dout_row_stride = dout.stride(1);
    p.dout_head_stride = dout.stride(2);
  }
};

}  // namespace headmix::cuda
