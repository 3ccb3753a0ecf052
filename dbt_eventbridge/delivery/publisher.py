"""PutEvents: batching under AWS's limits, concurrent requests, per-entry retries.

boto3 retries whole requests (throttling, 5xx, connection errors); it never retries the
failed *entries* of a request that partly succeeded. That is done here, with capped
exponential backoff and full jitter, for the codes AWS documents as retryable. Anything
else rejects the entry with AWS's code and message; rejected rows are not committed to
the state and come back on the next run.
"""

from __future__ import annotations

import itertools
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from dbt_eventbridge.delivery.concurrency import AdaptiveConcurrency
from dbt_eventbridge.delivery.rate import AdaptiveRate
from dbt_eventbridge.delivery.wire import request_body
from dbt_eventbridge.errors import CredentialsError, EndpointError, TerminalError
from dbt_eventbridge.model import Entry, Outcome, entry_json, key_text

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

MAX_ENTRIES_PER_REQUEST = 10
# A Custom Event Bus (eventbridgev2) takes up to 100 entries and 1 MB (1,048,576 bytes) a
# request; over the size the whole request fails (InvalidInputException), so it is sized
# before sending like the classic one.
V2_MAX_ENTRIES_PER_REQUEST = 100
V2_MAX_REQUEST_BYTES = 1_048_576
ORDER_HELD = "OrderHeld"  # the code of a key's later change held back behind an earlier one not delivered
MERGE_AHEAD = 0.05  # seconds early a retry may go, to share a request with others
NOISE_BACKOFF = 0.1  # of the backoff, for entries retried while throttling is at its noise floor
RETRYABLE_ENTRY_CODES = frozenset({"InternalFailure", "ThrottlingException", "InternalException",
                                   "ServiceUnavailable"})
RETRYABLE_REQUEST_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException",
                                     "RequestLimitExceeded", "InternalFailure", "InternalException",
                                     "InternalServerError", "ServiceUnavailable", "ServiceUnavailableException",
                                     "RequestTimeout", "RequestTimeoutException"})
AUTH_CODES = frozenset({"UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException",
                        "SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException",
                        "MissingAuthenticationToken", "IncompleteSignature", "AccessDeniedException",
                        "AccessDenied", "AuthFailure", "InvalidAccessKeyId"})


def _not_eventbridge(code: str, status: int) -> bool:
    """AWS answers errors with a code (JSON ``__type``); only a 413 or a 5xx may come bare."""
    bare = not code or code.isdigit() or code == "InvalidResponse"
    return bare and status != 413 and status < 500


def batches(entries: Iterable[Entry], max_bytes: int, on_oversize: Callable[[Entry], None],
            max_entries: int = MAX_ENTRIES_PER_REQUEST) -> Iterator[list[Entry]]:
    """Group entries into requests of at most 10 entries whose sizes add up below the limit."""
    batch: list[Entry] = []
    size = 0
    for e in entries:
        if e.size > max_bytes:
            on_oversize(e)
            continue
        if batch and (len(batch) == max_entries or size + e.size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(e)
        size += e.size
    if batch:
        yield batch


class Publisher:
    """Sends entries to EventBridge; thread-safe client, one pool of worker threads."""

    def __init__(self, client: Any, *, max_request_bytes: int = 1_048_575, concurrency: int = 8,
                 max_attempts: int = 6, throttle_timeout: float = 120.0, backoff_base: float = 0.1,
                 backoff_cap: float = 5.0,
                 sleep: Callable[[float], None] = time.sleep, max_requests_per_second: float | None = None,
                 rate: AdaptiveRate | None = None, v2_client: Callable[[str], Any] | None = None) -> None:
        self.client = client
        # The Custom Event Bus API's clients, one per bus (its ARN names the region, and the
        # account that leads its endpoint's host), made when the bus is first sent to.
        self._make_v2 = v2_client
        self._v2: dict[str, Any] = {}
        # Our lean client takes the body built from each entry's JSON (made once, at render).
        self._send_body = getattr(client, "send_body", None)
        self.rate = rate or AdaptiveRate(max_requests_per_second, sleep=sleep)
        self.max_request_bytes = max_request_bytes
        self.concurrency = max(1, concurrency)
        self.max_attempts = max(1, max_attempts)
        self.throttle_timeout = max(0.0, throttle_timeout)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._sleep = sleep
        self._rng = random.Random()
        self._lock = threading.Lock()
        # ``concurrency`` caps the requests in flight; how many are is found as it runs.
        self.limit = AdaptiveConcurrency(self.concurrency)
        self._work: queue.SimpleQueue[tuple[list[Entry], int, _Run] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._timing = threading.local()  # the round trip of the thread's last request

    def _delay(self, attempt: int) -> float:
        """Capped exponential backoff with full jitter."""
        with self._lock:
            return self._rng.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** attempt))

    def _backoff(self, attempt: int) -> None:
        self._sleep(self._delay(attempt))

    def _retry(self, code: str, entries: list[Entry], attempt: int) -> bool:
        """Whether entries that failed ``attempt`` times, the last with a retryable ``code``, are
        sent again. A throttle is the account's quota (ours or others' requests), not a fault
        of the rows: within ``throttle_timeout`` of an entry's first throttle it is retried
        past ``max_attempts``. CI's make bench found 10 of 5,000 rows rejected by a 100
        requests/s quota after 6 throttles in a row (about 3 s of backoff), the run partial."""
        now = time.monotonic()
        throttled = _throttle_code(code)
        if throttled:
            for x in entries:
                x.throttled_at = x.throttled_at or now
        if attempt < self.max_attempts:
            return True
        return throttled and all(now - x.throttled_at < self.throttle_timeout for x in entries)

    def publish(self, entries: Iterable[Entry], on_outcome: Callable[[Outcome], None],
                preflight: bool = True, window: int | None = None,
                journal: Callable[[], None] | None = None) -> bool:
        """Send every entry; ``on_outcome`` is called in this thread as requests complete.

        The first request is sent alone: if AWS rejects our credentials or cannot be
        reached, the run stops before anything is published (exit code 2).

        ``window``: at most this many entries are sent and not yet journaled at any time;
        ``journal`` is called (in this thread) whenever half of the window has been
        answered, and the caller journals what it was told so far. That bounds what a
        crash can make the next run send again, while requests keep flowing across the
        caller's chunks (a chunk waiting for its last answers left the network idle:
        see concurrency.py).
        """
        oversize: list[Entry] = []

        def flush_oversize() -> None:
            if oversize:
                out = Outcome()
                for e in oversize:
                    out.reject(e, "EntryTooLarge",
                               f"the entry is {e.size} bytes; the request size limit is {self.max_request_bytes} bytes")
                oversize.clear()
                on_outcome(out)

        entries = iter(entries)
        head = next(entries, None)
        if head is None:
            return False
        entries = itertools.chain((head,), entries)
        order: _KeyOrder | None = None
        if head.bus_v2:
            # One sync's entries all go to its one bus: a v2 bus takes 100 entries a request,
            # and a key's changes go out one at a time, in plan order (see _KeyOrder).
            limit = V2_MAX_ENTRIES_PER_REQUEST
            max_bytes = min(self.max_request_bytes, V2_MAX_REQUEST_BYTES)
            order = _KeyOrder(on_outcome)
            on_outcome = order.settle
        else:
            limit, max_bytes = MAX_ENTRIES_PER_REQUEST, self.max_request_bytes
        # A window under 10 entries (batch_size 5) makes requests of that many: none larger.
        per_request = min(limit, max(1, window or limit))
        it = batches(entries, max_bytes, oversize.append, per_request) if order is None else \
            order.batches(entries, max_bytes, oversize.append, per_request)
        first = next(it, None)
        flush_oversize()
        if first is None:
            return False
        on_outcome(self.send(first, preflight=preflight))
        if journal is not None and window is not None:
            journal()
        self._send_all(it, on_outcome, flush_oversize, window, journal, order)
        return True

    def _v2_client(self, bus_arn: str) -> Any:
        with self._lock:
            client = self._v2.get(bus_arn)
            if client is None:
                if self._make_v2 is None:
                    raise TerminalError("a sync targets a Custom Event Bus (v2), and this publisher has no client "
                                        "for that API", fix="Report this: run_sync makes one from the settings")
                client = self._v2[bus_arn] = self._make_v2(bus_arn)
            return client

    def close(self) -> None:
        """Stop the sender threads (and so their connections); publish() starts them again."""
        threads, self._threads = self._threads, []
        for _ in threads:
            self._work.put(None)
        for t in threads:
            t.join()

    def _senders(self, n: int) -> None:
        """At least ``n`` sender threads, kept for the publisher's life: each keeps its
        keep-alive connection, so a run opens about as many connections as it has requests
        in flight, not one per thread per chunk (82 for 2,000 requests before)."""
        while len(self._threads) < n:
            t = threading.Thread(target=self._sender, name=f"eb-publish-{len(self._threads)}", daemon=True)
            t.start()
            self._threads.append(t)

    def _send_all(self, pending_batches: Iterator[list[Entry]], on_outcome: Callable[[Outcome], None],
                  flush_oversize: Callable[[], None], window: int | None,
                  journal: Callable[[], None] | None, order: _KeyOrder | None = None) -> None:
        """Send the batches with up to ``self.limit.limit`` requests in flight; outcomes are
        handed on in this thread.

        Sender threads take requests from a queue and put outcomes on another, which this
        thread drains as it goes: a Future and a wait() per request cost more CPU (and GIL)
        than signing the request does.

        Entries that a 200 answer failed with a retryable code (throttled, internal failure)
        are not retried by the sender thread after sleeping its backoff: they come back here
        with the time they are due, and go out again merged with other due entries of the same
        attempt, while the threads keep sending. With 10% of entries throttled at random,
        two of three requests had an entry to retry, and a sender asleep in its backoff (0.1 s
        on average) sent nothing: 546 events/s against 4,178 unthrottled (make bench, 20,000
        rows, 8 threads)."""
        run = _Run(self, on_outcome, window, journal)
        if order is not None:
            order.wait = run.wait_for_answers
        try:
            for batch in pending_batches:
                flush_oversize()
                run.send_due()
                run.make_room(len(batch))
                run.submit(batch, 0)
                run.drain(block=False)
            flush_oversize()
            run.finish()
        except BaseException:
            run.stop.set()  # the senders drop what this run queued and did not send yet
            raise

    def _sender(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            batch, attempt, run = item
            if run.stop.is_set():
                continue

            def later(pending: list[Entry], attempt: int, run: _Run = run) -> None:
                delay = self._delay(attempt)
                if self.rate.noise_floor > 0:
                    # Throttling that our rate does not cause (the rate's noise floor): a retry
                    # later is no likelier to pass than one soon, and a chunk waits for its last
                    # entry. 2,000-entry chunks with 10% throttled took 1.0 to 1.8 s with the
                    # full backoff, against 0.55 s unthrottled.
                    delay *= NOISE_BACKOFF
                run.done.put(_Retry(pending, attempt, time.monotonic() + delay))

            try:
                out = self.send(batch, attempt=attempt, later=later)
                run.done.put((out, getattr(self._timing, "rtt", 0.0)))
            except BaseException as e:  # noqa: BLE001 - not swallowed: the publishing thread re-raises it
                run.done.put(e)

    def send(self, batch: list[Entry], preflight: bool = False, attempt: int = 0,
             later: Callable[[list[Entry], int], None] | None = None) -> Outcome:
        """One request with retries of its retryable entries; 413 splits the request.

        ``attempt``: how many times these entries were sent before. ``later``: where entries
        that a 200 answer failed with a retryable code go, to be sent again when their
        backoff is over (without it, this thread sleeps the backoff and sends them itself)."""
        import botocore.exceptions as bx

        out = Outcome()
        pending = list(batch)
        answered = False  # the endpoint has answered (an error or not): it can be reached
        unreached = 0     # connection failures in a row before it answered at all
        while pending:
            attempt += 1
            out.requests += 1
            # The round trip counts the wait for the shared rate too: where the rate is the
            # limit (a quota, max_requests_per_second), more requests in flight would only
            # queue for it, so they must not look like a network to fill. With the wait left
            # out, 64 threads queued at a throttled rate, each holding a slot reserved at an
            # older rate: 0.29 of a 100 requests/s quota used, against 0.5-0.77 with 8.
            started = time.monotonic()
            self._timing.rtt = 0.0  # a request that failed or was retried says nothing of the latency
            self.rate.acquire()
            try:
                if pending[0].bus_v2:
                    resp = self._v2_client(pending[0].bus_v2).put_events(EventBusArn=pending[0].bus_v2,
                                                        Entries=[e.entry for e in pending])
                elif self._send_body is not None:
                    resp = self._send_body(request_body(e.json or entry_json(e.entry) for e in pending))
                else:
                    resp = self.client.put_events(Entries=[e.entry for e in pending])
            except bx.ClientError as e:
                answered = True
                code, msg, status = _client_error(e)
                if status >= 500 or not status:
                    _may_have_landed(pending)  # a server error can come after the work was done
                if self._http_error(code, msg, status, pending, attempt, preflight, out):
                    continue
                return out
            except bx.NoCredentialsError:
                raise CredentialsError("no AWS credentials were found",
                                       fix="Set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, an AWS profile "
                                           "(aws_profile), SSO, or run where an instance role is available"
                                       ) from None
            except (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError,
                    bx.ConnectionClosedError, bx.SSLError) as e:
                # The first request gives up sooner when the endpoint never answered: one that
                # cannot be reached at all should fail the run quickly (exit 2), with nothing
                # published. Once it has answered (a throttle, a 500), a dropped connection is a
                # fault like any other and gets the whole max_attempts.
                if not answered:
                    unreached += 1
                if not isinstance(e, bx.EndpointConnectionError | bx.ConnectTimeoutError):
                    _may_have_landed(pending)  # the request may have been read before the connection went
                quick = preflight and not answered and unreached >= min(3, self.max_attempts)
                if self._connection_error(e, pending, attempt, quick, out):
                    continue
                return out
            answered = True
            if not isinstance(resp.get("Entries"), list):
                # A 200 whose body has no Entries is no EventBridge answer (another service
                # behind endpoint_url answered): the rows are not at fault, the endpoint is.
                raise EndpointError("could not reach EventBridge: the endpoint answered PutEvents without its "
                                    "Entries, which is not an EventBridge answer",
                                    fix=f"Check {_endpoint_setting(pending)} (with endpoint_id, requests go to "
                                        "endpoint_url when it is set); what was accepted before is recorded, "
                                        "nothing else was")
            if out.requests == 1:
                self._timing.rtt = time.monotonic() - started
            pending = self._entry_answers(resp, pending, attempt, out)
            if pending:
                out.retried_entries += len(pending)
                if later is not None:
                    later(pending, attempt)
                    return out
                self._backoff(attempt)
        return out

    def _http_error(self, code: str, msg: str, status: int, pending: list[Entry], attempt: int, preflight: bool,
                    out: Outcome) -> bool:
        """The request was answered with an error: True to send ``pending`` again (after the
        backoff), False when ``out`` holds the last word on them. Raises when the run must stop."""
        if _not_eventbridge(code, status):
            # An answer no AWS service gives (a web page, a proxy's 404): the endpoint is
            # not EventBridge. Rejecting every row would say the rows are bad; they are not.
            raise EndpointError(f"could not reach EventBridge: the endpoint answered HTTP {status} "
                                f"({' '.join(msg.split())[:120]}), which is not an EventBridge answer",
                                fix=f"Check {_endpoint_setting(pending)} / the region and any proxy; what was "
                                    "accepted before is recorded, nothing else was") from None
        if status == 413 or code in ("RequestEntityTooLarge", "PayloadTooLargeException") \
                or (code == "InvalidInputException" and len(pending) > 1):
            # A v2 bus refuses a whole request for one bad entry (or for its size): halves
            # find the entry, which alone is rejected with the service's reason.
            self._split(pending, preflight, out)
            return False
        if code in AUTH_CODES or code == "ResourceNotFoundException":
            if preflight:
                _refused(code, msg)
            for x in pending:
                out.reject(x, code, msg)
            return False
        if _throttle_code(code):
            self.rate.answered(len(pending), len(pending), whole=True)  # every entry of it
        if (code in RETRYABLE_REQUEST_CODES or status >= 500) and self._retry(code, pending, attempt):
            out.retried_entries += len(pending)
            # In this thread: against a request quota, senders asleep in their backoff are
            # part of what paces them (deferring these retries instead: 0.18 of a 100
            # requests/s quota used, against 0.5 to 0.77 this way; make bench, 2026-12-07).
            self._backoff(attempt)
            return True
        if code in RETRYABLE_REQUEST_CODES or status >= 500:
            msg = _still_failing(msg, code, attempt, pending)
        for x in pending:
            out.reject(x, code or f"HTTP{status}", msg)
        out.attempts.update((x.seq, attempt) for x in pending)
        return False

    def _split(self, pending: list[Entry], preflight: bool, out: Outcome) -> None:
        """AWS refused the request as too large: each half is sent as its own request."""
        if len(pending) == 1:
            out.reject(pending[0], "EntryTooLarge", f"AWS refused the entry as too large ({pending[0].size} bytes)")
            return
        half = len(pending) // 2
        out.merge(self.send(pending[:half], preflight))
        out.merge(self.send(pending[half:], preflight))

    def _connection_error(self, error: Exception, pending: list[Entry], attempt: int, quick: bool,
                          out: Outcome) -> bool:
        """The request got no answer: True to send ``pending`` again (after the backoff), False
        when ``out`` holds the last word on them. ``quick``: the first request of a run, to an
        endpoint that never answered: the run stops."""
        if attempt < self.max_attempts and not quick:
            out.retried_entries += len(pending)
            self._backoff(attempt)
            return True
        if quick:
            raise EndpointError(f"could not reach EventBridge: {error}",
                                fix=f"Check {_endpoint_setting(pending)} / the region and the network; nothing was "
                                    "published") from None
        for x in pending:
            out.reject(x, "ConnectionError", str(error))
        out.attempts.update((x.seq, attempt) for x in pending)
        return False

    def _entry_answers(self, resp: Mapping[str, Any], pending: list[Entry], attempt: int,
                       out: Outcome) -> list[Entry]:
        """Records EventBridge's answer for each entry of a 200 response; returns those to retry."""
        results = resp.get("Entries", [])
        retry: list[Entry] = []
        for entry, result in zip(pending, results):
            if result.get("EventId"):
                out.accepted.append((entry, result["EventId"]))
                if result.get("SuccessCode") == "DEDUPLICATED":
                    out.deduplicated.add(entry.seq)
                if attempt > 1:
                    out.attempts[entry.seq] = attempt
                continue
            code = result.get("ErrorCode") or "Unknown"
            msg = result.get("ErrorMessage") or ""
            if code in RETRYABLE_ENTRY_CODES and self._retry(code, [entry], attempt):
                retry.append(entry)
            else:
                if code in RETRYABLE_ENTRY_CODES:
                    msg = _still_failing(msg, code, attempt, [entry])
                out.reject(entry, code, msg)
                out.attempts[entry.seq] = attempt
        # In proportion: one throttled entry of ten is a tenth of a throttled request.
        self.rate.answered(len(results), sum(1 for r in results if r.get("ErrorCode") == "ThrottlingException"))
        if len(results) < len(pending):  # a malformed response must not count as delivery
            for x in pending[len(results):]:
                out.reject(x, "NoResponse", "EventBridge returned no result for this entry")
        return retry


class _KeyOrder:
    """Per-key order on a v2 bus: a key's later entry is not sent until its earlier one is
    accepted, and is held back (rejected with ORDER_HELD, sent again by the next run) once
    the earlier one is rejected. So retries, concurrent requests and a key planned twice
    never put a key's later change ahead of an earlier one. A plan has one change per key,
    so this costs a dict entry per key in flight and holds nothing back in the usual run."""

    def __init__(self, on_outcome: Callable[[Outcome], None]) -> None:
        self._on_outcome = on_outcome
        self.busy: dict[str, deque[Entry]] = {}  # key -> its entries waiting behind the one out
        self.ready: deque[Entry] = deque()        # released, to go in the next request
        self.failed: set[str] = set()             # keys with a change not delivered in this run
        self.waiting = 0
        self.wait: Callable[[], None] = _nothing_to_wait_for

    def batches(self, entries: Iterable[Entry], max_bytes: int, on_oversize: Callable[[Entry], None],
                max_entries: int) -> Iterator[list[Entry]]:
        """Like :func:`batches`, with each key at most once among the entries out; when only
        entries waiting for their key are left, the batch goes and answers are awaited."""
        batch: list[Entry] = []
        size = 0
        source = iter(entries)
        exhausted = False
        while True:
            if self.ready:
                e = self.ready.popleft()
            elif not exhausted:
                nxt = next(source, None)
                if nxt is None:
                    exhausted = True
                    continue
                e = nxt
                k = e.key_text or key_text(e.key)
                if k in self.failed:
                    self._hold_back([e])
                    continue
                if e.size > max_bytes:
                    self.failed.add(k)
                    on_oversize(e)
                    continue
                q = self.busy.get(k)
                if q is not None:
                    q.append(e)
                    self.waiting += 1
                    continue
                self.busy[k] = deque()
            elif self.waiting:
                if batch:
                    yield batch
                    batch, size = [], 0
                else:
                    self.wait()
                continue
            else:
                break
            if batch and (len(batch) == max_entries or size + e.size > max_bytes):
                yield batch
                batch, size = [], 0
            batch.append(e)
            size += e.size
        if batch:
            yield batch

    def settle(self, out: Outcome) -> None:
        """An outcome from the publisher: free each answered key (or release its next entry)."""
        held: list[Entry] = []
        for entry, _ in out.accepted:
            q = self.busy.get(entry.key_text or key_text(entry.key))
            if q:
                self.ready.append(q.popleft())
                self.waiting -= 1
            elif q is not None:
                del self.busy[entry.key_text or key_text(entry.key)]
        for entry, _ in out.rejected:
            k = entry.key_text or key_text(entry.key)
            self.failed.add(k)
            q = self.busy.pop(k, None)
            if q:
                self.waiting -= len(q)
                held += q
        self._on_outcome(out)
        if held:
            self._hold_back(held)

    def _hold_back(self, entries: list[Entry]) -> None:
        out = Outcome()
        for e in entries:
            out.reject(e, ORDER_HELD, "not sent: an earlier change of this key was not delivered in this run; "
                       "both are sent by the next run, in order")
        self._on_outcome(out)


def _nothing_to_wait_for() -> None:
    raise AssertionError("entries wait for answers before any request was sent")


@dataclass
class _Retry:
    """Entries to send again once ``due`` (time.monotonic()), after ``attempt`` attempts."""

    entries: list[Entry]
    attempt: int
    due: float


class _Retries:
    """Entries waiting out their backoff; handed back as requests (up to 10 entries under the
    size limit) of entries that are due and were tried as often."""

    def __init__(self, max_request_bytes: int) -> None:
        self.max_request_bytes = max_request_bytes
        self._waiting: list[_Retry] = []

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def add(self, retry: _Retry) -> None:
        self._waiting.append(retry)

    def wait(self, now: float) -> float:
        return max(0.0, min(r.due for r in self._waiting) - now)

    def due(self, now: float) -> list[tuple[list[Entry], int]]:
        """Once an entry is due, it goes with those due within MERGE_AHEAD seconds: the
        backoff's jitter spreads them, and one at a time they would fill no request."""
        if not self._waiting or min(r.due for r in self._waiting) > now:
            return []
        until = now + MERGE_AHEAD
        ready = [r for r in self._waiting if r.due <= until]
        self._waiting = [r for r in self._waiting if r.due > until]
        by_attempt: dict[int, list[Entry]] = {}
        for r in ready:
            by_attempt.setdefault(r.attempt, []).extend(r.entries)
        return [(b, attempt) for attempt, entries in sorted(by_attempt.items())
                for b in batches(entries, self.max_request_bytes, _never)]


def _never(entry: Entry) -> None:
    raise AssertionError("an entry over the size limit was sent before")  # batches() dropped it the first time


class _Run:
    """One publish() call's requests: what is in flight, what waits out its backoff, and
    the window of entries sent and not yet journaled."""

    def __init__(self, publisher: Publisher, on_outcome: Callable[[Outcome], None], window: int | None,
                 journal: Callable[[], None] | None) -> None:
        self.publisher = publisher
        self.limit = publisher.limit
        self.on_outcome = on_outcome
        self.window = window
        self.journal = journal
        self.done: queue.SimpleQueue[tuple[Outcome, float] | _Retry | BaseException] = queue.SimpleQueue()
        self.stop = threading.Event()
        self.later = _Retries(publisher.max_request_bytes)
        self.outstanding = 0  # requests queued or in flight whose answer was not handed on yet
        self.unsettled = 0    # entries sent whose last word (accepted, rejected) has not come
        self.settled = 0      # entries answered since the last journal() call

    def submit(self, batch: list[Entry], attempt: int) -> None:
        self.publisher._senders(self.limit.limit)
        self.publisher._work.put((batch, attempt, self))
        self.outstanding += 1
        if not attempt:
            self.unsettled += len(batch)

    def send_due(self) -> None:
        for batch, attempt in self.later.due(time.monotonic()):
            self.submit(batch, attempt)

    def make_room(self, entries: int) -> None:
        """Wait until a request of ``entries`` new entries may go: a free slot, and room in
        the window (journaling what was answered when that is what frees it)."""
        while True:
            full = self.outstanding >= self.limit.limit + max(2, self.limit.limit // 4)
            if full:
                self.limit.waited()
            elif self.window is None or self.unsettled + self.settled + entries <= self.window:
                return
            elif self.settled and self.journal is not None and not self.outstanding:
                # (with requests out, drain journals as soon as half the window is answered)
                self._journal()
                continue
            elif not self.outstanding and not self.later:
                return  # a request larger than the window, with nothing else out: it goes alone
            self._wait()
            self.send_due()

    def wait_for_answers(self) -> None:
        """Until an answer comes (or a retry is sent): entries wait for their key's."""
        self._wait()
        self.send_due()

    def finish(self) -> None:
        while self.outstanding or self.later:
            self.send_due()
            self._wait()

    def _wait(self) -> None:
        """Hand on the next answers (waiting at most until a retry is due), or, with no request
        out, sleep until the next retry is due."""
        if self.outstanding:
            self.drain(block=True, timeout=self.later.wait(time.monotonic()) if self.later else None)
        elif self.later:
            time.sleep(self.later.wait(time.monotonic()))

    def _journal(self) -> None:
        assert self.journal is not None
        self.journal()
        self.settled = 0

    def drain(self, *, block: bool, timeout: float | None = None) -> None:
        """Hand on outcomes (with ``block``, at least one, or wait until ``timeout``). Entries
        to retry are kept in ``later``. An exception raised by a sender is raised here."""
        while self.outstanding:
            try:
                item = self.done.get(timeout=timeout) if block else self.done.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Retry):
                self.later.add(item)
                due = self.later.wait(time.monotonic())
                timeout = due if timeout is None else min(timeout, due)
                continue
            self.outstanding -= 1
            if isinstance(item, BaseException):
                raise item
            out, rtt = item
            if rtt:
                self.limit.answered(rtt)
            answered = len(out.accepted) + len(out.rejected)
            self.unsettled -= answered
            self.settled += answered
            self.on_outcome(out)
            if self.window is not None and self.journal is not None and self.settled >= self.window // 2:
                self._journal()
            block = False  # one answer handed on: take the rest that are there, then return


def _may_have_landed(entries: list[Entry]) -> None:
    """These entries' request got no answer, or a server error: EventBridge may have taken them.
    If they end rejected (whatever the code of their last attempt), the run says they may have
    been delivered (model.Outcome.maybe_delivered): a lost answer, then a throttled retry, is
    still maybe delivered, and on a v2 bus the next run must send it under the same token."""
    for e in entries:
        e.maybe_delivered = True


def _endpoint_setting(pending: list[Entry]) -> str:
    return "v2_endpoint_url (DBT_EVENTBRIDGE_V2_ENDPOINT_URL)" if pending and pending[0].bus_v2 else "endpoint_url"


def _still_failing(msg: str, code: str, attempt: int, entries: list[Entry]) -> str:
    """The reason of entries given up on after ``attempt`` attempts."""
    first = min((x.throttled_at for x in entries if x.throttled_at), default=0.0)
    if _throttle_code(code) and first:
        return f"{msg} (still throttled after {attempt} attempts over {time.monotonic() - first:.0f} s)".strip()
    return f"{msg} (still failing after {attempt} attempts)".strip()


def _throttle_code(code: str) -> bool:
    return "Throttl" in code or code in ("TooManyRequestsException", "RequestLimitExceeded")


def _client_error(e: ClientError) -> tuple[str, str, int]:
    """(code, message, HTTP status) of a botocore ClientError."""
    err = e.response.get("Error", {})
    code = str(err.get("Code") or "")
    msg = str(err.get("Message") or e)
    status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return code, msg, status


def _refused(code: str, msg: str) -> NoReturn:
    """The first request was refused for the run as a whole: a missing bus, or credentials."""
    if code == "ResourceNotFoundException":
        raise TerminalError(f"EventBridge says: {msg}",
                            fix="Create the event bus, or fix `event_bus` (a name in this account and region, "
                                "or an ARN)") from None
    # AWS's signature errors carry the whole canonical request after a blank line: the first line says it.
    msg = msg.strip().split("\n")[0][:300]
    raise CredentialsError(f"AWS refused the request ({code}): {msg}",
                           fix="Check the credentials, the region, the events:PutEvents permission on the bus, "
                               "and with role_arn that the role's trust policy allows sts:AssumeRole (with this "
                               "external ID)") from None
