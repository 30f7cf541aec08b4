"""The benchmarks' command line and output: shared flags, the printed table and the JSON records.

A bench describes its work as a list of `Case`s (cases.py); `main` runs each case's headmix
function and its PyTorch baseline on the same inputs, checks that they agree, times both,
measures their peak memory and prints every figure beside the copy bandwidth and GEMM rate
measured on the same device in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

import headmix
from case import Case, shape_text
from records import profile_case, run_case
from timing import MiB, measure_peaks, timer_name

OUT_DIR = Path(__file__).resolve().parent / "out"
DTYPES = {
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16,
    "fp32": torch.float32, "float32": torch.float32,
    "fp64": torch.float64, "float64": torch.float64,
}


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
