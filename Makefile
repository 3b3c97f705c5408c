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

## demo: generate the demo logs (if absent), ingest them and show what triage sees
demo: $(STAMP)
	@test -f $(DEMO)/triage.toml || $(BIN)/triage generate --out $(DEMO) --rows 200000 --days 30 --seed 7
	$(BIN)/triage --config $(DEMO)/triage.toml ingest
	$(BIN)/triage --config $(DEMO)/triage.toml info

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
