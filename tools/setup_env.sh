#!/usr/bin/env bash
# Creates the virtual environment and installs headmix into it (editable), with everything the
# build needs: torch (2.13.0 CPU unless a CUDA torch is already installed in the base Python,
# which the environment then reuses; TORCH_VERSION picks another), the nvidia-cutlass headers
# (the version the kernels are checked against), scikit-build-core, pybind11, CMake >= 3.26,
# ninja and pytest; the full environment (not --deps-only) also gets the transformers release
# headmix.hf is tested against (pinned once, in pyproject.toml's [hf] extra). Offline machines
# install wheels placed in .whl/ (PIP_NO_INDEX=1: no index).
# --deps-only stops before installing headmix (the CUDA wheel's environment, `make deps`).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
CUTLASS_VERSION=4.2.0.0
TRANSFORMERS_VERSION=$(sed -n 's/^hf = \["transformers==\(.*\)"\]/\1/p' pyproject.toml 2>/dev/null || true)
[ -n "$TRANSFORMERS_VERSION" ] || { echo "setup: no transformers pin (hf = [...]) in pyproject.toml" >&2; exit 1; }
deps_only=0
[ "${1:-}" = "--deps-only" ] && deps_only=1

if [ ! -x "$VENV/bin/python" ]; then
  if "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.version.cuda else 1)" 2>/dev/null; then
    echo "setup: using the base Python's CUDA torch"
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
PY="$VENV/bin/python"
# pip warns once per package about a --find-links folder that does not exist.
find_links=()
[ -d .whl ] && find_links=(--find-links .whl)
pip_install() { "$PY" -m pip install --disable-pip-version-check -q "${find_links[@]}" "$@"; }

"$PY" -c "import torch" 2>/dev/null || pip_install "torch==$TORCH_VERSION"

# Install only what is missing, so machines without network work with what they have.
missing=()
"$PY" -m pip show nvidia-cutlass 2>/dev/null | grep -qx "Version: $CUTLASS_VERSION" \
  || pip_install "nvidia-cutlass==$CUTLASS_VERSION"
for spec in "scikit_build_core:scikit-build-core" \
            "pybind11:pybind11" "pytest:pytest" "numpy:numpy"; do
  "$PY" -c "import ${spec%%:*}" 2>/dev/null || missing+=("${spec#*:}")
done
cmake_ok=$("$PY" - <<'PYCODE'
import re, shutil, subprocess
exe = shutil.which("cmake")
out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout if exe else ""
m = re.search(r"(\d+)\.(\d+)", out)
print(1 if m and (int(m[1]), int(m[2])) >= (3, 26) else 0)
PYCODE
)
[ "$cmake_ok" = 1 ] || missing+=("cmake>=3.26")
command -v ninja >/dev/null || missing+=("ninja")
[ ${#missing[@]} -eq 0 ] || pip_install "${missing[@]}"
[ "$deps_only" = 0 ] || exit 0

"$PY" -m pip show transformers 2>/dev/null | grep -qx "Version: $TRANSFORMERS_VERSION" \
  || pip_install "transformers==$TRANSFORMERS_VERSION"

PATH="$PWD/$VENV/bin:$PATH" "$PY" -m pip install --disable-pip-version-check -q \
  --no-build-isolation --no-deps -e .
"$PY" -c "import headmix; print('setup: headmix', headmix.build_info)"
