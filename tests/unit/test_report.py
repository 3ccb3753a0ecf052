"""The HTML run report: its content, its escaping, and what it looks like in a real browser."""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from dbt_eventbridge.ops.report import (
    MAX_REJECTIONS_SHOWN,
    RATE_COLOUR,
    REJECTED_COLOUR,
    _rates,
    render_report,
    run_heading,
    write_report,
)
from devtools import browser as browser_module
from devtools.browser import ensure_chromium, screenshot

WIDTH, HEIGHT = 1200, 1600
# Written out, not imported: the screenshot test must notice if the report's colours change.
BLUE, RED = "#2563eb", "#dc2626"


# --------------------------------------------------------------------------- run dicts


def _sync(name: str, **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sync": name, "model": name, "status": "success", "event_bus": "default",
        "planned": {"added": 0, "changed": 0, "removed": 0}, "sent": {"added": 0, "changed": 0, "removed": 0},
        "rejected": 0, "not_triggered": 0,
        "invalid_keys": {"null_key_rows": 0, "duplicate_key_rows": 0, "duplicate_samples": []},
        "rejections": [], "rejections_truncated": 0, "requests": 0, "retried_entries": 0,
        "initial_sync_skipped": False, "initial_skipped": 0, "recovered": 0, "rebaselined": 0, "message": None,
        "seconds": 0.0, "exit_code": 0, "timings": {}, "timeline": [],
    }
    base.update(over)
    return base


def _run(*syncs: dict[str, Any], **over: Any) -> dict[str, Any]:
    run: dict[str, Any] = {
        "run_id": "6f1c2b7e-0000-4000-8000-000000000001", "started_at": "2026-11-26T09:03:07+00:00",
        "finished_at": "2026-11-26T09:04:15+00:00", "dbt_invocation_id": "90b815b6-f476-492e-886f-7c8e12925efa",
        "dry_run": False, "syncs": list(syncs), "warnings": [], "error": None, "result_file": None,
        "settings": {}, "seconds": 68.2, "exit_code": max([s["exit_code"] for s in syncs], default=0),
    }
    run.update(over)
    return run


def realistic_run() -> dict[str, Any]:
    """40,000 rows in 20 chunks, with rejections in a few, and a second sync that failed."""
    timeline, t = [], 0.0
    rejected_by_chunk = {4: 12, 9: 40, 10: 25, 15: 6}
    for i in range(20):
        t += 0.9 + 0.35 * ((i * 7) % 5) / 4  # uneven chunk times, as under throttling
        rej = rejected_by_chunk.get(i, 0)
        timeline.append([round(t, 3), 2000 - rej, rej])
    rejected = sum(rejected_by_chunk.values())
    rejections = [{"key": {"customer_id": 10_000 + i, "region": "eu"}, "op": "changed" if i % 3 else "added",
                   "code": "InvalidDetail" if i % 2 else "ThrottlingException",
                   "reason": "column 'payload' holds a JSON list, not a JSON object" if i % 2
                   else "Rate exceeded after 6 attempts"} for i in range(rejected)]
    customers = _sync(
        "customers_to_crm", model="customers", status="partial", event_bus="crm-events",
        planned={"added": 25_000, "changed": 12_000, "removed": 3_000},
        sent={"added": 24_950, "changed": 11_967, "removed": 3_000}, rejected=rejected,
        invalid_keys={"null_key_rows": 2, "duplicate_key_rows": 4, "duplicate_samples": [{"customer_id": 7, "_rows": 4}]},
        rejections=rejections, requests=80, retried_entries=311, seconds=round(t + 1.4, 2), exit_code=1,
        not_triggered=40, rebaselined=2,
        timings={"audit": 0.21, "plan": 0.8, "publish": round(t, 2), "commit": 0.12}, timeline=timeline,
    )
    web = _sync("web_events", status="error", planned={"added": 1200, "changed": 0, "removed": 0},
                message="PutEvents failed: AccessDeniedException: not authorized to perform events:PutEvents\n"
                        "on resource arn:aws:events:us-east-1:123456789012:event-bus/default",
                seconds=0.4, exit_code=2)
    return _run(customers, web, warnings=["sync `legacy` has no primary_key; skipped"])


# --------------------------------------------------------------------------- content


def _row_cells(page: str, sync_name: str) -> list[str]:
    row = next(r for r in re.findall(r"<tr>.*?</tr>", page, re.S) if f">{sync_name}</a>" in r)
    return re.findall(r'<td class="n"[^>]*>(.*?)</td>', row)


def test_every_sync_and_count_appears() -> None:
    run = realistic_run()
    page = render_report(run)
    assert run["run_id"] in page and run["dbt_invocation_id"] in page
    assert run["started_at"] in page and run["finished_at"] in page
    for s in run["syncs"]:
        expected = [f"{s[g][op]:,}" for g in ("planned", "sent") for op in ("added", "changed", "removed")]
        invalid = s["invalid_keys"]["null_key_rows"] + s["invalid_keys"]["duplicate_key_rows"]
        no_event = s["not_triggered"] + s["rebaselined"] + s["initial_skipped"]
        expected += [f"{no_event:,}", f"{s['rejected']:,}", f"{invalid:,}", f"{s['seconds']:.2f}"]
        assert _row_cells(page, s["sync"]) == expected
        assert f'id="sync-{run["syncs"].index(s)}"' in page
    assert "FAILED (exit 2)" in page  # the overall status follows the run's exit code
    for status in ("partial", "error"):
        assert f">{status}</span>" in page
    assert "sync `legacy` has no primary_key; skipped" in page
    # Planned minus sent is accounted for: the rows that needed no event are named.
    assert "Recorded as delivered without an event: 42 (trigger off 40, re-baselined 2, initial sync skipped 0)" \
        in page
    assert page.count("<svg") == 1  # only the sync with a timeline has a chart
    assert (RATE_COLOUR, REJECTED_COLOUR) == (BLUE, RED)
    assert BLUE in page and RED in page


def test_user_values_are_escaped() -> None:
    evil = "<script>alert(1)</script>"
    sync = _sync('"><script>alert(2)</script>', status="partial", rejected=1, exit_code=1,
                 rejections=[{"key": {"id": evil, evil: 1}, "op": "added", "code": "<b>Code</b>",
                              "reason": "<img src=x onerror=alert(3)>"}],
                 message="</div><script>alert(4)</script>", timeline=[[0.5, 10, 1]])
    page = render_report(_run(sync, error="<iframe src=javascript:alert(5)>", warnings=[evil],
                              run_id="<svg onload=alert(6)>"))
    lowered = page.lower()
    for tag in ("<script", "<img", "<iframe", "<b>", "<svg onload"):
        assert tag not in lowered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(3)&gt;" in page
    assert "&quot;&gt;&lt;script&gt;alert(2)" in page


def test_run_error_and_empty_timelines_render() -> None:
    message = "relation \"analytics\".\"customers\" does not exist\nLINE 1: select ...\n" + "x" * 3000
    failed = _sync("customers", status="error", message=message, exit_code=2)
    blocked = _sync("orders", status="blocked", message="state table was written by a newer version", exit_code=1)
    old = _sync("legacy_file", status="skipped", message="initial sync disabled")
    del old["timeline"], old["timings"]  # result files written before these keys existed
    dry = _sync("dry", status="dry_run", planned={"added": 5, "changed": 0, "removed": 0})
    page = render_report(_run(failed, blocked, old, dry, error="dbt parse failed: boom", dry_run=True, exit_code=2))
    assert "dbt parse failed: boom" in page
    assert "LINE 1: select ..." in page and "x" * 3000 in page  # messages are shown in full
    assert "state table was written by a newer version" in page
    assert "DRY RUN" in page
    assert "<svg" not in page
    assert page.count("No chunk was published") == 4
    for status in ("error", "blocked", "skipped", "dry_run"):
        assert f">{status}</span>" in page


def test_no_syncs_and_degenerate_timelines() -> None:
    assert "No syncs ran." in render_report(_run(error="no AWS credentials"))
    # A single instant, simultaneous chunks and a chunk with nothing sent must not divide by zero.
    for timeline in ([[0.0, 0, 0]], [[0.2, 10, 0], [0.2, 10, 3], [0.5, 0, 0]]):
        page = render_report(_run(_sync("s", timeline=timeline)))
        assert page.count("<svg") == 1 and "nan" not in page.lower() and "inf" not in page


def test_rate_is_sent_over_time_since_previous_chunk() -> None:
    # (start, end, events/s, rejected); same-instant chunks fold into the previous interval.
    assert _rates([[1.0, 100, 0], [3.0, 100, 2]]) == [(0.0, 1.0, 100.0, 0), (1.0, 3.0, 50.0, 2)]
    assert _rates([[0.5, 0, 0], [0.2, 10, 0], [0.2, 10, 3]]) == [(0.0, 0.2, 100.0, 3), (0.2, 0.5, 0.0, 0)]


def test_rejections_are_capped_with_a_note() -> None:
    rejections = [{"key": {"id": i}, "op": "added", "code": "E", "reason": "r"} for i in range(MAX_REJECTIONS_SHOWN + 5)]
    sync = _sync("big", status="partial", rejected=len(rejections) + 250, rejections=rejections,
                 rejections_truncated=250, exit_code=1)
    page = render_report(_run(sync))
    assert page.count("<tr><td><code>") == MAX_REJECTIONS_SHOWN
    assert '{&quot;id&quot;:999}' in page and '{&quot;id&quot;:1000}' not in page
    assert "Rejected rows (1,255)" in page
    assert "Showing 1,000 rejected rows; 5 more are in the result file" in page
    assert "250 more were not recorded" in page


def test_a_run_whose_every_sync_was_held_back_is_headed_blocked() -> None:
    """Held back by the mass-removal guard, another run's lock or a failed model: nothing was
    attempted, which is neither PARTIAL (some delivered) nor OK, whatever the exit code says."""
    guard = _sync("a", status="blocked", blocked_by="mass_removal", exit_code=1,
                  message="stopped before publishing: this run would remove 40 of the 50 delivered rows")
    lock = _sync("b", status="error", blocked_by="lock", exit_code=2, message="another run is syncing it")
    model = _sync("c", status="skipped", blocked_by="model_failed", message="not synced because it failed")
    page = render_report(_run(guard, lock, model))
    assert "BLOCKED (exit 2)" in page and "FAILED (exit" not in page
    assert "held back: the mass-removal guard" in page and "held back: another run holds it" in page
    assert render_report(_run(guard)).count("BLOCKED (exit 1)") == 1
    assert "PARTIAL" not in render_report(_run(guard))
    old_row = {k: v for k, v in guard.items() if k != "blocked_by"}  # a history row from before the column
    assert run_heading(_run(old_row)) == ("blocked", "BLOCKED")
    assert run_heading(_run(model)) == ("blocked", "BLOCKED")  # exit 0, but nothing was synced
    # Not every sync held back: the exit code says it.
    assert run_heading(_run(guard, _sync("d"))) == ("partial", "PARTIAL")
    assert run_heading(_run(_sync("e", status="skipped", message="disabled in its config"))) == ("success", "OK")
    assert run_heading(_run(lock, error="boom", exit_code=2)) == ("error", "FAILED")
    # The warehouse itself was held (DuckDB's file): the run's error, no sync ran.
    assert run_heading(_run(error="another run is syncing right now", blocked_by="lock", exit_code=2)) == \
        ("blocked", "BLOCKED")


def _history_run() -> dict[str, Any]:
    """A run as `inspect RUN_ID --report` rebuilds it from the history (ops.operations._report_dict)."""
    sync = _sync(
        "customers_to_crm", status="partial", exit_code=1, rejected=3, action="full-refresh", run_by="ana",
        planned={"added": 6, "changed": 0, "removed": 0}, sent={"added": 3, "changed": 0, "removed": 0},
        invalid_keys={"total": 2}, requests=2, retried_entries=1,
        rejections=[{"key": {"customer_id": 9}, "op": "added", "code": "InternalFailure", "reason": "try later"}],
        rejections_not_shown=2,
        events=[{"key": {"customer_id": i}, "op": "added", "detail_type": "CustomerCreated",
                 "aws_event_id": f"aws-{i}", "retries": i - 1, "deduplicated": i == 3,
                 "sent_at": f"2026-11-26T09:03:0{i}+00:00"} for i in (1, 2, 3)], events_not_shown=0,
        per_second=[[1.0, 2, 1], [2.0, 0, 0], [3.0, 1, 2]],
        answered={"first": "2026-11-26T09:03:01+00:00", "last": "2026-11-26T09:03:03+00:00", "interval_seconds": 1})
    return _run(sync, source="history", run_by="ana", seconds=2.5)


def test_a_report_from_the_history_says_only_what_the_history_knows() -> None:
    page = render_report(_history_run())
    # No chunks, chunk times or averages: the history keeps when each event was answered.
    for invented in ("chunks published", "per chunk", "chunk time", "events/s on average", "Timings:"):
        assert invented not in page, invented
    assert "Rebuilt from the run history" in page and "does not keep the run's warnings" in page
    assert "Events answered per second of the clock, from the run history: 3 accepted, 3 rejected" in page
    assert "rejected rows per second" in page and "seconds since the first answer" in page
    assert "First sync started" in page and "Seconds (first sync start to last sync end)" in page
    # The sent events, not only the rejections.
    assert "Sent events (3)" in page
    for i in (1, 2, 3):
        assert f"aws-{i}" in page and f"{{&quot;customer_id&quot;:{i}}}" in page
    assert "(deduplicated)" in page
    assert "2 more are in the run history" in page and "were not recorded" not in page
    # Invalid keys: the total, without a made-up split into NULL and duplicated keys.
    assert "null keys 0" not in page and "does not tell them apart" in page
    assert "--full-refresh by ana: 3 row(s) sent again as added" in page
    assert "2 requests, 1 entries retried." in page


def test_history_seconds_without_events_are_zero_not_spread() -> None:
    """Events answered at 09:00:00 and 09:00:03: four seconds, two of them empty (the history's
    report spread the second second's events over three seconds before, as if a chunk)."""
    import datetime as dt

    from dbt_eventbridge.ops.operations import MAX_CHART_POINTS, _per_second

    t0 = dt.datetime(2026, 11, 26, 9, 0, 0, tzinfo=dt.UTC)
    rows = [{"second": t0, "sent": 10, "rejected": 1}, {"second": t0 + dt.timedelta(seconds=3), "sent": 6,
                                                         "rejected": 0}]
    got = _per_second(rows)
    assert got["per_second"] == [[1.0, 10, 1], [2.0, 0, 0], [3.0, 0, 0], [4.0, 6, 0]]
    assert got["answered"] == {"first": "2026-11-26T09:00:00+00:00", "last": "2026-11-26T09:00:03+00:00",
                               "interval_seconds": 1}
    assert _rates(got["per_second"])[-1] == (3.0, 4.0, 6.0, 0)  # 6 events/s in their own second
    # A long run: intervals of several seconds, never more points than the chart takes.
    long = [{"second": t0 + dt.timedelta(seconds=s), "sent": 1, "rejected": 0} for s in range(0, 3000, 7)]
    got = _per_second(long)
    width = got["answered"]["interval_seconds"]
    assert width == 5 and len(got["per_second"]) <= MAX_CHART_POINTS
    assert sum(p[1] for p in got["per_second"]) == len(long)
    assert _per_second([]) == {"per_second": [], "answered": None}


def test_page_is_self_contained() -> None:
    page = render_report(realistic_run()).lower()
    for ref in ("http://", "https://", "<script", "<link", "src=", "url(", "@import", "<img"):
        assert ref not in page, ref
    assert page.startswith("<!doctype html>") and "<style>" in page


def test_write_report_is_atomic(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "report.html"
    assert write_report(realistic_run(), target) == target
    assert target.read_text(encoding="utf-8") == render_report(realistic_run())
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]


# --------------------------------------------------------------------------- browser


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def decode_png(data: bytes) -> tuple[int, int, int, list[bytes]]:
    """(width, height, bytes per pixel, rows) of an 8-bit RGB/RGBA non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 8 or colour not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}, interlace {interlace}")
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev))
        elif kind == 3:
            for i in range(stride):
                line[i] = (line[i] + ((line[i - bpp] if i >= bpp else 0) + prev[i]) // 2) & 0xFF
        elif kind == 4:
            for i in range(stride):
                left, up_left = (line[i - bpp], prev[i - bpp]) if i >= bpp else (0, 0)
                line[i] = (line[i] + _paeth(left, prev[i], up_left)) & 0xFF
        elif kind != 0:
            raise ValueError(f"bad PNG filter {kind} in row {y}")
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def _colours(bpp: int, rows: list[bytes]) -> Counter[tuple[int, int, int]]:
    counts: Counter[bytes] = Counter()
    for row in rows:
        counts.update(row[i:i + bpp] for i in range(0, len(row), bpp))
    return Counter({(px[0], px[1], px[2]): n for px, n in counts.items()})


def _near(colours: Counter[tuple[int, int, int]], hex_colour: str, tolerance: int = 12) -> int:
    target = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return sum(n for c, n in colours.items() if max(abs(a - b) for a, b in zip(c, target)) <= tolerance)


def _browser_or_skip() -> str:
    try:
        return ensure_chromium()
    except RuntimeError as e:
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"CI must run the browser test, but no browser could be installed: {e}")
        pytest.skip(f"no headless Chromium (install it, or run as root with apt-get): {e}")


def test_no_browser_skips_locally_but_fails_on_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser_module, "find_chromium", lambda: None)
    monkeypatch.setattr(browser_module, "_is_root", lambda: False)  # so nothing gets installed
    with pytest.raises(RuntimeError, match="apt-get install --no-install-recommends chromium"):
        browser_module.ensure_chromium()
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        _browser_or_skip()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        _browser_or_skip()


@pytest.mark.browser
def test_report_in_a_real_browser(tmp_path: Path) -> None:
    browser = _browser_or_skip()
    html_path = write_report(realistic_run(), tmp_path / "report.html")
    png_path = tmp_path / "report.png"
    screenshot(html_path, png_path, WIDTH, HEIGHT, browser=browser)

    width, height, bpp, rows = decode_png(png_path.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    colours = _colours(bpp, rows)
    assert len(colours) > 200, f"page looks blank: only {len(colours)} distinct colours"
    # The page background is #f9fafb; pure white rows at the bottom mean an unpainted area.
    assert set(rows[-1]) != {255}, "bottom of the screenshot was not painted"
    # The legend alone has under 130 pixels of each; hundreds mean the series themselves were drawn.
    blue, red = _near(colours, BLUE), _near(colours, RED)
    assert blue > 400, f"events/s line ({BLUE}) not found: {blue} pixels"
    assert red > 400, f"rejected bars ({RED}) not found: {red} pixels"
