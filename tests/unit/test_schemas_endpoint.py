"""The local EventBridge Schema Registry endpoint, through botocore's own ``schemas`` client."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import botocore.session
import pytest
from botocore import UNSIGNED
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from devtools.schemas_endpoint import (
    MODELED_ERRORS,
    OPERATIONS,
    SIGNING_NAME,
    LocalSchemaRegistry,
    content_error,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DRAFT4 = json.dumps({"$schema": "http://json-schema.org/draft-04/schema#", "type": "object",
                     "properties": {"id": {"type": "string"}}})
DRAFT4_V2 = json.dumps({"$schema": "http://json-schema.org/draft-04/schema#", "type": "object",
                        "properties": {"id": {"type": "string"}, "total": {"type": "number"}}})
OPENAPI = json.dumps({"openapi": "3.0.0", "info": {"title": "Order", "version": "1.0.0"}, "paths": {},
                      "components": {"schemas": {"Order": {"type": "object"}}}})


@cache
def _session() -> botocore.session.Session:
    # Keeps the developer's ~/.aws files and AWS_PROFILE out of the clients.
    return botocore.session.Session(session_vars={
        "profile": (None, None, None, None),
        "config_file": (None, None, os.devnull, None),
        "credentials_file": (None, None, os.devnull, None),
    })


def client(ep: LocalSchemaRegistry, *, key: str = "x", secret: str = "y", region: str = "us-east-1",
           config: Config | None = None) -> Any:
    session = boto3.session.Session(aws_access_key_id=key, aws_secret_access_key=secret, region_name=region,
                                    botocore_session=_session())
    # One attempt: a retried request would hide what the endpoint answered first.
    base = Config(retries={"total_max_attempts": 1, "mode": "standard"})
    return session.client("schemas", endpoint_url=ep.endpoint_url, config=base.merge(config) if config else base)


@pytest.fixture
def ep() -> Iterator[LocalSchemaRegistry]:
    with LocalSchemaRegistry(credentials={"x": "y"}) as endpoint:
        yield endpoint


def error_of(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[str, int]:
    return exc.value.response["Error"]["Code"], exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def recent(moment: dt.datetime) -> bool:
    return abs((moment - dt.datetime.now(dt.UTC)).total_seconds()) < 60


def test_wire_constants_and_error_statuses_are_the_service_models() -> None:
    model = _session().get_service_model("schemas")
    assert (model.protocol, model.signing_name) == ("rest-json", SIGNING_NAME)
    statuses = {name: model.shape_for(name).metadata["error"]["httpStatusCode"] for name in model.shape_names
                if model.shape_for(name).metadata.get("exception")}
    assert statuses == dict(MODELED_ERRORS)
    assert set(OPERATIONS) <= set(model.operation_names)
    assert model.operation_model("CreateSchema").http == {
        "method": "POST", "requestUri": "/v1/registries/name/{registryName}/schemas/name/{schemaName}",
        "responseCode": 201}


def test_registries_are_created_described_listed_and_deleted(ep: LocalSchemaRegistry) -> None:
    sc = client(ep)
    created = sc.create_registry(RegistryName="orders", Description="the orders", Tags={"team": "data"})
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert (created["RegistryName"], created["RegistryArn"], created["Description"], created["Tags"]) == (
        "orders", "arn:aws:schemas:us-east-1:123456789012:registry/orders", "the orders", {"team": "data"})
    with pytest.raises(sc.exceptions.ConflictException) as exc:
        sc.create_registry(RegistryName="orders")
    assert error_of(exc) == ("ConflictException", 409)
    assert exc.value.response["Message"] == "Registry orders already exists."  # the modeled member, parsed

    described = sc.describe_registry(RegistryName="orders")
    assert (described["RegistryArn"], described["Description"], described["Tags"]) == (
        created["RegistryArn"], "the orders", {"team": "data"})
    sc.create_registry(RegistryName="payments")
    sc.create_registry(RegistryName="orders-archive")
    assert [r["RegistryName"] for r in sc.list_registries()["Registries"]] == ["orders", "orders-archive", "payments"]
    assert [r["RegistryName"] for r in sc.list_registries(RegistryNamePrefix="orders")["Registries"]] == [
        "orders", "orders-archive"]
    pages = list(sc.get_paginator("list_registries").paginate(PaginationConfig={"PageSize": 2}))
    assert [[r["RegistryName"] for r in p["Registries"]] for p in pages] == [["orders", "orders-archive"],
                                                                            ["payments"]]
    assert sc.list_registries(Scope="AWS")["Registries"] == []
    assert ep.registries == {"orders": created["RegistryArn"],
                             "orders-archive": "arn:aws:schemas:us-east-1:123456789012:registry/orders-archive",
                             "payments": "arn:aws:schemas:us-east-1:123456789012:registry/payments"}

    deleted = sc.delete_registry(RegistryName="orders")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(sc.exceptions.NotFoundException) as exc:
        sc.describe_registry(RegistryName="orders")
    assert error_of(exc) == ("NotFoundException", 404)
    with pytest.raises(sc.exceptions.NotFoundException):
        sc.delete_registry(RegistryName="orders")
    assert set(ep.registries) == {"orders-archive", "payments"}


def test_a_schema_is_created_and_described_with_awss_shapes(ep: LocalSchemaRegistry) -> None:
    sc = client(ep)
    sc.create_registry(RegistryName="orders")
    name = "com.example@Order-Created_v1"  # '@' is percent-encoded in the path, and signed so
    content = json.dumps({"type": "object", "description": "東京 ✓"}, ensure_ascii=False)
    created = sc.create_schema(RegistryName="orders", SchemaName=name, Type="JSONSchemaDraft4", Content=content,
                               Description="an order", Tags={"k": "v"})
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    arn = f"arn:aws:schemas:us-east-1:123456789012:schema/orders/{name}"
    assert (created["SchemaArn"], created["SchemaName"], created["SchemaVersion"], created["Type"],
            created["Description"], created["Tags"]) == (arn, name, "1", "JSONSchemaDraft4", "an order", {"k": "v"})
    assert recent(created["LastModified"]) and created["VersionCreatedDate"] == created["LastModified"]

    described = sc.describe_schema(RegistryName="orders", SchemaName=name)
    assert described["Content"] == content
    assert {k: described[k] for k in ("SchemaArn", "SchemaName", "SchemaVersion", "Type", "LastModified",
                                      "VersionCreatedDate", "Description", "Tags")} == {
        k: created[k] for k in ("SchemaArn", "SchemaName", "SchemaVersion", "Type", "LastModified",
                                "VersionCreatedDate", "Description", "Tags")}
    assert ep.schemas("orders") == {name: arn}
    assert ep.content("orders", name) == content

    with pytest.raises(botocore.exceptions.ClientError) as exc:
        sc.create_schema(RegistryName="orders", SchemaName=name, Type="JSONSchemaDraft4", Content=DRAFT4)
    assert error_of(exc) == ("ConflictException", 409)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        sc.create_schema(RegistryName="nowhere", SchemaName="s", Type="JSONSchemaDraft4", Content=DRAFT4)
    assert error_of(exc) == ("NotFoundException", 404)
    openapi = sc.create_schema(RegistryName="orders", SchemaName="Order", Type="OpenApi3", Content=OPENAPI)
    assert (openapi["SchemaVersion"], openapi["Type"]) == ("1", "OpenApi3")


def test_update_makes_a_version_only_when_the_content_changes(ep: LocalSchemaRegistry) -> None:
    sc = client(ep)
    sc.create_registry(RegistryName="orders")
    first = sc.create_schema(RegistryName="orders", SchemaName="Order", Type="JSONSchemaDraft4", Content=DRAFT4)

    same = sc.update_schema(RegistryName="orders", SchemaName="Order", Content=DRAFT4)
    assert same["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert (same["SchemaVersion"], same["VersionCreatedDate"], same["LastModified"]) == (
        "1", first["VersionCreatedDate"], first["LastModified"])

    changed = sc.update_schema(RegistryName="orders", SchemaName="Order", Content=DRAFT4_V2)
    assert (changed["SchemaVersion"], changed["Type"]) == ("2", "JSONSchemaDraft4")
    assert changed["VersionCreatedDate"] >= first["VersionCreatedDate"]
    assert sc.update_schema(RegistryName="orders", SchemaName="Order", Content=DRAFT4_V2)["SchemaVersion"] == "2"

    assert sc.describe_schema(RegistryName="orders", SchemaName="Order")["Content"] == DRAFT4_V2
    old = sc.describe_schema(RegistryName="orders", SchemaName="Order", SchemaVersion="1")
    assert (old["Content"], old["SchemaVersion"], old["VersionCreatedDate"]) == (
        DRAFT4, "1", first["VersionCreatedDate"])
    versions = sc.list_schema_versions(RegistryName="orders", SchemaName="Order")["SchemaVersions"]
    assert [(v["SchemaVersion"], v["Type"], v["SchemaName"]) for v in versions] == [
        ("1", "JSONSchemaDraft4", "Order"), ("2", "JSONSchemaDraft4", "Order")]
    assert [(v.version, v.content) for v in ep.versions("orders", "Order")] == [("1", DRAFT4), ("2", DRAFT4_V2)]
    assert sc.list_schemas(RegistryName="orders")["Schemas"][0]["VersionCount"] == 2

    # A new description is no new version; a new Type is (the same content read another way).
    described = sc.update_schema(RegistryName="orders", SchemaName="Order", Description="now described")
    assert (described["SchemaVersion"], described["Description"]) == ("2", "now described")
    assert described["LastModified"] >= changed["LastModified"]
    retyped = sc.update_schema(RegistryName="orders", SchemaName="Order", Type="OpenApi3", Content=OPENAPI)
    assert (retyped["SchemaVersion"], retyped["Type"]) == ("3", "OpenApi3")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        sc.update_schema(RegistryName="orders", SchemaName="Nothing", Content=DRAFT4)
    assert error_of(exc) == ("NotFoundException", 404)


def test_a_repeated_client_token_gets_the_first_answer(ep: LocalSchemaRegistry) -> None:
    sc = client(ep)
    sc.create_registry(RegistryName="orders")
    sc.create_schema(RegistryName="orders", SchemaName="Order", Type="JSONSchemaDraft4", Content=DRAFT4)
    token = "6f1c1a36-0d4c-4b47-9d43-2f7ad1f2c001"
    assert sc.update_schema(RegistryName="orders", SchemaName="Order", Content=DRAFT4_V2,
                            ClientTokenId=token)["SchemaVersion"] == "2"
    # As botocore resends a call whose answer was lost: the token, not the content, decides.
    again = sc.update_schema(RegistryName="orders", SchemaName="Order", Content=DRAFT4, ClientTokenId=token)
    assert again["SchemaVersion"] == "2"
    assert [v.version for v in ep.versions("orders", "Order")] == ["1", "2"]


def test_an_unchanged_update_can_answer_304_as_the_rest_reference_lists() -> None:
    with LocalSchemaRegistry(credentials={"x": "y"}, unchanged_update=304) as ep:
        sc = client(ep)
        sc.create_registry(RegistryName="orders")
        sc.create_schema(RegistryName="orders", SchemaName="Order", Type="JSONSchemaDraft4", Content=DRAFT4)
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            sc.update_schema(RegistryName="orders", SchemaName="Order", Content=DRAFT4)
        assert error_of(exc) == ("304", 304)
        assert sc.update_schema(RegistryName="orders", SchemaName="Order", Content=DRAFT4_V2)["SchemaVersion"] == "2"
    with pytest.raises(ValueError, match="200 or 304"):
        LocalSchemaRegistry(unchanged_update=404)


def test_unknown_registries_schemas_and_versions_are_not_found(ep: LocalSchemaRegistry) -> None:
    sc = client(ep)
    sc.create_registry(RegistryName="orders")
    sc.create_schema(RegistryName="orders", SchemaName="Order", Type="JSONSchemaDraft4", Content=DRAFT4)
    calls: list[Callable[[], Any]] = [
        lambda: sc.describe_schema(RegistryName="orders", SchemaName="Missing"),
        lambda: sc.describe_schema(RegistryName="nowhere", SchemaName="Order"),
        lambda: sc.describe_schema(RegistryName="orders", SchemaName="Order", SchemaVersion="2"),
        lambda: sc.list_schemas(RegistryName="nowhere"),
        lambda: sc.list_schema_versions(RegistryName="orders", SchemaName="Missing"),
        lambda: sc.delete_schema(RegistryName="orders", SchemaName="Missing"),
        lambda: sc.delete_schema_version(RegistryName="orders", SchemaName="Order", SchemaVersion="7"),
    ]
    for call in calls:
        with pytest.raises(sc.exceptions.NotFoundException) as exc:
            call()
        assert error_of(exc) == ("NotFoundException", 404)
        assert exc.value.response["Error"]["Message"]
    with pytest.raises(sc.exceptions.NotFoundException, match="Schema Missing does not exist in registry orders"):
        sc.describe_schema(RegistryName="orders", SchemaName="Missing")


@pytest.mark.parametrize(("schema_type", "content", "message"), [
    ("JSONSchemaDraft4", "{not json", "not valid JSON"),
    ("JSONSchemaDraft4", '{"type": NaN}', "not valid JSON"),
    ("JSONSchemaDraft4", '["type", "object"]', "must be a JSON object"),
    ("OpenApi3", '{"components": {"schemas": {}}}', "'openapi'"),
    ("OpenApi3", '{"openapi": "3.0.0", "components": {}}', "'components.schemas'"),
    ("OpenApi3", '{"openapi": "3.0.0"}', "'components.schemas'"),
    ("Avro", DRAFT4, "Type must be one of OpenApi3, JSONSchemaDraft4"),
    ("JSONSchemaDraft4", '{"d": "' + "x" * 100_000 + '"}', "at most 100000 characters"),
])
def test_bad_content_is_a_bad_request(ep: LocalSchemaRegistry, schema_type: str, content: str, message: str) -> None:
    sc = client(ep)
    sc.create_registry(RegistryName="orders")
    with pytest.raises(sc.exceptions.BadRequestException) as exc:
        sc.create_schema(RegistryName="orders", SchemaName="Order", Type=schema_type, Content=content)
    assert error_of(exc) == ("BadRequestException", 400)
    assert message in exc.value.response["Error"]["Message"]
    assert ep.schemas("orders") == {}
    # The same content is refused as an update, and no version is made.
    sc.create_schema(RegistryName="orders", SchemaName="Order", Type="JSONSchemaDraft4", Content=DRAFT4)
    with pytest.raises(sc.exceptions.BadRequestException):
        sc.update_schema(RegistryName="orders", SchemaName="Order", Type=schema_type, Content=content)
    assert [v.version for v in ep.versions("orders", "Order")] == ["1"]


def test_names_and_descriptions_are_checked(ep: LocalSchemaRegistry) -> None:
    sc = client(ep)
    for bad in ("a" * 65, "with space", "slash/in", "at@sign"):
        with pytest.raises(sc.exceptions.BadRequestException, match="Invalid RegistryName"):
            sc.create_registry(RegistryName=bad)
    with pytest.raises(sc.exceptions.BadRequestException, match="at most 256 characters"):
        sc.create_registry(RegistryName="orders", Description="d" * 257)
    sc.create_registry(RegistryName="r" * 64, Description="d" * 256)
    for bad in ("s" * 386, "with space", "slash/in"):
        with pytest.raises(sc.exceptions.BadRequestException, match="Invalid SchemaName"):
            sc.create_schema(RegistryName="r" * 64, SchemaName=bad, Type="JSONSchemaDraft4", Content=DRAFT4)
    assert sc.create_schema(RegistryName="r" * 64, SchemaName="s" * 385, Type="JSONSchemaDraft4",
                            Content=DRAFT4)["SchemaVersion"] == "1"
    assert list(ep.registries) == ["r" * 64]


def test_schemas_are_listed_by_prefix_and_page(ep: LocalSchemaRegistry) -> None:
    sc = client(ep)
    sc.create_registry(RegistryName="orders")
    for name in ("payments.made", "orders.deleted", "orders.created"):
        sc.create_schema(RegistryName="orders", SchemaName=name, Type="JSONSchemaDraft4", Content=DRAFT4)
    listed = sc.list_schemas(RegistryName="orders", SchemaNamePrefix="orders.")["Schemas"]
    assert [s["SchemaName"] for s in listed] == ["orders.created", "orders.deleted"]
    assert listed[0]["SchemaArn"] == "arn:aws:schemas:us-east-1:123456789012:schema/orders/orders.created"
    assert listed[0]["VersionCount"] == 1 and recent(listed[0]["LastModified"])
    assert sc.list_schemas(RegistryName="orders", SchemaNamePrefix="nothing")["Schemas"] == []
    pages = list(sc.get_paginator("list_schemas").paginate(RegistryName="orders", PaginationConfig={"PageSize": 1}))
    assert [[s["SchemaName"] for s in p["Schemas"]] for p in pages] == [
        ["orders.created"], ["orders.deleted"], ["payments.made"]]
    with pytest.raises(sc.exceptions.BadRequestException, match="NextToken"):
        sc.list_schemas(RegistryName="orders", NextToken="not-a-token")
    with pytest.raises(sc.exceptions.BadRequestException, match="Limit"):
        sc.list_schemas(RegistryName="orders", Limit=0)


def test_versions_and_schemas_are_deleted(ep: LocalSchemaRegistry) -> None:
    sc = client(ep)
    sc.create_registry(RegistryName="orders")
    sc.create_schema(RegistryName="orders", SchemaName="Order", Type="JSONSchemaDraft4", Content=DRAFT4)
    sc.update_schema(RegistryName="orders", SchemaName="Order", Content=DRAFT4_V2)
    answer = sc.delete_schema_version(RegistryName="orders", SchemaName="Order", SchemaVersion="1")
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 204
    versions = sc.list_schema_versions(RegistryName="orders", SchemaName="Order")["SchemaVersions"]
    assert [v["SchemaVersion"] for v in versions] == ["2"]
    with pytest.raises(sc.exceptions.NotFoundException):
        sc.describe_schema(RegistryName="orders", SchemaName="Order", SchemaVersion="1")
    with pytest.raises(sc.exceptions.BadRequestException, match="only version"):
        sc.delete_schema_version(RegistryName="orders", SchemaName="Order", SchemaVersion="2")
    # Numbers are not reused: after 1 and 2, the next is 3 even with 1 gone.
    assert sc.update_schema(RegistryName="orders", SchemaName="Order", Content=DRAFT4)["SchemaVersion"] == "3"

    assert sc.delete_schema(RegistryName="orders", SchemaName="Order")["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(sc.exceptions.NotFoundException):
        sc.describe_schema(RegistryName="orders", SchemaName="Order")
    assert ep.schemas("orders") == {}

    sc.create_schema(RegistryName="orders", SchemaName="Again", Type="JSONSchemaDraft4", Content=DRAFT4)
    sc.delete_registry(RegistryName="orders")  # its schemas go with it
    sc.create_registry(RegistryName="orders")
    with pytest.raises(sc.exceptions.NotFoundException):
        sc.describe_schema(RegistryName="orders", SchemaName="Again")


def test_a_request_without_authorization_is_403(ep: LocalSchemaRegistry) -> None:
    ep.create_registry("orders")
    req = urllib.request.Request(f"{ep.endpoint_url}/v1/registries/name/orders", method="GET")
    with pytest.raises(urllib.error.HTTPError) as http_error:
        urllib.request.urlopen(req, timeout=5)
    assert http_error.value.code == 403
    assert http_error.value.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert json.loads(http_error.value.read()) == {"message": "Missing Authentication Token"}

    unsigned = client(ep, config=Config(signature_version=UNSIGNED))
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        unsigned.create_registry(RegistryName="unsigned")
    assert error_of(exc) == ("MissingAuthenticationTokenException", 403)
    assert exc.value.response["Error"]["Message"] == "Missing Authentication Token"
    assert list(ep.registries) == ["orders"]
    assert [(c.operation, c.status, c.code) for c in ep.calls] == [
        (None, 403, "MissingAuthenticationTokenException")] * 2


def _signed(ep: LocalSchemaRegistry, service: str, path: str, method: str = "GET", body: bytes = b"") -> int:
    """The status of a request signed by botocore's SigV4Auth for ``service``, sent by urllib."""
    request = AWSRequest(method=method, url=f"{ep.endpoint_url}{path}", data=body,
                         headers={"Content-Type": "application/json"} if body else {})
    SigV4Auth(Credentials("x", "y"), service, "us-east-1").add_auth(request)
    prepared = request.prepare()
    req = urllib.request.Request(prepared.url, data=body or None, method=method, headers=dict(prepared.headers))
    try:
        with urllib.request.urlopen(req, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as e:
        assert e.headers["x-amzn-ErrorType"], e.read()
        return e.code


def test_signatures_are_verified(ep: LocalSchemaRegistry) -> None:
    cases: list[tuple[dict[str, Any], str]] = [({"secret": "wrong"}, "InvalidSignatureException"),
                                               ({"key": "AKIDUNKNOWN"}, "UnrecognizedClientException"),
                                               ({"region": "eu-west-1"}, "InvalidSignatureException")]
    for kwargs, code in cases:
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            client(ep, **kwargs).create_registry(RegistryName="orders")
        assert error_of(exc) == (code, 403), kwargs
    assert ep.registries == {}
    # Scoped to the service "schemas" and no other.
    assert _signed(ep, "schemas", "/v1/registries") == 200
    assert _signed(ep, "schemas", "/v1/registries/name/orders", "POST", b'{"Description": "d"}') == 201
    assert _signed(ep, "events", "/v1/registries") == 403
    assert ep.calls[-1].code == "InvalidSignatureException"
    assert list(ep.registries) == ["orders"]

    with LocalSchemaRegistry(credentials=None) as anyone:
        assert client(anyone, key="AKIDANY", secret="whatever").list_registries()["Registries"] == []
        assert _signed(anyone, "events", "/v1/registries") == 403  # the scope is still checked


def test_operations_of_the_model_not_served_here_answer_501(ep: LocalSchemaRegistry) -> None:
    sc = client(ep)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        sc.list_discoverers()
    assert error_of(exc) == ("NotImplementedException", 501)
    assert "ListDiscoverers" in exc.value.response["Error"]["Message"]
    assert _signed(ep, "schemas", "/v1/nothing/here") == 404
    assert ep.calls[-1].code == "UnknownOperationException"


def test_content_error() -> None:
    assert content_error(DRAFT4, "JSONSchemaDraft4") is None
    assert content_error(OPENAPI, "OpenApi3") is None
    assert content_error(DRAFT4, "OpenApi3") == "Content of an OpenApi3 schema must have an 'openapi' version string."
    assert content_error('"a string"', "JSONSchemaDraft4") == (
        "Content of a JSONSchemaDraft4 schema must be a JSON object, not str.")


def test_the_helpers_seed_and_read_the_state(ep: LocalSchemaRegistry) -> None:
    arn = ep.create_registry("orders", description="seeded")
    assert ep.create_registry("orders") == arn  # an existing registry is kept
    assert ep.put_schema("orders", "Order", DRAFT4) == "1"
    assert ep.put_schema("orders", "Order", DRAFT4) == "1"
    assert ep.put_schema("orders", "Order", DRAFT4_V2) == "2"
    assert ep.content("orders", "Order", "1") == DRAFT4
    assert client(ep).describe_schema(RegistryName="orders", SchemaName="Order")["Content"] == DRAFT4_V2
    with pytest.raises(ValueError, match="BadRequestException: Content is not valid JSON"):
        ep.put_schema("orders", "Bad", "{")
    with pytest.raises(ValueError, match="NotFoundException"):
        ep.put_schema("nowhere", "Order", DRAFT4)
    with pytest.raises(ValueError, match="schema_type"):
        ep.put_schema("orders", "Order", DRAFT4, "Avro")
    with pytest.raises(ValueError, match="Invalid RegistryName"):
        ep.create_registry("bad name")
    with pytest.raises(KeyError):
        ep.versions("orders", "Missing")


def test_env_points_boto3_at_the_endpoint(ep: LocalSchemaRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    ep.create_registry("orders")
    env = ep.env()
    assert env["AWS_ENDPOINT_URL_SCHEMAS"] == ep.endpoint_url
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", raising=False)
    sc = boto3.session.Session(botocore_session=botocore.session.Session(session_vars={
        "profile": (None, None, None, None), "config_file": (None, None, os.devnull, None),
        "credentials_file": (None, None, os.devnull, None)})).client("schemas")  # no endpoint_url
    assert [r["RegistryName"] for r in sc.list_registries()["Registries"]] == ["orders"]


def test_the_command_line_serves_registries_until_sigterm() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "devtools.schemas_endpoint", "--registry", "orders",
                             "--registry", "payments"], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(6)]
        exports = dict(line.removeprefix("export ").split("=", 1) for line in lines if line.startswith("export "))
        registries = {line.split()[2]: line.split()[3] for line in lines if line.startswith("# registry ")}
        assert registries == {"orders": "arn:aws:schemas:us-east-1:123456789012:registry/orders",
                              "payments": "arn:aws:schemas:us-east-1:123456789012:registry/payments"}
        url = exports["AWS_ENDPOINT_URL_SCHEMAS"]
        assert url.startswith("http://127.0.0.1:")
        sc = boto3.client("schemas", endpoint_url=url, region_name=exports["AWS_DEFAULT_REGION"],
                          aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"])
        assert [r["RegistryName"] for r in sc.list_registries()["Registries"]] == ["orders", "payments"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
