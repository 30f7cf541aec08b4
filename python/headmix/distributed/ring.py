"""Ring attention: flash attention over a sequence whose tokens are spread over the ranks.

Forward: each rank keeps its queries and passes its K/V block around the ring; at step t rank
r holds the keys of rank r - t, runs ``flash_attn`` on every (query segment, key segment) pair
inside the global mask band (bands.py), and merges the partial results by their lse in float32
(merge.py). The receive of the next block is posted before the current block is computed, so
the transfer overlaps the compute. The ring stops at the last step where some rank has work
(``Plan.last_step``): with a sliding window a rank exchanges only with the ranks it reaches.

Backward: the same ring again. Each block's (dq, dk, dv) comes from ``flash_attn_bwd`` with
the merged out and lse: the softmax of the whole row is what each block's probabilities must
be normalised by, and D = rowsum(dO * O) is a property of the whole row. dq accumulates
locally; dK/dV accumulators travel with their blocks (float32), one hop behind the K/V
transfer, and after the last step go straight home to their owner.

The ring is a ``torch.autograd.Function``, not a ``torch.library`` custom op like the other
ops: its schema would have to carry a process group, and its body is collectives around the
registered flash attention ops, which keep their own fakes and kernels.
"""

from __future__ import annotations

import torch

from .. import _shapes
from ..ops import flash_attn
from . import p2p
from .bands import block_call
from .merge import merge_into
from .plan import Plan, agree

_ops = torch.ops.headmix


def _blocks(plan: Plan, owner: int, causal: bool, window: tuple[int, int]):
    """(query rows, key rows, causal, window) of this rank's blocks against owner's keys, as
    slices of the local query tensor and of owner's K/V tensor."""
    for q_off, q_start, q_len in plan.local_segments(plan.rank):
        for k_off, k_start, k_len in plan.local_segments(owner):
            call = block_call(q_start, q_len, k_start, k_len, causal, window)
            if call is not None:
                yield (slice(q_off + call.q_begin, q_off + call.q_end),
                       slice(k_off + call.k_begin, k_off + call.k_end), call.causal, call.window)


def _post_kv(plan: Plan, step: int, last: int, k_cur, v_cur):
    """Sends the K/V block held at ``step`` onward and posts the receive of the next one."""
    if step == last:
        return [], None
    prev, nxt = (plan.rank - 1) % plan.world, (plan.rank + 1) % plan.world
    n = plan.length((plan.rank - step - 1) % plan.world)
    k_next = k_cur.new_empty((k_cur.shape[0], n, *k_cur.shape[2:]))
    v_next = v_cur.new_empty((v_cur.shape[0], n, *v_cur.shape[2:]))
    return p2p.exchange(plan, [k_cur, v_cur], nxt, [k_next, v_next], prev, p2p.TAG_KV), (k_next, v_next)


class _RingFlashAttn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, plan: Plan, causal: bool, window: tuple[int, int], scale):
        acc = _shapes.lse_dtype(q.dtype)
        batch, seqlen, heads = q.shape[:3]
        out = q.new_zeros((batch, seqlen, heads, v.shape[3]), dtype=acc)
        lse = q.new_full((batch, heads, seqlen), float("-inf"), dtype=acc)
        last = plan.last_step(causal, window)
        k_cur, v_cur = k.contiguous(), v.contiguous()
        for step in range(last + 1):
            requests, incoming = _post_kv(plan, step, last, k_cur, v_cur)
            for rows, keys, block_causal, block_window in _blocks(plan, (plan.rank - step) % plan.world, causal, window):
                o, l = flash_attn(q[:, rows], k_cur[:, keys], v_cur[:, keys], scale=scale, causal=block_causal,
                                  window=block_window, return_lse=True)
                merge_into(out[:, rows], lse[:, :, rows], o, l)
            p2p.wait(requests)
            if incoming is not None:
                k_cur, v_cur = incoming
        out = out.to(q.dtype)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.plan, ctx.causal, ctx.window, ctx.scale, ctx.last = plan, causal, window, scale, last
        return out, lse

    @staticmethod
    def backward(ctx, dout, dlse):
        q, k, v, out, lse = ctx.saved_tensors
        plan, last = ctx.plan, ctx.last
        acc = lse.dtype
        prev, nxt = (plan.rank - 1) % plan.world, (plan.rank + 1) % plan.world
        dq = torch.zeros_like(q, dtype=acc)
        k_cur, v_cur = k.contiguous(), v.contiguous()
        grad_requests, in_flight, grad_in = [], None, None
        for step in range(last + 1):
            owner = (plan.rank - step) % plan.world
            kv_requests, incoming = _post_kv(plan, step, last, k_cur, v_cur)
            dk_blk = torch.zeros_like(k_cur, dtype=acc)
            dv_blk = torch.zeros_like(v_cur, dtype=acc)
            for rows, keys, block_causal, block_window in _blocks(plan, owner, ctx.causal, ctx.window):
                dq_p, dk_p, dv_p = _ops.flash_attn_bwd(
                    dout[:, rows], q[:, rows], k_cur[:, keys], v_cur[:, keys], out[:, rows], lse[:, :, rows],
                    dlse[:, :, rows], ctx.scale, block_causal, *block_window)
                dq[:, rows] += dq_p
                dk_blk[:, keys] += dk_p
                dv_blk[:, keys] += dv_p
            if step > 0:
                # The accumulators of this block from the ranks it visited before.
                p2p.wait(grad_requests)
                dk_blk += grad_in[0]
                dv_blk += grad_in[1]
            if step < last:
                n = plan.length((owner - 1) % plan.world)
                grad_in = (q.new_empty((q.shape[0], n, *k.shape[2:]), dtype=acc),
                           q.new_empty((q.shape[0], n, *v.shape[2:]), dtype=acc))
                in_flight = (dk_blk, dv_blk)  # alive until the send completes
                grad_requests = p2p.exchange(plan, list(in_flight), nxt, list(grad_in), prev, p2p.TAG_GRAD)
            p2p.wait(kv_requests)
            if incoming is not None:
                k_cur, v_cur = incoming
        if last == 0:
            dk, dv = dk_blk, dv_blk
        else:
            # After the last step this rank holds the finished gradient of rank (r - last)'s block.
            dk, dv = torch.zeros_like(k, dtype=acc), torch.zeros_like(v, dtype=acc)
            p2p.wait(p2p.exchange(plan, [dk_blk, dv_blk], (plan.rank - last) % plan.world, [dk, dv],
                                  (plan.rank + last) % plan.world, p2p.TAG_HOME))
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None, None, None, None


def ring_attention(q, k, v, plan: Plan, *, causal: bool, window: tuple[int, int], scale=None):
    """(out, lse) of attention over the sequence laid out by ``plan``; q, k, v hold this rank's
    tokens. No agreement step: the caller made the plan with ``agree``."""
    return _RingFlashAttn.apply(q, k, v, plan, causal, tuple(window), scale)


def _local_error(q, k, v, window) -> str | None:
    try:
        _shapes.attention_shapes(q, k, v)
    except RuntimeError as error:
        return str(error)
    if k.shape[1] != q.shape[1]:
        return (f"k and v must hold the same tokens as q (self-attention over one sharded sequence): "
                f"S_local of q is {q.shape[1]}, of k {k.shape[1]}")
    if len(window) != 2 or min(window) < -1:
        return f"window must be (left, right) with each >= -1 (-1 = unbounded), got {tuple(window)}"
    return None


def attention_facts(q, k, v) -> dict:
    """What every rank's attention inputs must share, for ``agree``."""
    return {
        "batch": tuple(q.shape[:1]), "q heads, head dim": tuple(q.shape[2:]), "kv heads": tuple(k.shape[2:3]),
        "v head dim": tuple(v.shape[3:]), "dtype": (q.dtype, k.dtype, v.dtype), "device type": q.device.type,
        "requires_grad (q, k, v; with grad enabled)": tuple(
            torch.is_grad_enabled() and t.requires_grad for t in (q, k, v)),
    }


def ring_flash_attn(q, k, v, *, group=None, layout="contiguous", causal=False, window=(-1, -1), scale=None,
                    return_lse=False):
    """``headmix.flash_attn`` over a sequence split across the ranks of ``group``.

    q [B, S_local, H, d], k/v [B, S_local, H_kv, d(_v)] hold this rank's tokens of one
    sequence of N tokens in ``layout`` ("contiguous": rank r holds the r-th slice, lengths may
    differ; "zigzag": chunks r and 2W-1-r of 2W equal chunks, see ``shard``). The result equals
    the single-process ``flash_attn(q_full, k_full, v_full, causal=, window=, scale=)`` on the
    rank's rows: the mask is that of the full sequence (self-attention, S_q = S_k = N).
    Returns out [B, S_local, H, d_v] and with ``return_lse`` lse [B, H, S_local].

    Every rank of the group must call it with the same shapes but S_local, and, when training,
    must run backward through the output (the backward is a ring too). Inconsistent calls
    raise the same error on every rank.
    """
    window = tuple(window)
    facts = attention_facts(q, k, v) | {"causal": bool(causal), "window": window, "scale": scale, "layout": layout}
    local_length = q.shape[1] if q.dim() == 4 else -1
    plan = agree(group, layout, local_length, facts, _local_error(q, k, v, window), "ring_flash_attn")
    out, lse = ring_attention(q, k, v, plan, causal=causal, window=window, scale=scale)
    return (out, lse) if return_lse else out
