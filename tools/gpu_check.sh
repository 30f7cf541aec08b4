#!/usr/bin/env bash
# The one prepared script for a lent GPU (`make gpu-check`), sized to finish in about 8 minutes
# on an H100/H200 machine whose python3 has a CUDA torch, nvcc, pytest-timeout, ncu and
# compute-sanitizer, but no network and no nvidia-cutlass (its pinned wheel travels in .whl/).
# Steps, each under a time limit (a hung kernel must not eat the lease):
#   setup      the machine's facts (env.json) and the CUTLASS headers from .whl/
#   build      headmix for HEADMIX_CUDA_ARCHS (default 90a) with every core, installed
#   tests      pytest -m "cuda and not slow", a per-test timeout, stop at the first failure
#   memcheck / racecheck   compute-sanitizer on one small call per kernel (tools/gpu_small_cases.py);
#              where the sanitizer refuses the device the step is "unsupported", not a failure
#   bench      the three benchmarks, a few GPU shapes each, against their baselines
# It stops at the first failure or hang; either way it writes the results file
# (benchmarks/results format, tools/gpu_results.py) and keeps every log under $OUT
# (default gpu-check-out/): gpu-check.log, steps.tsv, env.json, pytest.xml, bench_*.json, <date>-<gpu>.md
# (8 files: as many as a lent machine sends back). .whl/ is ignored by git, so a lent machine gets
# it only when the call carries it (the device tool's carry: [".whl"]). The results file belongs
# in benchmarks/results/ once it is back.
#
# GPU_CHECK_DRY_RUN=1 (CI, `make gpu-check-dry-run`) runs none of the GPU steps: it prints them,
# checks what they need exists (the CUTLASS wheel, the test files and their cuda marker, the
# benches' flags, the small cases on the CPU) and runs the results writer on stub inputs.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-check-out}
PYTHON=${PYTHON:-python3}
DRY=${GPU_CHECK_DRY_RUN:-0}
CUTLASS_VERSION=$(sed -n 's/^CUTLASS_VERSION=//p' tools/setup_env.sh)  # the pinned release
export HEADMIX_CUDA=ON HEADMIX_CUDA_ARCHS=${HEADMIX_CUDA_ARCHS:-90a} PYTHONUNBUFFERED=1
export PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1
export PATH="$PATH:/usr/local/cuda/bin"
mkdir -p "$OUT"
LOG=$OUT/gpu-check.log
: > "$LOG"
: > "$OUT/steps.tsv"

# Step limits in seconds; together at most 8 minutes (tests/test_gpu_check.py holds them to it).
LIMIT_SETUP=20 LIMIT_BUILD=250 LIMIT_TESTS=90 LIMIT_SANITIZER=30 LIMIT_BENCH=20

# The spec's GPU shapes, one or two sizes each, so each bench fits its limit.
BENCH_ATTENTION=(benchmarks/bench_attention.py --no-quick --seqlens 4096 --iha-tokens 2048 --warmup 3 --reps 10)
BENCH_MIX=(benchmarks/bench_mix_heads.py --no-quick --warmup 3 --reps 10)
BENCH_DECODE=(benchmarks/bench_decode.py --no-quick --batch 1 64 --cache-len 8192 --warmup 3 --reps 10)
# Only headmix's kernels are instrumented (kns: kernel-name substring), which keeps torch's own fast.
SANITIZE=(compute-sanitizer --error-exitcode 99 --kernel-name kns=headmix)

finish() {
  "$PYTHON" tools/gpu_results.py "$OUT" "$@" 2>&1 | tee -a "$LOG"
}

# step NAME LIMIT COMMAND...: runs COMMAND under LIMIT seconds, its output to the screen and
# the log; stops the check (results file written) on failure or timeout.
step() {
  local name=$1 limit=$2
  shift 2
  echo "== gpu-check: $name (limit ${limit}s): $*" | tee -a "$LOG"
  [ "$DRY" = 1 ] && return 0
  local start=$SECONDS
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]} took=$((SECONDS - start)) status=ok
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    status=timeout
  elif grep -q "Device not supported\|LibraryNotLoaded" <(tail -n 40 "$LOG") && [ "${name%check}" != "$name" ]; then
    status=unsupported  # the sanitizer cannot attach on this machine (seen on gVisor); not a kernel fault
  elif [ "$rc" -ne 0 ]; then
    status=fail
  fi
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$took" "$limit" >> "$OUT/steps.tsv"
  echo "== gpu-check: $name: $status (exit $rc) in ${took}s" | tee -a "$LOG"
  if [ "$status" = fail ] || [ "$status" = timeout ]; then
    echo "gpu-check: stopped at $name ($status); log: $LOG" | tee -a "$LOG"
    finish
    exit 1
  fi
}

if [ "$DRY" = 1 ]; then
  echo "gpu-check: DRY RUN (no GPU steps run; checking what they need)" | tee -a "$LOG"
  # The GPU machine has no network: the wheel travels in .whl/ (ignored by git). Fetch it here.
  ls .whl/nvidia_cutlass-"$CUTLASS_VERSION"-*.whl >/dev/null 2>&1 ||
    env -u PIP_NO_INDEX "$PYTHON" -m pip download -q --no-deps -d .whl "nvidia-cutlass==$CUTLASS_VERSION" ||
    { echo "gpu-check: no .whl/nvidia_cutlass-$CUTLASS_VERSION-*.whl and pip cannot fetch it" | tee -a "$LOG"; exit 1; }
fi
CUTLASS_WHEEL=$(ls .whl/nvidia_cutlass-"$CUTLASS_VERSION"-*.whl 2>/dev/null | head -n 1)

step setup "$LIMIT_SETUP" bash -c "
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv || true
  '$PYTHON' -m pip install -q --no-deps --force-reinstall '$CUTLASS_WHEEL' &&
  '$PYTHON' - <<'PYCODE'
import json, re, subprocess, time, torch
p = torch.cuda.get_device_properties(0)
smi = subprocess.run(['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'], capture_output=True, text=True)
nvcc = re.search(r'release (\S+),', subprocess.run(['nvcc', '--version'], capture_output=True, text=True).stdout)
env = dict(gpu=p.name, cc=f'{p.major}.{p.minor}', sms=p.multi_processor_count, driver=smi.stdout.strip(),
           torch=torch.__version__, cuda=torch.version.cuda, nvcc=nvcc and nvcc[1], date=time.strftime('%Y-%m-%d'))
open('$OUT/env.json', 'w').write(json.dumps(env))
print(env)
PYCODE"
step build "$LIMIT_BUILD" env CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$PYTHON" -m pip install -q --no-deps \
  --no-build-isolation -C build-dir=build/gpu-check .
[ "$DRY" = 1 ] || "$PYTHON" - "$OUT/env.json" <<'PYCODE'
import json, sys, headmix
env = json.load(open(sys.argv[1])); env["headmix_build"] = headmix.build_info
json.dump(env, open(sys.argv[1], "w"))
PYCODE
step tests "$LIMIT_TESTS" "$PYTHON" -m pytest tests -m "cuda and not slow" -x -q -p no:cacheprovider \
  --timeout 60 --junitxml "$OUT/pytest.xml"
step memcheck "$LIMIT_SANITIZER" "${SANITIZE[@]}" --tool memcheck "$PYTHON" tools/gpu_small_cases.py
step racecheck "$LIMIT_SANITIZER" "${SANITIZE[@]}" --tool racecheck "$PYTHON" tools/gpu_small_cases.py
step bench-attention "$LIMIT_BENCH" "$PYTHON" "${BENCH_ATTENTION[@]}" --json "$OUT/bench_attention.json"
step bench-mix-heads "$LIMIT_BENCH" "$PYTHON" "${BENCH_MIX[@]}" --json "$OUT/bench_mix_heads.json"
step bench-decode "$LIMIT_BENCH" "$PYTHON" "${BENCH_DECODE[@]}" --json "$OUT/bench_decode.json"

if [ "$DRY" = 1 ]; then
  # What the GPU steps need, checked here so the script cannot rot between GPU days.
  set -e
  "$PYTHON" -m pytest tests -m "cuda and not slow" --collect-only -q -p no:cacheprovider \
    | tail -n 1 | tee -a "$LOG"
  for bench in BENCH_ATTENTION BENCH_MIX BENCH_DECODE; do
    declare -n cmd=$bench
    help=$("$PYTHON" "${cmd[0]}" --help)
    for flag in "${cmd[@]:1}"; do
      case "$flag" in --*) grep -q -- "$flag" <<< "$help" || { echo "gpu-check: ${cmd[0]} has no $flag"; exit 1; } ;; esac
    done
  done
  "$PYTHON" tools/gpu_small_cases.py --device cpu | tee -a "$LOG"
  finish --inputs tests/data/gpu_check
  echo "gpu-check: dry run OK" | tee -a "$LOG"
  exit 0
fi
finish
echo "gpu-check: done; results and logs in $OUT" | tee -a "$LOG"
