"""Where rendered entries go. A real run publishes them (:class:`~dbt_eventbridge.delivery.
publisher.Publisher`); a dry run records them with :class:`DryRunSink`, and everything
else (plan, render, counts, the mass-removal guard) is the same run."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import IO, Protocol

from dbt_eventbridge.jsonvalues import to_json_value
from dbt_eventbridge.model import Entry, Outcome


class Sink(Protocol):
    def publish(self, entries: Iterable[Entry], on_outcome: Callable[[Outcome], None],
                preflight: bool = True, window: int | None = None,
                journal: Callable[[], None] | None = None) -> bool:
        """Deliver the entries, reporting each answer to ``on_outcome``; True when any was sent.
        ``window``: at most that many entries sent and not journaled (``journal`` is called
        to journal what was reported so far)."""
        ...


class DryRunSink:
    """Accepts every entry without sending it: writes it to ``--output`` as a JSON line and
    keeps the first ``samples`` to show. The event id of each entry is its real one."""

    def __init__(self, sync: str, output: IO[str] | None, samples: int) -> None:
        self.sync = sync
        self.output = output
        self.max_samples = samples
        self.samples: list[Entry] = []

    def publish(self, entries: Iterable[Entry], on_outcome: Callable[[Outcome], None],
                preflight: bool = True, window: int | None = None,
                journal: Callable[[], None] | None = None) -> bool:
        out = Outcome()
        for e in entries:
            if self.output is not None:
                line = {"sync": self.sync, "op": e.op, "key": to_json_value(e.key), "event_id": e.event_id,
                        "entry": to_json_value(e.entry)}
                if e.change is not None:  # a keyed preview (--key): what the change is made of
                    line["old_row"] = to_json_value(e.change.old_row)
                    line["changed_columns"] = e.change.changed_columns
                self.output.write(json.dumps(line, ensure_ascii=False) + "\n")
            if len(self.samples) < self.max_samples:
                self.samples.append(e)
            out.accepted.append((e, e.event_id))
        on_outcome(out)
        return bool(out.accepted)
