"""The alert configuration contract: ``vars: eventbridge: alerts:`` read into :class:`AlertConfig`.

Each alert names where it is sent (Slack, a webhook, SNS, EventBridge or PagerDuty), which
triggers it watches (failed, rejected, mass_removal, stale, interrupted) and, optionally, which
syncs. Every problem is reported with its YAML path and a fix; an alert with a problem is left
out. Secrets are never written here, only the name of an environment variable that holds one:
webhook URLs (url_env) and PagerDuty routing keys (routing_key_env).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypedDict

from dbt_eventbridge.config.alert_checker import Checker, RawAlert, closest, looks_like_url, secret_url_fix, shown
from dbt_eventbridge.config.alert_destinations import DESTINATION_KEYS, TYPE_KEYS, parse_destination, routing_key_fix
from dbt_eventbridge.errors import Problem

TYPES = ("slack", "webhook", "sns", "eventbridge", "pagerduty")
# Every trigger is on by default: each is a sync that did not do its job (or a run that was
# killed halfway), which someone should hear of once, and each sends one alert when it starts
# and one recovery when it ends, never one per run.
TRIGGERS = ("failed", "rejected", "mass_removal", "stale", "interrupted")
RUN_SYNC = "(run)"  # the sync name of a failure of the whole run

BASE_PATH = "vars.eventbridge.alerts"
COMMON_KEYS = ("name", "type", "triggers", "rejected_min_rows", "rejected_min_share", "stale_after_hours", "syncs")
ALL_KEYS = COMMON_KEYS + DESTINATION_KEYS

ALERT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


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
    routing_key_env: str | None = None  # pagerduty: the NAME of the env var holding the routing key
    severity: str | None = None       # pagerduty: critical | error | warning | info (parsed default: error)
    url: str | None = None            # pagerduty: the Events API v2 endpoint; None: PagerDuty's
    triggers: tuple[str, ...] = TRIGGERS
    rejected_min_rows: int = 1        # 0 = off
    rejected_min_share: float = 0.0   # 0 = off
    stale_after_hours: float = 24.0
    syncs: tuple[str, ...] = ()       # empty: every sync
    path: str = ""                    # e.g. vars.eventbridge.alerts[0]

    def watches(self, sync: str) -> bool:
        # A failure of the whole run concerns every sync, so no filter hides it.
        return not self.syncs or sync == RUN_SYNC or sync in self.syncs


class _Limits(TypedDict):
    """The thresholds of the rejected and stale triggers."""

    rejected_min_rows: int
    rejected_min_share: float
    stale_after_hours: float


def _parse_one(c: Checker, raw: object) -> AlertConfig | None:
    if not isinstance(raw, Mapping):
        c.add(None, f"expected a mapping with name, type and where to send, got {shown(raw)}",
              "Write for example `- {name: data-team-slack, type: slack, url_env: SLACK_WEBHOOK_URL}`")
        return None
    _check_name(c, raw.get("name"))
    alert_type = _check_type(c, raw.get("type"))
    _check_keys(c, raw, alert_type)
    where = parse_destination(c, raw, alert_type)
    triggers = _parse_triggers(c, raw.get("triggers"))
    limits = _parse_limits(c, raw, triggers)
    syncs = _parse_syncs(c, raw.get("syncs"))

    if c.problems or c.name is None or alert_type is None or triggers is None or syncs is None:
        return None
    return AlertConfig(name=c.name, type=alert_type, **where, triggers=triggers, **limits, syncs=syncs,
                       path=c.path)


def _check_name(c: Checker, name: object) -> None:
    """Sets ``c.name`` when the name is valid, so that later problems quote it."""
    if name is None:
        c.add("name", "'name' is required", "Give the alert a unique name, such as data-team-slack; it keys the "
              "alert's state")
    elif not isinstance(name, str) or not ALERT_NAME_RE.match(name):
        c.add("name", f"alert name {name!r} must be letters, digits, '_', '-' and '.' (at most 64, starting "
              "with a letter or digit)", "Rename it, for example data-team-slack")
    else:
        c.name = name


def _check_type(c: Checker, alert_type: object) -> str | None:
    if isinstance(alert_type, str) and alert_type in TYPES:
        return alert_type
    if alert_type is None:
        c.add("type", "'type' is required", f"Set type to one of: {', '.join(TYPES)}")
    else:
        c.add("type", f"unknown alert type {alert_type!r}", closest(str(alert_type), TYPES, "types"))
    return None


def _check_keys(c: Checker, raw: RawAlert, alert_type: str | None) -> None:
    for key, value in raw.items():
        # Only PagerDuty takes a `url` (its public endpoint); on other alerts it is most likely a secret webhook URL.
        secret_url = key == "url" and alert_type in (None, "slack", "webhook")
        if key == "routing_key" and alert_type in (None, "pagerduty"):
            # Never echo the value: it is a secret PagerDuty routing key.
            c.add(key, "'routing_key' cannot be written in the YAML: a routing key is a secret; give the name of "
                  "an environment variable that holds it instead (routing_key_env)", routing_key_fix())
        elif key in ALL_KEYS and not secret_url:
            if alert_type and key not in COMMON_KEYS and key not in TYPE_KEYS[alert_type]:
                owners = [t for t in TYPES if key in TYPE_KEYS[t]]
                fix = f"Remove it, or set type to {' or '.join(owners)}"
                if key == "url" and "endpoint_url" in TYPE_KEYS[alert_type]:
                    fix += f"; alerts of type {alert_type} are pointed elsewhere with endpoint_url"
                c.add(key, f"'{key}' does not apply to alerts of type {alert_type}", fix)
        elif alert_type == "pagerduty" and ("url" in str(key).lower() or looks_like_url(value)):
            c.add(key, f"unknown key '{key}'", "A PagerDuty alert takes its endpoint as `url` (by default "
                  "PagerDuty's Events API v2)")
        elif "url" in str(key).lower() or looks_like_url(value):
            # Never echo the value: it is most likely a secret webhook URL.
            c.add(key, f"unknown key '{key}': alerts take no URL in the YAML, only the name of an environment "
                  "variable that holds it (url_env)", secret_url_fix(alert_type))
        else:
            c.add(key, f"unknown key '{key}'", closest(str(key), ALL_KEYS, "keys"))


def _parse_triggers(c: Checker, raw: object) -> tuple[str, ...] | None:
    if raw is None:
        return TRIGGERS
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        c.add("triggers", f"expected a list of triggers, got {shown(raw)}",
              f"Write for example `triggers: [failed, stale]`; valid triggers are {', '.join(TRIGGERS)}")
        return None
    if not raw:
        c.add("triggers", "'triggers' is empty, so the alert would never fire",
              f"List some of {', '.join(TRIGGERS)}, or remove the key to get all of them")
        return None
    ok = True
    for i, t in enumerate(raw):
        if t not in TRIGGERS:
            c.add(f"triggers[{i}]", f"unknown trigger {shown(t)}",
                  closest(str(t), TRIGGERS, "triggers"))
            ok = False
    # Keep the canonical order, so that notifications come out in a stable order.
    return tuple(t for t in TRIGGERS if t in raw) if ok else None


def _parse_limits(c: Checker, raw: RawAlert, triggers: tuple[str, ...] | None) -> _Limits:
    min_rows = int(c.number(raw, "rejected_min_rows", 1, whole=True, low=0, high=None, low_open=False,
                            fix="Write a row count such as 1, or 0 to use rejected_min_share alone"))
    min_share = c.number(raw, "rejected_min_share", 0.0, whole=False, low=0, high=1, low_open=False,
                         fix="Write a share such as 0.05 for 5%, or 0 to use rejected_min_rows alone")
    stale_hours = c.number(raw, "stale_after_hours", 24.0, whole=False, low=0, high=None, low_open=True,
                           fix="Write a number of hours such as 24")
    if triggers and "rejected" in triggers and min_rows == 0 and min_share == 0:
        c.add("rejected_min_rows", "rejected_min_rows and rejected_min_share are both 0, so the 'rejected' "
              "trigger can never fire", "Set one of them above 0, or remove 'rejected' from triggers")
    return _Limits(rejected_min_rows=min_rows, rejected_min_share=min_share, stale_after_hours=stale_hours)


def _parse_syncs(c: Checker, raw: object) -> tuple[str, ...] | None:
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(s, str) and s for s in raw):
        c.add("syncs", f"expected a list of sync names, got {shown(raw)}",
              "Write for example `syncs: [customers_to_crm, order_lines]`, or remove it to watch every sync")
        return None
    return tuple(raw)


def parse_alerts(raw: object) -> tuple[list[AlertConfig], list[Problem]]:
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
    names: dict[str, list[tuple[int, str]]] = {}  # lowercased name -> (position, name as written)
    for i, item in enumerate(raw):
        c = Checker(f"{BASE_PATH}[{i}]")
        alert = _parse_one(c, item)
        problems += c.problems
        if c.name:
            names.setdefault(c.name.lower(), []).append((i, c.name))
        if alert:
            alerts.append(alert)
    for uses in names.values():
        if len(uses) > 1:
            problems += _shared_name_problems(uses)
            alerts = [a for a in alerts if a.name.lower() != uses[0][1].lower()]
    return alerts, problems


def _shared_name_problems(uses: list[tuple[int, str]]) -> list[Problem]:
    problems = []
    for i, name in uses:
        others = ", ".join(f"{BASE_PATH}[{j}]" for j, _ in uses if j != i)
        problems.append(Problem(
            f"alert '{name}': the name is also used by {others}", path=f"{BASE_PATH}[{i}].name",
            fix="Alert names key the alert's state and must be unique (case does not count); rename one"))
    return problems


def check_alert_syncs(alerts: Sequence[AlertConfig], sync_names: Sequence[str]) -> list[Problem]:
    """A problem for each ``syncs`` entry that names no sync of the project (a typo watches nothing)."""
    known = list(sync_names)
    problems = []
    for alert in alerts:
        for i, s in enumerate(alert.syncs):
            if s not in known:
                close = closest(s, known, "syncs") if known else "The project has no syncs"
                problems.append(Problem(f"alert '{alert.name}': no sync is named '{s}'",
                                        path=f"{alert.path}.syncs[{i}]", fix=close))
    return problems
