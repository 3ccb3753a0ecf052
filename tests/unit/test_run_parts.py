"""The run's own parts without a warehouse: the tally every process keeps, the dry run's sink."""

from __future__ import annotations

import io
import json
import pickle

from dbt_eventbridge.errors import EndpointError
from dbt_eventbridge.model import Change, Entry, Outcome, Rejection
from dbt_eventbridge.run.results import SyncResult
from dbt_eventbridge.run.sinks import DryRunSink
from dbt_eventbridge.run.tally import Tally


def entry(seq: int, op: str = "added") -> Entry:
    e = {"Source": "s", "DetailType": "d", "Detail": json.dumps({"id": seq}), "EventBusName": "b"}
    return Entry(seq, op, {"id": seq}, f"id-{seq}", e, 10)


def outcome(accepted: list[Entry], rejected: list[tuple[Entry, str]]) -> Outcome:
    out = Outcome(accepted=[(e, f"aws-{e.seq}") for e in accepted], requests=2, retried_entries=1)
    for e, code in rejected:
        out.reject(e, code, f"{code} for {e.seq}")
    return out


def test_a_tally_counts_what_eventbridge_answered_and_what_did_not_render() -> None:
    t = Tally(history_detail=True)
    t.on_outcome(outcome([entry(1), entry(2, "changed")], [(entry(3, "removed"), "ThrottlingException")]))
    t.on_unrendered(Change(4, "added", {"id": 4}, {"id": 4}, None, "h", []),
                    Rejection({"id": 4}, "added", "TemplateError", "boom"))
    assert t.acked == [1, 2]
    assert t.sent == {"added": 1, "changed": 1}
    assert [(r.key, r.op, r.code) for r in t.rejections] == [
        ({"id": 3}, "removed", "ThrottlingException"), ({"id": 4}, "added", "TemplateError")]
    assert (t.requests, t.retried_entries, len(t.events)) == (2, 1, 4)


def test_tallies_from_worker_processes_merge_into_the_sync_result() -> None:
    """A worker's tally crosses a process boundary pickled, its error included."""
    a, b = Tally(history_detail=None), Tally(history_detail=None)
    a.on_outcome(outcome([entry(1)], []))
    b.on_outcome(outcome([entry(2), entry(5)], [(entry(6), "InternalFailure")]))
    b.render_seconds = 0.5
    b.error = EndpointError("could not reach EventBridge")
    total = Tally()
    for part in (a, pickle.loads(pickle.dumps(b))):
        total.merge(part)
    assert sorted(total.acked) == [1, 2, 5] and len(total.events) == 0
    assert isinstance(total.error, EndpointError) and total.error.retryable
    result = SyncResult(sync="s", model="m")
    total.into(result, max_rejections=10)
    assert result.sent == {"added": 3, "changed": 0, "removed": 0}
    assert result.rejected == 1 and result.rejections == [
        {"key": {"id": 6}, "op": "added", "code": "InternalFailure", "reason": "InternalFailure for 6"}]
    assert (result.requests, result.retried_entries, result.timings["render"]) == (4, 2, 0.5)


def test_the_dry_run_sink_records_every_entry_and_sends_nothing() -> None:
    out = io.StringIO()
    sink = DryRunSink("crm", out, samples=2)
    t = Tally()
    assert sink.publish((entry(i) for i in range(1, 4)), t.on_outcome) is True
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [(x["sync"], x["op"], x["key"], x["event_id"]) for x in lines] == [
        ("crm", "added", {"id": i}, f"id-{i}") for i in range(1, 4)]
    assert lines[0]["entry"]["Detail"] == '{"id": 1}'
    assert [e.seq for e in sink.samples] == [1, 2]
    assert t.sent == {"added": 3} and t.requests == 0
    assert sink.publish(iter(()), t.on_outcome) is False


def _counted(counts: dict[str, int], ops: list[str], *, rebaseline: bool = False, initial_skip: bool = False
             ) -> SyncResult:
    """What a sync run records of its plan's counts (SyncRun._counted), without a warehouse."""
    from types import SimpleNamespace

    from dbt_eventbridge.run.console import NullConsole
    from dbt_eventbridge.run.sync_run import SyncRun

    run = SyncRun.__new__(SyncRun)
    run.ctx = SimpleNamespace(options=SimpleNamespace(rebaseline=rebaseline), console=NullConsole())  # type: ignore[assignment]
    run.sync = SimpleNamespace(name="s")  # type: ignore[assignment]
    run.result = SyncResult(sync="s", model="m", initial_sync_skipped=initial_skip)
    run._counted(counts, ops)
    return run.result


def test_each_change_recorded_without_an_event_is_counted_once_with_its_reason() -> None:
    """Planned minus sent is never unexplained: a trigger that is off, a rebaseline, a skipped
    initial sync, each in its own count (not_triggered held all three before)."""
    counts = {"added": 3, "changed": 2, "removed": 1, "rebaseline": 4}  # 4 re-baselined by a schema change
    trigger_off = _counted(counts, ["added", "changed"])
    assert (trigger_off.not_triggered, trigger_off.rebaselined, trigger_off.initial_skipped) == (1, 4, 0)
    command = _counted(counts, [], rebaseline=True)
    assert (command.not_triggered, command.rebaselined, command.initial_skipped) == (0, 10, 0)
    first = _counted(counts, [], initial_skip=True)
    assert (first.not_triggered, first.rebaselined, first.initial_skipped) == (0, 4, 6)
    first.status, first.seconds = "success", 0.5
    assert "initial sync skipped (6 row(s) recorded as delivered without event)" in first.summary_line()
    assert "re-baselined 4 (recorded without event)" in first.summary_line()
    assert "recorded without event 1 (trigger off)" in trigger_off.summary_line()


def test_a_sync_result_as_log_fields_is_numbers_per_op_and_times_with_their_zone() -> None:
    import datetime as dt

    from dbt_eventbridge.run.results import actions, now

    r = SyncResult(sync="s", model="m", status="partial", started_at=now(), finished_at=now(), seconds=1.23456,
                   action=actions(full_refresh=True, allow_mass_removal=True), deduplicated=2)
    t = Tally()
    t.on_outcome(outcome([entry(1), entry(2, "changed")], [(entry(3, "removed"), "InternalFailure"),
                                                           (entry(4, "removed"), "InternalFailure")]))
    t.into(r, max_rejections=1)  # the counts per op do not stop at the reported rejections
    fields = json.loads(json.dumps(r.log_fields()))
    assert fields["planned"] == {"added": 0, "changed": 0, "removed": 0}
    assert fields["sent"] == {"added": 1, "changed": 1, "removed": 0}
    assert fields["rejected"] == {"added": 0, "changed": 0, "removed": 2} and fields["rejected_total"] == 2
    # (InternalFailure: EventBridge may have taken them)
    assert (fields["deduplicated"], fields["maybe_delivered"], fields["seconds"], fields["exit_code"]) == (2, 2, 1.235, 1)
    assert fields["action"] == "full-refresh,allow-mass-removal"
    assert dt.datetime.fromisoformat(fields["started_at"]).utcoffset() == dt.timedelta(0)
    assert actions(rebaseline=True, allow_mass_removal=True) == "rebaseline" and actions() is None
