# The two commands of the README: `make demo` (main job) and `make test`. Both set up the
# virtual environment and build the extension first, rebuilding when sources change.
VENV ?= .venv
PY := $(VENV)/bin/python
SOURCES := $(shell find csrc python tools -type f -not -name '*.pyc') CMakeLists.txt pyproject.toml
STAMP := $(VENV)/.headmix-installed

# The CUDA wheel's environment: CUDA torch (the release the wheel will require) + build deps.
CUDA_VENV ?= .venv-cuda
CUDA_TORCH ?= 2.14.1
CUDA_PY := $(CUDA_VENV)/bin/python
CUDA_DEPS := $(CUDA_VENV)/.headmix-deps
NVCC_BIN ?= /usr/local/cuda/bin
# Kernel archs of `make cuda-wheel` (one wheel per list): 90a (H100/H200), 100a (B200/GB200).
HEADMIX_CUDA_ARCHS ?= 90a;100a

.PHONY: install demo test check-cuda wheel deps cuda-wheel gpu-check gpu-check-dry-run bench clean

install: $(STAMP)

$(STAMP): $(SOURCES)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" tools/setup_env.sh
	touch $@

demo: $(STAMP)
	$(PY) -m headmix.demo

test: $(STAMP)
	$(PY) -m pytest tests -q

# Compiles every torch-free kernel for sm_90a and sm_100a; fails on errors, spills, stack
# frames, ptxas warning C7510, or a tensor-core kernel without matrix instructions in its
# SASS. Needs only nvcc, the CUTLASS headers and the cuobjdump/nvdisasm wheels.
check-cuda: $(STAMP)
	ls $(VENV)/lib/python*/site-packages/nvidia/cu*/bin/cuobjdump $(VENV)/lib/python*/site-packages/nvidia/cu*/bin/nvdisasm \
	  >/dev/null 2>&1 || $(PY) -m pip install -q nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) tools/check_cuda.py

# A wheel for the environment's torch: +cpu from .venv (CPU torch).
wheel: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" PYTHON=$(PY) tools/build_wheel.sh

deps: $(CUDA_DEPS)

$(CUDA_DEPS):
	VENV=$(CUDA_VENV) TORCH_VERSION=$(CUDA_TORCH) tools/setup_env.sh --deps-only
	$(CUDA_PY) -m pip install -q nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm
	touch $@

# One wheel per arch list: `make cuda-wheel HEADMIX_CUDA_ARCHS=90a` gives headmix-0.1.0+cu130.sm90a,
# requiring the torch release of $(CUDA_VENV). Then check-cuda's checks on that build's objects.
cuda-wheel: export PATH := $(CURDIR)/$(CUDA_VENV)/bin:$(NVCC_BIN):$(PATH)
cuda-wheel: export HEADMIX_CUDA := ON
cuda-wheel: export HEADMIX_CUDA_ARCHS := $(HEADMIX_CUDA_ARCHS)
cuda-wheel: $(CUDA_DEPS)
	PYTHON=$(CUDA_PY) tools/build_wheel.sh
	$(CUDA_PY) tools/check_cuda.py --build-dir "build/wheel-$$($(CUDA_PY) tools/headmix_build_version.py --label)"

# On a machine with a GPU (and its own CUDA torch, nvcc): build, CUDA tests, compute-sanitizer,
# quick benchmarks; logs and the results file under $$OUT or gpu-check-out/ (tools/gpu_check.sh).
gpu-check:
	tools/gpu_check.sh

# What CI runs: the same script without a GPU, checking its steps, paths and results writer.
gpu-check-dry-run:
	GPU_CHECK_DRY_RUN=1 tools/gpu_check.sh

# With a GPU: the three op benches. Without: the CPU suite (benchmarks/cpu_suite.py), headmix
# over plain PyTorch for every op, layer and decode row, fp32 and bf16, JSON + PNG in
# benchmarks/out/ (matplotlib draws the PNG; installed here when missing).
bench: $(STAMP)
	@if $(PY) -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then \
	  $(PY) benchmarks/bench_mix_heads.py && $(PY) benchmarks/bench_attention.py && $(PY) benchmarks/bench_decode.py; \
	else \
	  $(PY) -c "import matplotlib" 2>/dev/null || $(PY) -m pip install -q matplotlib; \
	  $(PY) benchmarks/cpu_suite.py; \
	fi

clean:
	rm -rf build dist $(STAMP) $(CUDA_DEPS)
