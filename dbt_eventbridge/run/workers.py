"""``--workers N``: render and publish a sync's plan in N processes.

One process renders and signs about 15,000 events/s; PutEvents quotas go to 100,000/s.
The parent process keeps the warehouse connection (an embedded DuckDB allows one
writer process), reads the plan chunk by chunk as before, splits each chunk by a hash of
the key and hands the rows to the workers. Each worker renders and publishes its share
with its own client and threads, and every process takes its requests from one shared
request rate (:class:`~dbt_eventbridge.publish.AdaptiveRate`, in shared memory), so
``max_requests_per_second`` and throttling back-off hold for the whole run. The acks
come back to the parent, which journals them as before: the state and the crash
guarantees do not change, except that two chunks can be in flight at once.

Workers are forked, so they inherit the compiled templates and dbt's context; they
never touch the warehouse connection, and they die with the parent.
"""

from __future__ import annotations

import os
import queue
import signal
import time
import zlib
from collections.abc import Callable
from typing import Any

from dbt_eventbridge.delivery.publisher import Publisher
from dbt_eventbridge.delivery.rate import AdaptiveRate
from dbt_eventbridge.delivery.render import Renderer
from dbt_eventbridge.errors import EventBridgeSyncError, TerminalError, TransientError
from dbt_eventbridge.run.tally import Tally
from dbt_eventbridge.warehouse.changes import ChangeReader


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the parent dies (a killed run must not leave publishers)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _worker(index: int, inbox: Any, results: Any, others: list[Any], renderer: Renderer,
            make_publisher: Callable[[], Publisher], history_detail: bool | None) -> None:

    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    for conn in others:
        conn.close()
    publisher = make_publisher()
    reader: ChangeReader | None = None
    while True:
        try:
            msg = inbox.recv()
        except (EOFError, OSError):
            break
        if msg is None:
            break
        chunk, names, shape, rows = msg
        out = Tally(history_detail=history_detail)
        try:
            if reader is None or reader.names != names:
                reader = ChangeReader(names, shape)
            t = time.perf_counter()
            entries = renderer.render_many(reader(rows), out.on_unrendered)
            out.render_seconds = time.perf_counter() - t
            publisher.publish(entries, out.on_outcome, preflight=False)
        except EventBridgeSyncError as e:  # sent back as it is: the parent fails the sync with it
            out.error = e
        except Exception as e:  # noqa: BLE001 - a bug must fail the sync, not hang the parent
            out.error = TerminalError(f"publishing failed in a worker process: {e.__class__.__name__}: {e}",
                                      fix="Run again (what was delivered is recorded); if it repeats, run with "
                                          "--workers 1 and report it")
        results.put((chunk, index, out))
    os._exit(0)  # no atexit handlers: they belong to the parent (dbt, the warehouse)


class WorkerPool:
    """N forked publishing processes fed chunk by chunk."""

    def __init__(self, n: int, renderer: Renderer, make_publisher: Callable[[], Publisher],
                 history_detail: bool | None = None) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        self.n = n
        self.results: Any = ctx.Queue()
        self._pending: dict[int, list[Tally | None]] = {}
        pipes = [ctx.Pipe(duplex=False) for _ in range(n)]  # (reader, writer)
        self._conns = [w for _, w in pipes]
        self._procs = []
        for i, (r, _) in enumerate(pipes):
            others = list(self._conns) + [rr for j, (rr, _) in enumerate(pipes) if j != i]
            p = ctx.Process(target=_worker, args=(i, r, self.results, others, renderer, make_publisher, history_detail),
                            name=f"eb-worker-{i}", daemon=True)
            p.start()
            self._procs.append(p)
        for r, _ in pipes:
            r.close()

    @staticmethod
    def partition(reader: ChangeReader, rows: list[tuple[Any, ...]], n: int) -> list[list[tuple[Any, ...]]]:
        """Rows split by a stable hash of their key: one key always goes to the same worker."""
        parts: list[list[tuple[Any, ...]]] = [[] for _ in range(n)]
        for row in rows:
            parts[zlib.crc32(repr(reader.key_of(row)).encode()) % n].append(row)
        return parts

    def dispatch(self, chunk: int, names: list[str], shape: Any, parts: list[list[tuple[Any, ...]]]) -> None:
        self._pending[chunk] = [None] * self.n
        for conn, rows in zip(self._conns, parts):
            try:
                conn.send((chunk, names, shape, rows))
            except (BrokenPipeError, OSError):
                raise TerminalError("a publishing worker process stopped unexpectedly",
                                    fix="Run again (nothing unacknowledged was recorded); if it repeats, run "
                                        "with --workers 1 and report it") from None

    def collect(self, chunk: int) -> list[Tally]:
        """Wait for every worker's result for ``chunk``."""
        slots = self._pending[chunk]
        while any(s is None for s in slots):
            try:
                c, i, res = self.results.get(timeout=1.0)
            except queue.Empty:
                dead = [p.name for p in self._procs if not p.is_alive()]
                if dead:
                    raise TransientError(f"publishing worker process(es) {', '.join(dead)} died",
                                        fix="Run again: rows whose delivery was not acknowledged are sent "
                                            "again; if it repeats, run with --workers 1 and report it") from None
                continue
            self._pending[c][i] = res
        del self._pending[chunk]
        return [s for s in slots if s is not None]

    def close(self) -> None:
        for conn in self._conns:
            try:
                conn.send(None)
                conn.close()
            except OSError:
                pass
        deadline = time.monotonic() + 10
        for p in self._procs:
            p.join(max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join()
        self.results.close()
        self.results.join_thread()


def shared_rate(max_rps: float | None) -> AdaptiveRate:
    return AdaptiveRate(max_rps, shared=True)
