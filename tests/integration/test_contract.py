"""The state touches only tables of its own, the config means what the README says, and the
guards hold everywhere (dry runs, later dbt invocations, endpoints, concurrent runs).

Run through the real CLIs on copies of the sample project, on DuckDB (the SQL these paths
use does not differ on PostgreSQL; tests/integration/test_exact_changes.py runs both).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from devtools.fault_endpoint import FaultEndpoint
from tests.integration.harness import BIN, Project, add_model, canon, dbt, details, edit_schema, sql, state_tables


@pytest.fixture
def project(tmp_path, local_aws) -> Project:
    return Project(tmp_path, "duckdb", local_aws)


def sync_of(model: str, **more: Any) -> dict[str, Any]:
    return {"primary_key": "id", "source": f"com.test.{model}", "detail_type": "Changed", **more}


# -- our tables only --------------------------------------------------------------------------

def test_a_state_schema_that_holds_the_models_never_touches_them(project: Project) -> None:
    """state_schema = the models' schema, and a sync named like its model (the default)."""
    env = {"DBT_EVENTBRIDGE_STATE_SCHEMA": "main"}
    dbt(project, "build", "-s", "+order_lines", vars_={"day": 1})
    model_before = sql(project, "select * from main.order_lines order by all")
    r = project.sync("sync", "-s", "order_lines", extra_env=env)
    assert r.rc == 0, r.stdout + r.stderr
    assert len(details(project.drain()["default"], "OrderLineAdded")) == 3
    assert sql(project, "select * from main.order_lines order by all") == model_before
    r = project.sync("reset", "--sync", "order_lines", "--yes", extra_env=env)
    assert r.rc == 0, r.stdout + r.stderr
    assert sql(project, "select * from main.order_lines order by all") == model_before
    r = project.sync("sync", "-s", "order_lines", extra_env=env)
    assert r.rc == 0 and len(details(project.drain()["default"], "OrderLineAdded")) == 3
    tables = {t for (t,) in sql(project, "select table_name from information_schema.tables "
                                         "where table_schema = 'main'")}
    assert {"_eb_state__order_lines", "_eb_objects", "_eb_layouts", "order_lines"} <= tables


def test_a_table_that_is_not_ours_is_never_written_emptied_or_dropped(project: Project) -> None:
    dbt(project, "run", "-s", "flaky")
    sql(project, "create schema if not exists eventbridge_state")
    sql(project, "create table eventbridge_state._eb_state__flaky (note varchar)")
    sql(project, "insert into eventbridge_state._eb_state__flaky values ('mine')")
    for args in (("sync", "-s", "flaky"), ("reset", "--sync", "flaky", "--yes"),
                 ("rebaseline", "--sync", "flaky", "--yes")):
        r = project.sync(*args)
        assert r.rc == 2, (args, r.stdout + r.stderr)
        assert "was not created by dbt-eventbridge" in r.stderr and "state_schema" in r.stderr, r.stderr
        assert sql(project, "select * from eventbridge_state._eb_state__flaky") == [("mine",)]
    assert project.drain()["default"] == []


def test_a_model_named_like_another_models_plan_table_does_not_collide(project: Project) -> None:
    for name in ("pair", "pair__plan"):
        add_model(project, name, "select i as id, 'v{{ var(\"v\", 1) }}' as value from range(1, 4) t(i)",
                  sync_of(name))
    dbt(project, "run", "-s", "pair", "pair__plan")
    assert project.sync("sync", "-s", "pair", "pair__plan").rc == 0
    evs = project.drain()["default"]
    assert len(details(evs, source="com.test.pair")) == 3 and len(details(evs, source="com.test.pair__plan")) == 3
    dbt(project, "run", "-s", "pair", "pair__plan", vars_={"v": 2})
    r = project.sync("sync", "-s", "pair", "pair__plan")
    assert r.rc == 0, r.stdout + r.stderr
    # changes to delivered rows: neither sync's state was taken for the other's plan (had it
    # been dropped, its rows would go out again as "added")
    for name in ("pair", "pair__plan"):
        assert r.sync(name)["sent"] == {"added": 0, "changed": 3, "removed": 0}, (name, r.sync(name))
    evs = project.drain()["default"]
    for source in ("com.test.pair", "com.test.pair__plan"):
        assert canon(details(evs, source=source)) == canon([{"id": i, "value": "v2"} for i in (1, 2, 3)])


def test_sync_names_that_could_collide_are_config_errors(project: Project) -> None:
    edit_schema(project, lambda m: m["flaky"]["config"]["meta"]["eventbridge"].update(name="_eb_runs"))
    r = project.sync("validate")
    assert r.rc == 1
    assert "sync name '_eb_runs' starts with '_eb_'" in r.stderr


# -- the config contract ----------------------------------------------------------------------

def test_source_and_detail_type_per_trigger_and_names_matched_one_way(project: Project) -> None:
    model = 'select i as "Customer_ID", concat(\'c\', i, \'@example.com\') as "Email" from range(1, 3) t(i)'
    add_model(project, "people", model, {
        "primary_key": "customer_id",
        "triggers": {"added": {"source": "com.test.people.created", "detail_type": "PersonCreated"},
                     "removed": {"source": "com.test.people.deleted", "detail_type": "PersonDeleted"}},
        "detail": {"columns": ["email", "CUSTOMER_ID"]},
        "resources": ["{% raw %}urn:person:{{ row.customer_id }}{% endraw %}"]})
    dbt(project, "run", "-s", "people")
    assert project.sync("validate", "-s", "people").rc == 0
    r = project.sync("sync", "-s", "people")
    assert r.rc == 0, r.stdout + r.stderr
    evs = project.drain()["default"]
    assert sorted((e["source"], e["detail-type"], json.dumps(e["detail"]), e["resources"][0]) for e in evs) == [
        ("com.test.people.created", "PersonCreated", '{"email": "c1@example.com", "CUSTOMER_ID": 1}',
         "urn:person:1"),
        ("com.test.people.created", "PersonCreated", '{"email": "c2@example.com", "CUSTOMER_ID": 2}',
         "urn:person:2")]


def test_validate_catches_what_used_to_fail_only_at_run_time(project: Project) -> None:
    two = "select i as id, 'n' || i as name, i * 2 as a, i * 3 as b from range(1, 3) t(i)"
    add_model(project, "cfg_dup_key", two, sync_of("cfg_dup_key", primary_key=["id", "id"]))
    add_model(project, "cfg_ignore_all", two, sync_of("cfg_ignore_all", ignore_columns=["name", "a", "b"]))
    add_model(project, "cfg_two_to_one", two, sync_of("cfg_two_to_one", detail={"columns": {"a": "x", "b": "x"}}))
    add_model(project, "cfg_env", two, sync_of("cfg_env", detail={
        "template": "{% raw %}{\"e\": \"{{ env_var('EB_TEST_NEVER_SET') }}\"}{% endraw %}"}))
    add_model(project, "cfg_parse_time", two, sync_of("cfg_parse_time", detail_type="Thing{{ op }}"))
    add_model(project, "cfg_near_miss", two, meta={"event_bridge": sync_of("cfg_near_miss")})
    add_model(project, "cfg_missing", two, sync_of("cfg_missing", detail={"columns": ["nickname"]}))
    add_model(project, "cfg_ephemeral", "{{ config(materialized='ephemeral') }}\n" + two, sync_of("cfg_ephemeral"))
    dbt(project, "run", "-s", "path:models/extra")
    r = project.sync("validate", "-s", "path:models/extra")
    assert r.rc == 1, r.stdout + r.stderr
    expected = {
        "cfg_dup_key": "primary_key names a column twice",
        "cfg_ignore_all": "ignore_columns leaves only the key columns",
        "cfg_two_to_one": "columns a, b are all mapped to the detail key 'x'",
        "cfg_env": "env_var('EB_TEST_NEVER_SET'), which is not set",
        "cfg_parse_time": "dbt rendered this template when it parsed the project",
        "cfg_near_miss": "the meta key 'event_bridge' looks like 'eventbridge'",
        "cfg_missing": "column 'nickname' is not a column of",
        "cfg_ephemeral": "cfg_ephemeral is ephemeral",
    }
    lines = r.stderr.splitlines()
    for model, text in expected.items():
        assert any(f"model '{model}'" in ln and text in ln for ln in lines), (model, r.stderr)
    # a run refuses the same syncs (exit 2), and sends nothing for them
    r = project.sync("sync", "-s", "path:models/extra")
    assert r.rc == 2
    for model in expected:
        assert model in r.stderr
    assert project.drain()["default"] == []


SEED_YML = """
version: 2
seeds:
  - name: seed_items
    config:
      meta:
        eventbridge:
          primary_key: id
          source: com.test.seed
          detail_type: SeedItem
snapshots:
  - name: snap_items
    relation: ref('seed_items')
    config:
      unique_key: id
      strategy: check
      check_cols: all
      meta:
        eventbridge:
          primary_key: dbt_scd_id
          source: com.test.snapshot
          detail_type: "{% raw %}ItemVersion{{ op | capitalize }}{% endraw %}"
          detail:
            columns: [id, name, dbt_valid_to]
"""


def test_seeds_and_snapshots_sync_like_models(project: Project) -> None:
    (project.dir / "seeds" / "seed_items.csv").write_text("id,name\n1,one\n2,two\n")
    (project.dir / "seeds" / "seed_items.yml").write_text(SEED_YML.split("snapshots:")[0])
    (project.dir / "snapshots").mkdir(exist_ok=True)
    (project.dir / "snapshots" / "snap_items.yml").write_text("version: 2\nsnapshots:" + SEED_YML.split("snapshots:")[1])
    dbt(project, "seed", "-s", "seed_items")
    dbt(project, "snapshot", "-s", "snap_items")
    r = project.sync("sync", "-s", "seed_items", "snap_items")
    assert r.rc == 0, r.stdout + r.stderr
    evs = project.drain()["default"]
    assert canon(details(evs, "SeedItem")) == canon([{"id": 1, "name": "one"}, {"id": 2, "name": "two"}])
    assert canon(details(evs, "ItemVersionAdded")) == canon([{"id": 1, "name": "one", "dbt_valid_to": None},
                                                             {"id": 2, "name": "two", "dbt_valid_to": None}])
    (project.dir / "seeds" / "seed_items.csv").write_text("id,name\n1,one\n2,TWO\n")
    dbt(project, "seed", "-s", "seed_items")
    dbt(project, "snapshot", "-s", "snap_items")
    r = project.sync("sync", "-s", "seed_items", "snap_items")
    assert r.rc == 0, r.stdout + r.stderr
    evs = project.drain()["default"]
    assert details(evs, "SeedItem") == [{"id": 2, "name": "TWO"}]
    # the snapshot closes the old version (changed) and opens a new one (added)
    assert details(evs, "ItemVersionAdded") == [{"id": 2, "name": "TWO", "dbt_valid_to": None}]
    closed = details(evs, "ItemVersionChanged")
    assert len(closed) == 1 and closed[0]["id"] == 2 and closed[0]["name"] == "two" and closed[0]["dbt_valid_to"]


# -- the guards -------------------------------------------------------------------------------

def test_a_dry_run_applies_the_mass_removal_guard_and_exits_as_the_real_run(project: Project) -> None:
    add_model(project, "shrink", "select i as id from range(1, {{ var('n', 21) }}) t(i)", sync_of("shrink"))
    dbt(project, "run", "-s", "shrink")
    assert project.sync("sync", "-s", "shrink").rc == 0
    project.drain()
    dbt(project, "run", "-s", "shrink", vars_={"n": 3})
    before = state_tables(project.db)
    r = project.sync("sync", "-s", "shrink", "--dry-run")
    assert r.rc == 1, r.stdout + r.stderr
    s = r.sync("shrink")
    assert s["status"] == "blocked" and "a real run would stop before publishing" in s["message"]
    assert state_tables(project.db) == before and project.drain()["default"] == []
    r = project.sync("sync", "-s", "shrink")
    assert r.rc == 1 and r.sync("shrink")["status"] == "blocked"
    assert project.sync("sync", "-s", "shrink", "--dry-run", "--allow-mass-removal").rc == 0


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_a_failure_holds_a_model_back_across_later_dbt_invocations(engine: str, request: pytest.FixtureRequest,
                                                                   tmp_path, local_aws) -> None:
    pg = request.getfixturevalue("postgres") if engine == "postgres" else None
    project = Project(tmp_path, engine, local_aws, pg)
    project.build(day=1)
    assert project.sync("sync", "-s", "customers", "order_lines", "flaky").rc == 0
    project.drain()
    # day 2: customers' test fails and flaky fails to build ...
    project.build(day=2, expect_rc=1, fail_customer_test=True, break_flaky=True)
    # ... then another dbt invocation that builds something else
    dbt(project, "run", "-s", "order_lines", vars_={"day": 2})
    r = project.sync("sync", "-s", "customers", "order_lines", "flaky")
    assert r.rc == 0, r.stdout + r.stderr
    crm = r.sync("customers_to_crm")
    assert crm["status"] == "skipped"
    assert "tests failed in an earlier dbt invocation (build" in crm["message"]
    assert "no dbt invocation has run them successfully since" in crm["message"]
    flaky = r.sync("flaky")
    assert flaky["status"] == "skipped"
    assert "no dbt invocation has built it successfully since" in flaky["message"]
    assert r.sync("order_lines")["status"] == "success"
    evs = project.drain()
    assert evs["crm-events"] == [] and details(evs["default"], "FlakyChanged") == []
    assert details(evs["default"], "OrderLineChanged")
    # rebuilding customers without testing it is not enough
    dbt(project, "run", "-s", "customers", vars_={"day": 2})
    assert project.sync("sync", "-s", "customers").sync("customers_to_crm")["status"] == "skipped"
    # built and tested: delivered
    dbt(project, "build", "-s", "customers", "flaky", vars_={"day": 2})
    r = project.sync("sync", "-s", "customers", "flaky")
    assert r.sync("customers_to_crm")["status"] == "success" and r.sync("flaky")["status"] == "success"
    assert details(project.drain()["crm-events"], "CustomerCreated")


class _NotEventBridge:
    """A web server that answers every request with a 404 page."""

    def __enter__(self) -> _NotEventBridge:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = b"<html><body><h1>404 Not Found</h1></body></html>"
                self.send_response(404)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()


def test_an_endpoint_that_is_not_eventbridge_stops_the_run_with_nothing_left_behind(project: Project) -> None:
    dbt(project, "build", "-s", "+order_lines", vars_={"day": 1})
    with _NotEventBridge() as web:
        r = project.sync("sync", "-s", "order_lines", extra_env={"DBT_EVENTBRIDGE_ENDPOINT_URL": web.url})
    assert r.rc == 2
    s = r.sync("order_lines")
    assert "could not reach EventBridge" in s["message"] and "HTTP 404" in s["message"]
    assert s["rejected"] == 0 and s["rejections"] == []
    after = state_tables(project.db)
    assert not any(t.startswith(("_eb_plan__", "_eb_acks__", "_eb_state__")) for t in after), sorted(after)
    r = project.sync("sync", "-s", "order_lines", extra_env={"DBT_EVENTBRIDGE_ENDPOINT_URL": "ftp://127.0.0.1:21"})
    assert r.rc == 2 and "could not reach EventBridge" in r.stderr and "not an http(s) URL" in r.stderr
    assert state_tables(project.db) == after


@pytest.fixture
def slow_endpoint() -> Iterator[FaultEndpoint]:
    with FaultEndpoint(delay=0.25) as ep:
        yield ep


def test_two_runs_on_one_duckdb_file_wait_or_say_so(project: Project, slow_endpoint: FaultEndpoint) -> None:
    add_model(project, "many", "select i as id from range(1, 301) t(i)", sync_of("many"))
    dbt(project, "run", "-s", "many")
    env = {**project.env, "DBT_EVENTBRIDGE_ENDPOINT_URL": slow_endpoint.endpoint_url,
           "DBT_EVENTBRIDGE_CONCURRENCY": "1"}
    first = subprocess.Popen([str(BIN / "dbt-eventbridge"), "sync", "-s", "many", *project.target_args],
                             cwd=project.dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while slow_endpoint.request_count < 2 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.poll() is None, first.communicate()
        r = project.sync("sync", "-s", "many", extra_env={"DBT_EVENTBRIDGE_ENDPOINT_URL": slow_endpoint.endpoint_url})
        assert r.rc == 2
        assert "another run is syncing right now" in r.stderr and "lock_wait_seconds" in r.stderr, r.stderr
        assert "Could not set lock" not in r.stderr
    finally:
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0, out + err
    # with lock_wait_seconds the second run waits for the first, then does its work
    dbt(project, "run", "-s", "many")  # nothing changes: the waiting run finds nothing to send
    first = subprocess.Popen([str(BIN / "dbt-eventbridge"), "sync", "-s", "many", "--full-refresh",
                              *project.target_args], cwd=project.dir, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        seen = slow_endpoint.request_count
        while slow_endpoint.request_count < seen + 2 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.poll() is None
        r = project.sync("sync", "-s", "many", extra_env={"DBT_EVENTBRIDGE_ENDPOINT_URL": slow_endpoint.endpoint_url,
                                                         "DBT_EVENTBRIDGE_LOCK_WAIT_SECONDS": "300"})
        assert r.rc == 0, r.stdout + r.stderr
        assert r.sync("many")["sent"] == {"added": 0, "changed": 0, "removed": 0}
        assert first.poll() is not None  # it waited for the first run to end
    finally:
        first.communicate(timeout=300)
