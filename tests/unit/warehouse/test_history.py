"""The run history in the warehouse: runs, events, pruning, alert status (history.py)."""

from __future__ import annotations

import datetime as dt
import json
import pickle

import pytest

from dbt_eventbridge.errors import WarehouseError
from dbt_eventbridge.model import Entry, Outcome
from dbt_eventbridge.run.results import SyncResult
from dbt_eventbridge.warehouse.history import (
    EVENT_FIELDS,
    RUN_COLUMNS,
    RUN_COLUMNS_ADDED,
    RUN_COLUMNS_V1,
    EventBuffer,
    History,
    WarehouseAlertStore,
    timestamp,
)
from dbt_eventbridge.warehouse.tables import NotOursError, Ownership

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
                   seconds=61.23456, started_at=iso(at(1)), finished_at=iso(at(1, 10, 1)),
                   action="full-refresh,allow-mass-removal", rebaselined=5, initial_skipped=0)
    r.invalid_keys["null_key_rows"] = 3
    h.run_by = "ana"
    h.sync_finished(r, "inv-1")
    rows = h.run_rows("run-1")
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in rows] == [{
        "run_id": "run-1", "sync_name": "customers", "model": "customers", "event_bus": "crm-events",
        "status": "partial", "exit_code": 1, "started_at": dt.datetime(2024, 5, 1, 10, 0),
        "finished_at": dt.datetime(2024, 5, 1, 10, 1), "planned_added": 3,
        "planned_changed": 1, "planned_removed": 2, "sent_added": 2, "sent_changed": 1, "sent_removed": 2,
        "rejected": 1, "invalid_keys": 3, "not_triggered": 2, "requests": 4, "retried_entries": 1,
        "message": "1 rejected", "dbt_invocation_id": "inv-1", "action": "full-refresh,allow-mass-removal",
        "run_by": "ana", "rebaselined": 5, "initial_skipped": 0, "forgotten": 0, "blocked_by": None}]


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


def test_a_reset_is_recorded_as_a_row_of_its_own(engine) -> None:
    h = history(engine, "reset-1", run_by="ana")
    finished(history(engine, "run-0"), "run-0", "x", "success", at(1, 9), at(1, 9, 1))
    h.reset_recorded("X", "model_x", "crm-events", 42, iso(at(1, 10)), iso(at(1, 10, 1)), 0.5)
    [row] = h.run_rows("reset-1")
    assert {k: row[k] for k in ("sync_name", "status", "action", "run_by", "forgotten", "exit_code", "sent_added",
                                "started_at", "finished_at")} == {
        "sync_name": "x", "status": "reset", "action": "reset", "run_by": "ana", "forgotten": 42, "exit_code": 0,
        "sent_added": 0, "started_at": dt.datetime(2024, 5, 1, 10, 0), "finished_at": dt.datetime(2024, 5, 1, 10, 1)}
    assert "forgot 42 delivered row(s)" in row["message"]
    assert h.last_success("x") == at(1, 9, 1)  # a reset is no successful sync (the stale alert)
    assert [r["status"] for r in h.recent_runs(sync="x")] == ["reset", "success"]


def _previous_release_runs_table(engine, *, registered: bool, rows: int = 1) -> History:
    """_eb_runs as 0.1.0 made it (RUN_COLUMNS_V1; before _eb_objects existed, so not registered)
    or as 0.2.0 did before the audit columns (registered), with rows of that version."""
    h = history(engine, "old-run")
    project = h.project
    project.create_schema(h.runs.without_identifier())
    owned = Ownership(project, engine.state_schema)
    if registered:
        owned.ensure()
        owned.register(h.runs, "runs")
    project.execute(project.render_macro("history_table_sql", relation=h.runs,
                                         columns=[list(c) for c in RUN_COLUMNS_V1]))
    for i in range(rows):
        values = {"run_id": f"old-{i}", "sync_name": "x", "model": "model_x", "status": "success", "exit_code": 0,
                  "started_at": timestamp(at(1, 8, i)), "finished_at": timestamp(at(1, 8, i)), "seconds": 1.5,
                  "sent_added": 3, "not_triggered": 1}
        project.execute(project.sql.insert_values(h.runs, values, dict(RUN_COLUMNS_V1)))
    project.forget_tables()
    return h


@pytest.mark.parametrize("registered", [False, True], ids=["0.1.0", "0.2.0-before-audit"])
def test_a_runs_table_of_the_previous_release_is_migrated_in_place(engine, registered: bool) -> None:
    old = _previous_release_runs_table(engine, registered=registered, rows=2)
    # Read before any run of this version migrated it (`runs` right after the upgrade): the
    # new columns read as null, nothing is written.
    assert old.exists()
    assert [(r["run_id"], r["sent_added"], r["action"], r["run_by"]) for r in old.recent_runs()] == [
        ("old-1", 3, None, None), ("old-0", 3, None, None)]
    assert {c.lower() for c, _ in engine.project.relation_columns(old.runs)} == {c for c, _ in RUN_COLUMNS_V1}

    h = history(engine, "new-run", run_by="ana")
    finished(h, "new-run", "x", "success", at(2), at(2, 10, 1), action="full-refresh", rebaselined=4,
             blocked_by=None)
    names = [c.lower() for c, _ in engine.project.relation_columns(h.runs)]
    assert names == [c for c, _ in RUN_COLUMNS]  # the new columns, at the end, in order
    rows = {r["run_id"]: r for r in h.recent_runs()}
    assert set(rows) == {"old-0", "old-1", "new-run"}
    assert (rows["old-0"]["sent_added"], rows["old-0"]["not_triggered"], rows["old-0"]["action"]) == (3, 1, None)
    assert (rows["new-run"]["action"], rows["new-run"]["run_by"], rows["new-run"]["rebaselined"]) == \
        ("full-refresh", "ana", 4)
    assert sorted(engine.query(f"select name, kind from {engine.state_table('_eb_objects')} "
                               "where name = '_eb_runs'")) == [("_eb_runs", "runs")]  # adopted once
    # The next run finds nothing to add.
    again = history(engine, "third-run")
    again.ensure()
    assert [c.lower() for c, _ in engine.project.relation_columns(h.runs)] == [c for c, _ in RUN_COLUMNS]


def test_a_migration_stopped_halfway_is_completed_and_a_column_added_meanwhile_is_no_error(engine,
                                                                                            monkeypatch) -> None:
    old = _previous_release_runs_table(engine, registered=True)
    project = old.project
    # A run stopped after adding the first two columns.
    for name, kind in RUN_COLUMNS_ADDED[:2]:
        project.execute(project.render_macro("history_add_column_sql", relation=old.runs, name=name, kind=kind))
    h = history(engine, "next")
    real = project.relation_columns
    stale = [True]

    def columns_read_before_another_run_added_one(relation):
        found = real(relation)
        if stale[0]:  # what this run read, just before another run added `rebaselined`
            stale[0] = False
            project.execute(project.render_macro("history_add_column_sql", relation=old.runs, name="rebaselined",
                                                 kind="bigint"))
        return found

    monkeypatch.setattr(project, "relation_columns", columns_read_before_another_run_added_one)
    h.ensure()
    monkeypatch.undo()
    assert [c.lower() for c, _ in project.relation_columns(h.runs)] == [c for c, _ in RUN_COLUMNS]


def test_a_warehouse_that_refuses_the_migration_warns_once_and_still_records_runs(engine, monkeypatch) -> None:
    old = _previous_release_runs_table(engine, registered=True)
    project = old.project
    render = project.render_macro

    def refused(macro, **kwargs):
        if macro == "history_add_column_sql":  # as a role without ALTER on the table gets it
            return "alter table no_such_schema.no_such_table add column x integer"
        return render(macro, **kwargs)

    monkeypatch.setattr(project, "render_macro", refused)
    h = history(engine, "new-run", run_by="ana")
    with pytest.raises(WarehouseError, match="could not add the column action"):
        h.ensure()
    finished(h, "new-run", "x", "success", at(2), at(2, 10, 1), action="full-refresh")  # no second error
    monkeypatch.undo()
    rows = {r["run_id"]: r for r in h.recent_runs()}
    assert rows["new-run"]["status"] == "success" and rows["new-run"]["action"] is None


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
    # Retries, not a sum of attempts: the first attempt of each event is no retry, and a row that
    # could not be rendered was never sent.
    assert [(c["op"], c["error_code"], c["events"], c["retries"]) for c in h.event_counts("run-1")] == [
        ("added", None, 1, 0), ("changed", None, 1, 1), ("removed", "RenderError", 1, 0)]
    assert [r["event_key"] for r in h.run_events("run-1", accepted_only=True)] == ['{"id":1}', '{"id":2}']
    assert [r["event_key"] for r in h.run_events("run-1", sync="CUSTOMERS", failed_only=True)] == ['{"id":3}']
    assert h.run_events("run-1", sync="other") == []
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
