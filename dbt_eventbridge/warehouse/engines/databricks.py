"""Databricks (dbt-databricks: Delta tables, SQL warehouses and clusters). Written and
rendered offline (devtools/offline_engines.py, tests/golden/databricks.sql); never executed:
no Databricks workspace is reachable from this machine, and Delta's jars cannot be fetched
for the local Spark. See README "Support matrix".

What differs from plain Spark (engines/spark.py), whose macros dbt-databricks dispatches to
after its own:

- Delta tables have UPDATE, DELETE and MERGE, each an atomic commit to the table's log:
  our UPDATE and DELETE statements are sent as written (no staged rewrite of the table),
  and the state's commit is one MERGE (``databricks__commit_sql``), atomic on its own, so
  a process killed during a commit leaves the state before or after it, never between.
- Still no multi-statement transactions: each statement stands alone, as on Spark.
- dbt-databricks' handle runs one statement at a time on one cursor and closes it at the
  next statement; our statements and streamed reads each take a cursor of their own from
  the Databricks SQL connection, so a stream stays readable while other statements run.
- A dry run's plan is a temporary view (SQL warehouses have no CACHE TABLE): each read of
  it runs the diff again, on the same tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dbt_eventbridge.warehouse.engines.spark import SparkEngine, SparkStatements
from dbt_eventbridge.warehouse.engines.statements import Statements


class DatabricksStatements(SparkStatements):
    def create_table_as(self, relation: Any, select_sql: str, temporary: bool = False) -> str:
        if not temporary:
            return Statements.create_table_as(self, relation, select_sql)
        return f"create or replace temporary view {relation} as {select_sql}"

    # Delta: UPDATE and DELETE as they are, and the ownership rows kept up to date.
    def update(self, relation: Any, sets: Mapping[str, str], where: str) -> str:
        return Statements.update(self, relation, sets, where)

    def delete(self, relation: Any, where: str) -> str:
        return Statements.delete(self, relation, where)

    def touch_object(self, objects: Any, name: str, epoch: int, kind: str, sync: str) -> str | None:
        return Statements.touch_object(self, objects, name, epoch, kind, sync)

    def forget_object(self, objects: Any, name: str) -> str | None:
        return Statements.forget_object(self, objects, name)


class DatabricksEngine(SparkEngine):
    statements_class = DatabricksStatements

    def __init__(self) -> None:
        super().__init__("databricks")

    def _execute(self, adapter: Any, sql: str, params: Any = None) -> Any:
        # dbt-databricks' DatabricksHandle keeps the Databricks SQL connection as ``_conn``
        # (checked on dbt-databricks 1.12.7); its own ``execute`` would close the cursor of
        # a stream that is still being read.
        connection = adapter.connections.get_thread_connection().handle._conn
        cursor = connection.cursor()
        try:
            cursor.execute(sql, params) if params is not None else cursor.execute(sql)
        except BaseException:
            self._close(cursor)
            raise
        return cursor

    @staticmethod
    def _close(cursor: Any) -> None:
        try:
            cursor.close()
        except Exception:  # noqa: BLE001 - a cursor that cannot close is gone already
            pass
