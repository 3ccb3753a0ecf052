"""A local PutEvents endpoint that injects the faults moto never produces, for tests.

moto never throttles, never fails an entry on its own, never refuses a request as too
large and never loses a response. It also skips some limits AWS enforces. This endpoint
does all of that when asked. It speaks the AWS JSON 1.1 protocol that botocore uses for
the ``events`` service, so the code under test runs unchanged through a real boto3
client (``endpoint_url=``). It only serves PutEvents.

Wire format (botocore 1.44): ``POST /`` with ``X-Amz-Target: AWSEvents.PutEvents`` and the
body ``{"Entries": [...]}``. The answer is ``{"FailedEntryCount": n, "Entries": [{"EventId": ..}
| {"ErrorCode": .., "ErrorMessage": ..}]}``. For errors, botocore takes the code from the
body's ``__type`` (the part after ``#``) and the message from ``message``. Without
``__type``, the code is the HTTP status as text; ``x-amzn-ErrorType`` is sent as AWS does,
but botocore's JSON parser ignores it. botocore's standard retry mode resends a whole
request on throttling codes, on 500/502/503/504 and on dropped connections. It waits
rand * 1 s * 2^i after throttling and rand * 50 ms * 2^i otherwise. It stops after
``max_attempts`` tries; only then does the caller see the error.

Limits enforced as AWS does: more than 10 entries fails the request (ValidationException).
A request whose entries add up to more than ``max_request_bytes`` gets HTTP 413; the AWS
limit is the default. A ``Source`` starting with ``aws.``, a ``DetailType`` over 128
characters, or a missing field fails that entry (InvalidArgument). A ``Detail`` that is not
a JSON object fails that entry too (MalformedDetail).

Usage::

    with FaultEndpoint(entry_fault_rate=0.3, request_faults=[RequestFault("throttle", first=2)]) as ep:
        client = boto3.client("events", endpoint_url=ep.endpoint_url, ...)
        ...
        ep.accepted        # every accepted entry: the entry as sent plus "EventId"
        ep.requests        # every request received: Request(number, entries, size, fault, at)
        ep.faults          # Counter of injected faults, by request-fault kind or entry error code
        ep.max_in_flight   # most requests handled at the same moment
"""

from __future__ import annotations

import json
import random
import socket
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from devtools.local_server import ServedEndpoint, TrackedServer

MAX_ENTRIES = 10
MAX_DETAIL_TYPE = 128
AWS_MAX_REQUEST_BYTES = 1_048_575  # the total must be below 1 MiB
RETRYABLE_ENTRY_CODES = ("ThrottlingException", "InternalFailure")
_ENTRY_MESSAGES = {"ThrottlingException": "Rate exceeded", "InternalFailure": "Internal service failure"}

# kind -> (HTTP status, __type or "" for none, message); None: the connection is closed without an
# answer. When several RequestFaults apply to a request, the first in the list wins.
REQUEST_FAULTS: dict[str, tuple[int, str, str] | None] = {
    "throttle": (400, "ThrottlingException", "Rate exceeded"),
    "internal": (500, "InternalFailure", "Internal service failure"),
    "unavailable": (503, "ServiceUnavailable", "Service unavailable"),
    "bad_gateway": (502, "", "Bad Gateway"),  # no __type, as from a proxy: botocore's code is "502"
    "auth": (400, "UnrecognizedClientException", "The security token included in the request is invalid."),
    "not_found": (400, "ResourceNotFoundException", "Event bus {bus} does not exist."),
    "drop": None,           # nothing accepted, connection closed
    "lose_response": None,  # entries processed and accepted, then the connection closed
}

# An entry dict -> (ErrorCode, ErrorMessage) to fail it for good, or None to go on.
Rejector = Callable[[dict[str, Any]], "tuple[str, str] | None"]


@dataclass(frozen=True)
class RequestFault:
    """A whole-request fault. Requests are numbered from 1 in the order they arrive.

    The first ``skip`` requests are spared; of the rest, the first ``first`` get the
    fault, and every later one gets it with probability ``rate``.
    """

    kind: str
    first: int = 0
    rate: float = 0.0
    skip: int = 0

    def __post_init__(self) -> None:
        if self.kind not in REQUEST_FAULTS:
            raise ValueError(f"unknown request fault {self.kind!r}; one of {sorted(REQUEST_FAULTS)}")

    def hits(self, number: int, rng: random.Random) -> bool:
        n = number - self.skip
        if n <= 0:
            return False
        return n <= self.first or (self.rate > 0 and rng.random() < self.rate)


@dataclass
class Request:
    number: int
    entries: list[dict[str, Any]]
    size: int                 # the entries' total, as AWS counts it
    fault: str | None = None  # request-fault kind, "too_large", "validation", or None (answered per entry)
    at: float = field(default_factory=time.monotonic)  # arrival, for rate checks


def entry_size(entry: dict[str, Any]) -> int:
    """AWS's formula, written out separately here so tests do not reuse the code they check."""
    size = 14 if entry.get("Time") is not None else 0
    for k in ("Source", "DetailType", "Detail", "TraceHeader"):
        if entry.get(k):
            size += len(str(entry[k]).encode("utf-8"))
    return size + sum(len(str(r).encode("utf-8")) for r in entry.get("Resources") or ())


def _entry_error(entry: dict[str, Any]) -> tuple[str, str] | None:
    """The per-entry checks AWS makes and moto does not."""
    for k in ("Source", "DetailType", "Detail"):
        if not entry.get(k):
            return "InvalidArgument", f"Parameter {k} is not valid. Reason: {k} is a required argument."
    if str(entry["Source"]).startswith("aws."):
        return "InvalidArgument", "Parameter Source is not valid. Reason: Source cannot start with 'aws.'"
    if len(entry["DetailType"]) > MAX_DETAIL_TYPE:
        return "InvalidArgument", (f"Parameter DetailType is not valid. Reason: DetailType is longer than "
                                   f"{MAX_DETAIL_TYPE} characters.")
    try:
        detail = json.loads(entry["Detail"])
    except ValueError:
        detail = None
    if not isinstance(detail, dict):
        return "MalformedDetail", "Detail is malformed."
    return None


class FaultEndpoint(ServedEndpoint):
    """PutEvents on 127.0.0.1 (a free port) with configurable faults; see the module docstring.

    Per entry, in this order: AWS's own checks, then ``reject``, then a retryable error
    (``entry_fault_codes``, picked at random) with probability ``entry_fault_rate``;
    otherwise the entry is accepted and recorded. ``delay`` seconds pass before every
    answer. The fault settings are plain attributes: set them before requests are sent.
    """

    def __init__(self, *, entry_fault_rate: float = 0.0,
                 entry_fault_codes: Iterable[str] = RETRYABLE_ENTRY_CODES, reject: Rejector | None = None,
                 request_faults: Iterable[RequestFault] = (), max_request_bytes: int = AWS_MAX_REQUEST_BYTES,
                 delay: float = 0.0, seed: int = 0, quota_rps: float | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls  # a server-side context: the endpoint speaks HTTPS, as AWS does
        self.entry_fault_rate = entry_fault_rate
        # Like the account's PutEvents quota: requests beyond this many in the last second
        # are throttled whole, so a client that does not slow down gets mostly refusals.
        self.quota_rps = quota_rps
        self._recent: list[float] = []
        self.entry_fault_codes = tuple(entry_fault_codes)
        self.reject = reject
        self.request_faults = list(request_faults)
        self.max_request_bytes = max_request_bytes
        self.delay = delay
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._accepted: list[dict[str, Any]] = []
        self._requests: list[Request] = []
        self._faults: Counter[str] = Counter()
        self._in_flight = 0
        self._max_in_flight = 0

    # -- lifecycle: devtools.local_server.ServedEndpoint

    # -- what happened (snapshots, safe to read while requests run)

    @property
    def accepted(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._accepted)

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._requests)

    @property
    def faults(self) -> Counter[str]:
        with self._lock:
            return Counter(self._faults)

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._max_in_flight

    # -- serving

    def _answer(self, headers: Any, body: bytes) -> tuple[int, dict[str, Any]] | None:
        """(HTTP status, JSON body), or None to close the connection without answering."""
        target = headers.get("X-Amz-Target", "")
        if target != "AWSEvents.PutEvents":
            return _error(400, "UnknownOperationException", f"Operation {target!r} is not served here")
        if not headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256"):
            return _error(400, "MissingAuthenticationTokenException", "Missing Authentication Token")
        try:
            entries = list(json.loads(body or b"{}").get("Entries") or [])
        except (ValueError, AttributeError):
            return _error(400, "SerializationException", "The request body is not valid JSON")
        with self._lock:
            req = Request(len(self._requests) + 1, entries, sum(entry_size(e) for e in entries))
            self._requests.append(req)
            fault = next((f.kind for f in self.request_faults if f.hits(req.number, self._rng)), None)
            if fault is None and self.quota_rps is not None:
                now = time.monotonic()
                self._recent = [t for t in self._recent if now - t < 1.0]
                if len(self._recent) >= self.quota_rps:
                    fault = "throttle"
                else:
                    self._recent.append(now)
            if fault is not None:
                req.fault = fault
                self._faults[fault] += 1
                spec = REQUEST_FAULTS[fault]
                if fault == "drop":
                    return None
                if spec is not None:
                    status, code, message = spec
                    bus = str((entries[0] if entries else {}).get("EventBusName") or "default")
                    return _error(status, code, message.format(bus=bus))
            if not 1 <= len(entries) <= MAX_ENTRIES:
                req.fault = "validation"
                return _error(400, "ValidationException", f"1 validation error detected: Value at 'entries' "
                              f"failed to satisfy constraint: Member must have length less than or equal to "
                              f"{MAX_ENTRIES} (got {len(entries)})")
            if req.size > self.max_request_bytes:
                req.fault = "too_large"
                # No __type, as from AWS's front end: botocore reports the code "413".
                return _error(413, "", "Request Entity Too Large")
            results = [self._entry_result(e) for e in entries]
        failed = sum(1 for r in results if "ErrorCode" in r)
        if fault == "lose_response":
            return None
        return 200, {"FailedEntryCount": failed, "Entries": results}

    def _entry_result(self, entry: dict[str, Any]) -> dict[str, str]:
        """Called with the lock held."""
        error = _entry_error(entry) or (self.reject(entry) if self.reject else None)
        if error is None and self.entry_fault_rate > 0 and self._rng.random() < self.entry_fault_rate:
            code = self._rng.choice(self.entry_fault_codes)
            error = code, _ENTRY_MESSAGES.get(code, code)
        if error is not None:
            self._faults[error[0]] += 1
            return {"ErrorCode": error[0], "ErrorMessage": error[1]}
        event_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        self._accepted.append({**entry, "EventId": event_id})
        return {"EventId": event_id}

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, ({"__type": code, "message": message} if code else {"message": message})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like AWS; botocore pools connections
    server: TrackedServer

    def setup(self) -> None:
        super().setup()
        # Headers and body are separate writes: without this, Nagle + delayed ACK add ~40 ms a request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        endpoint = self.server.endpoint
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        endpoint._enter()
        try:
            answer = endpoint._answer(self.headers, body)
            if endpoint.delay:
                time.sleep(endpoint.delay)
            if answer is None:
                self.close_connection = True  # closed without a byte of answer
                return
            status, payload = answer
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            if "__type" in payload:
                self.send_header("x-amzn-ErrorType", payload["__type"])
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client died (the crash tests kill it on purpose)
        finally:
            endpoint._leave()

    def log_message(self, format: str, *args: Any) -> None:
        pass


# The handler is defined after the endpoint it serves.
FaultEndpoint.HANDLER = _Handler
FaultEndpoint.THREAD_NAME = "fault-endpoint"
