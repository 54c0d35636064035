# Two entry points, each sets everything up first (idempotent):
#   make demo   set up, generate the embedded benchmark, pre-train GPPF on it
#   make test   set up, lint, run the test suite
#   make test-quick   the suite without the tests marked slow (edit loop)
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-quick lint

setup:
	bash tools/setup_env.sh

demo: setup
	$(PY) tools/demo.py

lint: setup
	$(VENV)/bin/ruff check .

# PYTEST_ARGS: extra pytest arguments, e.g. PYTEST_ARGS=--durations=50
test: lint
	$(PY) -m pytest tests $(PYTEST_ARGS)

test-quick: lint
	$(PY) -m pytest tests -m 'not slow' $(PYTEST_ARGS)
