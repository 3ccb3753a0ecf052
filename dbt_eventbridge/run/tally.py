"""What publishing one chunk did: the one accumulator, the same in this process and in
``--workers`` processes (it is picklable and merges), applied to the sync's result once
per chunk, before its acks are journaled."""

from __future__ import annotations

from dataclasses import dataclass, field

from dbt_eventbridge.errors import EventBridgeSyncError
from dbt_eventbridge.model import Change, Outcome, Rejection, maybe_delivered
from dbt_eventbridge.run.results import SyncResult
from dbt_eventbridge.warehouse.history import EventBuffer


@dataclass
class Tally:
    # None: no run history (a dry run); otherwise whether events keep their detail.
    history_detail: bool | None = None
    acked: list[int] = field(default_factory=list)       # plan seqs EventBridge accepted
    sent: dict[str, int] = field(default_factory=dict)   # accepted entries per op
    rejections: list[Rejection] = field(default_factory=list)
    requests: int = 0
    retried_entries: int = 0
    deduplicated: int = 0                                 # accepted entries a v2 bus had already
    maybe_delivered: int = 0                              # rejected, but EventBridge may have them
    render_seconds: float = 0.0                           # in worker processes (in-process: timed directly)
    events: EventBuffer = field(default_factory=EventBuffer)  # for the run history
    error: EventBridgeSyncError | None = None            # a worker's failure, sent back as it is

    def on_outcome(self, out: Outcome) -> None:
        """How EventBridge answered a request (the publisher's callback)."""
        for entry, _event_id in out.accepted:
            self.sent[entry.op] = self.sent.get(entry.op, 0) + 1
            self.acked.append(entry.seq)
        self.rejections += [r for _, r in out.rejected]
        self.requests += out.requests
        self.retried_entries += out.retried_entries
        self.deduplicated += len(out.deduplicated)
        self.maybe_delivered += sum(1 for e, r in out.rejected if e.maybe_delivered or maybe_delivered(r.code))
        if self.history_detail is not None:
            self.events.add_outcome(out, self.history_detail)

    def on_unrendered(self, change: Change, rejection: Rejection) -> None:
        """A row that could not become an entry: never sent, retried next run."""
        self.rejections.append(rejection)
        if self.history_detail is not None:
            self.events.add_unrendered(change.key, change.op, rejection.code, rejection.reason)

    def merge(self, other: Tally) -> None:
        self.acked += other.acked
        for op, n in other.sent.items():
            self.sent[op] = self.sent.get(op, 0) + n
        self.rejections += other.rejections
        self.requests += other.requests
        self.retried_entries += other.retried_entries
        self.deduplicated += other.deduplicated
        self.maybe_delivered += other.maybe_delivered
        self.render_seconds += other.render_seconds
        self.events.extend(other.events)
        self.error = self.error or other.error

    def into(self, result: SyncResult, max_rejections: int) -> None:
        """Count this chunk in the sync's result."""
        for op, n in self.sent.items():
            result.sent[op] += n
        for r in self.rejections:
            result.add_rejection(r, max_rejections)
        result.requests += self.requests
        result.retried_entries += self.retried_entries
        result.deduplicated += self.deduplicated
        result.maybe_delivered += self.maybe_delivered
        if self.render_seconds:
            result.add_time("render", self.render_seconds)
