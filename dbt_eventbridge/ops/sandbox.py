"""A local EventBridge (moto's server in this process): ``dbt-eventbridge sandbox``, the tests and the demo.

Events are read back the way they reach a consumer on AWS: put_events -> a rule on the bus
that matches every event -> an SQS queue target -> :meth:`LocalEventBridge.drain` or
:meth:`LocalEventBridge.tail`. moto is an optional extra (``dbt-eventbridge[sandbox]``):
it and boto3 are imported inside the functions that use them.

What moto 5.2 does there (checked by hand):

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
  the part after the last "/", so the ARN's account and region are not checked
  (and a bus is created under that part: moto refuses names with "/").
* An unknown bus fails the whole call (ResourceNotFoundException), not one entry.
  Entries missing Source/DetailType/Detail fail one by one (FailedEntryCount).
  At most 10 entries a call, as on AWS.
* Event patterns support ``prefix`` (``{"prefix": ""}`` matches any string).
* An ``AWS_PROFILE`` naming a profile that does not exist makes moto's server
  answer HTTP 500 (it builds boto3 sessions internally); unset it.
* moto's state is global to the process: every server (and ``mock_aws``) in one
  process sees the same buses and queues. Use unique names, or ``reset()``.
* moto's own ThreadedMotoServer binds its port in its thread: a port in use hangs
  its start() forever (werkzeug exits that thread). :meth:`LocalEventBridge.start`
  binds the socket itself first, so a port in use raises OSError in the caller.

No credentials are put in ``os.environ``: clients made by ``client()`` carry
dummy ones, and ``env()`` returns variables for subprocesses (e.g. dbt).
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from dbt_eventbridge.config.definitions import BUS_V2_ARN_RE, DEFAULT_BUS
from dbt_eventbridge.errors import TerminalError

if TYPE_CHECKING:
    from dbt_eventbridge.run.options import SyncOptions

DEFAULT_REGION = "us-east-1"
DUMMY_ACCESS_KEY = "testing"
DUMMY_SECRET_KEY = "testing"
# Matches every event: every event has a string `source`.
MATCH_ALL_PATTERN: dict[str, Any] = {"source": [{"prefix": ""}]}
INSTALL_FIX = "pip install 'dbt-eventbridge[sandbox]'"

Envelope = dict[str, Any]


def require_moto() -> None:
    """Raise a TerminalError with the fix unless moto's server (the ``sandbox`` extra) can be imported."""
    try:
        import moto.moto_server.werkzeug_app  # noqa: F401 - also needs flask, which moto[server] brings
    except ImportError as e:
        missing = e.name or "moto"
        raise TerminalError(
            f"`dbt-eventbridge sandbox` runs moto's local AWS server, and the package {missing!r} it needs is not "
            "installed", fix=f"Install the sandbox extra where dbt-eventbridge is installed: {INSTALL_FIX}") from None


def _safe_name(text: str, limit: int) -> str:
    # SQS queue and rule names allow only [A-Za-z0-9_-] (rules also "."), with length limits.
    return re.sub(r"[^A-Za-z0-9_-]", "-", text)[:limit]


def local_bus_name(event_bus: str) -> str:
    """The name moto files a classic bus (a name or an ARN) under: the part after the last "/"."""
    return event_bus.rsplit("/", 1)[-1]


class LocalEventBridge:
    """moto server on 127.0.0.1 with helpers to route a bus to a queue and read it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, region: str = DEFAULT_REGION,
                 quiet: bool = True) -> None:
        self.host = host
        self.port = port
        self.region = region
        self.quiet = quiet
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._endpoint_url: str | None = None

    @property
    def endpoint_url(self) -> str:
        if self._endpoint_url is None:
            raise RuntimeError("LocalEventBridge is not running; call start() first.")
        return self._endpoint_url

    def start(self) -> LocalEventBridge:
        """Serve on ``host:port`` (0: a free port, then in ``port``). A port in use raises OSError."""
        if self._server is not None:
            return self
        # Imported here so that importing this module stays cheap.
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        if self.quiet:
            # Werkzeug logs every request to stderr otherwise (process-wide logger).
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
        # Bound here, not by werkzeug: werkzeug prints and exits the process when a port is in use.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as werkzeug does
            sock.bind((self.host, self.port))
            sock.listen(128)
            server = make_server(self.host, self.port, DomainDispatcherApplication(create_backend_app), threaded=True,
                                 request_handler=MotoRequestHandler, fd=sock.fileno())
        finally:
            sock.close()  # werkzeug serves on its own duplicate of the socket
        thread = threading.Thread(target=server.serve_forever, name="moto-server", daemon=True)
        thread.start()
        self._server, self._thread = server, thread
        self.port = int(server.server_address[1])
        self._endpoint_url = f"http://{self.host}:{self.port}"
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket (the port is free again on return)."""
        if self._server is None:
            return
        self._server.shutdown()
        if self._thread is not None:
            self._thread.join()
        self._server.server_close()
        self._server = self._thread = self._endpoint_url = None

    def __enter__(self) -> LocalEventBridge:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget all buses, rules and queues (in every moto backend of this process)."""
        import urllib.request

        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass

    # -- clients and environment

    def client(self, service: str) -> Any:
        """boto3 client for ``service`` on this server, with dummy credentials."""
        import boto3
        import botocore.session
        from botocore.config import Config

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
        if bus_name != DEFAULT_BUS:
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

    def _receiver(self) -> Callable[[str, int], list[Envelope]]:
        """receive(queue_url, wait_seconds): up to 10 envelopes, deleted from the queue."""
        sqs = self.client("sqs")

        def receive(queue_url: str, wait: int) -> list[Envelope]:
            resp = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait)
            messages = resp.get("Messages", [])
            if messages:
                sqs.delete_message_batch(
                    QueueUrl=queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
                )
            return [json.loads(m["Body"]) for m in messages]

        return receive

    def drain(self, queue_url: str, expected: int | None = None, timeout: float = 10.0) -> list[Envelope]:
        """Receive, delete and return all envelopes in the queue (order not guaranteed).

        With ``expected``, poll until that many arrived or ``timeout`` passed, then
        sweep once more so surplus messages show up too (callers can assert exact
        counts; fewer than expected is returned, not raised). Without it, stop
        after two empty one-second polls.
        """
        receive = self._receiver()
        found: list[Envelope] = []
        empty_polls = 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if expected is not None and len(found) >= expected:
                break
            if expected is None and empty_polls >= 2:
                break
            wait = max(0, min(1, int(deadline - time.monotonic())))
            batch = receive(queue_url, wait)
            found.extend(batch)
            empty_polls = 0 if batch else empty_polls + 1
            if not batch and wait == 0:
                time.sleep(0.05)
        if expected is not None:
            while batch := receive(queue_url, 0):
                found.extend(batch)
        return found

    def tail(self, queues: Mapping[str, str], emit: Callable[[str, Envelope], None], stop: threading.Event,
             poll_seconds: float = 0.2) -> None:
        """Until ``stop`` is set: ``emit(bus, envelope)`` for each event that reaches a queue of
        ``queues`` (bus -> queue URL), in arrival order per queue."""
        receive = self._receiver()
        idle = poll_seconds
        while not stop.is_set():
            got = 0
            for bus, url in queues.items():
                while not stop.is_set() and (batch := receive(url, 0)):
                    got += len(batch)
                    for envelope in batch:
                        emit(bus, envelope)
            # Each poll is a request through boto3 to moto: every 0.2 s, an idle sandbox used 10% of
            # a core (a new user's trial). Idle, the wait doubles up to a second; an event resets it.
            idle = poll_seconds if got else min(1.0, idle * 2)
            if not got:
                stop.wait(idle)


# -- the sandbox of a dbt project ------------------------------------------------------------

@dataclass
class ProjectBuses:
    """The event buses a project's syncs publish to, as the sandbox serves them."""

    classic: list[str] = field(default_factory=list)   # moto's names (local_bus_name), in the syncs' order
    v2: list[str] = field(default_factory=list)        # Custom Event Bus ARNs: not served
    region: str | None = None                          # the settings' region (vars.eventbridge, env)
    syncs: int = 0


def buses_of(event_buses: Iterable[str]) -> ProjectBuses:
    """Split the syncs' ``event_bus`` values into classic buses (deduplicated) and v2 ARNs."""
    out = ProjectBuses()
    for bus in event_buses:
        out.syncs += 1
        if BUS_V2_ARN_RE.match(bus):
            if bus not in out.v2:
                out.v2.append(bus)
        elif local_bus_name(bus) not in out.classic:
            out.classic.append(local_bus_name(bus))
    return out


def project_buses(options: SyncOptions) -> ProjectBuses:
    """Parse the project as ``validate`` does and read every sync's bus and the settings' region."""
    from dbt_eventbridge.run.loader import load

    loaded = load(options, lenient=True)
    found = buses_of(sync.event_bus for sync, _ in loaded.syncs)
    found.region = loaded.settings.region
    return found


def format_event(bus: str, envelope: Envelope, width: int | None = None) -> str:
    """One line: the event's time, bus, source, detail-type and detail (compact JSON), cut to ``width``."""
    detail = json.dumps(envelope.get("detail"), ensure_ascii=False, separators=(",", ":"), default=str)
    line = "  ".join([str(envelope.get("time", "-")), bus, str(envelope.get("source", "-")),
                      str(envelope.get("detail-type", "-")), detail])
    if width is not None and len(line) > width:
        line = line[:max(width - 3, 0)] + "..."
    return line


def format_envelope(envelope: Envelope) -> str:
    """The envelope as it arrived, as one JSON line."""
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":"), default=str)
