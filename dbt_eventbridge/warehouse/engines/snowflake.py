"""Snowflake: real transactions for DML, sent as SQL; DDL commits on its own.

dbt-snowflake opens its connections in autocommit mode and its begin and commit do nothing,
so without this every statement of ours was committed on its own. BEGIN and COMMIT on the
connection's cursor make a run of DML statements (a commit's delete, insert and update; a
journal's acks) one transaction. Snowflake commits the open transaction before and after
every CREATE, DROP or ALTER, so a transaction of ours that creates or drops a table is
atomic only between those statements (``transactional_ddl``).

We send that COMMIT and BEGIN around a DDL statement ourselves: on Snowflake it changes
nothing, and the emulator in the tests (fakesnow, over DuckDB) then commits where Snowflake
does, instead of failing (DuckDB writes one attached database per transaction, and
fakesnow's catalog is another one).
"""

from __future__ import annotations

from typing import Any

from dbt_eventbridge.warehouse.engines.base import DDL, Rows, SqlTransactions


class SnowflakeEngine(SqlTransactions):
    transactional_ddl = False

    def __init__(self) -> None:
        super().__init__("snowflake", backslash_escapes=True)

    def run(self, adapter: Any, sql: str, fetch: bool, params: Any) -> tuple[list[str], Rows]:
        connection = adapter.connections.get_thread_connection()
        if not (connection.transaction_open and DDL.match(sql)):
            return super().run(adapter, sql, fetch, params)
        connection.handle.cursor().execute("commit")
        try:
            return super().run(adapter, sql, fetch, params)
        finally:
            connection.handle.cursor().execute("begin")
