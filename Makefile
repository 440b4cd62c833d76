# Two entry points for a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  := torch==2.13.0

.PHONY: setup demo test test-all lint bench clean mutants

setup: $(VENV)/.installed

# torch is pinned to the local CPU wheel first, so nothing below pulls a CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

demo: setup
	$(BIN)/lrlab sweep

test: setup
	@$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

test-all: setup
	$(BIN)/python -m pytest -m ""

lint: setup
	$(BIN)/ruff check src tests bench

# Mutation campaign over the core modules (not part of `make test`; see docs/testing.md).
# `make mutants MODULE=refine`, `make mutants SAMPLE=20` (mutants drawn per module),
# `make mutants ARGS=--survivors` (rerun the stored survivors), `make mutants ARGS=--report`,
# `make mutants MODULE=optim SAMPLE=100 ARGS=--unrun` (a sample of mutants not run yet).
MODULE ?=
SAMPLE ?= 0
ARGS   ?=
mutants:
	$(BIN)/python bench/mutants.py $(if $(MODULE),--module $(MODULE)) --sample $(SAMPLE) $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info lrlab.db lrlab-report
