"""Pure-PyTorch reference for every headmix op: docs/math.md in executable form.

Straightforward and dense (it builds full score matrices), float64-capable. Tests compare
every backend against it; nothing here is meant to be fast.
"""

from __future__ import annotations

import math

import torch

from .rope import apply_rope, pseudo_positions


def mix_heads(x, w, pseudo=1, cos=None, sin=None, pos_offset=0):
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    y = torch.einsum("bnmd,mj->bnjd", x.to(compute), w.to(compute))
    if cos is not None:
        y = apply_rope(y, cos, sin, pseudo_positions(x.shape[1], w.shape[1], pseudo, pos_offset, x.device))
    return y.to(x.dtype)


def allowed_keys(seqlen_q, seqlen_k, causal=False, window_left=-1, window_right=-1, device=None):
    """Boolean [S_q, S_k]: query i (at key position i + S_k - S_q) may see key j."""
    i = torch.arange(seqlen_q, device=device)[:, None] + (seqlen_k - seqlen_q)
    j = torch.arange(seqlen_k, device=device)[None, :]
    allowed = torch.ones(seqlen_q, seqlen_k, dtype=torch.bool, device=device)
    right = 0 if causal else window_right
    if right >= 0:
        allowed &= j <= i + right
    if window_left >= 0:
        allowed &= j >= i - window_left
    return allowed


def attention_scale(scale, head_dim):
    """The caller's softmax scale, or 1/sqrt(d). The native ops take theirs from
    csrc/attention_scale.h; tests/test_shared_definitions.py checks that the two agree."""
    return 1.0 / math.sqrt(head_dim) if scale is None else scale


def flash_attn(q, k, v, scale=None, causal=False, window_left=-1, window_right=-1):
    """out [B, S_q, H, d_v] (q's dtype) and lse [B, H, S_q] (float32, float64 for float64)."""
    compute = torch.float64 if q.dtype == torch.float64 else torch.float32
    group = q.shape[2] // k.shape[2]
    scale = attention_scale(scale, q.shape[-1])
    qc = q.to(compute).transpose(1, 2)  # [B, H, S_q, d]
    kc = k.to(compute).repeat_interleave(group, dim=2).transpose(1, 2)
    vc = v.to(compute).repeat_interleave(group, dim=2).transpose(1, 2)
    scores = qc @ kc.transpose(-1, -2) * scale
    allowed = allowed_keys(q.shape[1], k.shape[1], causal, window_left, window_right, q.device)
    scores = scores.masked_fill(~allowed, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)  # -inf for rows without keys
    probs = torch.exp(scores - lse[..., None]).nan_to_num(0.0)
    out = (probs @ vc).transpose(1, 2)
    return out.to(q.dtype), lse


def cache_rows(cache, cache_seqlens, b, block_table=None):
    """The cache_seqlens[b] valid rows of sequence b: [L, H', d]."""
    length = int(cache_seqlens[b])
    if block_table is None:
        return cache[b, :length]
    block_size = cache.shape[1]
    pages = [cache[int(block_table[b, t // block_size]), t % block_size] for t in range(length)]
    return torch.stack(pages) if pages else cache.new_empty(0, *cache.shape[2:])


def vhead_decode(q, k_cache, v_cache, cache_seqlens, w_k=None, w_v=None, block_table=None, scale=None,
                 causal=True, window_left=-1):
    compute = torch.float64 if q.dtype == torch.float64 else torch.float32
    outs, lses = [], []
    for b in range(q.shape[0]):
        keys = cache_rows(k_cache, cache_seqlens, b, block_table).to(compute)
        values = cache_rows(v_cache, cache_seqlens, b, block_table).to(compute)
        if w_k is not None:
            keys = torch.einsum("tjd,jg->tgd", keys, w_k.to(compute))
            values = torch.einsum("tjd,jg->tgd", values, w_v.to(compute))
        out, lse = flash_attn(q[b : b + 1], keys[None], values[None], scale, causal, window_left, -1)
        outs.append(out)
        lses.append(lse)
    return torch.cat(outs), torch.cat(lses)


def kv_cache_append(k_new, v_new, k_cache, v_cache, cache_seqlens, block_table=None, cos=None, sin=None,
                    pos=None):
    """Returns updated copies of the caches (the op itself writes in place)."""
    k_cache, v_cache = k_cache.clone(), v_cache.clone()
    compute = torch.float64 if k_new.dtype == torch.float64 else torch.float32
    for b in range(k_new.shape[0]):
        start = int(cache_seqlens[b])
        for s in range(k_new.shape[1]):
            key = k_new[b, s].to(compute)
            if cos is not None:
                position = (int(pos[b]) if pos is not None else start) + s
                key = apply_rope(key, cos, sin, torch.tensor(position))
            row = start + s
            if block_table is None:
                index = (b, row)
            else:
                index = (int(block_table[b, row // k_cache.shape[1]]), row % k_cache.shape[1])
            k_cache[index] = key.to(k_cache.dtype)
            v_cache[index] = v_new[b, s]
    return k_cache, v_cache


def iha_attention(q, k, v, alpha_q, alpha_k, alpha_v, collapse, pseudo, cos=None, sin=None, window=None,
                  scale=None):
    batch, tokens, _, head_dim = q.shape

    def pseudo_sequence(t):
        return t.reshape(batch, tokens * pseudo, -1, head_dim)

    q_hat = pseudo_sequence(mix_heads(q, alpha_q, pseudo, cos, sin))
    k_hat = pseudo_sequence(mix_heads(k, alpha_k, pseudo, cos, sin))
    v_hat = pseudo_sequence(mix_heads(v, alpha_v, pseudo))
    window_left = -1 if window is None else window * pseudo - 1
    o_hat, _ = flash_attn(q_hat, k_hat, v_hat, scale, True, window_left, -1)
    return mix_heads(o_hat.reshape(batch, tokens, -1, head_dim), collapse)


def iha_layer(module, x):
    """headmix.nn.InterleavedHeadAttention's forward (no cache) with the reference ops."""
    b, n, dim = x.shape
    q, k, v = module.project(x)
    o = iha_attention(q, k, v, module.alpha_q, module.alpha_k, module.alpha_v, module.collapse,
                      module.pseudo, module.cos, module.sin, module.window)
    return module.out(o.reshape(b, n, dim))


def mea_layer(module, x):
    """headmix.nn.ExplicitMultiheadAttention's forward (no cache) with the reference ops."""
    b, n, _ = x.shape
    d = module.head_dim
    q, k, v = module.project(x)
    q = apply_rope(q, module.cos, module.sin, torch.arange(n, device=x.device)[:, None])
    k = mix_heads(k, module.w_lc_k, 1, module.cos, module.sin)
    v = mix_heads(v, module.w_lc_v)
    o, _ = flash_attn(q, k, v, causal=True)
    o = torch.nn.functional.rms_norm(o, (d,), eps=module.eps) * module.norm_weight
    return module.o_proj(o.reshape(b, n, -1))
