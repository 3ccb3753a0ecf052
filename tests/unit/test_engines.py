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
OFFLINE = ["snowflake", "bigquery", "redshift", "spark"]


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


INSERT, CREATE, DELETE = "insert into t values (1)", "create table u as select 1 as x", "delete from t"


@pytest.mark.parametrize(("engine", "sent"), [
    ("redshift", ["begin", INSERT, CREATE, DELETE, "commit"]),
    ("snowflake", ["begin", INSERT, "commit", CREATE, "begin", DELETE, "commit"]),
    ("bigquery", [INSERT, CREATE, DELETE]),
    ("spark", [INSERT, CREATE, DELETE]),
])
def test_a_transaction_sends_what_the_engine_has(rendered: dict[str, Any], engine: str, sent: list[str]) -> None:
    # Redshift (autocommit, and BEGIN skipped under a dbt-redshift flag) and Snowflake
    # (autocommit, begin() a no-op in dbt-snowflake) get their BEGIN and COMMIT from us;
    # Snowflake commits around DDL itself, and we say so (the emulator then does the same).
    # BigQuery and Spark have none to send, and dbt's flag must not say one is open.
    step = _probe(rendered, engine, "transaction")
    assert (step["driver"], step["error"], step["dbt_transaction_open"]) == (sent, None, False)


@pytest.mark.parametrize(("engine", "last"), [
    ("redshift", "rollback"), ("snowflake", "rollback"), ("bigquery", "fail"), ("spark", "fail")])
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
