"""Delivery of one notification to its channel: Slack, a webhook, SNS, EventBridge or PagerDuty.

A sender raises when it cannot deliver; :func:`describe_error` turns that into a sentence
without secrets (webhook URLs and routing keys are never quoted, only the name of the variable
holding them).
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dbt_eventbridge import __version__
from dbt_eventbridge.alerts.messages import (
    SOURCE,
    Notification,
    dumps,
    one_line,
    pagerduty_event,
    slack_payload,
    sns_subject,
)
from dbt_eventbridge.config.alert_destinations import DEFAULT_SEVERITY, PAGERDUTY_EVENTS_URL, ROUTING_KEY_RE
from dbt_eventbridge.config.alerts import AlertConfig

USER_AGENT = f"dbt-eventbridge/{__version__}"
HTTP_TIMEOUT_SECONDS = 10
# PagerDuty asks senders to retry a 429 (rate limited) or a 5xx after a pause. A resend of an
# event that did arrive is harmless: its dedup_key adds it to the same incident.
RETRY_DELAYS_SECONDS: tuple[float, ...] = (1.0, 2.0, 4.0)

_sleep = time.sleep  # the pause between attempts (tests record it instead of waiting)

# No HTTP answer at all: refused, reset, timed out, a broken response.
_NO_ANSWER = (urllib.error.URLError, http.client.HTTPException, OSError)

# boto3 clients are untyped (see the mypy overrides in pyproject.toml), hence Any.
AwsClient = Any
MakeClient = Callable[[str, AlertConfig], AwsClient]  # (boto3 service name, alert) -> client


class SendFailed(Exception):
    """A notification could not be delivered; the message says why, without secrets."""


@dataclass
class Context:
    """What the senders of one notify() share: the environment, and the clients made so far."""

    make_client: MakeClient
    env: Mapping[str, str]
    clients: dict[tuple[str, str], AwsClient] = field(default_factory=dict)

    def client(self, service: str, alert: AlertConfig) -> AwsClient:
        key = (service, alert.name)
        if key not in self.clients:
            self.clients[key] = self.make_client(service, alert)
        return self.clients[key]


def _env_url(alert: AlertConfig, env: Mapping[str, str]) -> str:
    assert alert.url_env
    url = env.get(alert.url_env, "").strip()
    if not url:
        raise SendFailed(f"the environment variable {alert.url_env} is not set (or empty); set it to the "
                         f"{'Slack incoming-webhook' if alert.type == 'slack' else 'webhook'} URL")
    if urllib.parse.urlparse(url).scheme not in ("http", "https") or not urllib.parse.urlparse(url).netloc:
        raise SendFailed(f"the value of {alert.url_env} is not an http(s) URL")
    return url


def _exchange(url: str, payload: object) -> tuple[int, str]:
    """POST ``payload`` as JSON: the HTTP status and the start of the answer. Raises one of
    _NO_ANSWER (or ValueError, for a URL urllib cannot use) when there is no answer."""
    req = urllib.request.Request(url, data=dumps(payload).encode("utf-8"), method="POST", headers={
        "Content-Type": "application/json", "User-Agent": USER_AGENT})
    try:
        # urlopen raises HTTPError for any answer outside 2xx (after following redirects).
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_SECONDS) as resp:
            return int(resp.status), resp.read(500).decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read(500).decode("utf-8", "replace") if e.fp else ""


def _post(alert: AlertConfig, url: str, payload: object) -> None:
    # Errors are raised "from None": the caught exceptions may quote the URL, and tracebacks must not show it.
    try:
        code, answer = _exchange(url, payload)
    except (*_NO_ANSWER, ValueError) as e:
        # Exceptions may quote the URL, which is a secret: keep only the env var's name.
        reason = str(getattr(e, "reason", e)).replace(url, f"${alert.url_env}")
        raise SendFailed(f"could not reach the URL in {alert.url_env}: {reason}") from None
    if not 200 <= code < 300:
        answer = one_line(answer, 200)
        raise SendFailed(f"the URL in {alert.url_env} answered HTTP {code}" + (f": {answer}" if answer else ""))


def _send_slack(alert: AlertConfig, n: Notification, line: str, ctx: Context) -> None:
    _post(alert, _env_url(alert, ctx.env), slack_payload(n, line))


def _send_webhook(alert: AlertConfig, n: Notification, line: str, ctx: Context) -> None:
    _post(alert, _env_url(alert, ctx.env), n.body)


def _send_sns(alert: AlertConfig, n: Notification, line: str, ctx: Context) -> None:
    message = dumps(n.body)
    args: dict[str, str | None] = {"TopicArn": alert.topic_arn, "Subject": sns_subject(n, line), "Message": message}
    if alert.topic_arn and alert.topic_arn.endswith(".fifo"):
        # FIFO topics require a group; the dedup id lets a lost response be retried safely.
        args["MessageGroupId"] = SOURCE
        args["MessageDeduplicationId"] = uuid.uuid5(uuid.NAMESPACE_URL, message).hex
    ctx.client("sns", alert).publish(**args)


def _send_eventbridge(alert: AlertConfig, n: Notification, line: str, ctx: Context) -> None:
    entry = {"Source": SOURCE, "DetailType": f"dbt-eventbridge {n.kind.capitalize()}", "Detail": dumps(n.body),
             "EventBusName": alert.event_bus}
    resp = ctx.client("events", alert).put_events(Entries=[entry])
    if resp.get("FailedEntryCount"):
        failed = (resp.get("Entries") or [{}])[0]
        raise SendFailed(f"EventBridge rejected the event: {failed.get('ErrorCode', 'unknown error')}: "
                         f"{failed.get('ErrorMessage', '')}".rstrip(": "))


def _routing_key(alert: AlertConfig, env: Mapping[str, str]) -> str:
    """The alert's routing key from its environment variable; errors name the variable, never the key."""
    assert alert.routing_key_env
    key = env.get(alert.routing_key_env, "").strip()
    if not key:
        raise SendFailed(f"the environment variable {alert.routing_key_env} is not set (or empty); set it to the "
                         "routing key of the PagerDuty service's Events API v2 integration")
    if not ROUTING_KEY_RE.match(key):
        raise SendFailed(f"the value of {alert.routing_key_env} is not a PagerDuty routing key: one has 32 letters "
                         f"and digits, it has {len(key)} character(s); copy the service's Events API v2 "
                         "integration key")
    return key


def _pagerduty_answer(answer: str, key: str) -> str:
    """What PagerDuty said, for the error: its JSON's message and errors, else the text's start."""
    try:
        data = json.loads(answer)
    except ValueError:
        data = None
    if isinstance(data, dict):
        errors = data.get("errors")
        parts = [str(data.get("message") or "")] + ([str(e) for e in errors] if isinstance(errors, list) else [])
        answer = "; ".join(p for p in parts if p)
    # PagerDuty does not quote the key back; should a proxy do so, it is still not shown (replaced
    # before the text is cut, so that no part of it is left either).
    return one_line(answer.replace(key, "(the routing key)"), 300)


def _send_pagerduty(alert: AlertConfig, n: Notification, line: str, ctx: Context) -> None:
    key = _routing_key(alert, ctx.env)
    url = alert.url or PAGERDUTY_EVENTS_URL
    # PagerDuty's "source": where the problem is, preferably a host name.
    event = pagerduty_event(n, key, alert.severity or DEFAULT_SEVERITY, socket.gethostname() or SOURCE)
    host = urllib.parse.urlparse(url).hostname or "?"
    port = urllib.parse.urlparse(url).port
    where = f"{host}:{port}" if port else host  # never the whole URL: a proxy's may carry credentials
    attempts = len(RETRY_DELAYS_SECONDS) + 1
    last = ""
    for attempt in range(attempts):
        if attempt:
            _sleep(RETRY_DELAYS_SECONDS[attempt - 1])
        try:
            code, answer = _exchange(url, event)
        except _NO_ANSWER as e:
            last = f"could not reach PagerDuty at {where}: {str(getattr(e, 'reason', e)).replace(url, where)}"
            continue
        except ValueError:
            raise SendFailed(f"could not send to PagerDuty at {where}: the alert's url is not usable") from None
        if 200 <= code < 300:  # 202 Accepted
            return
        said = _pagerduty_answer(answer, key)
        said = f": {said}" if said else ""
        if code == 400:
            # The event was read and refused: resending the same event cannot succeed.
            raise SendFailed(f"PagerDuty refused the event as invalid (HTTP 400{said}). This is a configuration "
                             f"problem: check that {alert.routing_key_env} holds the routing key of an Events API "
                             "v2 integration (not a REST API key or an integration of another kind)")
        last = f"PagerDuty answered HTTP {code}{said}"
        if code != 429 and code < 500:
            raise SendFailed(last + (f"; check the alert's url ({where})" if alert.url else ""))
    raise SendFailed(f"{last} (tried {attempts} times)")


SENDERS: dict[str, Callable[[AlertConfig, Notification, str, Context], None]] = {
    "slack": _send_slack, "webhook": _send_webhook, "sns": _send_sns, "eventbridge": _send_eventbridge,
    "pagerduty": _send_pagerduty}


def send(alert: AlertConfig, n: Notification, line: str, ctx: Context) -> None:
    """Deliver ``n`` on the alert's channel; raises when it could not (see :func:`describe_error`)."""
    SENDERS[alert.type](alert, n, line, ctx)


def _arn_region(arn: str | None) -> str | None:
    parts = (arn or "").split(":")
    return parts[3] if len(parts) > 5 and parts[0] == "arn" and parts[3] else None


def client_factory(region: str | None = None, aws_profile: str | None = None) -> MakeClient:
    """boto3 clients for alerts: the alert's region, else its ARN's, else ``region`` (the sync
    settings'), else boto3's default. Credentials come from boto3's usual chain (or the profile)."""

    def make(service: str, alert: AlertConfig) -> AwsClient:
        import boto3
        import botocore.config

        session = boto3.Session(profile_name=aws_profile)
        cfg = botocore.config.Config(connect_timeout=5, read_timeout=HTTP_TIMEOUT_SECONDS,
                                     retries={"mode": "standard", "total_max_attempts": 3})
        where = alert.region or _arn_region(alert.topic_arn or alert.event_bus) or region
        return session.client(service, region_name=where, endpoint_url=alert.endpoint_url, config=cfg)

    return make


def describe_error(e: Exception) -> str:
    """Why a send failed, in one sentence without secrets."""
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
