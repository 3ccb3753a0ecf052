"""Session-wide real parts: a local EventBridge (moto) and a PostgreSQL server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from devtools.local_aws import LocalEventBridge  # noqa: E402
from devtools.postgres import PgParams, postgres_for_tests  # noqa: E402

BUSES = ("crm-events", "default")


@pytest.fixture(scope="session")
def local_aws() -> Iterator[LocalEventBridge]:
    with LocalEventBridge() as local:
        local.queues = {bus: local.create_bus_with_queue(bus) for bus in BUSES}  # type: ignore[attr-defined]
        yield local


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgParams]:
    try:
        params, stop = postgres_for_tests(tmp_path_factory.mktemp("pg"))
    except RuntimeError as e:
        if os.environ.get("CI"):
            raise  # on CI the PostgreSQL tests must run, never skip
        pytest.skip(f"no PostgreSQL server: {e}")
    yield params
    stop()


@contextmanager
def _devtools_server(args: list[str], missing: str, stop_wait: float) -> Iterator[int]:
    """A devtools server that prints {"port": N} on 127.0.0.1 once it is ready and stops when
    its stdin closes."""
    proc = subprocess.Popen([sys.executable, "-m", *args], cwd=REPO_ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    line = proc.stdout.readline()
    assert line, missing
    yield int(json.loads(line)["port"])
    proc.stdin.close()
    try:
        proc.wait(stop_wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def snowflake() -> Iterator[int]:
    """The port of a Snowflake emulator (devtools/fakesnow_server.py) on 127.0.0.1, one per
    test session; tests keep apart by schema, as on the PostgreSQL server."""
    with _devtools_server(["devtools.fakesnow_server"],
                          "the Snowflake emulator did not start (is fakesnow installed? `make install`)", 30) as port:
        yield port


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of Spark's Thrift server (devtools/spark_server.py) on 127.0.0.1, one per test
    session (about 20 s to start); tests keep apart by schema."""
    with _devtools_server(["devtools.spark_server", "--dir", str(tmp_path_factory.mktemp("spark"))],
                          "Spark's Thrift server did not start (Java 17 and PySpark: `make test` installs them)",
                          60) as port:
        yield port


# The slowest files first (`make test` lists its slowest tests; these from its run on 2026-12-01):
# with two workers and --dist loadfile --no-loadscope-reorder, a file that takes minutes starts
# at once, and the many short unit tests fill the end. (xdist's own order, most tests first,
# sent the one-test bench file last, with the other worker idle for its 97 s.)
SLOWEST_FIRST = ("tests/integration/test_guarantees.py", "tests/bench/test_bench.py", "tests/integration/test_v2_bus.py",
                 "tests/integration/test_sync_story.py", "tests/integration/test_contract.py")


# The DuckDB tests that also run on every other supported dbt minor (devtools/dbt_versions.py),
# by file and name prefix: the sync story, the CLI, `dbt-eventbridge build` (dbt's events and
# end of build), and the crash test (SIGKILL at every crash point). About 3 minutes a version
# on 2 cores; the rest of the guarantees would double it.
DBT_VERSION_LANE = {"test_sync_story.py": "", "test_cli.py": "", "test_build.py": "",
                    "test_guarantees.py": "test_sigkill_at_any_point_loses_nothing",
                    "test_v2_bus.py": "test_sigkill_at_any_point"}


def _run_order(item: pytest.Item) -> tuple[int, int]:
    path = Path(str(item.fspath)).relative_to(Path(__file__).resolve().parents[1]).as_posix()
    if path in SLOWEST_FIRST:
        return 0, SLOWEST_FIRST.index(path)
    return (1 if "integration" in path or "bench" in path else 2), 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The markers by where a test lives and what it runs on, so lanes can be chosen with -m:
    ``integration`` for tests/integration/, ``postgres`` for tests that need the PostgreSQL
    server (an engine parameter or the fixture), ``snowflake`` likewise for the Snowflake
    emulator, ``spark`` for Spark's Thrift server, ``duckdb`` for the other integration tests,
    and ``dbt_versions`` for the DuckDB tests of the files in DBT_VERSION_LANE.
    And the run order: the slowest files first, then the other integration tests, then the unit
    tests (a stable sort: within a file, the order is the collection's)."""
    items.sort(key=_run_order)
    for item in items:
        parts = Path(str(item.fspath)).parts
        callspec = getattr(item, "callspec", None)
        values = {str(v) for v in callspec.params.values()} if callspec is not None else set()
        fixtures = set(getattr(item, "fixturenames", ()))
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        if "postgres" in values or ("postgres" in fixtures and "duckdb" not in values):
            item.add_marker(pytest.mark.postgres)
        elif "snowflake" in values or ("snowflake" in fixtures and "duckdb" not in values):
            item.add_marker(pytest.mark.snowflake)
        elif "spark" in values or ("spark" in fixtures and "duckdb" not in values):
            item.add_marker(pytest.mark.spark)
        elif "integration" in parts:
            item.add_marker(pytest.mark.duckdb)
            if parts[-1] in DBT_VERSION_LANE and item.name.startswith(DBT_VERSION_LANE[parts[-1]]):
                item.add_marker(pytest.mark.dbt_versions)
