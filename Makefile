# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ENGINES_STAMP := $(VENV)/.installed-engines
# Databricks' adapter cannot share the main venv (see constraints-databricks.txt): its own, for
# the offline renderer only (devtools/offline_engines.py databricks).
DATABRICKS_VENV  := build/databricks-venv
DATABRICKS_STAMP := $(DATABRICKS_VENV)/.installed

.PHONY: install install-engines demo check test test-fast test-dbt-versions bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

# The other warehouses' adapters and PySpark, for the tests only (the demo needs none).
# PySpark comes as a 435 MB source package that pip builds into a wheel (about 2 minutes):
# pip's cache is kept in build/pip-cache, which a CI cache of the build folder keeps.
install-engines: $(ENGINES_STAMP) $(DATABRICKS_STAMP)

$(ENGINES_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --cache-dir build/pip-cache -c constraints.txt -e ".[dev,engines]"
	@touch $(ENGINES_STAMP)

# About 40 s (pyarrow and the Databricks SQL connector are wheels).
$(DATABRICKS_STAMP): pyproject.toml constraints-databricks.txt
	@test -x $(DATABRICKS_VENV)/bin/python || $(PYTHON) -m venv $(DATABRICKS_VENV)
	$(DATABRICKS_VENV)/bin/python -m pip install --quiet --cache-dir build/pip-cache -c constraints-databricks.txt \
		-e . dbt-databricks
	@touch $(DATABRICKS_STAMP)

demo: install
	$(BIN)/python -m devtools.demo

# Lint and types: ruff on everything, mypy --strict on the package (settings in pyproject.toml).
check: install
	$(BIN)/ruff check dbt_eventbridge tests devtools
	$(BIN)/mypy

# The unit lane: no dbt or CLI subprocess; the warehouse stages run in process on DuckDB
# (tests/unit/warehouse). About a minute on 2 cores.
test-fast: install-engines
	$(BIN)/python -m pytest -q -ra -n 2 -m "not postgres" tests/unit

# Unit and integration tests, DuckDB and PostgreSQL (and the sync stories on a Snowflake
# emulator, devtools/fakesnow_server.py, started by the tests). The PostgreSQL server is started
# by the tests (installed with apt-get when missing and running as root), unless the
# standard PG* variables name one.
# Two workers: most of the time goes to dbt commands (parsing, above all), which are CPU-bound;
# the integration tests run them forked from a pre-warmed process (tests/integration/prewarmed.py).
# The 15 slowest tests are listed at the end, to see where the time goes.
# Then the dbt-version lane (devtools/dbt_versions.py): the sync story, the CLI and the crash test
# on DuckDB with each other supported dbt-core (1.9, 1.10, 1.12), a venv each under build/.
test: install-engines
	$(BIN)/python -m pytest -q -ra -n 2 --dist loadfile --no-loadscope-reorder --durations=15
	$(BIN)/python -m devtools.dbt_versions

test-dbt-versions: install
	$(BIN)/python -m devtools.dbt_versions $(DBT_VERSIONS_ARGS)

# Performance figures (issue 4): DuckDB, a local PutEvents stub, the real CLI. 15 to 18 minutes (2026-12-01).
# More rows: make bench BENCH_ARGS="--rows 3000000"; a quick check: BENCH_ARGS=--quick;
# the diff on a local Spark Thrift server too (Java 17, about 10 more minutes): BENCH_ARGS=--spark
bench: install
	$(BIN)/python -m devtools.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(DATABRICKS_VENV) build/dbt-1.* integration_project/target integration_project/dbt_packages integration_project/logs .pytest_cache
