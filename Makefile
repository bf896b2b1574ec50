# Two commands a user needs: `make test` and `make demo`. Both build .venv themselves on a fresh machine.
# torch is installed first and pinned: it is a CPU wheel on these machines' disk, an unpinned torch pulls a
# multi-GB CUDA build.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH ?= torch==2.13.0
PYTEST := $(BIN)/python -m pytest

.PHONY: venv test test-slow bench demo lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev,deepspeed]"
	touch $(STAMP)

test: venv
	$(PYTEST) -q

test-slow: venv
	$(PYTEST) -q -m slow

bench: venv
	@for b in tests/benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

demo: venv
	$(BIN)/dlcot run recipe=quickstart

lint: venv
	$(BIN)/ruff check dlcot tests

clean:
	rm -rf $(VENV) runs outputs .pytest_cache
