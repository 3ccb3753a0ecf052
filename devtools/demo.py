"""`make demo`: the whole path on one laptop.

Starts a local EventBridge (moto) with a rule that routes every event to an SQS queue,
and a local Custom Event Bus (EventBridge's v2 API, devtools/eventbridgev2_endpoint.py),
builds the sample dbt project on DuckDB for day 1, syncs, and prints the events that
arrived on both; then switches the data to day 2 and does it again, so added, changed and
removed events show up. Everything it starts is stopped at the end.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from devtools.eventbridgev2_endpoint import LocalEventBridgeV2
from devtools.local_aws import LocalEventBridge

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "integration_project"
BIN = Path(sys.executable).parent
BUSES = ("crm-events", "default")


def run(cmd: list[str], env: dict[str, str], check: bool = True) -> int:
    print(f"\n$ {shlex.join(cmd)}", flush=True)
    rc = subprocess.run(cmd, cwd=PROJECT, env=env).returncode
    if check and rc not in (0, 1):
        sys.exit(f"demo: `{' '.join(cmd)}` failed with exit code {rc}")
    return rc


def show(events: list[dict], title: str) -> None:
    print(f"\n=== {title}: {len(events)} event(s) arrived in SQS ===")
    for ev in sorted(events, key=lambda e: (e["detail-type"], json.dumps(e["detail"], sort_keys=True))):
        detail = json.dumps(ev["detail"], ensure_ascii=False)
        line = f"{ev['source']:<18} {ev['detail-type']:<18} {detail}"
        print(textwrap.shorten(line, width=160, placeholder=" ..."))


def show_v2(events: list[dict], title: str, deduplicated: int) -> None:
    print(f"\n=== {title}: {len(events)} event(s) published, each once "
          f"({deduplicated} resend(s) answered DEDUPLICATED so far) ===")
    for ev in events[:8]:
        line = (f"seq {ev['SequenceNumber'][-4:]} group {ev['EventGroupId'][:10]}.. "
                f"dedup {ev['DeduplicationId'][:13]}.. {ev['DetailType']:<16} {ev['Detail']}")
        print(textwrap.shorten(line, width=160, placeholder=" ..."))
    if len(events) > 8:
        print(f"... and {len(events) - 8} more")


def main() -> int:
    target = PROJECT / "target"
    db = target / "demo.duckdb"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    with LocalEventBridge() as local, LocalEventBridgeV2() as v2:
        queues = {bus: local.create_bus_with_queue(bus) for bus in BUSES}
        v2_bus = v2.create_bus("customers")
        env = {**os.environ, **local.env(), "DBT_DUCKDB_PATH": str(db),
               "DBT_EVENTBRIDGE_ENDPOINT_URL": local.endpoint_url,
               "DBT_EVENTBRIDGE_V2_ENDPOINT_URL": v2.endpoint_url}
        env.pop("AWS_PROFILE", None)
        print(f"Local EventBridge at {local.endpoint_url}; buses {', '.join(BUSES)} each routed to an SQS queue.")
        print(f"Local Custom Event Bus (v2 API) at {v2.endpoint_url}: {v2_bus}")
        run([str(BIN / "dbt"), "deps", "--profiles-dir", "."], env)
        seen = 0
        for day in (1, 2):
            day_vars = json.dumps({"day": day, "demo_v2_bus": v2_bus})
            run([str(BIN / "dbt"), "build", "--profiles-dir", ".", "--vars", day_vars], env)
            run([str(BIN / "dbt-eventbridge"), "sync", "--profiles-dir", ".", "--vars", day_vars], env, check=True)
            events = [e for q in queues.values() for e in local.drain(q)]
            show(events, f"day {day}")
            delivered = v2.delivered(v2_bus)[seen:]
            seen += len(delivered)
            show_v2(delivered, f"day {day}, the v2 bus", v2.counts["deduplicated"])
        # The run history: what was sent for one row, and what AWS answered.
        last = json.dumps({"day": 2, "demo_v2_bus": v2_bus})
        run([str(BIN / "dbt-eventbridge"), "runs", "--profiles-dir", ".", "--limit", "7", "--vars", last], env)
        run([str(BIN / "dbt-eventbridge"), "inspect", "--profiles-dir", ".", "--sync", "customers_to_crm",
             "--key", "1", "--vars", last], env)
        run([str(BIN / "dbt-eventbridge"), "sync", "--profiles-dir", ".", "--report",
             str(target / "eventbridge_report.html"), "--quiet", "--vars", last], env)
        print("\nThe sync's result file: integration_project/target/eventbridge_sync_results.json")
        print("The HTML report of the last run: integration_project/target/eventbridge_report.html")
        print("Exit code 1 above is expected: the sample data has rows with NULL and duplicated keys and two "
              "web events whose payload is not a JSON object; they are reported, not sent.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
