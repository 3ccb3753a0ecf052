"""The shared adaptive request rate, on a simulated clock."""

from __future__ import annotations

from dbt_eventbridge.delivery.rate import AdaptiveRate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept += s
        self.now += s


def test_unlimited_until_throttled_then_half_of_what_was_sent() -> None:
    c = Clock()
    r = AdaptiveRate(None, clock=c, sleep=c.sleep)
    for _ in range(200):  # 200 requests within one second, no waiting
        r.acquire()
        c.now += 0.004
    assert c.slept == 0 and r.rate is None
    r.throttled()
    assert r.rate == 100.0  # 200 were sent in the last second: half of it


def test_one_cut_per_second_and_never_below_the_floor() -> None:
    c = Clock()
    r = AdaptiveRate(40, clock=c, sleep=c.sleep)
    r.throttled()
    r.throttled()  # responses to requests already in flight: no second cut
    assert r.rate == 10.0  # max(floor, min(40, observed 0 -> floor) / 2) -> floor
    c.now += 1.5
    r.throttled()
    assert r.rate == AdaptiveRate.MIN_RPS


def test_paces_requests_at_the_rate() -> None:
    c = Clock()
    r = AdaptiveRate(20, clock=c, sleep=c.sleep)
    start = c.now
    for _ in range(41):
        r.acquire()
    assert abs((c.now - start) - 2.0) < 1e-6  # 41 requests at 20/s span 2 seconds


def test_grows_five_percent_a_second_up_to_the_cap() -> None:
    c = Clock()
    r = AdaptiveRate(1000, clock=c, sleep=c.sleep)
    r.rate = 100.0
    for _ in range(10):
        c.now += 0.1
        r.succeeded()
    assert 105.0 < r.rate < 105.2  # 0.5% per 0.1 s, compounding
    for _ in range(1000):
        c.now += 1
        r.succeeded()
    assert r.rate == 1000


def test_shared_rate_paces_several_processes_together() -> None:
    """--workers: two forked processes drawing from one shared rate of 50 requests/s."""
    import multiprocessing
    import time as _time

    r = AdaptiveRate(50, shared=True)
    ctx = multiprocessing.get_context("fork")
    stamps = ctx.Queue()

    def draw() -> None:
        for _ in range(25):
            r.acquire()
            stamps.put(_time.monotonic())

    procs = [ctx.Process(target=draw) for _ in range(2)]
    for p in procs:
        p.start()
    got = sorted(stamps.get(timeout=10) for _ in range(50))
    for p in procs:
        p.join(10)
    # 50 requests at 50/s span about one second; two independent rates would take half that
    assert got[-1] - got[0] >= 0.9, got[-1] - got[0]
