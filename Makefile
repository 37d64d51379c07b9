# geovision: every target sets up .venv when it is missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
DEMO := demo-output

.PHONY: test test-fast demo bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check geovision tests benchmarks
	$(BIN)/mypy

# The whole suite, slow tests (cluster, kill-and-resume, demo, README) included: what CI runs.
test: lint
	$(BIN)/pytest -q

# The inner loop: everything but the slow tests.
test-fast: lint
	$(BIN)/pytest -q -m "not slow"

demo: $(STAMP)
	rm -rf $(DEMO)
	$(BIN)/geovision demo --out $(DEMO)

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py --out bench-output

clean:
	rm -rf $(VENV) $(DEMO) bench-output .pytest_cache .mypy_cache .ruff_cache
