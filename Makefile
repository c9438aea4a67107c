# heliosfl: every target bootstraps .venv from plain python3 on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
# Flower and Ray for `make bench-flower` only, in a venv of their own (never in .venv)
FLOWER_VENV  := .venv-flower
FLOWER_BIN   := $(FLOWER_VENV)/bin
FLOWER_STAMP := $(FLOWER_VENV)/.installed-flower
PYTEST_NB := --nbval-lax --nbval-current-env --nbval-cell-timeout=120

.PHONY: install lab voila test test-fast test-slow lint demo bench bench-flower clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## make lab: install, then open JupyterLab on the notebooks (the main job)
lab: $(STAMP)
	cd notebooks && ../$(BIN)/jupyter lab 00_start_here.ipynb $$([ "$$(id -u)" = 0 ] && echo --allow-root)

## make voila: the 100-node notebook as a dashboard (Voila: outputs only, for demos)
voila: $(STAMP)
	cd notebooks && ../$(BIN)/voila 03_hundred_node_simulation.ipynb

## make test: install, then lint, type-check and run every test, notebooks included
test: $(STAMP) lint
	$(BIN)/python -m pytest -q $(PYTEST_NB) tests notebooks

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -x tests

## make test-slow: the long runs (accuracy bars, larger simulations)
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow tests --run-slow

lint: $(STAMP)
	$(BIN)/ruff check heliosfl tests benchmarks
	$(BIN)/ruff format --check heliosfl tests benchmarks
	$(BIN)/mypy heliosfl

## make demo: the guide's 100-node production deployment, headless
demo: $(STAMP)
	$(BIN)/heliosfl demo

## make bench: every benchmark, one JSON line each (not bench-flower: that one installs
## Flower and Ray, so it is a target of its own)
bench: $(STAMP)
	$(BIN)/python benchmarks/round_throughput.py
	$(BIN)/python benchmarks/accuracy_bars.py
	$(BIN)/python benchmarks/privacy_utility.py
	$(BIN)/python benchmarks/gdpr_erasure.py
	$(BIN)/python benchmarks/secure_aggregation.py
	$(BIN)/python benchmarks/robustness.py
	$(BIN)/python benchmarks/fault_tolerance.py

$(FLOWER_STAMP): pyproject.toml
	$(PYTHON) -m venv $(FLOWER_VENV)
	$(FLOWER_BIN)/python -m pip install --quiet -e . 'flwr[simulation]==1.42.*'
	touch $(FLOWER_STAMP)

## make bench-flower: seconds per round, heliosfl against Flower 1.42's simulation engine
## (Ray), one JSON line. Not in `make bench`: it installs Flower and Ray, into .venv-flower.
bench-flower: $(FLOWER_STAMP)
	$(FLOWER_BIN)/python benchmarks/flower_comparison.py

clean:
	rm -rf $(VENV) $(FLOWER_VENV) .pytest_cache .mypy_cache .ruff_cache build dist
