"""Run history and the day-two commands, as a user drives them: `runs`, `inspect`,
`--report`, `reset`, `rebaseline`, `--log-format json`, retention, interrupted runs, the
record of who did what (reset, rebaseline, --full-refresh, --allow-mass-removal), and a
history made by the previous release."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import duckdb
import pytest

from devtools.fault_endpoint import FaultEndpoint
from tests.integration.harness import BIN, Project, closed_port, dbt, state_schema, state_tables
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


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of a --log-format json output, each one JSON object (json.loads fails otherwise)."""
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert lines and all(isinstance(x, dict) for x in lines), text
    return lines


def utc(text: str) -> dt.datetime:
    """A time as the JSON logs write it: ISO 8601 with its zone, UTC."""
    moment = dt.datetime.fromisoformat(text)
    assert moment.utcoffset() == dt.timedelta(0), text
    return moment


def who(user: str) -> dict[str, str]:
    """The OS user a command runs as, as getpass.getuser() reads it."""
    return {"LOGNAME": user, "USER": user}


def runs_json(p: Project, *args: str) -> list[dict[str, Any]]:
    r = cli(p, "runs", "--log-format", "json", *args)
    assert r.returncode == 0, r.stderr
    return [x["data"] for x in json_lines(r.stdout)]


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
    r = b.sync("--log-format", "json")
    assert r.rc == 1
    run_id = r.results["run_id"]
    # In JSON, the rejection's key is an object and the summary's counts are numbers.
    records = json_lines(r.stdout)
    [rejected] = [x for x in records if x["info"]["name"] == "warn" and "rejected" in x["info"]["msg"]]
    assert rejected["data"] == {"sync": "bulk", "key": {"id": 42}, "op": "added", "code": "AccessDeniedException",
                                "reason": "not allowed on this bus"}
    [summary] = [x["data"] for x in records if x["info"]["name"] in ("summary", "summary_error")]
    assert (summary["planned"], summary["sent"], summary["rejected"]) == (
        {"added": 60, "changed": 0, "removed": 0}, {"added": 59, "changed": 0, "removed": 0},
        {"added": 1, "changed": 0, "removed": 0})
    assert summary["retried_entries"] == r.sync("bulk")["retried_entries"] > 0
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
    retries = sum(x["attempts"] - 1 for x in events if x["attempts"] > 1)
    assert retries == r.sync("bulk")["retried_entries"]
    # `inspect`'s table per op counts retries (attempts after an event's first), not attempts:
    # 59 events that went through at once are 0 retries, not 59.
    out = cli(b.p, "inspect", run_id, "--log-format", "json")
    [run] = [x["data"] for x in json_lines(out.stdout)]
    assert {(c["op"], c["error_code"]): (c["events"], c["retries"]) for c in run["counts"]} == {
        ("added", None): (59, sum(x["attempts"] - 1 for x in accepted)),
        ("added", "AccessDeniedException"): (1, sum(x["attempts"] - 1 for x in events if x["error_code"]))}
    assert sum(c["retries"] for c in run["counts"]) == retries
    assert "attempts" not in run["counts"][0]
    assert all(isinstance(e["event_key"], dict) for e in run["events"])  # keys as objects
    assert re.search(r"bulk\s+added\s+accepted\s+59\s+\d+", cli(b.p, "inspect", run_id).stdout)
    # The report of that run, from the history: the rejections and the sent events, and no
    # chunk or chunk time it cannot know.
    report = tmp_path / "run.html"
    out = cli(b.p, "inspect", run_id, "--report", str(report))
    assert out.returncode == 0, out.stderr
    page = report.read_text()
    assert "AccessDeniedException" in page and "not allowed on this bus" in page and "<svg" in page
    assert "Sent events (59)" in page
    assert all(x["aws_event_id"] in page for x in accepted)
    assert "Rebuilt from the run history" in page and "Events answered per" in page
    for invented in ("chunks published", "events/s on average", "rejected rows per chunk", "Timings:"):
        assert invented not in page, invented


def test_sync_report_and_json_logs(project: Project, tmp_path) -> None:
    project.build(day=1)
    report = tmp_path / "report.html"
    r = project.sync("sync", "-s", "customers", "--report", str(report), "--log-format", "json")
    assert r.rc == 0, r.stderr
    records = json_lines(r.stdout)  # every line is one JSON object
    assert all({"name", "level", "msg", "ts"} <= set(x["info"]) for x in records)
    assert all(utc(x["info"]["ts"]) for x in records)  # times carry their zone
    done = records[-1]
    assert done["data"]["result"]["exit_code"] == 0
    assert {s["sync"] for s in done["data"]["result"]["syncs"]} == {"customers_to_crm", "customer_profiles"}
    utc(done["data"]["result"]["started_at"])
    # Each sync's line carries its counts as fields, numbers as JSON numbers.
    summaries = {x["data"]["sync"]: x for x in records if x["info"]["name"] == "summary"}
    assert set(summaries) == {"customers_to_crm", "customer_profiles"}
    assert summaries["customers_to_crm"]["info"]["msg"].startswith("OK      customers_to_crm (customers): sent 5")
    crm = summaries["customers_to_crm"]["data"]
    assert (crm["planned"], crm["sent"], crm["rejected"]) == ({"added": 5, "changed": 0, "removed": 0},
                                                              {"added": 5, "changed": 0, "removed": 0},
                                                              {"added": 0, "changed": 0, "removed": 0})
    for name in ("not_triggered", "rebaselined", "initial_skipped", "deduplicated", "maybe_delivered", "requests",
                 "retried_entries", "rejected_total", "exit_code"):
        assert type(crm[name]) is int, name
    assert isinstance(crm["seconds"], float) and crm["seconds"] > 0
    assert crm["invalid_keys"] == {"null_key_rows": 0, "duplicate_key_rows": 0}
    assert utc(crm["started_at"]) <= utc(crm["finished_at"])
    assert (crm["status"], crm["action"], crm["blocked_by"]) == ("success", None, None)
    page = report.read_text()
    assert "customers_to_crm" in page and "customer_profiles" in page and "<svg" in page
    # validate speaks JSON too.
    v = project.run([str(BIN / "dbt-eventbridge"), "validate", *project.target_args, "--log-format", "json"])
    assert v.returncode == 0, v.stderr
    assert json.loads(v.stdout.splitlines()[-1])["info"]["msg"].startswith("OK:")
    # A dry run's sample entries are objects (not JSON inside a string), and its summary says
    # what would be recorded without an event (customer_profiles sends no removals).
    project.build(day=2)
    r = project.sync("sync", "-s", "customers", "--dry-run", "--log-format", "json")
    assert r.rc == 0, r.stderr
    records = json_lines(r.stdout)
    samples = [x["data"] for x in records if x["info"]["name"] == "sample"]
    assert samples and all(isinstance(x["entry"], dict) and x["entry"]["Source"] for x in samples)
    profiles = next(x["data"] for x in records if x["info"]["name"] == "summary"
                    and x["data"]["sync"] == "customer_profiles")
    assert (profiles["status"], profiles["planned"]["removed"], profiles["not_triggered"]) == ("dry_run", 1, 1)
    # `runs` and `inspect`: one object a row, counts as numbers, times with their zone.
    rows = runs_json(project)
    assert rows and all(type(x["sent_added"]) is int and isinstance(x["seconds"], float) for x in rows)
    assert all(utc(x["started_at"]) <= utc(x["finished_at"]) for x in rows)
    out = cli(project, "inspect", rows[0]["run_id"], "--log-format", "json")
    [run] = [x["data"] for x in json_lines(out.stdout)]
    assert run["status"] == "OK" and run["exit_code"] == 0
    assert all(utc(e["sent_at"]) and isinstance(e["event_key"], dict) for e in run["events"])
    assert all(type(c["events"]) is int and type(c["retries"]) is int and utc(c["first_at"]) for c in run["counts"])


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

    r = cli(project, "reset", "--sync", "customers_to_crm", "--yes", extra_env=who("ana.ops"))
    assert r.returncode == 0, r.stderr
    assert "forgot 5 delivered row(s)" in r.stdout
    # The audit row: who, when (UTC, with its zone), what (the rows forgotten).
    [reset] = [x for x in runs_json(project, "--sync", "customers_to_crm") if x["status"] == "reset"]
    assert (reset["action"], reset["run_by"], reset["forgotten"], reset["exit_code"]) == ("reset", "ana.ops", 5, 0)
    assert f"run {reset['run_id']} (by ana.ops)" in r.stdout
    assert utc(reset["finished_at"]) >= utc(reset["started_at"])
    assert dt.datetime.now(dt.UTC) - utc(reset["finished_at"]) < dt.timedelta(minutes=5)
    line = next(ln for ln in cli(project, "runs").stdout.splitlines() if ln.startswith(reset["run_id"]))
    assert re.search(r"customers_to_crm\s+reset\s+reset\s+ana\.ops\s+0\s", line), line
    out = cli(project, "inspect", reset["run_id"][:8]).stdout
    assert "customers_to_crm: reset by ana.ops: forgot 5 delivered row(s); the next run sends every current " \
           "row as added (at 20" in out and " UTC)" in out
    r = project.sync("sync", "-s", "customers")
    assert r.rc == 0
    ev = project.drain()
    assert len(ev["crm-events"]) == 5 and {e["detail-type"] for e in ev["crm-events"]} == {"CustomerCreated"}
    assert [e for e in ev["default"] if e["source"] == "com.acme.profiles"] == []  # the other sync kept its state

    # Rebaseline: day 2's changes are taken as delivered without sending them.
    project.build(day=2)
    r = cli(project, "rebaseline", "--sync", "customers_to_crm", "--yes", extra_env=who("bo.ops"))
    assert r.returncode == 0, r.stderr + r.stdout
    assert project.drain()["crm-events"] == []
    # Day 2's four changes (one added, two changed, one removed), taken as delivered.
    assert "re-baselined 4 (recorded without event)" in r.stdout
    rebaselined = runs_json(project, "--sync", "customers_to_crm")[0]
    assert (rebaselined["action"], rebaselined["run_by"], rebaselined["rebaselined"], rebaselined["sent_added"],
            rebaselined["not_triggered"], rebaselined["status"]) == ("rebaseline", "bo.ops", 4, 0, 0, "success")
    assert [rebaselined[f"planned_{op}"] for op in ("added", "changed", "removed")] == [1, 2, 1]
    out = cli(project, "inspect", rebaselined["run_id"]).stdout
    assert "customers_to_crm: rebaseline by bo.ops: 4 row(s) recorded as delivered without an event (at " in out
    assert "recorded as delivered without an event: 4 (trigger off 0, re-baselined 4, initial sync skipped 0)" in out
    r = project.sync("sync", "-s", "customers")
    assert r.rc == 0
    ev = project.drain()
    assert ev["crm-events"] == []  # nothing left to send for the re-baselined sync
    assert [e for e in ev["default"] if e["source"] == "com.acme.profiles"]  # the other one sends day 2


def test_full_refresh_and_a_mass_removal_are_recorded_with_who_when_and_what(project: Project, tmp_path) -> None:
    project.build(day=1)
    first = project.sync("sync", "-s", "customers", extra_env=who("ana.ops"))
    assert first.rc == 0, first.stderr
    refresh = project.sync("sync", "-s", "customers", "--full-refresh", extra_env=who("bo.ops"))
    assert refresh.rc == 0, refresh.stderr
    rows = {(x["run_id"], x["sync_name"]): x for x in runs_json(project)}
    ordinary = rows[first.results["run_id"], "customers_to_crm"]
    assert (ordinary["action"], ordinary["run_by"]) == (None, "ana.ops")
    fr = rows[refresh.results["run_id"], "customers_to_crm"]
    assert (fr["action"], fr["run_by"], fr["planned_added"], fr["sent_added"]) == ("full-refresh", "bo.ops", 5, 5)
    assert fr["dbt_invocation_id"] == refresh.results["dbt_invocation_id"] is not None
    assert utc(fr["started_at"]) <= utc(fr["finished_at"])
    out = cli(project, "inspect", refresh.results["run_id"]).stdout
    assert re.search(r"customers_to_crm: --full-refresh by bo\.ops: 5 row\(s\) sent again as added \(at "
                     r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, dbt invocation " + refresh.results["dbt_invocation_id"], out), out
    line = next(ln for ln in cli(project, "runs").stdout.splitlines()
                if ln.startswith(refresh.results["run_id"]) and "customers_to_crm" in ln)
    assert re.search(r"success\s+full-refresh\s+bo\.ops\s+0\s", line), line
    project.drain()

    # Every customer gone: the guard stops both syncs before publishing. A run in which every
    # sync was held back is BLOCKED, not PARTIAL.
    dbt(project, "run", "-s", "customers", vars_={"day": 99})
    guard = {"DBT_EVENTBRIDGE_REMOVAL_GUARD_MIN_ROWS": "1"}
    report = tmp_path / "blocked.html"
    blocked = project.sync("sync", "-s", "customers", "--report", str(report), extra_env=guard)
    assert blocked.rc == 1 and blocked.stderr.count("BLOCKED ") == 2, blocked.stdout + blocked.stderr
    page = report.read_text()
    assert "BLOCKED (exit 1)" in page and "PARTIAL" not in page
    assert page.count("held back: the mass-removal guard") == 2
    out = cli(project, "inspect", blocked.results["run_id"])
    assert f"Run {blocked.results['run_id']}: BLOCKED (exit 1)" in out.stdout
    assert "customers_to_crm: held back: the mass-removal guard" in out.stdout
    rebuilt = tmp_path / "blocked-from-history.html"
    assert cli(project, "inspect", blocked.results["run_id"], "--report", str(rebuilt)).returncode == 0
    assert "BLOCKED (exit 1)" in rebuilt.read_text() and "PARTIAL" not in rebuilt.read_text()
    assert project.drain()["crm-events"] == []

    # Let through, by someone: the record says who, and how many removals were sent.
    allowed = project.sync("sync", "-s", "customers", "--allow-mass-removal", extra_env={**guard, **who("cy.ops")})
    assert allowed.rc == 0, allowed.stderr
    assert "--allow-mass-removal let through the removal of 5 of the 5 delivered rows (100%" in allowed.stderr
    assert len(project.drain()["crm-events"]) == 5
    rows = {x["sync_name"]: x for x in runs_json(project) if x["run_id"] == allowed.results["run_id"]}
    crm, profiles = rows["customers_to_crm"], rows["customer_profiles"]
    assert (crm["action"], crm["run_by"], crm["sent_removed"], crm["blocked_by"]) == (
        "allow-mass-removal", "cy.ops", 5, None)
    assert crm["message"].startswith("--allow-mass-removal let through the removal of 5 of the 5 delivered rows")
    # customer_profiles sends no removals: planned 5, sent 0, and the 5 are accounted for.
    assert (profiles["planned_removed"], profiles["sent_removed"], profiles["not_triggered"]) == (5, 0, 5)
    out = cli(project, "inspect", allowed.results["run_id"]).stdout
    assert f"Run {allowed.results['run_id']}: OK (exit 0)" in out
    assert "customers_to_crm: --allow-mass-removal by cy.ops: 5 removal(s) sent (at " in out
    assert "customer_profiles: recorded as delivered without an event: 5 (trigger off 5, re-baselined 0, " \
           "initial sync skipped 0)" in out
    line = next(ln for ln in cli(project, "runs").stdout.splitlines()
                if ln.startswith(allowed.results["run_id"]) and "customer_profiles" in ln)
    assert re.search(r"0/0/5\s+0/0/0\s+5\s+0\s", line), line  # planned, sent, no event, rejected


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


# A macro of the test's own that makes _eb_runs as the previous release (0.1.0) made it, with
# our package's own DDL macro, on the engine of the target, and one run of that release in it.
OLD_RUNS_MACRO = """
{% macro eb_test_previous_release_runs(schema, columns) %}
  {%- set relation = api.Relation.create(database=target.database if target.database is defined else none,
                                         schema=schema, identifier='_eb_runs') -%}
  {%- set at = (run_started_at - modules.datetime.timedelta(hours=1)).strftime('%Y-%m-%d %H:%M:%S') -%}
  {%- do adapter.create_schema(relation) -%}
  {%- call statement('eb_test_old_runs_table', auto_begin=true) -%}
    {{ dbt_eventbridge.history_table_sql(relation, columns) }}
  {%- endcall -%}
  {%- call statement('eb_test_old_run', auto_begin=true) -%}
    insert into {{ relation }} (run_id, sync_name, model, status, exit_code, started_at, finished_at, seconds,
      sent_added, not_triggered, message)
    values ('run-of-0.1.0', 'customers_to_crm', 'customers', 'success', 0, cast('{{ at }}' as timestamp),
      cast('{{ at }}' as timestamp), 1.5, 3, 1, 'recorded by 0.1.0')
  {%- endcall -%}
  {%- if target.type != 'spark' %}{% do adapter.commit() %}{% endif -%}
{% endmacro %}
"""


@pytest.fixture(params=["duckdb", "postgres", "snowflake", "spark"])
def any_engine(request: pytest.FixtureRequest, tmp_path, local_aws) -> Project:
    pg = request.getfixturevalue("postgres") if request.param == "postgres" else None
    port = request.getfixturevalue("snowflake") if request.param == "snowflake" else None
    spark = request.getfixturevalue("spark") if request.param == "spark" else None
    return Project(tmp_path, request.param, local_aws, pg, port, spark_port=spark)


def test_a_history_made_by_the_previous_release_is_upgraded_in_place(any_engine: Project) -> None:
    """The run history of 0.1.0 (no audit columns, not registered in _eb_objects): `runs` reads
    it as it is, the first sync adds the columns (a migration of ours, on this engine's DDL),
    and the old rows stay beside the new ones with who and what."""
    from dbt_eventbridge.warehouse.history import RUN_COLUMNS_V1

    p = any_engine
    p.build(day=1)
    (p.dir / "macros" / "eb_test_previous_release.sql").write_text(OLD_RUNS_MACRO)
    args = json.dumps({"schema": state_schema(p), "columns": [list(c) for c in RUN_COLUMNS_V1]})
    dbt(p, "run-operation", "eb_test_previous_release_runs", "--args", args)

    # Right after the upgrade, before any sync: read as it is (nothing written).
    [old] = runs_json(p)
    assert (old["run_id"], old["sent_added"], old["not_triggered"], old["action"], old["run_by"]) == (
        "run-of-0.1.0", 3, 1, None, None)
    assert dt.timedelta(minutes=50) < dt.datetime.now(dt.UTC) - utc(old["started_at"]) < dt.timedelta(hours=2)

    r = p.sync("sync", "-s", "customers", "--full-refresh", extra_env=who("dee.ops"))
    assert r.rc == 0, r.stdout + r.stderr
    assert "could not" not in r.stderr, r.stderr  # no warning: the history was upgraded and written
    rows = {(x["run_id"], x["sync_name"]): x for x in runs_json(p)}
    assert rows["run-of-0.1.0", "customers_to_crm"]["message"] == "recorded by 0.1.0"
    new = rows[r.results["run_id"], "customers_to_crm"]
    assert (new["action"], new["run_by"], new["sent_added"], new["forgotten"]) == ("full-refresh", "dee.ops", 5, 0)

    reset = cli(p, "reset", "--sync", "customers_to_crm", "--yes", extra_env=who("dee.ops"))
    assert reset.returncode == 0, reset.stderr
    [row] = [x for x in runs_json(p, "--sync", "customers_to_crm") if x["status"] == "reset"]
    assert (row["action"], row["run_by"], row["forgotten"]) == ("reset", "dee.ops", 5)
    out = cli(p, "inspect", row["run_id"])
    assert "customers_to_crm: reset by dee.ops: forgot 5 delivered row(s)" in out.stdout, out.stdout + out.stderr
