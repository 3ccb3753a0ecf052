"""Every statement dbt-eventbridge runs, rendered through each warehouse's real dbt adapter
with no connection: the golden files in tests/golden/ (reviewed on change) and the offline
proof for the warehouses CI cannot reach (BigQuery, Redshift).

    python -m devtools.offline_engines --check       # compare with tests/golden/ (the test does)
    python -m devtools.offline_engines --write       # rewrite tests/golden/ after a reviewed change

dbt keeps one adapter per process; each engine's project is parsed and opened in turn, in
this process only (the test runs it as a subprocess, away from the unit lane's live adapters).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden"

# Profiles that parse and open an adapter without reaching any server.
PROFILES: dict[str, str] = {
    "duckdb": "type: duckdb\n      path: ':memory:'\n",
    "postgres": "type: postgres\n      host: 127.0.0.1\n      port: 1\n      user: u\n      password: p\n"
                "      dbname: d\n      schema: analytics\n",
    "snowflake": "type: snowflake\n      account: offline\n      user: u\n      password: p\n      database: DB\n"
                 "      schema: analytics\n      warehouse: w\n",
    "bigquery": "type: bigquery\n      method: oauth\n      project: offline-project\n      dataset: analytics\n",
    "redshift": "type: redshift\n      host: 127.0.0.1\n      port: 1\n      user: u\n      password: p\n"
                "      dbname: d\n      schema: analytics\n",
    "spark": "type: spark\n      method: session\n      host: localhost\n      schema: analytics\n",
    "databricks": "type: databricks\n      host: offline.cloud.databricks.com\n      http_path: /sql/1.0/warehouses/w\n"
                  "      token: t\n      catalog: main\n      schema: analytics\n",
}
ENGINES = list(PROFILES)
# Engines whose adapter lives in a venv of its own (`make install-engines` makes it): this
# script runs itself there for them. dbt-databricks requires older dbt-spark and dbt-common
# than the main venv's adapters (constraints-databricks.txt).
OWN_VENV: dict[str, Path] = {"databricks": REPO / "build" / "databricks-venv" / "bin" / "python"}


def _project(folder: Path, engine: str) -> Any:
    from dbt_eventbridge.warehouse.project import DbtProject

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "models").mkdir(exist_ok=True)
    (folder / "dbt_packages").mkdir(exist_ok=True)
    link = folder / "dbt_packages" / "dbt_eventbridge"
    if not link.exists():
        link.symlink_to(REPO, target_is_directory=True)
    (folder / "dbt_project.yml").write_text(
        "name: eb_offline\nversion: '1.0.0'\nconfig-version: 2\nprofile: eb_offline\nmodel-paths: [models]\n"
        "seed-paths: []\ntest-paths: []\nsnapshot-paths: []\nanalysis-paths: []\n")
    (folder / "profiles.yml").write_text(
        f"eb_offline:\n  target: offline\n  outputs:\n    offline:\n      {PROFILES[engine]}      threads: 1\n")
    project = DbtProject(folder, profiles_dir=folder)
    project.parse()
    project.open_adapter()
    return project


def render(project: Any) -> list[tuple[str, str]]:
    """(case, SQL) for every macro and statement, with the arguments a run passes."""
    from dbt_eventbridge.warehouse.history import EVENT_COLUMNS, RUN_COLUMNS, RUN_COLUMNS_ADDED
    from dbt_eventbridge.warehouse.tables import LAYOUT_COLUMNS

    q = project.quote
    sql = project.sql
    database = None if project.adapter_type == "spark" else getattr(project.config.credentials, "database", None)
    model = project.adapter.Relation.create(database=database, schema="analytics", identifier="Customers")
    st = project.state_relation("eventbridge_state", "_eb_state__customers")
    nxt = project.state_relation("eventbridge_state", "_eb_next__customers")
    plan = project.state_relation("eventbridge_state", "_eb_plan__customers")
    acks = project.state_relation("eventbridge_state", "_eb_acks__customers")
    layouts = project.state_relation("eventbridge_state", "_eb_layouts")
    lock = project.state_relation("eventbridge_state", "_eb_lock__customers")
    objects = project.state_relation("eventbridge_state", "_eb_objects")
    runs = project.state_relation("eventbridge_state", "_eb_runs")
    events = project.state_relation("eventbridge_state", "_eb_events")
    keys = [q("customer_id"), q("Region")]
    columns = [*keys, q("email"), q("Plan")]
    hashed = sorted(columns)
    state_keys = ["_eb_c1", "_eb_c2"]
    old_columns = [["_eb_c3", "_eb_o3"], ["_eb_c4", "_eb_o4"]]
    new_columns = [[q("customer_id"), "_eb_c1"], [q("Region"), "_eb_c2"], [q("email"), "_eb_c3"], [q("Plan"), "_eb_c5"]]
    shapes = [{"id": 2, "mode": "compare", "pairs": [[q("email"), "_eb_c3", False], [q("Plan"), "_eb_c4", True]]},
              {"id": 3, "mode": "legacy", "pairs": [[q("email"), "_eb_c3", False]]},
              {"id": 4, "mode": "rebaseline", "pairs": []}]
    commit = {"plan": plan, "acks": acks, "keys": keys, "state_keys": state_keys}
    # The state's columns, as a run's commit reads them from the warehouse (Spark's commit needs them).
    state_columns = ["_eb_c1", "_eb_c2", "_eb_c3", "_eb_c4", "_eb_c5", "_eb_hash", "_eb_shape", "_eb_fp",
                     "_eb_delivered_at"]
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("row_hash", lambda: project.render_macro("row_hash", columns=hashed, alias="src")),
        ("hash_version", lambda: project.render_macro("hash_version")),
        ("session_setup", lambda: project.render_macro("session_setup", memory_limit="1GB")),
        ("json_types", lambda: project.call("json_types")),
        ("text_type", lambda: project.render_macro("text_type")),
        ("int_type", lambda: project.render_macro("int_type")),
        ("now_sql", lambda: project.render_macro("now_sql")),
        ("string_literal", lambda: project.render_macro("string_literal", value="it's a \\ test")),
        ("key_counts_sql", lambda: project.render_macro("key_counts_sql", model=model, keys=keys)),
        ("key_audit_sql", lambda: project.render_macro("key_audit_sql", model=model, keys=keys)),
        ("key_totals_sql", lambda: project.render_macro("key_totals_sql", model=model, keys=keys)),
        ("duplicate_keys_sql", lambda: project.render_macro("duplicate_keys_sql", model=model, keys=keys, limit=10)),
        ("key_distinct_rows_per_part", lambda: project.call("key_distinct_rows_per_part")),
        ("plan_select_sql first run", lambda: project.render_macro(
            "plan_select_sql", model=model, state=None, keys=keys, columns=columns, hash_columns=hashed,
            state_keys=state_keys, old_columns=old_columns, current=1, has_duplicates=False)),
        ("plan_select_sql", lambda: project.render_macro(
            "plan_select_sql", model=model, state=st, keys=keys, columns=columns, hash_columns=hashed,
            state_keys=state_keys, old_columns=old_columns, current=5, has_duplicates=True)),
        ("plan_select_sql exists only", lambda: project.render_macro(
            "plan_select_sql", model=model, state=st, keys=keys, columns=columns, hash_columns=hashed,
            state_keys=state_keys, old_columns=old_columns, current=5, has_duplicates=False, exists_only=True)),
        ("plan_select_sql schema change", lambda: project.render_macro(
            "plan_select_sql", model=model, state=st, keys=keys, columns=columns, hash_columns=hashed,
            state_keys=state_keys, old_columns=old_columns, current=5, stored_fps=[1], shapes=shapes,
            full_refresh=True, has_duplicates=False)),
        ("commit_sql", lambda: project.call("commit_sql", state=st, state_name=q("_eb_state__customers"),
                                            new_columns=new_columns, current=5, all_acked=False, state_columns=state_columns,
                                            **commit)),
        ("commit_sql all acked", lambda: project.call("commit_sql", state=st, state_name=q("_eb_state__customers"),
                                                      new_columns=new_columns, current=5, all_acked=True,
                                                      state_columns=state_columns, **commit)),
        ("rebuild_state_sql", lambda: project.call(
            "rebuild_state_sql", next=nxt, next_name=q("_eb_next__customers"), state=st, new_columns=new_columns,
            kept_columns=[["_eb_c4", "_eb_o4"]], copy_columns=["_eb_c1", "_eb_c2", "_eb_c3", "_eb_c4"], current=5,
            **commit)),
        ("rebuild_state_sql first", lambda: project.call(
            "rebuild_state_sql", next=nxt, next_name=q("_eb_next__customers"), state=None, new_columns=new_columns,
            kept_columns=[], copy_columns=[], current=1, **commit)),
        ("kept_shapes_sql", lambda: project.render_macro("kept_shapes_sql", state=st, **commit)),
        ("rename_table_sql", lambda: project.render_macro("rename_table_sql", relation=nxt,
                                                          new_name=q("_eb_state__customers"))),
        ("ack_insert_sql", lambda: project.render_macro("ack_insert_sql", acks=acks, runs=[[1, 3], [7, 7]])),
        ("ack_insert_max_rows", lambda: project.call("ack_insert_max_rows")),
        ("plan_index_sql", lambda: project.render_macro("plan_index_sql", plan=plan)),
        ("history_table_sql layouts", lambda: project.render_macro("history_table_sql", relation=layouts,
                                                                   columns=LAYOUT_COLUMNS)),
        ("history_table_sql runs", lambda: project.render_macro("history_table_sql", relation=runs,
                                                                columns=[list(c) for c in RUN_COLUMNS])),
        ("history_add_column_sql", lambda: ";\n".join(  # the migration of an earlier version's _eb_runs
            project.render_macro("history_add_column_sql", relation=runs, name=name, kind=kind)
            for name, kind in RUN_COLUMNS_ADDED)),
        ("history_second", lambda: project.render_macro("history_second", column="sent_at")),
        # The statements of warehouse/engines/statements.py, in this engine's subclass.
        ("create_lock", lambda: sql.create_lock(lock, "host:1:ab", "host", 1, 1700000000)),
        ("create_acks", lambda: sql.create_acks(acks)),
        ("create_table_as temporary", lambda: sql.create_table_as(
            project.engine.temp_relation(project, "eventbridge_state", "eb_dry_run_1"), "select 1 as x",
            temporary=True)),
        ("drop_temp", lambda: sql.drop_temp(project.engine.temp_relation(project, "eventbridge_state",
                                                                         "eb_dry_run_1"))),
        ("insert_values", lambda: sql.insert_values(objects, {"name": "o'k\\", "kind": None, "created_epoch": 7})),
        ("delete_where", lambda: sql.delete_where(objects, name="_eb_plan__customers")),
        ("touch_object", lambda: sql.touch_object(objects, "_eb_state__customers", 1700000000, "state", "customers")),
        ("forget_object", lambda: sql.forget_object(objects, "_eb_state__customers")),
        ("lock_beat", lambda: sql.lock_beat(lock, "host:1:ab", 1700000000)),
        ("layout_upsert", lambda: sql.layout_upsert(layouts, "customers", {"pending_layout": "{}",
                                                                          "updated_epoch": 1})),
        ("layout_forget_unused", lambda: sql.layout_forget_unused(layouts, "customers")),
        ("ack_unsent", lambda: sql.ack_unsent(acks, plan, ["added", "changed"])),
        ("ack_totals", lambda: sql.ack_totals(acks)),
        ("op_counts", lambda: sql.op_counts(plan)),
        ("duplicate_key_groups", lambda: sql.duplicate_key_groups(plan, keys)),
        ("plan_changes", lambda: sql.plan_changes(str(plan), ["added", "changed", "removed"], columns,
                                                  ["_eb_o3", "_eb_o4"], False, (0, 1000))),
        ("legacy_apply_journal", lambda: sql.legacy_apply_journal(
            st, q("_eb_state__customers"), plan, acks, keys, "_eb_row", project.render_macro("now_sql"))),
        ("mark_interrupted", lambda: sql.mark_interrupted(runs, "customers", "run-1")),
        ("delete_before", lambda: sql.delete_before(events, "sent_at", "2026-01-01T00:00:00")),
        ("recent_runs", lambda: sql.recent_runs(runs, ["run_id", "status"], "customers", 20)),
        ("event_counts", lambda: sql.event_counts(events, "run-1")),
        ("timeline", lambda: sql.timeline(events, "run-1", project.render_macro("history_second",
                                                                                column="sent_at"))),
        ("history event columns", lambda: ", ".join(f"{c} {k}" for c, k in EVENT_COLUMNS)),
    ]
    out = []
    for name, make in cases:
        value = make()
        if value is None:  # a statement this engine does without
            text = "-- (no statement on this engine)"
        elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            text = ";\n".join(str(v).strip() for v in value)
        elif isinstance(value, (list, tuple, int)):
            text = json.dumps(value)
        else:
            text = str(value).strip()
        out.append((name, text))
    return out


# -- the connection-facing code, on each adapter's real connection manager with a fake handle --

ROWS = [(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, "e")]


class _Field:
    def __init__(self, name: str) -> None:
        self.name = name


class _BigQueryRow:
    def __init__(self, values: tuple[Any, ...]) -> None:
        self._values = values

    def values(self) -> tuple[Any, ...]:
        return self._values


class _BigQueryRows:
    """A RowIterator: rows fetched a page (two rows) at a time, each page logged."""

    def __init__(self, log: list[str], rows: list[tuple[Any, ...]]) -> None:
        self.schema = [_Field("ID"), _Field("Name")] if rows else []
        self._log = log
        self._rows = rows

    def __iter__(self) -> Any:
        for i in range(0, len(self._rows), 2):
            self._log.append(f"page {i // 2 + 1}")
            yield from (_BigQueryRow(r) for r in self._rows[i:i + 2])


class _BigQueryJob:
    location = job_id = project = None

    def __init__(self, log: list[str], sql: str) -> None:
        self._log = log
        self._sql = sql

    def result(self, **_: Any) -> _BigQueryRows:
        return _BigQueryRows(self._log, ROWS if self._sql.lstrip().startswith("select") else [])


class FakeBigQueryClient:
    """google.cloud.bigquery.Client as dbt-bigquery uses it; it has no ``cursor``."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def query(self, query: str, **_: Any) -> _BigQueryJob:
        self.log.append(query)
        if "fail" in query:
            raise RuntimeError("Syntax error: fail")
        return _BigQueryJob(self.log, query)

    def close(self) -> None:
        pass


class FakeCursor:
    """A DB-API cursor that logs statements; a select returns ROWS, ``fetch forward n``
    the next n of them (Redshift's SQL cursors)."""

    def __init__(self, log: list[str], fetchmany: bool = True) -> None:
        self.log = log
        self.description: list[tuple[str, ...]] | None = None
        self._rows: list[tuple[Any, ...]] = []
        self._served = 0
        self.sqlstate = self.sfqid = None
        self.rowcount = 0
        if not fetchmany:
            self.fetchmany = None

    def execute(self, sql: str, *params: Any) -> FakeCursor:
        self.log.append(sql.strip())
        if "fail" in sql:
            raise RuntimeError("syntax error at or near fail")
        lowered = sql.strip().lower()
        if lowered.startswith("select"):
            self.description, self._rows = [("ID",), ("Name",)], list(ROWS)
        elif lowered.startswith("fetch forward"):
            n = int(lowered.split()[2])
            self.description, self._rows = [("id",), ("name",)], ROWS[self._served:self._served + n]
            self._served += len(self._rows)
        else:
            self.description, self._rows = None, []
        return self

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._rows = self._rows, []
        return rows

    def fetchmany(self, size: int) -> list[tuple[Any, ...]]:  # type: ignore[no-redef]
        rows, self._rows = self._rows[:size], self._rows[size:]
        return rows

    def close(self) -> None:
        pass


class FakeConnection:
    """A driver connection: ``cursor()`` takes no name (no server-side cursors)."""

    def __init__(self, log: list[str], fetchmany: bool = True) -> None:
        self.log = log
        self._fetchmany = fetchmany
        self._cursor = FakeCursor(log, fetchmany)  # one per connection, as Redshift's stream expects none

    def cursor(self) -> FakeCursor:
        return FakeCursor(self.log, self._fetchmany) if self._fetchmany else self._cursor

    def rollback(self) -> None:
        self.log.append("<driver rollback>")

    def commit(self) -> None:
        self.log.append("<driver commit>")

    def close(self) -> None:
        pass


class _FakeFrame:
    """What the local Spark session's cursor holds: a DataFrame, read by its local iterator."""

    def __init__(self, log: list[str]) -> None:
        self.columns = ["ID", "Name"]
        self._log = log

    def toLocalIterator(self) -> Any:  # PySpark's name
        self._log.append("<toLocalIterator>")
        return iter(ROWS)


class FakeSparkCursor:
    """dbt-spark's session Cursor: execute, fetchall, fetchone, description; no fetchmany."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self._df: _FakeFrame | None = None

    def execute(self, sql: str, *params: Any) -> None:
        self.log.append(sql.strip())
        if "fail" in sql:
            raise RuntimeError("[PARSE_SYNTAX_ERROR] Syntax error at or near 'fail'")
        self._df = _FakeFrame(self.log) if sql.strip().lower().startswith("select") else None

    @property
    def description(self) -> list[tuple[str, ...]] | None:
        return [(c,) for c in self._df.columns] if self._df else None

    def fetchall(self) -> list[tuple[Any, ...]] | None:
        return list(ROWS) if self._df else None

    def close(self) -> None:
        pass


class FakeSparkConnection:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def cursor(self) -> FakeSparkCursor:
        return FakeSparkCursor(self.log)


class FakeDatabricksCursor(FakeCursor):
    """databricks.sql's Cursor: a closed one has no rows to give (dbt-databricks' handle
    closes its cursor at each statement it runs)."""

    closed = False
    query_id = "offline"

    def __init__(self, connection: FakeDatabricksConnection) -> None:
        super().__init__(connection.log)
        self.connection = connection

    def close(self) -> None:
        self.closed = True

    def fetchall(self) -> list[tuple[Any, ...]]:
        if self.closed:
            raise RuntimeError("Attempting to fetch from a closed cursor")
        return super().fetchall()

    def fetchmany(self, size: int) -> list[tuple[Any, ...]]:
        if self.closed:
            raise RuntimeError("Attempting to fetch from a closed cursor")
        return super().fetchmany(size)


class FakeDatabricksConnection(FakeConnection):
    """databricks.sql's Connection, as dbt-databricks' DatabricksHandle holds it."""

    def cursor(self) -> FakeCursor:
        return FakeDatabricksCursor(self)

    def get_session_id_hex(self) -> str:
        return "offline"


def _fake_handle(project: Any, log: list[str]) -> Any:
    kind = project.adapter_type
    if kind == "bigquery":
        return FakeBigQueryClient(log)
    if kind == "databricks":
        from dbt.adapters.databricks.handle import DatabricksHandle

        return DatabricksHandle(FakeDatabricksConnection(log), is_cluster=False)  # type: ignore[arg-type]
    if kind == "spark":
        from dbt.adapters.spark.session import SessionConnectionWrapper

        return SessionConnectionWrapper(FakeSparkConnection(log))  # type: ignore[arg-type]
    return FakeConnection(log, fetchmany=kind != "redshift")


def probe(project: Any) -> dict[str, Any]:
    """Our statements, transactions and streamed reads, run through the adapter's real
    connection manager on a fake driver handle: what reached the driver, and what came back."""
    from dbt.adapters.contracts.connection import ConnectionState

    from dbt_eventbridge.errors import WarehouseError

    log: list[str] = []
    out: dict[str, Any] = {}
    with project.adapter.connection_named("probe"):
        connection = project.adapter.connections.get_thread_connection()
        connection.handle = _fake_handle(project, log)
        connection.state = ConnectionState.OPEN

        def step(name: str, run: Callable[[], Any]) -> None:
            del log[:]
            try:
                value = run()
                error = None
            except WarehouseError as e:
                value, error = None, e.message
            out[name] = {"driver": list(log), "value": value, "error": error,
                         "dbt_transaction_open": bool(connection.transaction_open)}

        step("select", lambda: [list(r) for r in project.execute("select id, name from t", fetch=True)])
        step("records", lambda: project.records("select id, name from t"))
        step("transaction", lambda: _in_transaction(project, ["insert into t values (1)", "create table u as select 1 as x",
                                                                   "delete from t"]))
        step("failed transaction", lambda: _in_transaction(project, ["insert into t values (1)", "fail"]))
        step("stream", lambda: [[names, [list(r) for r in rows]] for names, rows in
                                project.stream("select id, name from t", 2)])
        if project.adapter_type == "databricks":  # its handle closes the last cursor at each statement
            step("stream with statements between batches", lambda: _stream_with_writes(project))
    return out


def _stream_with_writes(project: Any) -> list[list[list[Any]]]:
    """A stream's batches, with a statement run after each (as a sync writes its history)."""
    batches = []
    for _, rows in project.stream("select id, name from t", 2):
        batches.append([list(r) for r in rows])
        project.execute("insert into h values (1)")
    return batches


def _in_transaction(project: Any, statements: list[str]) -> None:
    with project.transaction():
        for sql in statements:
            project.execute(sql)


def golden_text(engine: str, rendered: list[tuple[str, str]]) -> str:
    head = (f"-- dbt-eventbridge's SQL on {engine}, rendered offline by devtools/offline_engines.py.\n"
            "-- Reviewed on change: `python -m devtools.offline_engines --write` rewrites it.\n")
    return head + "".join(f"\n-- {name}\n{text};\n" for name, text in rendered)


def render_all(engines: list[str], probes: bool = False) -> dict[str, Any]:
    """{engine: {"sql": [[case, sql], ...], "probe": {...}}}"""
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="eb_offline_") as tmp:
        for engine in engines:
            project = _project(Path(tmp) / engine, engine)
            out[engine] = {"sql": render(project)}
            if probes and engine not in ("duckdb", "postgres"):  # those two run for real in the tests
                out[engine]["probe"] = probe(project)
    return out


def _render_in_own_venv(engine: str) -> dict[str, Any]:
    python = OWN_VENV[engine]
    if _importable(engine):  # in that venv now (or the adapter was installed here)
        return render_all([engine], probes=True)
    if not python.exists():
        raise SystemExit(f"{engine}'s adapter has a venv of its own, {python.parents[1]}, which is missing: "
                         "`make install-engines` makes it")
    import subprocess

    done = subprocess.run([str(python), "-m", "devtools.offline_engines", "--json", engine], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"rendering {engine} in {python} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout))


def _importable(engine: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(f"dbt.adapters.{engine}") is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite the golden files")
    parser.add_argument("--check", action="store_true", help="exit 1 when a golden file differs")
    parser.add_argument("--json", action="store_true", help="print {engine: [[case, sql], ...]}")
    parser.add_argument("engines", nargs="*", default=ENGINES)
    args = parser.parse_args(argv)
    here = [e for e in args.engines if e not in OWN_VENV]
    rendered = render_all(here, probes=args.json) if here else {}
    for engine in args.engines:
        if engine in OWN_VENV:
            rendered[engine] = _render_in_own_venv(engine)[engine]
    if args.json:
        print(json.dumps(rendered, default=str))
        return 0
    differs = False
    for engine, found in rendered.items():
        cases = found["sql"]
        path = GOLDEN / f"{engine}.sql"
        text = golden_text(engine, cases)
        if args.write:
            GOLDEN.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            continue
        old = path.read_text() if path.exists() else ""
        if old != text:
            differs = True
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), text.splitlines(True),
                                                       str(path), f"{engine} (rendered now)"))
    return 1 if differs and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
