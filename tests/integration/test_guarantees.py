"""Delivery guarantees under faults: nothing lost, nothing silently skipped.

A `bulk` model is added to a copy of the sample project; its rows are then changed
directly in the warehouse between runs (as a rebuilt model would change them), and the
sync publishes to a fault-injecting PutEvents endpoint that records what it accepted.
Every test compares the changes that had to be delivered with what the endpoint
accepted: the delivered set must equal the expected set; duplicates are counted and
must stay within the documented bound.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.fault_endpoint import FaultEndpoint, RequestFault
from tests.integration.harness import BIN, Project, expected_changes, model_schema, sql

SYNC_YML = """
version: 2
models:
  - name: bulk
    config:
      meta:
        eventbridge:
          primary_key: id
          source: com.test.bulk
          detail_type: BulkChanged
          detail:
            template: '{% raw %}{"id": {{ row.id }}, "value": "{{ row.value }}", "op": "{{ op }}", "event_id": "{{ event_id }}"}{% endraw %}'
"""
BULK_SQL = """
select cast(i as integer) as id, 'v0' as value
from {% if target.type == 'postgres' %}generate_series(1, {{ var('bulk_rows', 300) }})
     {%- else %}range(1, {{ var('bulk_rows', 300) + 1 }}){% endif %} as t(i)
"""
FIGURES: list[dict[str, Any]] = []  # measured results, for the README's table


@pytest.fixture(scope="module", autouse=True)
def _report_figures() -> Iterator[None]:
    """Prints what the tests measured (pytest -s shows it) and writes it where asked."""
    yield
    lines = [json.dumps(f) for f in FIGURES]
    print("\n" + "\n".join(lines))
    if os.environ.get("DBT_EVENTBRIDGE_FIGURES"):
        Path(os.environ["DBT_EVENTBRIDGE_FIGURES"]).write_text("\n".join(lines) + "\n")


class Bulk:
    """The sample project plus `bulk`, publishing to a FaultEndpoint."""

    def __init__(self, project: Project, endpoint: FaultEndpoint, rows: int) -> None:
        self.p = project
        self.ep = endpoint
        (project.dir / "models" / "bulk").mkdir()
        (project.dir / "models" / "bulk" / "bulk.sql").write_text(BULK_SQL)
        (project.dir / "models" / "bulk" / "bulk.yml").write_text(SYNC_YML)
        self.db = project.db
        self.env = {"DBT_EVENTBRIDGE_ENDPOINT_URL": endpoint.endpoint_url}
        p = project.run([str(BIN / "dbt"), "build", "--quiet", "-s", "bulk", *project.target_args,
                         "--vars", json.dumps({"bulk_rows": rows})])
        assert p.returncode == 0, p.stdout + p.stderr
        self.seen = 0  # endpoint records already accounted for

    def sync(self, *args: str, env: dict[str, str] | None = None):
        return self.p.sync("sync", "-s", "bulk", *args, extra_env={**self.env, **(env or {})})

    def popen(self, env: dict[str, str]) -> subprocess.Popen[str]:
        cmd = [str(BIN / "dbt-eventbridge"), "sync", "-s", "bulk", *self.p.target_args]
        return subprocess.Popen(cmd, cwd=self.p.dir, env={**self.p.env, **self.env, **env},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    @property
    def model_table(self) -> str:
        return f"{model_schema(self.p)}.bulk"

    @property
    def state_schema(self) -> str:
        return self.p.env.get("DBT_EVENTBRIDGE_STATE_SCHEMA", "eventbridge_state")

    def sql(self, statement: str) -> list[tuple]:
        """Statements on the warehouse, as another client would run them (never during a DuckDB run)."""
        statement = statement.replace("main.bulk", self.model_table).replace("eventbridge_state.",
                                                                              self.state_schema + ".")
        return sql(self.p, statement)

    def keep_only(self, where: str) -> None:
        """The model's rows that match `where`, the others gone (a DELETE, or a rewrite on Spark)."""
        if self.p.engine != "spark":
            self.sql(f"delete from main.bulk where not ({where})")
            return
        self.sql(f"create table main.bulk_next as select * from main.bulk where {where}")
        self.sql("insert overwrite table main.bulk select * from main.bulk_next")
        self.sql("drop table main.bulk_next")

    def model(self) -> dict[int, str]:
        return dict(self.sql("select id, value from main.bulk"))

    def state(self) -> dict[int, str]:
        # The typed state keeps bulk's columns as _eb_c1 (id) and _eb_c2 (value), in model order.
        return dict(self.sql("select _eb_c1, _eb_c2 from eventbridge_state._eb_state__bulk"))

    def delivered(self) -> list[tuple[int, str, str]]:
        """(id, op, value) of every entry accepted since the last call, duplicates included."""
        new = self.ep.accepted[self.seen:]
        self.seen += len(new)
        out = []
        for e in new:
            d = json.loads(e["Detail"])
            out.append((d["id"], d["op"], d["value"]))
        return out


def mutate(b: Bulk, round_no: int) -> None:
    """Most rows change, some go, some come (about 300 changes, every round)."""
    if b.p.engine == "spark":  # plain Spark tables have no UPDATE or DELETE: the same change, rewritten
        keep = f"id % 17 <> {round_no % 17}"
        gone, top = b.sql(f"select count_if(not ({keep})), max(case when {keep} then id end) from main.bulk")[0]
        b.sql(f"create table main.bulk_next as select id, case when id % 7 <> {round_no % 7} then 'r{round_no}' "
              f"else value end as value from main.bulk where {keep} union all "
              f"select cast({top} + i as integer), 'new{round_no}' from range(1, {gone + 1}) as t(i)")
        b.sql("insert overwrite table main.bulk select * from main.bulk_next")
        b.sql("drop table main.bulk_next")
        return
    b.sql(f"update main.bulk set value = 'r{round_no}' where id % 7 <> {round_no % 7}")
    gone = b.sql(f"select count(*) from main.bulk where id % 17 = {round_no % 17}")[0][0]
    b.sql(f"delete from main.bulk where id % 17 = {round_no % 17}")
    series = f"generate_series(1, {gone})" if b.p.engine == "postgres" else f"range(1, {gone + 1})"
    b.sql(f"insert into main.bulk select (select max(id) from main.bulk) + i, 'new{round_no}' "
          f"from {series} t(i)")


@pytest.fixture
def endpoint() -> Iterator[FaultEndpoint]:
    with FaultEndpoint(seed=7) as ep:
        yield ep


def _bulk(tmp_path, local_aws, endpoint, rows: int, pg=None, *, spark_port: int | None = None) -> Bulk:
    engine = "postgres" if pg else "spark" if spark_port else "duckdb"
    return Bulk(Project(tmp_path, engine, local_aws, pg, spark_port=spark_port), endpoint, rows)


def _engine_bulk(request: pytest.FixtureRequest, tmp_path, local_aws, endpoint, engine: str, rows: int) -> Bulk:
    pg = request.getfixturevalue("postgres") if engine == "postgres" else None
    port = request.getfixturevalue("spark") if engine == "spark" else None
    return _bulk(tmp_path, local_aws, endpoint, rows, pg, spark_port=port)


def _check_round(b: Bulk, expected: set, bound: int, label: str, faults: Counter | None = None) -> None:
    got = b.delivered()
    distinct = set(got)
    assert distinct == expected, (f"{label}: lost {sorted(expected - distinct)[:5]}, "
                                  f"unexpected {sorted(distinct - expected)[:5]}")
    duplicates = len(got) - len(distinct)
    assert duplicates <= bound, f"{label}: {duplicates} duplicates, bound {bound}"
    assert b.state() == b.model(), f"{label}: the state does not match the delivered model"
    FIGURES.append({"scenario": label, "faults": dict(faults or {}), "expected": len(expected),
                    "delivered": len(distinct), "lost": len(expected - distinct), "duplicates": duplicates,
                    "bound": bound})


def _until_delivered(b: Bulk, most: int = 4) -> tuple[Any, int]:
    """Runs until every change is delivered. Entries that failed max_attempts times are rejected
    (with a retryable code, never for another reason) and come back on the next run: with 30%
    of entries failing, one may fail 6 times running, and its retry may be unlucky again."""
    for runs in range(1, most + 1):
        r = b.sync()
        if r.rc == 0:
            return r, runs
        assert r.rc == 1, r.stderr
        codes = {x["code"] for x in r.sync("bulk")["rejections"]}
        assert codes <= {"ThrottlingException", "InternalFailure", "ServiceUnavailable", "ConnectionError"}, codes
    raise AssertionError(f"changes still rejected after {most} runs: {r.stderr}")


def test_entry_and_request_faults_lose_nothing(tmp_path, local_aws, endpoint) -> None:
    b = _bulk(tmp_path, local_aws, endpoint, rows=1000)
    endpoint.entry_fault_rate = 0.3
    endpoint.request_faults = [RequestFault("throttle", first=3), RequestFault("internal", rate=0.05),
                               RequestFault("unavailable", rate=0.03), RequestFault("drop", rate=0.03),
                               RequestFault("lose_response", rate=0.03)]
    before: dict[int, str] = {}
    after = b.model()
    _r, runs = _until_delivered(b)
    faults = endpoint.faults
    # a lost response makes botocore resend its request: up to 10 entries delivered twice
    _check_round(b, expected_changes(before, after), 10 * faults["lose_response"],
                 f"30% entry faults + request faults, {runs} run(s)", faults)

    # the same with changes, not a backfill
    before = after
    mutate(b, 1)
    after = b.model()
    seen = endpoint.faults
    _until_delivered(b)
    faults = endpoint.faults - seen
    _check_round(b, expected_changes(before, after), 10 * faults["lose_response"],
                 "30% entry faults + request faults on changes", faults)


@pytest.mark.parametrize("engine", ["duckdb", "postgres", "spark"])
def test_rejected_rows_are_reported_and_retried_until_delivered(request, tmp_path, local_aws, endpoint,
                                                                engine) -> None:
    b = _engine_bulk(request, tmp_path, local_aws, endpoint, engine, rows=200)
    bad = {7, 70, 140}
    endpoint.reject = lambda e: (("AccessDeniedException", "not allowed") if json.loads(e["Detail"])["id"] in bad
                                 else None)
    r = b.sync()
    assert r.rc == 1
    res = r.sync("bulk")
    assert res["rejected"] == 3
    assert sorted(x["key"]["id"] for x in res["rejections"]) == sorted(bad)
    assert {x["code"] for x in res["rejections"]} == {"AccessDeniedException"}
    assert "AccessDeniedException" in r.stderr
    assert len(set(b.delivered())) == 197
    assert set(b.state()) == set(range(1, 201)) - bad  # rejected rows are not recorded as delivered
    # The history holds every event of the run, and `inspect` explains the rejected ones.
    run_id = r.results["run_id"]
    assert b.sql(f"select count(*), count(aws_event_id) from eventbridge_state._eb_events "
                 f"where run_id = '{run_id}'") == [(200, 197)]
    out = b.p.sync("inspect", run_id, "--failed")
    assert out.rc == 0, out.stderr
    for key in sorted(bad):
        assert f'bulk  added  key {{"id":{key}}}  REJECTED AccessDeniedException: not allowed' in out.stdout
    r = b.sync()  # still refused: reported again, nothing else sent
    assert r.rc == 1 and r.sync("bulk")["rejected"] == 3
    assert b.delivered() == []
    endpoint.reject = None  # the permission is fixed
    r = b.sync()
    assert r.rc == 0
    assert sorted(x[0] for x in b.delivered()) == sorted(bad)
    assert b.state() == b.model()


def test_oversize_requests_are_split(tmp_path, local_aws, endpoint) -> None:
    b = _bulk(tmp_path, local_aws, endpoint, rows=300)
    endpoint.max_request_bytes = 600  # ~5 entries: every 10-entry request is refused with HTTP 413
    r = b.sync()
    assert r.rc == 0, r.stderr
    too_large = sum(1 for q in endpoint.requests if q.fault == "too_large")
    assert too_large > 0
    _check_round(b, expected_changes({}, b.model()), 0, "HTTP 413 on every full request",
                 Counter({"HTTP 413": too_large}))


def test_throttling_slows_down_instead_of_storming(tmp_path, local_aws, endpoint) -> None:
    """An account quota of 40 requests/s: the publisher must settle near it, not hammer it."""
    b = _bulk(tmp_path, local_aws, endpoint, rows=2000)
    endpoint.quota_rps = 40
    started = time.monotonic()
    r = b.sync()
    elapsed = time.monotonic() - started
    assert r.rc == 0, r.stderr
    requests = endpoint.request_count
    throttled = endpoint.faults["throttle"]
    # 2000 entries need 200 accepted requests. Threads that only back off on their own,
    # without a shared rate, keep bouncing off the quota: about 30% of their requests are
    # refused here (measured); with the shared adaptive rate about 10%.
    assert throttled < 0.2 * requests, (throttled, requests)
    _check_round(b, expected_changes({}, b.model()), 0,
                 f"quota of 40 requests/s: {requests} requests, {throttled} throttled, {elapsed:.1f}s",
                 Counter({"throttle": throttled}))


CRASH_POINTS = [
    "locked", "plan.start", "plan.created",
    "publish.chunk_sent:1", "publish.journaled:1", "publish.chunk_sent:2", "publish.journaled:2",
    "publish.chunk_sent:3", "publish.journaled:3",
    "commit.start", "commit.statement:1", "commit.statement:2", "commit.done",
]
REQUEST_KILLS = [1, 2, 4, 6, 9, 12, 15]  # SIGKILL while the k-th request of the run is in flight
# Spark: its commit is one statement, a rewrite staged in three (engines/spark.py), each of
# which a kill may follow; fewer of the others, as each Spark run takes about 10 s.
SPARK_CRASH_POINTS = [
    "locked", "plan.created", "publish.journaled:2", "commit.start",
    "spark.staged._eb_state__bulk", "spark.overwritten._eb_state__bulk", "commit.statement:1", "commit.done",
]
SPARK_REQUEST_KILLS = [2, 9]


@pytest.mark.parametrize("engine", ["duckdb", "postgres", "spark"])
def test_sigkill_at_any_point_loses_nothing(request, tmp_path, local_aws, endpoint, engine) -> None:
    batch = 30  # rounds change about 300 rows: about 10 chunks
    b = _engine_bulk(request, tmp_path, local_aws, endpoint, engine, rows=300)
    env = {"DBT_EVENTBRIDGE_BATCH_SIZE": str(batch), "DBT_EVENTBRIDGE_CONCURRENCY": "4"}
    assert b.sync(env=env).rc == 0
    _check_round(b, expected_changes({}, b.model()), 0, f"initial backfill ({engine})")
    killed = 0
    points, kills = (SPARK_CRASH_POINTS, SPARK_REQUEST_KILLS) if engine == "spark" else (CRASH_POINTS, REQUEST_KILLS)
    plans = [("point", p) for p in points] + [("request", k) for k in kills] + [("replay", "commit.statement:1")]
    for round_no, (kind, where) in enumerate(plans, start=1):
        before = b.model()
        mutate(b, round_no)
        after = b.model()
        if kind == "request":
            endpoint.delay = 0.3
            start = endpoint.request_count
            proc = b.popen(env)
            deadline = time.monotonic() + 60
            while endpoint.request_count < start + int(where) and proc.poll() is None \
                    and time.monotonic() < deadline:
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            endpoint.delay = 0.0
            assert proc.returncode == -signal.SIGKILL, f"round {round_no}: the run ended before request {where}"
        else:
            r = b.sync(env={**env, "DBT_EVENTBRIDGE_CRASH_AT": where if kind == "point" else "publish.journaled:2"})
            assert r.rc == -signal.SIGKILL, f"round {round_no}: crash point {where} was not reached ({r.rc})"
            if kind == "replay":  # and the run that replays the journal is killed too
                r = b.sync(env={**env, "DBT_EVENTBRIDGE_CRASH_AT": where})
                assert r.rc == -signal.SIGKILL
        killed += 1
        r = b.sync(env=env)
        assert r.rc == 0, f"round {round_no} ({where}): {r.stderr}"
        # what was in flight (one chunk) may be delivered twice, never more
        _check_round(b, expected_changes(before, after), batch, f"SIGKILL at {kind} {where} ({engine})")
    assert killed == len(plans) >= (10 if engine == "spark" else 20)


@pytest.mark.parametrize(("engine", "where"), [
    ("duckdb", "plan.created"), ("duckdb", "publish.chunk_sent:3"), ("duckdb", "commit.statement:1"),
    ("spark", "commit.statement:1")])
def test_sigkill_during_the_first_run_loses_nothing(request, tmp_path, local_aws, endpoint, engine, where) -> None:
    """The first run also creates the state, in its commit; a replay must do the same, once."""
    b = _engine_bulk(request, tmp_path, local_aws, endpoint, engine, rows=1000)
    env = {"DBT_EVENTBRIDGE_BATCH_SIZE": "100"}
    r = b.sync(env={**env, "DBT_EVENTBRIDGE_CRASH_AT": where})
    assert r.rc == -signal.SIGKILL
    r = b.sync(env=env)
    assert r.rc == 0, r.stderr
    _check_round(b, expected_changes({}, b.model()), 100, f"SIGKILL in the first run at {where} ({engine})")


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_mass_removal_is_stopped_before_publishing(request, tmp_path, local_aws, endpoint, engine) -> None:
    b = _engine_bulk(request, tmp_path, local_aws, endpoint, engine, rows=300)
    assert b.sync().rc == 0
    b.delivered()
    state = b.state()
    b.keep_only("id <= 100")  # a half-built model
    r = b.sync()
    assert r.rc == 1
    assert r.sync("bulk")["status"] == "blocked"
    assert "would remove 200 of the 300 delivered rows" in r.stderr
    assert "--allow-mass-removal" in r.stderr
    assert b.delivered() == []
    assert b.state() == state
    r = b.sync("--allow-mass-removal")
    assert r.rc == 0
    assert sorted(x[0] for x in b.delivered() if x[1] == "removed") == list(range(101, 301))


def test_a_new_column_does_not_flood_and_a_hash_change_rebaselines(tmp_path, local_aws, endpoint) -> None:
    b = _bulk(tmp_path, local_aws, endpoint, rows=300)
    assert b.sync().rc == 0
    b.delivered()
    b.sql("alter table main.bulk add column note varchar default 'n'")
    r = b.sync()
    assert r.rc == 0
    assert b.delivered() == []
    assert r.sync("bulk")["rebaselined"] == 300
    b.sql("update main.bulk set note = 'changed' where id = 5")
    b.sql("update main.bulk set value = 'real change' where id = 6")
    r = b.sync()
    assert sorted((x[0], x[1]) for x in b.delivered()) == [(5, "changed"), (6, "changed")]
    # a row whose old columns changed in the same run as a new column appears is still sent
    b.sql("alter table main.bulk add column other integer default 1")
    b.sql("update main.bulk set value = 'also real' where id = 7")
    r = b.sync()
    assert [(x[0], x[1]) for x in b.delivered()] == [(7, "changed")]
    assert r.sync("bulk")["rebaselined"] == 299
    # a new fingerprint expression (an upgrade): the delivered values are fingerprinted again with
    # the new one, so the rows that really changed are sent and the others re-baselined
    # (simulated: the stored fingerprints and the layout's version tag both differ from today's)
    b.sql("update eventbridge_state._eb_state__bulk set _eb_hash = _eb_hash // 2")
    b.sql("update eventbridge_state._eb_layouts set layout = replace(layout, 'duckdb-v1', 'duckdb-v0') "
          "where sync_name = 'bulk'")
    b.sql("update main.bulk set value = 'after the upgrade' where id = 8")
    r = b.sync()
    assert r.rc == 0
    assert [(x[0], x[1], x[2]) for x in b.delivered()] == [(8, "changed", "after the upgrade")]
    assert r.sync("bulk")["rebaselined"] == 299
    assert "fingerprint duckdb-v0 -> duckdb-v1" in r.stderr
    r = b.sync()
    assert r.rc == 0 and b.delivered() == [] and r.sync("bulk")["rebaselined"] == 0


def test_one_writer_per_sync(tmp_path, local_aws, endpoint) -> None:
    b = _bulk(tmp_path, local_aws, endpoint, rows=50)
    assert b.sync().rc == 0
    b.delivered()
    b.sql("update main.bulk set value = 'x' where id < 10")
    # a live run elsewhere holds the sync: its lock table, registered as ours and then
    # created, as a run does
    lock = "eventbridge_state._eb_lock__bulk"

    def held_by(owner: str, host: str, pid: int) -> None:
        b.sql("insert into eventbridge_state._eb_objects (name, kind, sync_name, created_epoch) "
              f"values ('_eb_lock__bulk', 'lock', 'bulk', {int(time.time())})")
        b.sql(f"create table {lock} as select '{owner}' as owner, '{host}' as host, "
              f"cast({pid} as bigint) as pid, cast({int(time.time())} as bigint) as heartbeat_epoch")

    held_by("other-host:1:abc", "other-host", 1)
    report = tmp_path / "held.html"
    r = b.sync("--report", str(report))
    assert r.rc == 2
    assert "another run (other-host:1:abc) is syncing it right now" in r.stderr
    assert b.delivered() == []
    # Held back, not failed: the report, the history and `inspect` say BLOCKED (the exit code stays 2).
    assert r.sync("bulk")["blocked_by"] == "lock"
    assert "BLOCKED (exit 2)" in report.read_text() and "FAILED (exit" not in report.read_text()
    out = b.p.sync("inspect", r.results["run_id"])
    assert f"Run {r.results['run_id']}: BLOCKED (exit 2)" in out.stdout, out.stdout + out.stderr
    assert "bulk: held back: another run holds it" in out.stdout
    # its heartbeat stops: the lock is taken over after lock_ttl_seconds
    b.sql(f"update {lock} set heartbeat_epoch = {int(time.time()) - 3600}")
    r = b.sync()
    assert r.rc == 0
    assert len(b.delivered()) == 9
    # a killed run on this machine (its pid is gone) does not block at all
    b.sql("update main.bulk set value = 'y' where id < 5")
    dead = subprocess.Popen(["true"])
    dead.wait()
    import socket

    held_by("me", socket.gethostname(), dead.pid)
    r = b.sync()
    assert r.rc == 0
    assert len(b.delivered()) == 4
    assert b.sql("select count(*) from information_schema.tables where table_name = '_eb_lock__bulk'")[0][0] == 0
    assert b.sql("select count(*) from eventbridge_state._eb_objects where name = '_eb_lock__bulk'")[0][0] == 0




def _wait_for_requests(endpoint: FaultEndpoint, n: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while endpoint.request_count < n and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert endpoint.request_count >= n, "the run ended before publishing"


@pytest.mark.postgres
def test_model_rebuilt_during_a_sync_state_records_what_was_sent(tmp_path, local_aws, endpoint, postgres) -> None:
    """(PostgreSQL: another client can change the model while a run publishes.)"""
    b = _bulk(tmp_path, local_aws, endpoint, rows=200, pg=postgres)
    assert b.sync().rc == 0
    b.delivered()
    b.sql("update main.bulk set value = 'A'")
    endpoint.delay = 0.05
    start = endpoint.request_count
    proc = b.popen({"DBT_EVENTBRIDGE_CONCURRENCY": "1"})
    _wait_for_requests(endpoint, start + 2, proc)
    b.sql("update main.bulk set value = 'B'")  # the model is rebuilt mid-run
    _out, err = proc.communicate(timeout=120)
    endpoint.delay = 0.0
    assert proc.returncode == 0, err
    assert {(x[0], x[2]) for x in b.delivered()} == {(i, "A") for i in range(1, 201)}
    assert set(b.state().values()) == {"A"}  # what was sent, not what the model holds now
    assert b.sync().rc == 0
    assert {(x[0], x[1], x[2]) for x in b.delivered()} == {(i, "changed", "B") for i in range(1, 201)}


@pytest.mark.parametrize("engine", ["postgres", "spark"])
def test_a_second_run_at_the_same_time_publishes_nothing(request, tmp_path, local_aws, endpoint, engine) -> None:
    b = _engine_bulk(request, tmp_path, local_aws, endpoint, engine, rows=200)
    # run A publishes for 8 s (40 s on Spark, where a run takes 10 s to start and more to
    # reach the lock): longer than run B takes to try
    endpoint.delay = 2.0 if engine == "spark" else 0.4
    proc = b.popen({"DBT_EVENTBRIDGE_CONCURRENCY": "1"})
    _wait_for_requests(endpoint, 2, proc)
    second = b.sync()
    assert proc.poll() is None, "run A ended before run B tried: the test proves nothing"
    assert second.rc == 2
    assert "another run" in second.stderr and "is syncing it right now" in second.stderr
    _out, err = proc.communicate(timeout=120)
    endpoint.delay = 0.0
    assert proc.returncode == 0, err
    got = b.delivered()
    assert len(got) == len(set(got)) == 200  # every change once: the second run sent nothing


# --------------------------------------------------------------------------- --workers


def _publishers_alive(project_dir: Path) -> list[int]:
    """Processes still running a dbt-eventbridge sync of this project (a killed run's workers)."""
    alive = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(d / "cwd")
        except OSError:
            continue
        if "dbt-eventbridge" in cmd and cwd == str(project_dir):
            alive.append(int(d.name))
    return alive


def test_workers_deliver_everything_once_under_faults(tmp_path, local_aws, endpoint) -> None:
    b = _bulk(tmp_path, local_aws, endpoint, rows=3000)
    # One request at a time per process: more than one in flight proves several processes sent.
    env = {"DBT_EVENTBRIDGE_BATCH_SIZE": "200", "DBT_EVENTBRIDGE_CONCURRENCY": "1"}
    endpoint.entry_fault_rate = 0.2
    # Internal failures only: throttled entries shrink the shared request rate until one
    # request at a time is left, and then nothing overlaps (test_workers_share_one_request_rate
    # covers throttling).
    endpoint.entry_fault_codes = ("InternalFailure",)
    endpoint.delay = 0.02  # long enough that the processes' requests overlap even on a busy machine
    r = b.sync("--workers", "3", env=env)
    if r.rc == 1:  # entries that failed max_attempts times come back on the next run
        r = b.sync("--workers", "3", env=env)
    assert r.rc == 0, r.stderr
    assert endpoint.max_in_flight >= 2
    _check_round(b, expected_changes({}, b.model()), 0, "--workers 3, 20% entry faults, backfill",
                 endpoint.faults)
    before = b.model()
    mutate(b, 1)
    r = b.sync("--workers", "3", env=env)
    if r.rc == 1:
        r = b.sync("--workers", "3", env=env)
    assert r.rc == 0, r.stderr
    _check_round(b, expected_changes(before, b.model()), 0, "--workers 3, 20% entry faults, changes")


def test_workers_share_one_request_rate(tmp_path, local_aws, endpoint) -> None:
    """Three processes under a 40 requests/s quota: together they must settle near it."""
    b = _bulk(tmp_path, local_aws, endpoint, rows=1500)
    endpoint.quota_rps = 40
    # The subject is the shared rate, not the retry budget: while three processes start at
    # unknown times on a busy machine, one request can be throttled 6 times running (seen in
    # CI) and be rejected for the next run. 12 attempts keep that out of this test.
    r = b.sync("--workers", "3", env={"DBT_EVENTBRIDGE_BATCH_SIZE": "100", "DBT_EVENTBRIDGE_CONCURRENCY": "2",
                                      "DBT_EVENTBRIDGE_MAX_ATTEMPTS": "12"})
    assert r.rc == 0, r.stderr
    requests, throttled = endpoint.request_count, endpoint.faults["throttle"]
    assert throttled < 0.25 * requests, (throttled, requests)
    _check_round(b, expected_changes({}, b.model()), 0,
                 f"--workers 3 under a quota of 40 requests/s: {requests} requests, {throttled} throttled",
                 Counter({"throttle": throttled}))


def test_workers_max_requests_per_second_holds_for_all_processes(tmp_path, local_aws, endpoint) -> None:
    b = _bulk(tmp_path, local_aws, endpoint, rows=1200)
    env = {"DBT_EVENTBRIDGE_BATCH_SIZE": "100", "DBT_EVENTBRIDGE_MAX_REQUESTS_PER_SECOND": "30"}
    r = b.sync("--workers", "4", env=env)
    assert r.rc == 0, r.stderr
    times = sorted(q.at for q in endpoint.requests)
    # 120 requests at 30/s: about 4 s; four processes each allowed 30/s would take 1 s
    assert times[-1] - times[0] >= 3.0, times[-1] - times[0]
    _check_round(b, expected_changes({}, b.model()), 0, "--workers 4 with max_requests_per_second 30")


@pytest.mark.parametrize("where", ["publish.chunk_sent:3", "publish.journaled:4"])
def test_workers_sigkill_loses_nothing_and_leaves_no_publisher(tmp_path, local_aws, endpoint, where) -> None:
    batch = 100
    b = _bulk(tmp_path, local_aws, endpoint, rows=1000)
    env = {"DBT_EVENTBRIDGE_BATCH_SIZE": str(batch)}
    r = b.sync("--workers", "2", env={**env, "DBT_EVENTBRIDGE_CRASH_AT": where})
    assert r.rc == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while _publishers_alive(b.p.dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _publishers_alive(b.p.dir) == []
    r = b.sync("--workers", "2", env=env)
    assert r.rc == 0, r.stderr
    # two chunks can be in flight with workers: that is the bound on duplicates
    _check_round(b, expected_changes({}, b.model()), 2 * batch, f"--workers 2, SIGKILL at {where}")
