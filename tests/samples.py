"""One sample-input generator per op: fresh random inputs that feed the correctness, gradient,
opcheck and torch.compile tests.

A Sample holds the op's schema arguments by name, in schema order, so ``op(*sample.args)``
calls ``torch.ops.headmix.<op>`` and ``reference.<op>(**sample.kwargs)`` the reference.
KV caches are poisoned: rows >= cache_seqlens[b] and pages no sequence owns hold NaN, so a
kernel that reads them shows it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import headmix
from headmix import reference

NAN = float("nan")


@dataclass
class Sample:
    name: str
    kwargs: dict

    @property
    def args(self) -> tuple:
        return tuple(self.kwargs.values())

    def __repr__(self) -> str:
        return f"Sample({self.name})"


def clone_args(sample: Sample) -> Sample:
    """A copy whose tensors are fresh clones (for ops that write in place)."""
    return Sample(sample.name, {k: v.clone() if torch.is_tensor(v) else v for k, v in sample.kwargs.items()})


def to_float64(sample: Sample) -> Sample:
    """The same inputs, floating tensors upcast exactly to float64 (the reference's precision)."""
    return Sample(
        sample.name,
        {k: v.double() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in sample.kwargs.items()},
    )


def poison_cuda_allocator():
    """Fill freed blocks of the caching allocator with NaN so unwritten outputs show."""
    junk = torch.full((64 << 20,), NAN, device="cuda")
    del junk


def _randn(*shape, device, dtype):
    return torch.randn(*shape, device=device, dtype=torch.float64).to(dtype)


def _int32(values, device):
    return torch.tensor(values, dtype=torch.int32, device=device)


def _rope(max_pos, rotary_dim, device):
    if rotary_dim is None:
        return None, None
    return headmix.rope_tables(max_pos, rotary_dim, device=device)


# ---------------------------------------------------------------- mix_heads


def _mix_heads(name, device, dtype, *, batch, tokens, heads_in, heads_out, head_dim, pseudo=1,
               rotary_dim=None, pos_offset=0, packed=False):
    if packed:  # x is the first H_in heads of a fused [B, N, 3*H_in, d] projection: strided
        x = _randn(batch, tokens, 3 * heads_in, head_dim, device=device, dtype=dtype)[:, :, :heads_in]
    else:
        x = _randn(batch, tokens, heads_in, head_dim, device=device, dtype=dtype)
    w = _randn(heads_in, heads_out, device=device, dtype=dtype) / heads_in**0.5
    # The table holds exactly the positions the tokens need, so an off-by-one read fails.
    cos, sin = _rope(pos_offset + tokens * pseudo, rotary_dim, device)
    kwargs = dict(x=x, w=w, pseudo=pseudo, cos=cos, sin=sin, pos_offset=pos_offset)
    return Sample(name, kwargs)


def mix_heads_samples(device, dtype):
    common = dict(device=device, dtype=dtype)
    yield _mix_heads("P=1, no rope", **common, batch=2, tokens=3, heads_in=4, heads_out=4, head_dim=8)
    yield _mix_heads("P=2, full rope", **common, batch=2, tokens=3, heads_in=4, heads_out=8, head_dim=8,
                     pseudo=2, rotary_dim=8)
    yield _mix_heads("P=4, partial rope, pos_offset=5", **common, batch=1, tokens=3, heads_in=2, heads_out=8,
                     head_dim=8, pseudo=4, rotary_dim=4, pos_offset=5)
    yield _mix_heads("H_in=3 -> H_out=4, P=2, rope 2 of d=6", **common, batch=2, tokens=2, heads_in=3,
                     heads_out=4, head_dim=6, pseudo=2, rotary_dim=2, pos_offset=1)
    yield _mix_heads("strided x from packed qkv, P=2, rope", **common, batch=2, tokens=3, heads_in=2,
                     heads_out=4, head_dim=8, pseudo=2, rotary_dim=8, packed=True)


def mix_heads_many_blocks_sample(device, dtype):
    """More tokens than one block of the CPU forward and backward (a 256 KiB buffer: 16 tokens at H_out = 64,
    d = 64): several blocks per thread, a partial last block, blocks across the batch boundary,
    packed (strided) x and RoPE at pseudo positions. Too large for gradcheck."""
    return _mix_heads("many token blocks, P=8, rope, packed x", device, dtype, batch=2, tokens=37, heads_in=8,
                      heads_out=64, head_dim=64, pseudo=8, rotary_dim=64, pos_offset=3, packed=True)


# ---------------------------------------------------------------- flash attention


def flash_attn_sample(name, device, dtype, *, batch, seqlen_q, seqlen_k, heads, kv_heads, head_dim,
                      head_dim_v=None, scale=None, causal=False, window=(-1, -1)):
    kwargs = dict(
        q=_randn(batch, seqlen_q, heads, head_dim, device=device, dtype=dtype),
        k=_randn(batch, seqlen_k, kv_heads, head_dim, device=device, dtype=dtype),
        v=_randn(batch, seqlen_k, kv_heads, head_dim_v or head_dim, device=device, dtype=dtype),
        scale=scale,
        causal=causal,
        window_left=window[0],
        window_right=window[1],
    )
    return Sample(name, kwargs)


def flash_attn_samples(device, dtype, *, long=True):
    """``long`` adds a case spanning several of the CPU kernel's 128-row / 256-key blocks."""
    common = dict(device=device, dtype=dtype)
    yield flash_attn_sample("MHA, S_q = S_k", **common, batch=2, seqlen_q=5, seqlen_k=5, heads=2, kv_heads=2,
                            head_dim=8)
    yield flash_attn_sample("MHA, causal, S_q = S_k", **common, batch=2, seqlen_q=6, seqlen_k=6, heads=3, kv_heads=3,
                            head_dim=8, causal=True)
    yield flash_attn_sample("GQA 2, causal, S_q < S_k", **common, batch=2, seqlen_q=3, seqlen_k=7, heads=4, kv_heads=2,
                            head_dim=8, causal=True)
    yield flash_attn_sample("GQA 4, causal, S_q > S_k (empty rows)", **common, batch=1, seqlen_q=7, seqlen_k=3, heads=4,
                            kv_heads=1, head_dim=8, causal=True)
    yield flash_attn_sample("GQA 4, causal, S_q = S_k", **common, batch=2, seqlen_q=6, seqlen_k=6, heads=4, kv_heads=1,
                            head_dim=8, causal=True)
    yield flash_attn_sample("window left only", **common, batch=1, seqlen_q=9, seqlen_k=9, heads=2, kv_heads=1,
                            head_dim=8, window=(2, -1))
    yield flash_attn_sample("window left+right, S_q < S_k, d_v < d", **common, batch=2, seqlen_q=4, seqlen_k=9, heads=2,
                            kv_heads=2, head_dim=8, head_dim_v=4, window=(2, 1))
    yield flash_attn_sample("window right only, S_q > S_k (empty rows)", **common, batch=1, seqlen_q=6, seqlen_k=3,
                            heads=4, kv_heads=2, head_dim=8, window=(-1, 1))
    yield flash_attn_sample("causal + window left, scale=0.5, d_v > d", **common, batch=1, seqlen_q=8, seqlen_k=8,
                            heads=2, kv_heads=2, head_dim=6, head_dim_v=10, scale=0.5, causal=True, window=(3, -1))
    if long:
        yield flash_attn_sample("long: causal + window 300, S_q=260, S_k=600", **common, batch=1, seqlen_q=260,
                                seqlen_k=600, heads=2, kv_heads=1, head_dim=8, causal=True, window=(300, -1))


def rows_without_keys(sample: Sample) -> torch.Tensor:
    """Boolean [S_q]: query rows of a flash_attn sample that see no key (out 0, lse -inf)."""
    s = sample.kwargs
    allowed = reference.allowed_keys(s["q"].shape[1], s["k"].shape[1], s["causal"], s["window_left"],
                                     s["window_right"], s["q"].device)
    return ~allowed.any(-1)


# ---------------------------------------------------------------- KV caches


def _poisoned_rows(seqlens, capacity, heads, head_dim, *, device, dtype):
    """[B, capacity, H', d]: random rows [0, seqlens[b]) and NaN after them."""
    rows = _randn(len(seqlens), capacity, heads, head_dim, device=device, dtype=dtype)
    unused = torch.arange(capacity, device=device)[None, :] >= torch.tensor(seqlens, device=device)[:, None]
    rows[unused] = NAN
    return rows


def _paged(rows, block_table, num_blocks):
    """rows [B, capacity, H', d] scattered into NaN pages [num_blocks, block_size, H', d]."""
    block_size = rows.shape[1] // block_table.shape[1]
    cache = rows.new_full((num_blocks, block_size, *rows.shape[2:]), NAN)
    cache[block_table.flatten().long()] = rows.reshape(-1, block_size, *rows.shape[2:])
    return cache


def _caches(seqlens, capacity, heads, head_dim, head_dim_v, *, block_size, device, dtype):
    """k_cache, v_cache, block_table with NaN wherever no valid row lives.

    block_size None: contiguous [B, capacity, H', d] and no block_table. Otherwise paged
    [num_blocks, block_size, H', d] with two spare pages that no sequence owns, and a
    block_table [B, capacity / block_size] taken from a random permutation of the pages.
    """
    k_rows = _poisoned_rows(seqlens, capacity, heads, head_dim, device=device, dtype=dtype)
    v_rows = _poisoned_rows(seqlens, capacity, heads, head_dim_v, device=device, dtype=dtype)
    if block_size is None:
        return k_rows, v_rows, None
    batch, blocks_per_seq = len(seqlens), capacity // block_size
    num_blocks = batch * blocks_per_seq + 2
    pages = torch.randperm(num_blocks, device=device)
    block_table = pages[: batch * blocks_per_seq].view(batch, blocks_per_seq).to(torch.int32)
    return _paged(k_rows, block_table, num_blocks), _paged(v_rows, block_table, num_blocks), block_table


def empty_caches(batch, capacity, heads, head_dim, *, block_size=None, device, dtype):
    """All-NaN k_cache, v_cache (and a permuted block_table when paged) holding no rows yet."""
    return _caches([0] * batch, capacity, heads, head_dim, head_dim, block_size=block_size, device=device,
                   dtype=dtype)


# ---------------------------------------------------------------- vhead_decode


def vhead_decode_sample(name, device, dtype, *, seqlen_q, heads, kv_heads, cache_heads, head_dim, seqlens, capacity,
                        head_dim_v=None, block_size=None, virtual=False, scale=None, causal=True, window_left=-1):
    head_dim_v = head_dim_v or head_dim
    k_cache, v_cache, block_table = _caches(seqlens, capacity, cache_heads, head_dim, head_dim_v,
                                            block_size=block_size, device=device, dtype=dtype)
    if virtual:
        w_k = _randn(cache_heads, kv_heads, device=device, dtype=dtype)
        w_v = _randn(cache_heads, kv_heads, device=device, dtype=dtype)
    else:
        w_k = w_v = None
    kwargs = dict(
        q=_randn(len(seqlens), seqlen_q, heads, head_dim, device=device, dtype=dtype),
        k_cache=k_cache,
        v_cache=v_cache,
        cache_seqlens=_int32(seqlens, device),
        w_k=w_k,
        w_v=w_v,
        block_table=block_table,
        scale=scale,
        causal=causal,
        window_left=window_left,
    )
    return Sample(name, kwargs)


def vhead_decode_samples(device, dtype):
    common = dict(device=device, dtype=dtype)
    yield vhead_decode_sample("contiguous, GQA 2, S_q=1, ragged seqlens with 0", **common, seqlen_q=1, heads=4,
                              kv_heads=2, cache_heads=2, head_dim=8, seqlens=[5, 0, 9], capacity=12)
    yield vhead_decode_sample("contiguous, virtual heads H'=2 < H_kv=4, S_q=2", **common, seqlen_q=2, heads=4,
                              kv_heads=4, cache_heads=2, head_dim=8, seqlens=[7, 3], capacity=8, virtual=True)
    yield vhead_decode_sample("paged bs=4, virtual heads H'=2 < H_kv=4, S_q=4 (IHA P=4), d_v < d, seqlen < S_q",
                              **common, seqlen_q=4, heads=8, kv_heads=4, cache_heads=2, head_dim=8, head_dim_v=4,
                              seqlens=[10, 0, 3], capacity=12, block_size=4, virtual=True)
    yield vhead_decode_sample("paged bs=16, GQA 4, S_q=2, window_left=5", **common, seqlen_q=2, heads=8, kv_heads=2,
                              cache_heads=2, head_dim=8, seqlens=[20, 33], capacity=48, block_size=16, window_left=5)
    yield vhead_decode_sample("contiguous, non-causal, scale=0.7", **common, seqlen_q=2, heads=2, kv_heads=1,
                              cache_heads=1, head_dim=8, seqlens=[4, 1], capacity=6, scale=0.7, causal=False)
    yield vhead_decode_sample("paged bs=16, 300 rows (several key blocks), virtual heads H'=1 < H_kv=2", **common,
                              seqlen_q=1, heads=4, kv_heads=2, cache_heads=1, head_dim=8, seqlens=[300, 17],
                              capacity=320, block_size=16, virtual=True)


# ---------------------------------------------------------------- kv_cache_append


def kv_cache_append_sample(name, device, dtype, *, new_rows, cache_heads, head_dim, seqlens, capacity, head_dim_v=None,
                           block_size=None, rotary_dim=None, pos=None):
    head_dim_v = head_dim_v or head_dim
    k_cache, v_cache, block_table = _caches(seqlens, capacity, cache_heads, head_dim, head_dim_v,
                                            block_size=block_size, device=device, dtype=dtype)
    starts = pos if pos is not None else seqlens
    cos, sin = _rope(max(starts) + new_rows, rotary_dim, device)
    batch = len(seqlens)
    kwargs = dict(
        k_new=_randn(batch, new_rows, cache_heads, head_dim, device=device, dtype=dtype),
        v_new=_randn(batch, new_rows, cache_heads, head_dim_v, device=device, dtype=dtype),
        k_cache=k_cache,
        v_cache=v_cache,
        cache_seqlens=_int32(seqlens, device),
        block_table=block_table,
        cos=cos,
        sin=sin,
        pos=None if pos is None else _int32(pos, device),
    )
    return Sample(name, kwargs)


def kv_cache_append_samples(device, dtype):
    common = dict(device=device, dtype=dtype)
    yield kv_cache_append_sample("contiguous, no rope, S_new=1, ragged seqlens with 0, fills to capacity", **common,
                                 new_rows=1, cache_heads=2, head_dim=8, seqlens=[4, 0, 7], capacity=8)
    yield kv_cache_append_sample("contiguous, full rope, S_new=3", **common, new_rows=3, cache_heads=2, head_dim=8,
                                 seqlens=[0, 5], capacity=9, rotary_dim=8)
    yield kv_cache_append_sample("paged bs=4, partial rope, crosses a page, d_v < d", **common, new_rows=2,
                                 cache_heads=2, head_dim=8, head_dim_v=6, seqlens=[3, 6], capacity=12, block_size=4,
                                 rotary_dim=4)
    yield kv_cache_append_sample("paged bs=16, rope at explicit pos", **common, new_rows=4, cache_heads=1, head_dim=8,
                                 seqlens=[2, 17], capacity=32, block_size=16, rotary_dim=8, pos=[7, 40])


def append_index(sample: Sample) -> tuple[torch.Tensor, torch.Tensor]:
    """Where a kv_cache_append sample writes: cache[index][b, s] is the row of new token s of
    sequence b ((sequence, row) contiguous, (page, offset) paged)."""
    s = sample.kwargs
    rows = s["cache_seqlens"].long()[:, None] + torch.arange(s["k_new"].shape[1], device=s["k_new"].device)
    if s["block_table"] is None:
        return torch.arange(rows.shape[0], device=rows.device)[:, None].expand_as(rows), rows
    block_size = s["k_cache"].shape[1]
    return s["block_table"].long().gather(1, rows // block_size), rows % block_size


# ---------------------------------------------------------------- gradients


def _leaf(t: torch.Tensor) -> torch.Tensor:
    """A copy of t with t's strides (a strided input stays strided) that requires grad."""
    leaf = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=t.device)
    return leaf.copy_(t).requires_grad_()


def with_grad(sample: Sample, names) -> Sample:
    """A copy where the named inputs are fresh leaves that require grad."""
    return Sample(sample.name, {**sample.kwargs, **{name: _leaf(sample.kwargs[name]) for name in names}})


def input_grads(fn, sample: Sample, names, grad_outputs):
    """Gradients of fn(sample) w.r.t. the named inputs, given the gradients of its outputs."""
    sample = with_grad(sample, names)
    return torch.autograd.grad(fn(sample), [sample.kwargs[name] for name in names], grad_outputs)
