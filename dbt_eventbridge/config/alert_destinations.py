"""Where an alert is sent: the keys that depend on its type, checked into a :class:`Destination`.

Slack and webhook alerts name the environment variable that holds their URL (``url_env``);
SNS alerts give a topic ARN, EventBridge alerts a bus name or ARN, both with an optional
``region`` and ``endpoint_url``. PagerDuty alerts name the environment variable that holds
their routing key (``routing_key_env``: the key is a secret, like a webhook URL), with an
optional ``severity`` and ``url`` (the Events API v2 endpoint, for a proxy or a test server).
"""

from __future__ import annotations

import re
import urllib.parse
from typing import TypedDict

from dbt_eventbridge.config.alert_checker import Checker, RawAlert, closest, looks_like_url, secret_url_fix, shown
from dbt_eventbridge.config.definitions import BUS_ARN_RE, BUS_NAME_RE

TYPE_KEYS: dict[str, tuple[str, ...]] = {
    "slack": ("url_env",),
    "webhook": ("url_env",),
    "sns": ("topic_arn", "region", "endpoint_url"),
    "eventbridge": ("event_bus", "region", "endpoint_url"),
    "pagerduty": ("routing_key_env", "severity", "url"),
}
REQUIRED_KEY = {"slack": "url_env", "webhook": "url_env", "sns": "topic_arn", "eventbridge": "event_bus",
                "pagerduty": "routing_key_env"}
DESTINATION_KEYS = ("url_env", "topic_arn", "event_bus", "region", "endpoint_url", "routing_key_env", "severity",
                    "url")

# PagerDuty's own levels (Events API v2, payload.severity).
SEVERITIES = ("critical", "error", "warning", "info")
DEFAULT_SEVERITY = "error"
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
# An Events API v2 routing (integration) key: 32 letters and digits.
ROUTING_KEY_RE = re.compile(r"^[A-Za-z0-9]{32}$")

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TOPIC_ARN_RE = re.compile(r"^arn:aws[\w-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")
REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


class Destination(TypedDict):
    """The AlertConfig fields that depend on the alert's type; None where not given or not valid."""

    url_env: str | None
    topic_arn: str | None
    event_bus: str | None
    region: str | None
    endpoint_url: str | None
    routing_key_env: str | None
    severity: str | None
    url: str | None


def parse_destination(c: Checker, raw: RawAlert, alert_type: str | None) -> Destination:
    """The destination keys of an alert of a known type (all None when the type is unknown)."""
    where = Destination(url_env=None, topic_arn=None, event_bus=None, region=None, endpoint_url=None,
                        routing_key_env=None, severity=None, url=None)
    if alert_type is None:
        return where
    required = REQUIRED_KEY[alert_type]
    # A routing key written in the YAML has a problem of its own, whose fix is routing_key_env.
    pasted_key = alert_type == "pagerduty" and raw.get("routing_key") is not None
    if raw.get(required) is None and not pasted_key:
        c.add(required, f"'{required}' is required for alerts of type {alert_type}", _required_fix(alert_type))
    if alert_type in ("slack", "webhook") and raw.get("url_env") is not None:
        where["url_env"] = _check_url_env(c, raw["url_env"], alert_type)
    if alert_type == "sns" and raw.get("topic_arn") is not None:
        where["topic_arn"] = _check_topic_arn(c, raw["topic_arn"])
    if alert_type == "eventbridge" and raw.get("event_bus") is not None:
        where["event_bus"] = _check_event_bus(c, raw["event_bus"])
    if alert_type in ("sns", "eventbridge"):
        where["region"], where["endpoint_url"] = _parse_aws_endpoint(c, raw)
    if alert_type == "pagerduty":
        if raw.get("routing_key_env") is not None:
            where["routing_key_env"] = _check_routing_key_env(c, raw["routing_key_env"])
        where["severity"] = _check_severity(c, raw.get("severity", DEFAULT_SEVERITY))
        where["url"] = _check_pagerduty_url(c, raw.get("url"))
    return where


def _required_fix(alert_type: str) -> str:
    return {
        "slack": "Name the environment variable that holds the Slack incoming-webhook URL, e.g. "
                 "`url_env: SLACK_WEBHOOK_URL`",
        "webhook": "Name the environment variable that holds the webhook URL, e.g. `url_env: ALERT_WEBHOOK_URL`",
        "sns": "Give the topic, e.g. `topic_arn: arn:aws:sns:us-east-1:123456789012:ops-alerts`",
        "eventbridge": "Give the bus to send to, e.g. `event_bus: ops-bus` (a name or an ARN)",
        "pagerduty": "Name the environment variable that holds the routing key of the service's Events API v2 "
                     "integration (32 characters), e.g. `routing_key_env: PAGERDUTY_ROUTING_KEY`",
    }[alert_type]


def routing_key_fix() -> str:
    return ("Put the key in an environment variable (export PAGERDUTY_ROUTING_KEY='...') and write "
            "`routing_key_env: PAGERDUTY_ROUTING_KEY`. dbt_project.yml is committed, so treat a key written there "
            "as leaked and rotate it in PagerDuty")


def _check_url_env(c: Checker, value: object, alert_type: str) -> str | None:
    if looks_like_url(value):
        c.add("url_env", "url_env holds a URL, but it must be the NAME of an environment variable that holds the "
              "URL: webhook URLs are secrets and do not belong in dbt_project.yml", secret_url_fix(alert_type))
        return None
    if not isinstance(value, str) or not ENV_NAME_RE.match(value):
        c.add("url_env", f"url_env {shown(value)} is not an environment variable name",
              "Write the variable's name alone, letters, digits and '_', e.g. SLACK_WEBHOOK_URL (no '$')")
        return None
    return value


def _check_topic_arn(c: Checker, value: object) -> str | None:
    if not isinstance(value, str) or not TOPIC_ARN_RE.match(value):
        c.add("topic_arn", f"{shown(value)} is not an SNS topic ARN",
              "Write it as arn:aws:sns:us-east-1:123456789012:ops-alerts")
        return None
    return value


def _check_event_bus(c: Checker, value: object) -> str | None:
    if not isinstance(value, str) or not (BUS_NAME_RE.match(value) or BUS_ARN_RE.match(value)):
        c.add("event_bus", f"{shown(value)} is neither an event bus name nor an event bus ARN",
              "Use a name like 'ops-bus' or an ARN like 'arn:aws:events:us-east-1:123456789012:event-bus/ops-bus'")
        return None
    return value


def _parse_aws_endpoint(c: Checker, raw: RawAlert) -> tuple[str | None, str | None]:
    """``region`` and ``endpoint_url`` of an SNS or EventBridge alert."""
    region = c.optional_string(raw, "region", "Write a region such as us-east-1, or remove it")
    if region and not REGION_RE.match(region):
        c.add("region", f"{region!r} is not an AWS region", "Write a region such as us-east-1, or remove it")
    endpoint_url = c.optional_string(raw, "endpoint_url", "Write a URL such as https://sns.us-east-1.amazonaws.com")
    parsed = urllib.parse.urlparse(endpoint_url or "")
    if endpoint_url and (parsed.scheme not in ("http", "https") or not parsed.netloc):
        c.add("endpoint_url", f"{endpoint_url!r} is not an http(s) URL",
              "Write a URL such as https://sns.us-east-1.amazonaws.com, or remove it")
    return region, endpoint_url


def _check_routing_key_env(c: Checker, value: object) -> str | None:
    # Never quote the value: it may be the routing key itself, which is a secret.
    if isinstance(value, str) and ROUTING_KEY_RE.match(value.strip()) and any(ch.isdigit() for ch in value):
        # 32 letters and digits is a routing key, not a variable's name (names have '_' between words);
        # taken as a name, it would be printed as the variable that is not set.
        c.add("routing_key_env", "routing_key_env holds what looks like a routing key (not shown), but it must be "
              "the NAME of an environment variable that holds the key: routing keys are secrets and do not belong "
              "in dbt_project.yml", routing_key_fix())
        return None
    if not isinstance(value, str) or not ENV_NAME_RE.match(value):
        c.add("routing_key_env", "routing_key_env is not an environment variable name (the value is not shown, in "
              "case it is the key)", "Write the variable's name alone, letters, digits and '_', e.g. "
              "PAGERDUTY_ROUTING_KEY (no '$')")
        return None
    return value


def _check_severity(c: Checker, value: object) -> str | None:
    if isinstance(value, str) and value in SEVERITIES:
        return value
    c.add("severity", f"unknown severity {shown(value)}",
          closest(str(value), SEVERITIES, "severities") + f" Remove it to use {DEFAULT_SEVERITY}.")
    return None


def _check_pagerduty_url(c: Checker, value: object) -> str | None:
    """The Events API endpoint; the default is PagerDuty's. Checked as the webhook's URL is
    (http or https, with a host), and never quoted: a proxy's URL may carry credentials."""
    if value is None:
        return None
    parsed = urllib.parse.urlparse(value.strip() if isinstance(value, str) else "")
    if not isinstance(value, str) or parsed.scheme not in ("http", "https") or not parsed.netloc:
        c.add("url", "'url' is not an http(s) URL (not shown)",
              f"Remove it to send to {PAGERDUTY_EVENTS_URL}, or write the full URL of a proxy that forwards there")
        return None
    return value.strip()
