"""The throttling figures of `make bench` (issue 13, part 3): one backfill of the same rows
through the real CLI against devtools/fault_endpoint.py, three ways, in one invocation:

- unthrottled: the endpoint accepts everything (its own speed is the ceiling: a threaded
  HTTP server in this process, slower than the stub; that is why this is a ratio);
- noisy: 10% of entries come back ``ThrottlingException`` whatever our rate, as when other
  producers share the account's quota: target at least 0.5x the unthrottled events/s;
- quota: at most ``quota_rps`` requests in any second, the rest throttled whole: target at
  least 0.8 of the quota used (requests accepted per second over the publish phase).
"""

from __future__ import annotations

from typing import Any

NOISE = 0.1


def run(b: Any, rows: int, quota_rps: int, step: Any) -> dict[str, Any]:
    from devtools.fault_endpoint import FaultEndpoint

    step(f"throttling: building a {rows:,}-row model for the backfills")
    b.dbt("run", "-s", "bench_publish", extra_vars={"publish_rows": rows})
    out: dict[str, Any] = {"rows": rows, "noise_share": NOISE, "quota_rps": quota_rps}
    scenarios = [("unthrottled", {}), ("noisy", {"entry_fault_rate": NOISE,
                                                  "entry_fault_codes": ("ThrottlingException",)}),
                 ("quota", {"quota_rps": quota_rps})]
    for name, settings in scenarios:
        step(f"throttling: {name} backfill of {rows:,} rows")
        with FaultEndpoint(seed=11, **settings) as ep:
            run = b.sync_at(ep.endpoint_url, "-s", "bench_publish", "--full-refresh", "--allow-mass-removal",
                            extra_vars={"publish_rows": rows})
            s = run.sync("bench_publish")
            sent = sum(s["sent"].values())
            seconds = s["timings"].get("publish", 0.0)
            accepted_requests = sum(1 for r in ep.requests if r.fault is None)
            out[name] = {"events": sent, "seconds": round(seconds, 2),
                         "events_per_second": round(sent / seconds) if seconds else 0,
                         "requests": ep.request_count, "throttled": dict(ep.faults),
                         "accepted_requests_per_second": round(accepted_requests / seconds, 1) if seconds else 0}
            if len({e["Detail"] for e in ep.accepted}) < rows:
                raise SystemExit(f"throttling bench, {name}: {rows} rows, but only "
                                 f"{len({e['Detail'] for e in ep.accepted})} distinct events arrived")
    base = out["unthrottled"]["events_per_second"] or 1
    out["noisy_ratio"] = round(out["noisy"]["events_per_second"] / base, 2)
    out["quota_used"] = round(out["quota"]["accepted_requests_per_second"] / quota_rps, 2)
    return out
