# Two entry points, each sets everything up first (idempotent):
#   make demo   set up, generate the embedded benchmark, pre-train GPPF on it
#   make test   set up, lint, run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint

setup:
	bash tools/setup_env.sh

demo: setup
	$(PY) tools/demo.py

lint: setup
	$(VENV)/bin/ruff check .

# PYTEST_ARGS: extra pytest arguments, e.g. PYTEST_ARGS=--durations=50
test: lint
	$(PY) -m pytest tests $(PYTEST_ARGS)
