# The two commands of the README. Each creates its own virtualenv (.venv).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test test-fast lint install bench soak clean

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

# Install, lint, and run the whole test suite (fails if no test ran).
test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# mypy strict and ruff, as configured in pyproject.toml: a new error fails `make test`.
lint: install
	$(BIN)/python -m mypy
	$(BIN)/python -m ruff check

# The quick loop while working (under 3 minutes on 2 cores): lint, then everything but the
# slowest real-process suites (schemathesis, outages behind a TCP proxy, kill -9 restarts, bench smoke,
# the Node SDK's suite, the Workload API end-to-end services, the compose topology,
# the console in a real browser),
# with the differential fuzzer cut to 100 bundles. `make test` runs them all.
test-fast: install lint
	PDP_FUZZ_EXAMPLES=100 $(BIN)/python -m pytest -q -p no:cacheprovider \
	  --ignore=tests/api/test_schemathesis.py --ignore=tests/resilience \
	  --ignore=tests/context/test_durable_restart.py --ignore=tests/audit/test_durability_sigkill.py \
	  --ignore=tests/bench_smoke --ignore=tests/sdk/test_typescript_sdk.py \
	  --ignore=tests/workload_api/test_end_to_end_fastapi.py \
	  --ignore=tests/workload_api/test_end_to_end_express.py \
	  --ignore=tests/deploy/test_compose_topology.py \
	  --ignore=tests/broker/test_replicas.py \
	  --ignore=tests/console/test_console_browser.py \
	  --ignore=tests/api/test_serve_forked_workers.py \
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
