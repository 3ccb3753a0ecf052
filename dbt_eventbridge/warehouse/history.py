"""Run history in the warehouse: what every run did, and every event it sent or had rejected.

Three tables in the state schema, next to the delivered state:
- ``_eb_runs``: one row per sync per run (status, counts, exit code, dbt invocation id, who ran
  it and what was asked of it: a full refresh, a mass removal let through, a rebaseline), and
  one row per ``reset`` (status ``reset``: how many delivered rows it forgot);
- ``_eb_events``: one row per entry sent or rejected (key, op, event ids, AWS's answer,
  attempts, the detail unless ``history_detail`` is off);
- ``_eb_alert_status``: what each alert last said about each sync (one notification per change).

Events are written with each chunk's acks, in the same transaction, so the history agrees
with the state. Rows older than ``history_retention_days`` are pruned at the end of a run.

Columns added since a table was first made (``RUN_COLUMNS`` past ``RUN_COLUMNS_V1``, the
columns of 0.1.0) are added in place by the first run that writes the history (one
``history_add_column_sql`` per column, a dispatched macro: Spark's is ``ADD COLUMNS``);
readers of a table not yet migrated (``runs``, ``inspect``) read the columns it has.
The package's dbt sources (``models/eventbridge_history.yml``) document these tables.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from dbt_eventbridge.errors import WarehouseError
from dbt_eventbridge.model import Outcome, key_text
from dbt_eventbridge.warehouse.engines.base import EventWriter
from dbt_eventbridge.warehouse.project import DbtProject

RUNS = "_eb_runs"
EVENTS = "_eb_events"
ALERT_STATUS = "_eb_alert_status"

# The runs table of 0.1.0 (and of 0.2.0 before the audit columns): recognised by exactly
# these columns when it predates _eb_objects, and migrated to RUN_COLUMNS.
RUN_COLUMNS_V1: list[tuple[str, str]] = [
    ("run_id", "string"), ("sync_name", "string"), ("model", "string"), ("event_bus", "string"),
    ("status", "string"), ("exit_code", "int"), ("started_at", "timestamp"), ("finished_at", "timestamp"),
    ("seconds", "float"), ("planned_added", "bigint"), ("planned_changed", "bigint"),
    ("planned_removed", "bigint"), ("sent_added", "bigint"), ("sent_changed", "bigint"),
    ("sent_removed", "bigint"), ("rejected", "bigint"), ("invalid_keys", "bigint"),
    ("not_triggered", "bigint"), ("requests", "bigint"), ("retried_entries", "bigint"),
    ("message", "string"), ("dbt_invocation_id", "string")]
# Added after 0.1.0, in this order (new columns go at the end: a migration appends them).
# action: reset | rebaseline | full-refresh | allow-mass-removal (comma-separated), null for
# an ordinary run; run_by: the OS user; rebaselined / initial_skipped: rows recorded as
# delivered without an event (besides not_triggered, the trigger being off); forgotten: the
# delivered rows a reset forgot; blocked_by: lock | model_failed | mass_removal.
RUN_COLUMNS_ADDED: list[tuple[str, str]] = [
    ("action", "string"), ("run_by", "string"), ("rebaselined", "bigint"), ("initial_skipped", "bigint"),
    ("forgotten", "bigint"), ("blocked_by", "string")]
RUN_COLUMNS: list[tuple[str, str]] = RUN_COLUMNS_V1 + RUN_COLUMNS_ADDED
# One event: everything after run_id and sync_name is what EventRow holds, in this order.
EVENT_COLUMNS: list[tuple[str, str]] = [
    ("run_id", "string"), ("sync_name", "string"), ("event_key", "string"), ("op", "string"),
    ("event_id", "string"), ("source", "string"), ("detail_type", "string"), ("size_bytes", "int"),
    ("aws_event_id", "string"), ("error_code", "string"), ("error_message", "string"), ("attempts", "int"),
    ("sent_at", "timestamp"), ("detail", "string")]
ALERT_COLUMNS: list[tuple[str, str]] = [
    ("alert_name", "string"), ("sync_name", "string"), ("trigger_name", "string"), ("status", "string"),
    ("changed_at", "timestamp"), ("run_id", "string")]

# error_message of an accepted event that a v2 bus answered DEDUPLICATED (its SuccessCode):
# it had the event already, with the EventId recorded; nothing was delivered again.
DEDUPLICATED = "DEDUPLICATED"
EVENT_FIELDS = [c for c, _ in EVENT_COLUMNS[2:]]  # what an EventBuffer holds, per event
# What the runs and inspect commands show.
_RECENT_RUN_COLUMNS = ["run_id", "sync_name", "model", "status", "exit_code", "started_at", "finished_at", "seconds",
                       "planned_added", "planned_changed", "planned_removed", "sent_added", "sent_changed",
                       "sent_removed", "rejected", "invalid_keys", "not_triggered", "rebaselined", "initial_skipped",
                       "forgotten", "action", "run_by", "blocked_by", "message", "dbt_invocation_id"]
_RUN_EVENT_COLUMNS = ["sync_name", "event_key", "op", "event_id", "detail_type", "size_bytes", "aws_event_id",
                      "error_code", "error_message", "attempts", "sent_at"]
_KEY_HISTORY_COLUMNS = ["run_id", "event_key", "op", "event_id", "source", "detail_type", "size_bytes", "aws_event_id",
                        "error_code", "error_message", "attempts", "sent_at", "detail"]


def key_json(key: Any) -> str:
    """The stored form of a key: compact JSON in key-column order (as event ids use it)."""
    return key_text(key)


def timestamp(moment: dt.datetime | None = None) -> str:
    """UTC, without an offset: the history's timestamps are plain timestamps in UTC."""
    moment = moment or dt.datetime.now(dt.UTC)
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment.isoformat(sep=" ", timespec="microseconds")


def parse_time(value: Any) -> dt.datetime | None:
    """A timestamp read back (a datetime or text, as adapters differ), as aware UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    return None


@dataclass
class History:
    """The history tables of one state schema, on an open project connection."""

    project: DbtProject
    schema: str
    run_id: str = ""
    detail: bool = True
    retention_days: int = 30
    run_by: str | None = None  # who runs this process (the OS user), on every row it writes

    def __post_init__(self) -> None:
        self._writer: EventWriter | None = None
        self.runs = self.project.state_relation(self.schema, RUNS)
        self.events = self.project.state_relation(self.schema, EVENTS)
        self.alerts = self.project.state_relation(self.schema, ALERT_STATUS)
        self._ready: int | None = None  # project.rollbacks when the tables were last made sure of
        self._written: set[str] = set()  # syncs with a row of this run in _eb_runs
        self._run_columns: set[str] | None = None  # the columns _eb_runs has (read once)
        self._migrated = False  # this run tried to bring _eb_runs up to RUN_COLUMNS

    # -- writing -------------------------------------------------------------------------

    def ensure(self) -> None:
        """Create the schema and tables if missing (once per run, and again after a rollback,
        which may have undone their creation)."""
        if self._ready == self.project.rollbacks:
            return
        from dbt_eventbridge.warehouse.tables import Ownership

        owned = Ownership(self.project, self.schema)
        owned.ensure()
        for relation, columns, kind in ((self.runs, RUN_COLUMNS, "runs"), (self.events, EVENT_COLUMNS, "events"),
                                        (self.alerts, ALERT_COLUMNS, "alert_status")):
            earlier = [[c for c, _ in RUN_COLUMNS_V1]] if relation is self.runs else []
            existed = owned.ensure_table(relation, kind, self.project.render_macro(
                "history_table_sql", relation=relation, columns=[list(c) for c in columns]), [c for c, _ in columns],
                earlier)
            if relation is self.runs and not existed:
                self._run_columns = {c for c, _ in RUN_COLUMNS}
        self._ready = self.project.rollbacks
        if not self._migrated:
            # Once per run (not again after a rollback): a warehouse that refuses the ALTER
            # (a role without the privilege) gets one warning, and the run records what the
            # table has room for.
            self._migrated = True
            self._migrate_runs()

    def _columns_of_runs(self, fresh: bool = False) -> set[str]:
        if self._run_columns is None or fresh:
            self._run_columns = {c.lower() for c, _ in self.project.relation_columns(self.runs)}
        return self._run_columns

    def _migrate_runs(self) -> None:
        """Add the columns an earlier version's _eb_runs lacks, one statement each (at the end,
        where a new column goes on every engine): a run that stops between two leaves a table
        the next run completes, and one that finds a column another run just added goes on."""
        have = self._columns_of_runs()
        missing = [(name, kind) for name, kind in RUN_COLUMNS if name not in have]
        for name, kind in missing:
            try:
                self.project.execute(self.project.render_macro("history_add_column_sql", relation=self.runs,
                                                               name=name, kind=kind))
            except WarehouseError as e:
                if name not in self._columns_of_runs(fresh=True):
                    raise WarehouseError(
                        f"could not add the column {name} to {self.runs} (made by an earlier version): {e}",
                        fix="Let the warehouse role of this target alter the table; until then, runs are "
                            "recorded without who ran them and what was asked of them") from None
        if missing:
            self._columns_of_runs(fresh=True)

    def sync_started(self, sync: str, model: str, event_bus: str | None, started_at: str,
                     invocation_id: str | None, action: str | None = None) -> None:
        """A 'running' row: a run that is killed stays visible (and is marked interrupted later)."""
        self.ensure()
        row = {"run_id": self.run_id, "sync_name": sync.lower(), "model": model, "event_bus": event_bus,
               "status": "running", "started_at": started_at, "dbt_invocation_id": invocation_id,
               "action": action, "run_by": self.run_by}
        self._replace_run(sync.lower(), row)

    def sync_finished(self, result: Any, invocation_id: str | None) -> None:
        """The final row of one sync in this run (a SyncResult)."""
        self.ensure()
        r = result
        row = {"run_id": self.run_id, "sync_name": r.sync.lower(), "model": r.model, "event_bus": r.event_bus,
               "status": r.status, "exit_code": r.exit_code, "started_at": r.started_at or timestamp(),
               "finished_at": r.finished_at or timestamp(), "seconds": round(r.seconds, 3),
               "rejected": r.rejected, "invalid_keys": r.invalid, "not_triggered": r.not_triggered,
               "requests": r.requests, "retried_entries": r.retried_entries, "message": r.message,
               "dbt_invocation_id": invocation_id, "action": r.action, "run_by": self.run_by,
               "rebaselined": r.rebaselined, "initial_skipped": r.initial_skipped, "forgotten": 0,
               "blocked_by": r.blocked_by}
        for op in ("added", "changed", "removed"):
            row[f"planned_{op}"] = r.planned.get(op, 0)
            row[f"sent_{op}"] = r.sent.get(op, 0)
        self._replace_run(r.sync.lower(), row)

    def reset_recorded(self, sync: str, model: str, event_bus: str | None, forgotten: int, started_at: str,
                       finished_at: str, seconds: float) -> None:
        """A reset, as a row of its own (status ``reset``): who forgot how many delivered rows,
        and when. Not a sync run: alerts never take it for a success."""
        self.ensure()
        row: dict[str, Any] = {
            "run_id": self.run_id, "sync_name": sync.lower(), "model": model, "event_bus": event_bus,
            "status": "reset", "exit_code": 0, "started_at": started_at, "finished_at": finished_at,
            "seconds": round(seconds, 3), "action": "reset", "run_by": self.run_by, "forgotten": forgotten,
            "message": f"forgot {forgotten} delivered row(s): the next run sends every current row as added"}
        for column, kind in RUN_COLUMNS:
            if kind == "bigint":
                row.setdefault(column, 0)
        self._replace_run(sync.lower(), row)

    def _replace_run(self, sync: str, row: dict[str, Any]) -> None:
        sql = self.project.sql
        with self.project.transaction():
            if sync in self._written:  # (a run's first row of a sync replaces nothing)
                self.project.execute(sql.delete_where(self.runs, run_id=self.run_id, sync_name=sync))
            have = self._columns_of_runs()  # (all of RUN_COLUMNS, unless the migration was refused)
            self.project.execute(sql.insert_values(self.runs, {c: row.get(c) for c, _ in RUN_COLUMNS if c in have},
                                                   dict(RUN_COLUMNS)))
        self._written.add(sync)

    def mark_interrupted(self, sync: str) -> None:
        """Rows of earlier runs of this sync left 'running' by a run that died."""
        self.ensure()
        self.project.execute(self.project.sql.mark_interrupted(self.runs, sync.lower(), self.run_id))

    def add_events(self, sync: str, events: EventBuffer) -> None:
        """Record a chunk's events (call inside the chunk's journal transaction)."""
        if not len(events):
            return
        self.ensure()
        sync = sync.lower()
        cols = events.cols if self.detail else {**events.cols, "detail": [None] * len(events)}
        if self._writer is None:
            self._writer = self.project.engine.event_writer(self.project, self.events, EVENT_COLUMNS)
        self._writer.add((self.run_id, sync), cols)

    def flush(self) -> None:
        """Wait for the events still being written (DuckDB writes them in the background)."""
        if self._writer is not None:
            self._writer.flush()

    def prune(self, now: dt.datetime | None = None) -> None:
        if not self.retention_days:
            return
        self.ensure()
        now = now or dt.datetime.now(dt.UTC)
        cutoff = timestamp(now - dt.timedelta(days=self.retention_days))
        with self.project.transaction():
            self.project.execute(self.project.sql.delete_before(self.events, "sent_at", cutoff))
            self.project.execute(self.project.sql.delete_before(self.runs, "started_at", cutoff))

    # -- reading (the runs and inspect commands, alerts) ----------------------------------

    def exists(self) -> bool:
        from dbt_eventbridge.warehouse.tables import Ownership

        return Ownership(self.project, self.schema).readable(self.runs, [c for c, _ in RUN_COLUMNS],
                                                             [[c for c, _ in RUN_COLUMNS_V1]])

    def _run_records(self, columns: list[str], make_sql: Any) -> list[dict[str, Any]]:
        """Rows of _eb_runs with these columns; a column an earlier version's table lacks (not
        migrated yet: no sync has run since the upgrade) reads as null."""
        have = self._columns_of_runs()
        rows = self.query(make_sql([c for c in columns if c in have]))
        return [{c: r.get(c) for c in columns} for r in rows]

    def query(self, sql: str) -> list[dict[str, Any]]:
        return self.project.records(sql)

    def recent_runs(self, limit: int = 20, sync: str | None = None) -> list[dict[str, Any]]:
        return self._run_records(_RECENT_RUN_COLUMNS, lambda cols: self.project.sql.recent_runs(
            self.runs, cols, sync.lower() if sync else None, limit))

    def find_run_ids(self, prefix: str) -> list[str]:
        rows = self.project.execute(self.project.sql.run_ids_like(self.runs, prefix), fetch=True)
        return sorted(str(r[0]) for r in rows)

    def run_rows(self, run_id: str) -> list[dict[str, Any]]:
        return self._run_records([c for c, _ in RUN_COLUMNS],
                                 lambda cols: self.project.sql.run_rows(self.runs, cols, run_id))

    def event_counts(self, run_id: str) -> list[dict[str, Any]]:
        return self.query(self.project.sql.event_counts(self.events, run_id))

    def run_events(self, run_id: str, *, failed_only: bool = False, limit: int = 50, accepted_only: bool = False,
                   sync: str | None = None) -> list[dict[str, Any]]:
        return self.query(self.project.sql.run_events(self.events, _RUN_EVENT_COLUMNS, run_id, failed_only, limit,
                                                      accepted_only=accepted_only,
                                                      sync=sync.lower() if sync else None))

    def timeline(self, run_id: str) -> list[dict[str, Any]]:
        """Events per second of each sync of one run, accepted and rejected, counted in the warehouse."""
        second = self.project.render_macro("history_second", column="sent_at")
        return self.query(self.project.sql.timeline(self.events, run_id, second))

    def key_names(self, sync: str) -> list[str]:
        rows = self.project.execute(self.project.sql.any_event_key(self.events, sync.lower()), fetch=True)
        return list(json.loads(rows[0][0])) if rows else []

    def key_history(self, sync: str, keys: list[str], limit: int = 200) -> list[dict[str, Any]]:
        return self.query(self.project.sql.key_history(self.events, _KEY_HISTORY_COLUMNS, sync.lower(), keys, limit))

    def last_success(self, sync: str) -> dt.datetime | None:
        rows = self.project.execute(self.project.sql.last_success(self.runs, sync.lower()), fetch=True)
        return parse_time(rows[0][0]) if rows else None

    def first_run(self, sync: str) -> dt.datetime | None:
        rows = self.project.execute(self.project.sql.first_run(self.runs, sync.lower()), fetch=True)
        return parse_time(rows[0][0]) if rows else None


class WarehouseAlertStore:
    """Alert status per (alert, sync, trigger), kept in ``_eb_alert_status``."""

    def __init__(self, history: History) -> None:
        self.history = history

    def load(self) -> dict[tuple[str, str, str], str]:
        h = self.history
        h.ensure()
        rows = h.project.execute(h.project.sql.select(h.alerts, ["alert_name", "sync_name", "trigger_name", "status"]),
                                 fetch=True)
        return {(str(a), str(s), str(t)): str(st) for a, s, t, st in rows}

    def save(self, changes: dict[tuple[str, str, str], str]) -> None:
        h = self.history
        if not changes:
            return
        h.ensure()
        now = timestamp()
        sql = h.project.sql
        with h.project.transaction():
            for (alert, sync, trigger), status in changes.items():
                h.project.execute(sql.delete_where(h.alerts, alert_name=alert, sync_name=sync, trigger_name=trigger))
                h.project.execute(sql.insert_values(h.alerts, {
                    "alert_name": alert, "sync_name": sync, "trigger_name": trigger, "status": status,
                    "changed_at": now, "run_id": h.run_id}, dict(ALERT_COLUMNS)))


class EventBuffer:
    """The events of one chunk, column by column (thousands are added per second, and the
    warehouse reads them back as columns). Picklable: --workers processes send theirs."""

    __slots__ = ("cols",)

    def __init__(self) -> None:
        self.cols: dict[str, list[Any]] = {f: [] for f in EVENT_FIELDS}

    def __len__(self) -> int:
        return len(self.cols["op"])

    def __getstate__(self) -> dict[str, list[Any]]:
        return self.cols

    def __setstate__(self, cols: dict[str, list[Any]]) -> None:
        self.cols = cols

    def add_outcome(self, out: Outcome, detail: bool = True) -> None:
        """A publisher Outcome: accepted entries with AWS's EventId, rejected ones with its
        error. One time for the whole group: they were answered together."""
        at = timestamp()
        attempts = out.attempts
        c = self.cols
        for entries, ids, codes, messages in (
                ([e for e, _ in out.accepted], [a for _, a in out.accepted], None, None),
                ([e for e, _ in out.rejected], None, [r.code for _, r in out.rejected],
                 [r.reason for _, r in out.rejected])):
            n = len(entries)
            if not n:
                continue
            none = [None] * n
            c["event_key"] += [e.key_text or key_json(e.key) for e in entries]
            c["op"] += [e.op for e in entries]
            c["event_id"] += [e.event_id or None for e in entries]
            c["source"] += [e.entry.get("Source") for e in entries]
            c["detail_type"] += [e.entry.get("DetailType") for e in entries]
            c["size_bytes"] += [e.size for e in entries]
            c["aws_event_id"] += ids if ids is not None else none
            c["error_code"] += codes if codes is not None else none
            if messages is None and out.deduplicated:  # a v2 bus's SuccessCode, for the accepted
                c["error_message"] += [DEDUPLICATED if e.seq in out.deduplicated else None for e in entries]
            else:
                c["error_message"] += messages if messages is not None else none
            c["attempts"] += [attempts.get(e.seq, 1) for e in entries] if attempts else [1] * n
            c["sent_at"] += [at] * n
            c["detail"] += [e.entry.get("Detail") for e in entries] if detail else none

    def add_unrendered(self, key: Any, op: str, code: str, reason: str) -> None:
        """A row that could not be rendered into an entry (bad data for its template): never sent."""
        row = {"event_key": key_json(key), "op": op, "error_code": code, "error_message": reason, "attempts": 0,
               "sent_at": timestamp()}
        for f in EVENT_FIELDS:
            self.cols[f].append(row.get(f))

    def extend(self, other: EventBuffer) -> None:
        for f in EVENT_FIELDS:
            self.cols[f] += other.cols[f]
