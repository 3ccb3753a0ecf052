"""What every engine does through dbt's adapter interface alone: the default engine."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from dbt_eventbridge.warehouse.engines.statements import Statements

Rows = list[tuple[Any, ...]]
EventColumns = Sequence[tuple[str, str]]  # (name, kind): kind is string, int, bigint, float or timestamp

# A statement that may create, drop or rename (alter) a table. Anchored at the start: a row
# value containing "create" in an INSERT is not DDL.
DDL = re.compile(r"\s*(create|drop|alter)\b", re.IGNORECASE)

VALUES_ROWS = 100  # rows per INSERT ... VALUES statement on engines without a faster path
# ... and bytes of SQL: BigQuery refuses a query over 1 MB, Snowflake a statement over 1 MB,
# and an event's detail alone may be 256 KB.
VALUES_BYTES = 500_000


class Engine:
    # The statements on our own tables (see statements.py); an engine whose dialect differs
    # names a subclass here.
    statements_class: type[Statements] = Statements

    def __init__(self, name: str, *, backslash_escapes: bool = False) -> None:
        self.name = name
        # BigQuery, Snowflake, Spark and Databricks read a backslash in a string literal as an escape.
        self.backslash_escapes = backslash_escapes
        self.sql = self.statements_class(self.literal)

    # -- running a statement ----------------------------------------------------------
    def run(self, adapter: Any, sql: str, fetch: bool, params: Any) -> tuple[list[str], Rows]:
        """One statement on the connection's own DB-API cursor: (lower-cased column names, rows)."""
        cursor = adapter.connections.get_thread_connection().handle.cursor()
        try:
            if params is None:
                cursor.execute(sql)
            else:
                cursor.execute(sql, params)
            if not fetch or cursor.description is None:
                return [], []
            return _names(cursor.description), [tuple(r) for r in cursor.fetchall()]
        finally:
            self.close_cursor(cursor)

    def close_cursor(self, cursor: Any) -> None:
        """After a statement on a fresh cursor of the connection's handle."""

    # -- reading a large result -------------------------------------------------------
    # Whether a read needs no transaction of ours (and no dbt query events).
    streams_outside_transaction = False

    def stream(self, adapter: Any, sql: str, batch_size: int) -> Iterator[tuple[list[str], Rows]]:
        """(column names as the driver gives them, rows) batches of at most ``batch_size`` rows;
        the result is never held whole in Python."""
        cursor = self.open_stream(adapter, sql, batch_size)
        rows = cursor.fetchmany(batch_size)
        # After the first fetch: a server-side cursor (psycopg2's named one) has no
        # description before it.
        names = [str(d[0]) for d in cursor.description]
        while rows:
            yield names, rows if isinstance(rows, list) else list(rows)
            rows = cursor.fetchmany(batch_size)
        self.close_stream(cursor)

    def open_stream(self, adapter: Any, sql: str, batch_size: int) -> Any:
        """A cursor over ``sql`` whose rows are fetched ``batch_size`` at a time."""
        _, cursor = adapter.connections.add_select_query(sql)
        return cursor

    def close_stream(self, cursor: Any) -> None:
        """Most adapters hand out the connection's own cursor, which stays open."""

    # -- listing ------------------------------------------------------------------------
    def list_tables(self, adapter: Any, schema_relation: Any) -> set[str]:
        """The lower-cased names of a schema's tables (none when it does not exist). An engine
        may also finish here what a stopped process left half done in the schema: every run
        lists a schema before it reads or writes anything in it."""
        return {str(r.identifier).lower() for r in adapter.list_relations_without_caching(schema_relation)}

    def relation_names(self, adapter: Any, schema_relation: Any) -> list[str] | None:
        """The names of a schema's tables and views as the warehouse stores them, where a
        query of ours lists them without side effects; None: dbt's own listing is used."""
        return None

    # -- errors -------------------------------------------------------------------------
    def memory_fix(self, e: BaseException) -> str | None:
        """The fix for an error that says the engine ran out of memory (None: not that error)."""
        return None

    def lock_holder(self, message: str) -> str | None:
        """Who holds the warehouse, if the error says it is held by another process."""
        return None

    # -- transactions -------------------------------------------------------------------
    # Whether a transaction of ours is atomic with CREATE, DROP and RENAME inside it (DuckDB,
    # PostgreSQL, Redshift). Where it is not (Snowflake commits before and after each DDL
    # statement; BigQuery and Spark have no multi-statement transactions our statements can
    # use), a transaction is atomic for DML alone, or not at all, and a crash between two
    # statements leaves the steps before it done: see README "Guarantees per warehouse".
    transactional_ddl = True

    def begin(self, adapter: Any) -> None:
        """Open a transaction on the thread's connection (the server must really be in one)."""
        adapter.connections.begin()

    def commit(self, adapter: Any) -> None:
        adapter.connections.commit()

    def rollback(self, adapter: Any) -> None:
        adapter.connections.rollback_if_open()

    # -- temporary tables ---------------------------------------------------------------
    def temp_relation(self, project: Any, schema: str, name: str) -> Any:
        """Where a dry run's plan goes: a temporary table of the session, named alone."""
        return name

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


def _names(description: Sequence[Sequence[Any]]) -> list[str]:
    return [str(d[0]).lower() for d in description]


class SqlTransactions(Engine):
    """BEGIN, COMMIT and ROLLBACK sent as SQL on the connection's own cursor, with dbt's
    ``transaction_open`` flag kept in step (so dbt's own macros see the transaction).

    For DuckDB, this skips dbt's add_query and its query events (a sync opens about 50
    transactions: a no-change sync of one model cost 0.17 s of CPU less, cProfile on
    integration_project); for Snowflake and Redshift, whose adapters send nothing (or may
    not), it is what makes the server really be in a transaction."""

    def begin(self, adapter: Any) -> None:
        self._send(adapter, "begin", True)

    def commit(self, adapter: Any) -> None:
        self._send(adapter, "commit", False)

    def rollback(self, adapter: Any) -> None:
        if adapter.connections.get_thread_connection().transaction_open:
            self._send(adapter, "rollback", False)

    @staticmethod
    def _send(adapter: Any, sql: str, open_after: bool) -> None:
        connection = adapter.connections.get_thread_connection()
        if not open_after and sql == "rollback":
            connection.transaction_open = False  # ended, even if the ROLLBACK itself fails
        connection.handle.cursor().execute(sql)
        connection.transaction_open = open_after


class NoTransactions(Engine):
    """An engine without transactions our statements can use (BigQuery, Spark): nothing is
    sent, and dbt's flag never says one is open. Each statement stands on its own."""

    transactional_ddl = False

    def begin(self, adapter: Any) -> None:
        pass

    def commit(self, adapter: Any) -> None:
        pass

    def rollback(self, adapter: Any) -> None:
        pass


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
        head = f"insert into {self.table} ({', '.join(c for c, _ in self.columns)}) values "
        fields = [c for c, _ in self.columns[len(fixed):]]
        kinds = [k for _, k in self.columns]
        typed = self.engine.sql.typed
        batch: list[str] = []
        size = 0
        for r in zip(*(cols[f] for f in fields)):
            row = "(" + ", ".join(typed(v, k) for v, k in zip(fixed + tuple(r), kinds)) + ")"
            if batch and (len(batch) >= VALUES_ROWS or size + len(row) > VALUES_BYTES):
                self.project.execute(head + ", ".join(batch))
                batch, size = [], 0
            batch.append(row)
            size += len(row) + 2
        if batch:
            self.project.execute(head + ", ".join(batch))
