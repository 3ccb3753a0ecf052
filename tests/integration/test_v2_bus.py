"""Syncs to a Custom Event Bus (EventBridge's v2 API), through the real CLI and dbt, against
the local v2 endpoint (devtools/eventbridgev2_endpoint.py, which speaks smithy-rpc-v2-cbor
and checks SigV4 like the service).

What a consumer of the bus would check: every change arrives exactly once, a key's changes
in the order they happened, through lost answers and SIGKILLs at every point of a run."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator

import pytest

from devtools.eventbridgev2_endpoint import LocalEventBridgeV2, RequestFault
from tests.integration.harness import BIN, Project, expected_changes, model_schema, sql, state_schema

BULK_SQL = """
select cast(i as integer) as id, 'v0' as value, cast(i % 5 as integer) as account
from {% if target.type == 'postgres' %}generate_series(1, {{ var('bulk_rows', 300) }})
     {%- else %}range(1, {{ var('bulk_rows', 300) + 1 }}){% endif %} as t(i)
"""


def sync_yml(bus: str, extra: str = "") -> str:
    return f"""
version: 2
models:
  - name: bulk
    config:
      meta:
        eventbridge:
          primary_key: id
          event_bus: "{bus}"
          source: com.test.bulk
          detail_type: BulkChanged
          detail:
            template: '{{% raw %}}{{"id": {{{{ row.id }}}}, "value": "{{{{ row.value }}}}", "op": "{{{{ op }}}}", "event_id": "{{{{ event_id }}}}"}}{{% endraw %}}'
{extra}"""


class V2Bulk:
    """The sample project plus `bulk`, synced to a v2 bus on the local endpoint."""

    def __init__(self, project: Project, ep: LocalEventBridgeV2, rows: int, extra_yml: str = "") -> None:
        self.p = project
        self.ep = ep
        self.bus = ep.create_bus(f"bulk-{id(self)}")
        (project.dir / "models" / "bulk").mkdir()
        (project.dir / "models" / "bulk" / "bulk.sql").write_text(BULK_SQL)
        (project.dir / "models" / "bulk" / "bulk.yml").write_text(sync_yml(self.bus, extra_yml))
        self.env = {"DBT_EVENTBRIDGE_V2_ENDPOINT_URL": ep.endpoint_url}
        p = project.run([str(BIN / "dbt"), "build", "--quiet", "-s", "bulk", *project.target_args,
                         "--vars", json.dumps({"bulk_rows": rows})])
        assert p.returncode == 0, p.stdout + p.stderr
        self.seen = 0
        self.history: dict[int, list[tuple[str, str]]] = defaultdict(list)  # id -> (op, value) as delivered

    def sync(self, *args: str, env: dict[str, str] | None = None):
        return self.p.sync("sync", "-s", "bulk", *args, extra_env={**self.env, **(env or {})})

    def popen(self, env: dict[str, str]) -> subprocess.Popen[str]:
        cmd = [str(BIN / "dbt-eventbridge"), "sync", "-s", "bulk", *self.p.target_args]
        return subprocess.Popen(cmd, cwd=self.p.dir, env={**self.p.env, **self.env, **env},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def sql(self, statement: str) -> list[tuple]:
        return sql(self.p, statement.replace("main.bulk", f"{model_schema(self.p)}.bulk"))

    def model(self) -> dict[int, str]:
        return dict(self.sql("select id, value from main.bulk"))

    def delivered(self) -> list[tuple[int, str, str]]:
        """(id, op, value) of every event the bus delivered since the last call, in delivery order."""
        new = self.ep.delivered(self.bus)[self.seen:]
        self.seen += len(new)
        out = []
        for e in new:
            d = json.loads(e["Detail"])
            out.append((d["id"], d["op"], d["value"]))
            self.history[d["id"]].append((d["op"], d["value"]))
        return out


def mutate(b: V2Bulk, round_no: int) -> None:
    """Most rows change, some go, some come back with the values they had (added, removed,
    added again: the same event_id, which deduplication must not swallow)."""
    series = "generate_series({}, {})" if b.p.engine == "postgres" else "range({}, {} + 1)"
    b.sql(f"update main.bulk set value = 'r{round_no}' where id % 7 <> {round_no % 7}")
    b.sql(f"delete from main.bulk where id % 17 = {round_no % 17}")
    b.sql(f"insert into main.bulk select (select max(id) from main.bulk) + i, 'v0', 0 from {series.format(1, 8)} t(i)")
    if round_no % 3 == 0:  # rows removed two rounds ago come back as they were first delivered
        b.sql(f"insert into main.bulk select i, 'v0', cast(i % 5 as integer) from {series.format(1, 300)} t(i) "
              f"where i % 17 = {(round_no - 2) % 17} and i not in (select id from main.bulk)")


def check_round(b: V2Bulk, expected: set[tuple[int, str, str]], label: str) -> None:
    got = b.delivered()
    assert set(got) == expected, (f"{label}: lost {sorted(expected - set(got))[:5]}, "
                                  f"unexpected {sorted(set(got) - expected)[:5]}")
    assert len(got) == len(set(got)), f"{label}: {len(got) - len(set(got))} duplicates delivered"


def check_key_order(b: V2Bulk) -> None:
    """Each key's events, in delivery order, are a history the model could have had."""
    for key, events in b.history.items():
        present = False
        for op, _ in events:
            assert (op == "added") != present, f"key {key}: {events}"
            present = op != "removed"


@pytest.fixture
def ep() -> Iterator[LocalEventBridgeV2]:
    with LocalEventBridgeV2(seed=3) as endpoint:
        yield endpoint


CRASH_POINTS = [
    "locked", "plan.created", "publish.chunk_sent:1", "publish.journaled:1", "publish.chunk_sent:2",
    "publish.journaled:2", "publish.chunk_sent:3", "commit.start", "commit.statement:1", "commit.done",
]
REQUEST_KILLS = [1, 2, 4, 6]  # a round changes about 250 rows: about 9 requests of 30


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_sigkill_at_any_point_delivers_each_change_exactly_once_in_key_order(request, tmp_path, local_aws, ep,
                                                                             engine) -> None:
    pg = request.getfixturevalue("postgres") if engine == "postgres" else None
    b = V2Bulk(Project(tmp_path, engine, local_aws, pg), ep, rows=300)
    env = {"DBT_EVENTBRIDGE_BATCH_SIZE": "30", "DBT_EVENTBRIDGE_CONCURRENCY": "4"}
    r = b.sync(env=env)
    assert r.rc == 0, r.stderr
    check_round(b, expected_changes({}, b.model()), "initial backfill")
    plans = [("point", p) for p in CRASH_POINTS] + [("request", k) for k in REQUEST_KILLS] \
        + [("replay", "commit.statement:1")]
    deduplicated = 0
    for round_no, (kind, where) in enumerate(plans, start=1):
        before = b.model()
        mutate(b, round_no)
        after = b.model()
        if kind == "request":
            ep.delay = 0.3
            start = len(ep.requests)
            proc = b.popen(env)
            deadline = time.monotonic() + 60
            while len(ep.requests) < start + int(where) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            ep.delay = 0.0
            assert proc.returncode == -signal.SIGKILL, f"round {round_no}: the run ended before request {where}"
        else:
            r = b.sync(env={**env, "DBT_EVENTBRIDGE_CRASH_AT": where if kind == "point" else "publish.journaled:2"})
            assert r.rc == -signal.SIGKILL, f"round {round_no}: crash point {where} was not reached ({r.rc})"
            if kind == "replay":  # and the run that replays the journal is killed too
                assert b.sync(env={**env, "DBT_EVENTBRIDGE_CRASH_AT": where}).rc == -signal.SIGKILL
        r = b.sync(env=env)
        assert r.rc == 0, f"round {round_no} ({where}): {r.stderr}"
        deduplicated += r.sync("bulk")["deduplicated"]
        check_round(b, expected_changes(before, after), f"SIGKILL at {kind} {where}")
    check_key_order(b)
    # The kills mid-publish left events delivered without an ack: the runs after sent them
    # again, and the bus recognised them (none reached a consumer twice, checked above).
    assert deduplicated > 0
    assert ep.counts["deduplicated"] == deduplicated


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_lost_answers_are_deduplicated_and_recorded(request, tmp_path, local_aws, ep, engine) -> None:
    pg = request.getfixturevalue("postgres") if engine == "postgres" else None
    b = V2Bulk(Project(tmp_path, engine, local_aws, pg), ep, rows=500)
    # The answers to requests 1 (the first, sent alone), 4 and 6 are lost after the bus took them.
    ep.request_faults = [RequestFault("lose_response", first=1), RequestFault("lose_response", first=1, skip=3),
                         RequestFault("lose_response", first=1, skip=5)]
    r = b.sync()
    assert r.rc == 0, r.stderr
    s = r.sync("bulk")
    check_round(b, expected_changes({}, b.model()), "lost answers")
    assert s["sent"]["added"] == 500
    assert ep.counts["fault:lose_response"] == 3
    assert s["deduplicated"] == ep.counts["deduplicated"] == sum(
        q.entry_count for q in ep.requests if q.fault == "lose_response")
    # every entry carried the ids: deduplication by event id, ordering per key
    events = ep.delivered(b.bus)
    print(f"lost answers: {s['deduplicated']} entries answered DEDUPLICATED, {len(events)} delivered")
    assert all(e["DeduplicationId"].startswith(json.loads(e["Detail"])["event_id"] + ".") for e in events)
    assert len({e["EventGroupId"] for e in events}) == 500
    recorded = sql(b.p, f"select count(*) from {state_schema(b.p)}._eb_events where error_message = 'DEDUPLICATED' "
                        "and error_code is null and aws_event_id is not null")
    assert recorded[0][0] == s["deduplicated"]


def until_delivered(b: V2Bulk, most: int = 4) -> int:
    """Runs until every change is delivered: an entry that failed max_attempts times is
    rejected with a retryable code and comes back on the next run."""
    for runs in range(1, most + 1):
        r = b.sync()
        if r.rc == 0:
            return runs
        assert r.rc == 1, r.stderr
        codes = {x["code"] for x in r.sync("bulk")["rejections"]}
        assert codes <= {"ThrottlingException", "InternalFailure", "InternalException", "ConnectionError",
                         "OrderHeld"}, codes
    raise AssertionError(f"changes still rejected after {most} runs")


def test_entry_and_request_faults_deliver_exactly_once_in_key_order(tmp_path, local_aws, ep) -> None:
    b = V2Bulk(Project(tmp_path, "duckdb", local_aws), ep, rows=1000)
    ep.entry_fault_rate = 0.3
    ep.request_faults = [RequestFault("throttle", first=2), RequestFault("internal", rate=0.05),
                         RequestFault("drop", rate=0.03), RequestFault("lose_response", rate=0.05)]
    until_delivered(b)
    check_round(b, expected_changes({}, b.model()), "backfill under faults")
    for round_no in (1, 2):
        before = b.model()
        mutate(b, round_no)
        until_delivered(b)
        check_round(b, expected_changes(before, b.model()), f"changes under faults, round {round_no}")
    check_key_order(b)
    counts = ep.counts
    assert counts["fault:lose_response"] > 0 and counts["fault:drop"] > 0 and counts["fault:internal"] > 0
    assert counts["fault:ThrottlingException"] + counts["fault:InternalFailure"] > 100
    assert counts["deduplicated"] > 0


def test_workers_publish_to_a_v2_bus_exactly_once(tmp_path, local_aws, ep) -> None:
    """--workers: each process has its own v2 client and the run's token; a key is in one
    process (chunks are split by a hash of the key)."""
    b = V2Bulk(Project(tmp_path, "duckdb", local_aws), ep, rows=1200)
    ep.entry_fault_rate = 0.2
    r = b.sync("--workers", "3", env={"DBT_EVENTBRIDGE_BATCH_SIZE": "300", "DBT_EVENTBRIDGE_MAX_ATTEMPTS": "20"})
    assert r.rc == 0, r.stderr
    check_round(b, expected_changes({}, b.model()), "--workers 3, 20% entry faults")
    tokens = {e["DeduplicationId"].rsplit(".", 1)[1] for e in ep.delivered(b.bus)}
    assert len(tokens) == 1  # one run, one token, in every process


def test_event_group_template_orders_per_account_and_options_turn_off(tmp_path, local_aws, ep) -> None:
    b = V2Bulk(Project(tmp_path, "duckdb", local_aws), ep, rows=40,
               extra_yml="          event_group: \"{% raw %}account-{{ row.account }}{% endraw %}\"\n")
    assert b.sync().rc == 0
    events = ep.delivered(b.bus)
    assert {e["EventGroupId"] for e in events} == {f"account-{i}" for i in range(5)}
    seqs = defaultdict(list)
    for e in events:
        seqs[e["EventGroupId"]].append(int(e["SequenceNumber"]))
    assert all(s == sorted(s) for s in seqs.values())

    yml = b.p.dir / "models" / "bulk" / "bulk.yml"
    yml.write_text(sync_yml(b.bus, "          event_group: false\n          deduplication: false\n"))
    b.sql("update main.bulk set value = 'x'")
    assert b.sync().rc == 0
    later = ep.delivered(b.bus)[len(events):]
    assert len(later) == 40
    assert all(e["EventGroupId"] is None and e["DeduplicationId"] is None for e in later)


def test_v2_options_on_a_classic_bus_and_a_bad_v2_arn_are_config_errors(tmp_path, local_aws, ep) -> None:
    b = V2Bulk(Project(tmp_path, "duckdb", local_aws), ep, rows=5)
    yml = b.p.dir / "models" / "bulk" / "bulk.yml"
    yml.write_text(sync_yml("crm-events", "          event_group: \"{% raw %}{{ row.account }}{% endraw %}\"\n"))
    r = b.sync()
    assert r.rc == 2
    assert "'event_group' needs a Custom Event Bus" in r.stderr and "bulk" in r.stderr
    assert "event-busv2" in r.stderr  # the fix names the ARN to use
    yml.write_text(sync_yml("arn:aws:events:us-east-1:123456789012:event-busv2/orders"))
    r = b.sync()
    assert r.rc == 2
    assert "is not a Custom Event Bus (v2) ARN" in r.stderr
    assert ep.requests == []
