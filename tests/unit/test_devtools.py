"""The test helpers themselves: a private PostgreSQL and a local EventBridge."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from devtools import postgres
from devtools.local_aws import LocalEventBridge
from devtools.postgres import PgParams, PostgresServer, free_port, from_environment, postgres_for_tests

PG_VARS = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE")


def _select_one(params: PgParams) -> tuple[int, str]:
    conn = psycopg2.connect(**params.connect_kwargs(), connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("select 1, current_database()")
            row = cur.fetchone()
            assert row is not None
            return int(row[0]), str(row[1])
    finally:
        conn.close()


@pytest.fixture
def no_pg_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in PG_VARS:
        monkeypatch.delenv(var, raising=False)


# --------------------------------------------------------------------------- postgres


def test_postgres_server_start_connect_stop(tmp_path: Path) -> None:
    with PostgresServer.start(tmp_path) as server:
        assert server.host == "127.0.0.1"
        assert _select_one(server.params) == (1, "dbt_eventbridge_test")
        assert server.env() == {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(server.port),
            "PGUSER": server.user,
            "PGPASSWORD": "",
            "PGDATABASE": "dbt_eventbridge_test",
        }
        # A second start on the same base_dir re-attaches instead of starting another.
        assert PostgresServer.start(tmp_path).port == server.port
    assert not server.is_running()
    with pytest.raises(psycopg2.OperationalError):
        _select_one(server.params)


def test_postgres_for_tests_starts_one_without_pghost(tmp_path: Path, no_pg_env: None) -> None:
    params, stop = postgres_for_tests(tmp_path)
    try:
        assert _select_one(params) == (1, "dbt_eventbridge_test")
    finally:
        stop()
    with pytest.raises(psycopg2.OperationalError):
        _select_one(params)


def test_postgres_for_tests_uses_pghost_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with PostgresServer.start(tmp_path / "external") as external:
        for key, value in external.env().items():
            monkeypatch.setenv(key, value)
        params, stop = postgres_for_tests(tmp_path / "unused")
        assert params == external.params
        stop()  # must not stop a server it did not start
        assert _select_one(params) == (1, "dbt_eventbridge_test")
        assert not (tmp_path / "unused").exists()


def test_postgres_for_tests_unreachable_pghost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", str(free_port()))
    with pytest.raises(RuntimeError, match="PGHOST"):
        postgres_for_tests(tmp_path)


def test_postgres_for_tests_explains_missing_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_pg_env: None
) -> None:
    monkeypatch.setattr(postgres, "find_bindir", lambda: None)
    monkeypatch.setattr(postgres, "_is_root", lambda: False)  # so no apt-get install is tried
    with pytest.raises(RuntimeError, match=r"apt-get install postgresql(.|\n)*PGHOST"):
        postgres_for_tests(tmp_path)


def test_from_environment() -> None:
    assert from_environment({}) is None
    assert from_environment({"PGHOST": "db.example", "PGPORT": "6543", "PGUSER": "u",
                             "PGPASSWORD": "p", "PGDATABASE": "d"}) == PgParams("db.example", 6543, "u", "p", "d")
    defaults = from_environment({"PGHOST": "/run/postgresql", "PGUSER": "me"})
    assert defaults == PgParams("/run/postgresql", 5432, "me", None, "me")


# --------------------------------------------------------------------------- eventbridge


@pytest.fixture(scope="module")
def local_eb() -> Iterator[LocalEventBridge]:
    with LocalEventBridge() as local:
        yield local


def _key(event: dict) -> tuple[str, str, str]:
    return event["source"], event["detail-type"], json.dumps(event["detail"], sort_keys=True)


def test_local_eventbridge_delivers_put_events(local_eb: LocalEventBridge) -> None:
    assert local_eb.endpoint_url.startswith("http://127.0.0.1:")
    queue_url = local_eb.create_bus_with_queue("orders-bus")
    other_queue = local_eb.create_bus_with_queue("other-bus")
    events = local_eb.client("events")
    bus_arn = events.describe_event_bus(Name="orders-bus")["Arn"]
    entries = [
        {"Source": "dbt.orders", "DetailType": "order.created", "Detail": json.dumps({"id": 1, "total": 9.5}),
         "EventBusName": "orders-bus"},
        {"Source": "dbt.orders", "DetailType": "order.updated", "Detail": json.dumps({"id": 2, "tags": ["a"]}),
         "EventBusName": "orders-bus", "Resources": ["arn:aws:dynamodb:us-east-1:123456789012:table/orders"]},
        # Routing by ARN works the same as by name.
        {"Source": "dbt.other", "DetailType": "order.deleted", "Detail": json.dumps({"id": 3}),
         "EventBusName": bus_arn},
    ]
    resp = events.put_events(Entries=entries)
    assert resp["FailedEntryCount"] == 0

    got = local_eb.drain(queue_url, expected=3)

    assert len(got) == 3
    assert {e["id"] for e in got} == {r["EventId"] for r in resp["Entries"]}
    assert sorted(map(_key, got)) == sorted(
        (e["Source"], e["DetailType"], json.dumps(json.loads(e["Detail"]), sort_keys=True)) for e in entries
    )
    by_type = {e["detail-type"]: e for e in got}
    assert by_type["order.updated"]["resources"] == entries[1]["Resources"]
    assert by_type["order.created"]["time"].endswith("Z")
    # Nothing leaked to the other bus, and the drained queue is now empty.
    assert local_eb.drain(other_queue, expected=0) == []
    assert local_eb.drain(queue_url, expected=0) == []


def test_local_eventbridge_default_bus_and_open_ended_drain(local_eb: LocalEventBridge) -> None:
    queue_url = local_eb.create_bus_with_queue("default", queue_name="default-bus-events")
    events = local_eb.client("events")
    events.put_events(Entries=[{"Source": "dbt.default", "DetailType": "ping", "Detail": "{}"}])
    got = local_eb.drain(queue_url)  # no `expected`: stops after two empty polls
    assert [(e["source"], e["detail-type"], e["detail"]) for e in got] == [("dbt.default", "ping", {})]


def test_local_eventbridge_env_points_at_server(local_eb: LocalEventBridge) -> None:
    env = local_eb.env()
    assert env["AWS_ENDPOINT_URL"] == local_eb.endpoint_url
    assert env["AWS_ACCESS_KEY_ID"] == "testing"
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"


def test_the_declared_dbt_range_is_the_tested_one() -> None:
    """pyproject.toml's dbt-core range admits every version the dbt-version lane and the main
    suite test, and its lower bound is the oldest of them: pip keeps a user's dbt-core 1.12."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.version import Version

    from devtools import dbt_versions

    with (dbt_versions.REPO / "pyproject.toml").open("rb") as f:
        declared = [Requirement(r) for r in tomllib.load(f)["project"]["dependencies"]]
    core = next(r for r in declared if r.name == "dbt-core")
    tested = [Version(v.core) for v in dbt_versions.VERSIONS] + [Version(dbt_versions._pinned_core())]
    assert all(core.specifier.contains(v) for v in tested), (core, tested)
    assert {(v.major, v.minor) for v in tested} == {(1, 9), (1, 10), (1, 11), (1, 12)}
    oldest = min(tested)
    assert not core.specifier.contains(Version(f"{oldest.major}.{oldest.minor - 1}.99")), core
    newest = max(tested)
    assert not core.specifier.contains(Version(f"{newest.major}.{newest.minor + 1}.0")), core
    for v in dbt_versions.VERSIONS:  # each lane's pins are the version it names
        pins = v.constraints.read_text().splitlines()
        assert f"dbt-core=={v.core}" in pins and f"dbt-duckdb=={v.duckdb}" in pins, v
