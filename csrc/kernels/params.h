#pragma once
// Plain parameter structs passed from the torch bindings (csrc/cuda) to the torch-free
// launchers. Strides are in elements, int64; every pointer's layout is named beside it.
#include <cstdint>

namespace headmix::kernels {

enum class DType : int { kFloat32, kFloat16, kBFloat16 };

// RoPE of a mix_heads call: head h of the rotated side (H_rot heads) of token n sits at
// position pos_offset + n*pseudo + h / (H_rot/pseudo); features [0, r/2) pair with [r/2, r).
struct RopeParams {
  const float* cos;     // max_pos x rotary_half, fp32, contiguous; nullptr = no RoPE
  const float* sin;     // max_pos x rotary_half, fp32, contiguous
  int64_t rotary_half;  // r/2; 0 = no RoPE
  int64_t pseudo;       // P
  int64_t pos_offset;   // position of token 0's first pseudo-token
};

// One head mix y[b,n,o] = sum_i weight(i, o) * x[b,n,i]. The forward rotates the outputs;
// the input gradient (dx) is the same mix with w transposed, un-rotating its inputs.
struct MixHeadsParams {
  const void* x;      // B x N x H_in x d, element type `dtype`, last dim contiguous
  const float* w;     // weight(i, o) = w[i * w_in_stride + o * w_out_stride], fp32
  void* y;            // B x N x H_out x d, element type `dtype`, contiguous
  DType dtype;
  int64_t batch;       // B
  int64_t tokens;      // N
  int64_t heads_in;    // H_in of this mix
  int64_t heads_out;   // H_out of this mix
  int64_t head_dim;    // d
  int64_t x_batch_stride, x_token_stride, x_head_stride;  // elements
  int64_t w_in_stride, w_out_stride;                      // elements
  RopeParams rope;
  bool rotate_inputs;  // false: rotate outputs (forward); true: un-rotate inputs (dx)
};

// dw[i, o] = sum over b, n, d of x[b,n,i,d] * unrotated grad[b,n,o,d], in two deterministic
// stages: per-chunk partial sums into `partial`, then a fixed-order sum over chunks.
struct MixHeadsWeightGradParams {
  const void* x;      // B x N x H_in x d, element type `dtype`, last dim contiguous
  const void* grad;   // B x N x H_out x d, element type `dtype`, last dim contiguous
  float* partial;     // chunks x H_in x H_out, fp32 workspace
  float* dw;          // H_in x H_out, fp32, contiguous
  DType dtype;
  int64_t batch, tokens, heads_in, heads_out, head_dim;
  int64_t x_batch_stride, x_token_stride, x_head_stride;           // elements
  int64_t grad_batch_stride, grad_token_stride, grad_head_stride;  // elements
  int64_t chunks;       // token chunks (grid dimension of stage 1)
  RopeParams rope;      // rotation of the forward outputs, undone on grad
};

// ---- flash attention ----

// Operands, sizes and mask shared by the attention forward and backward. Query row i sits at
// key position i + S_k - S_q (bottom-right aligned) and sees key j iff
// i + S_k - S_q - window_left <= j <= i + S_k - S_q + window_right (-1 = unbounded side).
// Query head h reads kv head h / (H / H_kv). Operand pointers and strides are 16-byte aligned.
struct FlashAttnParams {
  const void* q;  // B x S_q x H x d, element type `dtype`, last dim contiguous
  const void* k;  // B x S_k x H_kv x d, element type `dtype`, last dim contiguous
  const void* v;  // B x S_k x H_kv x d, element type `dtype`, last dim contiguous
  DType dtype;
  int64_t batch;     // B
  int64_t seqlen_q;  // S_q
  int64_t seqlen_k;  // S_k
  int64_t heads;     // H
  int64_t kv_heads;  // H_kv
  int64_t head_dim;  // d (= d_v)
  int64_t q_batch_stride, q_row_stride, q_head_stride;  // elements
  int64_t k_batch_stride, k_row_stride, k_head_stride;  // elements
  int64_t v_batch_stride, v_row_stride, v_head_stride;  // elements
  float scale;           // softmax scale on q.k
  int64_t window_left;   // keys allowed before the aligned position; -1 = unbounded
  int64_t window_right;  // keys allowed after it; -1 = unbounded, 0 = causal
};

struct FlashAttnFwdParams {
  FlashAttnParams attn;
  void* out;   // B x S_q x H x d, element type `dtype`, contiguous
  float* lse;  // B x H x S_q, fp32, contiguous; natural log, -inf for rows without keys
};

// dq, dk, dv of flash attention. dk/dv of a kv head sum over its GQA group inside one CTA
// (deterministic); dq is either accumulated with fp32 atomics into dq_accum (one pass) or,
// when dq_accum is null, computed by a separate deterministic pass over key blocks.
struct FlashAttnBwdParams {
  FlashAttnParams attn;
  const void* out;    // B x S_q x H x d, element type `dtype`, last dim contiguous
  const void* dout;   // B x S_q x H x d, element type `dtype`, last dim contiguous
  const float* lse;   // B x H x S_q, fp32, contiguous
  const float* dlse;  // B x H x S_q, fp32, contiguous; nullptr = no gradient reaches lse
  float* row_dot;     // B x H x S_q, fp32 workspace: D = rowsum(dout * out) - dlse
  float* dq_accum;    // B x S_q x H x d, fp32 workspace, zeroed; nullptr = deterministic dq pass
  void* dq;           // B x S_q x H x d, element type `dtype`, contiguous
  void* dk;           // B x S_k x H_kv x d, element type `dtype`, contiguous
  void* dv;           // B x S_k x H_kv x d, element type `dtype`, contiguous
  int64_t out_batch_stride, out_row_stride, out_head_stride;    // elements
  int64_t dout_batch_stride, dout_row_stride, dout_head_stride;  // elements
};

// ---- KV-cache decode and append ----

}  // namespace headmix::kernels
