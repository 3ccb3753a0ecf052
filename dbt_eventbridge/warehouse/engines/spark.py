"""Spark (dbt-spark, and Databricks through its Spark macros): no transactions, cursors
without ``fetchmany`` on a local session, temporary views instead of temporary tables.

dbt-spark's begin marks dbt's connection as in a transaction and its commit never clears
the mark, and Spark has no multi-statement transactions anyway: our transactions send
nothing, and each statement stands alone (``transactional_ddl`` off).

A large result: the thrift and ODBC connections' cursors fetch in batches; the local
session's cursor (``method: session``) only collects a whole DataFrame, so there the rows
come from the DataFrame's local iterator, one partition at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dbt_eventbridge.warehouse.engines.base import NoTransactions, Rows
from dbt_eventbridge.warehouse.engines.statements import Statements


class SparkStatements(Statements):
    def create_table_as(self, relation: Any, select_sql: str, temporary: bool = False) -> str:
        if not temporary:
            return super().create_table_as(relation, select_sql)
        # CACHE TABLE materialises the rows once: a temporary view would run the plan's
        # query (and number its rows) again at every read.
        return f"cache table {relation} as {select_sql}"

    def drop_temp(self, relation: Any) -> str:
        return f"drop view if exists {relation}"


class SparkEngine(NoTransactions):
    statements_class = SparkStatements

    def __init__(self, name: str = "spark") -> None:
        super().__init__(name, backslash_escapes=True)

    def stream(self, adapter: Any, sql: str, batch_size: int) -> Iterator[tuple[list[str], Rows]]:
        wrapper = adapter.connections.get_thread_connection().handle.cursor()
        wrapper.execute(sql)
        frame = getattr(getattr(wrapper, "_cursor", None), "_df", None)
        if frame is None:  # thrift or ODBC: a DB-API cursor
            names = [str(d[0]) for d in wrapper.description]
            while rows := wrapper.fetchmany(batch_size):
                yield names, [tuple(r) for r in rows]
            return
        names = list(frame.columns)
        batch: Rows = []
        for row in frame.toLocalIterator():
            batch.append(tuple(row))
            if len(batch) >= batch_size:
                yield names, batch
                batch = []
        if batch:
            yield names, batch
