"""The CPU suite (`make bench` without a GPU): every op, layer and decode row of issue 15 as the
ratio headmix time / plain-PyTorch time (> 1: headmix is slower), fp32 and bf16, over a few
sequence lengths; JSON records and a PNG of ratio vs sequence length side by side.

Each row builds its inputs once, then alternates one headmix call and one baseline call for
--rounds rounds, so load that comes and goes hits both alike; the ratio of each round's pair is
kept and the median, 20th and 80th percentile of those ratios are reported, with the 1-minute
load average before and after the row. The baselines are what a user writes by hand
(headmix.composites and the demo's layer composites): einsum + RoPE, SDPA, einsum rebuild of the
cached heads + SDPA.

    python benchmarks/cpu_suite.py                       # fp32 and bf16, all groups
    python benchmarks/cpu_suite.py --dtype fp32 --groups decode --out benchmarks/out/decode
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

import headmix
from headmix import composites, demo, reference
from headmix.nn import ExplicitMultiheadAttention, InterleavedHeadAttention
from headmix.rope import pseudo_positions

# Timed as a serving loop runs decode: the caller keeps lengths right, no host check per call.
os.environ.setdefault("HEADMIX_CACHE_RANGE_CHECKS", "0")

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def randn(*shape, dtype, scale=1.0, grad=False):
    return (torch.randn(*shape) * scale).to(dtype).requires_grad_(grad)


def backward_of(forward, inputs, grad):
    """Timed calls run the backward alone over a graph built once (a training step's backward)."""
    out = forward()
    return lambda: torch.autograd.grad(out, inputs, grad, retain_graph=True)


# ------------------------------------------------------------------ rows: (name, length, ours, baseline)


def mix_rows(dtype, tokens_list, heads=8, pseudo=4, kv_heads=4, dim=64):
    shapes = {  # (H_in, H_out, pseudo, rope)
        "mix_heads expand+RoPE (IHA q/k)": (heads, pseudo * heads, pseudo, True),
        "mix_heads expand (IHA v)": (heads, pseudo * heads, pseudo, False),
        "mix_heads collapse P*H -> H": (pseudo * heads, heads, 1, False),
        "mix_heads MEA HLC": (kv_heads, kv_heads, 1, False),
        "mix_heads MEA HLC+RoPE": (kv_heads, kv_heads, 1, True),
    }
    for tokens in tokens_list:
        for name, (h_in, h_out, p, rope) in shapes.items():
            def build(backward, tokens=tokens, h_in=h_in, h_out=h_out, p=p, rope=rope):
                x = randn(1, tokens, h_in, dim, dtype=dtype, grad=backward)
                w = randn(h_in, h_out, dtype=dtype, scale=h_in**-0.5, grad=backward)
                cos = sin = rope_args = None
                if rope:
                    cos, sin = headmix.rope_tables(tokens * p, dim)
                    rope_args = (cos, sin, pseudo_positions(tokens, h_out, p))
                ours = lambda: headmix.mix_heads(x, w, pseudo=p, cos=cos, sin=sin)
                base = lambda: composites.mix_heads(x, w, rope_args)
                if not backward:
                    return ours, base
                g = randn(1, tokens, h_out, dim, dtype=dtype)
                return backward_of(ours, (x, w), g), backward_of(base, (x, w), g)
            yield f"{name} fwd", tokens, lambda b=build: b(False)
            yield f"{name} bwd", tokens, lambda b=build: b(True)


def attention_rows(dtype, seqlens, heads=8, dim=64):
    for seqlen in seqlens:
        for label, kv_heads in (("causal", heads), ("GQA H_kv=2 causal", 2)):
            def build(backward, seqlen=seqlen, kv_heads=kv_heads):
                q = randn(1, seqlen, heads, dim, dtype=dtype, grad=backward)
                k, v = (randn(1, seqlen, kv_heads, dim, dtype=dtype, grad=backward) for _ in range(2))
                ours = lambda: headmix.flash_attn(q, k, v, causal=True)
                base = lambda: composites.sdpa(q, k, v, causal=True)
                if not backward:
                    return ours, base
                g = randn(1, seqlen, heads, dim, dtype=dtype)
                return backward_of(ours, (q, k, v), g), backward_of(base, (q, k, v), g)
            yield f"flash_attn {label} fwd", seqlen, lambda b=build: b(False)
            yield f"flash_attn {label} bwd", seqlen, lambda b=build: b(True)


def _layer(module, dtype):
    """Parameters in dtype; the RoPE tables stay float32 (the ops require it)."""
    with torch.no_grad():
        for p in module.parameters():
            p.data = (p + 0.05 * torch.randn_like(p)).to(dtype)
    return module


def layer_rows(dtype, tokens_list, dim=256, heads=8, batch=2):
    for tokens in tokens_list:
        layers = {
            "IHA layer P=4": (lambda: InterleavedHeadAttention(dim, heads, pseudo_heads=4, max_seqlen=2 * tokens),
                              demo.iha_composite),
            "MEA layer H_kv=4": (lambda: ExplicitMultiheadAttention(dim, heads, num_kv_heads=4, max_seqlen=2 * tokens),
                                 demo.mea_composite),
        }
        for name, (make, composite) in layers.items():
            def build(backward, make=make, composite=composite, tokens=tokens):
                module = _layer(make(), dtype)
                x = randn(batch, tokens, dim, dtype=dtype)
                if backward:
                    return (lambda: demo.forward_backward(module, lambda m, t: m(t), x),
                            lambda: demo.forward_backward(module, composite, x))

                def forward_only(fn):
                    def call():
                        with torch.no_grad():
                            return fn(module, x)
                    return call
                return forward_only(lambda m, t: m(t)), forward_only(composite)
            yield f"{name} fwd", tokens, lambda b=build: b(False)
            yield f"{name} fwd+bwd", tokens, lambda b=build: b(True)


def _paged(cache, order, block_size):
    """The rows of a [1, L, H', d] cache in pages [num_blocks, block_size, H', d], page i of the
    sequence stored at block order[i] (the block table's row)."""
    pages = torch.empty(len(order), block_size, *cache.shape[2:], dtype=cache.dtype)
    pages[order] = cache[0].view(len(order), block_size, *cache.shape[2:])
    return pages


def decode_rows(dtype, iha_lengths, mea_lengths, heads=8, dim=64, pseudo=4, block_size=16):
    for length in iha_lengths:  # IHA: S_q = P pseudo-queries over H kv heads, bottom-right causal
        def build(paged, length=length):
            k, v = (randn(1, length, heads, dim, dtype=dtype) for _ in range(2))
            q = randn(1, pseudo, heads, dim, dtype=dtype)
            seqlens = torch.tensor([length], dtype=torch.int32)
            mask = reference.allowed_keys(pseudo, length, causal=True, device="cpu")
            base = lambda: composites.sdpa(q, k, v, mask=mask)
            if not paged:
                return (lambda: headmix.vhead_decode(q, k, v, seqlens)), base
            order = torch.randperm(length // block_size)
            k_pages, v_pages = _paged(k, order, block_size), _paged(v, order, block_size)
            table = order.view(1, -1).to(torch.int32)
            return (lambda: headmix.vhead_decode(q, k_pages, v_pages, seqlens, block_table=table)), base
        yield f"decode IHA S_q=P={pseudo}, contiguous", length, lambda b=build: b(False)
        yield f"decode IHA S_q=P={pseudo}, {block_size}-token pages", length, lambda b=build: b(True)
    for length in mea_lengths:  # MEA: one query token over H'=2 virtual heads rebuilt into H_kv=4
        def build_mea(length=length, virtual=2, kv_heads=4):
            k, v = (randn(1, length, virtual, dim, dtype=dtype) for _ in range(2))
            q = randn(1, 1, heads, dim, dtype=dtype)
            w_k, w_v = (randn(virtual, kv_heads, dtype=dtype, scale=virtual**-0.5) for _ in range(2))
            seqlens = torch.tensor([length], dtype=torch.int32)

            def base():
                keys = torch.einsum("btjd,jg->btgd", k, w_k)
                values = torch.einsum("btjd,jg->btgd", v, w_v)
                return composites.sdpa(q, keys, values)
            return (lambda: headmix.vhead_decode(q, k, v, seqlens, w_k=w_k, w_v=w_v)), base
        yield "decode MEA H'=2 -> H_kv=4", length, build_mea


GROUPS = {
    "ops": lambda dtype: [*mix_rows(dtype, (512, 2048)), *attention_rows(dtype, (512, 2048))],
    "layers": lambda dtype: list(layer_rows(dtype, (128, 256))),
    "decode": lambda dtype: list(decode_rows(dtype, (4096, 32768), (1024, 8192))),
}


# ------------------------------------------------------------------ measuring and writing


def load() -> float:
    return float(open("/proc/loadavg").read().split()[0])


def interleaved(ours, base, rounds, warmup=2):
    for _ in range(warmup):
        ours(), base()
    ratios, ours_ms, base_ms = [], [], []
    for _ in range(rounds):
        start = time.perf_counter()
        ours()
        middle = time.perf_counter()
        base()
        end = time.perf_counter()
        ours_ms.append((middle - start) * 1e3)
        base_ms.append((end - middle) * 1e3)
        ratios.append(ours_ms[-1] / base_ms[-1])
    ratios.sort()
    pick = lambda q: ratios[min(len(ratios) - 1, int(q * len(ratios)))]
    return {"ratio": statistics.median(ratios), "ratio_p20": pick(0.2), "ratio_p80": pick(0.8),
            "ms": statistics.median(ours_ms), "baseline_ms": statistics.median(base_ms)}


def run(groups, dtypes, rounds):
    records = [{"env": {"torch": torch.__version__, "threads": torch.get_num_threads(),
                        "cpu": platform.processor() or platform.machine(), "headmix": str(headmix.build_info),
                        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rounds": rounds}}]
    for dtype_name in dtypes:
        for group in groups:
            for name, length, build in GROUPS[group](DTYPES[dtype_name]):
                record = {"group": group, "row": name, "length": length, "dtype": dtype_name, "load_before": load()}
                torch.manual_seed(0)
                try:
                    record.update(interleaved(*build(), rounds))
                except Exception as error:  # a row that cannot run says why; the suite goes on
                    record["error"] = f"{type(error).__name__}: {error}".splitlines()[0]
                record["load_after"] = load()
                records.append(record)
                print(format_row(record), flush=True)
    return records


def format_row(r):
    head = f"{r['dtype']:4}  {r['row']:44} {r['length']:>6}"
    if "error" in r:
        return f"{head}  error: {r['error']}"
    return (f"{head}  ratio {r['ratio']:5.2f} [{r['ratio_p20']:4.2f}, {r['ratio_p80']:4.2f}]"
            f"  {r['ms']:9.2f} ms vs {r['baseline_ms']:9.2f} ms  load {r['load_before']:.1f}-{r['load_after']:.1f}")


def plot(records, path):
    """Ratio vs sequence length, one panel per (group, dtype), one line per row; False without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [r for r in records if "ratio" in r]
    panels = sorted({(r["group"], r["dtype"]) for r in rows})
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 3.2 * len(panels)), squeeze=False)
    for ax, (group, dtype) in zip(axes[:, 0], panels):
        for name in dict.fromkeys(r["row"] for r in rows if (r["group"], r["dtype"]) == (group, dtype)):
            points = sorted((r["length"], r) for r in rows if (r["group"], r["dtype"], r["row"]) == (group, dtype, name))
            lengths = [p[0] for p in points]
            ax.errorbar(lengths, [p[1]["ratio"] for p in points], marker="o", capsize=3, label=name,
                        yerr=[[p[1]["ratio"] - p[1]["ratio_p20"] for p in points],
                              [p[1]["ratio_p80"] - p[1]["ratio"] for p in points]])
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_ylim(0, 3)  # a loaded machine's outliers would squash the rest; the JSON has them
        ax.set_xscale("log", base=2)
        ax.set_title(f"{group}, {dtype}: headmix / PyTorch time (median, bars p20-p80, cut at 3; < 1 is faster)")
        ax.set_xlabel("sequence length (tokens; decode: cache rows)")
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", nargs="+", choices=list(DTYPES), default=list(DTYPES))
    parser.add_argument("--groups", nargs="+", choices=list(GROUPS), default=list(GROUPS))
    parser.add_argument("--rounds", type=int, default=9, help="interleaved (headmix, baseline) pairs per row")
    parser.add_argument("--out", default="benchmarks/out/cpu_suite", help="writes OUT.json and OUT.png")
    args = parser.parse_args(argv)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    print(f"headmix CPU suite: {torch.get_num_threads()} threads, torch {torch.__version__}, load {load():.1f}")
    records = run(args.groups, args.dtype, args.rounds)
    with open(args.out + ".json", "w") as f:
        json.dump(records, f, indent=1)
    drawn = plot(records, args.out + ".png")
    print(f"wrote {args.out}.json" + (f" and {args.out}.png" if drawn else " (no PNG: matplotlib is not installed)"))


if __name__ == "__main__":
    main()
