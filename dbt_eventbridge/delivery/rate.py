"""One request rate for a whole run: ``max_requests_per_second`` as a ceiling, halved when
EventBridge throttles and grown back as requests succeed; in shared memory when
``--workers`` processes take their requests from it."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any


class AdaptiveRate:
    """The request rate shared by every publishing thread (and, with ``shared``, process).

    Unlimited (or ``max_rps``) until EventBridge throttles; then it halves from what was
    actually being sent (at most once a second), and climbs back by 5% a second while
    requests succeed. Retries therefore slow down instead of storming the account's quota.

    The state is a small array of numbers so that ``--workers`` processes can share it
    (``multiprocessing`` shared memory and lock); CLOCK_MONOTONIC is system-wide on Linux,
    so the processes agree on time.
    """

    MIN_RPS = 10.0
    COOLDOWN = 1.0  # one halving per second: responses to requests already in flight say nothing new
    _RATE, _NEXT, _LAST_CUT, _LAST_GROW, _THROTTLES, _BUCKET = range(6)
    _SLOTS = 10  # requests counted per 1/10 s over the last second
    _SIZE = 6 + _SLOTS

    def __init__(self, max_rps: float | None = None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, shared: bool = False) -> None:
        self.max_rps = max_rps or None
        self._clock = clock
        self._sleep = sleep
        if shared:
            import multiprocessing

            ctx = multiprocessing.get_context("fork")
            self._s: Any = ctx.RawArray("d", self._SIZE)
            self._lock: Any = ctx.Lock()
        else:
            self._s = [0.0] * self._SIZE
            self._lock = threading.Lock()
        s = self._s
        s[self._RATE] = self.max_rps if self.max_rps is not None else math.nan
        s[self._NEXT] = 0.0
        s[self._LAST_CUT] = -math.inf
        s[self._LAST_GROW] = clock()
        s[self._BUCKET] = math.floor(clock() * self._SLOTS)

    @property
    def rate(self) -> float | None:
        r = self._s[self._RATE]
        return None if math.isnan(r) else r

    @rate.setter
    def rate(self, value: float | None) -> None:
        self._s[self._RATE] = math.nan if value is None else value

    @property
    def throttle_events(self) -> int:
        return int(self._s[self._THROTTLES])

    def _count(self, now: float) -> None:
        """Move the per-1/10 s counters forward to ``now`` (under the lock)."""
        s, n = self._s, self._SLOTS
        bucket = math.floor(now * n)
        gap = int(bucket - s[self._BUCKET])
        if gap > 0:
            for i in range(min(gap, n)):
                s[6 + int(bucket - i) % n] = 0.0
            s[self._BUCKET] = bucket

    def _observed(self) -> float:
        return float(sum(self._s[6:6 + self._SLOTS]))

    def acquire(self) -> None:
        s = self._s
        with self._lock:
            now = self._clock()
            self._count(now)
            rate = s[self._RATE]
            if math.isnan(rate):
                s[6 + int(s[self._BUCKET]) % self._SLOTS] += 1
                return
            slot = max(now, s[self._NEXT])
            s[self._NEXT] = slot + 1.0 / rate
            self._count(slot)
            s[6 + math.floor(slot * self._SLOTS) % self._SLOTS] += 1
        if slot > now:
            self._sleep(slot - now)

    def throttled(self) -> None:
        s = self._s
        with self._lock:
            s[self._THROTTLES] += 1
            now = self._clock()
            if now - s[self._LAST_CUT] < self.COOLDOWN:
                return
            s[self._LAST_CUT] = now
            self._count(now)
            observed = self._observed() or self.MIN_RPS
            current = s[self._RATE] if not math.isnan(s[self._RATE]) else observed
            s[self._RATE] = max(self.MIN_RPS, min(current, observed) * 0.5)

    def succeeded(self) -> None:
        s = self._s
        with self._lock:
            now = self._clock()
            elapsed = min(1.0, now - s[self._LAST_GROW])
            s[self._LAST_GROW] = now
            rate = s[self._RATE]
            if math.isnan(rate):
                return
            # Grow by 5% a second (at least 2 requests/s a second): near the quota the
            # rate then probes upward slowly instead of bouncing off it.
            rate += max(2.0, rate * 0.05) * elapsed
            if self.max_rps is not None:
                rate = min(rate, self.max_rps)
            s[self._RATE] = rate
