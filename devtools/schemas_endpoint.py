"""A local Amazon EventBridge Schema Registry endpoint (boto3's ``schemas``), for tests.

moto (5.2.5) does not implement this service: it has no ``moto/schemas`` and answers every
``schemas`` call under ``mock_aws()`` with 404 "Not yet implemented". This endpoint speaks the
service's wire protocol, ``rest-json``, so botocore's own client works against it unchanged
(``endpoint_url=``, or ``AWS_ENDPOINT_URL_SCHEMAS`` in the environment). It serves CreateRegistry,
DescribeRegistry, ListRegistries, DeleteRegistry, CreateSchema, UpdateSchema, DescribeSchema,
ListSchemas, ListSchemaVersions, DeleteSchema and DeleteSchemaVersion; the model's other
operations (discoverers, code bindings, policies, tags, search, export) answer 501.

Read from botocore's service model (botocore/data/schemas/2019-12-02/service-2.json.gz, checked
with botocore 1.44.8), which this module loads at run time so that routes and shapes cannot drift:

* Each operation is ``http.method`` + ``http.requestUri`` (``/v1/registries/name/{registryName}``,
  ``.../schemas/name/{schemaName}``, ``.../versions``, ``.../version/{schemaVersion}``). botocore
  percent-encodes URI labels with ``quote(v, safe="~")``, so a label never holds a raw ``/``.
  Members with ``location: querystring`` come from the query string (``schemaVersion``, ``limit``,
  ``nextToken``, ``schemaNamePrefix``, ``registryNamePrefix``, ``scope``); the others from a JSON
  body, keyed by ``locationName`` when there is one: Tags travel as ``tags``, in and out.
* Success statuses are the model's ``responseCode``: 201 for CreateRegistry and CreateSchema, 204
  (no body) for the Delete operations, 200 for the rest.
* Timestamps are ``timestampFormat: iso8601``: ISO-8601 strings in UTC, sent here with
  milliseconds (``2026-01-02T03:04:05.123Z``).
* The model's constraints are all there is: Description 0..256, Content 1..100000, ClientTokenId
  0..36, Type one of ``OpenApi3``/``JSONSchemaDraft4``. botocore checks only required members and
  minima before sending, so a bad Type, a long Description or Content arrive here and are answered
  BadRequestException (400).
* Errors: every modeled error shape has members ``Code`` and ``Message`` and an
  ``error.httpStatusCode`` (``MODELED_ERRORS``). botocore's RestJSONParser takes the code from the
  ``x-amzn-ErrorType`` header when there is one, else from the body's ``Code``; the message from
  the body's ``message`` or ``Message``. Error answers here carry both.
* UpdateSchema's ``ClientTokenId`` is an idempotency token: botocore puts a fresh uuid4 in every
  call and resends the same one when it retries, so a token seen before gets the first answer again
  and makes no second version.

Not in the model, so chosen (and said to the caller as such):

* Names: both RegistryName and SchemaName are plain ``__string`` in the model, with no length or
  pattern. This endpoint applies the limits of the Terraform AWS provider's resources (registry:
  1..64 of ``[.\\-_A-Za-z0-9]``; schema: 1..385 of ``[.\\-_A-Za-z0-9@]``), which are not AWS's
  documented rules; a name outside them is BadRequestException.
* Content: it must parse as JSON (no NaN/Infinity); a JSONSchemaDraft4 schema must be a JSON
  object; an OpenApi3 schema must be an object with an ``openapi`` string and a
  ``components.schemas`` object. AWS validates more than that (whole documents); not reproduced.
* Versions are "1", "2", ... per schema, never reused after DeleteSchemaVersion. UpdateSchema makes
  a new version only when the Content or the Type differs from the latest version's (the Content
  compared as a string); otherwise it answers 200 with the latest version unchanged. The REST API
  reference lists a 304 answer for UpdateSchema that the model does not; ``unchanged_update=304``
  answers that instead (botocore turns it into a ClientError whose code is "304").
* DeleteSchemaVersion refuses to delete a schema's only version (BadRequestException; delete the
  schema). DeleteRegistry deletes the registry's schemas with it (the model lists no
  ConflictException for it). CreateSchema into a missing registry is NotFoundException and
  CreateSchema of an existing schema is ConflictException, though the model lists neither for it;
  ListSchemas of a missing registry is NotFoundException likewise.
* Lists are in name order (versions in number order); NextToken is an offset. ListRegistries
  lists only the registries made here: AWS would add its own (``aws.events``,
  ``discovered-schemas``), which ``Scope=AWS`` selects; here that list is empty.
* Authentication, as AWS's front end answers rest-json services, all 403 with the code in
  ``x-amzn-ErrorType`` and ``{"message": ...}``: MissingAuthenticationTokenException without an
  Authorization header, IncompleteSignatureException for a malformed one,
  UnrecognizedClientException for an unknown access key, InvalidSignatureException for a wrong
  signature, a scope other than ``<date>/<region>/schemas/aws4_request``, or a clock skewed by more
  than 5 minutes. The signature is verified (SigV4, ``sigv4_error``) when the endpoint knows the
  secret key; with ``credentials=None`` any access key is taken and only the header's form and
  scope are checked. A signed request to no route is 404 UnknownOperationException.

Usage::

    with LocalSchemaRegistry(credentials={"x": "y"}) as ep:
        client = boto3.client("schemas", endpoint_url=ep.endpoint_url, region_name="us-east-1",
                              aws_access_key_id="x", aws_secret_access_key="y")
        ...
        ep.registries                         # {name: ARN}
        ep.versions("registry", "schema")     # [SchemaVersion(version, type, content, created)]
        ep.content("registry", "schema")      # the latest version's Content (or version="1")
        ep.calls                              # every request: Call(method, path, operation, status, code)

Command line: ``python -m devtools.schemas_endpoint [--port N] [--registry NAME ...]`` prints
``export`` lines and each registry's ARN, and serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from functools import cache
from http.server import BaseHTTPRequestHandler
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from botocore.loaders import Loader

# The canonical-request pieces of SigV4 are shared with the Custom Event Bus endpoint, so that
# both endpoints check botocore's signatures the same way. Its verifier itself is a method tied
# to the signing name "events", hence the small sigv4_error below.
from devtools.eventbridgev2_endpoint import (
    DEFAULT_CREDENTIALS,
    MAX_CLOCK_SKEW,
    _canonical_header,
    _canonical_query,
    _canonical_uri,
)
from devtools.local_server import ServedEndpoint, TrackedServer, serve_until_signalled

SERVICE = "schemas"
API_VERSION = "2019-12-02"
SIGNING_NAME = "schemas"  # the model's signingName, the service in the credential scope
OPERATIONS = ("CreateRegistry", "DescribeRegistry", "ListRegistries", "DeleteRegistry", "CreateSchema",
              "UpdateSchema", "DescribeSchema", "ListSchemas", "ListSchemaVersions", "DeleteSchema",
              "DeleteSchemaVersion")
SCHEMA_TYPES = ("OpenApi3", "JSONSchemaDraft4")

# From the service model: error shape -> error.httpStatusCode (a test compares this with the model).
MODELED_ERRORS: Mapping[str, int] = MappingProxyType({
    "BadRequestException": 400,
    "UnauthorizedException": 401,
    "ForbiddenException": 403,
    "NotFoundException": 404,
    "ConflictException": 409,
    "GoneException": 410,
    "PreconditionFailedException": 412,
    "TooManyRequestsException": 429,
    "InternalServerErrorException": 500,
    "ServiceUnavailableException": 503,
})
# Errors of AWS's front end and of routing, not in the model: code -> HTTP status.
FRONT_END_ERRORS: Mapping[str, int] = MappingProxyType({
    "MissingAuthenticationTokenException": 403,
    "IncompleteSignatureException": 403,
    "InvalidSignatureException": 403,
    "UnrecognizedClientException": 403,
    "UnknownOperationException": 404,
    "NotImplementedException": 501,  # an operation of the model this endpoint does not serve
})

# Not in the model (both names are plain strings there): the Terraform AWS provider's limits.
REGISTRY_NAME = re.compile(r"[.\-_A-Za-z0-9]+")
MAX_REGISTRY_NAME = 64
SCHEMA_NAME = re.compile(r"[.\-_A-Za-z0-9@]+")
MAX_SCHEMA_NAME = 385


@dataclass(frozen=True)
class SchemaVersion:
    """One version of a schema, as stored."""

    version: str
    type: str
    content: str
    created: datetime


@dataclass(frozen=True)
class Call:
    """A request as answered: the operation is None when no route matched or authentication failed."""

    method: str
    path: str
    operation: str | None
    status: int
    code: str | None  # the error code, None on success


@dataclass
class _Schema:
    name: str
    arn: str
    description: str | None
    tags: dict[str, str]
    versions: dict[str, SchemaVersion]  # by version, in creation order
    last_modified: datetime
    next_version: int = 2
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)  # ClientTokenId -> first answer

    @property
    def latest(self) -> SchemaVersion:
        return self.versions[max(self.versions, key=int)]


@dataclass
class _Registry:
    name: str
    arn: str
    description: str | None
    tags: dict[str, str]
    schemas: dict[str, _Schema] = field(default_factory=dict)


class _Refused(Exception):
    """A request refused with a modeled or front-end error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class _Route:
    operation: str
    method: str
    pattern: re.Pattern[str]
    status: int
    input: str | None
    output: str | None


@cache
def service_model() -> dict[str, Any]:
    """botocore's service model for ``schemas``, as its JSON (the installed botocore's version)."""
    model: dict[str, Any] = Loader().load_service_model(SERVICE, "service-2", API_VERSION)
    return model


@cache
def _routes() -> tuple[_Route, ...]:
    """Every operation of the model; routes with fewer labels first, so that a literal segment wins."""
    routes = []
    for name, op in service_model()["operations"].items():
        uri = op["http"]["requestUri"]
        regex = re.sub(r"\\\{([A-Za-z0-9_]+)\\\}", r"(?P<\1>[^/]*)", re.escape(uri))
        routes.append(_Route(name, op["http"]["method"], re.compile(regex), int(op["http"].get("responseCode", 200)),
                             op.get("input", {}).get("shape"), op.get("output", {}).get("shape")))
    return tuple(sorted(routes, key=lambda r: r.pattern.pattern.count("(?P<")))


def _shape(name: str) -> dict[str, Any]:
    shape: dict[str, Any] = service_model()["shapes"][name]
    return shape


def _now() -> datetime:
    # Milliseconds: what goes on the wire, so that the stored and the answered moments are equal.
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def content_error(content: str, schema_type: str) -> str | None:
    """Why ``content`` is not a schema of ``schema_type``, or None when it is one."""
    try:
        document = json.loads(content, parse_constant=_reject_constant)
    except ValueError as e:
        return f"Content is not valid JSON: {e}"
    if not isinstance(document, dict):
        return f"Content of a {schema_type} schema must be a JSON object, not {type(document).__name__}."
    if schema_type == "OpenApi3":
        if not isinstance(document.get("openapi"), str):
            return "Content of an OpenApi3 schema must have an 'openapi' version string."
        components = document.get("components")
        if not isinstance(components, dict) or not isinstance(components.get("schemas"), dict):
            return "Content of an OpenApi3 schema must have a 'components.schemas' object."
    return None


def _check_value(member: str, shape_name: str, value: Any) -> None:
    """The model's type, length and enum constraints of one input member."""
    shape = _shape(shape_name)
    kind = shape["type"]
    if kind == "string":
        if not isinstance(value, str):
            raise _Refused("BadRequestException", f"{member} must be a string, not {type(value).__name__}.")
        if "min" in shape and len(value) < shape["min"]:
            raise _Refused("BadRequestException", f"{member} must be at least {shape['min']} characters long.")
        if "max" in shape and len(value) > shape["max"]:
            raise _Refused("BadRequestException",
                           f"{member} must be at most {shape['max']} characters long (got {len(value)}).")
        if "enum" in shape and value not in shape["enum"]:
            raise _Refused("BadRequestException", f"{member} must be one of {', '.join(shape['enum'])}, not {value!r}.")
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Refused("BadRequestException", f"{member} must be an integer.")
    elif kind == "map" and not (isinstance(value, dict)
                                and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())):
        raise _Refused("BadRequestException", f"{member} must be a map of strings to strings.")


def _parse_input(route: _Route, labels: Mapping[str, str], query: str, body: bytes) -> dict[str, Any]:
    """The operation's input, keyed by member name, from the URI, the query string and the JSON body."""
    if route.input is None:
        return {}
    shape = _shape(route.input)
    queried = parse_qs(query, keep_blank_values=True)
    document: Any = {}
    if body.strip():
        try:
            document = json.loads(body)
        except ValueError as e:
            raise _Refused("BadRequestException", f"The request body is not valid JSON: {e}") from None
        if not isinstance(document, dict):
            raise _Refused("BadRequestException", "The request body must be a JSON object.")
    params: dict[str, Any] = {}
    for member, spec in shape["members"].items():
        wire_name = spec.get("locationName", member)
        location = spec.get("location")
        value: Any
        if location == "uri":
            value = unquote(labels[wire_name])
        elif location == "querystring":
            values = queried.get(wire_name)
            value = values[-1] if values else None
            if value is not None and _shape(spec["shape"])["type"] in ("integer", "long"):
                try:
                    value = int(value)
                except ValueError:
                    raise _Refused("BadRequestException", f"{member} must be an integer, not {value!r}.") from None
        else:
            value = document.get(wire_name)
        if value is None:
            continue
        _check_value(member, spec["shape"], value)
        params[member] = value
    for member in shape.get("required", ()):
        if params.get(member) in (None, ""):
            raise _Refused("BadRequestException", f"{member} is required.")
    return params


def _to_wire(shape_name: str, value: Any) -> Any:
    """An output value as JSON: members under their locationName, timestamps as ISO-8601 strings."""
    shape = _shape(shape_name)
    kind = shape["type"]
    if kind == "structure":
        out = {}
        for member, spec in shape["members"].items():
            if value.get(member) is not None:
                out[spec.get("locationName", member)] = _to_wire(spec["shape"], value[member])
        return out
    if kind == "list":
        return [_to_wire(shape["member"]["shape"], v) for v in value]
    if kind == "timestamp":
        return _iso(value)
    return value


def sigv4_error(method: str, target: str, headers: Message, body: bytes, *,
                credentials: Mapping[str, str] | None, region: str,
                service: str = SIGNING_NAME) -> tuple[str, str] | None:
    """(code, message) when the request's SigV4 Authorization header is missing, malformed, scoped
    to another service or region, or (with ``credentials``) signed with another key; else None."""
    authorization = headers.get("Authorization")
    if not authorization:
        return "MissingAuthenticationTokenException", "Missing Authentication Token"
    algorithm, _, rest = authorization.strip().partition(" ")
    if algorithm != "AWS4-HMAC-SHA256":
        return "IncompleteSignatureException", f"Unsupported AWS 'algorithm': '{algorithm}'"
    fields = {}
    for part in rest.split(","):
        key, sep, value = part.strip().partition("=")
        if sep:
            fields[key] = value
    for required in ("Credential", "SignedHeaders", "Signature"):
        if required not in fields:
            return "IncompleteSignatureException", f"Authorization header requires '{required}' parameter."
    scope = fields["Credential"].split("/")
    if len(scope) != 5:
        return "IncompleteSignatureException", f"Credential should have 5 parts: {fields['Credential']!r}"
    access_key, date, scope_region, scope_service, terminator = scope
    secret = None if credentials is None else credentials.get(access_key)
    if credentials is not None and secret is None:
        return "UnrecognizedClientException", "The security token included in the request is invalid."
    if terminator != "aws4_request":
        return "InvalidSignatureException", f"Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
    if scope_service != service:
        return "InvalidSignatureException", f"Credential should be scoped to correct service: '{service}'."
    if scope_region != region:
        return "InvalidSignatureException", f"Credential should be scoped to a valid region, not '{scope_region}'."
    amz_date = headers.get("X-Amz-Date") or ""
    try:
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "IncompleteSignatureException", "Authorization header requires existence of a valid 'X-Amz-Date' header."
    if date != amz_date[:8]:
        return "InvalidSignatureException", f"Date in Credential scope does not match YYYYMMDD from X-Amz-Date: '{date}' != '{amz_date[:8]}'."
    if abs((signed_at - datetime.now(UTC)).total_seconds()) > MAX_CLOCK_SKEW:
        return "InvalidSignatureException", f"Signature expired or not yet current: {amz_date} is more than 5 min. from now."
    signed_headers = fields["SignedHeaders"].split(";")
    if "host" not in signed_headers:
        return "InvalidSignatureException", "'Host' must be a 'SignedHeader' in the AWS Authorization."
    if secret is None:
        return None  # credentials=None: any key, the signature is not recomputed
    # botocore sends no x-amz-content-sha256 for this service: the payload hash is the body's.
    payload_hash = headers.get("X-Amz-Content-Sha256") or hashlib.sha256(body).hexdigest()
    parts = urlsplit(target)
    canonical_request = "\n".join([
        method, _canonical_uri(parts.path), _canonical_query(parts.query),
        "".join(f"{name}:{_canonical_header(headers, name)}\n" for name in signed_headers),
        fields["SignedHeaders"], payload_hash,
    ])
    string_to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, "/".join(scope[1:]),
                                hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()])
    key_bytes = ("AWS4" + secret).encode("utf-8")
    for step in scope[1:]:
        key_bytes = hmac.new(key_bytes, step.encode("utf-8"), hashlib.sha256).digest()
    expected = hmac.new(key_bytes, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields["Signature"]):
        return "InvalidSignatureException", (
            "The request signature we calculated does not match the signature you provided.\n\n"
            f"The Canonical String for this request should have been\n'{canonical_request}'\n\n"
            f"The String-to-Sign should have been\n'{string_to_sign}'\n")
    return None


def _page(items: list[Any], params: Mapping[str, Any]) -> tuple[list[Any], str | None]:
    """One page of ``items`` by Limit and NextToken (an offset here)."""
    limit, token = params.get("Limit"), params.get("NextToken")
    if limit is not None and limit < 1:
        raise _Refused("BadRequestException", f"Limit must be at least 1, not {limit}.")
    try:
        start = int(token) if token is not None else 0
    except ValueError:
        raise _Refused("BadRequestException", f"Invalid NextToken {token!r}.") from None
    if not 0 <= start <= len(items):
        raise _Refused("BadRequestException", f"Invalid NextToken {token!r}.")
    end = len(items) if limit is None else min(start + limit, len(items))
    return items[start:end], (str(end) if end < len(items) else None)


class LocalSchemaRegistry(ServedEndpoint):
    """The ``schemas`` API on 127.0.0.1 (a free port unless ``port``); see the module docstring.

    ``credentials`` maps access keys to secret keys and signatures are verified against them;
    ``None`` takes any access key without recomputing the signature. ``unchanged_update`` is the
    status of an UpdateSchema that changes nothing: 200 (the latest version) or 304.
    """

    def __init__(self, *, region: str = "us-east-1", account: str = "123456789012",
                 credentials: Mapping[str, str] | None = DEFAULT_CREDENTIALS, unchanged_update: int = 200,
                 port: int = 0) -> None:
        if unchanged_update not in (200, 304):
            raise ValueError(f"unchanged_update must be 200 or 304, not {unchanged_update}")
        self.region = region
        self.account = account
        self.credentials = None if credentials is None else dict(credentials)
        self.unchanged_update = unchanged_update
        self.port = port
        self._lock = threading.Lock()
        self._registries: dict[str, _Registry] = {}
        self._calls: list[Call] = []

    # -- lifecycle: devtools.local_server.ServedEndpoint

    def env(self) -> dict[str, str]:
        """Variables for a process whose boto3 ``schemas`` clients should come here: botocore reads
        ``AWS_ENDPOINT_URL_SCHEMAS`` for clients made without ``endpoint_url``."""
        key, secret = next(iter(self.credentials.items())) if self.credentials else ("testing", "testing")
        return {"AWS_ENDPOINT_URL_SCHEMAS": self.endpoint_url, "AWS_ACCESS_KEY_ID": key,
                "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": self.region}

    # -- state, for tests (snapshots, safe to read while requests run)

    def create_registry(self, name: str, description: str | None = None) -> str:
        """Create the registry ``name`` unless it exists; its ARN. ValueError for a bad name."""
        with self._lock:
            if name not in self._registries:
                self._seed(lambda: self._create_registry({"RegistryName": name, "Description": description}))
            return self._registries[name].arn

    def put_schema(self, registry: str, name: str, content: str, schema_type: str = "JSONSchemaDraft4") -> str:
        """Create the schema or update it, as CreateSchema/UpdateSchema would; the latest version."""
        if schema_type not in SCHEMA_TYPES:
            raise ValueError(f"schema_type must be one of {', '.join(SCHEMA_TYPES)}, not {schema_type!r}")
        params = {"RegistryName": registry, "SchemaName": name, "Content": content, "Type": schema_type}

        def put() -> dict[str, Any]:
            if name in self._registry(registry).schemas:
                return self._update_schema(params)[1]
            return self._create_schema(params)

        with self._lock:
            return str(self._seed(put)["SchemaVersion"])

    @property
    def registries(self) -> dict[str, str]:
        """Name -> ARN of every registry, in name order."""
        with self._lock:
            return {name: self._registries[name].arn for name in sorted(self._registries)}

    def schemas(self, registry: str) -> dict[str, str]:
        """Name -> ARN of the registry's schemas, in name order; KeyError for no such registry."""
        with self._lock:
            found = self._registries[registry].schemas
            return {name: found[name].arn for name in sorted(found)}

    def versions(self, registry: str, schema: str) -> list[SchemaVersion]:
        """The schema's versions, oldest first; KeyError for no such registry or schema."""
        with self._lock:
            found = self._registries[registry].schemas[schema].versions
            return [found[v] for v in sorted(found, key=int)]

    def content(self, registry: str, schema: str, version: str | None = None) -> str:
        """A version's Content, the latest by default; KeyError when there is none."""
        with self._lock:
            found = self._registries[registry].schemas[schema]
            return (found.latest if version is None else found.versions[version]).content

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    @staticmethod
    def _seed(action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Runs an operation for the helpers above, its refusal as ValueError; the lock is held."""
        try:
            answer = action()
        except _Refused as refused:
            raise ValueError(f"{refused.code}: {refused.message}") from None
        return answer

    # -- serving

    def _answer(self, method: str, target: str, headers: Message, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """(HTTP status, headers, body) for one request."""
        parts = urlsplit(target)
        operation: str | None = None
        try:
            auth_error = sigv4_error(method, target, headers, body, credentials=self.credentials, region=self.region)
            if auth_error is not None:
                raise _Refused(*auth_error)
            route, labels = self._route(method, parts.path)
            operation = route.operation
            if operation not in OPERATIONS:
                raise _Refused("NotImplementedException",
                               f"{operation} is in the service model but not served by this local endpoint.")
            params = _parse_input(route, labels, parts.query, body)
            with self._lock:
                status, result = self._operate(operation, route, params)
            data = b"" if status in (204, 304) else json.dumps(
                _to_wire(route.output, result) if route.output else {}).encode("utf-8")
            answer = status, {"Content-Type": "application/json"} if data else {}, data
            code = None
        except _Refused as refused:
            code = refused.code
            if code in MODELED_ERRORS:
                status, payload = MODELED_ERRORS[code], {"Code": code, "Message": refused.message}
            else:  # the front end's form: a lowercase message
                status, payload = FRONT_END_ERRORS[code], {"message": refused.message}
            answer = status, {"Content-Type": "application/json", "x-amzn-ErrorType": code}, \
                json.dumps(payload).encode("utf-8")
        with self._lock:
            self._calls.append(Call(method, parts.path, operation, answer[0], code))
        return answer

    @staticmethod
    def _route(method: str, path: str) -> tuple[_Route, dict[str, str]]:
        for route in _routes():
            match = route.pattern.fullmatch(path)
            if match and route.method == method and all(match.groupdict().values()):
                return route, match.groupdict()
        raise _Refused("UnknownOperationException", f"No operation at {method} {path}")

    def _operate(self, operation: str, route: _Route, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """(status, output by member name); called with the lock held."""
        if operation == "UpdateSchema":
            return self._update_schema(params)
        handler = {
            "CreateRegistry": self._create_registry, "DescribeRegistry": self._describe_registry,
            "ListRegistries": self._list_registries, "DeleteRegistry": self._delete_registry,
            "CreateSchema": self._create_schema, "DescribeSchema": self._describe_schema,
            "ListSchemas": self._list_schemas, "ListSchemaVersions": self._list_schema_versions,
            "DeleteSchema": self._delete_schema, "DeleteSchemaVersion": self._delete_schema_version,
        }[operation]
        return route.status, handler(params)

    # -- registries (all called with the lock held)

    def _registry(self, name: str) -> _Registry:
        registry = self._registries.get(name)
        if registry is None:
            raise _Refused("NotFoundException", f"Registry {name} does not exist.")
        return registry

    @staticmethod
    def _registry_out(registry: _Registry) -> dict[str, Any]:
        return {"RegistryName": registry.name, "RegistryArn": registry.arn, "Description": registry.description,
                "Tags": dict(registry.tags)}

    def _create_registry(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["RegistryName"]
        if not (len(name) <= MAX_REGISTRY_NAME and REGISTRY_NAME.fullmatch(name)):
            raise _Refused("BadRequestException", f"Invalid RegistryName {name!r}: at most {MAX_REGISTRY_NAME} "
                           f"letters, digits, '.', '-' or '_'.")
        if name in self._registries:
            raise _Refused("ConflictException", f"Registry {name} already exists.")
        arn = f"arn:aws:schemas:{self.region}:{self.account}:registry/{name}"
        registry = self._registries[name] = _Registry(name, arn, params.get("Description"),
                                                      dict(params.get("Tags") or {}))
        return self._registry_out(registry)

    def _describe_registry(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._registry_out(self._registry(params["RegistryName"]))

    def _list_registries(self, params: dict[str, Any]) -> dict[str, Any]:
        scope, prefix = params.get("Scope"), params.get("RegistryNamePrefix") or ""
        if scope not in (None, "Local", "AWS"):
            raise _Refused("BadRequestException", f"Scope must be Local or AWS, not {scope!r}.")
        found = [] if scope == "AWS" else [self._registries[n] for n in sorted(self._registries) if n.startswith(prefix)]
        page, token = _page(found, params)
        return {"Registries": [{"RegistryName": r.name, "RegistryArn": r.arn, "Tags": dict(r.tags)} for r in page],
                "NextToken": token}

    def _delete_registry(self, params: dict[str, Any]) -> dict[str, Any]:
        del self._registries[self._registry(params["RegistryName"]).name]  # its schemas go with it
        return {}

    # -- schemas (all called with the lock held)

    def _schema(self, params: Mapping[str, Any]) -> _Schema:
        registry = self._registry(params["RegistryName"])
        schema = registry.schemas.get(params["SchemaName"])
        if schema is None:
            raise _Refused("NotFoundException", f"Schema {params['SchemaName']} does not exist in registry "
                           f"{registry.name}.")
        return schema

    @staticmethod
    def _schema_out(schema: _Schema, version: SchemaVersion) -> dict[str, Any]:
        return {"SchemaName": schema.name, "SchemaArn": schema.arn, "Description": schema.description,
                "Tags": dict(schema.tags), "Type": version.type, "SchemaVersion": version.version,
                "VersionCreatedDate": version.created, "LastModified": schema.last_modified}

    @staticmethod
    def _check_content(content: str, schema_type: str) -> None:
        error = content_error(content, schema_type)
        if error is not None:
            raise _Refused("BadRequestException", error)

    def _create_schema(self, params: dict[str, Any]) -> dict[str, Any]:
        registry = self._registry(params["RegistryName"])
        name = params["SchemaName"]
        if not (len(name) <= MAX_SCHEMA_NAME and SCHEMA_NAME.fullmatch(name)):
            raise _Refused("BadRequestException", f"Invalid SchemaName {name!r}: at most {MAX_SCHEMA_NAME} "
                           f"letters, digits, '.', '-', '_' or '@'.")
        if name in registry.schemas:
            raise _Refused("ConflictException", f"Schema {name} already exists in registry {registry.name}.")
        self._check_content(params["Content"], params["Type"])
        now = _now()
        version = SchemaVersion("1", params["Type"], params["Content"], now)
        schema = registry.schemas[name] = _Schema(
            name, f"arn:aws:schemas:{self.region}:{self.account}:schema/{registry.name}/{name}",
            params.get("Description"), dict(params.get("Tags") or {}), {"1": version}, now)
        return self._schema_out(schema, version)

    def _update_schema(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        schema = self._schema(params)
        token = params.get("ClientTokenId")
        if token and token in schema.tokens:
            return 200, schema.tokens[token]  # botocore's retry of a call already answered
        latest = schema.latest
        schema_type = params.get("Type", latest.type)
        content = params.get("Content", latest.content)
        if "Content" in params or "Type" in params:
            self._check_content(content, schema_type)
        changed = False
        if (content, schema_type) != (latest.content, latest.type):
            number = str(schema.next_version)
            schema.next_version += 1
            latest = schema.versions[number] = SchemaVersion(number, schema_type, content, _now())
            changed = True
        if "Description" in params and params["Description"] != schema.description:
            schema.description = params["Description"]
            changed = True
        if changed:
            schema.last_modified = _now()
        answer = self._schema_out(schema, latest)
        if token:
            schema.tokens[token] = answer
        return (200 if changed else self.unchanged_update), answer

    def _describe_schema(self, params: dict[str, Any]) -> dict[str, Any]:
        schema = self._schema(params)
        wanted = params.get("SchemaVersion")
        version = schema.latest if wanted is None else schema.versions.get(wanted)
        if version is None:
            raise _Refused("NotFoundException", f"Version {wanted} of schema {schema.name} does not exist.")
        return {**self._schema_out(schema, version), "Content": version.content}

    def _list_schemas(self, params: dict[str, Any]) -> dict[str, Any]:
        registry = self._registry(params["RegistryName"])
        prefix = params.get("SchemaNamePrefix") or ""
        found = [registry.schemas[n] for n in sorted(registry.schemas) if n.startswith(prefix)]
        page, token = _page(found, params)
        return {"Schemas": [{"SchemaName": s.name, "SchemaArn": s.arn, "LastModified": s.last_modified,
                             "VersionCount": len(s.versions), "Tags": dict(s.tags)} for s in page],
                "NextToken": token}

    def _list_schema_versions(self, params: dict[str, Any]) -> dict[str, Any]:
        schema = self._schema(params)
        page, token = _page([schema.versions[v] for v in sorted(schema.versions, key=int)], params)
        return {"SchemaVersions": [{"SchemaName": schema.name, "SchemaArn": schema.arn,
                                    "SchemaVersion": v.version, "Type": v.type} for v in page],
                "NextToken": token}

    def _delete_schema(self, params: dict[str, Any]) -> dict[str, Any]:
        schema = self._schema(params)
        del self._registries[params["RegistryName"]].schemas[schema.name]
        return {}

    def _delete_schema_version(self, params: dict[str, Any]) -> dict[str, Any]:
        schema = self._schema(params)
        wanted = params["SchemaVersion"]
        if wanted not in schema.versions:
            raise _Refused("NotFoundException", f"Version {wanted} of schema {schema.name} does not exist.")
        if len(schema.versions) == 1:
            raise _Refused("BadRequestException", f"Version {wanted} is the only version of schema {schema.name}; "
                           f"delete the schema instead.")
        del schema.versions[wanted]
        return {}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like AWS; botocore pools connections
    server: TrackedServer

    def setup(self) -> None:
        super().setup()
        # Headers and body are separate writes: without this, Nagle + delayed ACK add ~40 ms a request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, headers, data = self.server.endpoint._answer(method, self.path, self.headers, body)
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


# The handler is defined after the endpoint it serves.
LocalSchemaRegistry.HANDLER = _Handler
LocalSchemaRegistry.THREAD_NAME = "schemas-endpoint"


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.schemas_endpoint",
                                     description="Serve a local EventBridge Schema Registry API until interrupted.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--registry", action="append", default=[], help="create this registry (repeatable)")
    args = parser.parse_args(argv)

    endpoint = LocalSchemaRegistry(port=args.port)
    return serve_until_signalled(endpoint, lambda: [f"# registry {name} {endpoint.create_registry(name)}" for name in args.registry])


if __name__ == "__main__":
    sys.exit(_main())
