# The two commands: `make run` (the local stack, foreground) and `make test` (everything).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-fast coverage-unit lint check nemesis bench bench-lanes bench-compare calibrate simulate setup system-deps lock manifests clean

# Every package at the version and hash the lock names, then the project itself (editable, so
# that the commands run this tree) without dependencies of its own.
$(STAMP): requirements-dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# The hashed locks, compiled from the pin lists with uv (in the dev requirements): one for the
# node image, one for development and CI. Run after changing a requirements*.txt.
lock: setup
	$(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
		requirements.txt -o requirements.lock
	$(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
		requirements-dev.txt -o requirements-dev.lock

setup: $(STAMP)

system-deps:
	@./scripts/install_system_deps.sh

run: setup system-deps
	$(VENV)/bin/abacus-stack up

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: setup system-deps lint
	$(VENV)/bin/pytest

# Every test that needs no real stack (no redis-server, nginx or Gunicorn): seconds, not minutes.
test-fast: setup
	$(VENV)/bin/pytest -m "not stack"

# The in-process unit layer alone, and how much of the node (abacus/node) it covers.
coverage-unit: setup
	$(VENV)/bin/pytest tests/unit --cov=abacus/node --cov-report=term-missing

# The consistency checker against a freshly started local stack (on ports of its own).
check: setup system-deps
	$(PY) scripts/check_stack.py

# The checker with every fault (the nemesis) against a fresh local stack: 60 s of load, the
# history saved and re-judged from its file, the timeline drawn into docs/. Not part of `test`
# (a minute and more of CI time); its pieces are tested there.
nemesis: setup system-deps
	$(PY) scripts/nemesis_stack.py

# Group commit against one transaction per request, on two fresh local stacks, in one run
# (scripts/bench_stacks.py --compare ceiling|baseline|...: docs/benchmark.md).
bench: setup system-deps
	$(PY) scripts/bench_stacks.py

# How the commit lanes scale with nodes: 3, 6, 12 nodes x 1 worker, 3 x 2 and 3 x 4 at 256
# clients; attempts and retries per add, conflicts per commit, batch sizes. BASELINE=<commit>
# runs that commit's nodes too, alternating with this tree's.
bench-lanes: setup system-deps
	$(PY) scripts/bench_lanes.py $(if $(BASELINE),--baseline-ref $(BASELINE))

# The commit simulation's figures, measured here on a redis-server and a node of its own, into
# abacus/harness/calibration.json (commit it when it changed: the simulation reads it).
calibrate: setup system-deps
	$(PY) scripts/calibrate.py

# The commit simulation, 3 to 100 nodes, before and after the lanes take turns: the table
# and the measured points beside it printed (and the turn with other waits T), the curves drawn
# into docs/scaling.png. No servers.
simulate: setup
	$(PY) scripts/simulate.py --variants

# The Kubernetes manifests in kubernetes/, rendered from abacus/kubernetes/ and abacus/conf/
# (tests/test_kubernetes.py fails while the committed ones are not current).
manifests: setup
	$(PY) scripts/render_kubernetes.py

clean:
	rm -rf $(VENV) .stack .mypy_cache .ruff_cache .pytest_cache
