"""Context-parallel (ring) flash attention on CPU with gloo: time against world size at a fixed
total sequence length, beside single-process flash_attn on the full sequence in the same run.

Each world size W spawns W processes with one thread each (so W ranks use W cores: on a
machine with fewer cores the ranks share them and the times say so). Per rank it times
  - ring fwd and fwd+bwd (``ring_flash_attn``, causal unless --no-causal),
  - one ring step's K/V exchange alone (``p2p.exchange`` of this rank's K/V block), and
  - one block's compute alone (``flash_attn`` of the local queries against a local-size,
    unmasked key block),
and reports the slowest rank (the ring moves at its pace). Exchange vs block compute is the
measured form of the GPU estimate in docs/context_parallel.md: communication hides under
compute when a step's exchange is shorter than its block.

    .venv/bin/python benchmarks/bench_context_parallel.py                 # N = 4096, W = 1 2 4
    .venv/bin/python benchmarks/bench_context_parallel.py --tokens 8192 --worlds 1 2
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist

import headmix
from headmix.distributed import ContextParallel, ring_flash_attn
from headmix.distributed import p2p
from headmix.distributed.plan import agree

OUT_DIR = Path(__file__).resolve().parent / "out"


def _median_ms(fn, warmup: int, reps: int, barrier=None) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        if barrier:
            barrier()  # every rank starts the rep together, so a rep times the ring, not the skew
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _inputs(args, tokens, seed):
    gen = torch.Generator().manual_seed(seed)
    shape_q = (args.batch, tokens, args.heads, args.head_dim)
    shape_kv = (args.batch, tokens, args.kv_heads, args.head_dim)
    return [torch.randn(s, generator=gen, requires_grad=True) for s in (shape_q, shape_kv, shape_kv)]


def _rank_main(rank, world, init_file, args, out_file):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=300))
    cp = ContextParallel(layout=args.layout)
    full = _inputs(args, args.tokens, 0)
    q, k, v = [cp.shard(t).detach().requires_grad_() for t in full]
    window = (args.window - 1, -1) if args.window else (-1, -1)
    kwargs = dict(layout=args.layout, causal=args.causal, window=window)
    barrier = dist.barrier
    out = ring_flash_attn(q, k, v, **kwargs)
    grad = torch.randn_like(out)

    def fwd():
        with torch.no_grad():
            ring_flash_attn(q, k, v, **kwargs)

    def fwd_bwd():
        torch.autograd.grad(ring_flash_attn(q, k, v, **kwargs), (q, k, v), grad)

    plan = agree(None, args.layout, q.shape[1], {}, None, "bench")
    k_in, v_in = torch.empty_like(k), torch.empty_like(v)

    def exchange():
        p2p.wait(p2p.exchange(plan, [k.detach(), v.detach()], (rank + 1) % world, [k_in, v_in],
                              (rank - 1) % world, p2p.TAG_KV))

    def block():
        with torch.no_grad():
            headmix.flash_attn(q, k, v)

    record = {
        "fwd_ms": _median_ms(fwd, args.warmup, args.reps, barrier),
        "fwd_bwd_ms": _median_ms(fwd_bwd, args.warmup, args.reps, barrier),
        "block_ms": _median_ms(block, args.warmup, args.reps),
        "exchange_ms": _median_ms(exchange, args.warmup, args.reps, barrier) if world > 1 else None,
        "ring_steps": plan.last_step(args.causal, window) + 1,
        "kv_bytes_per_step": (k.numel() + v.numel()) * k.element_size(),
    }
    dist.destroy_process_group()
    Path(out_file).write_text(json.dumps(record))


def _run_world(world, args):
    with tempfile.TemporaryDirectory() as tmp:
        ctx = multiprocessing.get_context("spawn")
        files = [os.path.join(tmp, f"rank{r}.json") for r in range(world)]
        procs = [ctx.Process(target=_rank_main, args=(r, world, os.path.join(tmp, "init"), args, files[r]))
                 for r in range(world)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        if any(p.exitcode for p in procs):
            raise RuntimeError(f"world {world}: rank exit codes {[p.exitcode for p in procs]}")
        ranks = [json.loads(Path(f).read_text()) for f in files]
    slowest = {key: max((r[key] for r in ranks), default=None) if ranks[0][key] is not None else None
               for key in ("fwd_ms", "fwd_bwd_ms", "block_ms", "exchange_ms")}
    return {"world": world, **slowest, "ring_steps": ranks[0]["ring_steps"],
            "kv_bytes_per_step": max(r["kv_bytes_per_step"] for r in ranks)}


def _single_process(args):
    torch.set_num_threads(1)
    q, k, v = _inputs(args, args.tokens, 0)
    window = (args.window - 1, -1) if args.window else (-1, -1)
    out = headmix.flash_attn(q, k, v, causal=args.causal, window=window)
    grad = torch.randn_like(out)

    def fwd():
        with torch.no_grad():
            headmix.flash_attn(q, k, v, causal=args.causal, window=window)

    def fwd_bwd():
        torch.autograd.grad(headmix.flash_attn(q, k, v, causal=args.causal, window=window), (q, k, v), grad)

    return {"fwd_ms": _median_ms(fwd, args.warmup, args.reps), "fwd_bwd_ms": _median_ms(fwd_bwd, args.warmup, args.reps)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=4096, help="total sequence length N")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--worlds", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--layout", choices=("zigzag", "contiguous"), default="zigzag")
    parser.add_argument("--causal", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--window", type=int, default=0, help="sliding window in keys (0 = none)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", type=Path, default=OUT_DIR / "bench_context_parallel.json")
    args = parser.parse_args(argv)

    base = _single_process(args)
    print(f"float32, B={args.batch} N={args.tokens} H={args.heads} H_kv={args.kv_heads} d={args.head_dim} "
          f"{'causal' if args.causal else 'full'}{f' window {args.window}' if args.window else ''}, "
          f"layout {args.layout}; {os.cpu_count()} cores, 1 thread per rank, load {os.getloadavg()[0]:.1f}")
    print(f"single process flash_attn: fwd {base['fwd_ms']:.1f} ms, fwd+bwd {base['fwd_bwd_ms']:.1f} ms")
    print(f"{'W':>2} {'steps':>5} {'fwd ms':>8} {'fwd+bwd ms':>10} {'vs 1 proc':>9} {'KiB/step':>8} "
          f"{'exchange ms':>11} {'block ms':>8}")
    records = []
    for world in args.worlds:
        r = _run_world(world, args)
        records.append(r)
        exchange = "-" if r["exchange_ms"] is None else f"{r['exchange_ms']:.2f}"
        print(f"{world:>2} {r['ring_steps']:>5} {r['fwd_ms']:>8.1f} {r['fwd_bwd_ms']:>10.1f} "
              f"{base['fwd_bwd_ms'] / r['fwd_bwd_ms']:>8.2f}x {r['kv_bytes_per_step'] / 1024:>8.0f} "
              f"{exchange:>11} {r['block_ms']:>8.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "bench": "context_parallel", "args": {k: str(v) for k, v in vars(args).items()},
        "torch": torch.__version__, "cores": os.cpu_count(), "load_average": os.getloadavg()[0],
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "single_process": base, "worlds": records}, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
