"""Keyword wrappers around ``torch.ops.headmix``, their fake kernels and autograd formulas.

The schemas live in csrc/registration.cpp; everything an op needs on the Python side is here,
one section per op.
"""

from __future__ import annotations

import torch

from . import _checks, _shapes
from ._nvtx import op_range

_ops = torch.ops.headmix


# ---------------------------------------------------------------- mix_heads


def mix_heads(x, w, *, pseudo=1, cos=None, sin=None, pos_offset=0):
    """y[b,n,j] = rope(sum_m w[m,j] x[b,n,m], pos(n,j)); x [B, N, H_in, d], w [H_in, H_out].

    With cos/sin tables ([max_pos, r/2], float32) the first r features are rotated at
    pos(n, j) = pos_offset + n*pseudo + j // (H_out/pseudo), the position of head j's
    pseudo-token in the interleaved sequence. Differentiable in x and w.
    """
    with op_range("mix_heads", x):
        return _ops.mix_heads(x, w, pseudo, cos, sin, pos_offset)


@torch.library.register_fake("headmix::mix_heads")
def _mix_heads_fake(x, w, pseudo=1, cos=None, sin=None, pos_offset=0):
    return x.new_empty(_shapes.mix_heads_shape(x, w, pseudo, cos, sin, pos_offset))


@torch.library.register_fake("headmix::mix_heads_backward")
def _mix_heads_backward_fake(grad, x, w, pseudo, cos, sin, pos_offset, need_dx, need_dw):
    _checks.check_mix_heads(x, w, pseudo, cos, sin, pos_offset)
    _checks.check_mix_heads_grad(grad, x, w)
    # The kernels return contiguous gradients, whatever the inputs' strides.
    return (x.new_empty(x.shape) if need_dx else None, w.new_empty(w.shape) if need_dw else None)


def _mix_heads_setup_context(ctx, inputs, output):
    x, w, pseudo, cos, sin, pos_offset = inputs
    ctx.save_for_backward(x, w, cos, sin)
    ctx.pseudo = pseudo
    ctx.pos_offset = pos_offset


def _mix_heads_grad(ctx, grad):
    x, w, cos, sin = ctx.saved_tensors
    with op_range("mix_heads_backward", grad):
        dx, dw = _ops.mix_heads_backward(
            grad, x, w, ctx.pseudo, cos, sin, ctx.pos_offset, ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        )
    return dx, dw, None, None, None, None


torch.library.register_autograd(
    "headmix::mix_heads", _mix_heads_grad, setup_context=_mix_heads_setup_context
)


# ---------------------------------------------------------------- flash attention


def flash_attn(q, k, v, *, scale=None, causal=False, window=(-1, -1), return_lse=False):
    """Attention over q [B, S_q, H, d], k/v [B, S_k, H_kv, d(_v)] (GQA: H % H_kv == 0).

    Queries are bottom-right aligned (row i sits at key position i + S_k - S_q); ``causal``
    allows keys j <= that position, ``window=(left, right)`` keys within left before and right
    after it (-1 = unbounded; causal forces right = 0). A row with no allowed key gives 0 and
    lse = -inf. Returns out [B, S_q, H, d_v], and with ``return_lse`` also lse [B, H, S_q]
    (natural log, float32 or float64 for float64 inputs). Differentiable in q, k, v (and lse).
    """
    window_left, window_right = window
    with op_range("flash_attn_fwd", q):
        out, lse = _ops.flash_attn_fwd(q, k, v, scale, causal, window_left, window_right)
    return (out, lse) if return_lse else out


@torch.library.register_fake("headmix::flash_attn_fwd")
def _flash_attn_fwd_fake(q, k, v, scale=None, causal=False, window_left=-1, window_right=-1):
    _checks.check_softmax_scale(scale)
    out_shape, lse_shape = _shapes.attention_shapes(q, k, v, window_left, window_right)
    return q.new_empty(out_shape), q.new_empty(lse_shape, dtype=_shapes.lse_dtype(q.dtype))


@torch.library.register_fake("headmix::flash_attn_bwd")
def _flash_attn_bwd_fake(dout, q, k, v, out, lse, dlse, scale, causal, window_left, window_right):
    dims = _checks.check_flash_attn(q, k, v, window_left, window_right)
    _checks.check_flash_attn_bwd(dims, dout, out, lse, dlse)
    _checks.check_softmax_scale(scale)
    # The kernels return contiguous gradients, whatever the inputs' strides.
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def _flash_attn_setup_context(ctx, inputs, output):
    q, k, v, scale, causal, window_left, window_right = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse)
    # An output that does not reach the loss gets None, not zeros: without an lse gradient the
    # CPU backward runs ATen's flash kernel, which has no input for one.
    ctx.set_materialize_grads(False)
    ctx.scale = scale
    ctx.causal = causal
    ctx.window = (window_left, window_right)


def _flash_attn_grad(ctx, dout, dlse):
    q, k, v, out, lse = ctx.saved_tensors
    if dout is None:
        dout = torch.zeros_like(out)
    with op_range("flash_attn_bwd", q):
        dq, dk, dv = _ops.flash_attn_bwd(dout, q, k, v, out, lse, dlse, ctx.scale, ctx.causal, *ctx.window)
    return dq, dk, dv, None, None, None, None


torch.library.register_autograd(
    "headmix::flash_attn_fwd", _flash_attn_grad, setup_context=_flash_attn_setup_context
)


def iha_attention(
    q, k, v, alpha_q, alpha_k, alpha_v, collapse, *, pseudo, cos=None, sin=None, window=None, scale=None,
    context_parallel=None,
):
    """Interleaved Head Attention core: mix -> pseudo-head attention -> collapse.

    q [B, N, H, d], k/v [B, N, H_kv, d]; alpha_q [H, P*H], alpha_k/alpha_v [H_kv, P*H_kv],
    collapse [P*H, H]. Pseudo-queries and keys are rotated at their virtual positions n*P + p;
    attention is causal over the N*P virtual tokens, optionally within ``window`` original
    tokens (W*P virtual ones). Returns [B, N, H, d].

    With ``context_parallel`` (a ``headmix.distributed.ContextParallel``) q, k, v hold this
    rank's tokens of a sequence split across ranks, and the attention runs as a ring.
    """
    if context_parallel is not None:
        from .distributed import layers  # imported here: headmix.distributed imports this module

        return layers.iha_attention(q, k, v, alpha_q, alpha_k, alpha_v, collapse, pseudo=pseudo, cos=cos,
                                    sin=sin, window=window, scale=scale, context_parallel=context_parallel)
    window_left = _shapes.iha_window_left(window, pseudo)
    q_hat = mix_heads(q, alpha_q, pseudo=pseudo, cos=cos, sin=sin)
    k_hat = mix_heads(k, alpha_k, pseudo=pseudo, cos=cos, sin=sin)
    v_hat = mix_heads(v, alpha_v, pseudo=pseudo)
    o_hat = flash_attn(
        q_hat.view(_shapes.pseudo_sequence_shape(q_hat, pseudo)),
        k_hat.view(_shapes.pseudo_sequence_shape(k_hat, pseudo)),
        v_hat.view(_shapes.pseudo_sequence_shape(v_hat, pseudo)),
        scale=scale,
        causal=True,
        window=(window_left, -1),
    )
    return mix_heads(o_hat.view(*q_hat.shape[:3], o_hat.shape[-1]), collapse)


# ---------------------------------------------------------------- KV-cache decode


def vhead_decode(
    q,
    k_cache,
    v_cache,
    cache_seqlens,
    *,
    w_k=None,
    w_v=None,
    block_table=None,
    scale=None,
    causal=True,
    window_left=-1,
    return_lse=False,
):
    """Decode q [B, S_q, H, d] against a KV cache of H' (virtual) heads. Inference only.

    The cache is contiguous [B, T_max, H', d] or paged [num_blocks, block_size, H', d] with
    block_table [B, max_blocks] (int32); sequence b holds cache_seqlens[b] (int32) rows, and no
    row beyond is read. With w_k, w_v [H', H_kv] the kv heads are K_g = sum_j w_k[j, g] K'_j
    (MEA-compressed cache); without them the cache heads are the kv heads (plain GQA decode,
    also IHA decode with S_q = P). Queries are bottom-right aligned like ``flash_attn``.
    Inputs that require grad are refused unless grad mode is off.
    """
    with op_range("vhead_decode", q):
        out, lse = _ops.vhead_decode(q, k_cache, v_cache, cache_seqlens, w_k, w_v, block_table, scale, causal,
                                     window_left)
    return (out, lse) if return_lse else out


@torch.library.register_fake("headmix::vhead_decode")
def _vhead_decode_fake(q, k_cache, v_cache, cache_seqlens, w_k=None, w_v=None, block_table=None,
                       scale=None, causal=True, window_left=-1):
    out_shape, lse_shape = _shapes.decode_shapes(q, k_cache, v_cache, cache_seqlens, w_k, w_v, block_table,
                                                 window_left)
    _checks.check_softmax_scale(scale)
    return q.new_empty(out_shape), q.new_empty(lse_shape, dtype=_shapes.lse_dtype(q.dtype))


# Decode has no backward. The autograd formula's setup_context runs in the forward, and only
# when grad mode is on and an input requires grad, so refusing there makes the call itself fail
# (direct torch.ops calls included) rather than a later backward.
_VHEAD_DECODE_TENSORS = ("q", "k_cache", "v_cache", "cache_seqlens", "w_k", "w_v")


def _vhead_decode_refuse_grad(ctx, inputs, output):
    needing = [name for name, t in zip(_VHEAD_DECODE_TENSORS, inputs)
               if isinstance(t, torch.Tensor) and t.requires_grad]
    raise RuntimeError(
        f"headmix.vhead_decode is inference only, but gradients are required for {', '.join(needing)}: "
        "call it under torch.no_grad() / torch.inference_mode(), or use flash_attn for training"
    )


def _vhead_decode_grad(ctx, *grads):
    raise AssertionError("unreachable: _vhead_decode_refuse_grad refuses every forward that could reach here")


torch.library.register_autograd(
    "headmix::vhead_decode", _vhead_decode_grad, setup_context=_vhead_decode_refuse_grad
)


def kv_cache_append(k_new, v_new, k_cache, v_cache, cache_seqlens, *, block_table=None, cos=None, sin=None):
    """Writes k_new/v_new [B, S_new, H', d] into the cache at rows cache_seqlens[b] ... in place.

    Keys are rotated at their row positions when cos/sin are given. Overflow, missing pages or
    positions beyond the tables are rejected before anything is written. The caller advances
    cache_seqlens (the op does not, so a CUDA graph can replay it).
    """
    with op_range("kv_cache_append", k_new):
        _ops.kv_cache_append(k_new, v_new, k_cache, v_cache, cache_seqlens, block_table, cos, sin, None)


@torch.library.register_fake("headmix::kv_cache_append")
def _kv_cache_append_fake(k_new, v_new, k_cache, v_cache, cache_seqlens, block_table=None, cos=None,
                          sin=None, pos=None):
    _checks.check_kv_cache_append(k_new, v_new, k_cache, v_cache, cache_seqlens, block_table, cos, sin, pos)
