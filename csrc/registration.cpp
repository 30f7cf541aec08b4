// Every headmix op schema, defined once. Backends add implementations with
// TORCH_LIBRARY_IMPL(headmix, <Backend>, m) next to their code (csrc/cpu, csrc/cuda);
// fakes and autograd formulas live in python/headmix/ops.py. docs/math.md gives the math,
// docs/ops.md the API.
#include <torch/library.h>

#include "registration.h"

TORCH_LIBRARY(HEADMIX_NAMESPACE, m) {
  // Head-mixing GEMM with fused GPT-NeoX RoPE: y[b,n,j] = rope(sum_m w[m,j] x[b,n,m], pos(n,j)).
  m.def("mix_heads(Tensor x, Tensor w, int pseudo=1, Tensor? cos=None, Tensor? sin=None, "
        "int pos_offset=0) -> Tensor");
  // Gradients of mix_heads: dx = w-mix of the un-rotated grad, dw = sum over tokens and d.
  m.def("mix_heads_backward(Tensor grad, Tensor x, Tensor w, int pseudo, Tensor? cos, Tensor? sin, "
        "int pos_offset, bool need_dx, bool need_dw) -> (Tensor?, Tensor?)");
  // Attention with bottom-right causal / window masks and GQA; returns out and natural-log lse.
  m.def("flash_attn_fwd(Tensor q, Tensor k, Tensor v, float? scale=None, bool causal=False, "
        "int window_left=-1, int window_right=-1) -> (Tensor out, Tensor lse)");
  // Gradients of flash_attn_fwd; dlse (optional) is the gradient reaching lse.
  m.def("flash_attn_bwd(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, "
        "Tensor? dlse, float? scale, bool causal, int window_left, int window_right) "
        "-> (Tensor dq, Tensor dk, Tensor dv)");
  // Decode over a (virtual-head, optionally paged) KV cache; inference only.
  m.def("vhead_decode(Tensor q, Tensor k_cache, Tensor v_cache, Tensor cache_seqlens, "
        "Tensor? w_k=None, Tensor? w_v=None, Tensor? block_table=None, float? scale=None, "
        "bool causal=True, int window_left=-1) -> (Tensor out, Tensor lse)");
  // Writes new rows at cache_seqlens[b]... (rotating K at their positions); the caller advances seqlens.
  m.def("kv_cache_append(Tensor k_new, Tensor v_new, Tensor(a!) k_cache, Tensor(b!) v_cache, "
        "Tensor cache_seqlens, Tensor? block_table=None, Tensor? cos=None, Tensor? sin=None, "
        "Tensor? pos=None) -> ()");
}
