"""Shape logic of the ops, shared by the fake (meta) kernels and the Python wrappers.

Each ``*_shapes`` function first applies the op's input rules (``_checks``, the mirror of
csrc/checks.cpp), so ``torch.compile`` rejects a bad call while tracing, with the native
message, instead of at run time.
"""

from __future__ import annotations

import torch

from . import _checks
from ._checks import require as _require


def lse_dtype(dtype: torch.dtype) -> torch.dtype:
    """The log-sum-exp is float32, or float64 for float64 inputs (so gradcheck is exact)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def mix_heads_shape(x, w, pseudo, cos=None, sin=None, pos_offset=0) -> tuple[int, ...]:
    """[B, N, H_in, d] mixed by w [H_in, H_out] -> [B, N, H_out, d]."""
    _checks.check_mix_heads(x, w, pseudo, cos, sin, pos_offset)
    return (x.shape[0], x.shape[1], w.shape[1], x.shape[3])


def attention_shapes(q, k, v, window_left=-1, window_right=-1) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Output [B, S_q, H, d_v] and lse [B, H, S_q] of attention over q, k, v."""
    d = _checks.check_flash_attn(q, k, v, window_left, window_right)
    return (d.batch, d.seqlen_q, d.heads, d.head_dim_v), (d.batch, d.heads, d.seqlen_q)


def decode_shapes(q, k_cache, v_cache, cache_seqlens, w_k=None, w_v=None, block_table=None, window_left=-1):
    """Output [B, S_q, H, d_v] and lse [B, H, S_q] of a decode step over the cache."""
    _checks.check_vhead_decode(q, k_cache, v_cache, cache_seqlens, w_k, w_v, block_table, window_left)
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
