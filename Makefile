# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo check test test-fast bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

demo: install
	$(BIN)/python -m devtools.demo

# Lint and types: ruff on everything, mypy --strict on the package (settings in pyproject.toml).
check: install
	$(BIN)/ruff check dbt_eventbridge tests devtools
	$(BIN)/mypy

# The unit lane: no dbt or CLI subprocess; the warehouse stages run in process on DuckDB
# (tests/unit/warehouse). About a minute on 2 cores.
test-fast: install
	$(BIN)/python -m pytest -q -ra -n 2 -m "not postgres" tests/unit

# Unit and integration tests, DuckDB and PostgreSQL (and the sync stories on a Snowflake
# emulator, devtools/fakesnow_server.py, started by the tests). The PostgreSQL server is started
# by the tests (installed with apt-get when missing and running as root), unless the
# standard PG* variables name one.
# Two workers: most of the time goes to dbt commands (parsing, above all), which are CPU-bound;
# the integration tests run them forked from a pre-warmed process (tests/integration/prewarmed.py).
# The 15 slowest tests are listed at the end, to see where the time goes.
test: install
	$(BIN)/python -m pytest -q -ra -n 2 --dist loadfile --no-loadscope-reorder --durations=15

# Performance figures (issue 4): DuckDB, a local PutEvents stub, the real CLI. 15 to 18 minutes (2026-12-01).
# More rows: make bench BENCH_ARGS="--rows 3000000"; a quick check: BENCH_ARGS=--quick
bench: install
	$(BIN)/python -m devtools.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) integration_project/target integration_project/dbt_packages integration_project/logs .pytest_cache
