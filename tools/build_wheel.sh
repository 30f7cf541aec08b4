#!/usr/bin/env bash
# Builds headmix's wheel with the Python given as $PYTHON (its torch decides CPU or CUDA) into
# dist/, in a build folder per label (build/wheel-<label>, e.g. build/wheel-cu130.sm90a), so
# wheels for other archs or another torch never share a CMake cache. The build's output,
# which holds ptxas's resource report, is kept in <build folder>/build.log, where
# `tools/check_cuda.py --build-dir` reads it instead of compiling the kernels a second time.
# Prints the wheel's path last.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
label=$("$PYTHON" tools/headmix_build_version.py --label)
build_dir="build/wheel-$label"
mkdir -p "$build_dir" dist
echo "build_wheel: +$label in $build_dir (HEADMIX_CUDA_ARCHS='${HEADMIX_CUDA_ARCHS:-default}')" >&2
before=$(date +%s)
"$PYTHON" -m pip wheel -v --disable-pip-version-check --no-build-isolation --no-deps -w dist \
  -C build-dir="$build_dir" . > "$build_dir/build.log" 2>&1 || {
  tail -n 60 "$build_dir/build.log" >&2
  echo "build_wheel: FAILED (log: $build_dir/build.log)" >&2
  exit 1
}
echo "build_wheel: built in $(( $(date +%s) - before )) s" >&2
ls -t dist/headmix-*+"$label"-*.whl | head -n 1
