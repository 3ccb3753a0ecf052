"""PagerDuty alerts through the real CLI: the config in dbt_project.yml, a local HTTP server
standing in for PagerDuty's Events API v2, and a run killed with SIGKILL for `interrupted`."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.integration.harness import Project, closed_port

ROUTING_KEY = "R0123456789abcdefABCDEF012345678"  # the shape of a routing key: 32 letters and digits
DEDUP_KEY = "dbt-eventbridge/oncall/customers_to_crm/{trigger}"


@pytest.fixture
def project(tmp_path, local_aws) -> Project:
    return Project(tmp_path, "duckdb", local_aws)


@pytest.fixture
def pagerduty() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(the Events API URL, the events it received): it answers 202 as PagerDuty does."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            body = json.dumps({"status": "success", "message": "Event processed"}).encode()
            self.send_response(202)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v2/enqueue", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def with_pagerduty_alert(project: Project, url: str, triggers: str) -> dict[str, str]:
    """Declare the alert in dbt_project.yml; the env that holds its routing key."""
    config = project.dir / "dbt_project.yml"
    text = config.read_text()
    assert "  eventbridge:\n    region: us-east-1\n" in text
    config.write_text(text.replace("  eventbridge:\n    region: us-east-1\n", (
        "  eventbridge:\n    region: us-east-1\n    alerts:\n      - name: oncall\n        type: pagerduty\n"
        f"        routing_key_env: PD_ROUTING_KEY\n        severity: critical\n        url: {url}\n"
        f"        triggers: {triggers}\n        syncs: [customers_to_crm]\n"), 1))
    return {"PD_ROUTING_KEY": ROUTING_KEY}


def test_pagerduty_incident_on_failure_resolved_on_recovery(project: Project, pagerduty: Any) -> None:
    url, received = pagerduty
    env = with_pagerduty_alert(project, url, "[failed]")
    project.build(day=1)
    v = project.sync("validate", extra_env=env)
    assert v.rc == 0, v.stderr

    down = {**env, "DBT_EVENTBRIDGE_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}"}
    outputs = ""
    for _ in range(2):  # failing twice: one incident
        r = project.sync("sync", "-s", "customers", extra_env=down)
        assert r.rc == 2
        outputs += r.stdout + r.stderr
    [trigger] = received
    assert (trigger["routing_key"], trigger["event_action"], trigger["dedup_key"]) == (
        ROUTING_KEY, "trigger", DEDUP_KEY.format(trigger="failed"))
    payload = trigger["payload"]
    assert (payload["severity"], payload["component"], payload["group"], payload["class"]) == (
        "critical", "customers_to_crm", "customers", "failed")
    assert "could not reach EventBridge" in payload["summary"] and len(payload["summary"]) <= 1024
    assert payload["timestamp"].endswith("+00:00")
    assert payload["custom_details"]["run_id"] and payload["custom_details"]["exit_code"] == 2

    for _ in range(2):  # fixed: one resolve, of the same incident
        r = project.sync("sync", "-s", "customers", extra_env=env)
        assert r.rc == 0, r.stderr
        outputs += r.stdout + r.stderr
    assert received[1:] == [{"routing_key": ROUTING_KEY, "event_action": "resolve",
                             "dedup_key": DEDUP_KEY.format(trigger="failed")}]
    assert ROUTING_KEY not in outputs + v.stdout + v.stderr


def test_a_killed_run_raises_the_interrupted_alert_on_the_next_run(project: Project, pagerduty: Any) -> None:
    url, received = pagerduty
    env = with_pagerduty_alert(project, url, "[interrupted]")
    project.build(day=1)
    killed = project.sync("sync", "-s", "customers",
                          extra_env={**env, "DBT_EVENTBRIDGE_CRASH_AT": "publish.journaled"})
    assert killed.rc < 0 or killed.rc == 137
    assert received == []  # a killed process sends nothing: only the next run can tell

    r = project.sync("sync", "-s", "customers", extra_env=env)
    assert r.rc == 0, r.stderr
    assert "completed a run that was interrupted" in r.stderr
    assert [(e["event_action"], e["dedup_key"]) for e in received] == [
        ("trigger", DEDUP_KEY.format(trigger="interrupted"))]
    details = received[0]["payload"]["custom_details"]
    assert details["recovered"] > 0 and received[0]["payload"]["class"] == "interrupted"

    r = project.sync("sync", "-s", "customers", extra_env=env)
    assert r.rc == 0, r.stderr
    assert [e["event_action"] for e in received[1:]] == ["resolve"]


def test_a_routing_key_pasted_into_the_yaml_is_an_alert_problem_not_a_syncs(project: Project) -> None:
    config = project.dir / "dbt_project.yml"
    config.write_text(config.read_text().replace("  eventbridge:\n    region: us-east-1\n", (
        "  eventbridge:\n    region: us-east-1\n    alerts:\n      - name: oncall\n        type: pagerduty\n"
        f"        routing_key: {ROUTING_KEY}\n"), 1))
    project.build(day=1)
    v = project.sync("validate")
    assert v.rc == 1
    assert "oncall" in v.stderr and ROUTING_KEY not in v.stderr + v.stdout
    assert "1 problem(s) found, in 1 outside the syncs (settings, alerts)." in v.stderr
