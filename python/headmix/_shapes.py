"""Shape logic of the ops, shared by the fake (meta) kernels and the Python wrappers.

The native kernels check their inputs with the same rules and messages; these functions let
``torch.compile`` reject a bad call while tracing instead of at run time.
"""

from __future__ import annotations

import torch


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise RuntimeError(message)


def lse_dtype(dtype: torch.dtype) -> torch.dtype:
    """The log-sum-exp is float32, or float64 for float64 inputs (so gradcheck is exact)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _shape(t: torch.Tensor) -> list[int]:
    return list(t.shape)


def _require_rank(t: torch.Tensor, name: str, rank: int, layout: str) -> None:
    _require(t.dim() == rank, f"{name} must be {layout} ({rank}-D), got shape {_shape(t)}")


def _rope_checks(cos, sin, head_dim: int) -> None:
    _require((cos is None) == (sin is None),
             f"cos and sin must be given together (RoPE), got only {'cos' if cos is not None else 'sin'}")
    if cos is None:
        return
    _require_rank(cos, "cos", 2, "[max_pos, rotary_dim/2]")
    _require(sin.shape == cos.shape, f"sin must have the shape of cos {_shape(cos)}, got {_shape(sin)}")
    rotary = 2 * cos.shape[1]
    _require(rotary <= head_dim, f"cos/sin cover rotary_dim = 2*{cos.shape[1]} = {rotary} features, "
                                 f"more than the head dim {head_dim}")


def mix_heads_shape(x, w, pseudo, cos=None, sin=None, pos_offset=0) -> tuple[int, ...]:
    """[B, N, H_in, d] mixed by w [H_in, H_out] -> [B, N, H_out, d]."""
    _require_rank(x, "x", 4, "[B, N, H_in, d]")
    _require_rank(w, "w", 2, "[H_in, H_out]")
    _require(w.shape[0] == x.shape[2],
             f"w must be [H_in, H_out] with H_in = x.size(2) = {x.shape[2]}, got shape {_shape(w)}")
    _require(pseudo >= 1, f"pseudo must be >= 1, got {pseudo}")
    _require(w.shape[1] % pseudo == 0, f"H_out = w.size(1) = {w.shape[1]} must be divisible by pseudo = {pseudo}")
    _require(pos_offset >= 0, f"pos_offset must be >= 0, got {pos_offset}")
    _rope_checks(cos, sin, x.shape[3])
    tokens = x.shape[1]
    if cos is not None and tokens > 0:
        last = pos_offset + tokens * pseudo - 1
        _require(last < cos.shape[0], f"cos/sin have {cos.shape[0]} positions but the tokens need positions up "
                                      f"to {last} (pos_offset + N*pseudo - 1 = {pos_offset} + {tokens}*{pseudo} - 1)")
    return (x.shape[0], tokens, w.shape[1], x.shape[3])


def attention_shapes(q, k, v) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Output [B, S_q, H, d_v] and lse [B, H, S_q] of attention over q, k, v."""
    _require_rank(q, "q", 4, "[B, S_q, H, d]")
    _require_rank(k, "k", 4, "[B, S_k, H_kv, d]")
    _require_rank(v, "v", 4, "[B, S_k, H_kv, d_v]")
    batch, seqlen_q, heads, head_dim = q.shape
    _require(k.shape[0] == batch and v.shape[0] == batch,
             f"q, k, v must share the batch B = {batch}, got k {_shape(k)} and v {_shape(v)}")
    _require(k.shape[3] == head_dim, f"k must have the head dim of q ({head_dim}), got shape {_shape(k)}")
    _require(v.shape[1] == k.shape[1] and v.shape[2] == k.shape[2],
             f"v must be [B, S_k, H_kv, d_v] with S_k, H_kv of k {_shape(k)}, got shape {_shape(v)}")
    _require(k.shape[2] >= 1 and heads % k.shape[2] == 0,
             f"H = q.size(2) = {heads} must be a multiple of H_kv = k.size(2) = {k.shape[2]} (GQA)")
    return (batch, seqlen_q, heads, v.shape[3]), (batch, heads, seqlen_q)


def _cache_checks(k_cache, v_cache, cache_seqlens, block_table, batch: int) -> None:
    """Layout of a contiguous [B, T_max, H', d] or paged [num_blocks, block_size, H', d] cache."""
    paged = block_table is not None
    _require_rank(k_cache, "k_cache", 4, "[num_blocks, block_size, H', d]" if paged else "[B, T_max, H', d]")
    _require_rank(v_cache, "v_cache", 4, "[num_blocks, block_size, H', d_v]" if paged else "[B, T_max, H', d_v]")
    _require(v_cache.shape[:3] == k_cache.shape[:3],
             f"v_cache must match k_cache {_shape(k_cache)} in all but the last dim, got {_shape(v_cache)}")
    _require(cache_seqlens.dim() == 1 and cache_seqlens.shape[0] == batch,
             f"cache_seqlens must be [B] with B = {batch}, got shape {_shape(cache_seqlens)}")
    if paged:
        _require(block_table.dim() == 2 and block_table.shape[0] == batch,
                 f"block_table must be [B, max_blocks] with B = {batch}, got shape {_shape(block_table)}")
    else:
        _require(k_cache.shape[0] == batch, f"k_cache must be [B, T_max, H', d] with B = {batch} (or pass "
                                            f"block_table for a paged cache), got shape {_shape(k_cache)}")


def decode_shapes(q, k_cache, v_cache, cache_seqlens, w_k=None, w_v=None, block_table=None):
    """Output [B, S_q, H, d_v] and lse [B, H, S_q] of a decode step over the cache."""
    _require_rank(q, "q", 4, "[B, S_q, H, d]")
    _cache_checks(k_cache, v_cache, cache_seqlens, block_table, q.shape[0])
    cache_heads, head_dim = k_cache.shape[2], k_cache.shape[3]
    _require(q.shape[3] == head_dim, f"q must have the head dim of k_cache ({head_dim}), got shape {_shape(q)}")
    _require((w_k is None) == (w_v is None), "w_k and w_v must be given together (virtual-head cache), got only "
                                             f"{'w_k' if w_k is not None else 'w_v'}")
    kv_heads = cache_heads
    if w_k is not None:
        for name, w in (("w_k", w_k), ("w_v", w_v)):
            _require(w.dim() == 2 and w.shape[0] == cache_heads,
                     f"{name} must be [H', H_kv] with H' = k_cache.size(2) = {cache_heads}, got shape {_shape(w)}")
        _require(w_v.shape[1] == w_k.shape[1], f"w_v must be [H', H_kv] like w_k {_shape(w_k)}, got shape {_shape(w_v)}")
        kv_heads = w_k.shape[1]
    batch, seqlen_q, heads, _ = q.shape
    _require(kv_heads >= 1 and heads % kv_heads == 0,
             f"H = q.size(2) = {heads} must be a multiple of H_kv = {kv_heads} (GQA)")
    return (batch, seqlen_q, heads, v_cache.shape[3]), (batch, heads, seqlen_q)


def decode_plan_shape(q, k_cache, w_k=None, block_table=None) -> tuple[int, ...]:
    """(batch, S_q, H, latent_groups, latent_heads, d, capacity) of a decode call, as the CUDA
    kernel plans it: with w_k all query heads share one latent of the H' cache heads, without
    it each of the H' cache heads is the latent of its GQA group."""
    cache_heads = k_cache.shape[2]
    capacity = block_table.shape[1] * k_cache.shape[1] if block_table is not None else k_cache.shape[1]
    latent_groups, latent_heads = (1, cache_heads) if w_k is not None else (cache_heads, 1)
    batch, seqlen_q, heads, head_dim = q.shape
    return (batch, seqlen_q, heads, latent_groups, latent_heads, head_dim, capacity)


def append_checks(k_new, v_new, k_cache, v_cache, cache_seqlens, block_table=None) -> None:
    """New rows [B, S_new, H', d(_v)] must match the cache's heads and head dims."""
    _require_rank(k_new, "k_new", 4, "[B, S_new, H', d]")
    _require_rank(v_new, "v_new", 4, "[B, S_new, H', d_v]")
    _cache_checks(k_cache, v_cache, cache_seqlens, block_table, k_new.shape[0])
    batch, rows = k_new.shape[:2]
    for name, new, cache, layout in (("k_new", k_new, k_cache, "[B, S_new, H', d]"),
                                     ("v_new", v_new, v_cache, "[B, S_new, H', d_v]")):
        expected = [batch, rows, k_cache.shape[2], cache.shape[3]]
        _require(_shape(new) == expected, f"{name} must be {layout} matching {name[0]}_cache, expected "
                                          f"{expected}, got shape {_shape(new)}")


def pseudo_sequence_shape(x: torch.Tensor, pseudo: int) -> tuple[int, ...]:
    """[B, N, P*H, d] viewed as the interleaved pseudo-sequence [B, N*P, H, d]."""
    batch, tokens, mixed_heads, head_dim = x.shape
    return (batch, tokens * pseudo, mixed_heads // pseudo, head_dim)


def iha_window_left(window: int | None, pseudo: int) -> int:
    """A window of W original tokens is W*P virtual tokens: i - W*P < i' <= i."""
    if window is None:
        return -1
    _require(window >= 1, f"window must be >= 1 original tokens (or None), got {window}")
    return window * pseudo - 1
