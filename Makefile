# The two commands of the README. Each creates its own virtualenv (.venv).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test test-fast lint install bench soak clean

# Python caches compiled modules in __pycache__ (gitignored). An environment that turns
# this off (PYTHONDONTWRITEBYTECODE=1) makes every process compile the whole package again:
# about a quarter of a second of CPU per `pdp` start, and the suite starts hundreds.
unexport PYTHONDONTWRITEBYTECODE

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Installed once, and again only when a dependency file changes (the stamp is older than it):
# both packages are editable installs, so a change to the code needs no reinstall and
# `make run` on an installed checkout starts in about a second.
STAMP := $(VENV)/.installed

install: $(STAMP)

$(STAMP): pyproject.toml sdk/python/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/pip install --quiet -e 'sdk/python[fastapi,spiffe]'
	touch $@

# Start the PDP on 127.0.0.1:8181 with its embedded defaults and the dev issuer.
run: install
	$(BIN)/pdp serve --dev

# The suite runs on three worker processes (pytest-xdist) on the 2-core machines here: much
# of it waits (for servers it starts, fsync, PostgreSQL, Redis, a browser), and with two
# workers the cores sat about half idle. Measured in one fresh clone: `make test` 14 min 22 s
# of pytest with two workers (stop 27's CI), 7 min 6 s with three (the machine 12% idle).
# Each test file runs whole on one worker (--dist loadfile): a module's server, provider or
# generated bundle (scope="module") is then built once, not once per worker. `make test
# WORKERS=0` runs it all in one process, e.g. to read a failure's output in order.
WORKERS ?= 3
PYTEST := $(BIN)/python -m pytest -n $(WORKERS) --dist loadfile

# Install, lint, and run the whole test suite (fails if no test ran).
test: lint
	$(PYTEST) $(PYTEST_ARGS)

# mypy strict and ruff, as configured in pyproject.toml: a new error fails `make test`.
lint: install
	$(BIN)/python -m mypy
	$(BIN)/python -m ruff check

# The quick loop while working (under 3 minutes on 2 cores): lint, then everything but the
# suites marked slow (real processes: schemathesis, outages behind a TCP proxy, kill -9
# restarts, forked workers, bench smoke, the Node SDK, the Workload API end to end, the
# compose topology, broker replicas, the console in a real browser), with hypothesis's
# `fast` profile (tests/conftest.py) and the differential fuzzer at 100 bundles.
# `make test` runs them all.
test-fast: install lint
	PDP_FUZZ_EXAMPLES=100 HYPOTHESIS_PROFILE=fast $(PYTEST) -q -p no:cacheprovider -m "not slow" \
	  $(PYTEST_ARGS)

# Every benchmark section (bench/RESULTS.md); `make bench BENCH="http --quick"` for some.
# The HTTP section drives the server with wrk when it is installed (apt-get install wrk).
bench: install
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench $(BENCH)

clean:
	rm -rf $(VENV) .pdp .pytest_cache .mypy_cache .ruff_cache

# The soak (bench/soak.py), not part of `make test`: two replicas on PostgreSQL + Redis, mixed
# traffic, kill -9 of one in the middle. SOAK_SECONDS (default 600) sets its length.
soak: install
	$(BIN)/python -m bench.soak
