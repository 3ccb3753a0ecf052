"""The run history in the warehouse: runs, events, pruning, alert status (history.py)."""

from __future__ import annotations

import datetime as dt
import json
import pickle

import pytest

from dbt_eventbridge.model import Entry, Outcome
from dbt_eventbridge.run.results import SyncResult
from dbt_eventbridge.warehouse.history import EVENT_FIELDS, EventBuffer, History, WarehouseAlertStore, timestamp
from dbt_eventbridge.warehouse.tables import NotOursError

UTC = dt.UTC


def at(day: int, hour: int = 10, minute: int = 0) -> dt.datetime:
    return dt.datetime(2024, 5, day, hour, minute, tzinfo=UTC)


def iso(moment: dt.datetime) -> str:
    """A time as a run's result holds it (run.results.now())."""
    return moment.isoformat(timespec="seconds")


def history(engine, run_id: str, **kw) -> History:
    return History(engine.project, engine.state_schema, run_id=run_id, **kw)


def finished(h: History, run_id: str, sync: str, status: str, started: dt.datetime, ended: dt.datetime,
             **kw) -> SyncResult:
    """The history of one run of one sync, as that run records it when the sync ends."""
    h.run_id = run_id
    r = SyncResult(sync=sync, model=f"model_{sync.lower()}", status=status, started_at=iso(started),
                   finished_at=iso(ended), **kw)
    h.sync_finished(r, f"inv-{run_id}")
    return r


def entry(seq: int, key: dict, op: str, detail: dict) -> Entry:
    """An entry with what the history records of it (the size is whatever the renderer measured)."""
    text = json.dumps(detail)
    return Entry(seq=seq, op=op, key=key, event_id=f"ev-{seq}",
                 entry={"Source": "com.example.crm", "DetailType": "CustomerChanged", "Detail": text,
                        "EventBusName": "crm-events"},
                 size=len(text) + 30)


def test_the_history_tables_are_created_once_and_registered_as_ours(engine) -> None:
    h = history(engine, "run-1")
    assert h.exists() is False
    h.ensure()
    assert h.exists() is True
    history(engine, "run-2").ensure()  # the next run
    assert sorted(engine.query(f"select name, kind from {engine.state_table('_eb_objects')}")) == [
        ("_eb_alert_status", "alert_status"), ("_eb_events", "events"), ("_eb_runs", "runs")]


def test_history_tables_whose_creation_was_rolled_back_are_made_again(engine) -> None:
    """A run's first history write is in a transaction with the sync's start: when that
    transaction fails, the tables it created are gone, and the next write makes them again."""
    h = history(engine, "run-1")
    engine.project.create_schema(h.runs.without_identifier())  # made earlier in the run (creating it commits)
    with pytest.raises(RuntimeError), engine.project.transaction():
        h.sync_started("Customers", "customers", "crm-events", iso(at(1)), "inv-1")
        raise RuntimeError("the sync's start failed after its history row")
    assert h.exists() is False
    h.sync_started("Customers", "customers", "crm-events", iso(at(1, 11)), "inv-1")
    assert [(r["sync_name"], r["status"]) for r in h.run_rows("run-1")] == [("customers", "running")]


def test_a_runs_table_of_someone_else_is_refused(engine) -> None:
    foreign = engine.make_foreign_table("_eb_runs")
    with pytest.raises(NotOursError):
        history(engine, "run-1").ensure()
    with pytest.raises(NotOursError):
        history(engine, "run-1").exists()
    assert engine.query(f"select id, note from {foreign}") == [(42, None)]


def test_a_sync_is_recorded_running_then_replaced_by_its_result(engine) -> None:
    h = history(engine, "run-1")
    h.sync_started("Customers", "customers", "crm-events", iso(at(1)), "inv-1")
    [row] = h.run_rows("run-1")
    assert (row["sync_name"], row["status"], row["started_at"], row["finished_at"], row["exit_code"]) == \
        ("customers", "running", dt.datetime(2024, 5, 1, 10, 0), None, None)

    r = SyncResult(sync="Customers", model="customers", status="partial", event_bus="crm-events",
                   planned={"added": 3, "changed": 1, "removed": 2}, sent={"added": 2, "changed": 1, "removed": 2},
                   rejected=1, not_triggered=2, requests=4, retried_entries=1, message="1 rejected",
                   seconds=61.23456, started_at=iso(at(1)), finished_at=iso(at(1, 10, 1)))
    r.invalid_keys["null_key_rows"] = 3
    h.sync_finished(r, "inv-1")
    rows = h.run_rows("run-1")
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in rows] == [{
        "run_id": "run-1", "sync_name": "customers", "model": "customers", "event_bus": "crm-events",
        "status": "partial", "exit_code": 1, "started_at": dt.datetime(2024, 5, 1, 10, 0),
        "finished_at": dt.datetime(2024, 5, 1, 10, 1), "planned_added": 3,
        "planned_changed": 1, "planned_removed": 2, "sent_added": 2, "sent_changed": 1, "sent_removed": 2,
        "rejected": 1, "invalid_keys": 3, "not_triggered": 2, "requests": 4, "retried_entries": 1,
        "message": "1 rejected", "dbt_invocation_id": "inv-1"}]


def test_the_seconds_a_run_took_are_recorded_as_given(engine) -> None:
    h = history(engine, "run-1")
    finished(h, "run-1", "x", "success", at(1), at(1, 13, 25), seconds=12345.678)
    [row] = h.run_rows("run-1")
    assert float(row["seconds"]) == 12345.678


def test_runs_are_listed_newest_first_and_found_by_their_id(engine) -> None:
    h = history(engine, "run-a")
    finished(h, "run-a", "x", "success", at(1), at(1, 10, 1))
    finished(h, "run-b", "x", "partial", at(2), at(2, 10, 5))
    finished(h, "run-c", "x", "error", at(3), at(3, 10, 2), message="boom")
    finished(h, "run-c", "y", "success", at(3), at(3, 10, 3))
    assert [(r["run_id"], r["sync_name"], r["status"]) for r in h.recent_runs()] == [
        ("run-c", "x", "error"), ("run-c", "y", "success"), ("run-b", "x", "partial"), ("run-a", "x", "success")]
    assert [(r["run_id"], r["sync_name"]) for r in h.recent_runs(limit=2)] == [("run-c", "x"), ("run-c", "y")]
    assert [(r["run_id"], r["message"], r["exit_code"]) for r in h.recent_runs(sync="Y")] == [("run-c", None, 0)]
    assert h.find_run_ids("run-") == ["run-a", "run-b", "run-c"]
    assert h.find_run_ids("run-b") == ["run-b"]
    assert h.find_run_ids("nope") == []
    assert [r["sync_name"] for r in h.run_rows("run-c")] == ["x", "y"]


def test_last_success_and_first_run(engine) -> None:
    h = history(engine, "run-a")
    finished(h, "run-a", "x", "success", at(1), at(1, 10, 1))
    finished(h, "run-b", "x", "partial", at(2), at(2, 10, 5))
    finished(h, "run-c", "x", "error", at(3), at(3, 10, 2))
    finished(h, "run-c", "y", "success", at(3), at(3, 10, 3))
    assert h.last_success("X") == at(2, 10, 5)  # a partial run delivered; an error did not
    assert h.last_success("y") == at(3, 10, 3)
    assert h.last_success("z") is None
    assert h.first_run("x") == at(1)
    assert h.first_run("z") is None
    assert h.last_success("x").tzinfo == UTC


def test_runs_left_running_by_a_run_that_died_are_marked_interrupted(engine) -> None:
    finished(history(engine, "run-0"), "run-0", "x", "success", at(1, 9), at(1, 9, 1))
    old = history(engine, "run-1")
    old.sync_started("x", "model_x", None, iso(at(1)), None)
    old.sync_started("y", "model_y", None, iso(at(1)), None)
    new = history(engine, "run-2")  # the next run
    new.sync_started("x", "model_x", None, iso(at(2)), None)
    new.mark_interrupted("X")
    status = {(r["run_id"], r["sync_name"]): (r["status"], r["exit_code"], r["message"])
              for r in new.recent_runs()}
    assert status == {
        ("run-2", "x"): ("running", None, None),
        ("run-1", "x"): ("interrupted", 2, "the run was stopped before it finished; the next run recorded what it "
                                           "had delivered"),
        ("run-1", "y"): ("running", None, None),  # another sync: its own next run marks it
        ("run-0", "x"): ("success", 0, None),
    }


def test_prune_drops_runs_and_events_older_than_the_retention(engine) -> None:
    now = dt.datetime(2024, 6, 30, 12, 0, tzinfo=UTC)
    h = history(engine, "old", retention_days=0)
    for run_id, started in (("old", now - dt.timedelta(days=31)), ("new", now - dt.timedelta(days=29))):
        finished(h, run_id, "x", "success", started, started + dt.timedelta(minutes=1))
        events = EventBuffer()
        events.add_unrendered({"id": 1}, "added", "RenderError", "bad row")
        events.cols["sent_at"] = [timestamp(started)]
        h.add_events("x", events)
        h.flush()

    h.prune(now)  # history_retention_days 0: kept for ever
    assert h.find_run_ids("") == ["new", "old"]

    h.retention_days = 30
    h.prune(now)
    assert h.find_run_ids("") == ["new"]
    assert [(r["run_id"], r["sent_at"]) for r in
            (h.query(f"select run_id, sent_at from {h.events}"))] == [("new", dt.datetime(2024, 6, 1, 12, 0))]


def test_events_are_recorded_and_read_back(engine) -> None:
    out = Outcome(requests=2, retried_entries=1, attempts={2: 2})
    out.accepted = [(entry(1, {"id": 1}, "added", {"id": 1, "name": "Ann"}), "aws-1"),
                    (entry(2, {"id": 2}, "changed", {"id": 2, "name": "Bob"}), "aws-2")]
    events = EventBuffer()
    events.add_outcome(out)
    events.add_unrendered({"id": 3}, "removed", "RenderError", "'row' has no attribute 'x'")
    h = history(engine, "run-1")
    h.add_events("Customers", events)
    h.flush()

    rows = h.run_events("run-1")  # by time sent, then key
    assert [{k: v for k, v in r.items() if k != "sent_at"} for r in rows] == [
        {"sync_name": "customers", "event_key": '{"id":1}', "op": "added", "event_id": "ev-1",
         "detail_type": "CustomerChanged", "size_bytes": 54, "aws_event_id": "aws-1",
         "error_code": None, "error_message": None, "attempts": 1},
        {"sync_name": "customers", "event_key": '{"id":2}', "op": "changed", "event_id": "ev-2",
         "detail_type": "CustomerChanged", "size_bytes": 54, "aws_event_id": "aws-2",
         "error_code": None, "error_message": None, "attempts": 2},
        {"sync_name": "customers", "event_key": '{"id":3}', "op": "removed", "event_id": None,
         "detail_type": None, "size_bytes": None, "aws_event_id": None, "error_code": "RenderError",
         "error_message": "'row' has no attribute 'x'", "attempts": 0},
    ]
    assert all(isinstance(r["sent_at"], dt.datetime) for r in rows)
    assert [r["event_key"] for r in h.run_events("run-1", failed_only=True)] == ['{"id":3}']
    assert [(c["op"], c["error_code"], c["events"], c["attempts"]) for c in h.event_counts("run-1")] == [
        ("added", None, 1, 1), ("changed", None, 1, 2), ("removed", "RenderError", 1, 0)]
    assert h.key_names("customers") == ["id"]
    [one] = h.key_history("customers", ['{"id":2}'])
    assert (one["op"], one["source"], one["detail"]) == ("changed", "com.example.crm", '{"id": 2, "name": "Bob"}')


def test_events_are_recorded_without_their_detail_when_history_detail_is_off(engine) -> None:
    out = Outcome(requests=1)
    out.accepted = [(entry(1, {"id": 1}, "added", {"id": 1, "email": "ann@example.com"}), "aws-1")]
    events = EventBuffer()
    events.add_outcome(out)
    h = history(engine, "run-1", detail=False)
    h.add_events("customers", events)
    h.flush()
    [one] = h.key_history("customers", ['{"id":1}'])
    assert (one["aws_event_id"], one["detail"]) == ("aws-1", None)


def test_alert_status_is_kept_per_alert_sync_and_trigger(engine) -> None:
    h = history(engine, "run-1")
    store = WarehouseAlertStore(h)
    assert store.load() == {}
    store.save({("slack", "customers", "failed"): "firing", ("slack", "orders", "failed"): "ok"})
    h.run_id = "run-2"
    store.save({("slack", "customers", "failed"): "ok"})
    assert WarehouseAlertStore(history(engine, "run-3")).load() == {
        ("slack", "customers", "failed"): "ok", ("slack", "orders", "failed"): "ok"}


# -- EventBuffer (no warehouse) ----------------------------------------------------------------

def test_an_event_buffer_keeps_aligned_columns_and_survives_pickling() -> None:
    out = Outcome(requests=3, attempts={7: 3})
    out.accepted = [(entry(7, {"id": 7}, "added", {"id": 7}), "aws-7"), (entry(8, {"id": 8}, "changed", {"id": 8}),
                                                                         "aws-8")]
    events = EventBuffer()
    events.add_outcome(out, detail=False)
    other = EventBuffer()
    other.add_unrendered({"id": 9}, "removed", "RenderError", "bad")
    events.extend(other)
    assert len(events) == 3
    assert all(len(events.cols[f]) == 3 for f in EVENT_FIELDS)
    assert events.cols["event_key"] == ['{"id":7}', '{"id":8}', '{"id":9}']
    assert events.cols["aws_event_id"] == ["aws-7", "aws-8", None]
    assert events.cols["error_code"] == [None, None, "RenderError"]
    assert events.cols["error_message"] == [None, None, "bad"]
    assert events.cols["attempts"] == [3, 1, 0]
    assert events.cols["detail"] == [None, None, None]
    assert events.cols["source"] == ["com.example.crm", "com.example.crm", None]
    copy = pickle.loads(pickle.dumps(events))
    assert copy.cols == events.cols and len(copy) == 3


def test_an_event_buffer_records_the_entries_eventbridge_rejected() -> None:
    out = Outcome(requests=1)
    out.reject(entry(8, {"id": 8}, "changed", {"id": 8}), "InternalFailure", "try later")
    events = EventBuffer()
    events.add_outcome(out)
    assert (events.cols["event_key"], events.cols["op"], events.cols["error_code"], events.cols["error_message"],
            events.cols["aws_event_id"], events.cols["attempts"]) == \
        (['{"id":8}'], ["changed"], ["InternalFailure"], ["try later"], [None], [1])
