"""Alerts: parsing, conditions, one notification per change, and the five senders for real.

Slack, webhooks and PagerDuty go to an HTTP server on 127.0.0.1; SNS and EventBridge go to
moto's server (the session's ``local_aws``), from where SQS shows what a subscriber would get.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dbt_eventbridge import __version__
from dbt_eventbridge.alerts import channels
from dbt_eventbridge.alerts.channels import client_factory
from dbt_eventbridge.alerts.evaluate import SyncStatus, evaluate
from dbt_eventbridge.alerts.messages import Notification, sns_subject
from dbt_eventbridge.alerts.notify import notify
from dbt_eventbridge.alerts.store import MemoryStore
from dbt_eventbridge.config.alerts import RUN_SYNC, TRIGGERS, AlertConfig, check_alert_syncs, parse_alerts
from dbt_eventbridge.errors import Problem
from devtools.local_aws import LocalEventBridge

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
NOW_ISO = "2026-03-01T12:00:00+00:00"
WEBHOOK_URL_SECRET = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"


# --- helpers -------------------------------------------------------------------------------------

def status(sync: str = "customers_to_crm", st: str = "success", **kw: Any) -> SyncStatus:
    defaults: dict[str, Any] = {
        "sync": sync, "model": "customers", "status": st, "exit_code": {"error": 2, "partial": 1, "blocked": 1}.get(st, 0),
        "message": None, "run_id": "run-1", "planned": {"added": 1, "changed": 2, "removed": 0},
        "sent": {"added": 1, "changed": 2, "removed": 0}, "rejected": 0,
        "last_success_at": NOW - dt.timedelta(hours=1), "finished_at": NOW, "rejections": []}
    defaults.update(kw)
    return SyncStatus(**defaults)


def one_alert(**raw: Any) -> AlertConfig:
    alerts, problems = parse_alerts([raw])
    assert problems == [], [str(p) for p in problems]
    assert len(alerts) == 1
    return alerts[0]


def problems_of(item: Any) -> list[Problem]:
    alerts, problems = parse_alerts([item])
    assert problems, "expected a problem"
    assert alerts == [], "an alert with problems must not be returned"
    return problems


def only_problem(item: Any) -> Problem:
    problems = problems_of(item)
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


SLACK = {"name": "data-team-slack", "type": "slack", "url_env": "SLACK_WEBHOOK_URL"}
HOOK = {"name": "ops-hook", "type": "webhook", "url_env": "OPS_WEBHOOK_URL"}
PD = {"name": "pd-oncall", "type": "pagerduty", "routing_key_env": "PD_ROUTING_KEY"}
PD_KEY = "R0123456789abcdefABCDEF012345678"  # the shape of an Events API v2 routing key: 32 letters and digits


class Logs(list[tuple[str, str]]):
    def __call__(self, level: str, message: str) -> None:
        self.append((level, message))

    def warnings(self) -> list[str]:
        return [m for level, m in self if level == "warn"]


# --- a recording HTTP server ---------------------------------------------------------------------

@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Recorder:
    url: str
    requests: list[Recorded] = field(default_factory=list)
    # path -> (HTTP status, body); anything else answers 200 "ok", as Slack does
    answers: dict[str, tuple[int, str]] = field(default_factory=dict)
    # path -> answers given once each, in order, before those of `answers`
    script: dict[str, list[tuple[int, str]]] = field(default_factory=dict)

    def take(self) -> list[Recorded]:
        out, self.requests[:] = list(self.requests), []
        return out


@pytest.fixture
def http() -> Iterator[Recorder]:
    rec = Recorder(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            rec.requests.append(Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()},
                                         json.loads(raw)))
            queued = rec.script.get(self.path)
            code, text = queued.pop(0) if queued else rec.answers.get(self.path, (200, "ok"))
            data = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def no_aws(service: str, alert: AlertConfig) -> Any:
    raise AssertionError("no AWS client is needed here")


# --- parsing -------------------------------------------------------------------------------------

def test_defaults_of_a_minimal_alert() -> None:
    a = one_alert(**SLACK)
    assert a == AlertConfig(name="data-team-slack", type="slack", url_env="SLACK_WEBHOOK_URL", triggers=TRIGGERS,
                            rejected_min_rows=1, rejected_min_share=0.0, stale_after_hours=24.0, syncs=(),
                            path="vars.eventbridge.alerts[0]")


def test_every_key_of_every_type_parses() -> None:
    alerts, problems = parse_alerts([
        {**SLACK, "triggers": ["stale", "failed"], "rejected_min_rows": 0, "rejected_min_share": 0.25,
         "stale_after_hours": 1.5, "syncs": ["customers_to_crm"]},
        {**HOOK, "triggers": "rejected", "syncs": "order_lines"},
        {"name": "ops.sns", "type": "sns", "topic_arn": "arn:aws:sns:eu-west-1:123456789012:ops-alerts",
         "region": "eu-west-1", "endpoint_url": "http://127.0.0.1:5000"},
        {"name": "ops_bus", "type": "eventbridge",
         "event_bus": "arn:aws:events:us-east-1:123456789012:event-bus/ops-bus"},
        {**PD, "severity": "critical", "url": " http://127.0.0.1:8080/v2/enqueue ", "triggers": ["interrupted"]},
    ])
    assert problems == []
    slack, hook, sns, bus, pd = alerts
    assert (pd.type, pd.routing_key_env, pd.severity, pd.url, pd.triggers) == (
        "pagerduty", "PD_ROUTING_KEY", "critical", "http://127.0.0.1:8080/v2/enqueue", ("interrupted",))
    assert slack.triggers == ("failed", "stale")  # canonical order
    assert (slack.rejected_min_rows, slack.rejected_min_share, slack.stale_after_hours) == (0, 0.25, 1.5)
    assert slack.syncs == ("customers_to_crm",)
    assert hook.triggers == ("rejected",) and hook.syncs == ("order_lines",)
    assert (sns.topic_arn, sns.region, sns.endpoint_url) == (
        "arn:aws:sns:eu-west-1:123456789012:ops-alerts", "eu-west-1", "http://127.0.0.1:5000")
    assert bus.event_bus.endswith("event-bus/ops-bus") and bus.path == "vars.eventbridge.alerts[3]"


def test_no_alerts_and_json_text() -> None:
    assert parse_alerts(None) == ([], [])
    assert parse_alerts([]) == ([], [])
    alerts, problems = parse_alerts(json.dumps([SLACK]))  # DBT_EVENTBRIDGE_ALERTS holds JSON
    assert problems == [] and alerts[0].name == "data-team-slack"


@pytest.mark.parametrize("raw, message", [
    ({"name": "x"}, "alerts must be a list of alerts, got dict"),
    ("not json [", "alerts is text that is not a JSON list"),
])
def test_alerts_must_be_a_list(raw: Any, message: str) -> None:
    alerts, problems = parse_alerts(raw)
    assert alerts == [] and len(problems) == 1
    assert problems[0].path == "vars.eventbridge.alerts"
    assert message in problems[0].message
    assert problems[0].fix


@pytest.mark.parametrize("item, path, message, fix", [
    ("slack", "[0]", "expected a mapping with name, type and where to send, got 'slack'", "name: data-team-slack"),
    ({**SLACK, "name": None}, "[0].name", "'name' is required", "unique name"),
    ({**SLACK, "name": "data team"}, "[0].name", "alert name 'data team' must be letters, digits", "Rename it"),
    ({**SLACK, "type": None}, "[0].type", "alert 'data-team-slack': 'type' is required",
     "slack, webhook, sns, eventbridge"),
    ({**SLACK, "type": "slak"}, "[0].type", "unknown alert type 'slak'", "Did you mean 'slack'?"),
    ({**SLACK, "type": "opsgenie"}, "[0].type", "unknown alert type 'opsgenie'",
     "Valid types are: slack, webhook, sns, eventbridge, pagerduty."),
    ({"name": "a", "type": "slack"}, "[0].url_env", "'url_env' is required for alerts of type slack",
     "url_env: SLACK_WEBHOOK_URL"),
    ({"name": "a", "type": "webhook"}, "[0].url_env", "'url_env' is required for alerts of type webhook", "url_env:"),
    ({**SLACK, "url_env": "$SLACK_WEBHOOK_URL"}, "[0].url_env", "url_env '$SLACK_WEBHOOK_URL' is not an environment "
     "variable name", "no '$'"),
    ({**SLACK, "url_env": 12}, "[0].url_env", "url_env 12 is not an environment variable name", "SLACK_WEBHOOK_URL"),
    ({**SLACK, "trigers": ["failed"]}, "[0].trigers", "unknown key 'trigers'", "Did you mean 'triggers'?"),
    ({**SLACK, "colour": "red"}, "[0].colour", "unknown key 'colour'", "Valid keys are: name, type, triggers"),
    ({**SLACK, "topic_arn": "arn:aws:sns:us-east-1:123456789012:t"}, "[0].topic_arn",
     "'topic_arn' does not apply to alerts of type slack", "Remove it, or set type to sns"),
    ({**SLACK, "region": "us-east-1"}, "[0].region", "'region' does not apply to alerts of type slack",
     "set type to sns or eventbridge"),
    ({"name": "a", "type": "sns"}, "[0].topic_arn", "'topic_arn' is required for alerts of type sns", "arn:aws:sns:"),
    ({"name": "a", "type": "sns", "topic_arn": "ops-alerts"}, "[0].topic_arn", "'ops-alerts' is not an SNS topic ARN",
     "arn:aws:sns:us-east-1:123456789012:ops-alerts"),
    ({"name": "a", "type": "eventbridge"}, "[0].event_bus", "'event_bus' is required for alerts of type eventbridge",
     "event_bus: ops-bus"),
    ({"name": "a", "type": "eventbridge", "event_bus": "ops bus"}, "[0].event_bus",
     "'ops bus' is neither an event bus name nor an event bus ARN", "arn:aws:events:"),
    ({"name": "a", "type": "eventbridge", "event_bus": "b", "region": "Frankfurt"}, "[0].region",
     "'Frankfurt' is not an AWS region", "us-east-1"),
    ({"name": "a", "type": "eventbridge", "event_bus": "b", "region": 5}, "[0].region",
     "'region' must be a non-empty text, got 5", "us-east-1"),
    ({"name": "a", "type": "sns", "topic_arn": "arn:aws:sns:us-east-1:123456789012:t", "endpoint_url": "localhost"},
     "[0].endpoint_url", "'localhost' is not an http(s) URL", "https://sns.us-east-1.amazonaws.com"),
    ({**SLACK, "triggers": ["failed", "stael"]}, "[0].triggers[1]", "unknown trigger 'stael'",
     "Did you mean 'stale'?"),
    ({**SLACK, "triggers": []}, "[0].triggers", "'triggers' is empty, so the alert would never fire",
     "List some of failed, rejected, mass_removal, stale, interrupted, or remove the key to get all of them"),
    ({**SLACK, "triggers": {"failed": True}}, "[0].triggers", "expected a list of triggers", "[failed, stale]"),
    ({**SLACK, "rejected_min_rows": -1}, "[0].rejected_min_rows",
     "'rejected_min_rows' must be a whole number of at least 0, got -1", "a row count"),
    ({**SLACK, "rejected_min_rows": 2.5}, "[0].rejected_min_rows", "must be a whole number of at least 0, got 2.5",
     "a row count"),
    ({**SLACK, "rejected_min_rows": True}, "[0].rejected_min_rows", "got True", "a row count"),
    ({**SLACK, "rejected_min_share": 5}, "[0].rejected_min_share",
     "'rejected_min_share' must be a number from 0 to 1, got 5", "0.05 for 5%"),
    ({**SLACK, "rejected_min_share": "5%"}, "[0].rejected_min_share", "got '5%'", "0.05 for 5%"),
    ({**SLACK, "stale_after_hours": 0}, "[0].stale_after_hours",
     "'stale_after_hours' must be a number above 0, got 0", "such as 24"),
    ({**SLACK, "stale_after_hours": "1d"}, "[0].stale_after_hours", "got '1d'", "such as 24"),
    ({**SLACK, "rejected_min_rows": 0}, "[0].rejected_min_rows",
     "rejected_min_rows and rejected_min_share are both 0, so the 'rejected' trigger can never fire",
     "remove 'rejected' from triggers"),
    ({**SLACK, "syncs": [1]}, "[0].syncs", "expected a list of sync names, got [1]", "watch every sync"),
    ({**SLACK, "triggers": ["interupted"]}, "[0].triggers[0]", "unknown trigger 'interupted'",
     "Did you mean 'interrupted'?"),
    # PagerDuty
    ({"name": "pd", "type": "pagerduty"}, "[0].routing_key_env",
     "alert 'pd': 'routing_key_env' is required for alerts of type pagerduty",
     "Events API v2 integration (32 characters), e.g. `routing_key_env: PAGERDUTY_ROUTING_KEY`"),
    ({**PD, "severity": "high"}, "[0].severity", "alert 'pd-oncall': unknown severity 'high'",
     "Valid severities are: critical, error, warning, info. Remove it to use error."),
    ({**PD, "severity": "warn"}, "[0].severity", "unknown severity 'warn'", "Did you mean 'warning'?"),
    ({**PD, "severity": None}, "[0].severity", "unknown severity None", "critical, error, warning, info"),
    ({**PD, "routing_key_env": "$PD_ROUTING_KEY"}, "[0].routing_key_env",
     "routing_key_env is not an environment variable name (the value is not shown", "PAGERDUTY_ROUTING_KEY (no '$')"),
    ({**PD, "url": "events.pagerduty.com/v2/enqueue"}, "[0].url", "alert 'pd-oncall': 'url' is not an http(s) URL",
     "Remove it to send to https://events.pagerduty.com/v2/enqueue"),
    ({**PD, "url": 8080}, "[0].url", "'url' is not an http(s) URL", "a proxy"),
    ({**PD, "endpoint_url": "http://127.0.0.1:1"}, "[0].endpoint_url",
     "'endpoint_url' does not apply to alerts of type pagerduty", "set type to sns or eventbridge"),
    ({**PD, "endpoint": "http://127.0.0.1:1"}, "[0].endpoint", "unknown key 'endpoint'",
     "takes its endpoint as `url`"),
    ({**SLACK, "severity": "critical"}, "[0].severity", "'severity' does not apply to alerts of type slack",
     "Remove it, or set type to pagerduty"),
    ({"name": "a", "type": "sns", "topic_arn": "arn:aws:sns:us-east-1:123456789012:t", "url": "http://127.0.0.1:1"},
     "[0].url", "'url' does not apply to alerts of type sns", "pointed elsewhere with endpoint_url"),
])
def test_each_problem_is_located_and_explained(item: Any, path: str, message: str, fix: str) -> None:
    p = only_problem(item)
    assert p.path == "vars.eventbridge.alerts" + path
    assert message in p.message
    assert p.fix and fix in p.fix
    assert str(p).count("(at vars.eventbridge.alerts") == 1


def test_both_thresholds_zero_is_fine_without_the_rejected_trigger() -> None:
    assert one_alert(**SLACK, triggers=["failed"], rejected_min_rows=0).rejected_min_rows == 0


def test_a_pasted_url_is_refused_and_never_echoed() -> None:
    p = only_problem({**SLACK, "url_env": WEBHOOK_URL_SECRET})
    assert p.path == "vars.eventbridge.alerts[0].url_env"
    assert "url_env holds a URL, but it must be the NAME of an environment variable" in p.message
    assert "export SLACK_WEBHOOK_URL='https://...'" in p.fix and "url_env: SLACK_WEBHOOK_URL" in p.fix
    assert "replaced" in p.fix  # it was committed: rotate it
    assert "SECRET" not in str(p)

    # The same URL under a key of its own (url:) gets the same advice.
    p = only_problem({"name": "hook", "type": "webhook", "url_env": "HOOK_URL", "url": WEBHOOK_URL_SECRET})
    assert p.path == "vars.eventbridge.alerts[0].url"
    assert "alerts take no URL in the YAML" in p.message and "url_env: ALERT_WEBHOOK_URL" in p.fix
    assert "SECRET" not in str(p)

    # A URL in place of the whole alert is not quoted either.
    p = only_problem(WEBHOOK_URL_SECRET)
    assert p.message == "expected a mapping with name, type and where to send, got a URL (not shown)"


def test_every_problem_of_an_alert_is_reported_at_once() -> None:
    problems = problems_of({"name": "x", "type": "sns", "url_env": "X", "triggers": ["boom"],
                            "stale_after_hours": -1})
    assert [p.path for p in problems] == [
        "vars.eventbridge.alerts[0].url_env", "vars.eventbridge.alerts[0].topic_arn",
        "vars.eventbridge.alerts[0].triggers[0]", "vars.eventbridge.alerts[0].stale_after_hours"]
    assert all(p.message.startswith("alert 'x': ") for p in problems)


def test_duplicate_names_disable_every_alert_sharing_them() -> None:
    alerts, problems = parse_alerts([SLACK, HOOK, {**HOOK, "name": "Data-Team-Slack"}])
    assert [a.name for a in alerts] == ["ops-hook"]
    assert [(p.path, p.message) for p in problems] == [
        ("vars.eventbridge.alerts[0].name",
         "alert 'data-team-slack': the name is also used by vars.eventbridge.alerts[2]"),
        ("vars.eventbridge.alerts[2].name",
         "alert 'Data-Team-Slack': the name is also used by vars.eventbridge.alerts[0]"),
    ]
    assert "must be unique" in problems[0].fix


def test_a_bad_alert_does_not_hide_the_good_ones() -> None:
    alerts, problems = parse_alerts([{**SLACK, "type": "teams"}, HOOK])
    assert [a.name for a in alerts] == ["ops-hook"] and len(problems) == 1


def test_syncs_that_do_not_exist_are_reported() -> None:
    alert = one_alert(**SLACK, syncs=["customers_to_crm", "order_line"])
    [p] = check_alert_syncs([alert], ["customers_to_crm", "order_lines"])
    assert p.path == "vars.eventbridge.alerts[0].syncs[1]"
    assert p.message == "alert 'data-team-slack': no sync is named 'order_line'"
    assert p.fix == "Did you mean 'order_lines'?"
    assert check_alert_syncs([alert], ["customers_to_crm", "order_line"]) == []


# --- conditions ----------------------------------------------------------------------------------

def test_rejected_by_count() -> None:
    a = one_alert(**SLACK, rejected_min_rows=5)
    assert evaluate(a, status(st="partial", rejected=4), NOW)["rejected"] is False
    assert evaluate(a, status(st="partial", rejected=5), NOW)["rejected"] is True


def test_rejected_by_share() -> None:
    a = one_alert(**SLACK, rejected_min_rows=0, rejected_min_share=0.1)
    sent = {"added": 9, "changed": 0, "removed": 0}
    assert evaluate(a, status(st="partial", sent=sent, rejected=1), NOW)["rejected"] is True        # 1 of 10
    assert evaluate(a, status(st="partial", sent={**sent, "added": 10}, rejected=1), NOW)["rejected"] is False
    assert evaluate(a, status(sent={"added": 0, "changed": 0, "removed": 0}), NOW)["rejected"] is False


def test_rejected_count_or_share() -> None:
    a = one_alert(**SLACK, rejected_min_rows=100, rejected_min_share=0.5)
    few = {"added": 1, "changed": 0, "removed": 0}
    many = {"added": 10_000, "changed": 0, "removed": 0}
    assert evaluate(a, status(st="partial", sent=few, rejected=2), NOW)["rejected"] is True     # share 2/3
    assert evaluate(a, status(st="partial", sent=many, rejected=100), NOW)["rejected"] is True  # count
    assert evaluate(a, status(st="partial", sent=many, rejected=99), NOW)["rejected"] is False


def test_stale_with_a_fixed_now() -> None:
    a = one_alert(**SLACK, stale_after_hours=24)
    ago = lambda hours: NOW - dt.timedelta(hours=hours)  # noqa: E731
    assert evaluate(a, status(st="error", last_success_at=ago(25)), NOW)["stale"] is True
    assert evaluate(a, status(st="error", last_success_at=ago(23)), NOW)["stale"] is False
    assert evaluate(a, status(st="skipped", last_success_at=ago(24.01)), NOW)["stale"] is True
    # Never successful: measured from the first recorded run, else from this run.
    assert evaluate(a, status(st="error", last_success_at=None, first_run_at=ago(30)), NOW)["stale"] is True
    assert evaluate(a, status(st="error", last_success_at=None, first_run_at=ago(2)), NOW)["stale"] is False
    assert evaluate(a, status(st="error", last_success_at=None, finished_at=ago(0.1)), NOW)["stale"] is False
    # Naive times are UTC.
    naive = (NOW - dt.timedelta(hours=25)).replace(tzinfo=None)
    assert evaluate(a, status(st="error", last_success_at=naive), NOW)["stale"] is True


@pytest.mark.parametrize("st, expected", [
    ("success", {"failed": False, "rejected": False, "mass_removal": False, "stale": False, "interrupted": False}),
    ("partial", {"failed": False, "rejected": True, "mass_removal": False, "stale": False, "interrupted": False}),
    # An error may come before the run looked for an interrupted one.
    ("error", {"failed": True, "rejected": None, "mass_removal": None, "stale": False, "interrupted": None}),
    ("blocked", {"failed": False, "rejected": None, "mass_removal": True, "stale": False, "interrupted": False}),
    # A model that failed in dbt says nothing about the sync, except that it did not succeed.
    ("skipped", {"failed": None, "rejected": None, "mass_removal": None, "stale": False, "interrupted": None}),
    # Dry runs never alert.
    ("dry_run", {"failed": None, "rejected": None, "mass_removal": None, "stale": None, "interrupted": None}),
])
def test_what_each_status_says(st: str, expected: dict[str, bool | None]) -> None:
    a = one_alert(**SLACK)
    assert evaluate(a, status(st=st, rejected=3 if st == "partial" else 0), NOW) == expected


def test_a_failure_of_the_whole_run_only_evaluates_failed() -> None:
    a = one_alert(**SLACK)
    run = status(RUN_SYNC, "error", model="", last_success_at=None, first_run_at=NOW - dt.timedelta(days=9))
    assert evaluate(a, run, NOW) == {"failed": True, "rejected": None, "mass_removal": None, "stale": None,
                                     "interrupted": None}


# --- notifications over HTTP ---------------------------------------------------------------------

def failing(**kw: Any) -> SyncStatus:
    return status(st="error", message="EventBridge could not be reached: connection refused", exit_code=2,
                  sent={"added": 0, "changed": 0, "removed": 0}, **kw)


def test_slack_alert_and_recovery_payloads(http: Recorder) -> None:
    alert = one_alert(**SLACK, triggers=["failed"])
    env = {"SLACK_WEBHOOK_URL": http.url + "/services/T000/B000/XXX"}
    store, logs = MemoryStore(), Logs()

    sent = notify([alert], [failing()], store, now=NOW, env=env, log=logs, make_client=no_aws)

    assert [(n.kind, n.trigger, n.sync, n.delivered) for n in sent] == [
        ("alert", "failed", "customers_to_crm", True)]
    [req] = http.take()
    assert (req.method, req.path) == ("POST", "/services/T000/B000/XXX")
    assert req.headers["content-type"] == "application/json"
    assert req.headers["user-agent"] == f"dbt-eventbridge/{__version__}"
    assert req.body == {
        "text": ":rotating_light: sync customers_to_crm failed",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": (
                "*sync customers_to_crm failed*\n"
                "Sync 'customers_to_crm' (model customers) failed: EventBridge could not be reached: "
                "connection refused.")}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": (
                f"alert `data-team-slack` · trigger `failed` · status `error` · exit code 2 · run `run-1` · "
                f"{NOW_ISO}")}]},
        ],
    }
    assert store.state == {("data-team-slack", "customers_to_crm", "failed"): "firing"}
    assert logs.warnings() == []

    later = NOW + dt.timedelta(hours=1)
    notify([alert], [status(run_id="run-2", finished_at=later, last_success_at=later)], store, now=later, env=env,
           log=logs, make_client=no_aws)

    [req] = http.take()
    assert req.body == {
        "text": ":white_check_mark: sync customers_to_crm no longer fails",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": (
                "*sync customers_to_crm no longer fails*\n"
                "Sync 'customers_to_crm' (model customers) ran again with status success after failing.")}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": (
                "alert `data-team-slack` · trigger `failed` · status `success` · exit code 0 · run `run-2` · "
                "2026-03-01T13:00:00+00:00")}]},
        ],
    }
    assert store.state == {("data-team-slack", "customers_to_crm", "failed"): "ok"}


def test_slack_escapes_text_and_lists_rejected_samples(http: Recorder) -> None:
    alert = one_alert(**SLACK, triggers=["rejected"])
    rejections = [{"key": {"id": i}, "op": "added", "code": "InvalidDetail", "reason": "<not> an object & more"}
                  for i in range(7)]
    notify([alert], [status(st="partial", rejected=7, rejections=rejections)], MemoryStore(), now=NOW,
           env={"SLACK_WEBHOOK_URL": http.url}, make_client=no_aws, log=Logs())
    [req] = http.take()
    text = req.body["blocks"][0]["text"]["text"]
    assert text.splitlines()[0] == "*sync customers_to_crm had 7 change(s) rejected*"
    assert text.splitlines()[1] == (
        "Sync 'customers_to_crm' (model customers) had 7 of 10 change(s) rejected (70.0%), at or above this alert's "
        "threshold of 1 row(s); rejected changes are retried on the next run.")
    assert text.splitlines()[2:] == [
        f"• `added` `{{\"id\": {i}}}` InvalidDetail: &lt;not&gt; an object &amp; more" for i in range(5)]


def test_webhook_payload(http: Recorder) -> None:
    alert = one_alert(**HOOK)
    rejections = [{"key": {"id": i, "day": dt.date(2026, 2, 1)}, "op": "changed", "code": "Rejected",
                   "reason": "detail is not a JSON object"} for i in range(6)]
    s = status(st="partial", exit_code=1, rejected=6, rejections=rejections,
               last_success_at=NOW - dt.timedelta(minutes=5))
    logs = Logs()

    sent = notify([alert], [s], MemoryStore(), now=NOW, env={"OPS_WEBHOOK_URL": http.url + "/hook"}, log=logs,
                  make_client=no_aws)

    assert [(n.trigger, n.kind, n.delivered) for n in sent] == [("rejected", "alert", True)]
    [req] = http.take()
    assert req.path == "/hook"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["user-agent"] == "dbt-eventbridge/" + __version__
    assert req.body == {
        "source": "dbt-eventbridge",
        "kind": "alert",
        "alert": "ops-hook",
        "trigger": "rejected",
        "sync": "customers_to_crm",
        "model": "customers",
        "status": "partial",
        "exit_code": 1,
        "run_id": "run-1",
        "message": "Sync 'customers_to_crm' (model customers) had 6 of 9 change(s) rejected (66.7%), at or above "
                   "this alert's threshold of 1 row(s); rejected changes are retried on the next run.",
        "planned": {"added": 1, "changed": 2, "removed": 0},
        "sent": {"added": 1, "changed": 2, "removed": 0},
        "rejected": 6,
        "rejections": [{"key": {"id": i, "day": "2026-02-01"}, "op": "changed", "code": "Rejected",
                        "reason": "detail is not a JSON object"} for i in range(5)],
        "last_success_at": "2026-03-01T11:55:00+00:00",
        "at": NOW_ISO,
        "recovered": 0,
        "interrupted_run_id": None,
    }
    assert sent[0].body == req.body
    assert logs == [("info", "alert 'ops-hook' (webhook): sent the alert for rejected on customers_to_crm")]


def test_webhook_failure_is_retried_then_one_alert_and_one_recovery(http: Recorder) -> None:
    alert = one_alert(**HOOK, triggers=["failed"])
    env = {"OPS_WEBHOOK_URL": http.url + "/hook"}
    store, logs = MemoryStore(), Logs()
    http.answers["/hook"] = (500, "internal error\nat line 1")

    def run(s: SyncStatus) -> list[Notification]:
        return notify([alert], [s], store, now=NOW, env=env, log=logs, make_client=no_aws)

    # 1. The webhook is down: a warning, nothing saved, and no exception.
    [n] = run(failing())
    assert (n.delivered, n.error) == (False, "the URL in OPS_WEBHOOK_URL answered HTTP 500: internal error at line 1")
    assert logs.warnings() == [
        "alert 'ops-hook' (webhook) could not send the alert for failed on customers_to_crm: the URL in "
        "OPS_WEBHOOK_URL answered HTTP 500: internal error at line 1. It will be tried again on the next run."]
    assert store.state == {}
    assert len(http.take()) == 1

    # 2. It is back: the alert is retried and delivered.
    del http.answers["/hook"]
    [n] = run(failing(run_id="run-2"))
    assert n.delivered and n.kind == "alert"
    [req] = http.take()
    assert (req.body["kind"], req.body["run_id"]) == ("alert", "run-2")
    assert store.state == {("ops-hook", "customers_to_crm", "failed"): "firing"}

    # 3. Still failing: nothing more.
    for i in range(3):
        assert run(failing(run_id=f"run-{3 + i}")) == []
    assert http.take() == []

    # 4. A skipped run says nothing about `failed`.
    assert run(status(st="skipped", message="model failed in dbt")) == []

    # 5. Fixed: one recovery, then silence.
    [n] = run(status(run_id="run-9"))
    assert (n.kind, n.delivered) == ("recovery", True)
    [req] = http.take()
    assert req.body["kind"] == "recovery" and req.body["status"] == "success"
    assert req.body["message"] == ("Sync 'customers_to_crm' (model customers) ran again with status success after "
                                   "failing.")
    assert run(status(run_id="run-10")) == []
    assert http.take() == []
    assert store.state == {("ops-hook", "customers_to_crm", "failed"): "ok"}


def test_a_recovery_that_could_not_be_sent_is_sent_later(http: Recorder) -> None:
    alert = one_alert(**HOOK, triggers=["mass_removal"])
    env = {"OPS_WEBHOOK_URL": http.url + "/hook"}
    store = MemoryStore({("ops-hook", "customers_to_crm", "mass_removal"): "firing"})
    http.answers["/hook"] = (503, "")
    [n] = notify([alert], [status()], store, now=NOW, env=env, log=Logs(), make_client=no_aws)
    assert (n.kind, n.delivered, n.error) == ("recovery", False, "the URL in OPS_WEBHOOK_URL answered HTTP 503")
    assert store.state[("ops-hook", "customers_to_crm", "mass_removal")] == "firing"
    del http.answers["/hook"]
    [n] = notify([alert], [status()], store, now=NOW, env=env, log=Logs(), make_client=no_aws)
    assert (n.kind, n.delivered) == ("recovery", True)
    assert store.state[("ops-hook", "customers_to_crm", "mass_removal")] == "ok"
    assert [r.body["kind"] for r in http.take()] == ["recovery", "recovery"]


def test_a_missing_env_var_is_a_warning_naming_alert_and_variable(http: Recorder) -> None:
    store, logs = MemoryStore(), Logs()
    [n] = notify([one_alert(**SLACK, triggers=["failed"])], [failing()], store, now=NOW, env={}, log=logs,
                 make_client=no_aws)
    assert not n.delivered
    assert logs.warnings() == [
        "alert 'data-team-slack' (slack) could not send the alert for failed on customers_to_crm: the environment "
        "variable SLACK_WEBHOOK_URL is not set (or empty); set it to the Slack incoming-webhook URL. It will be "
        "tried again on the next run."]
    assert store.state == {} and http.take() == []


def test_the_url_is_never_logged() -> None:
    # Nothing listens on this port: connection refused.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    secret = f"http://127.0.0.1:{port}/services/T000/B000/XXXXSECRET"
    logs = Logs()
    alert = one_alert(**HOOK, triggers=["failed"])
    [n] = notify([alert], [failing()], MemoryStore(), now=NOW, env={"OPS_WEBHOOK_URL": secret}, log=logs,
                 make_client=no_aws)
    assert n.error and n.error.startswith("could not reach the URL in OPS_WEBHOOK_URL: ")
    [n] = notify([alert], [failing()], MemoryStore(), now=NOW, env={"OPS_WEBHOOK_URL": "hooks.example/XXXXSECRET"},
                 log=logs, make_client=no_aws)
    assert n.error == "the value of OPS_WEBHOOK_URL is not an http(s) URL"
    assert len(logs.warnings()) == 2
    assert not any("SECRET" in m for m in logs.warnings())


def test_dry_runs_never_notify(http: Recorder) -> None:
    store = MemoryStore({("ops-hook", "customers_to_crm", t): "firing" for t in TRIGGERS})
    before = dict(store.state)
    got = notify([one_alert(**HOOK)], [status(st="dry_run", last_success_at=None, first_run_at=NOW - dt.timedelta(
        days=30))], store, now=NOW, env={"OPS_WEBHOOK_URL": http.url}, log=Logs(), make_client=no_aws)
    assert got == [] and http.take() == [] and store.state == before


def test_skipped_syncs_alert_only_when_stale(http: Recorder) -> None:
    alert = one_alert(**HOOK, stale_after_hours=6)
    skipped = status(st="skipped", message="the model failed in dbt", last_success_at=NOW - dt.timedelta(hours=7))
    [n] = notify([alert], [skipped], MemoryStore(), now=NOW, env={"OPS_WEBHOOK_URL": http.url}, log=Logs(),
                 make_client=no_aws)
    assert (n.trigger, n.kind, n.delivered) == ("stale", "alert", True)
    [req] = http.take()
    assert req.body["message"] == (
        "Sync 'customers_to_crm' (model customers) has not had a successful run for 7 hours, since "
        "2026-03-01T05:00:00+00:00 (this alert's limit is 6 hours).")
    assert req.body["last_success_at"] == "2026-03-01T05:00:00+00:00"


def test_syncs_filter_and_several_syncs(http: Recorder) -> None:
    alert = one_alert(**HOOK, triggers=["failed", "mass_removal"], syncs=["order_lines"])
    statuses = [failing(), status("order_lines", "blocked", model="order_lines",
                                  message="it would remove 80% of the delivered rows")]
    sent = notify([alert], statuses, MemoryStore(), now=NOW, env={"OPS_WEBHOOK_URL": http.url}, log=Logs(),
                  make_client=no_aws)
    assert [(n.sync, n.trigger, n.kind) for n in sent] == [("order_lines", "mass_removal", "alert")]
    [req] = http.take()
    assert req.body["message"] == (
        "Sync 'order_lines' (model order_lines) stopped before publishing because it would remove too many delivered "
        "rows: it would remove 80% of the delivered rows; fix the model, or rerun with --allow-mass-removal if the "
        "removals are real.")


def test_a_failed_run_alerts_once_and_recovers_on_the_next_run_that_syncs(http: Recorder) -> None:
    alert = one_alert(**HOOK, syncs=["order_lines"])  # a run failure passes every filter
    env = {"OPS_WEBHOOK_URL": http.url}
    store = MemoryStore()
    run_failed = status(RUN_SYNC, "error", model="", message="dbt could not load the project: a YAML error",
                        last_success_at=None, planned={}, sent={})
    for _ in range(2):
        notify([alert], [run_failed], store, now=NOW, env=env, log=Logs(), make_client=no_aws)
    [req] = http.take()
    assert (req.body["sync"], req.body["trigger"], req.body["kind"]) == (RUN_SYNC, "failed", "alert")
    assert req.body["message"] == ("The dbt-eventbridge run failed before it could sync: dbt could not load the "
                                   "project: a YAML error.")
    assert store.state == {("ops-hook", RUN_SYNC, "failed"): "firing"}

    # A dry run proves nothing; a real run that reports syncs does.
    notify([alert], [status("order_lines", "dry_run")], store, now=NOW, env=env, log=Logs(), make_client=no_aws)
    assert http.take() == []
    sent = notify([alert], [status("order_lines", run_id="run-2")], store, now=NOW, env=env, log=Logs(),
                  make_client=no_aws)
    assert [(n.sync, n.kind) for n in sent] == [(RUN_SYNC, "recovery")]
    [req] = http.take()
    assert (req.body["status"], req.body["run_id"]) == ("success", "run-2")
    assert req.body["message"] == "The dbt-eventbridge run run-2 loaded the project and ran its syncs again."
    assert store.state == {("ops-hook", RUN_SYNC, "failed"): "ok"}


def test_a_store_that_cannot_be_read_sends_nothing(http: Recorder) -> None:
    class Broken(MemoryStore):
        def load(self) -> dict[tuple[str, str, str], str]:
            raise RuntimeError("warehouse is down")

    logs = Logs()
    assert notify([one_alert(**HOOK)], [failing()], Broken(), now=NOW, env={"OPS_WEBHOOK_URL": http.url},
                  log=logs, make_client=no_aws) == []
    assert logs.warnings() == ["alerts were not checked: their state could not be read (RuntimeError: warehouse "
                               "is down)"]
    assert http.take() == []


def test_a_store_that_cannot_be_written_is_a_warning(http: Recorder) -> None:
    class ReadOnly(MemoryStore):
        def save(self, changes: dict[tuple[str, str, str], str]) -> None:
            raise RuntimeError("permission denied")

    logs = Logs()
    [n] = notify([one_alert(**HOOK, triggers=["failed"])], [failing()], ReadOnly(), now=NOW,
                 env={"OPS_WEBHOOK_URL": http.url}, log=logs, make_client=no_aws)
    assert n.delivered
    assert logs.warnings() == ["the alert state could not be saved (RuntimeError: permission denied); the 1 "
                               "notification(s) just sent will be sent again on the next run"]


def test_sns_subject_is_short_ascii() -> None:
    n = Notification(alert="a", type="sns", sync="s", trigger="failed", kind="alert", body={})
    subject = sns_subject(n, "sync café\nfailed " + "x" * 200)
    assert subject.startswith("dbt-eventbridge alert: sync cafe failed xxx")
    assert len(subject) == 100 and subject.endswith("...") and subject.isascii()


# --- SNS and EventBridge on moto -----------------------------------------------------------------

def aws_clients(local_aws: LocalEventBridge) -> Any:
    return lambda service, alert: local_aws.client(service)


def test_sns_alert_reaches_a_subscribed_queue(local_aws: LocalEventBridge) -> None:
    sns, sqs = local_aws.client("sns"), local_aws.client("sqs")
    suffix = uuid.uuid4().hex[:8]
    topic_arn = sns.create_topic(Name=f"ops-alerts-{suffix}")["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"ops-alerts-{suffix}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)  # enveloped: the Subject shows
    alert = one_alert(name="ops-sns", type="sns", topic_arn=topic_arn, triggers=["failed", "stale"])
    logs = Logs()

    sent = notify([alert], [failing(last_success_at=NOW - dt.timedelta(days=3))], MemoryStore(), now=NOW,
                  make_client=aws_clients(local_aws), log=logs)

    assert logs.warnings() == []
    assert [(n.trigger, n.delivered) for n in sent] == [("failed", True), ("stale", True)]
    got = {json.loads(e["Message"])["trigger"]: e for e in local_aws.drain(queue_url, expected=2)}
    assert set(got) == {"failed", "stale"}
    assert got["failed"]["Type"] == "Notification" and got["failed"]["TopicArn"] == topic_arn
    assert got["failed"]["Subject"] == "dbt-eventbridge alert: sync customers_to_crm failed"
    assert got["stale"]["Subject"] == "dbt-eventbridge alert: sync customers_to_crm has not succeeded for 3 days"
    message = json.loads(got["stale"]["Message"])
    assert message == sent[1].body
    assert message["message"] == ("Sync 'customers_to_crm' (model customers) has not had a successful run for 3 "
                                  "days, since 2026-02-26T12:00:00+00:00 (this alert's limit is 24 hours).")
    assert (message["source"], message["kind"], message["alert"]) == ("dbt-eventbridge", "alert", "ops-sns")


def test_eventbridge_alert_and_recovery_reach_a_rule(local_aws: LocalEventBridge) -> None:
    events, sqs = local_aws.client("events"), local_aws.client("sqs")
    bus = f"ops-bus-{uuid.uuid4().hex[:8]}"
    events.create_event_bus(Name=bus)
    queue_url = sqs.create_queue(QueueName=bus)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=f"{bus}-alerts", EventBusName=bus, State="ENABLED",
                    EventPattern=json.dumps({"source": ["dbt-eventbridge"]}))
    events.put_targets(Rule=f"{bus}-alerts", EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}])
    alert = one_alert(name="ops-bus", type="eventbridge", event_bus=bus, triggers=["mass_removal"])
    store, logs = MemoryStore(), Logs()
    blocked = status(st="blocked", message="it would remove 90% of the delivered rows")

    [n] = notify([alert], [blocked], store, now=NOW, make_client=aws_clients(local_aws), log=logs)
    [envelope] = local_aws.drain(queue_url, expected=1)
    assert (envelope["source"], envelope["detail-type"]) == ("dbt-eventbridge", "dbt-eventbridge Alert")
    assert envelope["detail"] == n.body
    assert envelope["detail"]["trigger"] == "mass_removal" and envelope["detail"]["status"] == "blocked"

    [n] = notify([alert], [status(run_id="run-2")], store, now=NOW, make_client=aws_clients(local_aws), log=logs)
    [envelope] = local_aws.drain(queue_url, expected=1)
    assert envelope["detail-type"] == "dbt-eventbridge Recovery"
    assert envelope["detail"]["kind"] == "recovery" and envelope["detail"]["run_id"] == "run-2"
    assert logs.warnings() == []
    assert store.state == {("ops-bus", "customers_to_crm", "mass_removal"): "ok"}


def test_aws_refusals_are_warnings(local_aws: LocalEventBridge) -> None:
    alerts = [one_alert(name="nobus", type="eventbridge", event_bus=f"missing-{uuid.uuid4().hex[:8]}",
                        triggers=["failed"]),
              one_alert(name="notopic", type="sns", topic_arn="arn:aws:sns:us-east-1:123456789012:missing-topic",
                        triggers=["failed"])]
    store, logs = MemoryStore(), Logs()
    sent = notify(alerts, [failing()], store, now=NOW, make_client=aws_clients(local_aws), log=logs)
    assert [n.delivered for n in sent] == [False, False]
    assert all(n.error and n.error.startswith("AWS refused it: ") for n in sent), [n.error for n in sent]
    assert "ResourceNotFoundException" in sent[0].error
    assert [m.split(" could not send")[0] for m in logs.warnings()] == [
        "alert 'nobus' (eventbridge)", "alert 'notopic' (sns)"]
    assert store.state == {}


def test_a_client_that_cannot_be_made_is_a_warning() -> None:
    def broken(service: str, alert: AlertConfig) -> Any:
        import botocore.exceptions
        raise botocore.exceptions.NoRegionError()

    logs = Logs()
    [n] = notify([one_alert(name="bus", type="eventbridge", event_bus="ops", triggers=["failed"])], [failing()],
                 MemoryStore(), now=NOW, make_client=broken, log=logs)
    assert n.error == "no AWS region is set; set `region` on the alert, vars.eventbridge.region or AWS_REGION"


def test_default_clients_use_boto3s_chain_and_the_alerts_endpoint(
        local_aws: LocalEventBridge, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key, value in local_aws.env().items():
        if key != "AWS_ENDPOINT_URL":  # the alert's endpoint_url must be what routes the call
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    sns, sqs = local_aws.client("sns"), local_aws.client("sqs")
    name = f"default-client-{uuid.uuid4().hex[:8]}"
    topic_arn = sns.create_topic(Name=name)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sub = sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)["SubscriptionArn"]
    sns.set_subscription_attributes(SubscriptionArn=sub, AttributeName="RawMessageDelivery", AttributeValue="true")
    alert = one_alert(name="sns-default", type="sns", topic_arn=topic_arn, endpoint_url=local_aws.endpoint_url,
                      triggers=["failed"])

    # No make_client: the default factory; the region comes from the topic's ARN.
    [n] = notify([alert], [failing()], MemoryStore(), now=NOW, log=Logs())

    assert n.delivered, n.error
    [body] = local_aws.drain(queue_url, expected=1)  # raw delivery: the body is the message itself
    assert body == n.body
    made = client_factory(region="eu-central-1")("events", replace(alert, type="eventbridge", topic_arn=None,
                                                                   event_bus="ops"))
    assert made.meta.region_name == "eu-central-1"  # no ARN, no alert region: the sync settings'


# --- PagerDuty -----------------------------------------------------------------------------------

PD_PATH = "/v2/enqueue"
PD_ACCEPTED = (202, json.dumps({"status": "success", "message": "Event processed", "dedup_key": "any"}))
PD_INVALID = (400, json.dumps({"status": "invalid event", "message": "Event object is invalid",
                               "errors": ["Length of 'routing_key' is incorrect (should be 32 characters)"]}))


@pytest.fixture
def pagerduty(http: Recorder) -> Recorder:
    """The HTTP server, answering on PagerDuty's path as PagerDuty does: 202 and a JSON status."""
    http.answers[PD_PATH] = PD_ACCEPTED
    return http


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses between attempts, recorded instead of waited."""
    pauses: list[float] = []
    monkeypatch.setattr(channels, "_sleep", pauses.append)
    return pauses


def closed_port() -> int:
    """A port nothing listens on: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pd_alert(rec: Recorder, **kw: Any) -> AlertConfig:
    return one_alert(**{**PD, "url": rec.url + PD_PATH, "triggers": ["failed"], **kw})


def pd_notify(alert: AlertConfig, s: SyncStatus, store: MemoryStore | None = None, logs: Logs | None = None,
              env: dict[str, str] | None = None, now: dt.datetime = NOW) -> list[Notification]:
    return notify([alert], [s], MemoryStore() if store is None else store, now=now,
                  env={"PD_ROUTING_KEY": PD_KEY} if env is None else env, log=Logs() if logs is None else logs,
                  make_client=no_aws)


def test_pagerduty_defaults() -> None:
    a = one_alert(**PD)
    assert (a.routing_key_env, a.severity, a.url, a.triggers) == ("PD_ROUTING_KEY", "error", None, TRIGGERS)
    assert "interrupted" in TRIGGERS  # on by default, as every trigger is


def test_a_routing_key_in_the_yaml_is_refused_and_never_echoed() -> None:
    p = only_problem({"name": "pd", "type": "pagerduty", "routing_key": PD_KEY})
    assert p.path == "vars.eventbridge.alerts[0].routing_key"
    assert p.message.startswith("alert 'pd': 'routing_key' cannot be written in the YAML: a routing key is a secret")
    assert "export PAGERDUTY_ROUTING_KEY='...'" in p.fix and "`routing_key_env: PAGERDUTY_ROUTING_KEY`" in p.fix
    assert "rotate it" in p.fix  # it was committed: treat it as leaked
    assert PD_KEY not in str(p)

    # The key pasted where the variable's name goes: refused, not quoted (nor later printed as a variable name).
    p = only_problem({**PD, "routing_key_env": PD_KEY})
    assert p.path == "vars.eventbridge.alerts[0].routing_key_env"
    assert "holds what looks like a routing key (not shown)" in p.message and "rotate it" in p.fix
    assert PD_KEY not in str(p)
    p = only_problem({**PD, "routing_key_env": PD_KEY + "+"})
    assert "is not an environment variable name" in p.message and PD_KEY not in str(p)

    # A proxy's URL is not quoted either (it may carry credentials).
    p = only_problem({**PD, "url": "ftp://user:XXXXSECRET@proxy/v2/enqueue"})
    assert "SECRET" not in str(p)


def test_pagerduty_trigger_and_resolve_share_one_dedup_key(pagerduty: Recorder) -> None:
    alert = pd_alert(pagerduty, severity="critical")
    store, logs = MemoryStore(), Logs()

    [n] = pd_notify(alert, failing(), store, logs)

    assert n.delivered, n.error
    [req] = pagerduty.take()
    assert (req.method, req.path) == ("POST", PD_PATH)
    assert req.headers["content-type"] == "application/json"
    assert req.headers["user-agent"] == f"dbt-eventbridge/{__version__}"
    assert req.body == {
        "routing_key": PD_KEY,
        "event_action": "trigger",
        "dedup_key": "dbt-eventbridge/pd-oncall/customers_to_crm/failed",
        "payload": {
            "summary": "Sync 'customers_to_crm' (model customers) failed: EventBridge could not be reached: "
                       "connection refused.",
            "source": socket.gethostname(),
            "severity": "critical",
            "timestamp": NOW_ISO,
            "component": "customers_to_crm",
            "group": "customers",
            "class": "failed",
            "custom_details": n.body,  # what the webhook gets: counts, samples, run id
        },
    }
    details = req.body["payload"]["custom_details"]
    assert (details["run_id"], details["exit_code"], details["sent"]) == (
        "run-1", 2, {"added": 0, "changed": 0, "removed": 0})
    assert store.state == {("pd-oncall", "customers_to_crm", "failed"): "firing"}

    # Still failing: PagerDuty already has the incident, nothing is sent.
    assert pd_notify(alert, failing(run_id="run-2"), store, logs) == []
    # Fixed: a resolve of the same incident.
    [n] = pd_notify(alert, status(run_id="run-3"), store, logs)
    assert (n.kind, n.delivered) == ("recovery", True)
    [req] = pagerduty.take()
    assert req.body == {"routing_key": PD_KEY, "event_action": "resolve",
                        "dedup_key": "dbt-eventbridge/pd-oncall/customers_to_crm/failed"}
    assert store.state == {("pd-oncall", "customers_to_crm", "failed"): "ok"}

    # Two runs that both trigger (the state was lost in between, or the first send's answer
    # was): the same dedup_key, so PagerDuty keeps one incident. Another trigger has its own.
    pd_notify(alert, failing(run_id="run-4"))
    pd_notify(alert, failing(run_id="run-5", last_success_at=NOW - dt.timedelta(days=2)))
    pd_notify(pd_alert(pagerduty, triggers=["stale"]), failing(last_success_at=NOW - dt.timedelta(days=2)))
    bodies = [r.body for r in pagerduty.take()]
    assert [(b["event_action"], b["payload"]["custom_details"]["run_id"]) for b in bodies] == [
        ("trigger", "run-4"), ("trigger", "run-5"), ("trigger", "run-1")]
    assert [b["dedup_key"] for b in bodies] == ["dbt-eventbridge/pd-oncall/customers_to_crm/failed"] * 2 + [
        "dbt-eventbridge/pd-oncall/customers_to_crm/stale"]
    assert [m for _, m in logs] == [
        "alert 'pd-oncall' (pagerduty): sent the alert for failed on customers_to_crm",
        "alert 'pd-oncall' (pagerduty): sent the recovery for failed on customers_to_crm"]


def test_pagerduty_summary_is_capped_and_the_timestamp_has_a_zone(pagerduty: Recorder) -> None:
    alert = pd_alert(pagerduty, triggers=["failed", "rejected"])
    long = status(st="error", message="the warehouse said:\n" + "column x is ambiguous " * 100)
    # A naive time is UTC; an aware one is converted to UTC.
    pd_notify(alert, long, now=NOW.replace(tzinfo=None))
    pd_notify(alert, long, now=NOW.astimezone(dt.timezone(dt.timedelta(hours=2))))
    one, two = (r.body["payload"] for r in pagerduty.take())
    assert len(one["custom_details"]["message"]) > 1024  # the full sentence rides in the details
    assert one["summary"] == one["custom_details"]["message"][:1021] + "..." and len(one["summary"]) == 1024
    assert one["summary"].startswith("Sync 'customers_to_crm' (model customers) failed: the warehouse said: column x")
    assert one["timestamp"] == two["timestamp"] == NOW_ISO
    assert dt.datetime.fromisoformat(one["timestamp"]).utcoffset() == dt.timedelta(0)

    # The structured facts of a rejected alert ride along; the summary stays one sentence.
    rejections = [{"key": {"id": i}, "op": "added", "code": "InvalidDetail", "reason": "not an object"}
                  for i in range(7)]
    pd_notify(alert, status(st="partial", rejected=7, rejections=rejections))
    [req] = pagerduty.take()
    payload = req.body["payload"]
    assert payload["class"] == "rejected" and payload["severity"] == "error"
    assert payload["custom_details"]["rejected"] == 7 and len(payload["custom_details"]["rejections"]) == 5

    # A failure of the whole run concerns no one model: no group.
    pd_notify(alert, status(RUN_SYNC, "error", model="-", message="dbt could not load the project"))
    [req] = pagerduty.take()
    assert req.body["dedup_key"] == "dbt-eventbridge/pd-oncall/(run)/failed"
    assert (req.body["payload"]["component"], "group" in req.body["payload"]) == (RUN_SYNC, False)


def test_a_long_sync_name_keeps_the_dedup_key_within_pagerdutys_limit(pagerduty: Recorder) -> None:
    alert = pd_alert(pagerduty)
    for sync in ("s" * 300, "s" * 299 + "t"):
        pd_notify(alert, failing(sync=sync))
    keys = [r.body["dedup_key"] for r in pagerduty.take()]
    assert [len(k) for k in keys] == [255, 255] and keys[0] != keys[1]
    assert keys[0].startswith("dbt-eventbridge/pd-oncall/sss")


def test_pagerduty_429_is_retried_with_backoff(pagerduty: Recorder, sleeps: list[float]) -> None:
    pagerduty.script[PD_PATH] = [(429, json.dumps({"status": "throttle event", "message": "Requests for this "
                                                   "service are arriving too quickly"}))]
    logs = Logs()
    [n] = pd_notify(pd_alert(pagerduty), failing(), logs=logs)
    assert (n.delivered, n.error) == (True, None)
    first, second = pagerduty.take()
    assert first.body == second.body  # the same event, the same dedup_key
    assert sleeps == [1.0]
    assert logs.warnings() == []


def test_pagerduty_5xx_is_retried_then_a_warning_and_sent_next_run(pagerduty: Recorder, sleeps: list[float]) -> None:
    pagerduty.answers[PD_PATH] = (503, "upstream unavailable")
    store, logs = MemoryStore(), Logs()
    [n] = pd_notify(pd_alert(pagerduty), failing(), store, logs)
    assert (n.delivered, n.error) == (False, "PagerDuty answered HTTP 503: upstream unavailable (tried 4 times)")
    assert len(pagerduty.take()) == 4 and sleeps == [1.0, 2.0, 4.0]
    assert logs.warnings() == [
        "alert 'pd-oncall' (pagerduty) could not send the alert for failed on customers_to_crm: PagerDuty answered "
        "HTTP 503: upstream unavailable (tried 4 times). It will be tried again on the next run."]
    assert store.state == {}

    pagerduty.answers[PD_PATH] = PD_ACCEPTED
    [n] = pd_notify(pd_alert(pagerduty), failing(run_id="run-2"), store, logs)
    assert n.delivered and len(pagerduty.take()) == 1
    assert store.state == {("pd-oncall", "customers_to_crm", "failed"): "firing"}


def test_pagerduty_400_is_a_configuration_error_and_not_retried(pagerduty: Recorder, sleeps: list[float]) -> None:
    pagerduty.answers[PD_PATH] = PD_INVALID
    store, logs = MemoryStore(), Logs()
    [n] = pd_notify(pd_alert(pagerduty), failing(), store, logs)
    assert not n.delivered
    assert n.error == (
        "PagerDuty refused the event as invalid (HTTP 400: Event object is invalid; Length of 'routing_key' is "
        "incorrect (should be 32 characters)). This is a configuration problem: check that PD_ROUTING_KEY holds the "
        "routing key of an Events API v2 integration (not a REST API key or an integration of another kind)")
    assert len(pagerduty.take()) == 1 and sleeps == []
    [warning] = logs.warnings()
    assert warning.startswith("alert 'pd-oncall' (pagerduty) could not send the alert for failed on customers_to_crm: "
                              "PagerDuty refused the event as invalid")
    assert store.state == {}

    # A proxy that quotes the key back: the key is still not shown.
    pagerduty.answers[PD_PATH] = (400, f"bad routing key {PD_KEY}")
    [n] = pd_notify(pd_alert(pagerduty), failing(), logs=logs)
    assert n.error and "HTTP 400: bad routing key (the routing key))" in n.error
    assert not any(PD_KEY in m for _, m in logs)

    # Another 4xx (a wrong url) is not retried either.
    pagerduty.answers[PD_PATH] = (404, "not found")
    [n] = pd_notify(pd_alert(pagerduty), failing())
    assert n.error == f"PagerDuty answered HTTP 404: not found; check the alert's url (127.0.0.1:{pagerduty.url.rsplit(':', 1)[1]})"
    assert len(pagerduty.take()) == 2 and sleeps == []


def test_the_routing_key_variable_is_named_and_the_key_never_shown(pagerduty: Recorder) -> None:
    logs = Logs()
    [n] = pd_notify(pd_alert(pagerduty), failing(), logs=logs, env={})
    assert n.error == ("the environment variable PD_ROUTING_KEY is not set (or empty); set it to the routing key of "
                       "the PagerDuty service's Events API v2 integration")
    bad = "XXXXSECRET-not-a-routing-key"
    [n] = pd_notify(pd_alert(pagerduty), failing(), logs=logs, env={"PD_ROUTING_KEY": bad})
    assert n.error == ("the value of PD_ROUTING_KEY is not a PagerDuty routing key: one has 32 letters and digits, "
                       "it has 28 character(s); copy the service's Events API v2 integration key")
    assert pagerduty.take() == []
    assert len(logs.warnings()) == 2 and not any("SECRET" in m for _, m in logs)


def test_pagerduty_unreachable_is_retried_and_names_only_the_host(sleeps: list[float]) -> None:
    port = closed_port()
    [n] = pd_notify(one_alert(**PD, url=f"http://user:XXXXSECRET@127.0.0.1:{port}/v2/enqueue"), failing())
    assert n.error and n.error.startswith(f"could not reach PagerDuty at 127.0.0.1:{port}: ")
    assert n.error.endswith("(tried 4 times)") and "SECRET" not in n.error
    assert sleeps == [1.0, 2.0, 4.0]


def test_pagerduty_is_the_default_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    posted: list[tuple[str, Any]] = []

    def exchange(url: str, payload: Any) -> tuple[int, str]:
        posted.append((url, payload))
        return PD_ACCEPTED

    monkeypatch.setattr(channels, "_exchange", exchange)
    [n] = pd_notify(one_alert(**PD), failing())
    assert n.delivered
    [(url, event)] = posted
    assert url == "https://events.pagerduty.com/v2/enqueue"
    assert (event["event_action"], event["payload"]["severity"]) == ("trigger", "error")


# --- the interrupted trigger ---------------------------------------------------------------------

@pytest.mark.parametrize("st, found, expected", [
    ("success", {"recovered": 42}, True),
    ("success", {"interrupted": True}, True),  # killed before it journaled any ack: nothing recovered
    ("partial", {"recovered": 1}, True),
    ("blocked", {"recovered": 1}, True),
    ("error", {"recovered": 3}, True),         # it completed the killed run, then failed itself
    ("success", {}, False),
    ("partial", {}, False),
    ("blocked", {}, False),
    ("error", {}, None),                        # it may have failed before it looked
    ("skipped", {}, None),
    ("dry_run", {}, None),
])
def test_when_interrupted_holds(st: str, found: dict[str, Any], expected: bool | None) -> None:
    a = one_alert(**HOOK, triggers=["interrupted"])
    assert evaluate(a, status(st=st, **found), NOW) == {"interrupted": expected}


def test_a_failure_of_the_whole_run_is_not_an_interruption() -> None:
    a = one_alert(**HOOK, triggers=["interrupted"])
    assert evaluate(a, status(RUN_SYNC, "error", model="", recovered=3), NOW) == {"interrupted": None}


def test_interrupted_alerts_once_and_recovers(http: Recorder) -> None:
    alert = one_alert(**SLACK, triggers=["interrupted"])
    env = {"SLACK_WEBHOOK_URL": http.url}
    store = MemoryStore()

    def run(s: SyncStatus) -> list[Notification]:
        return notify([alert], [s], store, now=NOW, env=env, log=Logs(), make_client=no_aws)

    assert run(status()) == []  # no interrupted run: nothing to say
    [n] = run(status(run_id="run-2", recovered=42, interrupted_run_id="run-1"))
    assert (n.kind, n.trigger, n.delivered) == ("alert", "interrupted", True)
    assert (n.body["recovered"], n.body["interrupted_run_id"]) == (42, "run-1")
    [req] = http.take()
    assert req.body["text"] == ":rotating_light: sync customers_to_crm found its previous run interrupted"
    assert n.body["message"] == (
        "Sync 'customers_to_crm' (model customers): run run-1 was stopped before it finished (killed, cancelled or "
        "out of memory); run run-2 completed it: 42 change(s) it had delivered are now recorded, so they are not "
        "sent again, and its other changes were planned again. No change is lost; if it happens again, find out "
        "what stops the runs (a cancelled job, the out-of-memory killer, a timeout).")

    # Killed again and again: still one alert.
    assert run(status(run_id="run-4", interrupted=True)) == []
    # A run that found its previous run finished: one recovery.
    [n] = run(status(run_id="run-5"))
    assert n.kind == "recovery"
    [req] = http.take()
    assert req.body["text"] == ":white_check_mark: sync customers_to_crm runs to completion again"
    assert n.body["message"] == ("Sync 'customers_to_crm' (model customers) ran with status success and found no "
                                 "interrupted run before it.")
    assert store.state == {("data-team-slack", "customers_to_crm", "interrupted"): "ok"}


def test_an_interruption_without_its_run_or_any_recovered_change(pagerduty: Recorder) -> None:
    alert = pd_alert(pagerduty, triggers=["interrupted"], severity="warning")
    [n] = pd_notify(alert, status(run_id="run-2", interrupted=True))
    assert n.delivered
    [req] = pagerduty.take()
    payload = req.body["payload"]
    assert req.body["dedup_key"] == "dbt-eventbridge/pd-oncall/customers_to_crm/interrupted"
    assert (payload["class"], payload["severity"]) == ("interrupted", "warning")
    assert payload["summary"] == (
        "Sync 'customers_to_crm' (model customers): an earlier run was stopped before it finished (killed, cancelled "
        "or out of memory); run run-2 completed it: it had recorded no delivered change, and its other changes were "
        "planned again. No change is lost; if it happens again, find out what stops the runs (a cancelled job, the "
        "out-of-memory killer, a timeout).")
    assert (payload["custom_details"]["recovered"], payload["custom_details"]["interrupted_run_id"]) == (0, None)
