"""`make bench` itself: it runs end to end at small sizes and reports every figure of issue 4."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_quick_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    p = subprocess.run([sys.executable, "-m", "devtools.bench", "--quick", "--workers", "1,2", "--json", str(out)],
                       cwd=REPO, capture_output=True, text=True, timeout=900)
    # --quick judges no target (the figures mean nothing at these sizes): it exits 0 when it ran
    assert p.returncode == 0, p.stdout + p.stderr
    f = json.loads(out.read_text())
    assert set(f["targets"]) == {
        "diff within 2x of a FULL OUTER JOIN", "no-change run < 2 s after adapter open", "publish >= 15x naive",
        "publish >= 10,000 events/s, one process", "render >= 30,000 rows/s (template)",
        "memory < 400 MB, flat from 1M to 3M", "noisy throttling (10% of entries) >= 0.5x unthrottled",
        "quota used >= 0.8", "30 ms latency >= 0.8x zero latency (defaults)",
        "0-100 ms: >= 1.5x a 32-thread boto3 script", "connections reused (<= 64 in flight + 2)",
        "no-change sync of 3 models <= 0.5x CPU of dbt run", "per-sync overhead < 50 ms (DuckDB)",
        "runs, inspect, reset < 1 s", "publish CPU < 50 us an event (template)",
        "dbt-eventbridge build < dbt build && sync (3 models, every row changed)",
        "checking details against a declared contract <= 1.25x the render's CPU"}
    # what the figures are made of is real: every event reached the stub, every phase was timed
    assert f["publish"]["delivered_to_stub"] == f["publish"]["rows"] == 5_000
    assert f["publish"]["cpu_us_per_event"] > 0
    assert [w["workers"] for w in f["scale_out"]] == [1, 2]
    assert all(w["delivered_to_stub"] == w["events"] == 5_000 for w in f["scale_out"])
    assert f["diff"]["changes"] == 400 and f["diff"]["real_sync"]["sent"] == 400
    assert f["diff"]["baseline_seconds"] > 0 and f["diff"]["seconds"] > 0
    assert f["memory"]["peak_rss_mb"] > 50 and f["memory"]["big_rows"] == 40_000
    assert f["render"]["rows_per_second"] > 0 and f["publish"]["naive_events_per_second"] > 0
    th = f["throttle"]  # each throttling backfill delivered every row, and the noise was there
    assert [th[k]["events"] for k in ("unthrottled", "noisy", "quota")] == [5_000] * 3
    assert th["noisy"]["throttled"]["ThrottlingException"] > 0 and th["unthrottled"]["throttled"] == {}
    la = f["latency"]  # each latency's backfill delivered every row, on reused connections
    assert [x["latency_ms"] for x in la["latencies"]] == [0, 10, 30, 100]
    for x in la["latencies"]:
        assert x["ours"]["events"] == 5_000 and x["script_events_per_second"] > 0
        assert x["ours"]["connections"] < x["ours"]["requests"] // 4
    mm = f["many_models"]  # the project of synced models: every command ran and was measured
    assert mm["models"] == 3 and mm["per_sync_ms"] > 0
    assert all(mm[c]["cpu_seconds"] > 0 for c in ("dbt_run", "dbt_parse", "sync", "runs", "inspect", "reset",
                                                   "dbt_build", "sync_after_build", "eb_build"))
    v2 = f["v2"]  # the v2 bus's backfill delivered every row, 100 entries a request, and both clients ran
    assert v2["events"] == 2_000 and v2["entries_per_request"] == 100.0 and v2["events_per_second"] > 0
    assert v2["client_cpu_us_per_event"]["ours"] > 0 and v2["client_cpu_us_per_event"]["botocore"] > 0
    assert "Custom Event Bus (v2)" in p.stdout
    c = f["contracts"]  # both renders ran over the same rows
    assert c["rows"] == 20_000 and c["render_us_per_row"] > 0 and c["render_checked_us_per_row"] > 0
    for name in f["targets"]:
        assert name in p.stdout  # the table is printed
