"""Alerts: tell people when syncs fail, reject rows, stop a mass removal or go stale.

Alerts are declared under ``vars: eventbridge: alerts:`` and checked after each run.
Each (alert, sync, trigger) has a state, "firing" or "ok", kept in an :class:`AlertStore`.
A notification goes out only when that state changes: one alert when a condition starts,
one recovery when it ends, however many runs it lasts. A state change is saved only once
its notification was delivered, so a failed send is tried again on the next run.

Sending never raises and never changes the run's exit code: a notification that could not
be sent is a warning, because an outage of Slack must not fail a data pipeline.

What a run's status says about each trigger; any other status leaves the stored state as it
is, because that run cannot tell whether the condition holds:

* ``failed``: fires on ``error``; recovers on ``success``, ``partial`` or ``blocked``.
* ``rejected``: fires on ``success``/``partial`` at the threshold; recovers on them below it.
* ``mass_removal``: fires on ``blocked``; recovers on ``success`` or ``partial``.
* ``stale``: every status but ``dry_run``, from ``last_success_at`` (see :func:`stale_since`).

Dry runs never alert nor recover anything. Skipped syncs (their model failed in dbt) only
evaluate ``stale``. A failure of the whole run is reported with the sync name ``(run)``;
it passes every alert's ``syncs`` filter, only evaluates ``failed``, and recovers on the
next run that reports any sync (that run did load the project).
"""

from __future__ import annotations

import datetime as dt
import difflib
import http.client
import json
import logging
import os
import re
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from dbt_eventbridge import __version__
from dbt_eventbridge.config.syncs import BUS_ARN_RE, BUS_NAME_RE
from dbt_eventbridge.errors import Problem
from dbt_eventbridge.jsonvalues import to_json_value

TYPES = ("slack", "webhook", "sns", "eventbridge")
TRIGGERS = ("failed", "rejected", "mass_removal", "stale")
RUN_SYNC = "(run)"  # the sync name of a failure of the whole run
SOURCE = "dbt-eventbridge"
USER_AGENT = f"dbt-eventbridge/{__version__}"
HTTP_TIMEOUT_SECONDS = 10
MAX_SAMPLES = 5
FIRING, OK = "firing", "ok"

BASE_PATH = "vars.eventbridge.alerts"
COMMON_KEYS = ("name", "type", "triggers", "rejected_min_rows", "rejected_min_share", "stale_after_hours", "syncs")
TYPE_KEYS: dict[str, tuple[str, ...]] = {
    "slack": ("url_env",),
    "webhook": ("url_env",),
    "sns": ("topic_arn", "region", "endpoint_url"),
    "eventbridge": ("event_bus", "region", "endpoint_url"),
}
REQUIRED_KEY = {"slack": "url_env", "webhook": "url_env", "sns": "topic_arn", "eventbridge": "event_bus"}
ALL_KEYS = COMMON_KEYS + ("url_env", "topic_arn", "event_bus", "region", "endpoint_url")

ALERT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TOPIC_ARN_RE = re.compile(r"^arn:aws[\w-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")
REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")

# Statuses whose run got far enough to say something about each trigger.
_COMPLETED = ("success", "partial")
_STALE_STATUSES = ("success", "partial", "error", "blocked", "skipped")

Log = Callable[[str, str], None]  # (level, message), as in sync.py
MakeClient = Callable[[str, "AlertConfig"], Any]  # (boto3 service name, alert) -> client


# --- Configuration -------------------------------------------------------------------------------

def _closest(value: str, valid: Sequence[str], what: str) -> str:
    close = difflib.get_close_matches(value, list(valid), n=1, cutoff=0.6)
    if close:
        return f"Did you mean '{close[0]}'?"
    return f"Valid {what} are: " + ", ".join(valid) + "."


@dataclass(frozen=True)
class AlertConfig:
    """One alert: where it is sent, and which conditions of which syncs it watches."""

    name: str
    type: str
    url_env: str | None = None        # slack / webhook: the NAME of the env var holding the URL
    topic_arn: str | None = None      # sns
    event_bus: str | None = None      # eventbridge: a name or an ARN
    region: str | None = None         # sns / eventbridge; default: the ARN's, then the sync settings'
    endpoint_url: str | None = None   # sns / eventbridge
    triggers: tuple[str, ...] = TRIGGERS
    rejected_min_rows: int = 1        # 0 = off
    rejected_min_share: float = 0.0   # 0 = off
    stale_after_hours: float = 24.0
    syncs: tuple[str, ...] = ()       # empty: every sync
    path: str = ""                    # e.g. vars.eventbridge.alerts[0]

    def watches(self, sync: str) -> bool:
        # A failure of the whole run concerns every sync, so no filter hides it.
        return not self.syncs or sync == RUN_SYNC or sync in self.syncs


class _Checker:
    """Collects the problems of one alert, located by their YAML path."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.name: str | None = None
        self.problems: list[Problem] = []

    def add(self, key: str | None, message: str, fix: str | None = None) -> None:
        who = f"alert '{self.name}': " if self.name else ""
        where = f"{self.path}.{key}" if key else self.path
        self.problems.append(Problem(message=who + message, path=where, fix=fix))

    def number(self, raw: Mapping[str, Any], key: str, default: float, *, whole: bool, low: float,
               high: float | None, low_open: bool, fix: str) -> float:
        value = raw.get(key, default)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and whole and isinstance(value, float) and not value.is_integer():
            ok = False
        if ok:
            ok = (value > low if low_open else value >= low) and (high is None or value <= high)
        if not ok:
            self.add(key, f"'{key}' must be {_number_range(whole, low, high, low_open)}, got {value!r}", fix)
            return default
        return int(value) if whole else float(value)

    def optional_string(self, raw: Mapping[str, Any], key: str, fix: str) -> str | None:
        value = raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.add(key, f"'{key}' must be a non-empty text, got {value!r}", fix)
            return None
        return value.strip()


def _number_range(whole: bool, low: float, high: float | None, low_open: bool) -> str:
    kind = "a whole number" if whole else "a number"
    if high is not None:
        return f"{kind} from {low:g} to {high:g}"
    return f"{kind} {'above' if low_open else 'of at least'} {low:g}"


def _looks_like_url(value: Any) -> bool:
    return isinstance(value, str) and ("://" in value or value.strip().lower().startswith(("http:", "https:",
                                                                                          "hooks.slack.com")))


def _shown(value: Any) -> str:
    # Error messages quote what was written, except URLs: they may be secret webhooks.
    return "a URL (not shown)" if _looks_like_url(value) else repr(value)


def _secret_url_fix(alert_type: str | None) -> str:
    example = "SLACK_WEBHOOK_URL" if alert_type == "slack" else "ALERT_WEBHOOK_URL"
    return (f"Put the URL in an environment variable (export {example}='https://...') and write "
            f"`url_env: {example}`. dbt_project.yml is committed, so treat a URL written there as leaked and "
            "have it replaced")


def _parse_one(c: _Checker, raw: Any) -> AlertConfig | None:
    if not isinstance(raw, Mapping):
        c.add(None, f"expected a mapping with name, type and where to send, got {_shown(raw)}",
              "Write for example `- {name: data-team-slack, type: slack, url_env: SLACK_WEBHOOK_URL}`")
        return None
    name = raw.get("name")
    if name is None:
        c.add("name", "'name' is required", "Give the alert a unique name, such as data-team-slack; it keys the "
              "alert's state")
    elif not isinstance(name, str) or not ALERT_NAME_RE.match(name):
        c.add("name", f"alert name {name!r} must be letters, digits, '_', '-' and '.' (at most 64, starting "
              "with a letter or digit)", "Rename it, for example data-team-slack")
    else:
        c.name = name
    alert_type = raw.get("type")
    if alert_type is None:
        c.add("type", "'type' is required", f"Set type to one of: {', '.join(TYPES)}")
        alert_type = None
    elif alert_type not in TYPES:
        c.add("type", f"unknown alert type {alert_type!r}", _closest(str(alert_type), TYPES, "types"))
        alert_type = None

    for key, value in raw.items():
        if key in ALL_KEYS:
            if alert_type and key not in COMMON_KEYS and key not in TYPE_KEYS[alert_type]:
                owners = [t for t in TYPES if key in TYPE_KEYS[t]]
                c.add(key, f"'{key}' does not apply to alerts of type {alert_type}",
                      f"Remove it, or set type to {' or '.join(owners)}")
        elif "url" in str(key).lower() or _looks_like_url(value):
            # Never echo the value: it is most likely a secret webhook URL.
            c.add(key, f"unknown key '{key}': alerts take no URL in the YAML, only the name of an environment "
                  "variable that holds it (url_env)", _secret_url_fix(alert_type))
        else:
            c.add(key, f"unknown key '{key}'", _closest(str(key), ALL_KEYS, "keys"))

    url_env = topic_arn = event_bus = None
    if alert_type:
        required = REQUIRED_KEY[alert_type]
        if raw.get(required) is None:
            c.add(required, f"'{required}' is required for alerts of type {alert_type}", _required_fix(alert_type))
    if alert_type in ("slack", "webhook") and raw.get("url_env") is not None:
        url_env = _check_url_env(c, raw["url_env"], alert_type)
    if alert_type == "sns" and raw.get("topic_arn") is not None:
        topic_arn = raw["topic_arn"]
        if not isinstance(topic_arn, str) or not TOPIC_ARN_RE.match(topic_arn):
            c.add("topic_arn", f"{_shown(topic_arn)} is not an SNS topic ARN",
                  "Write it as arn:aws:sns:us-east-1:123456789012:ops-alerts")
            topic_arn = None
    if alert_type == "eventbridge" and raw.get("event_bus") is not None:
        event_bus = raw["event_bus"]
        if not isinstance(event_bus, str) or not (BUS_NAME_RE.match(event_bus) or BUS_ARN_RE.match(event_bus)):
            c.add("event_bus", f"{_shown(event_bus)} is neither an event bus name nor an event bus ARN",
                  "Use a name like 'ops-bus' or an ARN like 'arn:aws:events:us-east-1:123456789012:event-bus/ops-bus'")
            event_bus = None
    region = endpoint_url = None
    if alert_type in ("sns", "eventbridge"):
        region = c.optional_string(raw, "region", "Write a region such as us-east-1, or remove it")
        if region and not REGION_RE.match(region):
            c.add("region", f"{region!r} is not an AWS region", "Write a region such as us-east-1, or remove it")
        endpoint_url = c.optional_string(raw, "endpoint_url", "Write a URL such as https://sns.us-east-1.amazonaws.com")
        parsed = urllib.parse.urlparse(endpoint_url or "")
        if endpoint_url and (parsed.scheme not in ("http", "https") or not parsed.netloc):
            c.add("endpoint_url", f"{endpoint_url!r} is not an http(s) URL",
                  "Write a URL such as https://sns.us-east-1.amazonaws.com, or remove it")

    triggers = _parse_triggers(c, raw.get("triggers"))
    min_rows = int(c.number(raw, "rejected_min_rows", 1, whole=True, low=0, high=None, low_open=False,
                            fix="Write a row count such as 1, or 0 to use rejected_min_share alone"))
    min_share = c.number(raw, "rejected_min_share", 0.0, whole=False, low=0, high=1, low_open=False,
                         fix="Write a share such as 0.05 for 5%, or 0 to use rejected_min_rows alone")
    stale_hours = c.number(raw, "stale_after_hours", 24.0, whole=False, low=0, high=None, low_open=True,
                           fix="Write a number of hours such as 24")
    if triggers and "rejected" in triggers and min_rows == 0 and min_share == 0:
        c.add("rejected_min_rows", "rejected_min_rows and rejected_min_share are both 0, so the 'rejected' "
              "trigger can never fire", "Set one of them above 0, or remove 'rejected' from triggers")
    syncs = _parse_syncs(c, raw.get("syncs"))

    if c.problems or c.name is None or alert_type is None or triggers is None or syncs is None:
        return None
    return AlertConfig(
        name=c.name, type=alert_type, url_env=url_env, topic_arn=topic_arn, event_bus=event_bus, region=region,
        endpoint_url=endpoint_url, triggers=triggers, rejected_min_rows=min_rows, rejected_min_share=min_share,
        stale_after_hours=stale_hours, syncs=syncs, path=c.path)


def _required_fix(alert_type: str) -> str:
    return {
        "slack": "Name the environment variable that holds the Slack incoming-webhook URL, e.g. "
                 "`url_env: SLACK_WEBHOOK_URL`",
        "webhook": "Name the environment variable that holds the webhook URL, e.g. `url_env: ALERT_WEBHOOK_URL`",
        "sns": "Give the topic, e.g. `topic_arn: arn:aws:sns:us-east-1:123456789012:ops-alerts`",
        "eventbridge": "Give the bus to send to, e.g. `event_bus: ops-bus` (a name or an ARN)",
    }[alert_type]


def _check_url_env(c: _Checker, value: Any, alert_type: str) -> str | None:
    if _looks_like_url(value):
        c.add("url_env", "url_env holds a URL, but it must be the NAME of an environment variable that holds the "
              "URL: webhook URLs are secrets and do not belong in dbt_project.yml", _secret_url_fix(alert_type))
        return None
    if not isinstance(value, str) or not ENV_NAME_RE.match(value):
        c.add("url_env", f"url_env {_shown(value)} is not an environment variable name",
              "Write the variable's name alone, letters, digits and '_', e.g. SLACK_WEBHOOK_URL (no '$')")
        return None
    return value


def _parse_triggers(c: _Checker, raw: Any) -> tuple[str, ...] | None:
    if raw is None:
        return TRIGGERS
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        c.add("triggers", f"expected a list of triggers, got {_shown(raw)}",
              f"Write for example `triggers: [failed, stale]`; valid triggers are {', '.join(TRIGGERS)}")
        return None
    if not raw:
        c.add("triggers", "'triggers' is empty, so the alert would never fire",
              "List some of failed, rejected, mass_removal, stale, or remove the key to get all four")
        return None
    ok = True
    for i, t in enumerate(raw):
        if t not in TRIGGERS:
            c.add(f"triggers[{i}]", f"unknown trigger {_shown(t)}",
                  _closest(str(t), TRIGGERS, "triggers"))
            ok = False
    # Keep the canonical order, so that notifications come out in a stable order.
    return tuple(t for t in TRIGGERS if t in raw) if ok else None


def _parse_syncs(c: _Checker, raw: Any) -> tuple[str, ...] | None:
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(s, str) and s for s in raw):
        c.add("syncs", f"expected a list of sync names, got {_shown(raw)}",
              "Write for example `syncs: [customers_to_crm, order_lines]`, or remove it to watch every sync")
        return None
    return tuple(raw)


def parse_alerts(raw: Any) -> tuple[list[AlertConfig], list[Problem]]:
    """Parse ``vars.eventbridge.alerts`` into alerts, and every problem found.

    An alert with a problem is left out of the list; so are all alerts sharing a name, since
    the name keys the state and which one would own it is not clear. A text value is read
    as JSON, so ``DBT_EVENTBRIDGE_ALERTS`` can hold the list too.
    """
    if raw is None:
        return [], []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return [], [Problem("alerts is text that is not a JSON list", path=BASE_PATH,
                                fix="Write the alerts as a YAML list in dbt_project.yml, or as a JSON list in "
                                    "DBT_EVENTBRIDGE_ALERTS")]
    if not isinstance(raw, list):
        return [], [Problem(f"alerts must be a list of alerts, got {type(raw).__name__}", path=BASE_PATH,
                            fix="Write each alert as a list item: `alerts: [{name: ..., type: slack, url_env: ...}]`")]
    alerts: list[AlertConfig] = []
    problems: list[Problem] = []
    names: dict[str, list[int]] = {}
    for i, item in enumerate(raw):
        c = _Checker(f"{BASE_PATH}[{i}]")
        alert = _parse_one(c, item)
        problems += c.problems
        if c.name:
            names.setdefault(c.name.lower(), []).append(i)
        if alert:
            alerts.append(alert)
    for positions in names.values():
        if len(positions) < 2:
            continue
        for i in positions:
            others = ", ".join(f"{BASE_PATH}[{j}]" for j in positions if j != i)
            problems.append(Problem(
                f"alert '{raw[i]['name']}': the name is also used by {others}", path=f"{BASE_PATH}[{i}].name",
                fix="Alert names key the alert's state and must be unique (case does not count); rename one"))
        alerts = [a for a in alerts if a.name.lower() != raw[positions[0]]["name"].lower()]
    return alerts, problems


def check_alert_syncs(alerts: Sequence[AlertConfig], sync_names: Sequence[str]) -> list[Problem]:
    """A problem for each ``syncs`` entry that names no sync of the project (a typo watches nothing)."""
    known = list(sync_names)
    problems = []
    for alert in alerts:
        for i, s in enumerate(alert.syncs):
            if s not in known:
                close = _closest(s, known, "syncs") if known else "The project has no syncs"
                problems.append(Problem(f"alert '{alert.name}': no sync is named '{s}'",
                                        path=f"{alert.path}.syncs[{i}]", fix=close))
    return problems


# --- Evaluation ----------------------------------------------------------------------------------

@dataclass
class SyncStatus:
    """What a run did for one sync, with what run history says about its last success."""

    sync: str                # the sync's name; RUN_SYNC for a failure of the whole run
    model: str
    status: str              # success | partial | error | skipped | blocked | dry_run
    exit_code: int
    message: str | None
    run_id: str
    planned: dict[str, int]  # added / changed / removed
    sent: dict[str, int]
    rejected: int
    last_success_at: dt.datetime | None   # last run with status success/partial, this one included
    finished_at: dt.datetime
    rejections: list[dict[str, Any]] = field(default_factory=list)  # samples: {key, op, code, reason}
    # The sync's first recorded run: a sync that never succeeded is stale once this is
    # older than stale_after_hours. None: measured from this run instead.
    first_run_at: dt.datetime | None = None


def _utc(t: dt.datetime) -> dt.datetime:
    # Naive times are taken as UTC, which is what the run history stores.
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def _rejected_share(s: SyncStatus) -> float:
    attempted = sum(s.sent.values()) + s.rejected
    return s.rejected / attempted if attempted else 0.0


def rejected_over_threshold(alert: AlertConfig, s: SyncStatus) -> bool:
    """Rejected rows at or above either threshold; a threshold of 0 is off."""
    by_rows = alert.rejected_min_rows > 0 and s.rejected >= alert.rejected_min_rows
    by_share = alert.rejected_min_share > 0 and s.rejected > 0 and _rejected_share(s) >= alert.rejected_min_share
    return by_rows or by_share


def stale_since(s: SyncStatus) -> dt.datetime:
    """Where staleness is measured from: the last success, else the first run, else this run.

    A sync that never succeeded has had ``stale_after_hours`` from its first recorded run to
    succeed once. Without that date, the clock starts at this run: a new sync is not stale on
    its first run, and its errors are the ``failed`` trigger's business.
    """
    return _utc(s.last_success_at or s.first_run_at or s.finished_at)


def evaluate(alert: AlertConfig, s: SyncStatus, now: dt.datetime) -> dict[str, bool | None]:
    """Each of the alert's triggers -> True (holds), False (cleared) or None (this run cannot tell)."""
    out: dict[str, bool | None] = {}
    for trigger in alert.triggers:
        out[trigger] = _condition(trigger, alert, s, _utc(now))
    return out


def _condition(trigger: str, alert: AlertConfig, s: SyncStatus, now: dt.datetime) -> bool | None:
    if s.status == "dry_run":
        return None
    if s.sync == RUN_SYNC:
        return s.status == "error" if trigger == "failed" else None
    if trigger == "failed":
        return True if s.status == "error" else False if s.status in _COMPLETED + ("blocked",) else None
    if trigger == "rejected":
        return rejected_over_threshold(alert, s) if s.status in _COMPLETED else None
    if trigger == "mass_removal":
        return True if s.status == "blocked" else False if s.status in _COMPLETED else None
    if trigger == "stale":
        if s.status not in _STALE_STATUSES:
            return None
        return now - stale_since(s) > dt.timedelta(hours=alert.stale_after_hours)
    return None


def _with_run_recovery(statuses: Sequence[SyncStatus]) -> list[SyncStatus]:
    """Add a successful RUN_SYNC status when a real run reported syncs but no run failure.

    A run that reports syncs did load the project, so an earlier failure of the whole run
    has recovered; nothing else would ever say so.
    """
    out = list(statuses)
    real = [s for s in out if s.status != "dry_run"]
    if not real or any(s.sync == RUN_SYNC for s in out):
        return out
    last = max(real, key=lambda s: _utc(s.finished_at))
    out.append(SyncStatus(
        sync=RUN_SYNC, model="", status="success", exit_code=max(s.exit_code for s in real), message=None,
        run_id=last.run_id, planned={}, sent={}, rejected=0, last_success_at=None, finished_at=last.finished_at))
    return out


# --- Notifications -------------------------------------------------------------------------------

class AlertStore(Protocol):
    """The state of each (alert name, sync, trigger): "firing" or "ok"; missing means ok."""

    def load(self) -> dict[tuple[str, str, str], str]: ...

    def save(self, changes: dict[tuple[str, str, str], str]) -> None: ...


class MemoryStore:
    """An AlertStore in memory, for tests and for embedding in a long-lived process."""

    def __init__(self, state: Mapping[tuple[str, str, str], str] | None = None) -> None:
        self.state: dict[tuple[str, str, str], str] = dict(state or {})

    def load(self) -> dict[tuple[str, str, str], str]:
        return dict(self.state)

    def save(self, changes: dict[tuple[str, str, str], str]) -> None:
        self.state.update(changes)


@dataclass
class Notification:
    """One alert or recovery, and whether it was delivered."""

    alert: str
    type: str
    sync: str
    trigger: str
    kind: str                 # alert | recovery
    body: dict[str, Any]      # the common JSON body
    delivered: bool = False
    error: str | None = None  # why it was not delivered


class SendFailed(Exception):
    """A notification could not be delivered; the message says why, without secrets."""


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else _utc(t).isoformat(timespec="seconds")


def _duration(td: dt.timedelta) -> str:
    hours = td.total_seconds() / 3600
    if hours < 2:
        return f"{max(0, round(hours * 60))} minutes"
    if hours < 72:
        return f"{round(hours)} hours"
    return f"{round(hours / 24)} days"


def _one_line(text: str, limit: int = 1000) -> str:
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
        if s.last_success_at is None:
            return f"{who} has never succeeded"
        return f"{who} has not succeeded for {_duration(_utc(now) - _utc(s.last_success_at))}"
    return {
        "failed": f"{who} no longer fails",
        "rejected": f"{who}: rejected changes are below the threshold again",
        "mass_removal": f"{who} is no longer blocked by a mass removal",
        "stale": f"{who} succeeded again",
    }[trigger]


def describe(kind: str, trigger: str, alert: AlertConfig, s: SyncStatus, now: dt.datetime) -> str:
    """One sentence for people: what is wrong, or that it is fixed."""
    if s.sync == RUN_SYNC:
        if kind == "alert":
            why = f": {_one_line(s.message)}" if s.message else f" with exit code {s.exit_code}"
            return f"The dbt-eventbridge run failed before it could sync{why}."
        return f"The dbt-eventbridge run {s.run_id} loaded the project and ran its syncs again."
    who = f"Sync '{s.sync}' (model {s.model})"
    if kind == "alert":
        if trigger == "failed":
            why = f": {_one_line(s.message)}" if s.message else f" with exit code {s.exit_code}"
            return f"{who} failed{why}."
        if trigger == "rejected":
            attempted = sum(s.sent.values()) + s.rejected
            limits = []
            if alert.rejected_min_rows > 0:
                limits.append(f"{alert.rejected_min_rows} row(s)")
            if alert.rejected_min_share > 0:
                limits.append(f"{alert.rejected_min_share:.1%} of the changes")
            return (f"{who} had {s.rejected} of {attempted} change(s) rejected ({_rejected_share(s):.1%}), at or above "
                    f"this alert's threshold of {' or '.join(limits)}; rejected changes are retried on the next run.")
        if trigger == "mass_removal":
            why = f": {_one_line(s.message)}" if s.message else ""
            return (f"{who} stopped before publishing because it would remove too many delivered rows{why}; "
                    "fix the model, or rerun with --allow-mass-removal if the removals are real.")
        since = stale_since(s)
        if s.last_success_at is None:
            return (f"{who} has never had a successful run since {_iso(since)}, {_duration(_utc(now) - since)} ago "
                    f"(this alert's limit is {alert.stale_after_hours:g} hours).")
        return (f"{who} has not had a successful run for {_duration(_utc(now) - since)}, since {_iso(since)} "
                f"(this alert's limit is {alert.stale_after_hours:g} hours).")
    if trigger == "failed":
        return f"{who} ran again with status {s.status} after failing."
    if trigger == "rejected":
        return (f"{who} had {s.rejected} change(s) rejected in run {s.run_id}, below this alert's threshold "
                "again.")
    if trigger == "mass_removal":
        return f"{who} published again with status {s.status}; it is no longer stopped by the mass-removal guard."
    return f"{who} had a successful run again at {_iso(s.last_success_at or s.finished_at)}."


def build_body(kind: str, trigger: str, alert: AlertConfig, s: SyncStatus, now: dt.datetime) -> dict[str, Any]:
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
        "last_success_at": _iso(s.last_success_at),
        "at": _iso(now),
    }


def _dumps(body: Any) -> str:
    return json.dumps(body, default=str, ensure_ascii=False)


def _mrkdwn(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters in any text.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(n: Notification, line: str) -> dict[str, Any]:
    b = n.body
    emoji = ":rotating_light:" if n.kind == "alert" else ":white_check_mark:"
    text = f"*{_mrkdwn(line)}*\n{_mrkdwn(b['message'])}"
    if n.kind == "alert" and n.trigger == "rejected":
        for r in b["rejections"]:
            text += (f"\n• `{_mrkdwn(str(r.get('op')))}` `{_mrkdwn(_dumps(r.get('key')))}` "
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


# --- Senders -------------------------------------------------------------------------------------

def _env_url(alert: AlertConfig, env: Mapping[str, str]) -> str:
    assert alert.url_env
    url = env.get(alert.url_env, "").strip()
    if not url:
        raise SendFailed(f"the environment variable {alert.url_env} is not set (or empty); set it to the "
                         f"{'Slack incoming-webhook' if alert.type == 'slack' else 'webhook'} URL")
    if urllib.parse.urlparse(url).scheme not in ("http", "https") or not urllib.parse.urlparse(url).netloc:
        raise SendFailed(f"the value of {alert.url_env} is not an http(s) URL")
    return url


def _post(alert: AlertConfig, url: str, payload: Any) -> None:
    req = urllib.request.Request(url, data=_dumps(payload).encode("utf-8"), method="POST", headers={
        "Content-Type": "application/json", "User-Agent": USER_AGENT})
    try:
        # urlopen raises HTTPError for any answer outside 2xx (after following redirects).
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_SECONDS):
            return
    except urllib.error.HTTPError as e:
        answer = _one_line(e.read(500).decode("utf-8", "replace"), 200) if e.fp else ""
        raise SendFailed(f"the URL in {alert.url_env} answered HTTP {e.code}" + (f": {answer}" if answer else ""))
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        # Exceptions may quote the URL, which is a secret: keep only the env var's name.
        reason = str(getattr(e, "reason", e)).replace(url, f"${alert.url_env}")
        raise SendFailed(f"could not reach the URL in {alert.url_env}: {reason}")


def _send_slack(alert: AlertConfig, n: Notification, line: str, ctx: _Context) -> None:
    _post(alert, _env_url(alert, ctx.env), slack_payload(n, line))


def _send_webhook(alert: AlertConfig, n: Notification, line: str, ctx: _Context) -> None:
    _post(alert, _env_url(alert, ctx.env), n.body)


def _send_sns(alert: AlertConfig, n: Notification, line: str, ctx: _Context) -> None:
    args: dict[str, Any] = {"TopicArn": alert.topic_arn, "Subject": sns_subject(n, line), "Message": _dumps(n.body)}
    if alert.topic_arn and alert.topic_arn.endswith(".fifo"):
        # FIFO topics require a group; the dedup id lets a lost response be retried safely.
        args["MessageGroupId"] = SOURCE
        args["MessageDeduplicationId"] = uuid.uuid5(uuid.NAMESPACE_URL, args["Message"]).hex
    ctx.client("sns", alert).publish(**args)


def _send_eventbridge(alert: AlertConfig, n: Notification, line: str, ctx: _Context) -> None:
    entry = {"Source": SOURCE, "DetailType": f"dbt-eventbridge {n.kind.capitalize()}", "Detail": _dumps(n.body),
             "EventBusName": alert.event_bus}
    resp = ctx.client("events", alert).put_events(Entries=[entry])
    if resp.get("FailedEntryCount"):
        failed = (resp.get("Entries") or [{}])[0]
        raise SendFailed(f"EventBridge rejected the event: {failed.get('ErrorCode', 'unknown error')}: "
                         f"{failed.get('ErrorMessage', '')}".rstrip(": "))


SENDERS: dict[str, Callable[[AlertConfig, Notification, str, _Context], None]] = {
    "slack": _send_slack, "webhook": _send_webhook, "sns": _send_sns, "eventbridge": _send_eventbridge}


def _arn_region(arn: str | None) -> str | None:
    parts = (arn or "").split(":")
    return parts[3] if len(parts) > 5 and parts[0] == "arn" and parts[3] else None


def client_factory(region: str | None = None, aws_profile: str | None = None) -> MakeClient:
    """boto3 clients for alerts: the alert's region, else its ARN's, else ``region`` (the sync
    settings'), else boto3's default. Credentials come from boto3's usual chain (or the profile)."""

    def make(service: str, alert: AlertConfig) -> Any:
        import boto3
        import botocore.config

        session = boto3.Session(profile_name=aws_profile)
        cfg = botocore.config.Config(connect_timeout=5, read_timeout=HTTP_TIMEOUT_SECONDS,
                                     retries={"mode": "standard", "total_max_attempts": 3})
        where = alert.region or _arn_region(alert.topic_arn or alert.event_bus) or region
        return session.client(service, region_name=where, endpoint_url=alert.endpoint_url, config=cfg)

    return make


def _describe_error(e: Exception) -> str:
    if isinstance(e, SendFailed):
        return str(e)
    import botocore.exceptions

    if isinstance(e, botocore.exceptions.NoRegionError):
        return "no AWS region is set; set `region` on the alert, vars.eventbridge.region or AWS_REGION"
    if isinstance(e, botocore.exceptions.NoCredentialsError):
        return "no AWS credentials were found"
    if isinstance(e, botocore.exceptions.ClientError):
        err = e.response.get("Error", {})
        return f"AWS refused it: {err.get('Code', 'error')}: {err.get('Message', '')}".rstrip(": ")
    return f"{type(e).__name__}: {e}"


@dataclass
class _Context:
    make_client: MakeClient
    env: Mapping[str, str]
    clients: dict[tuple[str, str], Any] = field(default_factory=dict)

    def client(self, service: str, alert: AlertConfig) -> Any:
        key = (service, alert.name)
        if key not in self.clients:
            self.clients[key] = self.make_client(service, alert)
        return self.clients[key]


def _default_log(level: str, message: str) -> None:
    logger = logging.getLogger(__name__)
    logger.log(logging.WARNING if level == "warn" else logging.ERROR if level == "error" else logging.INFO, message)


def notify(alerts: Sequence[AlertConfig], statuses: Sequence[SyncStatus], store: AlertStore, *,
           now: dt.datetime, make_client: MakeClient | None = None, log: Log | None = None,
           env: Mapping[str, str] | None = None) -> list[Notification]:
    """Send a notification for each (alert, sync, trigger) whose state changed; return them all.

    Only the changes that were delivered are saved, so the others are tried again next run.
    Never raises: problems with the store or the senders are logged as warnings.
    ``env`` (default ``os.environ``) is where ``url_env`` variables are looked up.
    """
    log = _default_log if log is None else log
    ctx = _Context(make_client or client_factory(), os.environ if env is None else env)
    try:
        state = store.load()
    except Exception as e:  # noqa: BLE001 - alerts must never fail the run
        # Without the state every firing condition would be sent again on every run.
        log("warn", f"alerts were not checked: their state could not be read ({type(e).__name__}: {e})")
        return []
    sent: list[Notification] = []
    changes: dict[tuple[str, str, str], str] = {}
    statuses = _with_run_recovery(statuses)
    for alert in alerts:
        for s in statuses:
            if not alert.watches(s.sync):
                continue
            for trigger, holds in evaluate(alert, s, now).items():
                key = (alert.name, s.sync, trigger)
                firing = (changes.get(key) or state.get(key, OK)) == FIRING
                if holds is None or holds == firing:
                    continue
                kind = "alert" if holds else "recovery"
                n = Notification(alert=alert.name, type=alert.type, sync=s.sync, trigger=trigger, kind=kind,
                                 body=build_body(kind, trigger, alert, s, now))
                _deliver(alert, n, summary(kind, trigger, s, now), ctx, log)
                sent.append(n)
                if n.delivered:
                    changes[key] = FIRING if holds else OK
    if changes:
        try:
            store.save(changes)
        except Exception as e:  # noqa: BLE001
            log("warn", f"the alert state could not be saved ({type(e).__name__}: {e}); the {len(changes)} "
                        "notification(s) just sent will be sent again on the next run")
    return sent


def _deliver(alert: AlertConfig, n: Notification, line: str, ctx: _Context, log: Log) -> None:
    try:
        SENDERS[alert.type](alert, n, line, ctx)
    except Exception as e:  # noqa: BLE001 - a failed send is a warning, never a failed run
        n.error = _describe_error(e)
        log("warn", f"alert '{alert.name}' ({alert.type}) could not send the {n.kind} for {n.trigger} on "
                    f"{n.sync}: {n.error}. It will be tried again on the next run.")
        return
    n.delivered = True
    log("info", f"alert '{alert.name}' ({alert.type}): sent the {n.kind} for {n.trigger} on {n.sync}")
