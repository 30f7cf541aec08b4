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

// Where cache row t of sequence b lives. Contiguous caches (block_table == nullptr): row
// b * batch_stride + t * row_stride. Paged: page block_table[b * table_stride + t / block_size],
// row page * batch_stride + (t % block_size) * row_stride. Strides in elements; head j of a
// row is j * head_stride further.
struct CacheLayout {
  const int* block_table;  // B x max_blocks, int32, row stride table_stride; nullptr = contiguous
  int64_t table_stride;    // elements between block_table rows
  int64_t block_size;      // rows per page (T_max for a contiguous cache)
  int64_t num_blocks;      // pages in the cache (B for a contiguous cache)
  int64_t capacity;        // rows a sequence may hold: max_blocks * block_size, or T_max
};

// Decode of q against a cache of H' heads (docs/math.md "Virtual-head decode"). The kernel reads
// `latent_heads` cache heads per row (H' with w_k/w_v: all query heads share them; 1 without:
// kv head g serves its GQA group) and treats the `heads / latent_groups` query heads of a
// latent times S_q query steps as the rows of one GEMM, row r = s * (heads / latent_groups) + h.
struct VheadDecodeParams {
  const void* q;          // B x S_q x H x d, element type `dtype`, last dim contiguous
  const void* k_cache;    // B x T_max x H' x d or num_blocks x block_size x H' x d, `dtype`
  const void* v_cache;    // like k_cache, same strides
  const int* cache_seqlens;  // B, int32, element stride seqlens_stride; rows >= it are never read
  const void* w_k;        // H' x H_kv, element type `dtype` (or fp32 if w_fp32), row-major; nullptr = none
  const void* w_v;        // H' x H_kv, like w_k
  void* out;              // B x S_q x H x d, element type `dtype`, contiguous
  float* lse;             // B x H x S_q, fp32, contiguous; natural log, -inf for rows without keys
  // The launcher sets partial_out, partial_lse and the last three fields from its plan.
  float* partial_out;     // num_splits x B x H x S_q x d, fp32 workspace (num_splits > 1)
  float* partial_lse;     // num_splits x B x H x S_q, fp32 workspace (num_splits > 1)
  DType dtype;
  bool w_fp32;            // w_k/w_v are fp32 rather than `dtype`
  int64_t batch;          // B
  int64_t seqlen_q;       // S_q
  int64_t heads;          // H
  int64_t kv_heads;       // H_kv (= H' without w_k/w_v)
  int64_t cache_heads;    // H'
  int64_t head_dim;       // d (= d_v)
  int64_t latent_groups;  // grid latents: H_kv without w_k/w_v, 1 with them
  int64_t latent_heads;   // cache heads per latent: 1 without w_k/w_v, H' with them
  int64_t q_batch_stride, q_row_stride, q_head_stride;  // elements
  int64_t cache_batch_stride;  // elements between sequences (contiguous) or pages (paged)
  int64_t cache_row_stride;    // elements between rows
  int64_t cache_head_stride;   // elements between heads of a row
  int64_t seqlens_stride;      // elements between cache_seqlens entries
  CacheLayout layout;
  float scale;            // softmax scale on q.k
  bool causal;            // bottom-right aligned: row s sees keys t <= s + L_b - S_q
  int64_t window_left;    // keys allowed before the aligned position; -1 = unbounded
  int rows_per_cta;       // 16 or 32 query rows per CTA (1 or 2 MMA row tiles)
  int row_tiles;          // CTAs along the rows of one latent
  int num_splits;         // key-range splits per sequence; 1 writes out/lse directly
};

// Writes S_new new rows per sequence at cache rows cache_seqlens[b] + s; keys are rotated
// (GPT-NeoX rotate-half over the first 2 * rope.rotary_half features) at position
// (pos ? pos[b] : cache_seqlens[b]) + s. Rows that fall outside the cache, on a page id out of
// range or past the RoPE table are skipped (the bindings reject them first when they can).
struct KvCacheAppendParams {
  const void* k_new;      // B x S_new x H' x d, element type `dtype`, last dim contiguous
  const void* v_new;      // B x S_new x H' x d_v, element type `dtype`, last dim contiguous
  void* k_cache;          // B x T_max x H' x d or num_blocks x block_size x H' x d, `dtype`
  void* v_cache;          // like k_cache with d_v
  const int* cache_seqlens;  // B, int32, element stride seqlens_stride
  const int* pos;         // B, int32, element stride pos_stride; nullptr = cache_seqlens
  DType dtype;
  int64_t batch, new_rows, cache_heads, head_dim, head_dim_v;  // B, S_new, H', d, d_v
  int64_t k_new_batch_stride, k_new_row_stride, k_new_head_stride;  // elements
  int64_t v_new_batch_stride, v_new_row_stride, v_new_head_stride;  // elements
  int64_t k_batch_stride, k_row_stride, k_head_stride;  // k_cache elements (batch = page when paged)
  int64_t v_batch_stride, v_row_stride, v_head_stride;  // v_cache elements
  int64_t seqlens_stride, pos_stride;                   // elements
  CacheLayout layout;
  RopeParams rope;        // tables and r/2 only: positions come from pos / cache_seqlens
  int64_t max_pos;        // rows of rope.cos / rope.sin
};

}  // namespace headmix::kernels
