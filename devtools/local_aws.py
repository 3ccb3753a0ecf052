"""A local EventBridge (moto's threaded server) for tests and the demo.

Events reach tests through the same path as on AWS: put_events -> rule on the
bus -> SQS target -> drain(). What moto 5.2 actually does there (checked by hand):

* The SQS message body is the event envelope as JSON with keys ``id``, ``time``,
  ``version``, ``detail-type``, ``source``, ``region``, ``resources``, ``detail``.
  ``account`` is missing (AWS sends it). ``time`` is ISO-8601 UTC without
  milliseconds ("2024-01-02T03:04:05Z"); a ``Time`` given to put_events is kept
  (truncated to seconds), otherwise it is the time of the call.
* moto builds the envelope by text substitution into a JSON template, so a
  ``DetailType`` containing ``"`` makes put_events fail with HTTP 500, and strings
  such as ``"<source>"`` inside ``Detail`` are replaced by the event's values.
  Both work on AWS; don't build tests that depend on either.
* ``EventBusName`` routes the same given as a name or as an ARN: moto keeps only
  the part after the last "/", so the ARN's account and region are not checked.
* An unknown bus fails the whole call (ResourceNotFoundException), not one entry.
  Entries missing Source/DetailType/Detail fail one by one (FailedEntryCount).
* Event patterns support ``prefix`` (``{"prefix": ""}`` matches any string).
* An ``AWS_PROFILE`` naming a profile that does not exist makes moto's server
  answer HTTP 500 (it builds boto3 sessions internally); unset it.
* moto's state is global to the process: every server (and ``mock_aws``) in one
  process sees the same buses and queues. Use unique names, or ``reset()``.

No credentials are put in ``os.environ``: clients made by ``client()`` carry
dummy ones, and ``env()`` returns variables for subprocesses (e.g. dbt).

Command line (demo): ``python -m devtools.local_aws [--port N] [--bus NAME]``
prints ``export`` lines and serves until interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import urllib.request
from types import TracebackType
from typing import Any

import boto3
import botocore.session
from botocore.config import Config

DEFAULT_REGION = "us-east-1"
DUMMY_ACCESS_KEY = "testing"
DUMMY_SECRET_KEY = "testing"
# Matches every event: every event has a string `source`.
MATCH_ALL_PATTERN: dict[str, Any] = {"source": [{"prefix": ""}]}


def _safe_name(text: str, limit: int) -> str:
    # SQS queue and rule names allow only [A-Za-z0-9_-] (rules also "."), with length limits.
    return re.sub(r"[^A-Za-z0-9_-]", "-", text)[:limit]


class LocalEventBridge:
    """moto server on 127.0.0.1 with helpers to route a bus to a queue and read it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, region: str = DEFAULT_REGION, quiet: bool = True) -> None:
        self.host = host
        self.port = port
        self.region = region
        self.quiet = quiet
        self._server: Any = None
        self._endpoint_url: str | None = None

    @property
    def endpoint_url(self) -> str:
        if self._endpoint_url is None:
            raise RuntimeError("LocalEventBridge is not running; call start() first.")
        return self._endpoint_url

    def start(self) -> LocalEventBridge:
        # Imported here so that importing this module stays cheap.
        from moto.server import ThreadedMotoServer

        if self._server is not None:
            return self
        if self.quiet:
            # Werkzeug logs every request to stderr otherwise (process-wide logger).
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        self._server = server
        self.port = port
        self._endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.stop()
        # ThreadedMotoServer.stop() leaves the listening socket open; close it.
        inner = getattr(self._server, "_server", None)
        if inner is not None:
            inner.server_close()
        self._server = None
        self._endpoint_url = None

    def __enter__(self) -> LocalEventBridge:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget all buses, rules and queues (in every moto backend of this process)."""
        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass

    # -- clients and environment

    def client(self, service: str) -> Any:
        """boto3 client for ``service`` on this server, with dummy credentials."""
        # Keep the developer's ~/.aws files and AWS_PROFILE out of our clients
        # (set_config_variable(..., None) would fall through to the env var).
        # Note moto's server itself still fails (HTTP 500) if AWS_PROFILE names
        # a profile that does not exist. A single attempt keeps moto errors
        # visible and fast instead of retried.
        core = botocore.session.Session(session_vars={
            "profile": (None, None, None, None),
            "config_file": (None, None, os.devnull, None),
            "credentials_file": (None, None, os.devnull, None),
        })
        session = boto3.session.Session(
            aws_access_key_id=DUMMY_ACCESS_KEY,
            aws_secret_access_key=DUMMY_SECRET_KEY,
            region_name=self.region,
            botocore_session=core,
        )
        return session.client(
            service,
            endpoint_url=self.endpoint_url,
            config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
        )

    def env(self) -> dict[str, str]:
        """Variables that point a child process's AWS SDK at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_KEY,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }

    # -- routing and reading

    def create_bus_with_queue(self, bus_name: str, queue_name: str | None = None) -> str:
        """Create ``bus_name`` (unless "default"), a queue and a match-all rule; return the queue URL.

        Idempotent, so tests may call it again for the same bus.
        """
        events = self.client("events")
        sqs = self.client("sqs")
        if bus_name != "default":
            try:
                events.create_event_bus(Name=bus_name)
            except events.exceptions.ResourceAlreadyExistsException:
                pass
        queue_name = queue_name or _safe_name(f"{bus_name}-events", 80)
        queue_url: str = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        rule_name = _safe_name(f"all-to-{queue_name}", 64)
        events.put_rule(
            Name=rule_name,
            EventBusName=bus_name,
            EventPattern=json.dumps(MATCH_ALL_PATTERN),
            State="ENABLED",
        )
        events.put_targets(Rule=rule_name, EventBusName=bus_name, Targets=[{"Id": "queue", "Arn": queue_arn}])
        return queue_url

    def drain(self, queue_url: str, expected: int | None = None, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Receive, delete and return all envelopes in the queue (order not guaranteed).

        With ``expected``, poll until that many arrived or ``timeout`` passed, then
        sweep once more so surplus messages show up too (callers can assert exact
        counts; fewer than expected is returned, not raised). Without it, stop
        after two empty one-second polls.
        """
        sqs = self.client("sqs")

        def receive(wait: int) -> list[dict[str, Any]]:
            resp = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait)
            messages = resp.get("Messages", [])
            if messages:
                sqs.delete_message_batch(
                    QueueUrl=queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
                )
            return [json.loads(m["Body"]) for m in messages]

        found: list[dict[str, Any]] = []
        empty_polls = 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if expected is not None and len(found) >= expected:
                break
            if expected is None and empty_polls >= 2:
                break
            wait = max(0, min(1, int(deadline - time.monotonic())))
            batch = receive(wait)
            found.extend(batch)
            empty_polls = 0 if batch else empty_polls + 1
            if not batch and wait == 0:
                time.sleep(0.05)
        if expected is not None:
            while batch := receive(0):
                found.extend(batch)
        return found


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.local_aws", description="Serve a local EventBridge until interrupted.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bus", action="append", default=[], help="create this bus with a queue (repeatable)")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with LocalEventBridge(port=args.port) as local:
        for key, value in local.env().items():
            print(f"export {key}={value}")
        for bus in args.bus:
            print(f"# bus {bus} -> queue {local.create_bus_with_queue(bus)}")
        sys.stdout.flush()
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(_main())
