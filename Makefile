# Every target creates .venv and installs what it needs; nothing has to be installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
DEMO := demo

.PHONY: demo test lint bench fixtures clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "triage needs Python 3.11+")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

## demo: the TUI, live, on a stream where an incident unfolds; fix it with a runbook (q stops all)
## (without a terminal: generate if absent, ingest, print `triage info` and `triage check`)
demo: $(STAMP)
	$(BIN)/triage demo --dir $(DEMO)

## test: the whole test suite
test: $(STAMP)
	$(BIN)/python -m pytest -q

## lint: ruff (lint + format) and mypy
lint: $(STAMP)
	$(BIN)/ruff check triage tests
	$(BIN)/ruff format --check triage tests
	$(BIN)/mypy

## bench: the benchmarks in tests/bench (installs the peers into their own venvs)
bench: $(STAMP)
	$(BIN)/python -m tests.bench

## fixtures: regenerate the small committed data sets in fixtures/ (with incidents, and quiet)
fixtures: $(STAMP)
	$(BIN)/triage generate --out fixtures/demo-small --rows 20000 --days 14 --seed 42 --force
	$(BIN)/triage generate --out fixtures/demo-small-quiet --rows 20000 --days 14 --seed 42 --quiet --force

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .mypy_cache .ruff_cache
