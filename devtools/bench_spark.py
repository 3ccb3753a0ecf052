"""The Spark diff figure of `make bench` (``--spark``; issue 12): our plan on Spark against
Spark's own FULL OUTER JOIN of the same two tables.

A local Spark Thrift server (devtools/spark_server.py, as the tests start it) holds a model of
``rows`` rows; day 2 changes 1% of them, adds 0.5% and removes 0.5% (as the DuckDB figure).
Ours: the phases of ``sync --dry-run`` that diff (key audit, plan, streaming the changes to
Python), from the result file. The baseline: one hand-written FULL OUTER JOIN on the key,
comparing ``xxhash64`` of the columns, with the changed rows fetched to Python over the same
Thrift connection (PyHive, as dbt-spark connects). Both medians of ``repeats`` runs, in one
invocation: a ratio, not a wall time, is the figure.

What it cannot say: a cluster's speed (a local server, 2 cores, parquet on a local disk).
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

MODEL_SQL = """\
{{ config(materialized='table', file_format='parquet') }}
{%- set n = var('rows') | int %}
{%- set day = var('day', 1) | int %}
select
  cast(id as int) as id,
  concat('customer ', id) as name,
  case when id % 7 = 0 then null else concat('user', id, '@example.com') end as email,
  cast((id * 37) % 100000 / 100{% if day > 1 %} + case when id % 100 = 1 then 1 else 0 end{% endif %} as decimal(12, 2)) as amount,
  (id % 1000) / 7.0 as score,
  id % 3 = 0 as active,
  timestamp_seconds(1704067200 + id) as created_at,
  case when id % 11 = 0 then null else date_add(date '1970-01-01', cast(id % 20000 as int)) end as birthday,
  element_at(array('bronze', 'silver', 'gold'), cast(id % 3 + 1 as int)) as tier,
  cast(id % 97 as int) as bucket
from range(1, {{ n }} + 1{% if day > 1 %} + {{ n // 200 }}{% endif %})
{%- if day > 1 %}
where id % 200 <> 0
{%- endif %}
"""
COLUMNS = ["name", "email", "amount", "score", "active", "created_at", "birthday", "tier", "bucket"]


def write_project(folder: Path, port: int) -> None:
    (folder / "models").mkdir(parents=True)
    (folder / "dbt_project.yml").write_text(textwrap.dedent("""\
        name: eventbridge_bench_spark
        version: "1.0"
        profile: eventbridge_bench_spark
        vars:
          rows: 1000
        """))
    (folder / "profiles.yml").write_text(textwrap.dedent(f"""\
        eventbridge_bench_spark:
          target: bench
          outputs:
            bench:
              type: spark
              method: thrift
              host: 127.0.0.1
              port: {port}
              schema: bench
              threads: 2
              poll_interval: 1
        """))
    (folder / "packages.yml").write_text(f"packages:\n  - local: {ROOT}\n")
    (folder / "models" / "bench_model.sql").write_text(MODEL_SQL)
    (folder / "models" / "schema.yml").write_text(textwrap.dedent("""\
        version: 2
        models:
          - name: bench_model
            config:
              meta:
                eventbridge:
                  name: bench_spark
                  primary_key: id
                  source: com.example.bench
                  detail_type: CustomerChanged
                  event_bus: bench-bus
        """))


def _sql(port: int, statement: str, fetch_all: bool = False) -> list[tuple[Any, ...]]:
    from pyhive import hive

    con = hive.connect(host="127.0.0.1", port=port)
    try:
        cur = con.cursor()
        cur.execute(statement)
        if not fetch_all:
            return []
        out: list[tuple[Any, ...]] = []
        while rows := cur.fetchmany(2000):
            out.extend(rows)
        return out
    finally:
        con.close()


def baseline_seconds(port: int) -> tuple[float, int]:
    """Spark's own FULL OUTER JOIN on the key, the changed rows fetched: (seconds, rows)."""
    h = "xxhash64({a}." + ", {a}.".join(COLUMNS) + ")"
    sql = (f"select coalesce(n.id, p.id) as id, n.* from bench.bench_model n full outer join bench.bench_prev p "
           f"on n.id = p.id where n.id is null or p.id is null or {h.format(a='n')} <> {h.format(a='p')}")
    t = time.perf_counter()
    rows = _sql(port, sql, fetch_all=True)
    return time.perf_counter() - t, len(rows)


def run(rows: int, repeats: int, env: dict[str, str], step: Any) -> dict[str, Any]:
    import importlib.util

    if importlib.util.find_spec("pyspark") is None or importlib.util.find_spec("dbt.adapters.spark") is None:
        raise SystemExit("--spark needs PySpark and dbt-spark: run `make install-engines` first (about 3 minutes)")
    bindir = Path(sys.executable).parent
    folder = Path(tempfile.mkdtemp(prefix="eb-bench-spark-"))
    step("spark: starting a local Spark Thrift server (about 20 s)")
    server = subprocess.Popen([sys.executable, "-m", "devtools.spark_server", "--dir", str(folder / "spark")],
                              cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None and server.stdin is not None
    try:
        line = server.stdout.readline()
        if not line:
            raise SystemExit("the Spark Thrift server did not start (Java 17 and PySpark are needed)")
        port = int(json.loads(line)["port"])
        project = folder / "project"
        write_project(project, port)

        def cli(tool: str, *args: str, day: int = 1) -> dict[str, Any] | None:
            cmd = [str(bindir / tool), *args, "--vars", json.dumps({"rows": rows, "day": day}), "--project-dir",
                   str(project), "--profiles-dir", str(project)]
            subprocess.run(cmd, env=env, cwd=project, check=True, stdout=subprocess.DEVNULL)
            if tool != "dbt-eventbridge":
                return None
            return dict(json.loads((project / "target" / "eventbridge_sync_results.json").read_text()))

        step(f"spark: building {rows:,} rows and the first sync (backfill)")
        cli("dbt", "deps", "--quiet")
        cli("dbt", "run", "--quiet")
        cli("dbt-eventbridge", "sync", "--quiet")
        _sql(port, "create table bench.bench_prev as select * from bench.bench_model")
        step("spark: day 2 (1% changed, 0.5% added, 0.5% removed), dry runs and the baseline")
        cli("dbt", "run", "--quiet", day=2)
        ours, theirs, changes, found = [], [], 0, 0
        for _ in range(repeats):
            result = cli("dbt-eventbridge", "sync", "--quiet", "--dry-run", day=2)
            assert result is not None
            s = next(x for x in result["syncs"] if x["sync"] == "bench_spark")
            ours.append(sum(s["timings"].get(k, 0.0) for k in ("audit", "plan", "stream")))
            changes = sum(s["planned"].values())
            seconds, found = baseline_seconds(port)
            theirs.append(seconds)
        if found != changes:
            raise SystemExit(f"spark: our plan found {changes} changes, the FULL OUTER JOIN {found}")
        o, b = statistics.median(ours), statistics.median(theirs)
        return {"rows": rows, "changes": changes, "seconds": round(o, 2), "baseline_seconds": round(b, 2),
                "ratio": round(o / b, 2), "repeats": repeats,
                "server": "local Spark Thrift server (PySpark's jars), local[2], parquet"}
    finally:
        server.stdin.close()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(folder, ignore_errors=True)
