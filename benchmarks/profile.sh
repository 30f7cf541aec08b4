#!/usr/bin/env bash
# Nsight Compute report of one bench's headmix kernels:
#
#     benchmarks/profile.sh <mix_heads|attention|decode> [bench flags...]
#
# Runs the bench with --profile (one shape per variant, one warm call, then one call inside its
# NVTX range) under Nsight Compute with the sections that say where a kernel stands: speed of
# light (SOL), memory workload, warp state (stall reasons), launch and occupancy; the clocks are
# left as the GPU runs them (--clock-control none), as in the benchmarks. Only kernels launched
# inside a "headmix" range are kept:
# the baseline's ranges start with "torch", so cuBLAS/SDPA kernels are left out. The report
# lands in benchmarks/out/<op>.ncu-rep; open it with `ncu-ui`, or `ncu --import ... --page details`.
# Extra flags go to the bench, e.g. `benchmarks/profile.sh attention --seqlens 8192`.
# For a timeline, `nsys profile` on a bench shows the same NVTX ranges, plus one per op call
# (headmix::<op>); Nsight Systems is not installed on every GPU machine.
set -euo pipefail

usage="usage: benchmarks/profile.sh <mix_heads|attention|decode> [bench flags...]"
op="${1:-}"
case "$op" in
  mix_heads | attention | decode) shift ;;
  *) echo "$usage" >&2; exit 2 ;;
esac

if ! command -v ncu > /dev/null 2>&1; then
  echo "profile.sh: Nsight Compute (ncu) is not installed or not on PATH." >&2
  echo "It ships with the CUDA toolkit (e.g. /usr/local/cuda/bin/ncu); add that folder to PATH." >&2
  exit 1
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"
mkdir -p "$root/benchmarks/out"

# The bench pushes "headmix", "<op>", "<variant>" as nested push/pop ranges; in ncu's filter
# syntax a trailing "/" names a push/pop range, so "headmix/" matches every kernel under it.
exec ncu --clock-control none --section SpeedOfLight --section MemoryWorkloadAnalysis \
  --section WarpStateStats --section LaunchStats --section Occupancy \
  --nvtx --nvtx-include "headmix/" --force-overwrite \
  -o "$root/benchmarks/out/$op" \
  "$python" "$root/benchmarks/bench_$op.py" --device cuda --profile "$@"
