"""What every engine does through dbt's adapter interface alone: the default engine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dbt_eventbridge.warehouse.engines.statements import Statements

Rows = list[tuple[Any, ...]]
EventColumns = Sequence[tuple[str, str]]  # (name, kind): kind is string, int, bigint, float or timestamp

VALUES_ROWS = 100  # rows per INSERT ... VALUES statement on engines without a faster path


class Engine:
    # The statements on our own tables (see statements.py); an engine whose dialect differs
    # names a subclass here.
    statements_class: type[Statements] = Statements

    def __init__(self, name: str, *, backslash_escapes: bool = False) -> None:
        self.name = name
        # BigQuery, Snowflake, Spark and Databricks read a backslash in a string literal as an escape.
        self.backslash_escapes = backslash_escapes
        self.sql = self.statements_class(self.literal)

    # -- reading a large result -------------------------------------------------------
    # Whether a read needs no transaction of ours (and no dbt query events).
    streams_outside_transaction = False

    def open_stream(self, adapter: Any, sql: str, batch_size: int) -> Any:
        """A cursor over ``sql`` whose rows are fetched ``batch_size`` at a time."""
        _, cursor = adapter.connections.add_select_query(sql)
        return cursor

    def close_stream(self, cursor: Any) -> None:
        """Most adapters hand out the connection's own cursor, which stays open."""

    def close_cursor(self, cursor: Any) -> None:
        """After a statement on a fresh cursor of the connection's handle."""

    # -- errors -------------------------------------------------------------------------
    def memory_fix(self, e: BaseException) -> str | None:
        """The fix for an error that says the engine ran out of memory (None: not that error)."""
        return None

    def lock_holder(self, message: str) -> str | None:
        """Who holds the warehouse, if the error says it is held by another process."""
        return None

    # -- transactions -------------------------------------------------------------------
    def begin(self, adapter: Any) -> None:
        """Open a transaction on the thread's connection (the server must really be in one)."""
        adapter.connections.begin()

    def commit(self, adapter: Any) -> None:
        adapter.connections.commit()

    # -- literals -----------------------------------------------------------------------
    def string_literal(self, text: str) -> str:
        if self.backslash_escapes:
            return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return "'" + text.replace("'", "''") + "'"

    def literal(self, value: Any) -> str:
        if value is None:
            return "null"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return repr(value)
        return self.string_literal(str(value))

    # -- the run history's events -------------------------------------------------------
    def event_writer(self, project: Any, table: Any, columns: EventColumns) -> EventWriter:
        return ValuesEventWriter(self, project, table, columns)


class EventWriter:
    """Inserts a chunk's events into the history; ``flush`` waits for any still being written."""

    def add(self, fixed: tuple[Any, ...], cols: dict[str, list[Any]]) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        pass


class ValuesEventWriter(EventWriter):
    """Plain INSERT ... VALUES, a hundred rows a statement: every engine takes it."""

    def __init__(self, engine: Engine, project: Any, table: Any, columns: EventColumns) -> None:
        self.engine = engine
        self.project = project
        self.table = table
        self.columns = columns

    def add(self, fixed: tuple[Any, ...], cols: dict[str, list[Any]]) -> None:
        names = ", ".join(c for c, _ in self.columns)
        fields = [c for c, _ in self.columns[len(fixed):]]
        rows = list(zip(*(cols[f] for f in fields)))
        for i in range(0, len(rows), VALUES_ROWS):
            values = ", ".join("(" + ", ".join(self.engine.literal(v) for v in fixed + tuple(r)) + ")"
                               for r in rows[i:i + VALUES_ROWS])
            self.project.execute(f"insert into {self.table} ({names}) values {values}")
