"""The input rules of csrc/checks.cpp, for the fake (meta) kernels.

A fake kernel cannot call the C++ checks: under ``torch.compile`` its tensors may have symbolic
sizes, which C++ ``sizes()`` refuses. So the rules live twice, and this file mirrors
csrc/checks.cpp function for function, in the same order and with the same messages, so that
tracing rejects a bad call exactly as the native op would at run time. The rules that read
tensor data (``check_cache_ranges``) have no mirror: a fake tensor has no data.
tests/check_rules.py lists every rule with one bad input, and tests/test_check_parity.py
requires the same error from both sides; a rule added to one side only fails it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

_COMPUTE_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


@dataclass
class AttnDims:
    batch: int
    seqlen_q: int
    seqlen_k: int
    heads: int
    kv_heads: int
    head_dim: int
    head_dim_v: int


def require(condition: bool, message: str) -> None:
    if not condition:
        raise RuntimeError(message)


def _shape(t: torch.Tensor) -> list[int]:
    return list(t.shape)


def dtype_name(dtype: torch.dtype) -> str:
    """"float32", as C++ prints it (c10::getDtypeNames)."""
    return str(dtype).removeprefix("torch.")


def _rank(t, name: str, rank: int, layout: str) -> None:
    require(t.dim() == rank, f"{name} must be {layout} ({rank}-D), got shape {_shape(t)}")


def _last_dim_contiguous(t, name: str) -> None:
    require(t.shape[-1] <= 1 or t.stride(-1) == 1,
            f"{name} must have a contiguous last dim (stride 1), got strides {list(t.stride())}")


def _same_device(t, name: str, ref, ref_name: str) -> None:
    require(t.device == ref.device, f"{name} must be on the same device as {ref_name} ({ref.device}), got {t.device}")


def _same_dtype(t, name: str, ref, ref_name: str) -> None:
    require(t.dtype == ref.dtype,
            f"{name} must have the dtype of {ref_name} ({dtype_name(ref.dtype)}), got {dtype_name(t.dtype)}")


def _compute_dtype(t, name: str) -> None:
    require(t.dtype in _COMPUTE_DTYPES,
            f"{name} must be float32, float64, bfloat16 or float16, got {dtype_name(t.dtype)}")


def _int32_vector(t, name: str, length: int, ref) -> None:
    require(t.dim() == 1 and t.shape[0] == length, f"{name} must be [B] with B = {length}, got shape {_shape(t)}")
    require(t.dtype == torch.int32, f"{name} must be int32, got {dtype_name(t.dtype)}")
    _same_device(t, name, ref, "the queries/keys")


def _rope_tables(cos, sin, head_dim: int, ref, ref_name: str) -> None:
    require((cos is None) == (sin is None),
            f"cos and sin must be given together (RoPE), got only {'cos' if cos is not None else 'sin'}")
    if cos is None:
        return
    require(cos.dim() == 2, f"cos must be [max_pos, rotary_dim/2] (2-D), got shape {_shape(cos)}")
    require(sin.shape == cos.shape, f"sin must have the shape of cos {_shape(cos)}, got {_shape(sin)}")
    require(cos.dtype == torch.float32 and sin.dtype == torch.float32,
            f"cos and sin must be float32, got {dtype_name(cos.dtype)} and {dtype_name(sin.dtype)}")
    require(2 * cos.shape[1] <= head_dim, f"cos/sin cover rotary_dim = 2*{cos.shape[1]} = {2 * cos.shape[1]} "
                                          f"features, more than the head dim {head_dim}")
    _same_device(cos, "cos", ref, ref_name)
    _same_device(sin, "sin", ref, ref_name)


def check_mix_heads(x, w, pseudo: int, cos, sin, pos_offset: int) -> None:
    _rank(x, "x", 4, "[B, N, H_in, d]")
    _rank(w, "w", 2, "[H_in, H_out]")
    _compute_dtype(x, "x")
    require(w.dtype == x.dtype or w.dtype == torch.float32,
            f"w must have the dtype of x ({dtype_name(x.dtype)}) or float32, got {dtype_name(w.dtype)}")
    _same_device(w, "w", x, "x")
    _last_dim_contiguous(x, "x")
    require(w.shape[0] == x.shape[2],
            f"w must be [H_in, H_out] with H_in = x.size(2) = {x.shape[2]}, got shape {_shape(w)}")
    require(pseudo >= 1, f"pseudo must be >= 1, got {pseudo}")
    require(w.shape[1] % pseudo == 0, f"H_out = w.size(1) = {w.shape[1]} must be divisible by pseudo = {pseudo}")
    require(pos_offset >= 0, f"pos_offset must be >= 0, got {pos_offset}")
    _rope_tables(cos, sin, x.shape[3], x, "x")
    tokens = x.shape[1]
    if cos is not None and tokens > 0:
        last = pos_offset + tokens * pseudo - 1
        require(last < cos.shape[0], f"cos/sin have {cos.shape[0]} positions but the tokens need positions up "
                                     f"to {last} (pos_offset + N*pseudo - 1 = {pos_offset} + {tokens}*{pseudo} - 1)")


def check_mix_heads_grad(grad, x, w) -> None:
    expected = [x.shape[0], x.shape[1], w.shape[1], x.shape[3]]
    require(_shape(grad) == expected, f"grad must be [B, N, H_out, d] = {expected}, got shape {_shape(grad)}")
    _same_device(grad, "grad", x, "x")
    _compute_dtype(grad, "grad")


def check_flash_attn(q, k, v, window_left: int, window_right: int) -> AttnDims:
    _rank(q, "q", 4, "[B, S_q, H, d]")
    _rank(k, "k", 4, "[B, S_k, H_kv, d]")
    _rank(v, "v", 4, "[B, S_k, H_kv, d_v]")
    _compute_dtype(q, "q")
    _same_dtype(k, "k", q, "q")
    _same_dtype(v, "v", q, "q")
    _same_device(k, "k", q, "q")
    _same_device(v, "v", q, "q")
    for name, t in (("q", q), ("k", k), ("v", v)):
        _last_dim_contiguous(t, name)
    batch = q.shape[0]
    require(k.shape[0] == batch and v.shape[0] == batch,
            f"q, k, v must share the batch B = {batch}, got k {_shape(k)} and v {_shape(v)}")
    require(k.shape[3] == q.shape[3], f"k must have the head dim of q ({q.shape[3]}), got shape {_shape(k)}")
    require(v.shape[1] == k.shape[1] and v.shape[2] == k.shape[2],
            f"v must be [B, S_k, H_kv, d_v] with S_k, H_kv of k {_shape(k)}, got shape {_shape(v)}")
    require(k.shape[2] >= 1 and q.shape[2] % k.shape[2] == 0,
            f"H = q.size(2) = {q.shape[2]} must be a multiple of H_kv = k.size(2) = {k.shape[2]} (GQA)")
    require(window_left >= -1 and window_right >= -1,
            f"window_left/window_right must be >= -1 (-1 = unbounded), got ({window_left}, {window_right})")
    return AttnDims(batch, q.shape[1], k.shape[1], q.shape[2], k.shape[2], q.shape[3], v.shape[3])


def check_softmax_scale(scale) -> None:
    """csrc/attention_scale.h: the kernels' online softmax needs a positive finite scale."""
    if scale is not None:  # C++ prints doubles as %g
        require(math.isfinite(scale) and scale > 0,
                f"scale must be a positive finite number (or None for 1/sqrt(d)), got {scale:g}")


def check_flash_attn_bwd(dims: AttnDims, dout, out, lse, dlse) -> None:
    out_shape = [dims.batch, dims.seqlen_q, dims.heads, dims.head_dim_v]
    lse_shape = [dims.batch, dims.heads, dims.seqlen_q]
    for name, t, expected, layout in (("out", out, out_shape, "[B, S_q, H, d_v]"),
                                      ("dout", dout, out_shape, "[B, S_q, H, d_v]"),
                                      ("lse", lse, lse_shape, "[B, H, S_q]"),
                                      ("dlse", dlse, lse_shape, "[B, H, S_q]")):
        if t is not None:
            require(_shape(t) == expected, f"{name} must be {layout} = {expected}, got shape {_shape(t)}")


def _check_cache(k_cache, v_cache, cache_seqlens, block_table, batch: int, ref, ref_name: str) -> None:
    """Shared by decode and append: cache layout (contiguous or paged) and the kv-head count."""
    paged = block_table is not None
    _rank(k_cache, "k_cache", 4, "[num_blocks, block_size, H', d]" if paged else "[B, T_max, H', d]")
    _rank(v_cache, "v_cache", 4, "[num_blocks, block_size, H', d_v]" if paged else "[B, T_max, H', d_v]")
    _same_dtype(k_cache, "k_cache", ref, ref_name)
    _same_dtype(v_cache, "v_cache", ref, ref_name)
    _same_device(k_cache, "k_cache", ref, ref_name)
    _same_device(v_cache, "v_cache", ref, ref_name)
    _last_dim_contiguous(k_cache, "k_cache")
    _last_dim_contiguous(v_cache, "v_cache")
    require(_shape(v_cache)[:3] == _shape(k_cache)[:3],
            f"v_cache must match k_cache {_shape(k_cache)} in all but the last dim, got {_shape(v_cache)}")
    _int32_vector(cache_seqlens, "cache_seqlens", batch, ref)
    if paged:
        require(block_table.dim() == 2 and block_table.shape[0] == batch,
                f"block_table must be [B, max_blocks] with B = {batch}, got shape {_shape(block_table)}")
        require(block_table.dtype == torch.int32, f"block_table must be int32, got {dtype_name(block_table.dtype)}")
        _same_device(block_table, "block_table", ref, ref_name)
    else:
        require(k_cache.shape[0] == batch, f"k_cache must be [B, T_max, H', d] with B = {batch} (or pass "
                                           f"block_table for a paged cache), got shape {_shape(k_cache)}")


def check_vhead_decode(q, k_cache, v_cache, cache_seqlens, w_k, w_v, block_table, window_left: int) -> None:
    _rank(q, "q", 4, "[B, S_q, H, d]")
    _compute_dtype(q, "q")
    _last_dim_contiguous(q, "q")
    _check_cache(k_cache, v_cache, cache_seqlens, block_table, q.shape[0], q, "q")
    cache_heads, head_dim = k_cache.shape[2], k_cache.shape[3]
    require(q.shape[3] == head_dim, f"q must have the head dim of k_cache ({head_dim}), got shape {_shape(q)}")
    require((w_k is None) == (w_v is None), "w_k and w_v must be given together (virtual-head cache), got only "
                                            f"{'w_k' if w_k is not None else 'w_v'}")
    kv_heads = cache_heads
    if w_k is not None:
        for name, w in (("w_k", w_k), ("w_v", w_v)):
            require(w.dim() == 2 and w.shape[0] == cache_heads,
                    f"{name} must be [H', H_kv] with H' = k_cache.size(2) = {cache_heads}, got shape {_shape(w)}")
            require(w.dtype == q.dtype or w.dtype == torch.float32,
                    f"{name} must have the dtype of q ({dtype_name(q.dtype)}) or float32, got {dtype_name(w.dtype)}")
            _same_device(w, name, q, "q")
        require(w_v.shape[1] == w_k.shape[1], f"w_v must be [H', H_kv] like w_k {_shape(w_k)}, got shape {_shape(w_v)}")
        kv_heads = w_k.shape[1]
    heads = q.shape[2]
    require(kv_heads >= 1 and heads % kv_heads == 0,
            f"H = q.size(2) = {heads} must be a multiple of H_kv = {kv_heads} (GQA)")
    require(window_left >= -1, f"window_left must be >= -1 (-1 = unbounded), got {window_left}")


def check_kv_cache_append(k_new, v_new, k_cache, v_cache, cache_seqlens, block_table, cos, sin, pos) -> None:
    _rank(k_new, "k_new", 4, "[B, S_new, H', d]")
    _rank(v_new, "v_new", 4, "[B, S_new, H', d_v]")
    _compute_dtype(k_new, "k_new")
    _same_dtype(v_new, "v_new", k_new, "k_new")
    _same_device(v_new, "v_new", k_new, "k_new")
    batch = k_new.shape[0]
    _check_cache(k_cache, v_cache, cache_seqlens, block_table, batch, k_new, "k_new")
    for name, new, cache, layout in (("k_new", k_new, k_cache, "[B, S_new, H', d]"),
                                     ("v_new", v_new, v_cache, "[B, S_new, H', d_v]")):
        expected = [batch, k_new.shape[1], k_cache.shape[2], cache.shape[3]]
        require(_shape(new) == expected, f"{name} must be {layout} matching {name[0]}_cache, expected "
                                         f"{expected}, got shape {_shape(new)}")
    _rope_tables(cos, sin, k_cache.shape[3], k_new, "k_new")
    if pos is not None:
        _int32_vector(pos, "pos", batch, k_new)
        require(cos is not None, "pos only sets RoPE positions: pass cos and sin with it")
