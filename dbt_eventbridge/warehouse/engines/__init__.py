"""Every engine difference the Python side has, one module per engine (the SQL side's
differences are dispatched macros in ``macros/``). :func:`engine_for` is the one place
an adapter type is looked at."""

from __future__ import annotations

from dbt_eventbridge.warehouse.engines.base import Engine


def engine_for(adapter_type: str) -> Engine:
    # Imported on demand: each module is small, but the CLI should not load every engine.
    if adapter_type == "duckdb":
        from dbt_eventbridge.warehouse.engines.duckdb import DuckDBEngine

        return DuckDBEngine()
    if adapter_type == "postgres":
        from dbt_eventbridge.warehouse.engines.postgres import PostgresEngine

        return PostgresEngine(adapter_type)
    if adapter_type == "redshift":
        from dbt_eventbridge.warehouse.engines.redshift import RedshiftEngine

        return RedshiftEngine()
    if adapter_type == "snowflake":
        from dbt_eventbridge.warehouse.engines.snowflake import SnowflakeEngine

        return SnowflakeEngine()
    if adapter_type == "bigquery":
        from dbt_eventbridge.warehouse.engines.bigquery import BigQueryEngine

        return BigQueryEngine()
    if adapter_type == "spark":
        from dbt_eventbridge.warehouse.engines.spark import SparkEngine

        return SparkEngine()
    if adapter_type == "databricks":
        from dbt_eventbridge.warehouse.engines.databricks import DatabricksEngine

        return DatabricksEngine()
    return Engine(adapter_type)
