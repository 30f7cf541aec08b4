"""Shared machinery of the headmix benchmarks (STYLE.md rule 8): timing, the measured peaks,
peak memory, the command line, the printed table and the JSON records.

A bench describes its work as a list of `Case`s; `main` runs each case's headmix function and
its PyTorch baseline on the same inputs, checks that they agree, times both, measures their
peak memory and prints every figure beside the copy bandwidth and GEMM rate measured on the
same device in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import gc
import json
import os
import re
import time
from pathlib import Path
from typing import Callable

import torch

try:
    import triton.testing as triton_testing
except ImportError:  # CPU machines; the CUDA-event loop below does the same job
    triton_testing = None

import headmix

OUT_DIR = Path(__file__).resolve().parent / "out"
# Bigger than the L2 of any current GPU (50 MB on H100), so writing it evicts every input.
L2_FLUSH_BYTES = 256 * 2**20
DTYPES = {
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16,
    "fp32": torch.float32, "float32": torch.float32,
    "fp64": torch.float64, "float64": torch.float64,
}
# rel_err above which a row is flagged: headmix and the baseline round at different points,
# so half-precision results differ by a few ulps of bf16 (2^-8) relative to the largest output.
AGREEMENT = {torch.float64: 1e-9, torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 5e-2}
GiB = 2**30
MiB = 2**20


# ---------------------------------------------------------------- timing


@contextlib.contextmanager
def nvtx_range(name: str, device: torch.device):
    """Nested NVTX push/pop ranges, one per '/'-separated part of name.

    Nsight Compute reads '/' in --nvtx-include as nesting, so "headmix/attention/causal_fwd"
    pushed as three ranges is matched by `--nvtx-include "headmix/"`; one range whose name
    contains slashes would match nothing.
    """
    parts = name.split("/") if device.type == "cuda" else []
    for part in parts:
        torch.cuda.nvtx.range_push(part)
    try:
        yield
    finally:
        for _ in parts:
            torch.cuda.nvtx.range_pop()


def _summary(times_ms) -> dict:
    q = torch.tensor(times_ms, dtype=torch.float64).quantile(
        torch.tensor([0.5, 0.0, 0.2, 0.8], dtype=torch.float64)
    )
    median, low, p20, p80 = q.tolist()
    return {"median_ms": median, "min_ms": low, "p20_ms": p20, "p80_ms": p80}


def _cpu_times(fn, warmup, reps):
    # CPU ops return when done, so wall time is op time; perf_counter is monotonic and ns-grained.
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _cuda_event_times(fn, name, device, warmup, reps):
    flush = torch.empty(L2_FLUSH_BYTES, dtype=torch.int8, device=device)
    for _ in range(warmup):
        fn()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for start, end in zip(starts, ends):
        flush.zero_()  # outside the events: each rep reads its inputs from HBM, not from L2
        with nvtx_range(name, device):
            start.record()
            fn()
            end.record()
    torch.cuda.synchronize(device)
    return [start.elapsed_time(end) for start, end in zip(starts, ends)]


def _do_bench_summary(fn, name, device, warmup, reps):
    # do_bench takes time budgets in ms, not counts, and flushes L2 with its own 256 MB buffer
    # before every rep; three event-timed calls give the per-call time to turn counts into ms.
    per_call = _summary(_cuda_event_times(fn, name, device, 1, 3))["median_ms"]

    def ranged():
        with nvtx_range(name, device):
            fn()

    median, low, p20, p80 = triton_testing.do_bench(
        ranged, warmup=max(warmup, 1) * per_call, rep=reps * per_call, quantiles=[0.5, 0.0, 0.2, 0.8]
    )
    return {"median_ms": median, "min_ms": low, "p20_ms": p20, "p80_ms": p80}


def measure(fn: Callable, *, name: str, device: torch.device, warmup: int, reps: int) -> dict:
    """Times fn() after `warmup` untimed calls: {"median_ms", "min_ms", "p20_ms", "p80_ms"}.

    name is the NVTX path of the timed calls on CUDA: "headmix/<op>/<variant>" for headmix,
    "torch/<op>/<variant>" for a baseline. On CUDA each rep starts with a cold L2 and is timed
    with CUDA events (by triton.testing.do_bench when triton is importable).
    """
    device = torch.device(device)
    timer = timer_name(device)
    if timer == "perf_counter":
        return _summary(_cpu_times(fn, warmup, reps))
    if timer == "do_bench":
        return _do_bench_summary(fn, name, device, warmup, reps)
    return _summary(_cuda_event_times(fn, name, device, warmup, reps))


def timer_name(device: torch.device) -> str:
    """Which clock measure() uses on device (recorded with the results)."""
    if device.type == "cpu":
        return "perf_counter"
    return "do_bench" if triton_testing is not None else "cuda_events"


# ---------------------------------------------------------------- peak memory


def _proc_status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        return int(re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.M).group(1)) * 1024


# glibc's malloc_trim returns freed heap pages to the OS; elsewhere there is nothing to trim.
_malloc_trim = getattr(ctypes.CDLL(None), "malloc_trim", lambda pad: 0)


def _cpu_peak_rss(fn) -> int | None:
    # tracemalloc does not see torch's allocations and torch keeps no CPU allocator statistics,
    # so read the kernel's resident-set high-water mark instead: return freed heap pages to the
    # OS (else the call could reuse them unseen), reset the mark to the current RSS (writing
    # "5" to /proc/self/clear_refs, Linux >= 4.0), call once and take the rise. No subprocess
    # is needed because the mark is reset, not compared with an earlier maximum.
    gc.collect()
    _malloc_trim(0)
    try:
        before = _proc_status_bytes("VmRSS")
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:  # not Linux, or /proc not writable: say "unknown" rather than guess
        return None
    fn()
    return _proc_status_bytes("VmHWM") - before


def peak_memory(fn: Callable, device: torch.device) -> int | None:
    """Bytes at the peak of one fn() call above what was live before it (workspace + outputs)."""
    device = torch.device(device)
    if device.type == "cpu":
        return _cpu_peak_rss(fn)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


# ---------------------------------------------------------------- measured peaks


def measure_peaks(device: torch.device, dtype: torch.dtype, warmup: int, reps: int) -> dict:
    """Device-to-device copy bandwidth (GB/s) and dtype GEMM rate (TFLOP/s), measured now.

    They are the roofline every result is compared with: what this machine does in this run,
    not a datasheet figure.
    """
    cuda = device.type == "cuda"
    src = torch.randn((GiB if cuda else 256 * MiB) // 4, device=device)
    dst = torch.empty_like(src)
    copy = measure(lambda: dst.copy_(src), name="peak/copy", device=device, warmup=warmup, reps=reps)
    size = 8192 if cuda else 2048
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    gemm = measure(lambda: a @ b, name="peak/gemm", device=device, warmup=warmup, reps=reps)
    # The fastest rep, not the median: a peak is the best the machine did, and a rep slowed by
    # a busy neighbour must not lower the roof (results would then exceed 100% of it).
    return {
        "copy_gbps": 2 * src.nbytes / copy["min_ms"] / 1e6,  # read + write
        "gemm_tflops": 2 * size**3 / gemm["min_ms"] / 1e9,
        "gemm_shape": [size, size, size],
    }


# ---------------------------------------------------------------- cases


@dataclasses.dataclass
class Case:
    """One benchmarked shape: build() makes the inputs and returns (headmix_fn, baseline_fn).

    Both functions return their outputs (compared with each other once). bytes is the minimum
    traffic (inputs read once, outputs written once), flops the useful work (masked-out
    attention not counted); either may be 0 when it means nothing for the op. targets holds
    acceptance thresholds: "max_peak_mem" (bytes, headmix) and "min_speedup".
    """

    op: str
    variant: str
    shape: dict
    build: Callable[[], tuple[Callable, Callable]]
    bytes: float = 0.0
    flops: float = 0.0
    targets: dict = dataclasses.field(default_factory=dict)


def randn(*shape, device, dtype, scale=1.0, requires_grad=False):
    """Fresh N(0, scale^2) data (never zeros: docs/support.md), optionally a leaf that needs grad."""
    x = torch.randn(*shape, device=device, dtype=dtype) * scale
    return x.requires_grad_(requires_grad)


def grads_of(forward: Callable, inputs, grad_out: torch.Tensor) -> Callable:
    """fn() returning d forward() / d inputs for the upstream gradient grad_out.

    The graph is built by the first (untimed) call and kept (retain_graph), so timed calls run
    the backward alone, as a training step's backward would.
    """
    graph = []

    def backward():
        if not graph:
            graph.append(forward())
        return torch.autograd.grad(graph[0], inputs, grad_out, retain_graph=True)

    return backward


def shape_text(shape: dict) -> str:
    return " ".join(f"{key}={value}" for key, value in shape.items())


# ---------------------------------------------------------------- running


@dataclasses.dataclass
class Result:
    """One implementation of one case: its output, timing and peak memory, or its error."""

    output: object = None
    stats: dict | None = None
    peak_mem: int | None = None
    error: str | None = None


def _run_impl(fn, name, device, args) -> Result:
    try:
        output = fn()  # warm-up (JIT, allocator, autograd graph) and the output to compare
        stats = measure(fn, name=name, device=device, warmup=args.warmup, reps=args.reps)
        return Result(output, stats, peak_memory(fn, device))
    except (RuntimeError, NotImplementedError) as error:  # OOM, or no kernel for this device
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return Result(error=f"{type(error).__name__}: {str(error).splitlines()[0][:160]}")


def _tensors(output):
    return [output] if isinstance(output, torch.Tensor) else [t for t in output if t is not None]


def relative_error(ours, baseline) -> float:
    """max |ours - baseline| / max |baseline| over all outputs: a guard against timing wrong code."""
    diff = scale = 0.0
    for a, b in zip(_tensors(ours), _tensors(baseline)):
        diff = max(diff, (a.double() - b.double()).abs().max().item())
        scale = max(scale, b.double().abs().max().item())
    return diff / scale if scale else diff


def _record(case, ours: Result, baseline: Result, peaks, device, dtype) -> dict:
    stats = ours.stats or {}
    time_ms = stats.get("median_ms")
    base_ms = (baseline.stats or {}).get("median_ms")
    gbps = case.bytes / time_ms / 1e6 if time_ms and case.bytes else None
    tflops = case.flops / time_ms / 1e9 if time_ms and case.flops else None
    # Roofline: the fraction of the binding resource's measured peak that the op attains.
    fractions = {
        "memory": gbps / peaks["copy_gbps"] if gbps else 0.0,
        "compute": tflops / peaks["gemm_tflops"] if tflops else 0.0,
    }
    bound = max(fractions, key=fractions.get) if any(fractions.values()) else None
    record = {
        "op": case.op,
        "variant": case.variant,
        "shape": case.shape,
        "dtype": str(dtype).removeprefix("torch."),
        "device": device.type,
        "time_ms": time_ms,
        "time_min_ms": stats.get("min_ms"),
        "time_p20_ms": stats.get("p20_ms"),
        "time_p80_ms": stats.get("p80_ms"),
        "baseline_time_ms": base_ms,
        "speedup": base_ms / time_ms if time_ms and base_ms else None,
        "bytes": case.bytes,
        "flops": case.flops,
        "gbps": gbps,
        "tflops": tflops,
        "pct_of_peak": 100 * fractions[bound] if bound else None,
        "bound": bound,
        "peak_mem": ours.peak_mem,
        "baseline_peak_mem": baseline.peak_mem,
        "rel_err": relative_error(ours.output, baseline.output) if ours.stats and baseline.stats else None,
        "error": ours.error,
        "baseline_error": baseline.error,
    }
    record["rel_err_tol"] = AGREEMENT[dtype]
    record["agrees"] = record["rel_err"] <= record["rel_err_tol"] if record["rel_err"] is not None else None
    record["targets"] = _check_targets(case.targets, record)
    return record


def _check_targets(targets: dict, record: dict) -> dict:
    checks = {}
    if "max_peak_mem" in targets:
        limit = targets["max_peak_mem"]
        checks[f"peak_mem < {limit / GiB:g} GiB"] = record["peak_mem"] is not None and record["peak_mem"] < limit
    if "min_speedup" in targets:
        limit = targets["min_speedup"]
        checks[f"speedup >= {limit:g}x"] = record["speedup"] is not None and record["speedup"] >= limit
    return checks


def run_case(case: Case, peaks: dict, device, dtype, args) -> dict:
    ours_fn, baseline_fn = case.build()
    path = f"{case.op}/{case.variant}"
    ours = _run_impl(ours_fn, f"headmix/{path}", device, args)
    baseline = _run_impl(baseline_fn, f"torch/{path}", device, args)
    return _record(case, ours, baseline, peaks, device, dtype)


def profile_case(case: Case, device) -> None:
    """One warm call, then one call inside the headmix NVTX range for Nsight Compute to catch."""
    ours_fn, _ = case.build()
    ours_fn()
    _synchronize(device)
    with nvtx_range(f"headmix/{case.op}/{case.variant}", device):
        ours_fn()
        _synchronize(device)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------- command line and output


def make_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the flags every bench shares; the bench adds its shape flags."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default_device, help=f"cpu or cuda (default {default_device})")
    parser.add_argument("--dtype", choices=sorted(DTYPES), help="default bf16 on CUDA, fp32 on CPU")
    parser.add_argument(
        "--quick", action=argparse.BooleanOptionalAction,
        help="small shapes that run in seconds on a CPU (default on CPU; --no-quick for the GPU shapes)",
    )
    parser.add_argument("--warmup", type=int, help="untimed calls before timing (default 10 CUDA, 1 CPU)")
    parser.add_argument("--reps", type=int, help="timed calls (default 50 CUDA, 5 CPU)")
    parser.add_argument("--json", type=Path, help="where to write the records (default benchmarks/out/<bench>.json)")
    parser.add_argument(
        "--profile", action="store_true",
        help="for profile.sh: one shape per variant, headmix only, one call in its NVTX range, no timing",
    )
    return parser


def parse_args(parser: argparse.ArgumentParser, argv=None, *, quick: dict, full: dict) -> argparse.Namespace:
    """Parses argv and fills every flag left unset: device-dependent defaults for the shared
    flags, then the bench's shape flags from `quick` or `full` (dest name -> value)."""
    args = parser.parse_args(argv)
    args.device = torch.device(args.device)
    cuda = args.device.type == "cuda"
    args.dtype = DTYPES[args.dtype] if args.dtype else (torch.bfloat16 if cuda else torch.float32)
    args.quick = (not cuda) if args.quick is None else args.quick
    args.warmup = args.warmup if args.warmup is not None else (10 if cuda else 1)
    args.reps = args.reps if args.reps is not None else (50 if cuda else 5)
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def _environment(device: torch.device) -> dict:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {
        "device_name": name,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "threads": torch.get_num_threads(),
        "timer": timer_name(device),
        # CPU timings are only as good as the machine is idle; the 1-minute load says how idle.
        "load_average": os.getloadavg()[0],
        "headmix_build": headmix.build_info,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


_COLUMNS = (
    ("op/variant", 22), ("shape", 38), ("ms", 9), ("[p20, p80]", 17), ("torch ms", 9),
    ("speedup", 7), ("GB/s", 8), ("TFLOP/s", 7), ("% peak", 10), ("MiB", 7), ("torch MiB", 9), ("rel err", 7),
)


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _align(cells) -> str:
    """The two text columns left-aligned, the numbers right-aligned, widths from _COLUMNS."""
    return "  ".join(
        cell.ljust(width) if i < 2 else cell.rjust(width) for i, (cell, (_, width)) in enumerate(zip(cells, _COLUMNS))
    )


def _row(record: dict) -> str:
    stats = (record["time_p20_ms"], record["time_p80_ms"])
    cells = (
        f"{record['op']}/{record['variant']}",
        shape_text(record["shape"]),
        _fmt(record["time_ms"], ".3f"),
        f"[{_fmt(stats[0], '.3f')}, {_fmt(stats[1], '.3f')}]",
        _fmt(record["baseline_time_ms"], ".3f"),
        _fmt(record["speedup"], ".2f") + ("x" if record["speedup"] else ""),
        _fmt(record["gbps"], ".1f"),
        _fmt(record["tflops"], ".2f"),
        f"{record['pct_of_peak']:.1f} {record['bound'][:3]}" if record["pct_of_peak"] is not None else "-",
        _fmt(record["peak_mem"] and record["peak_mem"] / MiB, ".1f"),
        _fmt(record["baseline_peak_mem"] and record["baseline_peak_mem"] / MiB, ".1f"),
        _fmt(record["rel_err"], ".1e"),
    )
    line = _align(cells)
    for label, error in (("headmix", record["error"]), ("torch", record["baseline_error"])):
        if error:
            line += f"\n    {label} failed: {error}"
    if record["agrees"] is False:
        line += (
            f"\n    outputs differ: rel err {record['rel_err']:.1e} > {record['rel_err_tol']:.0e}, "
            "so the time may be of wrong code"
        )
    for check, passed in record["targets"].items():
        line += f"\n    target {check}: {'PASS' if passed else 'FAIL'}"
    return line


def main(bench: str, cases: list[Case], args: argparse.Namespace) -> list[dict]:
    """Runs the cases, printing a table row per case as it finishes; writes the JSON records."""
    device, dtype = args.device, args.dtype
    torch.manual_seed(0)
    if args.profile:
        first_per_variant = {}
        for case in cases:
            first_per_variant.setdefault(case.variant, case)
        for case in first_per_variant.values():
            print(f"profiling headmix/{case.op}/{case.variant}  {shape_text(case.shape)}", flush=True)
            profile_case(case, device)
        return []
    env = _environment(device)
    peaks = measure_peaks(device, dtype, args.warmup, args.reps)
    dtype_name = str(dtype).removeprefix("torch.")
    print(
        f"{bench} on {env['device_name']} ({env['threads']} threads, load {env['load_average']:.2f}), "
        f"torch {env['torch']}, {dtype_name}"
    )
    print(
        f"measured peaks: copy {peaks['copy_gbps']:.1f} GB/s, {dtype_name} GEMM "
        f"{peaks['gemm_tflops']:.2f} TFLOP/s; '% peak' is of the bound (mem/com) resource"
    )
    print(_align(name for name, _ in _COLUMNS), flush=True)
    records = [{"op": "env", **env}, {"op": "peak", "dtype": dtype_name, "device": device.type, **peaks}]
    for case in cases:
        record = run_case(case, peaks, device, dtype, args)
        print(_row(record), flush=True)
        records.append(record)
    path = args.json or OUT_DIR / f"{bench}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=1, default=str) + "\n")
    print(f"wrote {len(records) - 2} records to {path}")
    return records
