"""Our lean Custom Event Bus client (wire_v2.py, cbor.py) says and reads what botocore's does:
the same request body (decoded by cbor2, a third codec), the same signature scheme (checked
by the local endpoint, which verifies SigV4 itself), the same error codes."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import cbor2
import pytest

from dbt_eventbridge.delivery import cbor
from dbt_eventbridge.delivery.wire_v2 import V2Client, request_body
from devtools.eventbridgev2_endpoint import LocalEventBridgeV2, RequestFault

ENTRIES: list[dict[str, Any]] = [
    {"Source": "shop.orders", "DetailType": "order.added", "Detail": json.dumps({"id": 1, "name": "Zoë ✓ \u2028"}),
     "Resources": ["arn:aws:s3:::a", "arn:aws:s3:::b"], "Time": dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC),
     "SystemMetadata": {"DeduplicationId": "d" * 128, "EventGroupId": "g1"}},
    {"Source": "s" * 256, "DetailType": "t", "Detail": "{}" + " " * 70_000},
]


@pytest.fixture
def ep() -> Iterator[LocalEventBridgeV2]:
    with LocalEventBridgeV2(seed=1) as endpoint:
        yield endpoint


def clients(ep: LocalEventBridgeV2, arn: str, secret: str = "testing") -> tuple[Any, V2Client]:
    cfg = botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 1})
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key=secret, region_name=ep.region)
    boto = session.client("eventbridgev2", endpoint_url=ep.endpoint_url, config=cfg)
    lean = V2Client.for_bus(boto, session.get_credentials(), arn)
    assert isinstance(lean, V2Client)
    return boto, lean


def test_the_request_body_is_what_botocore_sends() -> None:
    boto = boto3.client("eventbridgev2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y",
                        endpoint_url="http://127.0.0.1:9")
    bodies: list[bytes] = []

    def capture(request: Any, **_: Any) -> None:
        bodies.append(request.body)
        raise KeyboardInterrupt

    boto.meta.events.register("before-send.eventbridgev2.PutEvents", capture)
    arn = "arn:aws:events:us-east-1:123456789012:event-busv2/orders/abcdefghijklmnopqrstuvwxy"
    with pytest.raises(KeyboardInterrupt):
        boto.put_events(EventBusArn=arn, Entries=ENTRIES)
    assert cbor2.loads(request_body(arn, ENTRIES)) == cbor2.loads(bodies[0])


def test_cbor_reads_every_encoding_a_server_may_send() -> None:
    value = {"FailedEntryCount": 1, "Entries": [{"EventId": "e", "SequenceNumber": "00000000000000000001",
                                                 "SuccessCode": "PUBLISHED"}, {"ErrorCode": "X", "ErrorMessage": "ü"}],
             "n": -300, "big": 2 ** 40, "f": 1.5, "b": b"\x00\xff", "t": True, "none": None}
    assert cbor.decode(cbor2.dumps(value)) == value
    assert cbor2.loads(cbor.encode(value)) == value
    # indefinite-length map, array and text; half and single floats; tag 1 as an integer
    raw = bytes([0xBF, 0x61, 0x61, 0x9F, 0x01, 0xF9, 0x3E, 0x00, 0xFA, 0x3F, 0xC0, 0x00, 0x00, 0xFF,
                 0x61, 0x62, 0x7F, 0x62, 0x68, 0x69, 0x61, 0x21, 0xFF, 0x61, 0x63, 0xC1, 0x1A, 0x65, 0x53, 0xF1, 0x00,
                 0xFF])
    assert cbor.decode(raw) == {"a": [1, 1.5, 1.5], "b": "hi!", "c": dt.datetime(2023, 11, 14, 22, 13, 20,
                                                                                  tzinfo=dt.UTC)}
    with pytest.raises(cbor.DecodeError):
        cbor.decode(cbor2.dumps(value)[:-3])


def test_both_clients_publish_the_same_events(ep: LocalEventBridgeV2) -> None:
    arn = ep.create_bus("orders")
    boto, lean = clients(ep, arn)
    a = lean.put_events(EventBusArn=arn, Entries=ENTRIES)
    b = boto.put_events(EventBusArn=arn, Entries=[{**e, "SystemMetadata": {"DeduplicationId": "other"}}
                                                  for e in ENTRIES[:1]])
    assert a["FailedEntryCount"] == 0 and [x["SuccessCode"] for x in a["Entries"]] == ["PUBLISHED"] * 2
    assert b["Entries"][0]["SuccessCode"] == "PUBLISHED"
    first, _, third = ep.delivered(arn)
    assert first["Detail"] == third["Detail"] == ENTRIES[0]["Detail"]
    assert first["Time"] == third["Time"] == "2024-05-06T07:08:09.123456Z"
    assert first["Resources"] == ENTRIES[0]["Resources"]
    again = lean.put_events(EventBusArn=arn, Entries=ENTRIES[:1])
    assert again["Entries"][0]["SuccessCode"] == "DEDUPLICATED"
    assert again["Entries"][0]["EventId"] == a["Entries"][0]["EventId"]


@pytest.mark.parametrize("case", ["unknown bus", "throttled", "bad signature", "too many entries"])
def test_errors_carry_the_code_botocore_gives(ep: LocalEventBridgeV2, case: str) -> None:
    arn = ep.create_bus("orders")
    boto, lean = clients(ep, arn, secret="wrong" if case == "bad signature" else "testing")
    if case == "unknown bus":
        arn = arn.replace("/orders/", "/nobus/")
    if case == "throttled":
        ep.request_faults = [RequestFault("throttle", rate=1.0)]
    entries = ENTRIES[:1] * (101 if case == "too many entries" else 1)
    answers = []
    for client in (boto, lean):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            client.put_events(EventBusArn=arn, Entries=entries)
        answers.append((e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]))
    assert answers[0] == answers[1]
    assert answers[0][0] == {"unknown bus": "ResourceNotFoundException", "throttled": "ThrottlingException",
                             "bad signature": "InvalidSignatureException",
                             "too many entries": "InvalidInputException"}[case]
    assert ep.delivered() == []


def test_on_aws_it_goes_where_botocore_sends_that_bus(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bus's ARN chooses the region (not the settings') and leads the host with the bus
    owner's account, as botocore's endpoint rules do for PutEvents."""
    from dbt_eventbridge.config.settings import Settings
    from dbt_eventbridge.delivery.aws import make_v2_client

    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EVENTBRIDGEV2"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    arn = "arn:aws:events:eu-west-1:210987654321:event-busv2/orders/abcdefghijklmnopqrstuvwxy"
    ours = make_v2_client(Settings(region="us-east-1"), arn)
    assert isinstance(ours, V2Client)
    boto = boto3.client("eventbridgev2", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    seen: list[str] = []

    def capture(request: Any, **_: Any) -> None:
        seen.append(request.url)
        raise KeyboardInterrupt

    boto.meta.events.register("before-send.eventbridgev2.PutEvents", capture)
    with pytest.raises(KeyboardInterrupt):
        boto.put_events(EventBusArn=arn, Entries=ENTRIES[:1])
    assert seen == [ours._url.rstrip("/") + ours.path]
    assert seen[0].startswith("https://210987654321.eventsv2.eu-west-1.amazonaws.com/")
    assert ours._region == "eu-west-1"
