"""A per-layer KV cache for the headmix modules: contiguous or paged, written with
``kv_cache_append`` and read with ``vhead_decode``."""

from __future__ import annotations

import math

import torch

from .ops import kv_cache_append, vhead_decode


class KVCache:
    """Holds K/V rows of ``num_heads`` (cached, possibly virtual) heads for ``batch_size`` sequences.

    Contiguous: k/v are [B, max_seqlen, heads, d]. Paged (``block_size`` given): k/v are
    [num_blocks, block_size, heads, d] with ``block_table`` [B, blocks_per_seq] (int32), the
    FlashAttention / vLLM layout; by default sequence b owns blocks b*blocks_per_seq ... but
    any table of distinct block ids works. All sequences advance together (``length`` rows);
    ``seqlens`` is the per-sequence int32 tensor the kernels read.
    """

    def __init__(self, batch_size, max_seqlen, num_heads, head_dim, *, head_dim_v=None,
                 dtype=torch.float32, device=None, block_size=None):
        head_dim_v = head_dim if head_dim_v is None else head_dim_v
        self.max_seqlen = max_seqlen
        if block_size is None:
            rows = (batch_size, max_seqlen)
            self.block_table = None
        else:
            blocks_per_seq = math.ceil(max_seqlen / block_size)
            rows = (batch_size * blocks_per_seq, block_size)
            self.block_table = torch.arange(rows[0], dtype=torch.int32, device=device).view(
                batch_size, blocks_per_seq
            )
        self.k = torch.empty(*rows, num_heads, head_dim, dtype=dtype, device=device)
        self.v = torch.empty(*rows, num_heads, head_dim_v, dtype=dtype, device=device)
        self.seqlens = torch.zeros(batch_size, dtype=torch.int32, device=device)
        self.length = 0

    @property
    def nbytes(self) -> int:
        """Bytes of K/V storage."""
        return self.k.numel() * self.k.element_size() + self.v.numel() * self.v.element_size()

    def append(self, k_new, v_new, cos=None, sin=None):
        """Writes [B, S_new, heads, d] rows (keys rotated at their row positions) and advances."""
        if self.length + k_new.shape[1] > self.max_seqlen:
            raise RuntimeError(
                f"KVCache holds {self.max_seqlen} rows; {self.length} are used and "
                f"{k_new.shape[1]} more do not fit"
            )
        kv_cache_append(k_new, v_new, self.k, self.v, self.seqlens, block_table=self.block_table, cos=cos, sin=sin)
        self.seqlens += k_new.shape[1]
        self.length += k_new.shape[1]

    def attend(self, q, *, w_k=None, w_v=None, causal=True, window_left=-1, scale=None):
        """vhead_decode of q [B, S_q, H, d] over the cached rows (bottom-right aligned)."""
        return vhead_decode(q, self.k, self.v, self.seqlens, w_k=w_k, w_v=w_v, block_table=self.block_table,
                            scale=scale, causal=causal, window_left=window_left)
