"""How the benchmarks time a call and measure the machine's peaks (the roofline).

On the CPU, perf_counter around each call; on CUDA, events around each call after an L2 flush
(triton.testing.do_bench when triton is importable), inside NVTX ranges Nsight can select.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable

import torch

try:
    import triton.testing as triton_testing
except ImportError:  # CPU machines; the CUDA-event loop below does the same job
    triton_testing = None

# Bigger than the L2 of any current GPU (50 MB on H100), so writing it evicts every input.
L2_FLUSH_BYTES = 256 * 2**20
GiB = 2**30
MiB = 2**20


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
