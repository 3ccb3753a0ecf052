"""The CLI's console: text for people (a one-line progress display on a terminal) or
JSON lines shaped like dbt's own JSON logs, for machines."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import click

from dbt_eventbridge.jsonvalues import to_json_value

if TYPE_CHECKING:
    from dbt_eventbridge.model import Entry
    from dbt_eventbridge.run.console import Progress
    from dbt_eventbridge.run.results import SyncResult

REJECTIONS_SHOWN = 5  # per sync; the result file has them all (up to max_rejections_reported)


def resolve_format(value: str | None) -> str:
    return value or os.environ.get("DBT_EVENTBRIDGE_LOG_FORMAT") or "text"


def json_value(value: Any) -> Any:
    """What json.dumps cannot write itself: a decimal as a number (not a string), a time in
    ISO 8601 with its zone (the history's plain timestamps are UTC), anything else as text."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime):
        return (value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def json_line(level: str, message: str, data: Any = None) -> None:
    """One log record, shaped like dbt's JSON logs: {"info": {level, msg, ts}, "data": ...}."""
    label = {"summary_error": "error", "summary": "info", "sample": "debug", "warn": "warn"}.get(level, level)
    record: dict[str, Any] = {"info": {"name": level, "level": label, "msg": message,
                                       "ts": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")}}
    if data is not None:
        record["data"] = data
    click.echo(json.dumps(record, default=json_value, ensure_ascii=False))


def terminal_width() -> int:
    return shutil.get_terminal_size((100, 20)).columns


class CliConsole:
    """What a run shows, as text or JSON lines (see :class:`dbt_eventbridge.run.console.Console`)."""

    PROGRESS_INTERVAL = 0.25  # seconds between progress redraws

    def __init__(self, quiet: bool, progress: bool | None = None, log_format_value: str | None = "text") -> None:
        self.quiet = quiet
        self.json = resolve_format(log_format_value) == "json"
        # Progress only on a terminal: CI logs and pipes get the summary lines alone.
        self.show_progress = (not quiet and sys.stderr.isatty() and not self.json) if progress is None else progress
        self._shown = 0
        self._last = 0.0

    # The Console protocol
    def info(self, message: str) -> None:
        self.message("info", message)

    def warning(self, message: str) -> None:
        self.message("warn", message)

    def error(self, message: str) -> None:
        self.message("error", message)

    def progress(self, progress: Progress) -> None:
        if self.json or not self.show_progress:
            return
        now = time.monotonic()
        if not progress.done and now - self._last < self.PROGRESS_INTERVAL:
            return
        self._last = now
        line = progress.line()[:max(20, terminal_width() - 1)]
        sys.stderr.write("\r" + line + " " * max(0, self._shown - len(line)))
        sys.stderr.flush()
        self._shown = len(line)
        if progress.done:
            self._clear()

    def sync_finished(self, result: SyncResult, samples: list[Entry]) -> None:
        failed = result.status in ("error", "skipped", "blocked")
        # In JSON, each line carries as fields what its text says: the counts, the entry, the key.
        self.message("summary_error" if failed else "summary", result.summary_line(), result.log_fields())
        for e in samples:
            if e.change is not None:  # a keyed preview (--key): the change, then its entry
                self._preview(e)
                continue
            entry = to_json_value(e.entry)
            self.message("sample", json.dumps(entry, ensure_ascii=False), {"sync": result.sync, "entry": entry})
        for rej in result.rejections[:REJECTIONS_SHOWN]:
            self.message("warn", f"{result.sync}: rejected {rej['op']} key {json.dumps(rej['key'])}: "
                         f"{rej['code']}: {rej['reason']}", {"sync": result.sync, **rej})
        if result.rejected > REJECTIONS_SHOWN:
            more = result.rejected - REJECTIONS_SHOWN
            self.message("warn", f"{result.sync}: {more} more rejected row(s) in the result file",
                         {"sync": result.sync, "more_rejected": more})

    def _preview(self, e: Entry) -> None:
        assert e.change is not None
        data = {"op": e.op, "key": to_json_value(e.key), "event_id": e.event_id,
                "changed_columns": e.change.changed_columns, "old_row": to_json_value(e.change.old_row),
                "entry": to_json_value(e.entry)}
        if self.json:
            self.message("sample", f"{e.op} key {json.dumps(data['key'])}", data)
            return
        lines = [f"{e.op} key {json.dumps(data['key'], ensure_ascii=False)} (event id {e.event_id})"]
        if e.op == "changed":
            lines.append(f"    changed columns: {', '.join(e.change.changed_columns) or '-'}")
        if e.change.old_row is not None:
            lines.append(f"    old row: {json.dumps(data['old_row'], ensure_ascii=False)}")
        lines.append("    entry: " + json.dumps(data["entry"], ensure_ascii=False, indent=2).replace("\n", "\n    "))
        self.message("preview", "\n".join(lines))

    # Lines of the CLI's own
    def message(self, level: str, message: str, data: Any = None) -> None:
        """One line at a level: error, warn, info, summary, summary_error (its own label), sample."""
        if self.json:
            if not (self.quiet and level in ("info", "summary", "sample")):
                json_line(level, message, data)
            return
        self._clear()
        if level in ("error", "warn"):
            click.echo(f"{'Error' if level == 'error' else 'Warning'}: {message}", err=True)
        elif level == "summary_error":  # the line has its own label (ERROR, SKIPPED, BLOCKED)
            click.echo(message, err=True)
        elif not self.quiet:
            click.echo(f"  sample entry: {message}" if level == "sample" else f"  {message}" if level == "preview"
                       else message)

    def _clear(self) -> None:
        if self._shown:
            sys.stderr.write("\r" + " " * self._shown + "\r")
            sys.stderr.flush()
            self._shown = 0
