"""PostgreSQL: server-side cursors, JSON inserts (Redshift, which speaks its protocol, has its own module)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from dbt_eventbridge.warehouse.engines.base import Engine, EventColumns, EventWriter

_TYPES = {"string": "text", "int": "integer", "bigint": "bigint", "float": "double precision",
          "timestamp": "timestamp"}


class PostgresEngine(Engine):
    def open_stream(self, adapter: Any, sql: str, batch_size: int) -> Any:
        # psycopg2's default cursor buffers the whole result client-side; a named
        # (server-side) cursor streams.
        handle = adapter.connections.get_thread_connection().handle
        cursor = handle.cursor(name=f"eb_{uuid.uuid4().hex[:12]}", withhold=True)
        cursor.itersize = batch_size
        cursor.execute(sql)
        return cursor

    def begin(self, adapter: Any) -> None:
        adapter.connections.begin()
        # dbt-postgres's begin() sends no BEGIN (it relies on psycopg2 opening one before the
        # first statement) and its commit() sends COMMIT as SQL, which psycopg2 does not see:
        # it still believes a transaction is open and never opens one again, so from the first
        # commit on the server ran every statement on its own and a rollback undid nothing.
        # libpq's own view of the server (info.transaction_status) says when to send BEGIN.
        from psycopg2 import extensions

        handle = adapter.connections.get_thread_connection().handle
        info = getattr(handle, "info", None)
        if info is None or handle.status == extensions.STATUS_READY:
            return  # psycopg2 opens one itself
        if info.transaction_status == extensions.TRANSACTION_STATUS_IDLE:
            with handle.cursor() as cursor:
                cursor.execute("begin")

    def close_stream(self, cursor: Any) -> None:
        cursor.close()

    def close_cursor(self, cursor: Any) -> None:
        cursor.close()

    def event_writer(self, project: Any, table: Any, columns: EventColumns) -> EventWriter:
        return _JsonRecordsetWriter(project, table, columns)


class _JsonRecordsetWriter(EventWriter):
    """One JSON parameter expanded by json_to_recordset: one statement per chunk."""

    def __init__(self, project: Any, table: Any, columns: EventColumns) -> None:
        self.project = project
        self.table = table
        self.columns = columns

    def add(self, fixed: tuple[Any, ...], cols: dict[str, list[Any]]) -> None:
        names = ", ".join(c for c, _ in self.columns)
        rest = self.columns[len(fixed):]
        fields = [c for c, _ in rest]
        typed = ", ".join(f"{c} {_TYPES[k]}" for c, k in rest)
        records = [dict(zip(fields, r)) for r in zip(*(cols[f] for f in fields))]
        params = ", ".join("%s" for _ in fixed)
        sql = (f"insert into {self.table} ({names}) select {params}, {', '.join(fields)} "
               f"from json_to_recordset(%s::json) as x({typed})")
        self.project.execute(sql, params=(*fixed, json.dumps(records, ensure_ascii=False, default=str)))
