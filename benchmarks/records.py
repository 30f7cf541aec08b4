"""Runs a Case (headmix and its baseline on the same inputs) and turns the measurements into a
record: times, speedup, roofline fraction, peak memory, agreement and acceptance targets."""

from __future__ import annotations

import dataclasses

import torch

from case import Case
from memory import peak_memory
from timing import GiB, measure, nvtx_range

# rel_err above which a row is flagged: headmix and the baseline round at different points,
# so half-precision results differ by a few ulps of bf16 (2^-8) relative to the largest output.
AGREEMENT = {torch.float64: 1e-9, torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 5e-2}


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
