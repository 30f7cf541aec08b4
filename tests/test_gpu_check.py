"""tools/gpu_check.sh, the script for the day a GPU is lent, checked without one so it cannot rot:
its dry run (steps, the CUTLASS wheel, test selection, bench flags, the small cases on the CPU,
the results writer on stub inputs), its time budget, and that it stops at a failing step
with the results file written."""

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "gpu_check.sh"
STEPS = ["setup", "build", "tests", "memcheck", "racecheck", "bench-attention", "bench-mix-heads", "bench-decode"]


def run(tmp_path, python, **env):
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OUT": str(tmp_path), "PYTHON": python, **env})


def test_dry_run(tmp_path):
    result = run(tmp_path, sys.executable, GPU_CHECK_DRY_RUN="1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.findall(r"== gpu-check: (\S+) \(limit", result.stdout) == STEPS
    assert re.search(r"(\d+)/\d+ tests collected", result.stdout), "no CUDA test selected"
    assert "kv_cache_append (paged, rope)" in result.stdout  # the sanitizer's small cases ran on the CPU
    results = tmp_path / "2000-01-01-stub-gpu-dry-run-input.md"
    text = results.read_text()
    assert "| build | ok | 200 | 270 |" in text
    assert "1 passed, 1 failed, 0 errors, 1 skipped of 3." in text
    assert "- FAILED tests.test_stub::test_fails" in text
    assert "| attention/causal_fwd | B=2, S=4096, H=16, d=128 | 0.500 | 0.600 | 1.20× |" in text
    assert "headmix failed: stub failure" in text


def test_limits_fit_eight_minutes():
    limits = dict(re.findall(r"LIMIT_(\w+)=(\d+)", SCRIPT.read_text()))
    per_step = {"setup": "SETUP", "build": "BUILD", "tests": "TESTS", "memcheck": "SANITIZER",
                "racecheck": "SANITIZER", "bench-attention": "BENCH", "bench-mix-heads": "BENCH",
                "bench-decode": "BENCH"}
    assert set(per_step) == set(STEPS)
    assert sum(int(limits[per_step[s]]) for s in STEPS) <= 8 * 60


def test_stops_at_a_failing_step_with_results_written(tmp_path):
    # A python whose pip fails: the setup step fails, nothing after it runs.
    fake = tmp_path / "bin" / "python"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\n[ "$1" = "-m" ] && [ "$2" = "pip" ] && exit 3\nexec {sys.executable} "$@"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    out = tmp_path / "out"
    result = run(out, str(fake))
    assert result.returncode == 1
    assert "stopped at setup (fail)" in result.stdout
    assert (out / "steps.tsv").read_text().startswith("setup\tfail\t")
    assert "== gpu-check: build" not in result.stdout
    (results,) = out.glob("*.md")
    assert "| setup | fail |" in results.read_text()
