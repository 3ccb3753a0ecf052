"""The wording of notifications: the summary line, the sentence for people, and each channel's body.

Every channel carries the same JSON body (:func:`build_body`); Slack gets it as mrkdwn blocks
(:func:`slack_payload`), SNS gets a subject line (:func:`sns_subject`) on top, and PagerDuty
gets it as the ``custom_details`` of an Events API v2 event (:func:`pagerduty_event`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, TypedDict

from dbt_eventbridge.alerts.evaluate import MAX_SAMPLES, RUN_SYNC, SyncStatus, rejected_share, stale_since, utc
from dbt_eventbridge.config.alerts import AlertConfig
from dbt_eventbridge.jsonvalues import to_json_value

SOURCE = "dbt-eventbridge"
PAGERDUTY_SUMMARY_MAX = 1024  # PagerDuty's limit for payload.summary
PAGERDUTY_DEDUP_KEY_MAX = 255  # and for dedup_key


class AlertBody(TypedDict):
    """The common JSON body: the webhook's POST body, the SNS message, the EventBridge detail."""

    source: str
    kind: str                       # alert | recovery
    alert: str
    trigger: str
    sync: str
    model: str
    status: str
    exit_code: int
    run_id: str
    message: str                    # see describe()
    planned: dict[str, int]
    sent: dict[str, int]
    rejected: int
    rejections: list[Any]           # up to MAX_SAMPLES JSON objects {key, op, code, reason}
    last_success_at: str | None
    at: str | None
    recovered: int                  # changes of an interrupted earlier run that this run recorded
    interrupted_run_id: str | None  # that run, when known


@dataclass
class Notification:
    """One alert or recovery, and whether it was delivered."""

    alert: str
    type: str
    sync: str
    trigger: str
    kind: str                 # alert | recovery
    body: AlertBody           # the common JSON body
    delivered: bool = False
    error: str | None = None  # why it was not delivered


def iso(t: dt.datetime | None) -> str | None:
    return None if t is None else utc(t).isoformat(timespec="seconds")


def duration(td: dt.timedelta) -> str:
    hours = td.total_seconds() / 3600
    if hours < 2:
        return f"{max(0, round(hours * 60))} minutes"
    if hours < 72:
        return f"{round(hours)} hours"
    return f"{round(hours / 24)} days"


def one_line(text: str, limit: int = 1000) -> str:
    text = " ".join(text.split()).rstrip(".")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _who(s: SyncStatus) -> str:
    return "the dbt-eventbridge run" if s.sync == RUN_SYNC else f"sync {s.sync}"


def summary(kind: str, trigger: str, s: SyncStatus, now: dt.datetime) -> str:
    """A short line: Slack's text, the SNS subject."""
    who = _who(s)
    if kind == "alert":
        if trigger == "failed":
            return f"{who} failed"
        if trigger == "rejected":
            return f"{who} had {s.rejected} change(s) rejected"
        if trigger == "mass_removal":
            return f"{who} stopped a mass removal"
        if trigger == "interrupted":
            return f"{who} found its previous run interrupted"
        if s.last_success_at is None:
            return f"{who} has never succeeded"
        return f"{who} has not succeeded for {duration(utc(now) - utc(s.last_success_at))}"
    return {
        "failed": f"{who} no longer fails",
        "rejected": f"{who}: rejected changes are below the threshold again",
        "mass_removal": f"{who} is no longer blocked by a mass removal",
        "stale": f"{who} succeeded again",
        "interrupted": f"{who} runs to completion again",
    }[trigger]


def describe(kind: str, trigger: str, alert: AlertConfig, s: SyncStatus, now: dt.datetime) -> str:
    """One sentence for people: what is wrong, or that it is fixed."""
    if s.sync == RUN_SYNC:
        if kind == "alert":
            why = f": {one_line(s.message)}" if s.message else f" with exit code {s.exit_code}"
            return f"The dbt-eventbridge run failed before it could sync{why}."
        return f"The dbt-eventbridge run {s.run_id} loaded the project and ran its syncs again."
    who = f"Sync '{s.sync}' (model {s.model})"
    if kind == "alert":
        return _describe_alert(who, trigger, alert, s, now)
    return _describe_recovery(who, trigger, s)


def _describe_alert(who: str, trigger: str, alert: AlertConfig, s: SyncStatus, now: dt.datetime) -> str:
    if trigger == "failed":
        why = f": {one_line(s.message)}" if s.message else f" with exit code {s.exit_code}"
        return f"{who} failed{why}."
    if trigger == "rejected":
        attempted = sum(s.sent.values()) + s.rejected
        limits = []
        if alert.rejected_min_rows > 0:
            limits.append(f"{alert.rejected_min_rows} row(s)")
        if alert.rejected_min_share > 0:
            limits.append(f"{alert.rejected_min_share:.1%} of the changes")
        return (f"{who} had {s.rejected} of {attempted} change(s) rejected ({rejected_share(s):.1%}), at or above "
                f"this alert's threshold of {' or '.join(limits)}; rejected changes are retried on the next run.")
    if trigger == "mass_removal":
        why = f": {one_line(s.message)}" if s.message else ""
        return (f"{who} stopped before publishing because it would remove too many delivered rows{why}; "
                "fix the model, or rerun with --allow-mass-removal if the removals are real.")
    if trigger == "interrupted":
        return _describe_interrupted(who, s)
    since = stale_since(s)
    if s.last_success_at is None:
        return (f"{who} has never had a successful run since {iso(since)}, {duration(utc(now) - since)} ago "
                f"(this alert's limit is {alert.stale_after_hours:g} hours).")
    return (f"{who} has not had a successful run for {duration(utc(now) - since)}, since {iso(since)} "
            f"(this alert's limit is {alert.stale_after_hours:g} hours).")


def _describe_interrupted(who: str, s: SyncStatus) -> str:
    which = f"run {s.interrupted_run_id}" if s.interrupted_run_id else "an earlier run"
    if s.recovered:
        done = f"{s.recovered} change(s) it had delivered are now recorded, so they are not sent again"
    else:
        done = "it had recorded no delivered change"
    return (f"{who}: {which} was stopped before it finished (killed, cancelled or out of memory); run {s.run_id} "
            f"completed it: {done}, and its other changes were planned again. No change is lost; if it happens "
            "again, find out what stops the runs (a cancelled job, the out-of-memory killer, a timeout).")


def _describe_recovery(who: str, trigger: str, s: SyncStatus) -> str:
    if trigger == "failed":
        return f"{who} ran again with status {s.status} after failing."
    if trigger == "rejected":
        return (f"{who} had {s.rejected} change(s) rejected in run {s.run_id}, below this alert's threshold "
                "again.")
    if trigger == "mass_removal":
        return f"{who} published again with status {s.status}; it is no longer stopped by the mass-removal guard."
    if trigger == "interrupted":
        return f"{who} ran with status {s.status} and found no interrupted run before it."
    return f"{who} had a successful run again at {iso(s.last_success_at or s.finished_at)}."


def build_body(kind: str, trigger: str, alert: AlertConfig, s: SyncStatus, now: dt.datetime) -> AlertBody:
    """The common JSON body: the webhook's POST body, the SNS message, the EventBridge detail."""
    return {
        "source": SOURCE,
        "kind": kind,
        "alert": alert.name,
        "trigger": trigger,
        "sync": s.sync,
        "model": s.model,
        "status": s.status,
        "exit_code": s.exit_code,
        "run_id": s.run_id,
        "message": describe(kind, trigger, alert, s, now),
        "planned": dict(s.planned),
        "sent": dict(s.sent),
        "rejected": s.rejected,
        "rejections": [to_json_value(r) if not isinstance(r, dict) else {k: to_json_value(v) for k, v in r.items()}
                       for r in s.rejections[:MAX_SAMPLES]],
        "last_success_at": iso(s.last_success_at),
        "at": iso(now),
        "recovered": s.recovered,
        "interrupted_run_id": s.interrupted_run_id,
    }


def dumps(body: object) -> str:
    return json.dumps(body, default=str, ensure_ascii=False)


def _mrkdwn(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters in any text.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(n: Notification, line: str) -> dict[str, object]:
    b = n.body
    emoji = ":rotating_light:" if n.kind == "alert" else ":white_check_mark:"
    text = f"*{_mrkdwn(line)}*\n{_mrkdwn(b['message'])}"
    if n.kind == "alert" and n.trigger == "rejected":
        for r in b["rejections"]:
            text += (f"\n• `{_mrkdwn(str(r.get('op')))}` `{_mrkdwn(dumps(r.get('key')))}` "
                     f"{_mrkdwn(str(r.get('code')))}: {_mrkdwn(str(r.get('reason')))}")
    if len(text) > 3000:  # Slack's limit for a section's text
        text = text[:2997] + "..."
    context = (f"alert `{_mrkdwn(n.alert)}` · trigger `{n.trigger}` · status `{_mrkdwn(str(b['status']))}` · "
               f"exit code {b['exit_code']} · run `{_mrkdwn(str(b['run_id']))}` · {b['at']}")
    return {
        "text": f"{emoji} {line}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ],
    }


def sns_subject(n: Notification, line: str) -> str:
    """At most 100 printable ASCII characters, as SNS requires of an email subject."""
    text = f"dbt-eventbridge {n.kind}: {line}"
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = " ".join(re.sub(r"[^\x20-\x7e]", " ", text).split())
    return text if len(text) <= 100 else text[:97] + "..."


def pagerduty_dedup_key(alert: str, sync: str, trigger: str) -> str:
    """The same for every run of one alert, sync and trigger, so PagerDuty groups the repeats of one
    problem into one open incident, and the recovery's resolve closes that incident."""
    key = f"{SOURCE}/{alert}/{sync}/{trigger}"
    if len(key) <= PAGERDUTY_DEDUP_KEY_MAX:
        return key
    # A very long sync name: keep the start readable, and a digest to keep keys distinct.
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return key[:PAGERDUTY_DEDUP_KEY_MAX - len(digest) - 1] + "/" + digest


def pagerduty_summary(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= PAGERDUTY_SUMMARY_MAX else text[:PAGERDUTY_SUMMARY_MAX - 3] + "..."


def pagerduty_event(n: Notification, routing_key: str, severity: str, source: str) -> dict[str, object]:
    """The Events API v2 event: ``trigger`` for an alert, ``resolve`` (same dedup_key) for a recovery."""
    event: dict[str, object] = {
        "routing_key": routing_key,
        "event_action": "trigger" if n.kind == "alert" else "resolve",
        "dedup_key": pagerduty_dedup_key(n.alert, n.sync, n.trigger),
    }
    if n.kind != "alert":
        return event  # a resolve is matched by its dedup_key; PagerDuty ignores a payload on it
    b = n.body
    payload: dict[str, object] = {
        "summary": pagerduty_summary(b["message"]),  # the incident's title: the sentence for people
        "source": source,
        "severity": severity,
        "timestamp": b["at"],
        "component": n.sync,
        "class": n.trigger,
        "custom_details": b,
    }
    if n.sync != RUN_SYNC and b["model"]:
        payload["group"] = b["model"]  # a failure of the whole run concerns no one model
    event["payload"] = payload
    return event
