# Each target creates .venv when missing and installs what it needs (see README.rst).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo lint test docs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

demo: $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	$(BIN)/python -m distlda train --quiet --distributed no

lint: $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[lint]"
	$(BIN)/python -m ruff check .
	$(BIN)/python -m mypy

test: $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[test,interop]"
	$(BIN)/python -m pytest

# The HTML site in docs/_build/html; any Sphinx warning fails the build.
docs: $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[docs,interop]"
	$(BIN)/python -m sphinx -W --keep-going -b html -d docs/_build/doctrees docs docs/_build/html

bench: $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[test,bench]"
	$(BIN)/python benchmarks/bench_serial.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache docs/_build
	find . -name __pycache__ -prune -exec rm -rf {} +
