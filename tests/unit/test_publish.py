"""Publisher against a fault-injecting local PutEvents endpoint, through a real boto3 client.

The client comes from ``dbt_eventbridge.aws.make_client``, which turns botocore's own retries
off (total_max_attempts=1): the Publisher is the one retry layer, so every HTTP attempt is ours. The
endpoint (devtools/fault_endpoint.py) records what it received and accepted, so the
assertions check what reached "AWS", not what the Publisher says it did.
"""

from __future__ import annotations

import json
import os
import random
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dbt_eventbridge.config.settings import Settings
from dbt_eventbridge.delivery.aws import make_client
from dbt_eventbridge.delivery.publisher import Publisher
from dbt_eventbridge.errors import CredentialsError, EndpointError, TerminalError
from dbt_eventbridge.model import Entry, Outcome, entry_size
from devtools.fault_endpoint import FaultEndpoint, RequestFault

NS = uuid.UUID("0c2d6a4e-3b1f-4e8a-9d7c-5f6e7a8b9c0d")
BUS = "test-bus"
TIMEOUT = 60.0  # a publish that retries forever must fail the test, not hang it


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials; keep the developer's AWS config, profiles and proxies out."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EVENTBRIDGE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "AWS_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY",
                "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def serve() -> Iterator[Callable[..., FaultEndpoint]]:
    """Start a FaultEndpoint with the given faults; every one is stopped after the test."""
    started: list[FaultEndpoint] = []

    def start(**faults: Any) -> FaultEndpoint:
        ep = FaultEndpoint(**faults).start()
        started.append(ep)
        return ep

    yield start
    for ep in started:
        ep.stop()


# --------------------------------------------------------------------------- helpers


def make_entry(seq: int, *, pad: int = 0, marker: str = "", source: str = "test.dbt-eventbridge",
               detail_type: str = "row.added", detail: str | None = None) -> Entry:
    eid = str(uuid.uuid5(NS, str(seq)))
    if detail is None:
        detail = json.dumps({"seq": seq, "event_id": eid, "marker": marker, "pad": "x" * pad},
                            separators=(",", ":"))
    entry = {"Source": source, "DetailType": detail_type, "Detail": detail, "EventBusName": BUS}
    return Entry(seq=seq, op="added", key={"id": seq}, event_id=eid, entry=entry, size=entry_size(entry))


def sized_entry(seq: int, size: int) -> Entry:
    """An entry of exactly ``size`` bytes as AWS counts them."""
    base = make_entry(seq).size
    assert size >= base, f"entries here are at least {base} bytes"
    e = make_entry(seq, pad=size - base)
    assert e.size == size
    return e


def seq_of(entry: dict[str, Any]) -> int:
    detail = json.loads(entry["Detail"])
    return int(detail[0] if isinstance(detail, list) else detail["seq"])  # a list: [seq] (malformed on purpose)


def publisher(ep_or_url: FaultEndpoint | str, *, concurrency: int = 8, **kw: Any) -> Publisher:
    url = ep_or_url if isinstance(ep_or_url, str) else ep_or_url.endpoint_url
    client = make_client(Settings(region="us-east-1", endpoint_url=url, concurrency=concurrency))
    return Publisher(client, concurrency=concurrency, **{"backoff_base": 0.001, **kw})


def publish(pub: Publisher, entries: list[Entry], on_outcome: Callable[[Outcome], None]) -> None:
    """``pub.publish`` in a daemon thread, failing the test if it does not end within TIMEOUT."""
    error: list[BaseException] = []

    def target() -> None:
        try:
            pub.publish(iter(entries), on_outcome)
        except BaseException as e:  # handed to the test's thread
            error.append(e)

    t = threading.Thread(target=target, name="test-publish", daemon=True)
    t.start()
    t.join(TIMEOUT)
    assert not t.is_alive(), f"publish did not finish within {TIMEOUT} s"
    if error:
        raise error[0]


def run(pub: Publisher, entries: list[Entry]) -> Outcome:
    """Publish; check the callback runs in the publishing thread and each entry is settled once."""
    total = Outcome()

    def on_outcome(out: Outcome) -> None:
        assert threading.current_thread().name == "test-publish", "on_outcome must run in the caller's thread"
        total.merge(out)

    publish(pub, entries, on_outcome)
    settled = Counter([e.seq for e, _ in total.accepted] + [e.seq for e, _ in total.rejected])
    assert settled == Counter(e.seq for e in entries), "every entry must be accepted or rejected, once"
    return total


def accepted_seqs(ep: FaultEndpoint) -> Counter[int]:
    return Counter(seq_of(a) for a in ep.accepted)


def assert_delivered_exactly_once(ep: FaultEndpoint, out: Outcome, expected: list[Entry]) -> None:
    assert accepted_seqs(ep) == Counter(e.seq for e in expected)
    assert sorted(e.seq for e, _ in out.accepted) == sorted(e.seq for e in expected)
    # The EventId the Publisher reports is the one the endpoint gave for that entry.
    given = {seq_of(a): a["EventId"] for a in ep.accepted}
    assert {e.seq: eid for e, eid in out.accepted} == given


def rejected_by_seq(out: Outcome) -> dict[int, tuple[str, str]]:
    return {e.seq: (r.code, r.reason) for e, r in out.rejected}


def sent_counts(ep: FaultEndpoint) -> Counter[int]:
    """How many times each entry was sent, over all requests."""
    return Counter(seq_of(e) for r in ep.requests for e in r.entries)


# --------------------------------------------------------------------------- batching


def test_batches_stay_within_entry_count_and_byte_limit(serve: Callable[..., FaultEndpoint]) -> None:
    limit = 4000
    rng = random.Random(7)
    entries = [sized_entry(i, rng.randint(120, 1500)) for i in range(300)]
    oversize = [sized_entry(1000, limit + 1), sized_entry(1001, 3 * limit)]
    at_limit = sized_entry(1002, limit)
    entries[10:10] = [oversize[0]]
    entries[200:200] = [at_limit, oversize[1]]
    ep = serve(max_request_bytes=limit)  # would answer 413 if a request went over

    out = run(publisher(ep, max_request_bytes=limit), entries)

    reqs = ep.requests
    assert all(r.fault is None for r in reqs)
    assert all(1 <= len(r.entries) <= 10 for r in reqs)
    assert max(r.size for r in reqs) <= limit
    assert {seq: code for seq, (code, _) in rejected_by_seq(out).items()} == {1000: "EntryTooLarge",
                                                                             1001: "EntryTooLarge"}
    assert not {1000, 1001} & set(sent_counts(ep)), "oversize entries must not be sent"
    assert_delivered_exactly_once(ep, out, [e for e in entries if e not in oversize])
    assert out.requests == len(reqs)


def test_small_entries_go_ten_to_a_request(serve: Callable[..., FaultEndpoint]) -> None:
    ep = serve()
    entries = [make_entry(i) for i in range(95)]

    out = run(publisher(ep, concurrency=3), entries)

    assert sorted(len(r.entries) for r in ep.requests) == [5] + [10] * 9
    assert out.requests == 10
    assert_delivered_exactly_once(ep, out, entries)


def test_entry_at_the_aws_size_limit_is_sent_one_byte_more_is_not(serve: Callable[..., FaultEndpoint]) -> None:
    ep = serve()  # the AWS limit: a request's entries must total below 1 MiB
    biggest, too_big, small = sized_entry(1, 1_048_575), sized_entry(2, 1_048_576), make_entry(3)

    out = run(publisher(ep), [biggest, too_big, small])

    assert rejected_by_seq(out).keys() == {2} and rejected_by_seq(out)[2][0] == "EntryTooLarge"
    assert sent_counts(ep) == Counter({1: 1, 3: 1})
    assert all(r.fault is None for r in ep.requests) and len(ep.requests) == 2
    assert_delivered_exactly_once(ep, out, [biggest, small])


# --------------------------------------------------------------------------- delivery and retries


def test_all_accepted_each_entry_delivered_exactly_once(serve: Callable[..., FaultEndpoint]) -> None:
    ep = serve()
    entries = [make_entry(i) for i in range(253)]

    out = run(publisher(ep, concurrency=4), entries)

    assert_delivered_exactly_once(ep, out, entries)
    assert out.rejected == [] and out.retried_entries == 0
    assert out.requests == ep.request_count == 26
    # What arrived is what was given, byte for byte.
    assert {seq_of(a): {k: v for k, v in a.items() if k != "EventId"} for a in ep.accepted} == \
        {e.seq: e.entry for e in entries}


def test_throttled_and_failed_entries_are_retried_until_accepted(serve: Callable[..., FaultEndpoint]) -> None:
    ep = serve(entry_fault_rate=0.3, seed=1)
    entries = [make_entry(i) for i in range(150)]

    # 12 attempts: 0.3**12 * 150 makes a give-up practically impossible. (Per-entry throttling
    # also slows the Publisher's adaptive request rate, so more entries only cost time.)
    out = run(publisher(ep, concurrency=4, max_attempts=12), entries)

    faults = ep.faults
    assert faults["ThrottlingException"] > 10 and faults["InternalFailure"] > 10
    assert_delivered_exactly_once(ep, out, entries)
    assert out.rejected == []
    injected = faults["ThrottlingException"] + faults["InternalFailure"]
    assert out.retried_entries == injected
    # Only the failed entries were resent, never the accepted ones of the same request.
    assert sum(sent_counts(ep).values()) == len(entries) + injected
    assert out.requests == ep.request_count


def test_retryable_entry_failures_give_up_after_max_attempts(serve: Callable[..., FaultEndpoint]) -> None:
    ep = serve(entry_fault_rate=1.0, entry_fault_codes=["InternalFailure"])
    entries = [make_entry(i) for i in range(5)]

    out = run(publisher(ep, max_attempts=3), entries)

    assert ep.accepted == [] and out.accepted == []
    assert ep.request_count == 3 and sent_counts(ep) == Counter(dict.fromkeys(range(5), 3))
    for code, msg in rejected_by_seq(out).values():
        assert code == "InternalFailure"
        assert "after 3 attempts" in msg


def test_throttled_entries_are_retried_past_max_attempts_until_throttle_timeout(
        serve: Callable[..., FaultEndpoint]) -> None:
    """Throttling is the account's quota, not the rows' fault: a throttled entry keeps its
    place in the queue for throttle_timeout seconds however many attempts that takes."""
    ep = serve(entry_fault_rate=1.0, entry_fault_codes=["ThrottlingException"])
    entries = [make_entry(i) for i in range(5)]

    started = time.monotonic()
    out = run(publisher(ep, max_attempts=3, throttle_timeout=0.5, backoff_cap=0.05), entries)

    assert time.monotonic() - started >= 0.5
    assert ep.accepted == [] and out.accepted == []
    assert ep.request_count > 3
    for code, msg in rejected_by_seq(out).values():
        assert code == "ThrottlingException"
        assert "Rate exceeded" in msg and f"still throttled after {ep.request_count} attempts over" in msg

    # With no timeout, max_attempts alone decides.
    ep2 = serve(entry_fault_rate=1.0, entry_fault_codes=["ThrottlingException"])
    out = run(publisher(ep2, max_attempts=3, throttle_timeout=0), entries=[make_entry(i) for i in range(5)])
    assert ep2.request_count == 3 and len(out.rejected) == 5


def test_requests_throttled_whole_more_than_max_attempts_times_are_delivered(
        serve: Callable[..., FaultEndpoint]) -> None:
    ep = serve(request_faults=[RequestFault("throttle", first=7)])
    entries = [make_entry(i) for i in range(5)]

    out = run(publisher(ep, max_attempts=3, backoff_cap=0.01), entries)

    assert out.rejected == []
    assert ep.request_count == 8
    assert_delivered_exactly_once(ep, out, entries)


def test_terminal_entry_codes_are_rejected_without_retry(serve: Callable[..., FaultEndpoint]) -> None:
    def reject(entry: dict[str, Any]) -> tuple[str, str] | None:
        if "POISON" in entry["Detail"]:
            return "AccessDeniedException", "not authorized to put this event"
        return None

    # Retryable faults on the other entries too, so terminal ones sit in requests that are retried.
    ep = serve(reject=reject, entry_fault_rate=0.2, seed=3)
    good = [make_entry(i) for i in range(60)]
    poison = [make_entry(100 + i, marker="POISON") for i in range(5)]
    aws_source = make_entry(200, source="aws.s3")
    long_type = make_entry(201, detail_type="t" * 129)
    not_object = make_entry(202, detail="[202]")
    entries = good[:7] + poison[:2] + [aws_source] + good[7:30] + poison[2:] + [long_type, not_object] + good[30:]

    out = run(publisher(ep, max_attempts=12), entries)

    rejected = rejected_by_seq(out)
    assert rejected.keys() == {100, 101, 102, 103, 104, 200, 201, 202}
    for seq in range(100, 105):
        assert rejected[seq] == ("AccessDeniedException", "not authorized to put this event")
    assert rejected[200][0] == "InvalidArgument" and "aws." in rejected[200][1]
    assert rejected[201][0] == "InvalidArgument" and "DetailType" in rejected[201][1]
    assert rejected[202][0] == "MalformedDetail"
    sent = sent_counts(ep)
    assert all(sent[seq] == 1 for seq in rejected), "terminal codes must not be retried"
    assert ep.faults["ThrottlingException"] + ep.faults["InternalFailure"] > 0
    assert_delivered_exactly_once(ep, out, good)


# --------------------------------------------------------------------------- whole-request faults


@pytest.mark.parametrize("kind", ["throttle", "internal", "unavailable", "bad_gateway"])
def test_failed_requests_are_retried_and_delivered(serve: Callable[..., FaultEndpoint], kind: str) -> None:
    # The first 4 requests fail: the Publisher sends the first batch 4 more times, with backoff.
    ep = serve(request_faults=[RequestFault(kind, first=4)])
    entries = [make_entry(i) for i in range(25)]

    out = run(publisher(ep, concurrency=4), entries)

    reqs = ep.requests
    assert [r.fault for r in reqs[:4]] == [kind] * 4 and all(r.fault is None for r in reqs[4:])
    assert {seq_of(e) for r in reqs[:5] for e in r.entries} == set(range(10))  # all on the first batch
    assert out.retried_entries == 40  # four retries of the first batch
    assert out.requests == 7 and ep.request_count == 7
    assert out.rejected == []
    assert_delivered_exactly_once(ep, out, entries)


def test_random_request_failures_and_dropped_connections(serve: Callable[..., FaultEndpoint]) -> None:
    ep = serve(request_faults=[RequestFault("unavailable", rate=0.2, skip=1),
                               RequestFault("drop", rate=0.15, skip=1)], seed=5)
    entries = [make_entry(i) for i in range(300)]

    # 35% of requests fail: with the default 6 attempts one of the 30 requests would fail
    # every attempt in about 5% of runs (0.35^6 x 30; which request meets which fault depends
    # on thread timing, not only the seed). 12 attempts make that about 1 in 10^4.
    out = run(publisher(ep, concurrency=6, max_attempts=12), entries)

    assert ep.faults["unavailable"] > 0 and ep.faults["drop"] > 0
    assert out.rejected == []
    assert_delivered_exactly_once(ep, out, entries)


def test_dropped_connections_after_preflight_are_retried(serve: Callable[..., FaultEndpoint]) -> None:
    # Concurrency 1 keeps the order fixed: requests 2-5 are the Publisher's first 4 attempts at
    # the second batch, all dropped; the 5th gets through.
    ep = serve(request_faults=[RequestFault("drop", first=4, skip=1)])
    entries = [make_entry(i) for i in range(30)]

    out = run(publisher(ep, concurrency=1), entries)

    reqs = ep.requests
    assert [r.fault for r in reqs] == [None] + ["drop"] * 4 + [None, None]
    assert {seq_of(e) for r in reqs[1:6] for e in r.entries} == set(range(10, 20))
    assert out.retried_entries == 40 and out.rejected == []
    assert_delivered_exactly_once(ep, out, entries)


def test_lost_response_redelivers_and_reports_each_entry_once(serve: Callable[..., FaultEndpoint]) -> None:
    # Accepted by AWS, but the answer never arrives: botocore resends, so the first batch is
    # delivered twice (at least once; consumers dedupe on the event id in Detail).
    ep = serve(request_faults=[RequestFault("lose_response", first=1)])
    entries = [make_entry(i) for i in range(30)]

    out = run(publisher(ep), entries)

    delivered = accepted_seqs(ep)
    assert delivered == Counter({i: (2 if i < 10 else 1) for i in range(30)})
    dup_ids = Counter(json.loads(a["Detail"])["event_id"] for a in ep.accepted if seq_of(a) < 10)
    assert set(dup_ids.values()) == {2} and set(dup_ids) == {e.event_id for e in entries[:10]}
    assert sorted(e.seq for e, _ in out.accepted) == list(range(30)) and out.rejected == []
    # The Publisher reports the EventId of the answer it got (the resend).
    last_id = {seq_of(a): a["EventId"] for a in ep.accepted}
    assert {e.seq: eid for e, eid in out.accepted} == last_id


def test_request_too_large_is_split_and_delivered(serve: Callable[..., FaultEndpoint]) -> None:
    ep = serve(max_request_bytes=3000)  # AWS refuses with 413 above this; the Publisher thinks 1 MiB
    entries = [sized_entry(i, 700) for i in range(30)]
    big = sized_entry(99, 3500)  # refused even alone
    entries.insert(14, big)

    out = run(publisher(ep, concurrency=4), entries)

    reqs = ep.requests
    assert sum(r.fault == "too_large" for r in reqs) >= 3
    assert all(r.size <= 3000 for r in reqs if r.fault is None)
    rejected = rejected_by_seq(out)
    assert rejected.keys() == {99} and rejected[99][0] == "EntryTooLarge"
    assert_delivered_exactly_once(ep, out, [e for e in entries if e is not big])


# --------------------------------------------------------------------------- preflight


def test_preflight_auth_failure_raises_and_publishes_nothing(serve: Callable[..., FaultEndpoint]) -> None:
    ep = serve(request_faults=[RequestFault("auth", rate=1.0)])
    outcomes: list[Outcome] = []

    with pytest.raises(CredentialsError) as info:
        publish(publisher(ep), [make_entry(i) for i in range(50)], outcomes.append)

    assert "UnrecognizedClientException" in str(info.value)
    assert ep.request_count == 1, "only the preflight request may be sent"
    assert ep.accepted == [] and outcomes == []


def test_auth_failure_after_preflight_rejects_entries(serve: Callable[..., FaultEndpoint]) -> None:
    ep = serve(request_faults=[RequestFault("auth", first=10**6, skip=1)])
    entries = [make_entry(i) for i in range(40)]

    out = run(publisher(ep, concurrency=2), entries)

    assert_delivered_exactly_once(ep, out, entries[:10])
    rejected = rejected_by_seq(out)
    assert rejected.keys() == set(range(10, 40))
    assert {code for code, _ in rejected.values()} == {"UnrecognizedClientException"}
    assert ep.request_count == 4, "auth failures are not retried"


def test_preflight_missing_bus_is_terminal(serve: Callable[..., FaultEndpoint]) -> None:
    ep = serve(request_faults=[RequestFault("not_found", rate=1.0)])

    with pytest.raises(TerminalError) as info:
        publish(publisher(ep), [make_entry(i) for i in range(20)], lambda out: None)

    assert not isinstance(info.value, CredentialsError)
    assert f"Event bus {BUS} does not exist" in str(info.value)
    assert ep.request_count == 1 and ep.accepted == []


def test_preflight_unreachable_endpoint() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    outcomes: list[Outcome] = []

    with pytest.raises(EndpointError) as info:
        publish(publisher(f"http://127.0.0.1:{port}"), [make_entry(i) for i in range(20)], outcomes.append)

    assert info.value.retryable
    assert outcomes == []


def test_preflight_dropped_connections(serve: Callable[..., FaultEndpoint]) -> None:
    ep = serve(request_faults=[RequestFault("drop", rate=1.0)])

    with pytest.raises(EndpointError):
        publish(publisher(ep), [make_entry(i) for i in range(20)], lambda out: None)

    assert ep.request_count == 3  # the preflight's 3 attempts, nothing else
    assert ep.accepted == []


def test_preflight_that_was_answered_retries_dropped_connections(serve: Callable[..., FaultEndpoint]) -> None:
    # Three throttles prove the endpoint is EventBridge; the three drops that follow are faults
    # on a reachable endpoint, retried like any other (6 attempts in all), not "could not
    # reach EventBridge" after the third attempt.
    ep = serve(request_faults=[RequestFault("throttle", first=3), RequestFault("drop", first=2, skip=3)])
    entries = [make_entry(i) for i in range(20)]

    out = run(publisher(ep, concurrency=1), entries)

    assert [r.fault for r in ep.requests][:7] == ["throttle"] * 3 + ["drop"] * 2 + [None] * 2
    assert out.rejected == []
    assert_delivered_exactly_once(ep, out, entries)


# --------------------------------------------------------------------------- concurrency


@pytest.mark.parametrize("concurrency, n_entries", [(8, 800), (2, 200)])
def test_requests_run_concurrently_up_to_the_setting(serve: Callable[..., FaultEndpoint], concurrency: int,
                                                      n_entries: int) -> None:
    ep = serve(delay=0.05)
    entries = [make_entry(i) for i in range(n_entries)]

    out = run(publisher(ep, concurrency=concurrency), entries)

    assert ep.max_in_flight == concurrency
    assert_delivered_exactly_once(ep, out, entries)


def test_in_flight_requests_grow_while_latency_is_the_limit(serve: Callable[..., FaultEndpoint]) -> None:
    # 50 ms per request and a cap of 64: the publisher starts at 8 in flight and finds more.
    ep = serve(delay=0.05)
    entries = [make_entry(i) for i in range(3000)]

    out = run(publisher(ep, concurrency=64), entries)

    assert 24 <= ep.max_in_flight <= 64
    assert_delivered_exactly_once(ep, out, entries)


def test_in_flight_requests_shrink_when_round_trips_queue() -> None:
    from dbt_eventbridge.delivery.concurrency import AdaptiveConcurrency

    c = AdaptiveConcurrency(64)
    for _ in range(3):  # rounds where the network was the limit, round trips flat
        c.waited()
        for _ in range(c.limit):
            c.answered(0.03)
    assert c.limit == 27  # 8 -> 12 -> 18 -> 27
    for _ in range(c.limit):  # round trips tripled: requests queue somewhere
        c.answered(0.09)
    assert c.limit == 21
    for _ in range(c.limit):  # flat again, but the publisher never waited for a slot: no growth
        c.answered(0.03)
    assert c.limit == 21
    for _ in range(5):  # queueing on: down to where it started, no lower
        for _ in range(c.limit):
            c.answered(0.09)
    assert c.limit == 8


def test_never_more_than_the_window_sent_and_not_journaled(serve: Callable[..., FaultEndpoint]) -> None:
    """The crash bound: at any moment, entries sent minus entries journaled stay within the
    window (a crash makes the next run send at most that many again), with retries too."""
    ep = serve(delay=0.02, entry_fault_rate=0.1, entry_fault_codes=("InternalFailure",), seed=3)
    entries = [make_entry(i) for i in range(1200)]
    window = 100
    settled = [0]
    journaled: list[tuple[float, int]] = []  # (when, entries settled by then)

    def on_outcome(out: Outcome) -> None:
        settled[0] += len(out.accepted) + len(out.rejected)

    def journal() -> None:
        journaled.append((time.monotonic(), settled[0]))

    pub = publisher(ep, concurrency=32, max_attempts=12)
    pub.publish(iter(entries), on_outcome, window=window, journal=journal)

    assert settled[0] == len(entries) and len(journaled) >= len(entries) // window
    sent_new = 0
    seen: set[int] = set()
    for r in sorted(ep.requests, key=lambda r: r.at):
        fresh = {seq_of(e) for e in r.entries} - seen
        seen |= fresh
        sent_new += len(fresh)
        done = max((n for at, n in journaled if at < r.at), default=0)
        assert sent_new - done <= window, f"{sent_new} sent, {done} journaled"
    assert accepted_seqs(ep) == Counter(e.seq for e in entries)


def test_acks_are_journaled_as_runs() -> None:
    from dbt_eventbridge.warehouse.state import _statements, seq_runs

    assert seq_runs([5, 1, 2, 3, 3, 9]) == [(1, 3), (5, 5), (9, 9)]
    assert seq_runs([]) == []
    # a long run is split so no statement spells out more than max_rows values
    assert list(_statements([(1, 2500)], 1000)) == [[[1, 1000]], [[1001, 2000]], [[2001, 2500]]]
    assert list(_statements([(1, 3), (7, 8)], 10_000_000)) == [[[1, 3], [7, 8]]]


def test_retried_entries_go_out_merged_not_one_request_per_failed_request() -> None:
    """Entries that failed with a retryable code wait out their backoff off the sender threads,
    and the ones due together go out in shared requests of up to 10 entries."""
    with FaultEndpoint(entry_fault_rate=0.2, entry_fault_codes=("InternalFailure",), seed=5) as ep:
        # 12 attempts: at 20% an entry fails 6 in a row once in 15,000, which would reject it
        out = run(publisher(ep, backoff_base=0.05, max_attempts=12), [make_entry(i) for i in range(1000)])
        requests = ep.request_count
        accepted = sorted(seq_of(e) for e in ep.accepted)
    assert accepted == list(range(1000)) and not out.rejected
    assert out.retried_entries >= 200  # about 20% of 1,000 failed at least once
    # 100 first requests; then retries: one request per failed request (the previous way)
    # would be about 100 more; merged, the retried entries take about 10 to a request.
    assert requests - 100 < out.retried_entries / 4, (requests, out.retried_entries)
