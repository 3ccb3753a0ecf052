"""A local Amazon EventBridge "Custom Event Bus" endpoint (boto3's ``eventbridgev2``), for tests and the demo.

moto does not implement this service (API version 2025-05-15). This endpoint speaks its wire
protocol, ``smithy-rpc-v2-cbor``, with real SigV4 checks, so botocore's own client works against
it unchanged (``endpoint_url=``). It serves CreateEventBus, DescribeEventBus, ListEventBuses,
DeleteEventBus and PutEvents, and injects the faults AWS can produce, when asked.

Checked by hand against botocore 1.44.8 (serialize.py RpcV2CBORSerializer, parsers.py
RpcV2CBORParser, auth.py SigV4Auth) and the service model
(botocore/data/eventbridgev2/2025-05-15/service-2.json.gz):

* Requests are ``POST /service/AWSEventsV2/operation/<Operation>``. The service segment is the
  model's ``targetPrefix``, not its serviceId ("EventBridgeV2"). Headers: ``smithy-protocol:
  rpc-v2-cbor``, ``Accept: application/cbor``, ``Content-Type: application/cbor``; there is no
  ``X-Amz-Target``. The body is always a CBOR map, ``a0`` (an empty map) for an empty input.
* SigV4 with signing name ``events`` (the endpoint prefix is ``eventsv2``). botocore signs
  ``accept;content-type;host;smithy-protocol;x-amz-date`` and sends no ``x-amz-content-sha256``:
  the payload hash is the hex SHA-256 of the body. The canonical URI is the received path with
  dot segments and double slashes removed, then percent-encoded once more (``quote(p, safe="/~")``).
* Timestamps are CBOR tag 1 around the epoch seconds: an integer, or a double when the value
  has sub-second digits (microseconds are kept, not cut to milliseconds). botocore's parser
  accepts tag 1 only and raises on any other tag, so responses encode datetimes as tag 1
  (``cbor2.dumps(..., datetime_as_timestamp=True)``; cbor2's default, tag 0, would break it).
* Strings are CBOR text strings; ``SystemMetadata`` and ``DeduplicationConfiguration`` are sent
  as nested maps exactly as given; members set to None are left out.
* botocore validates only required members and minimum lengths before sending (``Entries=[]``,
  ``Source=""``, a missing ``DetailType`` never reach a server); maxima and patterns are left to
  the service, so 101 entries, a 129-character DetailType or a malformed ARN do arrive here.
* Errors: the code is the body's ``__type``, cut to the part after ``#`` (and before ``:``);
  without ``__type`` the code is the HTTP status as text. The message is the body's
  ``message``, else ``Message``. No header is read for the code (``x-amzn-query-error`` only
  for query-compatible services, which this is not); ``x-amzn-RequestId`` becomes RequestId.
  botocore then parses the body again against the modeled error shape, whose only member here
  is ``Message``, and copies it into the ClientError's response. An error response with an
  empty body and a status below 500 crashes botocore's parser (``AttributeError: 'bytes' object
  has no attribute 'get'``), so every error here carries a CBOR map.
* HTTP statuses of the modeled errors come from the model (``error.httpStatusCode``):
  ThrottlingException 429 (not 400 as in the classic ``events`` API), InternalException 500,
  InvalidInputException 400, ResourceNotFoundException 404, AccessDeniedException 403,
  ResourceAlreadyExistsException 409 (``MODELED_ERRORS``).
* botocore's default retry mode is standard, 3 attempts: it resends on ThrottlingException, on
  500/502/503/504, on the model's retryable errors (InternalException) and on closed connections.

Not in the model, so chosen by what AWS's front end does for its JSON services (``__type`` with
the ``com.amazon.coral.service#`` prefix, HTTP 400): UnrecognizedClientException for an unknown
access key, InvalidSignatureException for a wrong signature, a wrong scope or a clock skewed by
more than 5 minutes, IncompleteSignatureException and MissingAuthenticationTokenException for a
malformed or missing Authorization header; SerializationException (400) for a body that is not
CBOR or has mistyped members. Routing errors as smithy-rs's server answers them: 404
UnknownOperationException (wrong path, operation, missing ``smithy-protocol`` header, an
``X-Amz-Target`` header), 405 for methods other than POST, 415 and 406 for other media types.

PutEvents, as this endpoint enforces it: ``EventBusArn`` must match the model's pattern
(patterns are matched whole here; Smithy's are unanchored, so AWS may accept more) else
InvalidInputException; an unknown bus is ResourceNotFoundException (404); 1..100 entries, else
InvalidInputException for the whole request; entries over 1,048,576 bytes in total
(``entry_size``: UTF-8 bytes of Source, DetailType, Detail and each Resource, +14 with a Time, as
classic PutEvents counts) fail the whole request with InvalidInputException and publish nothing.
Then per entry, a bad entry failing alone: Source 1..256 characters and not ``aws.``-prefixed,
DetailType 1..128, Resources at most 100 of at most 2048 characters, DeduplicationId 1..128 with a
non-whitespace character, EventGroupId 1..128 (ErrorCode ``InvalidInput``); Detail a JSON object
(``MalformedDetail``; an absent Detail, optional in the model, is taken as ``{}``). Then injected
entry faults. Accepted entries get an EventId, SuccessCode ``PUBLISHED`` and, with an
EventGroupId, a SequenceNumber: a 20-digit decimal string, increasing per (bus, group).

Deduplication (guessed from SQS FIFO; the model only names the fields): an entry whose key was
published on the same bus less than ``dedup_window`` seconds ago is answered ``DEDUPLICATED``
with the first EventId (and SequenceNumber) and is not delivered again; the window runs from the
first publication and a duplicate does not extend it. The key is the entry's DeduplicationId;
with ``DeduplicationConfiguration: {DeduplicationType: CONTENT_BASED}`` an entry without one is
keyed by the SHA-256 of Source, DetailType and Detail (an explicit DeduplicationId wins).

Buses are ACTIVE at once: CreateEventBus answers State ``CREATING`` as the model says, and the
first DescribeEventBus already says ``ACTIVE`` (the EventBusActive waiter passes on its first
call). DeleteEventBus removes the bus at once (EventBusDeleted likewise).

Not AWS: ``GET /_local/events[?bus=<arn>]`` answers the delivered events as JSON, the same list
as ``delivered()``, for processes other than the test's. It needs no signature.

Usage::

    with LocalEventBridgeV2(request_faults=[RequestFault("throttle", first=1)]) as ep:
        arn = ep.create_bus("orders")
        client = boto3.client("eventbridgev2", endpoint_url=ep.endpoint_url, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        ...
        ep.delivered(arn)   # published events, in delivery order
        ep.requests         # every PutEvents received: Request(number, bus_arn, entry_count, size, fault, at)
        ep.counts           # Counter: published, deduplicated, rejected:<code>, fault:<kind or code>
        ep.max_in_flight    # most requests handled at the same moment

Command line (demo): ``python -m devtools.eventbridgev2_endpoint [--port N] [--bus NAME ...]``
prints ``export`` lines and each bus's ARN, and serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import random
import re
import socket
import string
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import cbor2

from devtools.local_server import ServedEndpoint, TrackedServer, serve_until_signalled

SERVICE_NAME = "AWSEventsV2"  # the model's targetPrefix: the {serviceName} segment of the path
SIGNING_NAME = "events"
MAX_ENTRIES = 100
MAX_REQUEST_BYTES = 1_048_576
MAX_SOURCE = 256
MAX_DETAIL_TYPE = 128
MAX_RESOURCES = 100
MAX_RESOURCE = 2048
MAX_ID = 128  # DeduplicationId and EventGroupId
MAX_CLOCK_SKEW = 300.0  # seconds, as AWS's front end allows for SigV4
DEFAULT_CREDENTIALS: Mapping[str, str] = MappingProxyType({"testing": "testing"})
RETRYABLE_ENTRY_CODES = ("ThrottlingException", "InternalFailure")
_ENTRY_MESSAGES = {"ThrottlingException": "Rate exceeded", "InternalFailure": "Internal service failure"}

# From the service model: shape name -> error.httpStatusCode (tests compare this with the model).
MODELED_ERRORS: Mapping[str, int] = MappingProxyType({
    "AccessDeniedException": 403,
    "ConcurrentModificationException": 409,
    "ConflictException": 409,
    "IdempotentParameterMismatchException": 409,
    "InternalException": 500,
    "InvalidInputException": 400,
    "InvalidStateException": 409,
    "LimitExceededException": 400,
    "PolicyLengthExceededException": 400,
    "PublicPolicyException": 400,
    "ResourceAlreadyExistsException": 409,
    "ResourceInUseException": 409,
    "ResourceNotFoundException": 404,
    "SchemaRegistryUnavailableException": 400,
    "ThrottlingException": 429,
})
MODEL_NAMESPACE = "com.amazonaws.eventbridgev2"  # a guess: the model does not say; botocore drops it
# Errors of AWS's front end and of the protocol, not in the model: code -> (HTTP status, __type namespace).
FRONT_END_ERRORS: Mapping[str, tuple[int, str]] = MappingProxyType({
    "UnrecognizedClientException": (400, "com.amazon.coral.service"),
    "InvalidSignatureException": (400, "com.amazon.coral.service"),
    "IncompleteSignatureException": (400, "com.amazon.coral.service"),
    "MissingAuthenticationTokenException": (400, "com.amazon.coral.service"),
    "SerializationException": (400, "smithy.framework"),
    "UnknownOperationException": (404, "smithy.framework"),
    "MethodNotAllowedException": (405, "smithy.framework"),
    "NotAcceptableException": (406, "smithy.framework"),
    "UnsupportedMediaTypeException": (415, "smithy.framework"),
})

# The model's patterns.
EVENT_BUS_ARN = re.compile(r"arn:aws(-[a-z0-9]+)*:events:[a-z][a-z0-9]*(-[a-z0-9]+)*:([0-9]{12}):"
                           r"event-busv2\/[A-Za-z0-9][\.\-_A-Za-z0-9]{0,255}\/[a-z0-9]{25}")
EVENT_BUS_NAME = re.compile(r"[A-Za-z0-9][\.\-_A-Za-z0-9]*")
DEDUPLICATION_ID = re.compile(r"[\s\S]*[^\u0009-\u000D\u001C-\u0020\u1680\u2000-\u2006\u2008-\u200A"
                              r"\u2028\u2029\u205F\u3000][\s\S]*")
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_ROUTE = re.compile(rf"(?:/.*)?/service/(?:{_IDENT}\.)*(?P<service>{_IDENT})/operation/(?P<operation>{_IDENT})")

# kind -> (error code, message) or None: the connection is closed without an answer.
REQUEST_FAULTS: Mapping[str, tuple[str, str] | None] = MappingProxyType({
    "throttle": ("ThrottlingException", "Rate exceeded"),
    "internal": ("InternalException", "Internal service failure"),
    "drop": None,           # nothing accepted, the connection closed
    "lose_response": None,  # entries processed and accepted, then the connection closed
})

Answer = tuple[int, dict[str, Any]]


class _Refused(Exception):
    """A whole request refused with a modeled or front-end error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class RequestFault:
    """A whole-request fault on PutEvents. Requests are numbered from 1 in the order they arrive.

    The first ``skip`` requests are spared; of the rest, the first ``first`` get the fault,
    then every ``every``-th one (counted after ``skip``), and any other with probability ``rate``.
    """

    kind: str
    first: int = 0
    every: int = 0
    rate: float = 0.0
    skip: int = 0

    def __post_init__(self) -> None:
        if self.kind not in REQUEST_FAULTS:
            raise ValueError(f"unknown request fault {self.kind!r}; one of {sorted(REQUEST_FAULTS)}")

    def hits(self, number: int, rng: random.Random) -> bool:
        n = number - self.skip
        if n <= 0:
            return False
        if n <= self.first or (self.every > 0 and n % self.every == 0):
            return True
        return self.rate > 0 and rng.random() < self.rate


@dataclass
class Request:
    """A PutEvents request that passed authentication."""

    number: int
    bus_arn: str | None
    entry_count: int
    size: int                 # the entries' total, as AWS counts it
    fault: str | None = None  # request-fault kind, the code that refused the whole request, or None
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Published:
    event_id: str
    sequence_number: str | None
    at: float


@dataclass
class _Bus:
    name: str
    arn: str
    created: datetime
    client_token: str | None = None
    description: str | None = None
    encryption: dict[str, Any] | None = None
    storage: dict[str, Any] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    sequences: Counter[str] = field(default_factory=Counter)
    dedup: dict[str, _Published] = field(default_factory=dict)


def entry_size(entry: Mapping[str, Any]) -> int:
    """AWS's formula for classic PutEvents: UTF-8 bytes of Source, DetailType, Detail and each
    Resource, plus 14 when Time is set."""
    size = 14 if entry.get("Time") is not None else 0
    for key in ("Source", "DetailType", "Detail"):
        value = entry.get(key)
        if isinstance(value, str):
            size += len(value.encode("utf-8"))
    resources = entry.get("Resources")
    if isinstance(resources, list):
        size += sum(len(r.encode("utf-8")) for r in resources if isinstance(r, str))
    return size


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _invalid(member: str, reason: str) -> tuple[str, str]:
    return "InvalidInput", f"Parameter {member} is not valid. Reason: {reason}"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _entry_error(entry: Mapping[str, Any]) -> tuple[str, str] | None:
    """The per-entry checks; a bad entry fails alone."""
    source, detail_type = entry.get("Source"), entry.get("DetailType")
    if source is None or not 1 <= len(source) <= MAX_SOURCE:
        return _invalid("Source", f"Source must be 1 to {MAX_SOURCE} characters long.")
    if source.startswith("aws."):
        return _invalid("Source", "Source cannot start with 'aws.'")
    if detail_type is None or not 1 <= len(detail_type) <= MAX_DETAIL_TYPE:
        return _invalid("DetailType", f"DetailType must be 1 to {MAX_DETAIL_TYPE} characters long.")
    resources = entry.get("Resources") or []
    if len(resources) > MAX_RESOURCES:
        return _invalid("Resources", f"at most {MAX_RESOURCES} resources, got {len(resources)}.")
    if any(len(r) > MAX_RESOURCE for r in resources):
        return _invalid("Resources", f"a resource is longer than {MAX_RESOURCE} characters.")
    metadata = entry.get("SystemMetadata") or {}
    dedup_id, group_id = metadata.get("DeduplicationId"), metadata.get("EventGroupId")
    if dedup_id is not None and (not 1 <= len(dedup_id) <= MAX_ID or not DEDUPLICATION_ID.fullmatch(dedup_id)):
        return _invalid("SystemMetadata.DeduplicationId",
                        f"must be 1 to {MAX_ID} characters with at least one that is not whitespace.")
    if group_id is not None and not 1 <= len(group_id) <= MAX_ID:
        return _invalid("SystemMetadata.EventGroupId", f"must be 1 to {MAX_ID} characters long.")
    detail = entry.get("Detail")
    if detail is not None:
        try:
            parsed = json.loads(detail, parse_constant=_reject_constant)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            return "MalformedDetail", "Detail is malformed."
    return None


def _check_types(value: Any, expected: type | tuple[type, ...], member: str) -> None:
    if value is not None and not isinstance(value, expected):
        raise _Refused("SerializationException", f"{member} has the wrong type ({type(value).__name__})")


def _check_entry_types(entry: Any, index: int) -> None:
    where = f"Entries[{index}]"
    _check_types(entry, dict, where)
    for key in ("Source", "DetailType", "Detail"):
        _check_types(entry.get(key), str, f"{where}.{key}")
    _check_types(entry.get("Time"), datetime, f"{where}.Time")
    resources = entry.get("Resources")
    _check_types(resources, list, f"{where}.Resources")
    for r in resources or ():
        _check_types(r, str, f"{where}.Resources[]")
    metadata = entry.get("SystemMetadata")
    _check_types(metadata, dict, f"{where}.SystemMetadata")
    for key in ("DeduplicationId", "EventGroupId"):
        _check_types((metadata or {}).get(key), str, f"{where}.SystemMetadata.{key}")


def _check_arn(params: Mapping[str, Any]) -> str:
    arn = params.get("EventBusArn")
    if arn is None:
        raise _Refused("InvalidInputException", "1 validation error detected: Value null at 'eventBusArn' "
                       "failed to satisfy constraint: Member must not be null")
    _check_types(arn, str, "EventBusArn")
    if not 1 <= len(arn) <= 1011 or not EVENT_BUS_ARN.fullmatch(arn):
        raise _Refused("InvalidInputException", f"1 validation error detected: Value '{arn}' at 'eventBusArn' "
                       f"failed to satisfy constraint: Member must satisfy regular expression pattern: "
                       f"{EVENT_BUS_ARN.pattern}")
    return str(arn)


class LocalEventBridgeV2(ServedEndpoint):
    """The ``eventbridgev2`` API on 127.0.0.1 (a free port unless ``port``); see the module docstring.

    PutEvents per entry, in this order: the entry checks, then a fault (``entry_fault_codes``,
    picked at random) with probability ``entry_fault_rate``, then deduplication; otherwise the
    entry is published and recorded. ``delay`` seconds pass before every answer. ``seed`` makes
    the faults and the ids repeatable. The fault settings are plain attributes: set them before
    requests are sent.
    """

    def __init__(self, *, region: str = "us-east-1", account: str = "123456789012",
                 credentials: Mapping[str, str] = DEFAULT_CREDENTIALS, dedup_window: float = 300.0,
                 entry_fault_rate: float = 0.0, entry_fault_codes: Iterable[str] = RETRYABLE_ENTRY_CODES,
                 request_faults: Iterable[RequestFault] = (), delay: float = 0.0, seed: int = 0,
                 port: int = 0) -> None:
        self.region = region
        self.account = account
        self.credentials = dict(credentials)  # access key -> secret key
        self.dedup_window = dedup_window
        self.entry_fault_rate = entry_fault_rate
        self.entry_fault_codes = tuple(entry_fault_codes)
        self.request_faults = list(request_faults)
        self.delay = delay
        self.port = port
        self._rng = random.Random(seed)            # faults
        self._ids = random.Random(f"ids-{seed}")   # bus ids and EventIds, apart so faults do not shift them
        self._lock = threading.Lock()
        self._buses: dict[str, _Bus] = {}          # by ARN, in creation order
        self._delivered: list[dict[str, Any]] = []
        self._requests: list[Request] = []
        self._counts: Counter[str] = Counter()
        self._in_flight = 0
        self._max_in_flight = 0

    # -- lifecycle: devtools.local_server.ServedEndpoint

    def env(self) -> dict[str, str]:
        """Variables for a process that should publish here (the first credentials given)."""
        key, secret = next(iter(self.credentials.items()))
        return {"DBT_EVENTBRIDGE_V2_ENDPOINT_URL": self.endpoint_url, "AWS_ACCESS_KEY_ID": key,
                "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": self.region}

    # -- buses

    def create_bus(self, name: str) -> str:
        """Create the bus ``name`` and return its ARN; the existing bus's ARN if there is one."""
        if not 1 <= len(name) <= 256 or not EVENT_BUS_NAME.fullmatch(name):
            raise ValueError(f"invalid event bus name {name!r}")
        with self._lock:
            existing = self._bus_named(name)
            return existing.arn if existing is not None else self._new_bus(name).arn

    @property
    def buses(self) -> dict[str, str]:
        """Name -> ARN of every bus, in creation order."""
        with self._lock:
            return {bus.name: bus.arn for bus in self._buses.values()}

    def _bus_named(self, name: str) -> _Bus | None:
        return next((b for b in self._buses.values() if b.name == name), None)

    def _new_bus(self, name: str, **fields: Any) -> _Bus:
        """Called with the lock held."""
        bus_id = "".join(self._ids.choices(string.ascii_lowercase + string.digits, k=25))
        arn = f"arn:aws:events:{self.region}:{self.account}:event-busv2/{name}/{bus_id}"
        bus = self._buses[arn] = _Bus(name, arn, datetime.now(UTC), **fields)
        return bus

    # -- what happened (snapshots, safe to read while requests run)

    def delivered(self, bus_arn: str | None = None) -> list[dict[str, Any]]:
        """Every published (not deduplicated) event, in delivery order; of one bus with ``bus_arn``."""
        with self._lock:
            return [dict(e, Resources=list(e["Resources"])) for e in self._delivered
                    if bus_arn is None or e["EventBusArn"] == bus_arn]

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    @property
    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(self._counts)

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._max_in_flight

    # -- serving

    def _answer(self, method: str, target: str, headers: Message, body: bytes) -> Answer | None:
        """(HTTP status, CBOR body as a dict), or None to close the connection without answering."""
        try:
            operation = self._route(method, target, headers, body)
            auth_error = self._sigv4_error(method, target, headers, body)
            if auth_error is not None:
                raise _Refused(*auth_error)
            params = self._decode(body)
            if operation == "PutEvents":
                return self._put_events(params)
            with self._lock:
                return 200, self._manage(operation, params)
        except _Refused as refused:
            with self._lock:
                self._counts[f"rejected:{refused.code}"] += 1
            return _error(refused.code, refused.message)

    def _route(self, method: str, target: str, headers: Message, body: bytes) -> str:
        if method != "POST":
            raise _Refused("MethodNotAllowedException", f"Method {method} is not allowed; use POST")
        match = _ROUTE.fullmatch(urlsplit(target).path)
        operation = match["operation"] if match and match["service"] == SERVICE_NAME else None
        if operation not in _OPERATIONS or headers.get("smithy-protocol") != "rpc-v2-cbor" \
                or headers.get("X-Amz-Target") or headers.get("X-Amzn-Target"):
            raise _Refused("UnknownOperationException",
                           f"No operation at {urlsplit(target).path!r} for smithy-protocol "
                           f"{headers.get('smithy-protocol')!r}")
        content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if body and content_type != "application/cbor":
            raise _Refused("UnsupportedMediaTypeException", f"Content-Type {content_type!r} is not application/cbor")
        accept = (headers.get("Accept") or "*/*").lower()
        if not any(t in accept for t in ("application/cbor", "*/*", "application/*")):
            raise _Refused("NotAcceptableException", f"Cannot answer Accept: {accept}")
        return str(operation)

    def _sigv4_error(self, method: str, target: str, headers: Message, body: bytes) -> tuple[str, str] | None:
        """Checks the Authorization header per the SigV4 spec; (code, message) when it fails."""
        authorization = headers.get("Authorization")
        if not authorization:
            return "MissingAuthenticationTokenException", "Request is missing Authentication Token"
        algorithm, _, rest = authorization.strip().partition(" ")
        if algorithm != "AWS4-HMAC-SHA256":
            return "IncompleteSignatureException", f"Unsupported AWS 'algorithm': '{algorithm}'"
        fields: dict[str, str] = {}
        for part in rest.split(","):
            key, sep, value = part.strip().partition("=")
            if sep:
                fields[key] = value
        for required in ("Credential", "SignedHeaders", "Signature"):
            if required not in fields:
                return "IncompleteSignatureException", (f"Authorization header requires '{required}' parameter. "
                                                        f"Authorization={authorization}")
        scope = fields["Credential"].split("/")
        if len(scope) != 5:
            return "IncompleteSignatureException", f"Credential should have 5 parts: {fields['Credential']!r}"
        access_key, date, region, service, terminator = scope
        secret = self.credentials.get(access_key)
        if secret is None:
            return "UnrecognizedClientException", "The security token included in the request is invalid."
        if terminator != "aws4_request":
            return "InvalidSignatureException", (f"Credential should be scoped with a valid terminator: "
                                                 f"'aws4_request', not '{terminator}'.")
        if service != SIGNING_NAME:
            return "InvalidSignatureException", f"Credential should be scoped to correct service: '{SIGNING_NAME}'."
        if region != self.region:
            return "InvalidSignatureException", f"Credential should be scoped to a valid region, not '{region}'."
        amz_date = headers.get("X-Amz-Date") or ""
        try:
            signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            return "IncompleteSignatureException", (f"Authorization header requires existence of a valid "
                                                    f"'X-Amz-Date' header. Authorization={authorization}")
        if date != amz_date[:8]:
            return "InvalidSignatureException", (f"Date in Credential scope does not match YYYYMMDD from "
                                                 f"ISO-8601 version of date from HTTP: '{date}' != "
                                                 f"'{amz_date[:8]}', from '{amz_date}'.")
        skew = (signed_at - datetime.now(UTC)).total_seconds()
        if abs(skew) > MAX_CLOCK_SKEW:
            state = "expired" if skew < 0 else "not yet current"
            return "InvalidSignatureException", f"Signature {state}: {amz_date} is more than 5 min. from now."
        signed_headers = fields["SignedHeaders"].split(";")
        if "host" not in signed_headers:
            return "InvalidSignatureException", "'Host' must be a 'SignedHeader' in the AWS Authorization."
        payload_hash = headers.get("X-Amz-Content-Sha256")
        if payload_hash is None:
            payload_hash = hashlib.sha256(body).hexdigest()
        elif payload_hash != "UNSIGNED-PAYLOAD" and payload_hash != hashlib.sha256(body).hexdigest():
            return "InvalidSignatureException", "The provided 'x-amz-content-sha256' header does not match the body."
        parts = urlsplit(target)
        canonical_request = "\n".join([
            method,
            _canonical_uri(parts.path),
            _canonical_query(parts.query),
            "".join(f"{name}:{_canonical_header(headers, name)}\n" for name in signed_headers),
            fields["SignedHeaders"],
            payload_hash,
        ])
        credential_scope = f"{date}/{region}/{service}/{terminator}"
        string_to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, credential_scope,
                                    hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()])
        signing_key = ("AWS4" + secret).encode("utf-8")
        for step in (date, region, service, terminator):
            signing_key = hmac.new(signing_key, step.encode("utf-8"), hashlib.sha256).digest()
        expected = hmac.new(signing_key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, fields["Signature"]):
            return "InvalidSignatureException", (
                "The request signature we calculated does not match the signature you provided. Check your AWS "
                "Secret Access Key and signing method. Consult the service documentation for details.\n\n"
                f"The Canonical String for this request should have been\n'{canonical_request}'\n\n"
                f"The String-to-Sign should have been\n'{string_to_sign}'\n")
        return None

    @staticmethod
    def _decode(body: bytes) -> dict[str, Any]:
        if not body:
            return {}
        try:
            params = cbor2.loads(body)
        except (cbor2.CBORError, ValueError) as e:
            raise _Refused("SerializationException", f"The request body is not valid CBOR: {e}") from None
        if not isinstance(params, dict):
            raise _Refused("SerializationException", "The request body is not a CBOR map")
        return params

    # -- PutEvents

    def _put_events(self, params: dict[str, Any]) -> Answer | None:
        raw_entries = params.get("Entries")
        entries = raw_entries if isinstance(raw_entries, list) else []
        arn = params.get("EventBusArn")
        size = sum(entry_size(e) for e in entries if isinstance(e, dict))
        with self._lock:
            request = Request(len(self._requests) + 1, arn if isinstance(arn, str) else None, len(entries), size)
            self._requests.append(request)
            fault = next((f.kind for f in self.request_faults if f.hits(request.number, self._rng)), None)
            if fault is not None:
                request.fault = fault
                self._counts[f"fault:{fault}"] += 1
                spec = REQUEST_FAULTS[fault]
                if fault == "drop":
                    return None
                if spec is not None:
                    return _error(*spec)
            try:
                bus = self._check_put_events(params, entries, size)
            except _Refused as refused:
                if request.fault is None:
                    request.fault = refused.code
                self._counts[f"rejected:{refused.code}"] += 1
                answer = _error(refused.code, refused.message)
            else:
                content_based = params.get("DeduplicationConfiguration") is not None
                results = [self._publish(bus, e, content_based) for e in entries]
                failed = sum(1 for r in results if "ErrorCode" in r)
                answer = 200, {"FailedEntryCount": failed, "Entries": results}
        if fault == "lose_response":
            return None
        return answer

    def _check_put_events(self, params: dict[str, Any], entries: list[Any], size: int) -> _Bus:
        """The whole-request checks; called with the lock held."""
        arn = _check_arn(params)
        raw_entries = params.get("Entries")
        if raw_entries is None:
            raise _Refused("InvalidInputException", "1 validation error detected: Value null at 'entries' failed "
                           "to satisfy constraint: Member must not be null")
        _check_types(raw_entries, list, "Entries")
        for i, entry in enumerate(entries):
            _check_entry_types(entry, i)
        if not 1 <= len(entries) <= MAX_ENTRIES:
            raise _Refused("InvalidInputException", f"1 validation error detected: Value at 'entries' failed to "
                           f"satisfy constraint: Member must have length between 1 and {MAX_ENTRIES} "
                           f"(got {len(entries)})")
        config = params.get("DeduplicationConfiguration")
        _check_types(config, dict, "DeduplicationConfiguration")
        if config is not None and config.get("DeduplicationType") != "CONTENT_BASED":
            raise _Refused("InvalidInputException", f"DeduplicationType must be CONTENT_BASED, not "
                           f"{config.get('DeduplicationType')!r}")
        if size > MAX_REQUEST_BYTES:
            raise _Refused("InvalidInputException", f"Total size of the entries in the request is over the limit "
                           f"of {MAX_REQUEST_BYTES} bytes ({size}); no entry was published.")
        bus = self._buses.get(arn)
        if bus is None:
            raise _Refused("ResourceNotFoundException", f"Event bus {arn} does not exist.")
        return bus

    def _publish(self, bus: _Bus, entry: dict[str, Any], content_based: bool) -> dict[str, str]:
        """One entry's result; called with the lock held."""
        error = _entry_error(entry)
        if error is not None:
            self._counts[f"rejected:{error[0]}"] += 1
            return {"ErrorCode": error[0], "ErrorMessage": error[1]}
        if self.entry_fault_rate > 0 and self._rng.random() < self.entry_fault_rate:
            code = self._rng.choice(self.entry_fault_codes)
            self._counts[f"fault:{code}"] += 1
            return {"ErrorCode": code, "ErrorMessage": _ENTRY_MESSAGES.get(code, code)}
        metadata = entry.get("SystemMetadata") or {}
        dedup_id, group_id = metadata.get("DeduplicationId"), metadata.get("EventGroupId")
        detail = entry.get("Detail")
        detail = "{}" if detail is None else detail
        key = None
        if dedup_id is not None:
            key = f"id:{dedup_id}"
        elif content_based:
            key = "content:" + hashlib.sha256(
                "\0".join([entry["Source"], entry["DetailType"], detail]).encode("utf-8")).hexdigest()
        now = time.monotonic()
        # Expired ids leave from the front: the dict is in publication order (a scan of the
        # whole dict per entry made a 50,000-event backfill run at 300 events/s).
        while bus.dedup:
            first_key = next(iter(bus.dedup))
            if now - bus.dedup[first_key].at < self.dedup_window:
                break
            del bus.dedup[first_key]
        if key is not None and key in bus.dedup:
            first = bus.dedup[key]
            self._counts["deduplicated"] += 1
            result = {"EventId": first.event_id, "SuccessCode": "DEDUPLICATED"}
            if first.sequence_number is not None:
                result["SequenceNumber"] = first.sequence_number
            return result
        event_id = str(uuid.UUID(int=self._ids.getrandbits(128), version=4))
        sequence_number = None
        if group_id is not None:
            bus.sequences[group_id] += 1
            sequence_number = f"{bus.sequences[group_id]:020d}"
        when = entry.get("Time")
        self._delivered.append({
            "EventBusArn": bus.arn, "EventId": event_id, "SequenceNumber": sequence_number,
            "EventGroupId": group_id, "DeduplicationId": dedup_id, "Source": entry["Source"],
            "DetailType": entry["DetailType"], "Detail": detail, "Resources": list(entry.get("Resources") or ()),
            "Time": _iso(when if isinstance(when, datetime) else datetime.now(UTC)),
        })
        if key is not None:
            bus.dedup[key] = _Published(event_id, sequence_number, now)
        self._counts["published"] += 1
        result = {"EventId": event_id, "SuccessCode": "PUBLISHED"}
        if sequence_number is not None:
            result["SequenceNumber"] = sequence_number
        return result

    # -- bus management

    def _manage(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """The other operations; called with the lock held."""
        if operation == "CreateEventBus":
            return self._create_event_bus(params)
        if operation == "ListEventBuses":
            return self._list_event_buses(params)
        arn = _check_arn(params)
        bus = self._buses.get(arn)
        if bus is None:
            raise _Refused("ResourceNotFoundException", f"Event bus {arn} does not exist.")
        if operation == "DeleteEventBus":
            del self._buses[arn]
            return {}
        return {**self._summary(bus), "LastModifiedTime": bus.created}  # DescribeEventBus

    def _create_event_bus(self, params: dict[str, Any]) -> dict[str, Any]:
        name, token = params.get("Name"), params.get("ClientToken")
        _check_types(name, str, "Name")
        _check_types(token, str, "ClientToken")
        for member in ("Description",):
            _check_types(params.get(member), str, member)
        for member in ("EncryptionConfiguration", "StorageConfiguration", "Tags"):
            _check_types(params.get(member), dict, member)
        if name is None or not 1 <= len(name) <= 256 or not EVENT_BUS_NAME.fullmatch(name):
            raise _Refused("InvalidInputException", f"1 validation error detected: Value {name!r} at 'name' failed "
                           f"to satisfy constraint: Member must satisfy regular expression pattern: "
                           f"{EVENT_BUS_NAME.pattern}")
        description = params.get("Description")
        if description is not None and len(description) > 512:
            raise _Refused("InvalidInputException", "Description is longer than 512 characters.")
        retention = (params.get("StorageConfiguration") or {}).get("RetentionPeriodInDays")
        if retention is not None and (not isinstance(retention, int) or not 1 <= retention <= 365):
            raise _Refused("InvalidInputException", "RetentionPeriodInDays must be between 1 and 365.")
        same_token = next((b for b in self._buses.values() if token and b.client_token == token), None)
        if same_token is not None:
            if same_token.name != name:
                raise _Refused("IdempotentParameterMismatchException",
                               f"ClientToken {token} was used for another request.")
            bus = same_token
        elif self._bus_named(name) is not None:
            raise _Refused("ResourceAlreadyExistsException", f"Event bus {name} already exists.")
        else:
            bus = self._new_bus(name, client_token=token, description=description,
                                encryption=params.get("EncryptionConfiguration"),
                                storage=params.get("StorageConfiguration"), tags=dict(params.get("Tags") or {}))
        return {**self._summary(bus), "State": "CREATING"}

    def _list_event_buses(self, params: dict[str, Any]) -> dict[str, Any]:
        prefix, account = params.get("NamePrefix"), params.get("EventBusAccountId")
        limit, token = params.get("MaxResults"), params.get("NextToken")
        _check_types(prefix, str, "NamePrefix")
        _check_types(account, str, "EventBusAccountId")
        _check_types(limit, int, "MaxResults")
        _check_types(token, str, "NextToken")
        if limit is not None and not 1 <= limit <= 100:
            raise _Refused("InvalidInputException", "MaxResults must be between 1 and 100.")
        try:
            start = int(token) if token is not None else 0
        except ValueError:
            raise _Refused("InvalidInputException", f"Invalid NextToken {token!r}") from None
        buses = [b for b in self._buses.values() if (prefix is None or b.name.startswith(prefix))
                 and (account is None or account == self.account)]
        end = len(buses) if limit is None else start + limit
        answer: dict[str, Any] = {"EventBuses": [
            {**self._summary(b), "LastModifiedTime": b.created, "EventBusAccountId": self.account}
            for b in buses[start:end]]}
        if end < len(buses):
            answer["NextToken"] = str(end)
        return answer

    def _summary(self, bus: _Bus) -> dict[str, Any]:
        summary: dict[str, Any] = {"Name": bus.name, "EventBusArn": bus.arn, "State": "ACTIVE",
                                   "CreationTime": bus.created}
        if bus.description is not None:
            summary["Description"] = bus.description
        if bus.encryption is not None:
            summary["EncryptionConfiguration"] = bus.encryption
        if bus.storage is not None:
            summary["StorageConfiguration"] = bus.storage
        return summary

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


_OPERATIONS = ("PutEvents", "CreateEventBus", "DescribeEventBus", "ListEventBuses", "DeleteEventBus")


def _error(code: str, message: str) -> Answer:
    """An error answer in the form botocore parses: ``__type`` (with a namespace, as AWS sends it)
    and the message, under ``Message`` for the model's errors (their only member) and under
    ``message`` for the front end's."""
    if code in MODELED_ERRORS:
        return MODELED_ERRORS[code], {"__type": f"{MODEL_NAMESPACE}#{code}", "Message": message}
    status, namespace = FRONT_END_ERRORS[code]
    return status, {"__type": f"{namespace}#{code}", "message": message}


def _canonical_uri(path: str) -> str:
    """The received (still percent-encoded) path, normalized and encoded once more, as SigV4 wants
    for every service but S3."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    normalized = "/" + "/".join(segments) + ("/" if path.endswith("/") and segments else "")
    return quote(normalized, safe="/~")


def _canonical_query(query: str) -> str:
    pairs = []
    for pair in query.split("&") if query else ():
        key, _, value = pair.partition("=")
        pairs.append((quote(unquote(key), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _canonical_header(headers: Message, name: str) -> str:
    return ",".join(" ".join(str(v).split()) for v in headers.get_all(name) or ())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like AWS; botocore pools connections
    server: TrackedServer

    def setup(self) -> None:
        super().setup()
        # Headers and body are separate writes: without this, Nagle + delayed ACK add ~40 ms a request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != "/_local/events":
            self._serve("GET")
            return
        bus = parse_qs(parts.query).get("bus", [None])[0]
        data = json.dumps(self.server.endpoint.delivered(bus), ensure_ascii=False).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _serve(self, method: str) -> None:
        endpoint = self.server.endpoint
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        endpoint._enter()
        try:
            answer = endpoint._answer(method, self.path, self.headers, body)
            if endpoint.delay:
                time.sleep(endpoint.delay)
            if answer is None:
                self.close_connection = True  # closed without a byte of answer
                return
            status, payload = answer
            data = cbor2.dumps(payload, datetime_as_timestamp=True)
            self.send_response(status)
            self.send_header("smithy-protocol", "rpc-v2-cbor")
            self.send_header("Content-Type", "application/cbor")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            endpoint._leave()

    def log_message(self, format: str, *args: Any) -> None:
        pass


# The handler is defined after the endpoint it serves.
LocalEventBridgeV2.HANDLER = _Handler
LocalEventBridgeV2.THREAD_NAME = "eventbridgev2-endpoint"


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.eventbridgev2_endpoint",
                                     description="Serve a local EventBridge custom-event-bus API until interrupted.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bus", action="append", default=[], help="create this bus (repeatable)")
    args = parser.parse_args(argv)

    endpoint = LocalEventBridgeV2(port=args.port)
    return serve_until_signalled(endpoint, lambda: [f"# bus {name} {endpoint.create_bus(name)}" for name in args.bus])


if __name__ == "__main__":
    sys.exit(_main())
