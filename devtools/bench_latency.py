"""The latency figures of `make bench` (issue 13, part 2): one backfill of the same rows
through the real CLI, with default settings, against the stub answering each request after
0, 10, 30 and 100 ms; and at each latency, what a user would write instead: a script with a
pool of 32 threads calling boto3's ``put_events`` with 10 entries a call.

Targets: at 30 ms, at least 0.8x the events/s at 0 ms (same bench run); at every latency, at
least 1.5x the script's events/s. The stub counts the connections opened: with keep-alive
reuse they are about the requests in flight, not the requests sent.

    python -m devtools.bench_latency --rows 20000      # alone, on a project of its own
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

LATENCIES_MS = (0, 10, 30, 100)
SCRIPT_THREADS = 32


def script_events_per_second(endpoint_url: str, db_path: Path, rows: int, region: str) -> float:
    """A pool of 32 threads, each with the shared boto3 client, put_events of 10 rows a call."""
    from concurrent.futures import ThreadPoolExecutor

    import boto3
    from botocore.config import Config

    from devtools.bench import publish_rows

    data = publish_rows(db_path, rows)
    client = boto3.client("events", endpoint_url=endpoint_url, region_name=region, aws_access_key_id="bench",
                          aws_secret_access_key="bench", config=Config(max_pool_connections=SCRIPT_THREADS))
    calls = [[{"Source": "com.example.bench", "DetailType": "CustomerAdded", "EventBusName": "bench-bus",
               "Detail": json.dumps(r, default=str)} for r in data[i:i + 10]] for i in range(0, len(data), 10)]
    lock = threading.Lock()
    failed = [0]

    def put(entries: list[dict[str, Any]]) -> None:
        answer = client.put_events(Entries=entries)
        if answer.get("FailedEntryCount"):
            with lock:
                failed[0] += answer["FailedEntryCount"]

    t = time.perf_counter()
    with ThreadPoolExecutor(SCRIPT_THREADS) as pool:
        list(pool.map(put, calls))
    seconds = time.perf_counter() - t
    if failed[0]:
        raise SystemExit(f"the boto3 script had {failed[0]} entries refused by the stub")
    return len(data) / seconds


def run(b: Any, db_path: Path, rows: int, region: str, step: Any) -> dict[str, Any]:
    from devtools.stub_endpoint import StubEndpoint

    step(f"latency: building a {rows:,}-row model for the backfills")
    b.dbt("run", "-s", "bench_publish", extra_vars={"publish_rows": rows})
    out: dict[str, Any] = {"rows": rows, "script_threads": SCRIPT_THREADS, "latencies": []}
    for ms in LATENCIES_MS:
        with StubEndpoint(latency=ms / 1000) as stub:
            step(f"latency {ms} ms: our backfill of {rows:,} rows (default settings)")
            run_ = b.sync_at(stub.endpoint_url, "-s", "bench_publish", "--full-refresh", "--allow-mass-removal",
                             extra_vars={"publish_rows": rows})
            s = run_.sync("bench_publish")
            sent = sum(s["sent"].values())
            seconds = s["timings"].get("publish", 0.0)
            stats = stub.stats()
            if stats["entries"] < rows:
                raise SystemExit(f"latency bench, {ms} ms: {rows} rows, but the stub accepted {stats['entries']}")
            ours = {"events": sent, "seconds": round(seconds, 2),
                    "events_per_second": round(sent / seconds) if seconds else 0,
                    "requests": stats["requests"], "connections": stats["connections"],
                    "cpu_seconds": run_.cpu_seconds}
            stub.reset()
            step(f"latency {ms} ms: the boto3 script, {SCRIPT_THREADS} threads")
            script = script_events_per_second(stub.endpoint_url, db_path, rows, region)
        out["latencies"].append({"latency_ms": ms, "ours": ours, "script_events_per_second": round(script),
                                 "vs_script": round(ours["events_per_second"] / script, 2) if script else 0})
    by_ms = {x["latency_ms"]: x for x in out["latencies"]}
    zero = by_ms[0]["ours"]["events_per_second"] or 1
    out["ratio_30ms_to_0ms"] = round(by_ms[30]["ours"]["events_per_second"] / zero, 2)
    out["min_vs_script"] = min(x["vs_script"] for x in out["latencies"])
    return out


def main() -> int:
    import argparse
    import os
    import shutil
    import tempfile

    from devtools import bench

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=20_000)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="eb-bench-latency-"))
    try:
        db_path = folder / "bench.duckdb"
        project = folder / "project"
        bench.write_project(project, db_path)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
               "AWS_DEFAULT_REGION": bench.REGION, "DBT_EVENTBRIDGE_REGION": bench.REGION,
               "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"}
        b = bench.Bench(project, env, {"rows": 10, "publish_rows": args.rows, "big_rows": 1, "day": 1})
        b.dbt("deps")
        print(json.dumps(run(b, db_path, args.rows, bench.REGION, bench.step), indent=2))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
