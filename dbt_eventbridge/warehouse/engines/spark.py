"""Spark (dbt-spark; Databricks builds on it in engines/databricks.py): no transactions, no
UPDATE or DELETE on plain tables, statements polled over Thrift, a local session's DataFrames.

Transactions: dbt-spark's begin marks dbt's connection as in a transaction and its commit
never clears the mark, and Spark has no multi-statement transactions anyway: our transactions
send nothing, and each statement stands alone (``transactional_ddl`` off).

UPDATE and DELETE: Spark's own tables (parquet, ORC: what a cluster without Delta or Iceberg
makes) support neither, nor MERGE. Every UPDATE and DELETE of ours is made by
``Statements.update``/``delete``; here they become a rewrite of the table, and so does the
state's commit (``spark__commit_sql``: one ``INSERT OVERWRITE`` of the whole state). Spark
refuses to overwrite a table that the query reads, so a rewrite of ``T`` is staged:

1. ``CREATE TABLE T__eb_rw AS <the new rows>``: complete or absent (Spark registers a table
   after writing it), and only one writer can create it: it is also the rewrite's lock;
2. ``INSERT OVERWRITE TABLE T SELECT * FROM T__eb_rw``: not atomic (it deletes T's files,
   then writes), so
3. ``DROP TABLE T__eb_rw`` only once T is whole.

A run that stops between 1 and 3 leaves ``T__eb_rw``; the next process that lists the
schema (before it reads anything of it) redoes 2 and 3, which gives the same T however
often it is repeated. A rewrite that finds another one's staging table waits for it
(``STAGING_WAIT_SECONDS``), then completes it as a stopped one.

Reads: over Thrift (``method: thrift``, a cluster's endpoint) statements are polled by us,
from 5 ms doubling to 0.5 s: dbt-spark polls every ``poll_interval`` seconds (an integer,
5 by default), which made each of a sync's ~60 short statements cost a whole second or
more. The local session's cursor (``method: session``) only collects a whole DataFrame, so
a large result comes from the DataFrame's local iterator, one partition at a time.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any

from dbt_eventbridge.faults import CrashPoints
from dbt_eventbridge.warehouse.engines.base import EventColumns, EventWriter, NoTransactions, Rows
from dbt_eventbridge.warehouse.engines.statements import Statements

STAGING_SUFFIX = "__eb_rw"
STAGING_WAIT_SECONDS = 30

# A relation as dbt-spark renders it: `schema`.`table` (backticks doubled inside), or bare words.
_IDENT = r"(?:`(?:[^`]|``)*`|[\w$]+)"
_OVERWRITE = re.compile(rf"\s*insert\s+overwrite\s+table\s+(?P<table>{_IDENT}(?:\s*\.\s*{_IDENT})*)\s+(?P<select>.*)",
                        re.IGNORECASE | re.DOTALL)
_ALTER = re.compile(r"\s*alter\s+table\b", re.IGNORECASE)
_EXISTS = re.compile(r"already exists|TABLE_OR_VIEW_ALREADY_EXISTS|LOCATION_ALREADY_EXISTS", re.IGNORECASE)


class Rewrite(str):
    """An UPDATE or DELETE (its text, for logs), with what the rewrite needs: the table, the
    new values (None: a delete) and the condition."""

    table: str
    sets: dict[str, str] | None
    where: str

    def __new__(cls, text: str, table: str, sets: Mapping[str, str] | None, where: str) -> Rewrite:
        obj = super().__new__(cls, text)
        obj.table, obj.sets, obj.where = table, dict(sets) if sets is not None else None, where
        return obj


class SparkStatements(Statements):
    def create_table_as(self, relation: Any, select_sql: str, temporary: bool = False) -> str:
        if not temporary:
            return super().create_table_as(relation, select_sql)
        # CACHE TABLE materialises the rows once: a temporary view would run the plan's
        # query (and number its rows) again at every read.
        return f"cache table {relation} as {select_sql}"

    def drop_temp(self, relation: Any) -> str:
        return f"drop view if exists {relation}"

    def update(self, relation: Any, sets: Mapping[str, str], where: str) -> str:
        return Rewrite(super().update(relation, sets, where), str(relation), sets, where)

    def delete(self, relation: Any, where: str) -> str:
        return Rewrite(super().delete(relation, where), str(relation), None, where)

    # _eb_objects is only ever inserted into: each UPDATE or DELETE would rewrite the table
    # that every sync of the schema writes. A row that names a dropped table is harmless
    # (see Ownership), and one registration per name is all a later run needs.
    def touch_object(self, objects: Any, name: str, epoch: int, kind: str, sync: str) -> str | None:
        return None

    def forget_object(self, objects: Any, name: str) -> str | None:
        return None


class SparkEngine(NoTransactions):
    statements_class = SparkStatements

    def __init__(self, name: str = "spark") -> None:
        super().__init__(name, backslash_escapes=True)
        self._columns: dict[str, list[tuple[str, str]]] = {}
        # The crash-safety suite's points inside a rewrite: spark.staged.<table> (staged, not
        # yet written back) and spark.overwritten.<table> (written back, staging not dropped).
        self.crash = CrashPoints.from_env()

    def event_writer(self, project: Any, table: Any, columns: EventColumns) -> EventWriter:
        return _JsonArraysEventWriter(self, project, table, columns)

    # -- statements ---------------------------------------------------------------------
    def run(self, adapter: Any, sql: str, fetch: bool, params: Any) -> tuple[list[str], Rows]:
        if isinstance(sql, Rewrite):
            self._rewrite(adapter, sql)
            return [], []
        overwrite = _OVERWRITE.match(sql)
        if overwrite and params is None:
            self._overwrite(adapter, overwrite["table"], overwrite["select"])
            return [], []
        if _ALTER.match(sql):
            self._columns.clear()  # a column added (history.py's migration): rewrites must carry it
        cursor = self._execute(adapter, sql, params)
        try:
            if not fetch or cursor.description is None:
                return [], []
            return [str(d[0]).lower() for d in cursor.description], [tuple(r) for r in cursor.fetchall()]
        finally:
            self._close(cursor)

    def _execute(self, adapter: Any, sql: str, params: Any = None) -> Any:
        wrapper = adapter.connections.get_thread_connection().handle
        raw = getattr(wrapper, "handle", None)
        cursor = raw.cursor() if raw is not None and hasattr(raw, "cursor") else None
        if cursor is None or not hasattr(cursor, "poll"):  # a session or ODBC: dbt-spark's cursor
            cursor = wrapper.cursor()
            cursor.execute(sql, params) if params is not None else cursor.execute(sql)
            return cursor
        from dbt_common.exceptions import DbtDatabaseError  # only with a Thrift connection
        from TCLIService.ttypes import TOperationState  # PyHive's

        pending = (TOperationState.INITIALIZED_STATE, TOperationState.RUNNING_STATE, TOperationState.PENDING_STATE)
        cursor.execute(sql, params, async_=True)
        delay = 0.005
        status = cursor.poll()
        while status.operationState in pending:
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
            status = cursor.poll()
        if status.errorMessage:
            self._close(cursor)
            raise DbtDatabaseError(status.errorMessage)
        if status.operationState != TOperationState.FINISHED_STATE:
            self._close(cursor)
            raise DbtDatabaseError(f"the statement ended in state {status.operationState}")
        return cursor

    @staticmethod
    def _close(cursor: Any) -> None:
        close = getattr(cursor, "close", None)
        if close is not None and hasattr(cursor, "poll"):  # dbt-spark's own wrappers stay open
            try:
                close()
            except Exception:  # noqa: BLE001 - a cursor that cannot close is gone already
                pass

    def _exec(self, adapter: Any, sql: str) -> None:
        self._close(self._execute(adapter, sql))

    def _fetch(self, adapter: Any, sql: str) -> Rows:
        cursor = self._execute(adapter, sql)
        try:
            return [tuple(r) for r in cursor.fetchall()]
        finally:
            self._close(cursor)

    # -- rewrites instead of UPDATE and DELETE ------------------------------------------
    def _rewrite(self, adapter: Any, r: Rewrite) -> None:
        # A NULL condition leaves a row as it is, as in UPDATE and DELETE.
        cond = f"coalesce(({r.where}), false)"
        if not self._fetch(adapter, f"select 1 from {r.table} where {cond} limit 1"):
            return  # nothing to change: no rewrite (retention, interrupted runs: the usual case)
        if r.sets is None:
            select = f"select * from {r.table} where not {cond}"
        else:
            sets = {k.lower(): v for k, v in r.sets.items()}
            items = [f"cast(case when {cond} then {sets[n.lower()]} else {q} end as {t}) as {q}"
                     if n.lower() in sets else q for n, t, q in self.columns(adapter, r.table)]
            select = f"select {', '.join(items)} from {r.table}"
        self._overwrite(adapter, r.table, select)

    def columns(self, adapter: Any, table: str) -> list[tuple[str, str, str]]:
        """(name, type, quoted name) of a table of ours, in order (ours do not change while a
        process runs: read once)."""
        if table not in self._columns:
            found: list[tuple[str, str]] = []
            for name, data_type, *_ in self._fetch(adapter, f"describe table {table}"):
                if not name or str(name).startswith("#"):
                    break  # partition and detail sections follow
                found.append((str(name), str(data_type)))
            self._columns[table] = found
        return [(n, t, "`" + n.replace("`", "``") + "`") for n, t in self._columns[table]]

    def _overwrite(self, adapter: Any, table: str, select: str) -> None:
        staging = staging_of(table)
        deadline = time.monotonic() + STAGING_WAIT_SECONDS
        while True:
            try:
                self._exec(adapter, f"create table {staging} as {select}")
                self.crash.reach(f"spark.staged.{_name(table)}")
                break
            except Exception as e:
                if not _EXISTS.search(str(e)):
                    raise
            if time.monotonic() < deadline:  # another rewrite of this table is under way
                time.sleep(0.5)
                continue
            self.finish_staging(adapter, table, staging)  # one that stopped
        self.finish_staging(adapter, table, staging)

    def finish_staging(self, adapter: Any, table: str, staging: str) -> None:
        """Steps 2 and 3 of a rewrite: the same result however often they are repeated."""
        self._exec(adapter, f"insert overwrite table {table} select * from {staging}")
        self.crash.reach(f"spark.overwritten.{_name(table)}")
        self._exec(adapter, f"drop table if exists {staging}")

    # -- listing ------------------------------------------------------------------------
    def list_tables(self, adapter: Any, schema_relation: Any) -> set[str]:
        """``show tables``: dbt-spark's listing describes every table of the schema."""
        schema = str(schema_relation)
        try:
            rows = self._fetch(adapter, f"show tables in {schema}")
        except Exception as e:
            if re.search(r"SCHEMA_NOT_FOUND|NoSuchDatabase|NoSuchNamespace|not found", str(e), re.IGNORECASE):
                return set()
            raise
        names = {str(r[1]).lower() for r in rows if not (len(r) > 2 and r[2])}  # not temporary views
        for name in sorted(n for n in names if n.endswith(STAGING_SUFFIX)):
            # A rewrite that stopped (or is under way in another process: waited for).
            base = name[: -len(STAGING_SUFFIX)]
            table, staging = f"{schema}.{_quote(base)}", f"{schema}.{_quote(name)}"
            deadline = time.monotonic() + STAGING_WAIT_SECONDS
            while time.monotonic() < deadline and self._still_there(adapter, schema, name):
                time.sleep(0.5)
            if self._still_there(adapter, schema, name):
                if base in names:
                    self.finish_staging(adapter, table, staging)
                else:
                    self._exec(adapter, f"drop table if exists {staging}")
            names.discard(name)
        return names

    def _still_there(self, adapter: Any, schema: str, name: str) -> bool:
        rows = self._fetch(adapter, f"show tables in {schema} like '{name}'")
        return any(str(r[1]).lower() == name for r in rows)

    # -- reading a large result ---------------------------------------------------------
    def stream(self, adapter: Any, sql: str, batch_size: int) -> Iterator[tuple[list[str], Rows]]:
        cursor = self._execute(adapter, sql)
        frame = getattr(getattr(cursor, "_cursor", None), "_df", None)
        try:
            if frame is None:  # Thrift or ODBC: a DB-API cursor
                names = [str(d[0]) for d in cursor.description]
                while rows := cursor.fetchmany(batch_size):
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
        finally:
            self._close(cursor)


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _name(table: str) -> str:
    """`schema`.`t` -> t."""
    last = table.rpartition(".")[2].strip()
    return last[1:-1].replace("``", "`") if last.startswith("`") else last


def staging_of(table: str) -> str:
    """`schema`.`t` -> `schema`.`t__eb_rw`."""
    head = table.rpartition(".")[0]
    return (head + "." if head else "") + _quote(_name(table) + STAGING_SUFFIX)


_SPARK_TYPES = {"string": "string", "int": "int", "bigint": "bigint", "float": "double", "timestamp": "string"}
JSON_STATEMENT_BYTES = 4_000_000  # per INSERT: far under Thrift's and Spark's limits, 2,000 typical events


class _JsonArraysEventWriter(EventWriter):
    """A chunk's events in one INSERT: the columns as one JSON string literal, parsed by
    ``from_json`` and unzipped by ``inline(arrays_zip(...))``. Each INSERT is a Spark job that
    writes a file: a chunk of 2,000 events took 10.0 s as twenty 100-row VALUES statements and
    0.87 s as one of these (local Thrift server, 2 cores, 2026-12-07), and VALUES also parses
    every literal through Spark's SQL parser."""

    def __init__(self, engine: SparkEngine, project: Any, table: Any, columns: EventColumns) -> None:
        self.engine = engine
        self.project = project
        self.table = table
        self.columns = columns

    def add(self, fixed: tuple[Any, ...], cols: dict[str, list[Any]]) -> None:
        rest = self.columns[len(fixed):]
        fields = [c for c, _ in rest]
        count = len(cols[fields[0]]) if fields else 0
        start = 0
        while start < count:
            end, size = start, 0
            while end < count and (end == start or size < JSON_STATEMENT_BYTES):
                size += sum(len(str(cols[f][end])) for f in fields) + 8 * len(fields)
                end += 1
            self.project.execute(self._statement(fixed, rest, {f: cols[f][start:end] for f in fields}))
            start = end

    def _statement(self, fixed: tuple[Any, ...], rest: EventColumns, part: dict[str, list[Any]]) -> str:
        lit = self.engine.sql.lit
        names = ", ".join(c for c, _ in self.columns)
        heads = [self.engine.sql.typed(v, k) for v, (_, k) in zip(fixed, self.columns)]
        picks = [f"cast(x.{c} as timestamp)" if k == "timestamp" else f"x.{c}" for c, k in rest]
        schema = "struct<" + ",".join(f"{c}:array<{_SPARK_TYPES[k]}>" for c, k in rest) + ">"
        zipped = ", ".join(f"j.{c}" for c, _ in rest)
        data = lit(json.dumps(part, ensure_ascii=False, default=str))
        return (f"insert into {self.table} ({names}) select {', '.join(heads + picks)} from "
                f"(select inline(arrays_zip({zipped})) from (select from_json({data}, {lit(schema)}) as j)) as x")
