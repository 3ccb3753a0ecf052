"""How many PutEvents requests a process keeps in flight: grown while the network's
latency is the limit, cut when requests start to queue (our CPU, or the endpoint).

Against an endpoint 30 ms away, 8 requests in flight cap a process at 8 x 10 / 0.03 =
2,700 events/s whatever the CPU could do (measured 1,855 events/s against 4,873 at zero
latency in one bench run, 2026-12-07); against a local stub, more threads than the CPU
can feed only add contention for the GIL. So the limit is found, not set: a round is as
many answered requests as the limit; after a round in which the publishing thread had
requests ready but no free slot (it waited on the network), the limit grows by half; when
the round's median round trip is over twice the smallest seen (plus 2 ms, the noise of a
local endpoint), requests queue somewhere, and it shrinks by a fifth, never below where it
started (8, or the cap when lower): a request throttled whole waits out its backoff in its
thread, and with fewer threads than that a throttled run stalled (0.42 of a 100 requests/s
quota used with the limit down to 1, against 0.5-0.77 with 8). ``concurrency`` (the
setting) caps it. TCP Vegas and Netflix's concurrency-limits gradient work the same
way: latency above the floor means a queue.
"""

from __future__ import annotations

import statistics

START = 8
GROW = 1.5
SHRINK = 0.8
QUEUE_FACTOR = 2.0
QUEUE_SLACK = 0.002  # seconds


class AdaptiveConcurrency:
    """Used by the publishing thread only (no lock): ``limit`` requests in flight."""

    def __init__(self, cap: int, start: int = START) -> None:
        self.cap = max(1, cap)
        self.limit = self.floor = min(self.cap, max(1, start))
        self.min_rtt = float("inf")
        self._rtts: list[float] = []
        self._waited = False

    def waited(self) -> None:
        """The publishing thread had a request ready and every slot was taken."""
        self._waited = True

    def answered(self, rtt: float) -> None:
        """The round trip of one request that went out once (seconds)."""
        self.min_rtt = min(self.min_rtt, rtt)
        self._rtts.append(rtt)
        if len(self._rtts) < max(self.limit, 4):
            return
        median = statistics.median(self._rtts)
        if median > QUEUE_FACTOR * self.min_rtt + QUEUE_SLACK:
            self.limit = max(self.floor, int(self.limit * SHRINK))
        elif self._waited:
            self.limit = min(self.cap, max(self.limit + 1, int(self.limit * GROW)))
        self._rtts.clear()
        self._waited = False
