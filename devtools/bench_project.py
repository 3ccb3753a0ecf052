"""The many-models figures of `make bench` (issue 13, part 1): what a run with little to do costs.

A generated dbt project (DuckDB) with ``models`` small synced models, built with ``dbt run``
and synced once; then, in one invocation, whole processes measured by the operating system
(user + system CPU of the process and its children, wall time):

- ``dbt run`` and ``dbt parse`` of the same project (the baselines);
- ``dbt-eventbridge sync`` when nothing changed (target: at most 0.5x the CPU of ``dbt run``);
- its per-sync overhead (the sync phase over the number of syncs, from the result file;
  target: under 50 ms on DuckDB) and its startup (everything before the first sync);
- ``runs``, ``inspect`` and ``reset`` (target: each under 1 s of wall time);
- ``dbt-eventbridge build`` against ``dbt build && dbt-eventbridge sync`` when every row of
  every model changed (a var renames each row: 2,000 changed events either way), issue 14.

    python -m devtools.bench_project            # alone: 20 models
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

MODEL_SQL = """\
{{ config(materialized='table') }}
select i as id, 'name ' || (i + {{ var('shift', 0) }}) as name, i * 1.5 as amount, i % 2 = 0 as active,
       timestamp '2024-01-01' + to_seconds(i) as updated_at
from range(1, 101) as t(i)
"""


def write_duckdb_project(folder: Path, name: str, db_path: Path, extra: str = "") -> None:
    """A dbt project on one DuckDB file, with this checkout as its dbt package: its
    dbt_project.yml (``extra`` appended), profiles.yml and packages.yml, and models/."""
    (folder / "models").mkdir(parents=True)
    (folder / "dbt_project.yml").write_text(f'name: {name}\nversion: "1.0"\nprofile: {name}\n{extra}')
    (folder / "profiles.yml").write_text(textwrap.dedent(f"""\
        {name}:
          target: bench
          outputs:
            bench:
              type: duckdb
              path: "{db_path}"
              threads: 2
        """))
    (folder / "packages.yml").write_text(f"packages:\n  - local: {ROOT}\n")


def write_project(folder: Path, db_path: Path, models: int) -> None:
    write_duckdb_project(folder, "eventbridge_many", db_path)
    schema = ["version: 2", "models:"]
    for i in range(models):
        name = f"model_{i:02d}"
        (folder / "models" / f"{name}.sql").write_text(MODEL_SQL)
        schema.append(textwrap.indent(textwrap.dedent(f"""\
            - name: {name}
              config:
                meta:
                  eventbridge:
                    primary_key: id
                    event_bus: bench-bus
                    source: com.example.many
                    detail_type: Row{i}
                    detail:
                      columns: [id, name, amount, active, updated_at]
            """), "  ").rstrip())
    (folder / "models" / "schema.yml").write_text("\n".join(schema) + "\n")


class Measured:
    def __init__(self, seconds: float, cpu: float, stdout: str) -> None:
        self.seconds, self.cpu, self.stdout = seconds, cpu, stdout


def measure(cmd: list[str], env: dict[str, str], cwd: Path) -> Measured:
    """Wall time and the CPU of the process and every process it waited for (os.wait4's rusage
    covers the process; RUSAGE_CHILDREN deltas would mix in other children of ours)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} exited with {code}:\n{out[-3000:]}")
    return Measured(seconds, usage.ru_utime + usage.ru_stime, out)


def run(env: dict[str, str], models: int, repeats: int, step: Callable[[str], None]) -> dict[str, Any]:
    folder = Path(os.environ.get("BENCH_MANY_DIR") or tempfile.mkdtemp(prefix="eb-bench-many-"))
    try:
        project = folder / "project"
        write_project(project, folder / "many.duckdb", models)
        flags = ["--project-dir", str(project), "--profiles-dir", str(project)]
        dbt = [str(BIN / "dbt")]
        ours = [str(BIN / "dbt-eventbridge")]
        step(f"{models} models: dbt deps, dbt run, the first sync")
        measure([*dbt, "deps", "--quiet", *flags], env, project)
        measure([*dbt, "run", "--quiet", *flags], env, project)
        first = measure([*ours, "sync", "--quiet", *flags], env, project)
        result = json.loads((project / "target" / "eventbridge_sync_results.json").read_text())
        sent = sum(sum(s["sent"].values()) for s in result["syncs"])
        if sent != models * 100:
            raise SystemExit(f"the first sync of {models} models sent {sent} events, not {models * 100}")
        del first
        samples: dict[str, list[Measured]] = {k: [] for k in ("dbt_run", "dbt_parse", "sync", "runs", "inspect",
                                                               "reset", "import_dbt", "dbt_build", "sync_after_build",
                                                               "eb_build")}
        per_sync: list[float] = []
        startup: list[float] = []
        for r in range(repeats):
            step(f"{models} models: dbt run, dbt parse, a no-change sync, runs, inspect, reset ({r + 1}/{repeats})")
            # the floor of any process that uses dbt as a library: importing it
            samples["import_dbt"].append(measure([sys.executable, "-c", "import dbt.cli.main"], env, project))
            samples["dbt_run"].append(measure([*dbt, "run", "--quiet", *flags], env, project))
            samples["dbt_parse"].append(measure([*dbt, "parse", "--quiet", *flags], env, project))
            samples["sync"].append(measure([*ours, "sync", "--quiet", *flags], env, project))
            result = json.loads((project / "target" / "eventbridge_sync_results.json").read_text())
            if any(sum(s["sent"].values()) for s in result["syncs"]) or len(result["syncs"]) != models:
                raise SystemExit(f"the no-change sync sent events or missed syncs: {json.dumps(result)[:2000]}")
            startup.append(float(result.get("startup_seconds") or 0.0))
            per_sync.append(sum(float(s["seconds"]) for s in result["syncs"]) / models)
            samples["runs"].append(measure([*ours, "runs", "--limit", "5", *flags], env, project))
            run_id = result["run_id"]
            samples["inspect"].append(measure([*ours, "inspect", run_id, *flags], env, project))
            samples["reset"].append(measure([*ours, "reset", "--sync", "model_00", "--yes", *flags], env, project))
            # model_00 sends its rows again on the next sync: put it back where the others are.
            measure([*ours, "rebaseline", "--sync", "model_00", "--yes", *flags], env, project)
            # Every row of every model changes (shift 1), then changes back (shift 0): the two
            # commands and `dbt-eventbridge build` each build 20 models and send 2,000 events.
            shifted = ["--vars", "{shift: 1}"]
            samples["dbt_build"].append(measure([*dbt, "build", "--quiet", *flags, *shifted], env, project))
            samples["sync_after_build"].append(measure([*ours, "sync", "--quiet", *flags, *shifted], env, project))
            _check_sent(project, models)
            samples["eb_build"].append(measure([*ours, "build", "--eb-quiet", "--quiet", *flags], env, project))
            _check_sent(project, models)
    finally:
        if not os.environ.get("BENCH_MANY_DIR"):
            shutil.rmtree(folder, ignore_errors=True)

    def med(key: str, attr: str) -> float:
        return round(statistics.median(getattr(m, attr) for m in samples[key]), 3)

    out: dict[str, Any] = {"models": models, "repeats": repeats}
    for key in samples:
        out[key] = {"cpu_seconds": med(key, "cpu"), "seconds": med(key, "seconds")}
    out["sync_startup_seconds"] = round(statistics.median(startup), 3)
    out["per_sync_ms"] = round(statistics.median(per_sync) * 1000, 1)
    out["sync_cpu_vs_dbt_run"] = round(out["sync"]["cpu_seconds"] / out["dbt_run"]["cpu_seconds"], 2)
    two = [(b.cpu + s.cpu, b.seconds + s.seconds) for b, s in zip(samples["dbt_build"], samples["sync_after_build"],
                                                                   strict=True)]
    out["two_commands"] = {"cpu_seconds": round(statistics.median(c for c, _ in two), 3),
                           "seconds": round(statistics.median(w for _, w in two), 3)}
    out["build_cpu_vs_two_commands"] = round(out["eb_build"]["cpu_seconds"] / out["two_commands"]["cpu_seconds"], 2)
    out["build_wall_vs_two_commands"] = round(out["eb_build"]["seconds"] / out["two_commands"]["seconds"], 2)
    return out


def _check_sent(project: Path, models: int) -> None:
    result = json.loads((project / "target" / "eventbridge_sync_results.json").read_text())
    sent = sum(s["sent"]["changed"] for s in result["syncs"])
    if sent != models * 100 or len(result["syncs"]) != models:
        raise SystemExit(f"a run after every row changed sent {sent} changed events, not {models * 100}: "
                         f"{json.dumps(result)[:2000]}")


if __name__ == "__main__":
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1", "DBT_EVENTBRIDGE_REGION": "us-east-1",
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"}
    from devtools.stub_endpoint import StubEndpoint

    with StubEndpoint() as stub:
        env["DBT_EVENTBRIDGE_ENDPOINT_URL"] = stub.endpoint_url
        figures = run(env, int(sys.argv[1]) if len(sys.argv) > 1 else 20, 1,
                      lambda s: print(f"[bench] {s}", file=sys.stderr, flush=True))
    print(json.dumps(figures, indent=2))
