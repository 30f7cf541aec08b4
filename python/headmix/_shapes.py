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


def mix_heads_shape(x: torch.Tensor, w: torch.Tensor, pseudo: int) -> tuple[int, ...]:
    """[B, N, H_in, d] mixed by w [H_in, H_out] -> [B, N, H_out, d]."""
    _require(x.dim() == 4, f"x must be [B, N, H_in, d] (4-D), got shape {list(x.shape)}")
    _require(w.dim() == 2, f"w must be [H_in, H_out] (2-D), got shape {list(w.shape)}")
    _require(
        w.shape[0] == x.shape[2],
        f"w must be [H_in, H_out] with H_in = x.size(2) = {x.shape[2]}, got shape {list(w.shape)}",
    )
    _require(pseudo >= 1, f"pseudo must be >= 1, got {pseudo}")
    _require(
        w.shape[1] % pseudo == 0,
        f"H_out = w.size(1) = {w.shape[1]} must be divisible by pseudo = {pseudo}",
    )
    return (x.shape[0], x.shape[1], w.shape[1], x.shape[3])


def attention_shapes(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Output [B, S_q, H, d_v] and lse [B, H, S_q] of attention over q, k, v."""
    _require(q.dim() == 4, f"q must be [B, S_q, H, d] (4-D), got shape {list(q.shape)}")
    _require(k.dim() == 4, f"k must be [B, S_k, H_kv, d] (4-D), got shape {list(k.shape)}")
    _require(v.dim() == 4, f"v must be [B, S_k, H_kv, d_v] (4-D), got shape {list(v.shape)}")
    _require(k.shape[3] == q.shape[3], f"k must have the head dim of q ({q.shape[3]}), got shape {list(k.shape)}")
    _require(
        k.shape[2] >= 1 and q.shape[2] % k.shape[2] == 0,
        f"H = q.size(2) = {q.shape[2]} must be a multiple of H_kv = k.size(2) = {k.shape[2]} (GQA)",
    )
    batch, seqlen_q, heads, _ = q.shape
    return (batch, seqlen_q, heads, v.shape[3]), (batch, heads, seqlen_q)


def decode_shapes(
    q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, w_k: torch.Tensor | None
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Output [B, S_q, H, d_v] and lse [B, H, S_q] of a decode step over the cache."""
    _require(q.dim() == 4, f"q must be [B, S_q, H, d] (4-D), got shape {list(q.shape)}")
    _require(k_cache.dim() == 4 and v_cache.dim() == 4, "k_cache and v_cache must be 4-D")
    _require(
        q.shape[3] == k_cache.shape[3],
        f"q must have the head dim of k_cache ({k_cache.shape[3]}), got shape {list(q.shape)}",
    )
    kv_heads = k_cache.shape[2] if w_k is None else w_k.shape[1]
    _require(
        kv_heads >= 1 and q.shape[2] % kv_heads == 0,
        f"H = q.size(2) = {q.shape[2]} must be a multiple of H_kv = {kv_heads} (GQA)",
    )
    batch, seqlen_q, heads, _ = q.shape
    return (batch, seqlen_q, heads, v_cache.shape[3]), (batch, heads, seqlen_q)


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
