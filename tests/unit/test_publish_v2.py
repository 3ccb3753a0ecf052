"""Publishing to a Custom Event Bus (eventbridgev2) through our lean client and through
botocore's own, against the local v2 endpoint (devtools/eventbridgev2_endpoint.py): 100-entry requests under 1 MB,
DEDUPLICATED answers, per-key order through faults and retries, held-back later changes."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.config
import pytest

from dbt_eventbridge.delivery.publisher import ORDER_HELD, Publisher
from dbt_eventbridge.delivery.render import dedup_id, event_id, key_group
from dbt_eventbridge.delivery.wire_v2 import V2Client
from dbt_eventbridge.model import Entry, Outcome, entry_size, key_text
from devtools.eventbridgev2_endpoint import LocalEventBridgeV2, RequestFault


def v2_client(ep: LocalEventBridgeV2, kind: str, bus: str) -> Any:
    """botocore's own client, or ours over it (wire_v2.V2Client), as make_v2_client makes it."""
    cfg = botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 1})
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=ep.region)
    client = session.client("eventbridgev2", endpoint_url=ep.endpoint_url, config=cfg)
    if kind == "botocore":
        return client
    lean = V2Client.for_bus(client, session.get_credentials(), bus)
    assert isinstance(lean, V2Client)
    return lean


def entry(seq: int, bus: str, key: int, op: str = "added", detail: str | None = None, token: str = "t1",
          pad: int = 0) -> Entry:
    k = {"id": key}
    eid = event_id("orders", op, k, f"h{seq}")
    body = detail if detail is not None else json.dumps({"id": key, "op": op, "seq": seq, "pad": "x" * pad})
    e = {"Source": "shop.orders", "DetailType": f"order.{op}", "Detail": body,
         "SystemMetadata": {"DeduplicationId": dedup_id(eid, token), "EventGroupId": key_group("orders", key_text(k))}}
    size = entry_size(e) + sum(len(v) for v in e["SystemMetadata"].values())
    return Entry(seq, op, k, eid, e, size, "", key_text(k), bus_v2=bus)


class Outcomes:
    def __init__(self) -> None:
        self.all: list[Outcome] = []

    def __call__(self, out: Outcome) -> None:
        self.all.append(out)

    @property
    def accepted(self) -> list[Entry]:
        return [e for o in self.all for e, _ in o.accepted]

    @property
    def rejected(self) -> list[tuple[Entry, str]]:
        return [(e, r.code) for o in self.all for e, r in o.rejected]

    @property
    def deduplicated(self) -> set[int]:
        return set().union(*(o.deduplicated for o in self.all))


@pytest.fixture(params=["lean", "botocore"])
def endpoint(request: pytest.FixtureRequest) -> Iterator[LocalEventBridgeV2]:
    with LocalEventBridgeV2(seed=7) as ep:
        ep.client_kind = request.param  # type: ignore[attr-defined]
        yield ep


def publisher(ep: LocalEventBridgeV2, **kw: Any) -> Publisher:
    kw.setdefault("concurrency", 8)
    kind = ep.client_kind  # type: ignore[attr-defined]
    return Publisher(None, v2_client=lambda bus: v2_client(ep, kind, bus), backoff_base=0.001, backoff_cap=0.01,
                     **kw)


def test_requests_carry_up_to_100_entries_and_every_event_arrives_as_sent(endpoint: LocalEventBridgeV2) -> None:
    bus = endpoint.create_bus("orders")
    entries = [entry(i, bus, i, detail=json.dumps({"id": i, "name": "Zoë ✓"}, ensure_ascii=False))
               for i in range(250)]
    got = Outcomes()
    p = publisher(endpoint)
    try:
        assert p.publish(entries, got)
    finally:
        p.close()
    assert sorted(e.seq for e in got.accepted) == list(range(250))
    assert sorted(r.entry_count for r in endpoint.requests) == [50, 100, 100]
    delivered = endpoint.delivered(bus)
    assert sorted(json.loads(d["Detail"])["id"] for d in delivered) == list(range(250))
    by_id = {json.loads(d["Detail"])["id"]: d for d in delivered}
    assert by_id[3]["Detail"] == entries[3].entry["Detail"]
    assert by_id[3]["DeduplicationId"] == entries[3].entry["SystemMetadata"]["DeduplicationId"]
    assert not got.deduplicated


def test_a_request_stays_under_one_megabyte(endpoint: LocalEventBridgeV2) -> None:
    bus = endpoint.create_bus("big")
    entries = [entry(i, bus, i, pad=100_000) for i in range(30)]  # 3 MB in all
    got = Outcomes()
    p = publisher(endpoint)
    try:
        p.publish(entries, got)
    finally:
        p.close()
    assert len(got.accepted) == 30 and not got.rejected
    assert all(r.size <= 1_048_576 and r.fault is None for r in endpoint.requests)
    assert len(endpoint.requests) >= 3


def test_sent_again_it_is_answered_deduplicated_and_not_delivered_twice(endpoint: LocalEventBridgeV2) -> None:
    bus = endpoint.create_bus("orders")
    entries = [entry(i, bus, i) for i in range(30)]
    first, second = Outcomes(), Outcomes()
    p = publisher(endpoint)
    try:
        p.publish(entries, first)
        p.publish(entries, second)
    finally:
        p.close()
    assert len(first.accepted) == len(second.accepted) == 30
    assert first.deduplicated == set()
    assert second.deduplicated == set(range(30))
    assert len(endpoint.delivered(bus)) == 30


def test_lost_responses_are_sent_again_and_delivered_once(endpoint: LocalEventBridgeV2) -> None:
    bus = endpoint.create_bus("orders")
    endpoint.request_faults = [RequestFault("lose_response", every=2)]
    entries = [entry(i, bus, i) for i in range(400)]
    got = Outcomes()
    p = publisher(endpoint)
    try:
        p.publish(entries, got)
    finally:
        p.close()
    assert sorted(e.seq for e in got.accepted) == list(range(400))
    assert endpoint.counts["fault:lose_response"] >= 1
    assert len(got.deduplicated) >= 1  # what the lost answers had published came back DEDUPLICATED
    delivered = [json.loads(d["Detail"])["id"] for d in endpoint.delivered(bus)]
    assert sorted(delivered) == list(range(400))  # each once


def test_a_keys_later_change_never_overtakes_an_earlier_one(endpoint: LocalEventBridgeV2) -> None:
    """Two changes per key (as after a replayed plan) under entry throttling and 8 requests
    in flight: each key's changes arrive in plan order, and each is delivered once."""
    bus = endpoint.create_bus("orders")
    endpoint.entry_fault_rate = 0.3
    keys = range(300)
    entries = [entry(i, bus, k, "added") for i, k in enumerate(keys)]
    entries += [entry(1000 + i, bus, k, "changed") for i, k in enumerate(keys)]
    got = Outcomes()
    p = publisher(endpoint, max_attempts=30)
    try:
        p.publish(entries, got)
    finally:
        p.close()
    assert len(got.accepted) == 600 and not got.rejected
    assert endpoint.counts["fault:ThrottlingException"] + endpoint.counts["fault:InternalFailure"] > 50
    ops: dict[int, list[str]] = defaultdict(list)
    for d in endpoint.delivered(bus):
        body = json.loads(d["Detail"])
        ops[body["id"]].append(body["op"])
    assert all(ops[k] == ["added", "changed"] for k in keys), {k: v for k, v in ops.items() if v != ["added", "changed"]}


def test_a_later_change_is_held_back_when_the_earlier_one_is_rejected(endpoint: LocalEventBridgeV2) -> None:
    bus = endpoint.create_bus("orders")
    entries = [entry(0, bus, 1, "added", detail="{not json"), entry(1, bus, 2, "added"),
               entry(2, bus, 1, "changed"), entry(3, bus, 2, "changed")]
    got = Outcomes()
    p = publisher(endpoint)
    try:
        p.publish(entries, got)
    finally:
        p.close()
    assert sorted((e.seq, code) for e, code in got.rejected) == [(0, "MalformedDetail"), (2, ORDER_HELD)]
    assert sorted(e.seq for e in got.accepted) == [1, 3]
    assert [(json.loads(d["Detail"])["id"], json.loads(d["Detail"])["op"]) for d in endpoint.delivered(bus)] \
        == [(2, "added"), (2, "changed")]


def test_a_request_refused_for_one_bad_entry_delivers_the_others(endpoint: LocalEventBridgeV2) -> None:
    """The v2 bus refuses a whole request for some entry errors (InvalidInputException): the
    request is split until the entry is alone, and only it is rejected."""
    bus = endpoint.create_bus("orders")
    entries = [entry(i, bus, i) for i in range(20)]
    entries[13].entry["SystemMetadata"]["EventGroupId"] = "g" * 129  # over the model's maximum
    got = Outcomes()
    p = publisher(endpoint)
    try:
        p.publish(entries, got)
    finally:
        p.close()
    assert [e.seq for e, _ in got.rejected] == [13]
    assert len(got.accepted) == 19
    assert sorted(json.loads(d["Detail"])["id"] for d in endpoint.delivered(bus)) == \
        [i for i in range(20) if i != 13]


def test_an_entry_whose_answer_was_lost_stays_maybe_delivered_whatever_its_last_code(
        endpoint: LocalEventBridgeV2) -> None:
    """Its first request was taken and the answer lost; every retry is throttled. It ends
    rejected as ThrottlingException, but the bus has it: the run must say it may be delivered
    (the next run then sends it under the same token, and it is not delivered twice)."""
    from dbt_eventbridge.run.tally import Tally

    bus = endpoint.create_bus("orders")
    endpoint.request_faults = [RequestFault("lose_response", first=1), RequestFault("throttle", skip=1, rate=1.0)]
    entries = [entry(i, bus, i) for i in range(5)]
    tally = Tally()
    p = publisher(endpoint, max_attempts=3, throttle_timeout=0)
    try:
        p.publish(entries, tally.on_outcome)
    finally:
        p.close()
    assert {r.code for r in tally.rejections} == {"ThrottlingException"} and len(tally.rejections) == 5
    assert tally.maybe_delivered == 5
    assert len(endpoint.delivered(bus)) == 5
