"""Every engine difference the Python side has, one module per engine (the SQL side's
differences are dispatched macros in ``macros/``). :func:`engine_for` is the one place
an adapter type is looked at."""

from __future__ import annotations

from dbt_eventbridge.warehouse.engines.base import Engine


def engine_for(adapter_type: str) -> Engine:
    if adapter_type == "duckdb":
        from dbt_eventbridge.warehouse.engines.duckdb import DuckDBEngine

        return DuckDBEngine()
    if adapter_type in ("postgres", "redshift"):
        from dbt_eventbridge.warehouse.engines.postgres import PostgresEngine

        return PostgresEngine(adapter_type)
    if adapter_type in ("bigquery", "spark", "databricks", "snowflake"):
        return Engine(adapter_type, backslash_escapes=True)
    return Engine(adapter_type)
