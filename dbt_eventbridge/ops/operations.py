"""Day-two operations over the state schema: read the run history, reset a sync.

    from dbt_eventbridge.ops.operations import recent_runs, key_history
    runs = recent_runs(SyncOptions(project_dir="analytics"), limit=10)

Each function opens the project's warehouse connection like a sync does, and never sends
anything. (Re-baselining is a sync that sends nothing: ``run_sync`` with ``rebaseline``.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from dbt_eventbridge.errors import ConfigError, Problem, TerminalError
from dbt_eventbridge.run.loader import load
from dbt_eventbridge.run.options import SyncOptions
from dbt_eventbridge.warehouse import state as state_store
from dbt_eventbridge.warehouse.history import History, key_json, parse_time
from dbt_eventbridge.warehouse.lock import SyncLock
from dbt_eventbridge.warehouse.tables import StateTables, ensure_schema

MAX_REPORTED_REJECTIONS = 1000  # per sync, in a report made from the history (as report.py shows)


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
        return h.recent_runs(limit, sync)


@dataclass
class RunDetails:
    run_id: str
    syncs: list[dict[str, Any]]
    counts: list[dict[str, Any]]        # per sync, op and error code
    events: list[dict[str, Any]]        # failed ones first, then the others, up to the limit
    more_events: int = 0
    report: dict[str, Any] = field(default_factory=dict)  # the run as the HTML report reads it


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
        syncs = h.run_rows(rid)
        counts = h.event_counts(rid)
        failed = h.run_events(rid, failed_only=True, limit=limit)
        delivered = [e for e in h.run_events(rid, limit=limit + len(failed)) if e["error_code"] is None]
        events = failed if failed_only else failed + delivered[:max(0, limit - len(failed))]
        total = sum(int(c["events"]) for c in counts if not failed_only or c["error_code"] is not None)
        details = RunDetails(rid, syncs, counts, events, max(0, total - len(events)))
        if report:
            details.report = _report_dict(h, rid, syncs)
        return details


def _report_dict(h: History, run_id: str, syncs: list[dict[str, Any]]) -> dict[str, Any]:
    """A recorded run in the shape of the result file, for the HTML report."""
    failed = h.run_events(run_id, failed_only=True, limit=MAX_REPORTED_REJECTIONS * max(1, len(syncs)))
    seconds = h.timeline(run_id)
    out_syncs = []
    for s in syncs:
        name = str(s["sync_name"])
        rejections = [{"key": json.loads(e["event_key"]), "op": e["op"], "code": e["error_code"],
                       "reason": e["error_message"]}
                      for e in failed if e["sync_name"] == name][:MAX_REPORTED_REJECTIONS]
        out_syncs.append({
            "sync": name, "model": s["model"], "status": s["status"], "event_bus": s["event_bus"],
            "planned": {op: int(s[f"planned_{op}"] or 0) for op in ("added", "changed", "removed")},
            "sent": {op: int(s[f"sent_{op}"] or 0) for op in ("added", "changed", "removed")},
            "rejected": int(s["rejected"] or 0), "not_triggered": int(s["not_triggered"] or 0),
            "invalid_keys": {"null_key_rows": 0, "duplicate_key_rows": int(s["invalid_keys"] or 0),
                             "duplicate_samples": []},
            "rejections": rejections, "rejections_truncated": max(0, int(s["rejected"] or 0) - len(rejections)),
            "requests": int(s["requests"] or 0), "retried_entries": int(s["retried_entries"] or 0),
            "message": s["message"], "seconds": float(s["seconds"] or 0), "exit_code": int(s["exit_code"] or 0),
            "timings": {}, "timeline": _timeline([r for r in seconds if r["sync_name"] == name])})
    started = min((t for s in syncs if (t := parse_time(s["started_at"])) is not None), default=None)
    finished = max((t for s in syncs if (t := parse_time(s["finished_at"])) is not None), default=None)
    return {"run_id": run_id, "started_at": started.isoformat() if started else None,
            "finished_at": finished.isoformat() if finished else None,
            "dbt_invocation_id": next((s["dbt_invocation_id"] for s in syncs if s["dbt_invocation_id"]), None),
            "dry_run": False, "error": None, "warnings": [],
            "exit_code": max((int(s["exit_code"] or 0) for s in syncs), default=0),
            "seconds": (finished - started).total_seconds() if started and finished else 0.0,
            "syncs": out_syncs}


def _timeline(rows: list[dict[str, Any]]) -> list[list[float]]:
    """The report's points (seconds since the first, sent, rejected) from events per second."""
    points = [(parse_time(r["second"]), int(r["sent"] or 0), int(r["rejected"] or 0)) for r in rows]
    points = [p for p in points if p[0] is not None]
    if not points:
        return []
    start = points[0][0]
    return [[(t - start).total_seconds() + 1.0, sent, rejected] for t, sent, rejected in points]  # type: ignore[operator]


def key_candidates(names: list[str], key: str) -> list[str]:
    """What `--key` may mean, as stored keys (JSON in key-column order): a JSON object,
    `a=1,b=x`, or the value of a one-column key (42 matches both the number and the text)."""
    text = key.strip()
    by_lower = {n.lower(): n for n in names}

    def ordered(value: dict[str, Any]) -> dict[str, Any]:
        named = {by_lower.get(str(k).lower(), str(k)): v for k, v in value.items()}
        return {**{n: named[n] for n in names if n in named}, **named}

    if text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError as e:
            raise ConfigError([Problem(f"--key {key!r} is not valid JSON: {e}",
                                       fix='Write it as {"customer_id": 42}, customer_id=42 or 42')]) from None
        return [key_json(ordered(value))]
    if "=" in text:
        parts = [p.split("=", 1) for p in text.split(",") if p.strip()]
        options: list[dict[str, Any]] = [{}]
        for k, v in parts:
            options = [{**o, k.strip(): val} for o in options for val in _values(v.strip())]
        return [key_json(ordered(o)) for o in options]
    if len(names) != 1:
        raise ConfigError([Problem(f"this sync's key has {len(names)} columns ({', '.join(names) or 'unknown'}), "
                                   f"so --key {key!r} is ambiguous",
                                   fix="Name every column: --key " + ",".join(f"{n}=..." for n in names))])
    return [key_json({names[0]: v}) for v in _values(text)]


def _values(text: str) -> list[Any]:
    out: list[Any] = [text]
    try:
        out.insert(0, int(text))
    except ValueError:
        try:
            out.insert(0, float(text))
        except ValueError:
            pass
    return out


def key_history(options: SyncOptions, sync: str, key: str, *, limit: int = 200) -> list[dict[str, Any]]:
    with open_history(options) as h:
        names = h.key_names(sync)
        if not names:
            raise TerminalError(f"the run history has no event of sync {sync!r}",
                                fix="Check the sync name (`dbt-eventbridge runs` lists them)")
        return h.key_history(sync, key_candidates(names, key), limit)


def reset_sync(options: SyncOptions, sync: str) -> int:
    """Forget what was delivered for one sync: its next run sends every current row as added.

    Returns the number of delivered rows forgotten. The state table is emptied, not
    dropped, so the next run is not a first run (initial_sync: skip does not apply)."""
    named = SyncOptions(**{**options.__dict__, "syncs": (sync,)})
    try:
        loaded = load(named, lenient=True, saved=True)
    except ConfigError:  # a sync made since the last parse: the project as it is now
        loaded = load(named, lenient=True)
    project, settings = loaded.project, loaded.settings
    name = next((s.name for s, _ in loaded.syncs), sync)
    with project.connection("dbt_eventbridge_reset", wait_seconds=settings.lock_wait_seconds):
        tables = StateTables.for_sync(project, settings.state_schema, name)
        ensure_schema(project, tables)
        with SyncLock(project, tables, ttl=settings.lock_ttl_seconds, wait=settings.lock_wait_seconds):
            state_store.migrate_legacy(project, tables)
            return state_store.reset(project, tables)
