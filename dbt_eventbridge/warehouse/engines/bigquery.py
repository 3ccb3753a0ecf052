"""BigQuery: statements as query jobs, results read page by page, no transactions.

dbt-bigquery's connection handle is a ``google.cloud.bigquery.Client``: it has no DB-API
cursor (``.cursor()``), and ``add_select_query`` raises NotImplementedError, so statements
go through the connection manager's ``raw_execute`` (its job ids, labels, retries and
timeouts, as dbt's own queries) and results are read from the job's row iterator, which
fetches one page at a time: memory stays bounded by a page however large the plan.

dbt-bigquery's begin and commit do nothing: BigQuery has multi-statement transactions only
inside one script or session, and none with CREATE or DROP of permanent tables, which our
commits use. Each statement is atomic on its own (a DML statement, a CREATE TABLE AS).

Rendered and checked offline only (tests/unit/test_engines.py, tests/golden/bigquery.sql):
no BigQuery service is reachable from CI.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from dbt_eventbridge.warehouse.engines.base import NoTransactions, Rows
from dbt_eventbridge.warehouse.engines.statements import Statements


class BigQueryStatements(Statements):
    """BigQuery's dialect: STRING and INT64 types, no enforced keys, MERGE for an upsert."""

    def create_acks(self, acks: Any) -> str:
        return f"create table {acks} (_eb_seq int64)"

    def create_table_as(self, relation: Any, select_sql: str, temporary: bool = False) -> str:
        if not temporary:
            return super().create_table_as(relation, select_sql)
        # A temporary table needs a script or session: a dry run's plan is a table of its own
        # in the state dataset that BigQuery deletes after a day if the run cannot.
        return (f"create table {relation} options (expiration_timestamp = "
                f"timestamp_add(current_timestamp(), interval 1 day)) as {select_sql}")

    def layout_upsert(self, layouts: Any, sync: str, sets: Mapping[str, Any]) -> list[str]:
        # A SELECT with a WHERE needs a FROM on BigQuery; one MERGE is the upsert, atomic.
        source = ", ".join([f"{self.lit(sync)} as sync_name"] + [f"{self.lit(v)} as {k}" for k, v in sets.items()])
        updates = ", ".join(f"{k} = s.{k}" for k in sets)
        names = ", ".join(["sync_name", *sets])
        values = ", ".join(f"s.{k}" for k in ["sync_name", *sets])
        return [f"merge {layouts} as t using (select {source}) as s on t.sync_name = s.sync_name "
                f"when matched then update set {updates} when not matched then insert ({names}) values ({values})"]


    def legacy_apply_journal(self, state: Any, state_identifier: str, plan: Any, acks: Any, keys: Sequence[str],
                             row_column: str, now_sql: str) -> list[str]:
        # No DELETE ... USING on BigQuery: the same rows by a correlated EXISTS.
        done = f"(select * from {plan} as p where exists (select 1 from {acks} as a where a._eb_seq = p._eb_seq))"
        match = " and ".join(f"d.{k} = t.{k}" for k in keys)
        cols = ", ".join(keys)
        return [f"delete from {state} as t where exists (select 1 from {done} as d where {match})",
                f"insert into {state} ({cols}, _eb_hash, {row_column}, _eb_delivered_at) select {cols}, _eb_hash, "
                f"{row_column}, {now_sql} from {done} as d where d._eb_op <> 'removed'"]


class BigQueryEngine(NoTransactions):
    statements_class = BigQueryStatements

    def __init__(self) -> None:
        super().__init__("bigquery", backslash_escapes=True)

    def run(self, adapter: Any, sql: str, fetch: bool, params: Any) -> tuple[list[str], Rows]:
        if params is not None:
            raise ValueError("statement parameters are not used on BigQuery")  # no writer of ours passes any
        _, iterator = adapter.connections.raw_execute(sql)
        if not fetch or not iterator.schema:
            return [], []
        return [f.name.lower() for f in iterator.schema], [tuple(r.values()) for r in iterator]

    def stream(self, adapter: Any, sql: str, batch_size: int) -> Iterator[tuple[list[str], Rows]]:
        _, iterator = adapter.connections.raw_execute(sql)
        names = [f.name for f in iterator.schema or ()]
        batch: Rows = []
        for row in iterator:  # the iterator requests the next page when one is used up
            batch.append(tuple(row.values()))
            if len(batch) >= batch_size:
                yield names, batch
                batch = []
        if batch:
            yield names, batch

    def temp_relation(self, project: Any, schema: str, name: str) -> Any:
        return project.state_relation(schema, name)
