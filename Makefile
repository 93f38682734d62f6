# cxrbench — two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-all lint format bench clean

setup: $(STAMP)  ## create .venv and install the project with test extras (quick when done)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: setup  ## run the whole pipeline on the embedded synthetic dataset
	$(VENV)/bin/cxrbench run configs/demo.yaml
	$(VENV)/bin/cxrbench analyze results/demo
	$(VENV)/bin/cxrbench figures results/demo
	$(VENV)/bin/cxrbench reader-kit results/demo
	$(VENV)/bin/cxrbench report results/demo

test: setup  ## lint and the test suite (slow statistical checks excluded)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -m "not slow" || [ $$? -eq 5 ]  # 5 = no tests collected

test-all: setup  ## every test, including the slow coverage simulations
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: setup  ## CPU benchmarks → results/perf/*.json and *.md
	$(PY) -m bench.perf

clean:
	rm -rf results/*/ .cache .pytest_cache
