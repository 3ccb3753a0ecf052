"""DuckDB: reads on its own cursor without a transaction, history written in the background."""

from __future__ import annotations

import json
import queue
import re
import threading
from typing import Any

from dbt_eventbridge.errors import WarehouseError
from dbt_eventbridge.warehouse.engines.base import EventColumns, EventWriter, SqlTransactions

_TYPES = {"string": "VARCHAR", "int": "INTEGER", "bigint": "BIGINT", "float": "DOUBLE", "timestamp": "TIMESTAMP"}


class DuckDBEngine(SqlTransactions):
    # A read on DuckDB's own cursor needs no transaction (it auto-commits) and no dbt
    # query events: both cost more than reading a chunk of the plan.
    streams_outside_transaction = True

    def __init__(self) -> None:
        super().__init__("duckdb")

    def open_stream(self, adapter: Any, sql: str, batch_size: int) -> Any:
        cursor = adapter.connections.get_thread_connection().handle.cursor()
        cursor.execute(sql)
        return cursor

    def list_tables(self, adapter: Any, schema_relation: Any) -> set[str]:
        """The catalog, read directly: dbt-duckdb's list_relations_without_caching (the same
        query) costs about 10 ms of dbt macro rendering and events; this, under 1 ms. A run
        lists the state schema once per sync (taking the lock sees what others made)."""
        return {n.lower() for n in self.relation_names(adapter, schema_relation)}

    def relation_names(self, adapter: Any, schema_relation: Any) -> list[str]:
        where = f"lower(table_schema) = {self.literal(str(schema_relation.schema).lower())}"
        if schema_relation.database:
            where += f" and lower(table_catalog) = {self.literal(str(schema_relation.database).lower())}"
        sql = f"select table_name from system.information_schema.tables where {where}"
        _, rows = self.run(adapter, sql, True, None)
        return [str(r[0]) for r in rows]

    def memory_fix(self, e: BaseException) -> str | None:
        if "Out of Memory" not in str(e):
            return None
        return ("DuckDB needed more memory than duckdb_memory_limit allows; raise it (vars.eventbridge."
                "duckdb_memory_limit or DBT_EVENTBRIDGE_DUCKDB_MEMORY_LIMIT, e.g. 1GB), or set 0 to use the "
                "profile's memory_limit")

    def lock_holder(self, message: str) -> str | None:
        """DuckDB's "Could not set lock on file ... Conflicting lock is held in <program> (PID n)"."""
        if "Could not set lock on file" not in message:
            return None
        found = re.search(r"Conflicting lock is held in (.*?\(PID \d+\))", message)
        return found.group(1) if found else "another process"

    def event_writer(self, project: Any, table: Any, columns: EventColumns) -> EventWriter:
        return _JsonEventWriter(project, table, columns)


class _JsonEventWriter(EventWriter):
    """One JSON parameter, column by column, instead of a VALUES list: DuckDB parses a long
    VALUES list at about 150 µs a row, and unnests these columns at about 5 µs."""

    def __init__(self, project: Any, table: Any, columns: EventColumns) -> None:
        self.project = project
        self.table = table
        self.columns = columns
        self._background: _Background | None = None
        self._tried = False

    def add(self, fixed: tuple[Any, ...], cols: dict[str, list[Any]]) -> None:
        rest = self.columns[len(fixed):]
        struct = "{" + ",".join(f'"{c}":["{_TYPES[k]}"]' for c, k in rest) + "}"
        names = ", ".join(c for c, _ in self.columns)
        unnest = ", ".join(f"unnest(j.{c})" for c, _ in rest)
        params = ", ".join("?" for _ in fixed)
        sql = (f"insert into {self.table} ({names}) select {params}, {unnest} "
               f"from (select from_json(?::json, '{struct}') as j)")
        args = (*fixed, json.dumps(cols, ensure_ascii=False, default=str))
        if self._background is None and not self._tried:
            self._tried = True
            self._background = _Background.open(self.project)
        if self._background is not None:
            self._background.submit(sql, args)
        else:
            self.project.execute(sql, params=args)

    def flush(self) -> None:
        if self._background is not None:
            background, self._background = self._background, None
            self._tried = False
            background.close()


class _Background:
    """Writes a sync's events on its own DuckDB connection in a thread, while the main thread
    renders and publishes the next chunk: DuckDB releases the GIL while it inserts, so the
    history costs the publish loop only the JSON it is handed (about 1 µs an event instead
    of 10-25). At most two chunks wait, so memory stays bounded. The events are committed
    apart from the chunk's acks: they describe what was sent, journaled or not."""

    def __init__(self, connection: Any) -> None:
        self._con = connection
        self._queue: queue.Queue[tuple[str, Any] | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="eb-history", daemon=True)
        self._thread.start()

    @classmethod
    def open(cls, project: Any) -> _Background | None:
        try:
            handle = project.adapter.connections.get_thread_connection().handle
            con = handle.cursor()._cursor.cursor()  # a second connection to the same database
        except Exception:  # noqa: BLE001 - another dbt-duckdb layout: write in the journal's transaction instead
            return None
        return cls(con)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue
            try:
                self._con.execute(*item)
            except BaseException as e:  # noqa: BLE001 - kept, and raised by close() in the run's thread
                self._error = e

    def submit(self, sql: str, params: Any) -> None:
        if self._error is not None:
            self.close()
        self._queue.put((sql, params))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        try:
            self._con.close()
        except Exception:  # noqa: BLE001 - closing a connection we are done with; nothing to save
            pass
        if self._error is not None:
            e, self._error = self._error, None
            raise WarehouseError(f"recording the run history failed: {str(e).strip().splitlines()[0]}")
