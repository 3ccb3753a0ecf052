"""The Custom Event Bus figure of `make bench` (issue 15): a backfill of the publish model's
rows through the real CLI to a v2 bus, 100 entries a request, beside the classic figure.

The v2 bus is devtools/eventbridgev2_endpoint.py in its own process (it decodes CBOR,
checks each request's SigV4 signature, deduplicates and numbers each event group, as the
service does), so its own cost is part of the figure: compare the CPU our process spends
per event, which the endpoint does not share, as well as events/s.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SYNC_YML = """\
version: 2
models:
  - name: bench_publish_v2
    config:
      meta:
        eventbridge:
          name: bench_publish_v2
          primary_key: id
          event_bus: "{bus}"
          source: com.example.bench
          detail_type: "{{% raw %}}Customer{{{{ op | capitalize }}}}{{% endraw %}}"
          detail:
            template_file: eventbridge/customer.json.j2
"""


def _endpoint() -> tuple[subprocess.Popen[str], str, str]:
    """The v2 endpoint in its own process: (process, endpoint URL, the bench bus's ARN)."""
    proc = subprocess.Popen([sys.executable, "-m", "devtools.eventbridgev2_endpoint", "--bus", "bench"],
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent)
    assert proc.stdout is not None
    url = arn = ""
    deadline = time.monotonic() + 30
    while not (url and arn) and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"DBT_EVENTBRIDGE_V2_ENDPOINT_URL=(\S+)", line)
        url = m.group(1).strip("'\"") if m else url
        m = re.search(r"(arn:aws:events:\S+:event-busv2/\S+)", line)
        arn = m.group(1) if m else arn
    if not (url and arn):
        proc.kill()
        raise SystemExit("the local v2 endpoint did not start")
    return proc, url, arn


def client_cpu(url: str, arn: str, requests: int = 100) -> dict[str, float]:
    """CPU of this process per event, PutEvents of 100 template-sized entries, one thread:
    our client and botocore's (what the choice of wire_v2.py rests on)."""
    import json

    import boto3
    import botocore.config

    from dbt_eventbridge.delivery.wire_v2 import V2Client

    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    boto = session.client("eventbridgev2", endpoint_url=url,
                          config=botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 1}))
    lean = V2Client.for_bus(boto, session.get_credentials(), arn)
    out = {}
    for name, client in (("ours", lean), ("botocore", boto)):
        n = 0
        for warm in (True, False):
            started = time.process_time()
            for r in range(3 if warm else requests):
                entries = [{"Source": "com.example.bench", "DetailType": "CustomerAdded",
                            "Detail": json.dumps({"id": i, "name": f"customer {i}", "email": f"user{i}@example.com",
                                                  "amount": 12.5, "tier": "gold", "active": True}),
                            "SystemMetadata": {"DeduplicationId": f"{name}-{warm}-{r}-{i}", "EventGroupId": f"g{i}"}}
                           for i in range(100)]
                client.put_events(EventBusArn=arn, Entries=entries)
                n += 0 if warm else 100
            cpu = time.process_time() - started
        out[name] = round(cpu / n * 1e6, 1)
    return out


def run(b: Any, rows: int, step: Any) -> dict[str, Any]:
    step(f"v2 bus: a backfill of {rows:,} rows to a Custom Event Bus (100 entries a request)")
    proc, url, arn = _endpoint()
    try:
        (b.folder / "models" / "bench_publish_v2.sql").write_text(
            "select * from {{ ref('bench_publish') }}\n")
        (b.folder / "models" / "bench_v2.yml").write_text(SYNC_YML.format(bus=arn))
        b.dbt("run", "-s", "bench_publish", "bench_publish_v2", extra_vars={"publish_rows": rows})
        saved = dict(b.env)
        # the endpoint checks signatures, with its own credentials (its --help)
        b.env.update({"DBT_EVENTBRIDGE_V2_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing",
                      "AWS_SECRET_ACCESS_KEY": "testing"})
        try:
            run_ = b.sync("-s", "bench_publish_v2", extra_vars={"publish_rows": rows})
        finally:
            b.env.clear()
            b.env.update(saved)
        s = run_.sync("bench_publish_v2")
        sent = sum(s["sent"].values())
        seconds = s["timings"].get("publish", 0.0)
        step("v2 bus: each client's CPU for 100 requests of 100 entries (ours, botocore's)")
        return {"rows": rows, "events": sent, "requests": s["requests"], "seconds": round(seconds, 2),
                "events_per_second": round(sent / seconds) if seconds else 0,
                "entries_per_request": round(sent / s["requests"], 1) if s["requests"] else 0,
                "cpu_us_per_event": round(s["publish_cpu_seconds"] / sent * 1e6, 1) if sent else 0.0,
                "client": "ours (delivery/wire_v2.py)",
                "client_cpu_us_per_event": client_cpu(url, arn),
                "endpoint": "devtools/eventbridgev2_endpoint.py, its own process"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        for name in ("bench_publish_v2.sql", "bench_v2.yml"):
            (b.folder / "models" / name).unlink(missing_ok=True)
