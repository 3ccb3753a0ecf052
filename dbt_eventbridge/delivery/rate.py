"""One request rate for a whole run: ``max_requests_per_second`` as a ceiling, cut when our
own rate causes throttling (not when others on the account do), and grown back quickly to the
last rate that went through; in shared memory when ``--workers`` processes share it."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any


class AdaptiveRate:
    """The request rate shared by every publishing thread (and, with ``shared``, process).

    Unlimited (or ``max_rps``) until EventBridge throttles. Every answer reports how many of
    its entries were throttled (all of them when the whole request was); the last second's share
    of throttled entries (at least 50 answered: fewer is chance) decides, at most once a second:

    - **A decisive cut.** At a share ``f`` above the noise floor (plus a margin), the rate becomes
      what was sent in the last second times ``min(0.5, 1 - (f - floor))``: halved, or cut to
      what went through when more than half was refused.
    - **Noise is not our rate.** Other producers on the account get entries throttled at a
      share that does not depend on our rate. So the cut is held for a second and checked: if
      the share stayed within 40% (and two standard deviations) of what it was, and at most
      half, the cut did not help: the rate goes back to where it was, and that share becomes
      the noise floor, which later decisions ignore. The floor follows the share down, and is
      gone after a second without throttling. Halving makes the check decisive: a rate above a
      quota loses most of its throttling when halved; noise keeps all of it. If the share
      grows while a cut is held (a cut made on a second that mixed in answers from before the
      throttling), the next cut comes after 0.2 s, not a second.
    - **A request quota is not halved for.** Requests refused whole are the account's quota:
      the rate goes to 95% of the requests that passed in the last second, and is not held
      for a check (it is never noise).
    - **Quick recovery.** After a cut the rate climbs back to the last rate that went through
      (requests/s accepted over a whole second), closing most of the gap within a third of a
      second (as TCP CUBIC and botocore's adaptive mode return to their last good window), then
      probes above it by 5% a second. Each cut lowers that remembered rate by half the excess
      share, so a quota that really fell is not hammered.

    Measured with ``tests/unit/test_rate.py``'s simulation (a client of 1,000 requests/s): with
    10% of entries throttled at random the previous rule (halve on any throttled answer, once
    a second) fell to its floor of 10 requests/s; this one keeps 1,000 after its first second.
    Under a token-bucket quota of 100 requests/s both use about all of it.

    The state is a small array of numbers so that ``--workers`` processes can share it
    (``multiprocessing`` shared memory and lock); CLOCK_MONOTONIC is system-wide on Linux,
    so the processes agree on time.
    """

    MIN_RPS = 10.0
    COOLDOWN = 1.0  # one decision per second: answers to requests already in flight say nothing new
    HELPED = 0.6    # a cut helped when the throttled share fell below this fraction of what it was
    RECOVER_SECONDS = 1.0
    CUT = 0.5  # at least halved: a decisive cut, so that its check can tell noise from a quota
    MIN_SAMPLE = 50  # answered entries in the window before a decision: 5 throttled of 10 is chance
    (_RATE, _NEXT, _LAST_CUT, _LAST_GROW, _THROTTLES, _BUCKET, _BEFORE_CUT, _SHARE_AT_CUT, _CHECK, _FLOOR,
     _GOOD, _START, _LAST_WHOLE, _ANSWERED_AT_CUT) = range(14)
    _SLOTS = 10  # counted per 1/10 s over the last second: requests, answered entries, throttled entries,
    # and requests that went through (not throttled whole)
    _REQ, _ENT, _THR, _ACC = 14, 14 + _SLOTS, 14 + 2 * _SLOTS, 14 + 3 * _SLOTS
    _SIZE = 14 + 4 * _SLOTS
    QUOTA_MARGIN = 0.95  # of what a request quota let through: the rate after its throttling

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
        s[self._GOOD] = 0.0
        s[self._START] = math.inf  # the first request's time
        s[self._LAST_WHOLE] = -math.inf  # the last request throttled whole

    @property
    def rate(self) -> float | None:
        r = self._s[self._RATE]
        return None if math.isnan(r) else r

    @rate.setter
    def rate(self, value: float | None) -> None:
        self._s[self._RATE] = math.nan if value is None else value

    @property
    def throttle_events(self) -> int:
        """Answers that carried a throttle (of any of their entries)."""
        return int(self._s[self._THROTTLES])

    @property
    def noise_floor(self) -> float:
        """The share of entries throttled whatever our rate (0 when none is known)."""
        return float(self._s[self._FLOOR])

    def _count(self, now: float) -> None:
        """Move the per-1/10 s counters forward to ``now`` (under the lock)."""
        s, n = self._s, self._SLOTS
        bucket = math.floor(now * n)
        gap = int(bucket - s[self._BUCKET])
        if gap > 0:
            for i in range(min(gap, n)):
                slot = int(bucket - i) % n
                s[self._REQ + slot] = s[self._ENT + slot] = s[self._THR + slot] = s[self._ACC + slot] = 0.0
            s[self._BUCKET] = bucket

    def _window(self, first: int) -> float:
        return float(sum(self._s[first:first + self._SLOTS]))

    def acquire(self) -> None:
        s = self._s
        with self._lock:
            now = self._clock()
            self._count(now)
            s[self._START] = min(s[self._START], now)
            rate = s[self._RATE]
            if math.isnan(rate):
                s[self._REQ + int(s[self._BUCKET]) % self._SLOTS] += 1
                return
            slot = max(now, s[self._NEXT])
            s[self._NEXT] = slot + 1.0 / rate
            self._count(slot)
            s[self._REQ + math.floor(slot * self._SLOTS) % self._SLOTS] += 1
        if slot > now:
            self._sleep(slot - now)

    def answered(self, entries: int, throttled: int, whole: bool = False) -> None:
        """An answer to a request of ``entries`` entries, ``throttled`` of them throttled
        (``whole``: the request was refused as a whole, as the account's request quota does)."""
        s = self._s
        with self._lock:
            now = self._clock()
            if whole:
                s[self._LAST_WHOLE] = now
            self._count(now)
            current = int(s[self._BUCKET]) % self._SLOTS
            s[self._ENT + current] += entries
            s[self._THR + current] += throttled
            if throttled < entries:
                s[self._ACC + current] += 1
            if throttled:
                s[self._THROTTLES] += 1
            if now - s[self._LAST_CUT] >= self.COOLDOWN:
                self._decide(now)
            elif s[self._CHECK] and now - s[self._LAST_CUT] >= 0.2:
                self._worse(now)
            self._grow(now)

    def throttled(self) -> None:
        """A request throttled whole (one entry's worth of signal when its size is unknown)."""
        self.answered(1, 1, whole=True)

    def succeeded(self) -> None:
        self.answered(1, 0)

    def _worse(self, now: float) -> None:
        """While a cut is held for its check: a cut far too small (the share it was made on
        mixed in answers from before the throttling began) is not held for a whole second."""
        s, n = self._s, self._SLOTS
        bucket = int(s[self._BUCKET])
        thrown = s[self._THR + bucket % n] + s[self._THR + (bucket - 1) % n]
        answered = s[self._ENT + bucket % n] + s[self._ENT + (bucket - 1) % n]
        if answered < self.MIN_SAMPLE:
            return
        before = s[self._SHARE_AT_CUT]
        share = thrown / answered
        if share > min(0.95, before / self.HELPED + 2.0 * math.sqrt(before * (1.0 - before) / answered)):
            # Cut by the last second's share: the last 0.2 s tell that it got worse, but a
            # quota with a burst allowance lets a second's worth through at its start.
            # The check that follows judges both cuts: if it finds noise, the rate goes back to
            # where it was before the first (keeping the second's rate there instead stranded
            # it at a quarter, then lower with each repeat: 0.07x of the unthrottled events/s
            # in a make bench run, 2026-12-07).
            first = s[self._BEFORE_CUT]
            s[self._CHECK] = 0.0
            whole = self._window(self._THR) / max(1.0, self._window(self._ENT))
            self._cut(now, max(whole, before), self._sent(now))
            s[self._BEFORE_CUT] = first

    def _sent(self, now: float) -> float:
        """Requests per second over the last second (or since the first request)."""
        return self._window(self._REQ) / min(1.0, max(1e-3, now - float(self._s[self._START])))

    def _decide(self, now: float) -> None:
        """Once a second at most (under the lock): cut, restore, or leave the rate."""
        s = self._s
        sent = self._sent(now)
        whole = now - s[self._START] >= 1.0  # a whole second to judge what goes through
        thrown = self._window(self._THR)
        if not thrown:
            s[self._FLOOR] = 0.0  # a second without throttling: no noise left
            s[self._CHECK] = 0.0
            if whole:
                s[self._GOOD] = max(s[self._GOOD], sent)
            return
        answered = self._window(self._ENT)
        if answered < self.MIN_SAMPLE:
            return  # too few answers to tell a share from chance
        share = thrown / answered
        if whole:  # the last good rate: what went through, never more
            s[self._GOOD] = max(s[self._GOOD], sent * (1.0 - share))
        if s[self._CHECK]:  # a second after a cut: what did it do to the share?
            s[self._CHECK] = 0.0
            before = s[self._SHARE_AT_CUT]
            # Two standard deviations of the difference of two shares, each measured on its own
            # sample: a cut made on a share of 0.2 measured on 85 answered entries at the start
            # of a run (10% noise, by chance) saw 0.07 a second later and took the drop for its
            # own effect; it cut again and the run went on at 43 requests/s (0.06x).
            var = before * (1.0 - before)
            chance = 2.0 * math.sqrt(var / answered + var / max(1.0, s[self._ANSWERED_AT_CUT]))
            # Requests refused whole are the account's request quota: cutting helps there, so
            # they are never noise (a bench run once took that for noise, and went back up).
            quota = now - s[self._LAST_WHOLE] < self.COOLDOWN
            if not quota and self.HELPED * before - chance <= share <= min(0.5, before / self.HELPED + chance):
                # Nothing: the throttling is not ours to fix. Back to the rate before the cut.
                s[self._FLOOR] = max(s[self._FLOOR], min(share, before))
                s[self._RATE] = s[self._BEFORE_CUT]
                s[self._LAST_CUT] = now
                return
        floor = s[self._FLOOR]
        if share < floor:
            s[self._FLOOR] = floor = share
        # Above the floor by more than chance: the floor follows the share down, so at a few
        # hundred entries a second it sat in the low tail of the noise and its next ordinary
        # second looked like more throttling (a cut, held for a second, every few seconds).
        if share <= floor + 0.02 + 0.3 * floor + 2.0 * math.sqrt(floor * (1.0 - floor) / answered):
            return
        self._cut(now, share, sent)

    def _cut(self, now: float, share: float, sent: float) -> None:
        s = self._s
        excess = share - s[self._FLOOR]
        rate = s[self._RATE]
        observed = max(sent, self.MIN_RPS)
        current = observed if math.isnan(rate) else min(rate, observed)
        through = self._window(self._ACC)  # requests that passed in the last second (never extrapolated)
        if now - s[self._LAST_WHOLE] < self.COOLDOWN:
            # Requests refused whole: the account's request quota, which let ``through``
            # requests pass in the last second. The rate goes just under that, with no
            # halving and no check (this is never noise). Halving each time took a third of
            # the quota away: at 100 requests/s, the first throttling cut the rate three
            # times within half a second (225, 113, 56, then 22 on a 3% share) and it took
            # 20 s to climb back; 0.68 of the quota used over a 20k-row backfill. The last
            # good rate loses a tenth a time: ``through`` is low when our own senders were
            # asleep in their backoff, and a quota that others used for a while comes back.
            pace = observed if math.isnan(rate) else rate
            if sent < 0.8 * pace and s[self._GOOD] > through:
                # We sent well under our own rate and were still refused: what is refused now
                # is the burst of the second before, still in the quota's window, or our
                # senders asleep in their backoff; what passed says little about the quota.
                # Cutting to it took the rate from 100 to 13 requests/s a second after the
                # first cut, and 4 s to climb back (0.75 to 0.91 of the quota used, 2026-12-07).
                # With fewer than MIN_RPS passing, this was taken for noise: a halving held for a
                # check, to 10 requests/s, and the last good rate cut to 54 (15 s to recover).
                new = min(pace, s[self._GOOD]) * self.QUOTA_MARGIN
            else:
                new = min(current, through) * self.QUOTA_MARGIN
            s[self._RATE] = new = max(self.MIN_RPS, new)
            s[self._GOOD] = max(new, s[self._GOOD] * 0.9)
            s[self._CHECK] = 0.0
            s[self._LAST_CUT] = now
            return
        s[self._BEFORE_CUT] = rate
        s[self._SHARE_AT_CUT] = share
        s[self._ANSWERED_AT_CUT] = max(self._window(self._ENT), 1.0)
        s[self._CHECK] = 1.0
        s[self._RATE] = new = max(self.MIN_RPS, current * min(self.CUT, 1.0 - excess))
        if s[self._GOOD] > new:  # what went through before may be too much now: half the excess off it
            s[self._GOOD] = max(new, s[self._GOOD] * (1.0 - excess / 2))
        s[self._LAST_CUT] = now

    def _grow(self, now: float) -> None:
        s = self._s
        elapsed = min(1.0, now - s[self._LAST_GROW])
        s[self._LAST_GROW] = now
        rate = s[self._RATE]
        if math.isnan(rate) or elapsed <= 0:
            return
        if s[self._CHECK]:
            return  # a cut under test: hold it, or its second says nothing
        good = s[self._GOOD]
        if rate < good - 0.5:
            # Back to the last rate that went through: the gap closes within a third of
            # RECOVER_SECONDS, never past it. Within half a request a second it is there:
            # approached by fractions on every answer it was never reached, and the rate
            # stayed under it for good (35 requests/s for a minute against a quota of 100).
            rate += (good - rate) * min(1.0, elapsed / self.RECOVER_SECONDS * 3)
            rate = min(rate, good)
        else:
            # Above it, probe by 5% a second (at least 2 requests/s a second): near a quota the
            # rate then climbs slowly instead of bouncing off it.
            rate += max(2.0, rate * 0.05) * elapsed
        if self.max_rps is not None:
            rate = min(rate, self.max_rps)
        s[self._RATE] = rate
