"""RoPE tables and the pure-PyTorch rotation (GPT-NeoX "rotate-half" form, docs/math.md)."""

from __future__ import annotations

import torch


def rope_tables(
    max_pos: int, rotary_dim: int, *, theta: float = 10000.0, device=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape [max_pos, rotary_dim / 2], float32, for positions 0 .. max_pos - 1.

    The first ``rotary_dim`` features of a head are rotated; the rest pass through.
    """
    if rotary_dim <= 0 or rotary_dim % 2:
        raise ValueError(f"rotary_dim must be a positive even number, got {rotary_dim}")
    if max_pos < 0:
        raise ValueError(f"max_pos must be >= 0, got {max_pos}")
    exponent = torch.arange(0, rotary_dim, 2, dtype=torch.float64, device=device) / rotary_dim
    inv_freq = theta ** (-exponent)
    angles = torch.arange(max_pos, dtype=torch.float64, device=device)[:, None] * inv_freq
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Rotates x [..., d] at integer ``positions`` (broadcast against x[..., 0]).

    Computed in x's dtype after the tables are cast to it; used by the reference and by the
    modules for the query rotation that has no fused kernel.
    """
    half = cos.shape[-1]
    c = cos[positions].to(x.dtype)
    s = sin[positions].to(x.dtype)
    a, b, rest = x[..., :half], x[..., half : 2 * half], x[..., 2 * half :]
    return torch.cat([a * c - b * s, b * c + a * s, rest], dim=-1)


def pseudo_positions(tokens: int, heads_out: int, pseudo: int, pos_offset: int = 0, device=None) -> torch.Tensor:
    """[tokens, heads_out] RoPE positions of a mix into ``heads_out`` heads: head j of token n is
    pseudo-token j // (heads_out / pseudo) of that token, at pos_offset + n * pseudo + that."""
    n = torch.arange(tokens, device=device)[:, None]
    j = torch.arange(heads_out, device=device)[None, :]
    return pos_offset + n * pseudo + j // (heads_out // pseudo)
