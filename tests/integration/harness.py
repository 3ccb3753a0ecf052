"""Drive a copy of integration_project/ the way a user does: dbt and dbt-eventbridge CLIs."""

from __future__ import annotations

import atexit
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import yaml

from devtools.local_aws import LocalEventBridge
from devtools.postgres import PgParams
from tests.integration import prewarmed

_SERVER = prewarmed.Server()
REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
_counter = itertools.count()


@dataclass
class CliResult:
    rc: int
    stdout: str
    stderr: str
    results: dict[str, Any] | None

    def sync(self, name: str) -> dict[str, Any]:
        assert self.results is not None, self.stderr
        found = [s for s in self.results["syncs"] if s["sync"] == name]
        assert found, f"no sync {name} in results: {[s['sync'] for s in self.results['syncs']]}"
        return found[0]


THRIFT_DROPPED = "TSocket read 0 bytes"


class Project:
    """A private copy of the sample dbt project on one engine, publishing to the local EventBridge."""

    def __init__(self, tmp: Path, engine: str, aws: LocalEventBridge, pg: PgParams | None = None,
                 snowflake_port: int | None = None, *, spark_port: int | None = None) -> None:
        self.dir = tmp / "project"
        _copy_sample_project(self.dir)
        self.engine = engine
        self.aws = aws
        self.pg = pg
        n = next(_counter)
        self.env = prewarmed.outside_env()
        self.env.update(aws.env())
        self.env["DBT_EVENTBRIDGE_ENDPOINT_URL"] = aws.endpoint_url
        self.env["DBT_DUCKDB_PATH"] = str(tmp / "warehouse.duckdb")
        self.env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
        if pg is not None:
            self.env.update(pg.env())
        if snowflake_port is not None:
            self.env["SNOWFLAKE_PORT"] = str(snowflake_port)
        if spark_port is not None:
            self.env["SPARK_PORT"] = str(spark_port)
        if pg is not None or snowflake_port is not None or spark_port is not None:
            # Each test gets its own schemas in the shared server.
            self.env["DBT_SCHEMA"] = f"analytics_{os.getpid()}_{n}"
            self.env["DBT_EVENTBRIDGE_STATE_SCHEMA"] = f"eb_state_{os.getpid()}_{n}"
        self.drain()  # events of earlier tests must not leak into this one
        # What `dbt deps` installs (a link to this checkout, and the lock file) is the same for
        # every copy: it runs once per test process, and each copy gets what it installed.
        installed = _installed_packages()
        shutil.copytree(installed / "dbt_packages", self.dir / "dbt_packages", symlinks=True)
        shutil.copyfile(installed / "package-lock.yml", self.dir / "package-lock.yml")

    @property
    def db(self) -> Path:
        """The DuckDB file of this copy (read it only while no CLI runs)."""
        return Path(self.env["DBT_DUCKDB_PATH"])

    @property
    def target_args(self) -> list[str]:
        return ["--profiles-dir", str(self.dir), "--target", self.engine]

    def run(self, cmd: list[str], extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        env = {**self.env, **(extra_env or {})}
        if Path(cmd[0]).name in prewarmed.SERVED and not os.environ.get("EB_TEST_COLD"):
            return _SERVER.run(cmd, self.dir, env, 600, self.dir.parent)
        return subprocess.run(cmd, cwd=self.dir, env=env, capture_output=True, text=True, timeout=600)

    def run_ok(self, cmd: list[str]) -> subprocess.CompletedProcess[str]:
        p = self.run(cmd)
        assert p.returncode == 0, f"{cmd} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
        return p

    def build(self, day: int = 1, expect_rc: int = 0, **more_vars: Any) -> subprocess.CompletedProcess[str]:
        vars_ = json.dumps({"day": day, **more_vars})
        cmd = [str(BIN / "dbt"), "build", "--quiet", *self.target_args, "--vars", vars_]
        p = self.run(cmd)
        if self.engine == "spark" and THRIFT_DROPPED in p.stdout:
            # The local Spark Thrift server now and then drops a connection in the middle of
            # dbt's own statements (seen once in the CI runs of 2026-12-07, before our code ran). The
            # build is the test's set-up, not what it checks, and rebuilding is idempotent.
            p = self.run(cmd)
        assert p.returncode == expect_rc, f"dbt build: rc {p.returncode}\n{p.stdout}\n{p.stderr}"
        return p

    def sync(self, *args: str, extra_env: dict[str, str] | None = None, vars_: dict[str, Any] | None = None
             ) -> CliResult:
        cmd = [str(BIN / "dbt-eventbridge"), *args, *self.target_args]
        if vars_:
            cmd += ["--vars", json.dumps(vars_)]
        if not args or args[0] not in ("sync", "build", "run", "seed", "snapshot", "validate", "reset", "rebaseline",
                                       "runs", "inspect", "schemas"):
            cmd.insert(1, "sync")
        p = self.run(cmd, extra_env)
        assert "Traceback" not in p.stderr and "Traceback" not in p.stdout, p.stderr
        path = self.dir / "target" / "eventbridge_sync_results.json"
        results = json.loads(path.read_text()) if path.exists() else None
        if results is not None:
            path.unlink()
        return CliResult(p.returncode, p.stdout, p.stderr, results)

    def drain(self) -> dict[str, list[dict[str, Any]]]:
        """Every event that reached each bus since the last drain (through its SQS queue).

        moto routes an event to its SQS target inside the PutEvents call, so once the
        CLI has exited everything it delivered is already in the queue.
        """
        sqs = self.aws.client("sqs")
        out: dict[str, list[dict[str, Any]]] = {}
        for bus, url in self.aws.queues.items():  # type: ignore[attr-defined]
            found: list[dict[str, Any]] = []
            while True:
                msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                           VisibilityTimeout=60).get("Messages", [])
                if not msgs:
                    break
                sqs.delete_message_batch(QueueUrl=url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)])
                found += [json.loads(m["Body"]) for m in msgs]
            out[bus] = found
        return out


_installed: list[Path] = []


def _installed_packages() -> Path:
    """A folder where `dbt deps` ran on the sample project's packages.yml (once per test process)."""
    if not _installed:
        folder = Path(tempfile.mkdtemp(prefix="dbt-eventbridge-deps-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _copy_sample_project(folder)
        env = {**prewarmed.outside_env(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
        p = subprocess.run([str(BIN / "dbt"), "deps", "--quiet"], cwd=folder, env=env, capture_output=True,
                           text=True, timeout=600)
        assert p.returncode == 0, f"dbt deps failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
        _installed.append(folder)
    return _installed[0]


def _copy_sample_project(dest: Path) -> None:
    """integration_project/ as a user would check it out (nothing dbt made), with our package
    installed from this checkout."""
    shutil.copytree(REPO_ROOT / "integration_project", dest, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("target", "dbt_packages", "logs", "package-lock.yml"))
    (dest / "packages.yml").write_text(f"packages:\n  - local: {REPO_ROOT}\n")


def by_type(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        out.setdefault(e["detail-type"], []).append(e)
    return out


def details(events: list[dict[str, Any]], detail_type: str | None = None, source: str | None = None
            ) -> list[dict[str, Any]]:
    return [e["detail"] for e in events
            if (detail_type is None or e["detail-type"] == detail_type)
            and (source is None or e["source"] == source)]


def canon(items: list[Any]) -> list[str]:
    """Order-free comparison of JSON values."""
    return sorted(json.dumps(i, sort_keys=True, ensure_ascii=False) for i in items)


def edit_schema(project: Project, edit: Callable[[dict[str, Any]], None]) -> None:
    """Change models/schema.yml of a project copy through a function of {model name: model}."""
    path = project.dir / "models" / "schema.yml"
    doc = yaml.safe_load(path.read_text())
    edit({m["name"]: m for m in doc["models"]})
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# Bookkeeping beside the delivered state: the run history, and dbt's own results (written by
# the package's on-run-end hook on every dbt invocation).
HISTORY_TABLES = ("_eb_runs", "_eb_events", "_eb_alert_status", "_eb_dbt_results")


def state_tables(db: Path, schema: str = "eventbridge_state", history: bool = False) -> dict[str, list[tuple]]:
    """Every table of the state schema of a DuckDB file, in a stable order (never while a CLI runs).

    The run history is left out unless asked for: it records failed runs too, while the
    delivered state must not change when a run fails."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = ? order by 1",
            [schema]).fetchall() if history or r[0] not in HISTORY_TABLES]
        return {n: con.execute(f'select * from {schema}."{n}" order by all').fetchall() for n in names}
    finally:
        con.close()


def add_model(project: Project, name: str, sql: str, sync: Any = None, *, meta: dict[str, Any] | None = None,
              columns: list[dict[str, Any]] | None = None) -> None:
    """A model of the test's own in the project copy (models/extra/<name>.sql and .yml):
    `sync` is its `config: meta: eventbridge:` value, `meta` the whole meta when given."""
    folder = project.dir / "models" / "extra"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.sql").write_text(sql)
    entry: dict[str, Any] = {"name": name, "config": {"meta": meta if meta is not None else {"eventbridge": sync}}}
    if columns:
        entry["columns"] = columns
    (folder / f"{name}.yml").write_text(yaml.safe_dump({"version": 2, "models": [entry]}, sort_keys=False,
                                                       allow_unicode=True))


def dbt(project: Project, *args: str, expect_rc: int = 0, vars_: dict[str, Any] | None = None
        ) -> subprocess.CompletedProcess[str]:
    """One dbt command on the project copy, as a user types it."""
    cmd = [str(BIN / "dbt"), args[0], "--quiet", *project.target_args, *args[1:]]
    if vars_:
        cmd += ["--vars", json.dumps(vars_)]
    p = project.run(cmd)
    assert p.returncode == expect_rc, f"dbt {' '.join(args)}: rc {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def sql(project: Project, statement: str) -> list[tuple]:
    """A statement on the project's warehouse, as another client would run it (never during a DuckDB run)."""
    if project.engine == "postgres":
        import psycopg2

        assert project.pg is not None
        con = psycopg2.connect(**project.pg.connect_kwargs())
        try:
            with con, con.cursor() as cur:
                cur.execute(statement)
                return cur.fetchall() if cur.description else []
        finally:
            con.close()
    if project.engine == "spark":
        from pyhive import hive  # dbt-spark's Thrift client, as dbt connects

        con = hive.connect(host="127.0.0.1", port=int(project.env["SPARK_PORT"]))
        try:
            cur = con.cursor()
            cur.execute(statement)
            return [tuple(r) for r in cur.fetchall()] if cur.description else []
        finally:
            con.close()
    con = duckdb.connect(str(project.db))
    try:
        return con.execute(statement).fetchall()
    finally:
        con.close()


def model_schema(project: Project) -> str:
    return project.env["DBT_SCHEMA"] if project.engine in ("postgres", "spark") else "main"


def state_schema(project: Project) -> str:
    return project.env.get("DBT_EVENTBRIDGE_STATE_SCHEMA", "eventbridge_state")


def decode_state(layout_text: str, names: list[str], rows: list[tuple]) -> list[dict[str, Any]]:
    """A typed state's rows as {model column: value}, each in the shape it was delivered in."""
    shapes = {s["id"]: s["columns"] for s in json.loads(layout_text)["shapes"]}
    pos = {n: i for i, n in enumerate(names)}
    out = []
    for r in rows:
        cols = shapes[r[pos["_eb_shape"]]]
        out.append({name: r[pos[f"_eb_c{index}"]] for name, index, _ in cols})
    return sorted(out, key=lambda d: json.dumps(d, sort_keys=True, default=str))


def delivered_rows(db: Path, sync: str, schema: str = "eventbridge_state") -> list[dict[str, Any]]:
    """What the state of one sync of a DuckDB file says was delivered (never while a CLI runs)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        (layout,) = con.execute(f"select layout from {schema}._eb_layouts where sync_name = ?", [sync]).fetchone()
        cur = con.execute(f'select * from {schema}."_eb_state__{sync}"')
        names = [d[0] for d in cur.description]
        return decode_state(layout, names, cur.fetchall())
    finally:
        con.close()


def expected_changes(before: dict[int, str], after: dict[int, str]) -> set[tuple[int, str, str]]:
    """(key, op, value) of the changes that take a model from ``before`` to ``after`` (key -> value)."""
    out = {(k, "added", v) for k, v in after.items() if k not in before}
    out |= {(k, "removed", v) for k, v in before.items() if k not in after}
    out |= {(k, "changed", v) for k, v in after.items() if k in before and before[k] != v}
    return out
