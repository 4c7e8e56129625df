# The two commands a newcomer types: `make demo` and `make test`.
# Each creates .venv if it is missing and installs into it; a stamp file keyed on pyproject.toml means a second
# run does not reinstall unless the dependencies changed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
OUT    ?= orbitcube-demo
PYTEST_ARGS ?=
# the Azure Storage emulator the object-storage tests start on loopback (installed from npm, git-ignored)
AZURITE_VERSION := 3.37.0
AZURITE := .cache/azurite/node_modules/.bin/azurite-blob

.PHONY: demo test lint bench notebooks clean help

help:
	@echo "make demo       simulate a mission and run the full pipeline into $(OUT)/"
	@echo "make test       run the test suite (unit, integration, notebooks)"
	@echo "make lint       ruff"
	@echo "make bench      benchmarks (BENCH_SIZE=quick|full)"
	@echo "make notebooks  start JupyterLab on the project's environment"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.stamp-base: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e .
	@touch $@

$(VENV)/.stamp-test: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[test]"
	@touch $@ $(VENV)/.stamp-base

$(VENV)/.stamp-notebooks: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[test,notebooks]"
	@touch $@ $(VENV)/.stamp-test $(VENV)/.stamp-base

demo: $(VENV)/.stamp-base
	$(BIN)/orbitcube demo --out $(OUT)

$(AZURITE):
	npm install --silent --no-audit --no-fund --prefix .cache/azurite azurite@$(AZURITE_VERSION)

test: $(VENV)/.stamp-test $(AZURITE)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.stamp-test
	$(BIN)/ruff check orbitcube catalog pipeline tests benchmarks
	$(BIN)/ruff format --check orbitcube catalog pipeline tests benchmarks

bench: $(VENV)/.stamp-test
	$(BIN)/python -m benchmarks.run --size $${BENCH_SIZE:-quick}

notebooks: $(VENV)/.stamp-notebooks
	$(BIN)/jupyter lab --notebook-dir=notebooks

clean:
	rm -rf $(OUT) .pytest_cache benchmarks/_out
