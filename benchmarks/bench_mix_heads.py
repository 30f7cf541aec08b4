"""headmix.mix_heads against the PyTorch composite, forward and backward (dx, dw).

Variants (docs/math.md "IHA", "MEA"):
  expand    IHA query/key expansion with RoPE, H -> P*H heads, rotated at n*P + p
  collapse  IHA output collapse, P*H -> H heads
  hlc       MEA head-level composition of the kv heads, H_kv -> H_kv
The baseline is what a model without headmix runs on the same inputs: einsum, then
headmix.rope.apply_rope, then .contiguous(). With K = H_in <= a few hundred these GEMMs sit far
below the ridge point, so the roofline is bytes: inputs read once + outputs written once.

    python benchmarks/bench_mix_heads.py                # CPU: --quick shapes, fp32
    python benchmarks/bench_mix_heads.py --device cuda  # bf16, 16384 tokens, H = P = 16, d = 128
"""

from __future__ import annotations

import torch

import cli
import headmix
from case import Case, grads_of, randn
from headmix import composites
from headmix.rope import pseudo_positions


def mix_case(variant, *, batch, tokens, heads_in, heads_out, pseudo, head_dim, rope, backward, device, dtype):
    item = torch.empty((), dtype=dtype).element_size()
    x_bytes = batch * tokens * heads_in * head_dim * item
    y_bytes = batch * tokens * heads_out * head_dim * item
    w_bytes = heads_in * heads_out * item
    # A fused kernel reads the tables' rows for the N*P positions in use: cos and sin, float32.
    table_bytes = 2 * tokens * pseudo * (head_dim // 2) * 4 if rope else 0
    flops = 2 * batch * tokens * heads_in * heads_out * head_dim
    if backward:  # reads grad, x, w, tables; writes dx, dw. Two GEMMs (dx and dw).
        traffic, flops = y_bytes + 2 * x_bytes + 2 * w_bytes + table_bytes, 2 * flops
    else:
        traffic = x_bytes + w_bytes + table_bytes + y_bytes

    def build():
        x = randn(batch, tokens, heads_in, head_dim, device=device, dtype=dtype, requires_grad=backward)
        w = randn(heads_in, heads_out, device=device, dtype=dtype, scale=heads_in**-0.5,
                         requires_grad=backward)
        cos = sin = rope_args = None
        if rope:
            cos, sin = headmix.rope_tables(tokens * pseudo, head_dim, device=device)
            rope_args = (cos, sin, pseudo_positions(tokens, heads_out, pseudo, device=device))

        def ours():
            return headmix.mix_heads(x, w, pseudo=pseudo, cos=cos, sin=sin)

        def baseline():
            return composites.mix_heads(x, w, rope_args)

        if not backward:
            return ours, baseline
        grad = randn(batch, tokens, heads_out, head_dim, device=device, dtype=dtype)
        return grads_of(ours, (x, w), grad), grads_of(baseline, (x, w), grad)

    shape = {"B": batch, "N": tokens, "H_in": heads_in, "H_out": heads_out, "P": pseudo, "d": head_dim}
    return Case("mix_heads", f"{variant}_{'bwd' if backward else 'fwd'}", shape, build, traffic, flops)


def cases(args):
    heads, pseudo = args.heads, args.pseudo
    shapes = {
        "expand": dict(heads_in=heads, heads_out=pseudo * heads, pseudo=pseudo, rope=True),
        "collapse": dict(heads_in=pseudo * heads, heads_out=heads, pseudo=1, rope=False),
        "hlc": dict(heads_in=args.kv_heads, heads_out=args.kv_heads, pseudo=1, rope=False),
    }
    return [
        mix_case(variant, batch=1, tokens=args.tokens, head_dim=args.head_dim, backward=backward,
                 device=args.device, dtype=args.dtype, **shape)
        for variant, shape in shapes.items()
        for backward in (False, True)
    ]


def parse_args(argv=None):
    parser = cli.make_parser(__doc__)
    parser.add_argument("--tokens", type=int, help="B*N tokens (default 16384; 1024 with --quick)")
    parser.add_argument("--heads", type=int, help="H (default 16; 8 with --quick)")
    parser.add_argument("--pseudo", type=int, help="P pseudo-heads per head (default 16; 8 with --quick)")
    parser.add_argument("--kv-heads", type=int, help="H_kv mixed by the MEA hlc case (default 8; 4 with --quick)")
    parser.add_argument("--head-dim", type=int, help="d (default 128; 64 with --quick)")
    return cli.parse_args(
        parser, argv,
        quick=dict(tokens=1024, heads=8, pseudo=8, kv_heads=4, head_dim=64),
        full=dict(tokens=16384, heads=16, pseudo=16, kv_heads=8, head_dim=128),
    )


if __name__ == "__main__":
    arguments = parse_args()
    cli.main("mix_heads", cases(arguments), arguments)
