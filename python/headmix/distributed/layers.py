"""IHA and MEA attention cores under context parallelism.

Head mixing needs all heads of a token and nothing of other tokens, so it stays local: each
rank mixes its own tokens, rotating them at their global positions (for IHA the virtual
positions n*P + p), and only the attention in the middle is a ring. A token segment [s, s+n)
of the original sequence is the virtual segment [s*P, (s+n)*P) of the interleaved one, so the
token plan scaled by P is the attention plan.
"""

from __future__ import annotations

import torch

from .. import _shapes
from ..ops import mix_heads
from ..rope import apply_rope
from .context import ContextParallel
from .plan import Plan, agree
from .ring import attention_facts, ring_attention


def _mix_segments(x, w, plan: Plan, *, pseudo=1, cos=None, sin=None):
    """mix_heads of this rank's tokens, each segment rotated from its global position."""
    parts = [mix_heads(x[:, off:off + n], w, pseudo=pseudo, cos=cos, sin=sin, pos_offset=start * pseudo)
             for off, start, n in plan.local_segments(plan.rank)]
    return parts[0] if len(parts) == 1 else torch.cat(parts, 1)


def _check_rope_covers(plan: Plan, cos, pseudo: int, what: str) -> None:
    """The tables must reach the last global position. Checked after ``agree`` on values every
    rank shares, so all ranks raise together (only the last rank's mix_heads would notice)."""
    needed = sum(plan.length(r) for r in range(plan.world)) * pseudo
    if cos is not None and needed > cos.shape[0]:
        raise RuntimeError(f"{what}: cos/sin have {cos.shape[0]} positions but the sequence split across "
                           f"{plan.world} ranks needs {needed} (tokens * pseudo); raise max_seqlen")


def _local_error(q, k, v) -> str | None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        return f"q, k, v must be [B, N_local, heads, d], got shapes {list(q.shape)}, {list(k.shape)}, {list(v.shape)}"
    if not q.shape[1] == k.shape[1] == v.shape[1]:
        return f"q, k, v must hold the same tokens, got N_local = {q.shape[1]}, {k.shape[1]}, {v.shape[1]}"
    return None


def iha_attention(q, k, v, alpha_q, alpha_k, alpha_v, collapse, *, pseudo, cos=None, sin=None, window=None,
                  scale=None, context_parallel: ContextParallel):
    """``headmix.iha_attention`` with q, k, v [B, N_local, H(_kv), d] holding this rank's tokens
    in ``context_parallel.layout``; returns this rank's rows of the single-process result."""
    facts = attention_facts(q, k, v) | {
        "pseudo": pseudo, "window": window, "scale": scale, "layout": context_parallel.layout,
        "weights": tuple(tuple(w.shape) for w in (alpha_q, alpha_k, alpha_v, collapse)),
        "rope": None if cos is None else tuple(cos.shape)}
    plan = agree(context_parallel.group, context_parallel.layout, q.shape[1] if q.dim() == 4 else -1, facts,
                 _local_error(q, k, v), "iha_attention")
    window_left = _shapes.iha_window_left(window, pseudo)  # the same window, so the same error, on every rank
    _check_rope_covers(plan, cos, pseudo, "iha_attention")
    q_hat = _mix_segments(q, alpha_q, plan, pseudo=pseudo, cos=cos, sin=sin)
    k_hat = _mix_segments(k, alpha_k, plan, pseudo=pseudo, cos=cos, sin=sin)
    v_hat = _mix_segments(v, alpha_v, plan, pseudo=pseudo)
    o_hat, _ = ring_attention(
        q_hat.view(_shapes.pseudo_sequence_shape(q_hat, pseudo)),
        k_hat.view(_shapes.pseudo_sequence_shape(k_hat, pseudo)),
        v_hat.view(_shapes.pseudo_sequence_shape(v_hat, pseudo)),
        plan.scaled(pseudo), causal=True, window=(window_left, -1), scale=scale)
    return mix_heads(o_hat.view(*q_hat.shape[:3], o_hat.shape[-1]), collapse)


def mea_attention(q, k, v, w_lc_k, w_lc_v, cos, sin, *, context_parallel: ContextParallel):
    """MEA's causal attention core (RoPE on q, HLC mixing of the K/V heads with RoPE on the
    keys, GQA attention) over this rank's tokens; q [B, N_local, H, d], k/v [B, N_local, H', d]."""
    facts = attention_facts(q, k, v) | {"layout": context_parallel.layout,
                                        "weights": (tuple(w_lc_k.shape), tuple(w_lc_v.shape)),
                                        "rope": tuple(cos.shape)}
    plan = agree(context_parallel.group, context_parallel.layout, q.shape[1] if q.dim() == 4 else -1, facts,
                 _local_error(q, k, v), "ExplicitMultiheadAttention")
    _check_rope_covers(plan, cos, 1, "ExplicitMultiheadAttention")
    positions = torch.cat([torch.arange(start, start + n, device=q.device)
                           for _, start, n in plan.local_segments(plan.rank)])
    q = apply_rope(q, cos, sin, positions[:, None])
    k_lc = _mix_segments(k, w_lc_k, plan, cos=cos, sin=sin)
    v_lc = _mix_segments(v, w_lc_v, plan)
    out, _ = ring_attention(q, k_lc, v_lc, plan, causal=True, window=(-1, -1))
    return out
