"""Writes the results file of a GPU check (tools/gpu_check.sh) in the benchmarks/results format.

Inputs, all in the check's output folder: env.json (GPU, driver, torch, CUDA, headmix build),
steps.tsv (step, status, seconds, limit: one line per step run), pytest.xml (JUnit report of the
CUDA tests) and bench_*.json (the benches' records: each headmix case beside its baseline from
the same run, and the peaks measured in that run). Any of them may be missing when the check
stopped early; the file says so. Output: <out>/<date>-<gpu>.md, its path printed.

    python tools/gpu_results.py OUT_DIR [--inputs DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path


def read_steps(path: Path) -> list[tuple[str, str, str, str]]:
    if not path.exists():
        return []
    return [tuple(line.split("\t")) for line in path.read_text().splitlines() if line.strip()]


def pytest_summary(path: Path) -> tuple[str, list[str]]:
    if not path.exists():
        return "not run (no pytest.xml)", []
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    count = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    passed = count["tests"] - count["failures"] - count["errors"] - count["skipped"]
    failed = [f"{case.get('classname')}::{case.get('name')}" for case in root.iter("testcase")
              if case.find("failure") is not None or case.find("error") is not None]
    text = (f"{passed} passed, {count['failures']} failed, {count['errors']} errors, "
            f"{count['skipped']} skipped of {count['tests']}")
    return text, failed


def _num(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def bench_section(path: Path) -> list[str]:
    records = json.loads(path.read_text())
    peak = next((r for r in records if r.get("op") == "peak"), {})
    cases = [r for r in records if r.get("op") not in ("env", "peak")]
    lines = [f"### {path.stem}", "",
             f"Measured peaks in this run: copy {_num(peak.get('copy_gbps'), '.0f')} GB/s, "
             f"{peak.get('dtype', '?')} GEMM {_num(peak.get('gemm_tflops'), '.0f')} TFLOP/s.", "",
             "| case | shape | headmix ms | baseline ms | speedup | TFLOP/s | GB/s | % of peak | rel err |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in cases:
        shape = ", ".join(f"{k}={v}" for k, v in (r.get("shape") or {}).items())
        speedup = _num(r.get("speedup"), ".2f") + ("×" if r.get("speedup") else "")
        pct = f"{r['pct_of_peak']:.0f} % ({r.get('bound', '?')})" if r.get("pct_of_peak") is not None else "—"
        err = _num(r.get("rel_err"), ".1e")
        if r.get("error"):
            err += f" (headmix failed: {r['error']})"
        if r.get("agrees") is False:
            err += " (DISAGREES with the baseline)"
        lines.append(f"| {r['op']}/{r['variant']} | {shape} | {_num(r.get('time_ms'), '.3f')} | "
                     f"{_num(r.get('baseline_time_ms'), '.3f')} | {speedup} | {_num(r.get('tflops'), '.1f')} | "
                     f"{_num(r.get('gbps'), '.0f')} | {pct} | {err} |")
    return lines + [""]


def write(out: Path, inputs: Path) -> Path:
    env = json.loads((inputs / "env.json").read_text()) if (inputs / "env.json").exists() else {}
    gpu = env.get("gpu", "unknown GPU")
    date = env.get("date", "unknown-date")
    slug = re.sub(r"[^a-z0-9]+", "-", gpu.lower().removeprefix("nvidia ")).strip("-") or "gpu"
    steps = read_steps(inputs / "steps.tsv")
    tests, failed = pytest_summary(inputs / "pytest.xml")
    lines = [f"# GPU check — {date}, {gpu}", "",
             f"Machine: {gpu} ({env.get('sms', '?')} SMs, compute capability {env.get('cc', '?')}), "
             f"driver {env.get('driver', '?')}; torch {env.get('torch', '?')}, CUDA {env.get('cuda', '?')}, "
             f"nvcc {env.get('nvcc', '?')}.",
             f"headmix build: {env.get('headmix_build', 'not built')}.",
             "Command: `make gpu-check` (tools/gpu_check.sh).", "",
             "## Steps", "", "| step | result | seconds | limit |", "|---|---|---|---|"]
    lines += [f"| {name} | {status} | {seconds} | {limit} |" for name, status, seconds, limit in steps]
    if not steps:
        lines.append("| (none recorded) | | | |")
    lines += ["", "## CUDA tests (`pytest -m \"cuda and not slow\"`)", "", tests + "."]
    lines += [f"- FAILED {name}" for name in failed]
    lines += ["", "## Benchmarks (each headmix case beside its baseline from the same run)", ""]
    benches = sorted(inputs.glob("bench_*.json"))
    for path in benches:
        lines += bench_section(path)
    if not benches:
        lines += ["Not run.", ""]
    path = out / f"{date}-{slug}.md"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--inputs", type=Path, help="folder of the inputs (default: OUT)")
    args = parser.parse_args()
    print(write(args.out, args.inputs or args.out))


if __name__ == "__main__":
    main()
