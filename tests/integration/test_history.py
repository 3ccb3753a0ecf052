"""Run history and the day-two commands, as a user drives them: `runs`, `inspect`,
`--report`, `reset`, `rebaseline`, `--log-format json`, retention, interrupted runs."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import duckdb
import pytest

from devtools.fault_endpoint import FaultEndpoint
from tests.integration.harness import BIN, Project, closed_port, state_tables
from tests.integration.test_guarantees import _bulk


@pytest.fixture
def project(tmp_path, local_aws) -> Project:
    return Project(tmp_path, "duckdb", local_aws)


@pytest.fixture
def endpoint() -> Iterator[FaultEndpoint]:
    with FaultEndpoint(seed=11) as ep:
        yield ep


def cli(p: Project, *args: str, extra_env: dict[str, str] | None = None) -> Any:
    """A history command (runs, inspect, reset, rebaseline) of the CLI, as a user types it."""
    r = p.run([str(BIN / "dbt-eventbridge"), *args, *p.target_args], extra_env)
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    return r


def history(db, table: str, schema: str = "eventbridge_state") -> list[dict[str, Any]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        cur = con.execute(f"select * from {schema}.{table}")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        con.close()


def test_what_was_sent_for_one_key_and_what_aws_answered(project: Project) -> None:
    project.build(day=1)
    first = project.sync("sync", "-s", "customers")
    assert first.rc == 0, first.stderr
    day1 = project.drain()["crm-events"]
    project.build(day=2)
    second = project.sync("sync", "-s", "customers")
    assert second.rc == 0, second.stderr
    day2 = project.drain()["crm-events"]

    # `runs`: newest first, one line per sync per run, with the run id to inspect.
    r = cli(project, "runs")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["RUN", "ID", "SYNC"]
    assert {first.results["run_id"], second.results["run_id"]} <= {ln.split()[0] for ln in lines[1:]}
    assert lines[1].split()[0] == second.results["run_id"]

    # The history of customer 1 on the CRM bus: every entry, with the EventId AWS gave it,
    # which is the `id` the consumer received.
    sent_for_1 = [e for e in day1 + day2 if e["resources"] == ["arn:aws:acme:us-east-1:123456789012:customer/1"]]
    assert sent_for_1, "customer 1 must have been sent"
    r = cli(project, "inspect", "--sync", "customers_to_crm", "--key", "1")
    assert r.returncode == 0, r.stderr
    assert f"{len(sent_for_1)} event(s) for key {{\"customer_id\":1}} of sync customers_to_crm" in r.stdout
    for e in sent_for_1:
        assert f"accepted, EventId {e['id']}" in r.stdout
        assert json.dumps(e["detail"], separators=(",", ":"), ensure_ascii=False) in r.stdout
    # The same, as JSON lines, and by column name.
    r = cli(project, "inspect", "--sync", "customers_to_crm", "--key", "customer_id=1", "--log-format", "json")
    rows = [json.loads(line)["data"] for line in r.stdout.splitlines()]
    assert sorted(x["aws_event_id"] for x in rows) == sorted(e["id"] for e in sent_for_1)
    assert {x["detail_type"] for x in rows} == {e["detail-type"] for e in sent_for_1}

    # `inspect RUN_ID` (a prefix is enough): per sync and op, what AWS answered.
    r = cli(project, "inspect", second.results["run_id"][:8])
    assert r.returncode == 0, r.stderr
    assert f"Run {second.results['run_id']}" in r.stdout
    sent = second.sync("customers_to_crm")["sent"]
    for op, n in sent.items():
        if n:
            assert re.search(rf"customers_to_crm\s+{op}\s+accepted\s+{n}\s", r.stdout), r.stdout

    # The tables behind it, as a dashboard reads them.
    runs = history(project.db, "_eb_runs")
    row = next(x for x in runs if x["run_id"] == second.results["run_id"] and x["sync_name"] == "customers_to_crm")
    assert row["status"] == "success" and row["exit_code"] == 0
    assert row["sent_changed"] == sent["changed"] and row["dbt_invocation_id"] == second.results["dbt_invocation_id"]
    assert row["finished_at"] >= row["started_at"]
    events = [x for x in history(project.db, "_eb_events") if x["run_id"] == second.results["run_id"]]
    assert len([x for x in events if x["sync_name"] == "customers_to_crm"]) == len(day2)
    assert all(x["size_bytes"] > 0 and x["attempts"] == 1 and x["aws_event_id"] for x in events)
    assert all(x["event_id"] is None for x in events)  # recorded only where a template uses it


def test_rejected_rows_are_explained_with_their_key(tmp_path, local_aws, endpoint) -> None:
    b = _bulk(tmp_path, local_aws, endpoint, rows=60)
    endpoint.reject = lambda e: (("AccessDeniedException", "not allowed on this bus")
                                 if json.loads(e["Detail"])["id"] == 42 else None)
    endpoint.entry_fault_rate = 0.3  # retried entries: attempts above 1 are recorded
    r = b.sync()
    assert r.rc == 1
    run_id = r.results["run_id"]
    out = cli(b.p, "inspect", run_id, "--failed")
    assert out.returncode == 0, out.stderr
    assert 'bulk  added  key {"id":42}  REJECTED AccessDeniedException: not allowed on this bus' in out.stdout
    events = history(b.db, "_eb_events")
    assert len(events) == 60
    assert {x["error_code"] for x in events if x["event_key"] == '{"id":42}'} == {"AccessDeniedException"}
    accepted = [x for x in events if x["error_code"] is None]
    assert len(accepted) == 59 and all(x["aws_event_id"] for x in accepted)
    # This template sends event_id: the history has the same id the consumer got.
    assert {json.loads(e["Detail"])["event_id"] for e in endpoint.accepted} == {x["event_id"] for x in accepted}
    assert max(x["attempts"] for x in accepted) > 1
    assert sum(x["attempts"] for x in events) >= 60 + r.sync("bulk")["retried_entries"] // 2
    # The report of that run, from the history.
    report = tmp_path / "run.html"
    out = cli(b.p, "inspect", run_id, "--report", str(report))
    assert out.returncode == 0, out.stderr
    page = report.read_text()
    assert "AccessDeniedException" in page and "not allowed on this bus" in page and "<svg" in page


def test_sync_report_and_json_logs(project: Project, tmp_path) -> None:
    project.build(day=1)
    report = tmp_path / "report.html"
    r = project.sync("sync", "-s", "customers", "--report", str(report), "--log-format", "json")
    assert r.rc == 0, r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()]  # every line is one JSON object
    assert all({"name", "level", "msg", "ts"} <= set(x["info"]) for x in records)
    done = records[-1]
    assert done["data"]["result"]["exit_code"] == 0
    assert {s["sync"] for s in done["data"]["result"]["syncs"]} == {"customers_to_crm", "customer_profiles"}
    assert any(x["info"]["name"] == "summary" and "customers_to_crm" in x["info"]["msg"] for x in records)
    page = report.read_text()
    assert "customers_to_crm" in page and "customer_profiles" in page and "<svg" in page
    # validate speaks JSON too.
    v = project.run([str(BIN / "dbt-eventbridge"), "validate", *project.target_args, "--log-format", "json"])
    assert v.returncode == 0, v.stderr
    assert json.loads(v.stdout.splitlines()[-1])["info"]["msg"].startswith("OK:")


def test_detail_can_be_left_out_and_old_history_is_pruned(project: Project) -> None:
    project.build(day=1)
    assert project.sync("sync", "-s", "customers", extra_env={"DBT_EVENTBRIDGE_HISTORY_DETAIL": "false"}).rc == 0
    events = history(project.db, "_eb_events")
    assert events and all(x["detail"] is None for x in events)
    con = duckdb.connect(str(project.db))
    con.execute("update eventbridge_state._eb_events set sent_at = sent_at - interval 40 day")
    con.execute("update eventbridge_state._eb_runs set started_at = started_at - interval 40 day")
    con.close()
    project.build(day=2)
    r = project.sync("sync", "-s", "customers")
    assert r.rc == 0, r.stderr
    assert {x["run_id"] for x in history(project.db, "_eb_runs")} == {r.results["run_id"]}
    assert {x["run_id"] for x in history(project.db, "_eb_events")} == {r.results["run_id"]}
    assert all(x["detail"] for x in history(project.db, "_eb_events"))


def test_a_killed_run_is_marked_interrupted(project: Project) -> None:
    project.build(day=1)
    killed = project.sync("sync", "-s", "customers", extra_env={"DBT_EVENTBRIDGE_CRASH_AT": "publish.journaled"})
    assert killed.rc < 0 or killed.rc == 137
    rows = history(project.db, "_eb_runs")
    assert [x["status"] for x in rows] == ["running"]
    r = project.sync("sync", "-s", "customers")
    assert r.rc == 0, r.stderr
    by_run = {(x["run_id"], x["sync_name"]): x["status"] for x in history(project.db, "_eb_runs")}
    assert "interrupted" in by_run.values()
    assert {v for (run, _), v in by_run.items() if run == r.results["run_id"]} == {"success"}


def test_reset_and_rebaseline(project: Project) -> None:
    project.build(day=1)
    assert project.sync("sync", "-s", "customers").rc == 0
    project.drain()
    before = state_tables(project.db)

    # Without a terminal and without --yes, nothing changes.
    r = cli(project, "reset", "--sync", "customers_to_crm")
    assert r.returncode == 1 and "--yes" in r.stderr
    assert state_tables(project.db) == before
    r = cli(project, "reset", "--sync", "nope", "--yes")
    assert r.returncode == 2 and "no sync is named nope" in r.stderr and "customers_to_crm" in r.stderr

    r = cli(project, "reset", "--sync", "customers_to_crm", "--yes")
    assert r.returncode == 0, r.stderr
    assert "forgot 5 delivered row(s)" in r.stdout
    r = project.sync("sync", "-s", "customers")
    assert r.rc == 0
    ev = project.drain()
    assert len(ev["crm-events"]) == 5 and {e["detail-type"] for e in ev["crm-events"]} == {"CustomerCreated"}
    assert [e for e in ev["default"] if e["source"] == "com.acme.profiles"] == []  # the other sync kept its state

    # Rebaseline: day 2's changes are taken as delivered without sending them.
    project.build(day=2)
    r = cli(project, "rebaseline", "--sync", "customers_to_crm", "--yes")
    assert r.returncode == 0, r.stderr + r.stdout
    assert project.drain()["crm-events"] == []
    assert "recorded without event" in r.stdout
    r = project.sync("sync", "-s", "customers")
    assert r.rc == 0
    ev = project.drain()
    assert ev["crm-events"] == []  # nothing left to send for the re-baselined sync
    assert [e for e in ev["default"] if e["source"] == "com.acme.profiles"]  # the other one sends day 2


def test_history_on_postgres(tmp_path, local_aws, postgres) -> None:
    p = Project(tmp_path, "postgres", local_aws, postgres)
    p.build(day=1)
    r = p.sync("sync", "-s", "customers")
    assert r.rc == 0, r.stderr
    sent = [e for e in p.drain()["crm-events"]
            if e["resources"] == ["arn:aws:acme:us-east-1:123456789012:customer/2"]]
    out = cli(p, "inspect", "--sync", "customers_to_crm", "--key", "2", "--log-format", "json")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line)["data"] for line in out.stdout.splitlines()]
    assert [x["aws_event_id"] for x in rows] == [e["id"] for e in sent]
    assert json.loads(rows[0]["detail"]) == sent[0]["detail"]
    out = cli(p, "runs", "--sync", "customers_to_crm")
    assert out.returncode == 0 and r.results["run_id"] in out.stdout


def test_alert_on_failure_and_recovery_on_a_local_webhook(project: Project) -> None:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        config = project.dir / "dbt_project.yml"
        text = config.read_text()
        assert "  eventbridge:\n    region: us-east-1\n" in text
        config.write_text(text.replace("  eventbridge:\n    region: us-east-1\n", (
            "  eventbridge:\n    region: us-east-1\n    alerts:\n      - name: team-hook\n        type: webhook\n"
            "        url_env: TEAM_HOOK_URL\n        syncs: [customers_to_crm]\n"), 1))
        env = {"TEAM_HOOK_URL": f"http://127.0.0.1:{server.server_address[1]}/hook"}
        project.build(day=1)
        down = {**env, "DBT_EVENTBRIDGE_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}"}
        for _ in range(2):  # failing twice: one alert, not two
            r = project.sync("sync", "-s", "customers", extra_env=down)
            assert r.rc == 2
        assert [(x["kind"], x["trigger"], x["sync"], x["exit_code"]) for x in received] == [
            ("alert", "failed", "customers_to_crm", 2)]
        assert "could not reach EventBridge" in received[0]["message"]
        assert received[0]["run_id"] and received[0]["source"] == "dbt-eventbridge"
        for _ in range(2):  # fixed: one recovery
            r = project.sync("sync", "-s", "customers", extra_env=env)
            assert r.rc == 0, r.stderr
        assert [(x["kind"], x["trigger"], x["status"]) for x in received[1:]] == [("recovery", "failed", "success")]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_broken_alert_config_is_found_by_validate_and_stops_the_run(project: Project) -> None:
    config = project.dir / "dbt_project.yml"
    config.write_text(config.read_text().replace("  eventbridge:\n    region: us-east-1\n", (
        "  eventbridge:\n    region: us-east-1\n    alerts:\n      - name: team-hook\n        type: webhook\n"
        "        url_env: https://hooks.example.com/secret-token\n"
        "      - name: other-hook\n        type: webhook\n        url_env: OTHER_HOOK\n"
        "        syncs: [customers_to_crmm]\n"), 1))
    project.build(day=1)
    v = project.sync("validate")
    assert v.rc == 1
    assert "vars.eventbridge.alerts[0].url_env" in v.stderr and "2 problem(s)" in v.stderr
    assert "vars.eventbridge.alerts[1].syncs" in v.stderr and "customers_to_crm" in v.stderr
    assert "secret-token" not in v.stderr + v.stdout  # a pasted URL is a secret: never echoed
    r = project.sync("sync", "-s", "customers")
    assert r.rc == 2 and "alerts[0]" in r.stderr
    assert project.drain() == {"crm-events": [], "default": []}


def test_the_history_as_dbt_sources(project: Project) -> None:
    """A team's model and dbt test over the package's `eventbridge_history` sources."""
    project.build(day=1)
    assert project.sync("sync", "-s", "customers").rc == 0
    (project.dir / "models" / "sync_health.sql").write_text(
        "select r.sync_name, count(distinct r.run_id) as runs, count(e.event_key) as events, "
        "sum(case when e.error_code is null then 1 else 0 end) as accepted\n"
        "from {{ source('eventbridge_history', 'runs') }} as r\n"
        "left join {{ source('eventbridge_history', 'events') }} as e\n"
        "  on e.run_id = r.run_id and e.sync_name = r.sync_name\n"
        "group by 1\n")
    (project.dir / "models" / "sync_health.yml").write_text(
        "version: 2\nmodels:\n  - name: sync_health\n    columns:\n      - name: sync_name\n"
        "        data_tests: [unique, not_null]\n")
    p = project.run([str(BIN / "dbt"), "build", "-s", "sync_health", *project.target_args])
    assert p.returncode == 0, p.stdout + p.stderr
    con = duckdb.connect(str(project.db), read_only=True)
    try:
        rows = {r[0]: r[1:] for r in con.execute("select * from main.sync_health").fetchall()}
    finally:
        con.close()
    assert rows == {"customers_to_crm": (1, 5, 5), "customer_profiles": (1, 5, 5)}
    # Freshness of the whole source, as the README shows it (every table has its loaded_at_field).
    config = project.dir / "dbt_project.yml"
    config.write_text(config.read_text() + "\nsources:\n  dbt_eventbridge:\n    eventbridge_history:\n"
                      "      +freshness:\n        error_after: {count: 26, period: hour}\n")
    p = project.run([str(BIN / "dbt"), "source", "freshness", "-s", "source:eventbridge_history.runs",
                     "source:eventbridge_history.events", *project.target_args])
    assert p.returncode == 0, p.stdout + p.stderr
    assert "PASS freshness of eventbridge_history.runs" in p.stdout


def test_the_package_parses_without_deprecation_warnings(project: Project) -> None:
    """dbt 1.10 and later check schema files against their JSON schema on Snowflake, BigQuery,
    Redshift and Databricks targets (not DuckDB or PostgreSQL) and warn on every command of the
    user's about what is deprecated: a top-level `loaded_at_field` in our history sources did."""
    p = project.run([str(BIN / "dbt"), "parse", "--no-partial-parse", "--show-all-deprecations",
                     "--profiles-dir", str(project.dir), "--target", "snowflake"])  # parsing needs no server
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Registered adapter: snowflake" in p.stdout
    assert "Deprecat" not in p.stdout + p.stderr, p.stdout
