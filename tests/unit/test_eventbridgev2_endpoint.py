"""The local EventBridge custom-event-bus endpoint, through botocore's own ``eventbridgev2`` client."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import botocore.session
import cbor2
import pytest
from botocore.config import Config

from devtools.eventbridgev2_endpoint import (
    MAX_REQUEST_BYTES,
    MODELED_ERRORS,
    RETRYABLE_ENTRY_CODES,
    SERVICE_NAME,
    SIGNING_NAME,
    LocalEventBridgeV2,
    RequestFault,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
UNKNOWN_BUS = "arn:aws:events:us-east-1:123456789012:event-busv2/nobody/abcdefghijklmnopqrstuvwxy"
WHEN = dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC)


@cache
def _session() -> botocore.session.Session:
    # Keeps the developer's ~/.aws files and AWS_PROFILE out of the clients.
    return botocore.session.Session(session_vars={
        "profile": (None, None, None, None),
        "config_file": (None, None, os.devnull, None),
        "credentials_file": (None, None, os.devnull, None),
    })


def client(ep: LocalEventBridgeV2, *, key: str = "testing", secret: str = "testing", region: str = "us-east-1",
           attempts: int = 1) -> Any:
    session = boto3.session.Session(aws_access_key_id=key, aws_secret_access_key=secret, region_name=region,
                                    botocore_session=_session())
    return session.client("eventbridgev2", endpoint_url=ep.endpoint_url,
                          config=Config(retries={"total_max_attempts": attempts, "mode": "standard"}))


@pytest.fixture
def ep() -> Iterator[LocalEventBridgeV2]:
    with LocalEventBridgeV2() as endpoint:
        yield endpoint


def entry(n: int, **extra: Any) -> dict[str, Any]:
    return {"Source": "com.example.orders", "DetailType": "OrderChanged", "Detail": json.dumps({"n": n}), **extra}


def error_of(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[str, int]:
    return exc.value.response["Error"]["Code"], exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_wire_constants_and_error_statuses_are_the_service_models(ep: LocalEventBridgeV2) -> None:
    model = _session().get_service_model("eventbridgev2")
    assert model.protocol == "smithy-rpc-v2-cbor"
    assert (model.metadata["targetPrefix"], model.signing_name) == (SERVICE_NAME, SIGNING_NAME)
    statuses = {name: model.shape_for(name).metadata["error"]["httpStatusCode"] for name in model.shape_names
                if model.shape_for(name).metadata.get("exception")}
    assert statuses == dict(MODELED_ERRORS)
    arn_pattern = model.operation_model("PutEvents").input_shape.members["EventBusArn"].metadata["pattern"]
    assert re.fullmatch(arn_pattern, ep.create_bus("orders.v2_x-1"))


def test_buses_are_created_listed_described_and_deleted_through_boto3(ep: LocalEventBridgeV2) -> None:
    eb = client(ep)
    created = eb.create_event_bus(Name="orders", Description="the orders")
    assert (created["Name"], created["State"], created["Description"]) == ("orders", "CREATING", "the orders")
    arn = created["EventBusArn"]
    assert arn.startswith("arn:aws:events:us-east-1:123456789012:event-busv2/orders/")
    assert ep.buses == {"orders": arn}
    eb.get_waiter("event_bus_active").wait(EventBusArn=arn)  # ACTIVE on the first DescribeEventBus
    described = eb.describe_event_bus(EventBusArn=arn)
    assert (described["Name"], described["State"]) == ("orders", "ACTIVE")
    assert abs((described["CreationTime"] - dt.datetime.now(dt.UTC)).total_seconds()) < 60
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        eb.create_event_bus(Name="orders")
    assert error_of(exc) == ("ResourceAlreadyExistsException", 409)

    other = ep.create_bus("payments")
    pages = list(eb.get_paginator("list_event_buses").paginate(PaginationConfig={"PageSize": 1}))
    assert len(pages) == 2
    assert [b["EventBusArn"] for p in pages for b in p["EventBuses"]] == [arn, other]
    assert [b["Name"] for b in eb.list_event_buses(NamePrefix="pay")["EventBuses"]] == ["payments"]

    eb.delete_event_bus(EventBusArn=arn)
    eb.get_waiter("event_bus_deleted").wait(EventBusArn=arn)
    with pytest.raises(eb.exceptions.ResourceNotFoundException):
        eb.describe_event_bus(EventBusArn=arn)
    assert ep.buses == {"payments": other}


def test_put_events_publishes_in_order_with_increasing_sequence_numbers(ep: LocalEventBridgeV2) -> None:
    arn = ep.create_bus("orders")
    eb = client(ep)
    text = json.dumps({"city": "Zürich", "note": "東京 — ✓ \"quoted\""}, ensure_ascii=False)
    entries = [
        entry(1, Detail=text, Time=WHEN, Resources=["arn:aws:s3:::bucket/é"],
              SystemMetadata={"DeduplicationId": "d1", "EventGroupId": "g1"}),
        entry(2, SystemMetadata={"DeduplicationId": "d2", "EventGroupId": "g2"}),
        entry(3, SystemMetadata={"DeduplicationId": "d3", "EventGroupId": "g1"}),
    ]
    answer = eb.put_events(EventBusArn=arn, Entries=entries)
    assert answer["FailedEntryCount"] == 0
    results = answer["Entries"]
    assert [r["SuccessCode"] for r in results] == ["PUBLISHED"] * 3
    assert len({r["EventId"] for r in results}) == 3
    assert int(results[2]["SequenceNumber"]) > int(results[0]["SequenceNumber"])  # both in g1
    later = eb.put_events(EventBusArn=arn, Entries=[entry(4, SystemMetadata={"EventGroupId": "g1"}), entry(5)])
    assert int(later["Entries"][0]["SequenceNumber"]) > int(results[2]["SequenceNumber"])
    assert "SequenceNumber" not in later["Entries"][1]  # no group, no sequence number

    got = ep.delivered(arn)
    assert [e["EventId"] for e in got] == [r["EventId"] for r in results + later["Entries"]]
    first = got[0]
    assert first["Detail"] == text  # byte for byte, non-ASCII included
    assert dt.datetime.fromisoformat(first["Time"]) == WHEN
    assert (first["Source"], first["DetailType"], first["Resources"]) == (
        "com.example.orders", "OrderChanged", ["arn:aws:s3:::bucket/é"])
    assert (first["EventGroupId"], first["DeduplicationId"], first["EventBusArn"]) == ("g1", "d1", arn)
    assert [e["SequenceNumber"] for e in got[:3]] == [r["SequenceNumber"] for r in results]
    # Without Time, the event's time is when it was received.
    assert abs((dt.datetime.fromisoformat(got[1]["Time"]) - dt.datetime.now(dt.UTC)).total_seconds()) < 60
    assert ep.counts["published"] == 5
    assert [(r.number, r.bus_arn, r.entry_count, r.fault) for r in ep.requests] == [(1, arn, 3, None), (2, arn, 2, None)]


def test_a_repeated_deduplication_id_is_not_delivered_again_within_the_window() -> None:
    with LocalEventBridgeV2(dedup_window=0.5) as ep:
        arn = ep.create_bus("orders")
        eb = client(ep)
        meta = {"DeduplicationId": "order-1", "EventGroupId": "g"}
        first = eb.put_events(EventBusArn=arn, Entries=[entry(1, SystemMetadata=meta)])["Entries"][0]
        again = eb.put_events(EventBusArn=arn, Entries=[entry(1, SystemMetadata=meta), entry(2, SystemMetadata=meta)])
        assert again["FailedEntryCount"] == 0
        assert [(r["SuccessCode"], r["EventId"], r["SequenceNumber"]) for r in again["Entries"]] == [
            ("DEDUPLICATED", first["EventId"], first["SequenceNumber"])] * 2
        assert [e["EventId"] for e in ep.delivered()] == [first["EventId"]]
        other_bus = ep.create_bus("elsewhere")  # the window is per bus
        assert eb.put_events(EventBusArn=other_bus, Entries=[entry(1, SystemMetadata=meta)])["Entries"][0][
            "SuccessCode"] == "PUBLISHED"

        time.sleep(0.6)
        later = eb.put_events(EventBusArn=arn, Entries=[entry(1, SystemMetadata=meta)])["Entries"][0]
        assert later["SuccessCode"] == "PUBLISHED" and later["EventId"] != first["EventId"]
        assert [e["EventId"] for e in ep.delivered(arn)] == [first["EventId"], later["EventId"]]
        assert (ep.counts["published"], ep.counts["deduplicated"]) == (3, 2)


def test_content_based_deduplication_hashes_source_detail_type_and_detail(ep: LocalEventBridgeV2) -> None:
    arn = ep.create_bus("orders")
    eb = client(ep)
    config = {"DeduplicationType": "CONTENT_BASED"}
    first = eb.put_events(EventBusArn=arn, Entries=[entry(1)], DeduplicationConfiguration=config)["Entries"][0]
    answer = eb.put_events(EventBusArn=arn, Entries=[entry(1), entry(2), entry(1, DetailType="Other")],
                           DeduplicationConfiguration=config)
    assert [r["SuccessCode"] for r in answer["Entries"]] == ["DEDUPLICATED", "PUBLISHED", "PUBLISHED"]
    assert answer["Entries"][0]["EventId"] == first["EventId"]
    assert eb.put_events(EventBusArn=arn, Entries=[entry(1)])["Entries"][0]["SuccessCode"] == "PUBLISHED"  # not asked
    assert len(ep.delivered(arn)) == 4


def test_too_many_entries_or_bytes_fail_the_whole_request(ep: LocalEventBridgeV2) -> None:
    arn = ep.create_bus("orders")
    eb = client(ep)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        eb.put_events(EventBusArn=arn, Entries=[entry(i) for i in range(101)])
    assert error_of(exc) == ("InvalidInputException", 400)
    assert eb.put_events(EventBusArn=arn, Entries=[entry(i) for i in range(100)])["FailedEntryCount"] == 0

    def sized(total: int, char: str = "x") -> dict[str, Any]:
        # Source "s" + DetailType "t" + '{"a":"' ... '"}' = 10 bytes around the padding; +14 for Time
        pad = (total - 10 - 14) // len(char.encode())
        return {"Source": "s", "DetailType": "t", "Detail": '{"a":"' + char * pad + '"}', "Time": WHEN}

    at_limit = eb.put_events(EventBusArn=arn, Entries=[sized(MAX_REQUEST_BYTES)])
    assert at_limit["FailedEntryCount"] == 0
    assert ep.requests[-1].size == MAX_REQUEST_BYTES
    before = ep.delivered(arn)
    for entries in ([sized(MAX_REQUEST_BYTES + 1)],
                    [sized(MAX_REQUEST_BYTES // 2, "é"), entry(1), sized(MAX_REQUEST_BYTES // 2, "é")]):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            eb.put_events(EventBusArn=arn, Entries=entries)
        assert error_of(exc) == ("InvalidInputException", 400)
        assert "1048576" in exc.value.response["Error"]["Message"]
    assert ep.delivered(arn) == before  # nothing of the refused requests was published
    assert [r.fault for r in ep.requests] == ["InvalidInputException", None, None] + ["InvalidInputException"] * 2


def test_a_malformed_arn_and_an_unknown_bus_are_refused(ep: LocalEventBridgeV2) -> None:
    eb = client(ep)
    arn = ep.create_bus("orders")
    for bad in ("arn:aws:events:us-east-1:123456789012:event-bus/orders", arn + "x", "orders"):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            eb.put_events(EventBusArn=bad, Entries=[entry(1)])
        assert error_of(exc) == ("InvalidInputException", 400)
    with pytest.raises(eb.exceptions.ResourceNotFoundException) as missing:
        eb.put_events(EventBusArn=UNKNOWN_BUS, Entries=[entry(1)])
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert UNKNOWN_BUS in missing.value.response["Error"]["Message"]
    assert ep.delivered() == []
    assert ep.counts["rejected:InvalidInputException"] == 3 and ep.counts["rejected:ResourceNotFoundException"] == 1


def test_a_bad_entry_fails_alone(ep: LocalEventBridgeV2) -> None:
    arn = ep.create_bus("orders")
    eb = client(ep)
    entries = [
        entry(0),
        entry(1, Detail="not json"),
        entry(2, Detail="[1, 2]"),
        entry(3, Source="aws.orders"),
        entry(4, DetailType="x" * 129),
        entry(5, SystemMetadata={"DeduplicationId": " \t\u3000"}),
        entry(6, SystemMetadata={"EventGroupId": "g" * 129}),
        entry(7, Resources=["r"] * 101),
        entry(8, Source="s" * 256, DetailType="t" * 128, SystemMetadata={"DeduplicationId": " x "}),
    ]
    answer = eb.put_events(EventBusArn=arn, Entries=entries)
    codes = [r.get("ErrorCode") for r in answer["Entries"]]
    assert codes == [None, "MalformedDetail", "MalformedDetail"] + ["InvalidInput"] * 5 + [None]
    assert answer["FailedEntryCount"] == 7
    assert all(r.get("ErrorMessage") and "EventId" not in r for r in answer["Entries"] if r.get("ErrorCode"))
    assert [json.loads(e["Detail"]) for e in ep.delivered(arn)] == [{"n": 0}, {"n": 8}]


def test_signatures_are_verified(ep: LocalEventBridgeV2) -> None:
    arn = ep.create_bus("orders")
    cases: list[tuple[dict[str, Any], str]] = [({"secret": "wrong"}, "InvalidSignatureException"),
                                               ({"key": "AKIDUNKNOWN"}, "UnrecognizedClientException"),
                                               ({"region": "eu-west-1"}, "InvalidSignatureException")]
    for kwargs, code in cases:
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            client(ep, **kwargs).put_events(EventBusArn=arn, Entries=[entry(1)])
        assert error_of(exc) == (code, 400), kwargs
    assert ep.delivered() == [] and ep.requests == []
    with LocalEventBridgeV2(credentials={"AKIDOTHER": "s3cr3t/+="}) as other:
        eb = client(other, key="AKIDOTHER", secret="s3cr3t/+=")
        assert eb.put_events(EventBusArn=other.create_bus("b"), Entries=[entry(1)])["FailedEntryCount"] == 0


def test_an_unsigned_request_gets_a_cbor_error_body(ep: LocalEventBridgeV2) -> None:
    arn = ep.create_bus("orders")
    req = urllib.request.Request(f"{ep.endpoint_url}/service/{SERVICE_NAME}/operation/PutEvents", method="POST",
                                 data=cbor2.dumps({"EventBusArn": arn, "Entries": [entry(1)]}),
                                 headers={"smithy-protocol": "rpc-v2-cbor", "Content-Type": "application/cbor"})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=5)
    assert exc.value.code == 400
    assert exc.value.headers["smithy-protocol"] == "rpc-v2-cbor"
    assert exc.value.headers["Content-Type"] == "application/cbor"
    body = cbor2.loads(exc.value.read())
    assert body["__type"].endswith("#MissingAuthenticationTokenException") and body["message"]
    assert ep.delivered() == []


def test_request_faults_throttle_and_fail_whole_requests(ep: LocalEventBridgeV2) -> None:
    ep.request_faults = [RequestFault("throttle", first=1), RequestFault("internal", skip=1, first=1)]
    arn = ep.create_bus("orders")
    eb = client(ep)  # one attempt: the fault reaches the caller
    for expected in [("ThrottlingException", 429), ("InternalException", 500)]:
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            eb.put_events(EventBusArn=arn, Entries=[entry(1)])
        assert error_of(exc) == expected
    assert eb.put_events(EventBusArn=arn, Entries=[entry(1)])["FailedEntryCount"] == 0
    assert [r.fault for r in ep.requests] == ["throttle", "internal", None]
    assert len(ep.delivered()) == 1
    assert (ep.counts["fault:throttle"], ep.counts["fault:internal"]) == (1, 1)


def test_a_dropped_request_publishes_nothing(ep: LocalEventBridgeV2) -> None:
    ep.request_faults = [RequestFault("drop", first=1)]
    arn = ep.create_bus("orders")
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        client(ep).put_events(EventBusArn=arn, Entries=[entry(1)])
    assert ep.delivered() == [] and ep.counts["fault:drop"] == 1


def test_a_lost_response_is_retried_by_botocore_and_deduplicated(ep: LocalEventBridgeV2) -> None:
    ep.request_faults = [RequestFault("lose_response", first=1)]
    arn = ep.create_bus("orders")
    answer = client(ep, attempts=3).put_events(
        EventBusArn=arn, Entries=[entry(1, SystemMetadata={"DeduplicationId": "once"})])
    assert answer["ResponseMetadata"]["RetryAttempts"] == 1
    result = answer["Entries"][0]
    assert result["SuccessCode"] == "DEDUPLICATED"  # the first attempt was published; its answer was lost
    assert [e["EventId"] for e in ep.delivered()] == [result["EventId"]]
    assert [r.fault for r in ep.requests] == ["lose_response", None]


def test_request_fault_selection() -> None:
    rng = random.Random(0)
    fault = RequestFault("throttle", first=2, every=3, skip=1)
    assert [n for n in range(1, 12) if fault.hits(n, rng)] == [2, 3, 4, 7, 10]
    assert all(RequestFault("drop", rate=1.0).hits(n, rng) for n in range(1, 5))
    assert not any(RequestFault("drop").hits(n, rng) for n in range(1, 5))
    with pytest.raises(ValueError):
        RequestFault("auth")


def test_entry_faults_fail_entries_alone_and_repeat_with_the_seed() -> None:
    failing: list[list[int]] = []
    for _ in range(2):
        with LocalEventBridgeV2(entry_fault_rate=0.4, seed=7) as ep:
            arn = ep.create_bus("orders")
            answer = client(ep).put_events(EventBusArn=arn, Entries=[entry(i) for i in range(30)])
            results = answer["Entries"]
            failed = [i for i, r in enumerate(results) if "ErrorCode" in r]
            assert answer["FailedEntryCount"] == len(failed)
            assert 0 < len(failed) < 30
            assert {results[i]["ErrorCode"] for i in failed} <= set(RETRYABLE_ENTRY_CODES)
            assert [e["EventId"] for e in ep.delivered()] == [r["EventId"] for r in results if "EventId" in r]
            assert [json.loads(e["Detail"])["n"] for e in ep.delivered()] == [
                i for i in range(30) if i not in failed]
            counts = ep.counts
            assert sum(counts[f"fault:{c}"] for c in RETRYABLE_ENTRY_CODES) == len(failed)
            assert counts["published"] == 30 - len(failed)
            failing.append(failed)
    assert failing[0] == failing[1]


def test_concurrent_requests_are_all_recorded() -> None:
    with LocalEventBridgeV2(delay=0.2) as ep:
        arn = ep.create_bus("orders")
        eb = client(ep)
        threads = [threading.Thread(target=eb.put_events, kwargs={"EventBusArn": arn, "Entries": [entry(i)]})
                   for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert ep.max_in_flight >= 2
        assert sorted(r.number for r in ep.requests) == [1, 2, 3, 4]
        assert sorted(json.loads(e["Detail"])["n"] for e in ep.delivered()) == [0, 1, 2, 3]


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("application/json")
        return json.loads(resp.read().decode("utf-8"))


def test_the_http_read_back_is_delivered(ep: LocalEventBridgeV2) -> None:
    orders, payments = ep.create_bus("orders"), ep.create_bus("payments")
    eb = client(ep)
    eb.put_events(EventBusArn=orders, Entries=[entry(1, Detail='{"é": "東京"}', Time=WHEN), entry(2)])
    eb.put_events(EventBusArn=payments, Entries=[entry(3, SystemMetadata={"EventGroupId": "g"})])
    assert _get_json(f"{ep.endpoint_url}/_local/events") == ep.delivered()
    assert len(ep.delivered()) == 3
    quoted = urllib.parse.quote(orders, safe="")
    assert _get_json(f"{ep.endpoint_url}/_local/events?bus={quoted}") == ep.delivered(orders)
    assert [json.loads(e["Detail"]) for e in ep.delivered(orders)] == [{"é": "東京"}, {"n": 2}]


def test_the_command_line_serves_buses_until_sigterm() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "devtools.eventbridgev2_endpoint", "--bus", "orders",
                             "--bus", "payments"], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(6)]
        exports = dict(line.removeprefix("export ").split("=", 1) for line in lines if line.startswith("export "))
        buses = {line.split()[2]: line.split()[3] for line in lines if line.startswith("# bus ")}
        assert set(buses) == {"orders", "payments"}
        url = exports["DBT_EVENTBRIDGE_V2_ENDPOINT_URL"]
        assert url.startswith("http://127.0.0.1:")
        eb = boto3.client("eventbridgev2", endpoint_url=url, region_name=exports["AWS_DEFAULT_REGION"],
                          aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"])
        assert eb.put_events(EventBusArn=buses["orders"], Entries=[entry(1)])["FailedEntryCount"] == 0
        got = _get_json(f"{url}/_local/events")
        assert [(e["EventBusArn"], e["Detail"]) for e in got] == [(buses["orders"], '{"n": 1}')]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
