"""headmix.flash_attn and headmix.iha_attention against PyTorch, forward and backward.

Variants:
  causal  flash_attn(causal=True)           vs SDPA(is_causal=True); on CUDA once against each of
                                            SDPA's flash and cuDNN backends (the stronger one counts)
  gqa     flash_attn(causal=True) with H_kv < H key/value heads
                                            vs SDPA(is_causal=True, enable_gqa=True); neither
                                            repeats K/V
  window  flash_attn(window=(W - 1, 0))     vs SDPA with a dense boolean [S, S] mask
  iha     iha_attention (mix -> pseudo-head attention over N*P virtual tokens -> collapse)
          vs the reference-style composite: einsum + RoPE, SDPA with the dense flat-causal
          window mask, einsum
SDPA gets transposed [B, H, S, d] views of the very tensors headmix reads. FLOPs count only the
unmasked band: 4*B*H*pairs*d forward, 2.5x that backward (pairs = allowed (query, key) pairs),
plus the head-mixing GEMMs for iha.

    python benchmarks/bench_attention.py                  # CPU, --quick shapes
    python benchmarks/bench_attention.py --acceptance     # CPU acceptance: fp32, S = 8192 (minutes)
    python benchmarks/bench_attention.py --device cuda    # bf16, B*H = 32, d = 128, S = 1k..16k
"""

from __future__ import annotations

import torch

import cli
import headmix
from case import Case, grads_of, randn
from headmix import composites
from headmix.composites import SDPA_BACKENDS, sdpa
from headmix.reference import allowed_keys
from timing import GiB


def band_pairs(seqlen_q, seqlen_k, window_left):
    """Allowed (query, key) pairs of a causal mask with an optional left window (-1: none),
    queries bottom-right aligned: the useful work, computed per row without an [S, S] matrix."""
    key_pos = torch.arange(seqlen_q, dtype=torch.int64) + (seqlen_k - seqlen_q)
    first = (key_pos - window_left).clamp(min=0) if window_left >= 0 else torch.zeros_like(key_pos)
    last = key_pos.clamp(max=seqlen_k - 1)
    return int((last - first + 1).clamp(min=0).sum())


def attention_case(*, batch, seqlen, heads, head_dim, window, backward, device, dtype, targets=None,
                   backend=None, kv_heads=None):
    """window=None: causal; else the last `window` keys of each query, window=(window - 1, 0).
    backend: the SDPA backend of the baseline (None: PyTorch's choice). kv_heads: H_kv of k and
    v (None: H); fewer than H makes the GQA variant."""
    kv_heads = kv_heads or heads
    left = -1 if window is None else window - 1
    item = torch.empty((), dtype=dtype).element_size()
    head_bytes = batch * seqlen * head_dim * item
    flops = 4 * batch * heads * band_pairs(seqlen, seqlen, left) * head_dim
    # Forward reads q, k, v and writes out; backward reads q, k, v, out, dout, writes dq, dk, dv.
    traffic = (4 * heads + 4 * kv_heads if backward else 2 * heads + 2 * kv_heads) * head_bytes
    flops = 2.5 * flops if backward else flops

    def build():
        q = randn(batch, seqlen, heads, head_dim, device=device, dtype=dtype, requires_grad=backward)
        k, v = (
            randn(batch, seqlen, kv_heads, head_dim, device=device, dtype=dtype, requires_grad=backward)
            for _ in range(2)
        )
        mask = None if window is None else allowed_keys(seqlen, seqlen, window_left=left, window_right=0,
                                                        device=device)

        def ours():
            if window is None:
                return headmix.flash_attn(q, k, v, causal=True)
            return headmix.flash_attn(q, k, v, window=(left, 0))

        def baseline():
            return sdpa(q, k, v, mask=mask, causal=mask is None, backend=backend)

        if not backward:
            return ours, baseline
        grad = randn(batch, seqlen, heads, head_dim, device=device, dtype=dtype)
        return grads_of(ours, (q, k, v), grad), grads_of(baseline, (q, k, v), grad)

    kind = "window" if window is not None else "gqa" if kv_heads != heads else "causal"
    variant = kind + ("_bwd" if backward else "_fwd")
    shape = {"B": batch, "S": seqlen, "H": heads, "H_kv": kv_heads, "d": head_dim, "window": window,
             "sdpa": backend or "auto"}
    return Case("attention", variant, shape, build, traffic, flops, targets or {})


def iha_case(*, batch, tokens, heads, pseudo, head_dim, window, backward, device, dtype):
    """The IHA layer core; window in original tokens (window*P virtual ones)."""
    seqlen = tokens * pseudo
    left = window * pseudo - 1
    attention_flops = 4 * batch * heads * band_pairs(seqlen, seqlen, left) * head_dim
    mix_flops = 4 * 2 * batch * tokens * heads * (pseudo * heads) * head_dim  # q, k, v expand + collapse
    flops = 2.5 * attention_flops + 2 * mix_flops if backward else attention_flops + mix_flops

    def build():
        def weights(rows, cols):
            return randn(rows, cols, device=device, dtype=dtype, scale=rows**-0.5, requires_grad=backward)

        q, k, v = (
            randn(batch, tokens, heads, head_dim, device=device, dtype=dtype, requires_grad=backward)
            for _ in range(3)
        )
        alpha_q, alpha_k, alpha_v = (weights(heads, pseudo * heads) for _ in range(3))
        collapse = weights(pseudo * heads, heads)
        cos, sin = headmix.rope_tables(seqlen, head_dim, device=device)
        mask = allowed_keys(seqlen, seqlen, window_left=left, window_right=0, device=device)

        def ours():
            return headmix.iha_attention(q, k, v, alpha_q, alpha_k, alpha_v, collapse, pseudo=pseudo,
                                         cos=cos, sin=sin, window=window)

        def baseline():
            return composites.iha_attention(q, k, v, alpha_q, alpha_k, alpha_v, collapse, pseudo=pseudo, cos=cos,
                                            sin=sin, mask=mask)

        if not backward:
            return ours, baseline
        inputs = (q, k, v, alpha_q, alpha_k, alpha_v, collapse)
        grad = randn(batch, tokens, heads, head_dim, device=device, dtype=dtype)
        return grads_of(ours, inputs, grad), grads_of(baseline, inputs, grad)

    shape = {"B": batch, "N": tokens, "H": heads, "P": pseudo, "d": head_dim, "window": window}
    return Case("attention", "iha_bwd" if backward else "iha_fwd", shape, build, 0.0, flops)


def acceptance_cases(args):
    """The CPU acceptance shapes: fp32, B = 1, S = 8192, H = 8, d = 64; causal vs SDPA(is_causal)
    and a 512-token window vs SDPA with a dense mask. headmix must stay under 1 GiB of peak
    memory, and the windowed forward must be at least 4x faster than the dense-mask SDPA."""
    common = dict(batch=1, seqlen=8192, heads=8, head_dim=64, device=args.device, dtype=torch.float32)
    return [
        attention_case(
            window=window, backward=backward, **common,
            targets={"max_peak_mem": GiB, **({"min_speedup": 4.0} if window and not backward else {})},
        )
        for window in (None, 512)
        for backward in (False, True)
    ]


def cases(args):
    if args.acceptance:
        return acceptance_cases(args)
    common = dict(heads=args.heads, head_dim=args.head_dim, device=args.device, dtype=args.dtype)
    batch = max(1, args.batch_heads // args.heads)
    # A dense mask rules SDPA's flash backend out, and not every backend takes enable_gqa, so only
    # the causal MHA cases pin backends.
    causal_backends = list(SDPA_BACKENDS) if args.device.type == "cuda" else [None]
    # (window, kv_heads) per variant: causal, gqa (when --kv-heads < --heads), window.
    variants = [(None, None)] + ([(None, args.kv_heads)] if args.kv_heads < args.heads else []) + [(args.window, None)]
    attention = [
        attention_case(batch=batch, seqlen=seqlen, window=window, kv_heads=kv_heads, backward=backward,
                       backend=backend, **common)
        for seqlen in args.seqlens
        for window, kv_heads in variants
        for backend in (causal_backends if window is None and kv_heads is None else [None])
        for backward in (False, True)
    ]
    iha = [
        iha_case(batch=1, tokens=tokens, pseudo=args.pseudo, window=args.iha_window, backward=backward, **common)
        for tokens in args.iha_tokens
        for backward in (False, True)
    ]
    return attention + iha


def parse_args(argv=None):
    parser = cli.make_parser(__doc__)
    parser.add_argument("--acceptance", action="store_true",
                        help="run only the CPU acceptance cases (fp32, S = 8192) and check their targets")
    parser.add_argument("--seqlens", type=int, nargs="+",
                        help="S (default 1024 2048 4096 8192 16384; 1024 with --quick)")
    parser.add_argument("--batch-heads", type=int, help="B*H, B = this // H (default 32; 4 with --quick)")
    parser.add_argument("--heads", type=int, help="H (default 16; 4 with --quick)")
    parser.add_argument("--kv-heads", type=int, help="H_kv of the gqa variant (default 4; 1 with --quick)")
    parser.add_argument("--head-dim", type=int, help="d (default 128; 64 with --quick)")
    parser.add_argument("--window", type=int, help="keys per query of the window variant (default 512; 128)")
    parser.add_argument("--iha-tokens", type=int, nargs="+", help="IHA N (default 2048 4096 8192; 256 with --quick)")
    parser.add_argument("--pseudo", type=int,
                        help="IHA P (default 4: with P = 16 the dense-mask baseline needs a (N*P)^2 mask; 4)")
    parser.add_argument("--iha-window", type=int, help="IHA window in original tokens (default 512; 32)")
    return cli.parse_args(
        parser, argv,
        quick=dict(seqlens=[1024], batch_heads=4, heads=4, kv_heads=1, head_dim=64, window=128, iha_tokens=[256],
                   pseudo=4, iha_window=32),
        full=dict(seqlens=[1024, 2048, 4096, 8192, 16384], batch_heads=32, heads=16, kv_heads=4, head_dim=128,
                  window=512, iha_tokens=[2048, 4096, 8192], pseudo=4, iha_window=512),
    )


if __name__ == "__main__":
    arguments = parse_args()
    cli.main("attention_acceptance" if arguments.acceptance else "attention", cases(arguments), arguments)
