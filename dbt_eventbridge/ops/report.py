"""A self-contained HTML page for one sync run, built from its result-file dict (or from the
run history: ``inspect RUN_ID --report``, whose dict says ``source: history`` and holds only
what the history knows: no warnings, phase timings or chunks, events per second of the clock,
and the sent events themselves).

The page must open anywhere (CI artifacts, mail attachments, air-gapped hosts),
so it has no external CSS, JavaScript, fonts or images: styles are inline and
charts are inline SVG. Every value that comes from the run (keys, reasons, sync
names, messages) can hold arbitrary text and goes through ``html.escape``.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from dbt_eventbridge.model import OPS

MAX_REJECTIONS_SHOWN = 1000
MAX_EVENTS_SHOWN = 1000
# Fixed chart colours: tests find them in screenshots, so badges use other shades.
RATE_COLOUR = "#2563eb"
REJECTED_COLOUR = "#dc2626"
# status -> (background, text); exit code 0/1/2 reuse success/partial/error.
BADGES = {
    "success": ("#dcfce7", "#166534"), "partial": ("#fef3c7", "#92400e"),
    "error": ("#fee2e2", "#991b1b"), "blocked": ("#fee2e2", "#991b1b"),
    "skipped": ("#e5e7eb", "#374151"), "dry_run": ("#dbeafe", "#1e40af"),
}
EXIT_STATUS = {0: ("success", "OK"), 1: ("partial", "PARTIAL"), 2: ("error", "FAILED")}
# What held a sync back (SyncResult.blocked_by), for people.
BLOCKED_BY = {"lock": "another run holds it", "model_failed": "its model failed in dbt",
              "mass_removal": "the mass-removal guard"}


def run_heading(run: dict[str, Any]) -> tuple[str, str]:
    """(badge status, label) of a whole run: BLOCKED when every sync was held back (another run
    held it, its model failed in dbt, the mass-removal guard stopped it) or the run's own error
    was a held warehouse, whatever the exit code; otherwise by the exit code."""
    syncs = run.get("syncs") or []
    held = [s.get("blocked_by") or ("mass_removal" if s.get("status") == "blocked" else None) for s in syncs]
    if run.get("blocked_by") or (syncs and not run.get("error") and all(held)):
        return "blocked", "BLOCKED"
    return EXIT_STATUS.get(int(run.get("exit_code") or 0), ("error", "FAILED"))


def without_event(sync: dict[str, Any]) -> int:
    """Rows recorded as delivered without an event: trigger off, re-baselined, initial sync skipped."""
    return sum(int(sync.get(k) or 0) for k in ("not_triggered", "rebaselined", "initial_skipped"))


def without_event_text(sync: dict[str, Any]) -> str:
    return (f"trigger off {int(sync.get('not_triggered') or 0):,}, re-baselined {int(sync.get('rebaselined') or 0):,}, "
            f"initial sync skipped {int(sync.get('initial_skipped') or 0):,}")


def describe_action(sync: dict[str, Any], run_by: str | None = None) -> str | None:
    """What an operator asked of a sync and what it did, in one sentence (None: an ordinary run)."""
    action = sync.get("action")
    if not action:
        return None
    who = sync.get("run_by") or run_by or "an unknown user"
    sent = sync.get("sent") or {}
    done = []
    for a in str(action).split(","):
        if a == "reset":
            done.append(f"reset by {who}: forgot {int(sync.get('forgotten') or 0):,} delivered row(s); the next run "
                        "sends every current row as added")
        elif a == "rebaseline":
            done.append(f"rebaseline by {who}: {int(sync.get('rebaselined') or 0):,} row(s) recorded as delivered "
                        "without an event")
        elif a == "full-refresh":
            done.append(f"--full-refresh by {who}: {int(sent.get('added') or 0):,} row(s) sent again as added")
        elif a == "allow-mass-removal":
            done.append(f"--allow-mass-removal by {who}: {int(sent.get('removed') or 0):,} removal(s) sent")
        else:
            done.append(f"{a} by {who}")
    return "; ".join(done)

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#111827;
 background:#f9fafb;margin:0;padding:24px}
main{max-width:1080px;margin:0 auto}
h1{font-size:22px;margin:0 0 8px}h2{font-size:17px;margin:0 0 10px}h3{font-size:14px;margin:16px 0 6px}
header,section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:16px 20px;margin-bottom:16px}
header{border-left:6px solid var(--status)}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:8px 0 0}dt{color:#6b7280}dd{margin:0}
.badge{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:600;white-space:nowrap}
.big{font-size:15px;padding:3px 12px;vertical-align:middle;margin-left:8px}
.box{border-radius:6px;padding:8px 12px;margin:10px 0;white-space:pre-wrap;overflow-wrap:anywhere}
.err{background:#fef2f2;border:1px solid #fca5a5;color:#7f1d1d}.warn{background:#fffbeb;border:1px solid #fcd34d}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e5e7eb;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f4f6;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:600;border-top:2px solid #d1d5db}
code,.mono{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12px;overflow-wrap:anywhere}
.muted{color:#6b7280}svg{display:block;max-width:100%;height:auto;margin-top:8px}
a{color:#1d4ed8}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any) -> str:
    return f"{int(value or 0):,}"


def _badge(status: str, label: str | None = None, extra: str = "") -> str:
    bg, fg = BADGES.get(status, BADGES["skipped"])
    return f'<span class="badge {extra}" style="background:{bg};color:{fg}">{_e(label or status)}</span>'


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _invalid(sync: dict[str, Any]) -> int:
    keys = sync.get("invalid_keys") or {}
    if "total" in keys:  # from the run history, which keeps no breakdown
        return int(keys["total"] or 0)
    return int(keys.get("null_key_rows") or 0) + int(keys.get("duplicate_key_rows") or 0)


def _invalid_title(sync: dict[str, Any]) -> str:
    keys = sync.get("invalid_keys") or {}
    if "total" in keys:
        return "NULL and duplicated keys together (the run history does not tell them apart)"
    return f"null keys {_num(keys.get('null_key_rows'))}, duplicated keys {_num(keys.get('duplicate_key_rows'))}"


def _nice_ticks(top: float, count: int = 5) -> list[float]:
    """0..>=top in 1/2/2.5/5 x 10^k steps, so tick labels stay short and round."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


def _fmt_tick(v: float) -> str:
    if v >= 10_000:
        return f"{v / 1000:,.0f}k"
    if v == int(v):
        return f"{v:,.0f}"
    # Sub-second runs have ticks like 0.002: as many decimals as the value needs, up to 4.
    return f"{v:.4f}".rstrip("0")


def _rates(timeline: list[list[float]]) -> list[tuple[float, float, float, int]]:
    """Per chunk: (start s, end s, events/s, rejected); a chunk's rate holds over its whole interval."""
    out: list[tuple[float, float, float, int]] = []
    prev, prev_sent = 0.0, 0
    for t, sent, rejected in sorted((float(p[0]), int(p[1]), int(p[2])) for p in timeline):
        if t - prev <= 1e-9 and out:
            # Chunks finishing in the same instant have no interval of their own: count
            # them in the previous chunk's, so neither the rate nor the bar is lost.
            start, end, _, rej = out.pop()
            sent += prev_sent
            rejected += rej
        else:
            start, end = prev, t
        out.append((start, end, sent / (end - start) if end - start > 1e-9 else 0.0, rejected))
        prev, prev_sent = t, sent
    return out


def _chart(name: str, timeline: list[list[float]], per: str = "chunk") -> str:
    """Events/s and rejected rows per ``per``: a published chunk (a run's own timeline), or an
    interval of the clock (``second``, ``5 s``: a run rebuilt from the history)."""
    w, h, left, right, top, bottom = 1000, 280, 64, 64, 36, 40
    pw, ph = w - left - right, h - top - bottom
    chunks = _rates(timeline)
    x_ticks = _nice_ticks(max(c[1] for c in chunks))
    y_ticks = _nice_ticks(max(c[2] for c in chunks))
    r_ticks = _nice_ticks(max(c[3] for c in chunks), 4)
    r_ticks = [t for t in r_ticks if t == int(t)] if r_ticks[-1] > 1 else [0.0, 1.0]

    def x(v: float) -> float:
        return left + pw * v / x_ticks[-1]

    def y(v: float, ticks: list[float]) -> float:
        return top + ph - ph * v / ticks[-1]

    p: list[str] = [f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
                    f'aria-label="events per second and rejected rows for {_e(name)}" '
                    'font-size="11" font-family="DejaVu Sans,sans-serif">']
    for v in y_ticks:  # grid and left axis: events/s
        p.append(f'<line x1="{left}" x2="{w - right}" y1="{y(v, y_ticks):.1f}" y2="{y(v, y_ticks):.1f}" '
                 'stroke="#e5e7eb"/>')
        p.append(f'<text x="{left - 6}" y="{y(v, y_ticks) + 4:.1f}" text-anchor="end" fill="#374151">'
                 f'{_fmt_tick(v)}</text>')
    for v in r_ticks:  # right axis: rejected per chunk, in the series colour so it reads as its own scale
        p.append(f'<text x="{w - right + 6}" y="{y(v, r_ticks) + 4:.1f}" fill="{REJECTED_COLOUR}">'
                 f'{_fmt_tick(v)}</text>')
    for v in x_ticks:
        p.append(f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{top + ph}" y2="{top + ph + 4}" stroke="#6b7280"/>')
        p.append(f'<text x="{x(v):.1f}" y="{top + ph + 16}" text-anchor="middle" fill="#374151">'
                 f'{_fmt_tick(v)}</text>')
    p.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#9ca3af"/>')
    since = "publishing started" if per == "chunk" else "the first answer"
    p.append(f'<text x="{left + pw / 2}" y="{h - 6}" text-anchor="middle" fill="#374151">'
             f'seconds since {since}</text>')
    p.append(f'<text transform="translate(14 {top + ph / 2}) rotate(-90)" text-anchor="middle" '
             f'fill="{RATE_COLOUR}">events/s</text>')
    p.append(f'<text transform="translate({w - 12} {top + ph / 2}) rotate(90)" text-anchor="middle" '
             f'fill="{REJECTED_COLOUR}">rejected per {per}</text>')
    for start, end, _, rejected in chunks:  # bars first: the rate line must stay visible on top
        if rejected:
            bw = max(3.0, min(14.0, (x(end) - x(start)) * 0.6))
            mid, yt = (x(start) + x(end)) / 2, y(rejected, r_ticks)
            p.append(f'<rect x="{mid - bw / 2:.1f}" y="{yt:.1f}" width="{bw:.1f}" height="{top + ph - yt:.1f}" '
                     f'fill="{REJECTED_COLOUR}"><title>{rejected:,} rejected</title></rect>')
    steps = " ".join(f"L{x(s):.1f},{y(r, y_ticks):.1f} L{x(e):.1f},{y(r, y_ticks):.1f}" for s, e, r, _ in chunks)
    p.append(f'<path d="M{x(0):.1f},{y(chunks[0][2], y_ticks):.1f} {steps}" fill="none" stroke="{RATE_COLOUR}" '
             'stroke-width="2" stroke-linejoin="round"/>')
    rate = "sent in chunk / chunk time" if per == "chunk" else f"accepted per {per}"
    p.append(f'<rect x="{left + 8}" y="10" width="18" height="4" fill="{RATE_COLOUR}"/>'
             f'<text x="{left + 32}" y="16" fill="#111827">events/s ({rate})</text>'
             f'<rect x="{left + 280}" y="6" width="10" height="12" fill="{REJECTED_COLOUR}"/>'
             f'<text x="{left + 296}" y="16" fill="#111827">rejected rows per {per}</text>')
    p.append("</svg>")
    return "".join(p)


def _header(run: dict[str, Any]) -> str:
    code = int(run.get("exit_code") or 0)
    status, label = run_heading(run)
    colour = {"success": "#16a34a", "partial": "#d97706", "blocked": "#9a3412"}.get(status, "#b91c1c")
    dry = _badge("dry_run", "DRY RUN", "big") if run.get("dry_run") else ""
    history = run.get("source") == "history"
    seconds = run.get("seconds")
    rows = [("Run id", run.get("run_id")),
            ("First sync started" if history else "Started", run.get("started_at")),
            ("Last sync finished" if history else "Finished", run.get("finished_at")),
            ("dbt invocation id", run.get("dbt_invocation_id")), ("Run by", run.get("run_by")), ("Exit code", code),
            ("Seconds (first sync start to last sync end)" if history else "Seconds",
             f"{float(seconds):.2f}" if seconds is not None else None)]
    out = [f'<header style="--status:{colour}"><h1>dbt-eventbridge sync run'
           f'{_badge(status, f"{label} (exit {code})", "big")}{dry}</h1><dl>']
    out += [f"<dt>{_e(k)}</dt><dd class='mono'>{_e(v if v is not None else '-')}</dd>" for k, v in rows]
    out.append("</dl>")
    if history:
        out.append('<div class="box warn">Rebuilt from the run history, which keeps each sync\'s counts and each '
                   "event sent or rejected with when it was answered. It does not keep the run's warnings or its "
                   "own error, the phase timings, or how the events were grouped in chunks: the result file of "
                   "the run has them.</div>")
    if run.get("error"):
        out.append(f'<div class="box err"><strong>Run error:</strong> {_e(run["error"])}</div>')
    for warning in run.get("warnings") or []:
        out.append(f'<div class="box warn"><strong>Warning:</strong> {_e(warning)}</div>')
    out.append("</header>")
    return "".join(out)


def _counts_table(syncs: list[dict[str, Any]]) -> str:
    ops = "".join(f'<th class="n">{op}</th>' for op in OPS)
    out = ['<section><h2>Syncs</h2><table><thead><tr><th rowspan="2">Sync</th><th rowspan="2">Status</th>'
           f'<th colspan="{len(OPS)}">Planned</th><th colspan="{len(OPS)}">Sent</th>'
           '<th class="n" rowspan="2">Recorded without event</th>'
           '<th class="n" rowspan="2">Rejected</th><th class="n" rowspan="2">Invalid keys</th>'
           f'<th class="n" rowspan="2">Seconds</th></tr><tr>{ops}{ops}</tr></thead><tbody>']
    planned, sent = dict.fromkeys(OPS, 0), dict.fromkeys(OPS, 0)
    for i, s in enumerate(syncs):
        cells = []
        for group, total in (("planned", planned), ("sent", sent)):
            for op in OPS:
                n = int((s.get(group) or {}).get(op) or 0)
                total[op] += n
                cells.append(f'<td class="n">{_num(n)}</td>')
        held = BLOCKED_BY.get(str(s.get("blocked_by") or ""))
        notes = ([f"held back: {held}"] if held else []) + ([str(s["action"])] if s.get("action") else [])
        status = _badge(str(s.get("status"))) + "".join(f'<br><span class="muted">{_e(n)}</span>' for n in notes)
        out.append(
            f'<tr><td><a href="#sync-{i}">{_e(s.get("sync"))}</a><br><span class="muted">model {_e(s.get("model"))}'
            f' &rarr; bus {_e(s.get("event_bus") or "-")}</span></td><td>{status}</td>'
            f'{"".join(cells)}<td class="n" title="{_e(without_event_text(s))}">{_num(without_event(s))}</td>'
            f'<td class="n">{_num(s.get("rejected"))}</td>'
            f'<td class="n" title="{_e(_invalid_title(s))}">{_num(_invalid(s))}</td>'
            f'<td class="n">{float(s.get("seconds") or 0):.2f}</td></tr>')
    if len(syncs) > 1:
        cells_total = "".join(f'<td class="n">{_num(t[op])}</td>' for t in (planned, sent) for op in OPS)
        rejected = sum(int(s.get("rejected") or 0) for s in syncs)
        out.append(f'<tr class="total"><td>Total ({len(syncs)} syncs)</td><td></td>{cells_total}'
                   f'<td class="n">{_num(sum(map(without_event, syncs)))}</td>'
                   f'<td class="n">{_num(rejected)}</td><td class="n">{_num(sum(map(_invalid, syncs)))}</td>'
                   '<td></td></tr>')
    if not syncs:
        out.append(f'<tr><td colspan="{6 + 2 * len(OPS)}" class="muted">No syncs ran.</td></tr>')
    out.append("</tbody></table></section>")
    return "".join(out)


def _rejections(s: dict[str, Any]) -> str:
    rejections = s.get("rejections") or []
    shown = rejections[:MAX_REJECTIONS_SHOWN]
    hidden, truncated = len(rejections) - len(shown), int(s.get("rejections_truncated") or 0)
    out = [f"<h3>Rejected rows ({_num(s.get('rejected'))})</h3>"]
    if shown:
        out.append("<table><thead><tr><th>Key</th><th>Op</th><th>Error code</th><th>Reason</th></tr></thead><tbody>")
        out += [f'<tr><td><code>{_e(_compact(r.get("key")))}</code></td><td>{_e(r.get("op"))}</td>'
                f'<td><code>{_e(r.get("code"))}</code></td><td>{_e(r.get("reason"))}</td></tr>' for r in shown]
        out.append("</tbody></table>")
    notes = []
    if hidden:
        notes.append(f"{_num(hidden)} more are in the result file but not shown here")
    if s.get("rejections_not_shown"):  # a report from the run history
        notes.append(f"{_num(s['rejections_not_shown'])} more are in the run history "
                     "(`dbt-eventbridge inspect RUN_ID --failed --limit N`)")
    if truncated:
        notes.append(f"{_num(truncated)} more were not recorded (the result file keeps a limited number)")
    if notes:
        out.append(f'<p class="muted">Showing {_num(len(shown))} rejected rows; {"; ".join(notes)}.</p>')
    return "".join(out)


def _sent_events(s: dict[str, Any]) -> str:
    """The events EventBridge accepted (a report from the run history, which keeps them)."""
    events = s.get("events") or []
    shown = events[:MAX_EVENTS_SHOWN]
    more = len(events) - len(shown) + int(s.get("events_not_shown") or 0)
    out = [f"<h3>Sent events ({_num(len(events) + int(s.get('events_not_shown') or 0))})</h3>",
           "<table><thead><tr><th>Key</th><th>Op</th><th>Detail type</th><th>EventId</th>"
           '<th class="n">Retries</th><th>Answered at</th></tr></thead><tbody>']
    for e in shown:
        answer = _e(e.get("aws_event_id")) + (' <span class="muted">(deduplicated)</span>' if e.get("deduplicated")
                                              else "")
        out.append(f'<tr><td><code>{_e(_compact(e.get("key")))}</code></td><td>{_e(e.get("op"))}</td>'
                   f'<td>{_e(e.get("detail_type"))}</td><td><code>{answer}</code></td>'
                   f'<td class="n">{_num(e.get("retries"))}</td><td class="mono">{_e(e.get("sent_at"))}</td></tr>')
    out.append("</tbody></table>")
    if more:
        out.append(f'<p class="muted">Showing {_num(len(shown))} sent events; {_num(more)} more are in the run '
                   "history (`dbt-eventbridge inspect RUN_ID --limit N`).</p>")
    return "".join(out)


def _sync_section(i: int, s: dict[str, Any], run: dict[str, Any] | None = None) -> str:
    run = run or {}
    timeline = s.get("timeline") or []
    per_second = s.get("per_second") or []
    out = [f'<section id="sync-{i}"><h2>{_e(s.get("sync"))} {_badge(str(s.get("status")))}</h2>']
    if s.get("message"):
        kind = "err" if s.get("status") in ("error", "blocked") else "warn"
        out.append(f'<div class="box {kind}">{_e(s["message"])}</div>')
    action = describe_action(s, run.get("run_by"))
    if action:
        out.append(f"<p><strong>Asked:</strong> {_e(action)}.</p>")
    if without_event(s):
        out.append(f'<p>Recorded as delivered without an event: {_num(without_event(s))} '
                   f'({_e(without_event_text(s))}). Nothing is lost: these rows need no event.</p>')
    if per_second:  # from the run history: when each event was answered, by the clock
        answered = s.get("answered") or {}
        width = int(answered.get("interval_seconds") or 1)
        per = "second" if width == 1 else f"{width} s"
        accepted = sum(int(p[1]) for p in per_second)
        rejected = sum(int(p[2]) for p in per_second)
        out.append(f'<p class="muted">Events answered per {per} of the clock, from the run history: '
                   f'{_num(accepted)} accepted, {_num(rejected)} rejected, the first at '
                   f'{_e(answered.get("first"))} and the last at {_e(answered.get("last"))}.</p>'
                   f'{_chart(str(s.get("sync")), per_second, per)}')
    elif run.get("source") == "history":
        out.append('<p class="muted">No event of this sync is recorded in this run.</p>')
    elif timeline:
        sent = sum(int(p[1]) for p in timeline)
        rejected = sum(int(p[2]) for p in timeline)
        elapsed = max(float(p[0]) for p in timeline)
        avg = f", {sent / elapsed:,.0f} events/s on average" if elapsed > 0 else ""
        out.append(f'<p class="muted">{_num(len(timeline))} chunks published: {_num(sent)} events sent, '
                   f'{_num(rejected)} rejected in {elapsed:.2f}s{avg}.</p>{_chart(str(s.get("sync")), timeline)}')
    else:
        out.append('<p class="muted">No chunk was published (nothing to send, skipped, dry run or error).</p>')
    timings = s.get("timings") or {}
    if timings:
        parts = " &middot; ".join(f"{_e(k)} {float(v):.2f}s" for k, v in timings.items())
        out.append(f'<p class="muted">Timings: {parts}; {_num(s.get("requests"))} requests, '
                   f'{_num(s.get("retried_entries"))} entries retried.</p>')
    elif s.get("requests"):
        out.append(f'<p class="muted">{_num(s.get("requests"))} requests, {_num(s.get("retried_entries"))} '
                   "entries retried.</p>")
    samples = (s.get("invalid_keys") or {}).get("duplicate_samples") or []
    if samples:
        out.append(f'<p>Duplicated keys (samples): <code>{_e(_compact(samples))}</code></p>')
    if s.get("rejected") or s.get("rejections"):
        out.append(_rejections(s))
    if s.get("events"):
        out.append(_sent_events(s))
    out.append("</section>")
    return "".join(out)


def render_report(run: dict[str, Any]) -> str:
    """The whole HTML page for ``run`` (a result-file dict, plus a ``timeline`` per sync)."""
    syncs = run.get("syncs") or []
    body = _header(run) + _counts_table(syncs) + "".join(_sync_section(i, s, run) for i, s in enumerate(syncs))
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<title>dbt-eventbridge run {_e(run.get("run_id"))}</title><style>{CSS}</style></head>'
            f"<body><main>{body}</main></body></html>\n")


def write_report(run: dict[str, Any], path: str | Path) -> Path:
    """Write the page atomically, so a reader never sees half a report."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_report(run), encoding="utf-8")
    tmp.replace(path)
    return path
