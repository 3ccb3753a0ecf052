"""Every warehouse's SQL and connection code, proven as far as this machine can without it.

DuckDB and PostgreSQL run for real everywhere in the suite, Snowflake on its emulator in the
sync stories; BigQuery and Redshift have no server here, so this is what proves them:
- every macro and statement rendered through the real dbt adapter (no connection), kept as
  golden files in tests/golden/ and reviewed on change;
- per engine, the constructs its documentation rules out, looked for in that SQL (a parser
  accepting SQL is no proof that the warehouse does: sqlglot parsed every statement that a
  real Spark then rejected, so the parse below only catches gross slips);
- our connection-facing code (statements, transactions, streamed reads) on each adapter's
  real connection manager with a fake driver handle: that is where ``fetchmany``, named
  cursors, ``add_select_query`` and transaction flags broke.

The rendering runs once, in a subprocess (devtools/offline_engines.py): dbt keeps one
adapter per process, and the unit lane's live DuckDB and PostgreSQL adapters are in this one.
"""

from __future__ import annotations

import difflib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlglot

from devtools.offline_engines import ENGINES, GOLDEN, ROWS, golden_text

REPO = Path(__file__).resolve().parents[2]
OFFLINE = ["snowflake", "bigquery", "redshift", "spark", "databricks"]


@pytest.fixture(scope="module")
def rendered() -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "devtools.offline_engines", "--json"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout))


def _statements(rendered: dict[str, Any], engine: str) -> list[tuple[str, str]]:
    out = []
    for case, text in rendered[engine]["sql"]:
        for stmt in text.split(";\n"):
            if re.match(r"\s*(select|insert|update|delete|create|drop|alter|merge|with|cache|set)\b", stmt, re.I):
                out.append((case, stmt))
    return out


@pytest.mark.parametrize("engine", ENGINES)
def test_the_sql_is_the_reviewed_golden_file(rendered: dict[str, Any], engine: str) -> None:
    path = GOLDEN / f"{engine}.sql"
    now = golden_text(engine, [tuple(c) for c in rendered[engine]["sql"]])  # type: ignore[misc]
    diff = "".join(difflib.unified_diff(path.read_text().splitlines(True), now.splitlines(True),
                                        str(path), "rendered now"))
    assert not diff, (f"the SQL on {engine} changed; review it, then `python -m devtools.offline_engines "
                      f"--write` updates tests/golden/:\n{diff}")


# What each engine's documentation rules out, by pattern: (why, pattern).
FORBIDDEN: dict[str, list[tuple[str, str]]] = {
    "bigquery": [
        ("no VARCHAR type (STRING)", r"\bvarchar\b"),
        ("no enforced primary keys", r"primary key"),
        ("no DELETE ... USING", r"delete from [^;]*? using "),
        ("temporary tables only in scripts and sessions", r"create temporary"),
        ("no generate_series (GENERATE_ARRAY)", r"generate_series"),
        ("no :: casts", r"::"),
        ("no ROW(...) constructor", r"\brow\("),
        ("STRUCT's JSON carries field names: hashes of model and state columns would differ",
         r"to_json_string\(struct\("),
        ("a table path is no correlation name in UPDATE ... FROM", r"= `_eb_(state|next)__\w+`\."),
    ],
    "redshift": [
        ("no ROW(...)::text", r"\brow\("),
        ("no :: casts to text", r"::text"),
        ("no row_to_json or json_to_recordset", r"row_to_json|json_to_recordset"),
        ("generate_series runs on the leader node only", r"generate_series"),
        ("no indexes", r"create index"),
        ("no intervalstyle setting", r"intervalstyle"),
        ("VARCHAR without a length is 256 bytes: values would be cut", r"as varchar\)"),
    ],
    "snowflake": [
        ("ROW_NUMBER needs an ORDER BY", r"row_number\(\) over \(\)"),
        ("no generate_series", r"generate_series"),
        ("no ROW(...)::text", r"\brow\("),
    ],
    "spark": [
        ("ROW_NUMBER needs an ORDER BY", r"row_number\(\) over \(\)"),
        ("no CREATE TEMPORARY TABLE (views are)", r"create temporary table"),
        ("no primary key constraints", r"primary key"),
        ("no generate_series", r"generate_series"),
        ("no :: casts", r"::"),
        ("no ROW(...) constructor", r"\brow\("),
    ],
    # Delta tables: DELETE, UPDATE and MERGE, but DELETE and UPDATE without USING or FROM.
    "databricks": [
        ("ROW_NUMBER needs an ORDER BY", r"row_number\(\) over \(\)"),
        ("no CREATE TEMPORARY TABLE (views are)", r"create temporary table"),
        ("no CACHE TABLE on SQL warehouses", r"\bcache table\b"),
        ("no UPDATE ... FROM", r"update [^;]*? set [^;]*? from "),
        ("no primary key constraints", r"primary key"),
        ("no generate_series", r"generate_series"),
        ("no :: casts", r"::"),
    ],
}


@pytest.mark.parametrize("engine", sorted(FORBIDDEN))
def test_no_construct_the_engine_lacks(rendered: dict[str, Any], engine: str) -> None:
    found = [f"{case}: {why}: ...{m.group(0)}..." for case, stmt in _statements(rendered, engine)
             for why, pattern in FORBIDDEN[engine] for m in [re.search(pattern, stmt, re.I)] if m]
    assert found == []


@pytest.mark.parametrize("engine", ENGINES)
def test_every_statement_parses_in_the_engines_dialect(rendered: dict[str, Any], engine: str) -> None:
    failed = []
    for case, stmt in _statements(rendered, engine):
        try:
            sqlglot.parse(stmt, read=engine, error_level=sqlglot.ErrorLevel.RAISE)
        except sqlglot.errors.SqlglotError as e:
            failed.append(f"{case}: {str(e)[:200]}")
    assert failed == []


def test_every_engine_has_its_own_sql_where_the_defaults_would_break(rendered: dict[str, Any]) -> None:
    sql = {e: dict(rendered[e]["sql"]) for e in ENGINES}
    # dbt-redshift dispatches to postgres__ macros first: each of these must be Redshift's own.
    assert sql["redshift"]["row_hash"].startswith("md5(") and "varchar(max)" in sql["redshift"]["row_hash"]
    assert sql["redshift"]["ack_insert_sql"].endswith("values (1), (2), (3), (7)")
    assert sql["redshift"]["plan_index_sql"] == ""
    assert sql["redshift"]["string_literal"] == "'it\\'s a \\\\ test'"
    assert sql["postgres"]["string_literal"] == "'it''s a \\ test'"
    assert "generate_array(r.lo, r.hi)" in sql["bigquery"]["ack_insert_sql"]
    assert sql["bigquery"]["create_table_as temporary"].startswith(
        "create table `offline-project`.`eventbridge_state`.`eb_dry_run_1` options (expiration_timestamp")
    assert sql["spark"]["create_table_as temporary"] == "cache table eb_dry_run_1 as select 1 as x"
    assert sql["spark"]["drop_temp"] == "drop view if exists eb_dry_run_1"
    assert sql["bigquery"]["layout_upsert"].startswith("merge ")


# -- the connection-facing code --------------------------------------------------------------

def _probe(rendered: dict[str, Any], engine: str, step: str) -> dict[str, Any]:
    return dict(rendered[engine]["probe"][step])


@pytest.mark.parametrize("engine", OFFLINE)
def test_a_select_returns_every_row_with_lower_cased_names(rendered: dict[str, Any], engine: str) -> None:
    assert _probe(rendered, engine, "select")["value"] == [list(r) for r in ROWS]
    assert _probe(rendered, engine, "records")["value"] == [{"id": i, "name": n} for i, n in ROWS]


@pytest.mark.parametrize("engine", OFFLINE)
def test_a_stream_reads_in_batches_without_fetching_all(rendered: dict[str, Any], engine: str) -> None:
    step = _probe(rendered, engine, "stream")
    assert step["error"] is None
    assert [len(rows) for _, rows in step["value"]] == [2, 2, 1]
    assert [r for _, rows in step["value"] for r in rows] == [list(r) for r in ROWS]


def test_redshift_pages_with_sql_cursors_in_a_transaction(rendered: dict[str, Any]) -> None:
    # redshift_connector reads a whole result at execute and takes no named cursor.
    driver = _probe(rendered, "redshift", "stream")["driver"]
    name = driver[1].split()[1]
    assert driver == ["begin", f"declare {name} cursor for select id, name from t",
                      *[f"fetch forward 2 from {name}"] * 4, f"close {name}", "commit"]


def test_bigquery_reads_a_page_at_a_time(rendered: dict[str, Any]) -> None:
    # The batches are handed out as pages arrive: page 2 is fetched after batch 1 was read.
    assert _probe(rendered, "bigquery", "stream")["driver"] == ["select id, name from t", "page 1", "page 2",
                                                               "page 3"]


def test_spark_session_reads_from_the_local_iterator(rendered: dict[str, Any]) -> None:
    # dbt-spark's session cursor has no fetchmany; collecting would hold the result whole.
    assert _probe(rendered, "spark", "stream")["driver"] == ["select id, name from t", "<toLocalIterator>"]


def test_databricks_commits_with_one_merge_and_updates_delta_tables_in_place(rendered: dict[str, Any]) -> None:
    # Delta has MERGE, UPDATE and DELETE: no rewrite of the whole state (Spark's INSERT
    # OVERWRITE, staged) and the ownership rows kept, unlike on Spark's plain tables.
    sql = dict(rendered["databricks"]["sql"])
    for case in ("commit_sql", "commit_sql all acked"):
        assert sql[case].startswith("merge into `main`.`eventbridge_state`.`_eb_state__customers` as st\n"), case
        assert ";" not in sql[case] and "insert overwrite" not in sql[case]
        assert "when matched and d._eb_op = 'removed' then delete" in sql[case]
        assert "when matched and d._eb_op = 'rebaseline' then update set _eb_hash = d._eb_hash, _eb_fp = 5" in sql[case]
        # A column the current shape lacks (_eb_c4) is emptied, as the default delete and insert leave it.
        assert ", _eb_c4 = null, " in sql[case]
    assert "where exists (select 1 from `main`.`eventbridge_state`.`_eb_acks__customers`" in sql["commit_sql"]
    assert sql["touch_object"].startswith("update `main`.`eventbridge_state`.`_eb_objects` set kind = 'state'")
    assert sql["lock_beat"].startswith("update ")
    assert sql["create_table_as temporary"] == "create or replace temporary view eb_dry_run_1 as select 1 as x"
    assert not any("insert overwrite" in text for case, text in rendered["databricks"]["sql"])


def test_a_databricks_stream_stays_readable_while_other_statements_run(rendered: dict[str, Any]) -> None:
    # dbt-databricks' handle closes its last cursor whenever it runs a statement; a sync
    # writes its history while it reads the plan's changes.
    step = _probe(rendered, "databricks", "stream with statements between batches")
    assert step["error"] is None
    assert step["value"] == [[list(r) for r in ROWS[0:2]], [list(r) for r in ROWS[2:4]], [list(r) for r in ROWS[4:]]]
    assert step["driver"] == ["select id, name from t", *["insert into h values (1)"] * 3]


INSERT, CREATE, DELETE = "insert into t values (1)", "create table u as select 1 as x", "delete from t"


@pytest.mark.parametrize(("engine", "sent"), [
    ("redshift", ["begin", INSERT, CREATE, DELETE, "commit"]),
    ("snowflake", ["begin", INSERT, "commit", CREATE, "begin", DELETE, "commit"]),
    ("bigquery", [INSERT, CREATE, DELETE]),
    ("spark", [INSERT, CREATE, DELETE]),
    ("databricks", [INSERT, CREATE, DELETE]),
])
def test_a_transaction_sends_what_the_engine_has(rendered: dict[str, Any], engine: str, sent: list[str]) -> None:
    # Redshift (autocommit, and BEGIN skipped under a dbt-redshift flag) and Snowflake
    # (autocommit, begin() a no-op in dbt-snowflake) get their BEGIN and COMMIT from us;
    # Snowflake commits around DDL itself, and we say so (the emulator then does the same).
    # BigQuery and Spark have none to send, and dbt's flag must not say one is open.
    step = _probe(rendered, engine, "transaction")
    assert (step["driver"], step["error"], step["dbt_transaction_open"]) == (sent, None, False)


@pytest.mark.parametrize(("engine", "last"), [
    ("redshift", "rollback"), ("snowflake", "rollback"), ("bigquery", "fail"), ("spark", "fail"),
    ("databricks", "fail")])
def test_a_failed_statement_ends_the_transaction_with_our_error(rendered: dict[str, Any], engine: str,
                                                                last: str) -> None:
    step = _probe(rendered, engine, "failed transaction")
    assert step["driver"][-1] == last
    assert step["error"].startswith("a statement failed in the warehouse: ")
    assert "fail" in step["error"]
    assert step["dbt_transaction_open"] is False


# -- the run history's events on engines without a bulk path -------------------------------------

class _Recorder:
    """Stands in for the project: the statements an event writer runs."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def execute(self, sql: str, fetch: bool = False, params: Any = None) -> list[tuple[Any, ...]]:
        self.statements.append(sql)
        return []


def test_history_inserts_stay_under_a_statement_size_the_warehouses_take() -> None:
    # BigQuery and Snowflake refuse a statement over 1 MB; a detail may be 256 KB.
    from dbt_eventbridge.warehouse.engines import engine_for
    from dbt_eventbridge.warehouse.engines.base import VALUES_BYTES, VALUES_ROWS, ValuesEventWriter

    recorder = _Recorder()
    writer = ValuesEventWriter(engine_for("bigquery"), recorder, "events", [("run_id", "string"), ("detail", "string")])
    details = ["x" * 200_000] * 7 + ["small"] * (VALUES_ROWS + 1)
    writer.add(("r1",), {"detail": details})
    rows = [s.count("('r1', ") for s in recorder.statements]
    assert sum(rows) == len(details)
    assert all(len(s) <= VALUES_BYTES + 250_000 for s in recorder.statements)  # one row may pass the cap alone
    assert max(rows) == VALUES_ROWS
    assert rows[:3] == [2, 2, 2]  # 200 KB rows: two fit in 500 KB
    assert "".join(recorder.statements).count("x" * 200_000) == 7


def test_spark_history_inserts_are_one_json_statement_per_chunk_and_keep_every_value() -> None:
    # On Spark each INSERT is a job that writes a file: a chunk's events go in one statement
    # (split only past JSON_STATEMENT_BYTES), as a JSON literal that from_json reads back.
    import re

    from dbt_eventbridge.warehouse.engines import engine_for
    from dbt_eventbridge.warehouse.engines.spark import JSON_STATEMENT_BYTES

    recorder = _Recorder()
    columns = [("run_id", "string"), ("sync_name", "string"), ("event_key", "string"), ("attempts", "int"),
               ("sent_at", "timestamp"), ("detail", "string")]
    writer = engine_for("spark").event_writer(recorder, "h.events", columns)
    n = 2_000
    cols: dict[str, list[Any]] = {
        "event_key": [f'[{i}, "it\'s \\\\ {i}"]' for i in range(n)], "attempts": [i % 3 + 1 for i in range(n)],
        "sent_at": ["2026-12-06 10:00:00.123456"] * n,
        "detail": ["x" * 5_000 if i % 2 else None for i in range(n)]}  # 5 MB of details: two statements
    writer.add(("r1", "s1"), cols)
    assert len(recorder.statements) == 2
    assert all(len(s) < JSON_STATEMENT_BYTES + 10_000 for s in recorder.statements)
    back: dict[str, list[Any]] = {c: [] for c in cols}
    for statement in recorder.statements:
        assert statement.startswith("insert into h.events (run_id, sync_name, event_key, attempts, sent_at, detail) "
                                    "select 'r1', 's1', x.event_key, x.attempts, cast(x.sent_at as timestamp), "
                                    "x.detail from (select inline(arrays_zip(")
        literal = re.search(r"from_json\('((?:[^'\\]|\\.)*)', 'struct<", statement)
        assert literal is not None
        part = json.loads(re.sub(r"\\(.)", r"\1", literal.group(1)))
        for c in cols:
            back[c].extend(part[c])
    assert back == cols


# -- Databricks' MERGE, executed: the same state as the default commit, on a real engine ------

_STATE = [  # _eb_c1 customer_id, _eb_c2 Region, _eb_c3 email, _eb_c4 (a column the shape lost), _eb_c5 Plan
    (1, "eu", "a@x", "old", "free", 11, 4, 4), (2, "eu", "b@x", "old", "pro", 12, 4, 4),
    (3, "us", "c@x", None, "free", 13, 5, 5), (4, "us", "d@x", "old", "pro", 14, 4, 3),
    (5, "eu", "e@x", "old", "free", 15, 5, 5), (6, "us", "f@x", None, "pro", 16, 5, 5),
]
_PLAN = [  # _eb_seq, op, hash, old shape, customer_id, Region, email, Plan
    (1, "removed", 11, 4, 1, "eu", None, None), (2, "changed", 22, 4, 2, "eu", "b2@x", "team"),
    (3, "added", 23, None, 7, "eu", "g@x", "free"), (4, "rebaseline", 44, 4, 4, "us", "d@x", "pro"),
    (5, "changed", 25, 5, 5, "eu", "e2@x", "pro"), (6, "added", 26, None, 8, "us", "h@x", "pro"),
    (7, "refresh", 16, 5, 6, "us", "f@x", "pro"),
]
_ACKS = [1, 2, 3, 4, 7]  # 5 and 6 were rejected: they stay as they were


def _run_commit(statements: list[str], all_acked: bool) -> list[tuple[Any, ...]]:
    import duckdb

    con = duckdb.connect()
    con.execute("create schema eventbridge_state")
    con.execute("create table eventbridge_state._eb_state__customers (_eb_c1 integer, _eb_c2 varchar, _eb_c3 varchar, "
                "_eb_c4 varchar, _eb_c5 varchar, _eb_hash bigint, _eb_shape integer, _eb_fp integer, "
                "_eb_delivered_at timestamp)")
    con.executemany("insert into eventbridge_state._eb_state__customers values (?, ?, ?, ?, ?, ?, ?, ?, null)", _STATE)
    con.execute('create table eventbridge_state._eb_plan__customers (_eb_seq bigint, _eb_op varchar, _eb_hash bigint, '
                '_eb_shape integer, "customer_id" integer, "Region" varchar, "email" varchar, "Plan" varchar, '
                '_eb_o3 varchar, _eb_o4 varchar)')
    con.executemany("insert into eventbridge_state._eb_plan__customers values (?, ?, ?, ?, ?, ?, ?, ?, null, null)", _PLAN)
    con.execute("create table eventbridge_state._eb_acks__customers (_eb_seq bigint)")
    con.executemany("insert into eventbridge_state._eb_acks__customers values (?)",
                    [(s,) for s in ([p[0] for p in _PLAN] if all_acked else _ACKS)])
    for sql in statements:
        con.execute(sql)
    return con.execute("select _eb_c1, _eb_c2, _eb_c3, _eb_c4, _eb_c5, _eb_hash, _eb_shape, _eb_fp, "
                       "_eb_delivered_at is not null from eventbridge_state._eb_state__customers order by 1").fetchall()


@pytest.mark.parametrize("case", ["commit_sql", "commit_sql all acked"])
def test_the_databricks_merge_leaves_the_state_the_default_commit_leaves(rendered: dict[str, Any], case: str) -> None:
    # No Databricks here: its MERGE, translated to DuckDB's dialect (DuckDB has MERGE with the
    # same clauses), runs against the same state, plan and acks as DuckDB's own commit, the
    # delete, insert and update that the guarantees suite runs for real.
    merge = dict(rendered["databricks"]["sql"])[case]
    translated = sqlglot.transpile(merge, read="databricks", write="duckdb")[0].replace('"main".', '"memory".')
    default = dict(rendered["duckdb"]["sql"])[case].split(";\n")
    all_acked = case.endswith("all acked")
    want = _run_commit(default, all_acked)
    assert _run_commit([translated], all_acked) == want
    by_key = {r[0]: r for r in want}
    assert 1 not in by_key and by_key[2][2:8] == ("b2@x", None, "team", 22, 5, 5)  # removed; changed, c4 emptied
    assert by_key[4][2:8] == ("d@x", "old", "pro", 44, 4, 5)  # re-baselined: values kept, new fingerprint
    assert (by_key[5][5], 8 in by_key) == ((25, True) if all_acked else (15, False))  # rejected: as it was
