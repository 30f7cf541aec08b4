"""headmix.vhead_decode and headmix.kv_cache_append against the PyTorch composite.

Variants (one query token per sequence, every cache row valid):
  mea     MEA-compressed cache of H' virtual heads rebuilt into H_kv heads by w_k, w_v
          vs einsum rebuild of K and V, then SDPA(enable_gqa=True)
  gqa     plain GQA over an uncompressed cache of H_kv heads vs SDPA(enable_gqa=True)
  append  kv_cache_append of one token per sequence with RoPE into the H'-head cache
          vs apply_rope + an indexed write
Decode is memory-bound: bytes = the cache rows read + q read + out written (append: new rows
read and written).

    python benchmarks/bench_decode.py                  # CPU, --quick shapes
    python benchmarks/bench_decode.py --device cuda    # bf16, d = 128, H = 32, H_kv = 8, H' = 4
"""

from __future__ import annotations

import os

import torch

import cli
import headmix
from case import Case, randn
from headmix.composites import sdpa
from headmix.rope import apply_rope

# Time the kernels as a serving loop runs them, with the lengths kept right by the caller: no
# host check of them and no sync per call (HEADMIX_CACHE_RANGE_CHECKS, docs/ops.md).
os.environ.setdefault("HEADMIX_CACHE_RANGE_CHECKS", "0")


def decode_case(*, batch, cache_len, heads, kv_heads, virtual_heads, head_dim, device, dtype):
    """virtual_heads=None: plain GQA over a kv_heads cache; else an MEA cache of virtual_heads."""
    cache_heads = virtual_heads or kv_heads
    item = torch.empty((), dtype=dtype).element_size()
    traffic = (2 * batch * cache_len * cache_heads + 2 * batch * heads) * head_dim * item
    flops = 4 * batch * heads * cache_len * head_dim

    def build():
        k_cache, v_cache = (
            randn(batch, cache_len, cache_heads, head_dim, device=device, dtype=dtype) for _ in range(2)
        )
        seqlens = torch.full((batch,), cache_len, dtype=torch.int32, device=device)
        q = randn(batch, 1, heads, head_dim, device=device, dtype=dtype)
        w_k = w_v = None
        if virtual_heads:
            w_k, w_v = (
                randn(virtual_heads, kv_heads, device=device, dtype=dtype, scale=virtual_heads**-0.5)
                for _ in range(2)
            )

        def ours():
            return headmix.vhead_decode(q, k_cache, v_cache, seqlens, w_k=w_k, w_v=w_v)

        def baseline():
            keys, values = k_cache, v_cache
            if virtual_heads:  # K_g = sum_j w_k[j, g] K'_j, materialized as the composite must
                keys = torch.einsum("btjd,jg->btgd", k_cache, w_k)
                values = torch.einsum("btjd,jg->btgd", v_cache, w_v)
            return sdpa(q, keys, values)  # S_q = 1: headmix's bottom-right causal mask allows every row

        return ours, baseline

    shape = {"B": batch, "L": cache_len, "H": heads, "H_kv": kv_heads, "H'": virtual_heads, "d": head_dim}
    return Case("decode", "mea" if virtual_heads else "gqa", shape, build, traffic, flops)


def append_case(*, batch, cache_len, heads, head_dim, device, dtype):
    """One new token per sequence written at row cache_len - 1 of a cache of cache_len rows."""
    item = torch.empty((), dtype=dtype).element_size()
    table_bytes = 2 * batch * (head_dim // 2) * 4  # the cos and sin rows of the new positions
    traffic = 2 * 2 * batch * heads * head_dim * item + table_bytes  # k, v rows read and written

    def build():
        new_k, new_v = (randn(batch, 1, heads, head_dim, device=device, dtype=dtype) for _ in range(2))
        caches = randn(2, batch, cache_len, heads, head_dim, device=device, dtype=dtype)
        ours_k, ours_v = caches.clone().unbind(0)
        base_k, base_v = caches.unbind(0)
        seqlens = torch.full((batch,), cache_len - 1, dtype=torch.int32, device=device)
        cos, sin = headmix.rope_tables(cache_len, head_dim, device=device)
        rows, positions = torch.arange(batch, device=device), seqlens.long()

        def ours():
            headmix.kv_cache_append(new_k, new_v, ours_k, ours_v, seqlens, cos=cos, sin=sin)
            return ours_k, ours_v

        def baseline():
            base_k[rows, positions] = apply_rope(new_k[:, 0], cos, sin, positions[:, None])
            base_v[rows, positions] = new_v[:, 0]
            return base_k, base_v

        return ours, baseline

    shape = {"B": batch, "L": cache_len, "H'": heads, "d": head_dim}
    return Case("decode", "append", shape, build, traffic, 0.0)


def cases(args):
    common = dict(head_dim=args.head_dim, device=args.device, dtype=args.dtype)
    decode = [
        decode_case(batch=batch, cache_len=cache_len, heads=args.heads, kv_heads=args.kv_heads,
                    virtual_heads=virtual_heads, **common)
        for batch in args.batch
        for cache_len in args.cache_len
        for virtual_heads in (args.virtual_heads, None)
    ]
    append = [
        append_case(batch=batch, cache_len=args.cache_len[0], heads=args.virtual_heads, **common)
        for batch in args.batch
    ]
    return decode + append


def parse_args(argv=None):
    parser = cli.make_parser(__doc__)
    parser.add_argument("--batch", type=int, nargs="+", help="batch sizes (default 1 16 64; 1 4 with --quick)")
    parser.add_argument("--cache-len", type=int, nargs="+",
                        help="cached tokens per sequence (default 1024 8192 32768; 512 2048 with --quick)")
    parser.add_argument("--heads", type=int, help="H query heads (default 32; 8 with --quick)")
    parser.add_argument("--kv-heads", type=int, help="H_kv (default 8; 4 with --quick)")
    parser.add_argument("--virtual-heads", type=int, help="H' cached by MEA (default 4; 2 with --quick)")
    parser.add_argument("--head-dim", type=int, help="d (default 128; 64 with --quick)")
    return cli.parse_args(
        parser, argv,
        quick=dict(batch=[1, 4], cache_len=[512, 2048], heads=8, kv_heads=4, virtual_heads=2, head_dim=64),
        full=dict(batch=[1, 16, 64], cache_len=[1024, 8192, 32768], heads=32, kv_heads=8, virtual_heads=4,
                  head_dim=128),
    )


if __name__ == "__main__":
    arguments = parse_args()
    cli.main("decode", cases(arguments), arguments)
