"""headmix's ops as a user would write them without headmix: einsum, RoPE and PyTorch's SDPA.

The benchmarks and ``make demo`` time headmix against these (their "composite" rows). They run
at the inputs' precision on PyTorch's own kernels; the float64 ground truth for tests is
``reference.py``.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from .rope import apply_rope, pseudo_positions

# SDPA backends a baseline can be pinned to: None = PyTorch's own choice.
SDPA_BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}


def mix_heads(x, w, rope=None):
    """x [B, N, H_in, d] mixed by w [H_in, H_out]; rope is (cos, sin, positions [N, H_out]) or None."""
    y = torch.einsum("bnmd,mj->bnjd", x, w)
    if rope is not None:
        y = apply_rope(y, *rope)
    return y.contiguous()


def sdpa(q, k, v, *, mask=None, causal=False, backend=None):
    """SDPA over [B, S, H, d] tensors through transposed views, on ``backend`` (a SDPA_BACKENDS
    key) or wherever PyTorch dispatches.

    SDPA's is_causal is top-left aligned, headmix's bottom-right: they agree only for S_q = S_k.
    enable_gqa only when the head counts differ: it steers SDPA away from some backends.
    """
    with sdpa_kernel(SDPA_BACKENDS[backend]) if backend else contextlib.nullcontext():
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask, is_causal=causal,
            enable_gqa=k.shape[2] != q.shape[2],
        )
    return out.transpose(1, 2)


def iha_attention(q, k, v, alpha_q, alpha_k, alpha_v, collapse, *, pseudo, cos, sin, mask=None, causal=False):
    """IHA's core (headmix.iha_attention): mix q, k, v [B, N, H, d] into P pseudo-heads each
    (RoPE on q and k at their pseudo positions), attend over the N*P interleaved pseudo-tokens
    (``mask`` [N*P, N*P] or ``causal``), collapse the P*H pseudo-heads back to H."""
    batch, tokens, heads, head_dim = q.shape
    rope = (cos, sin, pseudo_positions(tokens, pseudo * heads, pseudo, device=q.device))

    def pseudo_sequence(x, alpha, x_rope):  # [B, N, P*H, d] is [B, N*P, H, d]: a free view
        return mix_heads(x, alpha, x_rope).view(batch, tokens * pseudo, heads, head_dim)

    o_hat = sdpa(pseudo_sequence(q, alpha_q, rope), pseudo_sequence(k, alpha_k, rope),
                 pseudo_sequence(v, alpha_v, None), mask=mask, causal=causal)
    return mix_heads(o_hat.reshape(batch, tokens, pseudo * heads, head_dim), collapse)
