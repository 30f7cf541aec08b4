# The two commands of the README: `make demo` (main job) and `make test`. Both set up the
# virtual environment and build the extension first, rebuilding when sources change.
VENV ?= .venv
PY := $(VENV)/bin/python
SOURCES := $(shell find csrc python tools -type f -not -name '*.pyc') CMakeLists.txt pyproject.toml
STAMP := $(VENV)/.headmix-installed

.PHONY: install demo test check-cuda wheel bench clean

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

wheel: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pip wheel --no-build-isolation --no-deps -w dist .

bench: $(STAMP)
	$(PY) benchmarks/bench_mix_heads.py
	$(PY) benchmarks/bench_attention.py
	$(PY) benchmarks/bench_decode.py

clean:
	rm -rf build dist $(STAMP)
