"""Day-two operations over the state schema: read the run history, reset a sync.

    from dbt_eventbridge.ops.operations import recent_runs, key_history
    runs = recent_runs(SyncOptions(project_dir="analytics"), limit=10)

Each function opens the project's warehouse connection like a sync does, and never sends
anything. (Re-baselining is a sync that sends nothing: ``run_sync`` with ``rebaseline``.)
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from dbt_eventbridge.config.keys import key_candidates
from dbt_eventbridge.errors import ConfigError, TerminalError
from dbt_eventbridge.model import OPS
from dbt_eventbridge.ops.report import run_heading
from dbt_eventbridge.run.loader import load
from dbt_eventbridge.run.options import SyncOptions
from dbt_eventbridge.run.results import BLOCKED_BY_MASS_REMOVAL, now, os_user
from dbt_eventbridge.warehouse import state as state_store
from dbt_eventbridge.warehouse.history import DEDUPLICATED, History, parse_time
from dbt_eventbridge.warehouse.lock import SyncLock
from dbt_eventbridge.warehouse.tables import StateTables, ensure_schema

MAX_REPORTED_REJECTIONS = 1000  # per sync, in a report made from the history (as report.py shows)
MAX_REPORTED_EVENTS = 1000      # sent events per sync, likewise
MAX_CHART_POINTS = 600          # a report's chart of events per second: longer runs get wider intervals
# Columns read back as times: the history keeps UTC without a zone (some adapters give text).
TIME_COLUMNS = frozenset({"started_at", "finished_at", "sent_at", "first_at", "last_at", "second"})


def plain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as read back, made the same on every warehouse: times aware in UTC, decimals as
    numbers (Snowflake's NUMBER, PostgreSQL's sums), so that text and JSON say what they are."""
    for r in rows:
        for k, v in r.items():
            if isinstance(v, dt.datetime) or (k in TIME_COLUMNS and isinstance(v, str)):
                r[k] = parse_time(v)
            elif isinstance(v, Decimal):
                r[k] = int(v) if v == v.to_integral_value() else float(v)
    return rows


@contextmanager
def open_history(options: SyncOptions) -> Iterator[History]:
    loaded = load(options, lenient=True, saved=True)
    project = loaded.project
    with project.connection("dbt_eventbridge_history"):
        history = History(project, loaded.settings.state_schema)
        if not history.exists():
            raise TerminalError(f"there is no run history in {history.runs.without_identifier()} yet",
                                fix="Run `dbt-eventbridge sync` first (dry runs are not recorded); check "
                                    "--target and state_schema if you expected one")
        yield history


def recent_runs(options: SyncOptions, *, limit: int = 20, sync: str | None = None) -> list[dict[str, Any]]:
    with open_history(options) as h:
        return plain(h.recent_runs(limit, sync))


@dataclass
class RunDetails:
    run_id: str
    syncs: list[dict[str, Any]]
    counts: list[dict[str, Any]]        # per sync, op and error code
    events: list[dict[str, Any]]        # failed ones first, then the others, up to the limit
    more_events: int = 0
    report: dict[str, Any] = field(default_factory=dict)  # the run as the HTML report reads it
    status: str = ""     # the run as a whole: OK, PARTIAL, BLOCKED or FAILED (report.run_heading)
    exit_code: int = 0   # the run's: the highest of its syncs'


def _one_run_id(h: History, run_id: str) -> str:
    found = h.find_run_ids(run_id)
    if not found:
        raise TerminalError(f"no run {run_id!r} in the run history",
                            fix="List the recent runs with `dbt-eventbridge runs`; runs older than "
                                "history_retention_days are pruned")
    if len(found) > 1:
        raise TerminalError(f"{run_id!r} matches {len(found)} runs ({', '.join(found[:5])})",
                            fix="Give more characters of the run id")
    return found[0]


def run_details(options: SyncOptions, run_id: str, *, limit: int = 50, failed_only: bool = False,
                report: bool = False) -> RunDetails:
    """One run's syncs, events per answer and events; ``report``: also the HTML report's data."""
    with open_history(options) as h:
        rid = _one_run_id(h, run_id)
        syncs = plain(h.run_rows(rid))
        for s in syncs:
            s["blocked_by"] = _blocked_by(s)
        counts = plain(h.event_counts(rid))
        failed = h.run_events(rid, failed_only=True, limit=limit)
        delivered = [] if failed_only or len(failed) >= limit else \
            h.run_events(rid, accepted_only=True, limit=limit - len(failed))
        events = plain(failed + delivered)
        total = sum(int(c["events"]) for c in counts if not failed_only or c["error_code"] is not None)
        details = RunDetails(rid, syncs, counts, events, max(0, total - len(events)))
        details.exit_code = max((int(s["exit_code"] or 0) for s in syncs), default=0)
        details.status = run_heading({"exit_code": details.exit_code, "syncs": syncs})[1]
        if report:
            details.report = _report_dict(h, rid, syncs)
        return details


def _blocked_by(s: dict[str, Any]) -> str | None:
    """What held a recorded sync back (a row written before the column: only the guard's
    status, blocked, says it)."""
    return s.get("blocked_by") or (BLOCKED_BY_MASS_REMOVAL if s.get("status") == "blocked" else None)


def _count(value: Any) -> int:
    return int(value or 0)


def _report_dict(h: History, run_id: str, syncs: list[dict[str, Any]]) -> dict[str, Any]:
    """A recorded run in the shape of the result file, for the HTML report, with only what the
    history knows: each sync's counts and each event, not the run's warnings, phase timings
    or chunks (``source: history`` tells the report so)."""
    seconds = plain(h.timeline(run_id))
    out_syncs = []
    for s in syncs:
        name = str(s["sync_name"])
        rejected, sent = _count(s["rejected"]), sum(_count(s[f"sent_{op}"]) for op in OPS)
        failed = h.run_events(run_id, failed_only=True, sync=name, limit=MAX_REPORTED_REJECTIONS) if rejected else []
        rejections = [{"key": json.loads(e["event_key"]), "op": e["op"], "code": e["error_code"],
                       "reason": e["error_message"]} for e in failed]
        accepted = plain(h.run_events(run_id, accepted_only=True, sync=name, limit=MAX_REPORTED_EVENTS)) \
            if sent else []
        events = [{"key": json.loads(e["event_key"]), "op": e["op"], "detail_type": e["detail_type"],
                   "aws_event_id": e["aws_event_id"], "retries": max(0, _count(e["attempts"]) - 1),
                   "deduplicated": e["error_message"] == DEDUPLICATED,
                   "sent_at": e["sent_at"].isoformat() if e["sent_at"] else None} for e in accepted]
        out_syncs.append({
            "sync": name, "model": s["model"], "status": s["status"], "event_bus": s["event_bus"],
            "action": s.get("action"), "run_by": s.get("run_by"), "blocked_by": _blocked_by(s),
            "planned": {op: _count(s[f"planned_{op}"]) for op in OPS},
            "sent": {op: _count(s[f"sent_{op}"]) for op in OPS},
            "rejected": rejected, "not_triggered": _count(s["not_triggered"]),
            "rebaselined": _count(s.get("rebaselined")), "initial_skipped": _count(s.get("initial_skipped")),
            "forgotten": _count(s.get("forgotten")),
            # The history keeps the total only: which were NULL and which duplicated, it cannot say.
            "invalid_keys": {"total": _count(s["invalid_keys"])},
            "rejections": rejections, "rejections_truncated": 0,
            "rejections_not_shown": max(0, rejected - len(rejections)),
            "events": events, "events_not_shown": max(0, sent - len(events)),
            "requests": _count(s["requests"]), "retried_entries": _count(s["retried_entries"]),
            "message": s["message"], "seconds": float(s["seconds"] or 0), "exit_code": _count(s["exit_code"]),
            "timings": {}, "timeline": [], **_per_second([r for r in seconds if r["sync_name"] == name])})
    started = min((s["started_at"] for s in syncs if s["started_at"] is not None), default=None)
    finished = max((s["finished_at"] for s in syncs if s["finished_at"] is not None), default=None)
    return {"run_id": run_id, "source": "history", "started_at": started.isoformat() if started else None,
            "finished_at": finished.isoformat() if finished else None,
            "dbt_invocation_id": next((s["dbt_invocation_id"] for s in syncs if s["dbt_invocation_id"]), None),
            "run_by": next((s["run_by"] for s in syncs if s.get("run_by")), None),
            "dry_run": False, "error": None, "warnings": [],
            "exit_code": max((_count(s["exit_code"]) for s in syncs), default=0),
            "seconds": (finished - started).total_seconds() if started and finished else None,
            "syncs": out_syncs}


def _per_second(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Events answered per second of the clock (what the history knows: when each event was
    answered), every second from the first answer to the last, those without any at zero; a
    run longer than MAX_CHART_POINTS seconds in intervals of as many seconds as it needs.
    Points: [end of the interval in seconds since the first answer, accepted, rejected]."""
    seconds = [(t, _count(r["sent"]), _count(r["rejected"])) for r in rows if (t := r["second"]) is not None]
    if not seconds:
        return {"per_second": [], "answered": None}
    first, last = seconds[0][0], seconds[-1][0]
    span = int((last - first).total_seconds()) + 1
    width = max(1, math.ceil(span / MAX_CHART_POINTS))
    buckets: list[list[float]] = [[float((i + 1) * width), 0, 0] for i in range(math.ceil(span / width))]
    for t, sent, rejected in seconds:
        b = buckets[int((t - first).total_seconds()) // width]
        b[1] += sent
        b[2] += rejected
    return {"per_second": buckets, "answered": {"first": first.isoformat(), "last": last.isoformat(),
                                                "interval_seconds": width}}


def key_history(options: SyncOptions, sync: str, key: str, *, limit: int = 200) -> list[dict[str, Any]]:
    with open_history(options) as h:
        names = h.key_names(sync)
        if not names:
            raise TerminalError(f"the run history has no event of sync {sync!r}",
                                fix="Check the sync name (`dbt-eventbridge runs` lists them)")
        return plain(h.key_history(sync, key_candidates(names, key), limit))


@dataclass
class ResetDone:
    """What a reset did, as the run history records it (a row with status ``reset``)."""

    sync: str
    forgotten: int                 # delivered rows forgotten (0: nothing was reset, nothing recorded)
    run_id: str | None = None      # its row in the run history
    run_by: str | None = None      # the OS user
    at: str | None = None          # when it finished, UTC with its zone


def reset_sync(options: SyncOptions, sync: str) -> ResetDone:
    """Forget what was delivered for one sync: its next run sends every current row as added.

    The state table is emptied, not dropped, so the next run is not a first run
    (initial_sync: skip does not apply). A reset that forgets rows is recorded in the run
    history, in the same transaction where the warehouse has one: who, when, how many."""
    named = SyncOptions(**{**options.__dict__, "syncs": (sync,)})
    try:
        loaded = load(named, lenient=True, saved=True)
    except ConfigError:  # a sync made since the last parse: the project as it is now
        loaded = load(named, lenient=True)
    project, settings = loaded.project, loaded.settings
    found = next((s for s, _ in loaded.syncs), None)
    name = found.name if found is not None else sync
    started, t0 = now(), time.perf_counter()
    with project.connection("dbt_eventbridge_reset", wait_seconds=settings.lock_wait_seconds):
        tables = StateTables.for_sync(project, settings.state_schema, name)
        ensure_schema(project, tables)
        history = History(project, settings.state_schema, run_id=str(uuid.uuid4()), run_by=os_user(),
                          retention_days=settings.history_retention_days)
        with SyncLock(project, tables, ttl=settings.lock_ttl_seconds, wait=settings.lock_wait_seconds):
            state_store.migrate_legacy(project, tables)
            if not state_store.delivered_count(project, tables):
                return ResetDone(name, state_store.reset(project, tables))  # nothing forgotten: not recorded
            history.ensure()  # (before the transaction: it may create or upgrade the tables)
            with project.transaction():
                n = state_store.reset(project, tables)
                finished = now()
                history.reset_recorded(name, found.model_name if found is not None else "",
                                       found.event_bus if found is not None else None, n, started, finished,
                                       time.perf_counter() - t0)
            return ResetDone(name, n, history.run_id, history.run_by, finished)
