# The two commands: `make run` (the local stack, foreground) and `make test` (everything).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-fast coverage-unit lint check bench bench-compare setup system-deps clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

setup: $(STAMP)

system-deps:
	@./scripts/install_system_deps.sh

run: setup system-deps
	$(PY) scripts/stack.py up

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: setup system-deps lint
	$(VENV)/bin/pytest

# Every test that needs no real stack (no redis-server, nginx or Gunicorn): seconds, not minutes.
test-fast: setup
	$(VENV)/bin/pytest -m "not stack"

# The in-process unit layer alone, and how much of app/ it covers.
coverage-unit: setup
	$(VENV)/bin/pytest tests/unit --cov=app --cov-report=term-missing

# The consistency checker against a freshly started local stack (on ports of its own).
check: setup system-deps
	$(PY) scripts/check_stack.py

# Group commit against one transaction per request, on two fresh local stacks, in one run.
bench: setup system-deps
	$(PY) scripts/bench_stacks.py

clean:
	rm -rf $(VENV) .stack .mypy_cache .ruff_cache .pytest_cache
