"""The shared vocabulary of every stage: a change, the entry it becomes, how EventBridge
answered, and a row that was not delivered.

It sits below all stages (config -> plan -> render -> publish -> commit) and imports none
of them, so each stage can speak of changes and entries without importing the stage that
makes them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from dbt_eventbridge.jsonvalues import dumps, to_json_value

Op = Literal["added", "changed", "removed"]
OPS: Final[tuple[Op, Op, Op]] = ("added", "changed", "removed")

_STR = json.encoder.encode_basestring  # C; a JSON string with ensure_ascii=False


@dataclass(slots=True)
class Change:
    """One planned change, as streamed from the plan."""

    seq: int
    op: str
    key: dict[str, Any]
    row: dict[str, Any]            # the new values (for removed: the last delivered values)
    old_row: dict[str, Any] | None  # the last delivered values (changed, removed)
    row_hash: Any
    changed_columns: list[str]


@dataclass
class Entry:
    """A change rendered into one PutEvents entry."""

    seq: int
    op: str
    key: dict[str, Any]
    event_id: str           # "" until asked for, when no template uses it (see Renderer.event_ids)
    entry: dict[str, Any]   # the PutEvents entry
    size: int               # as AWS counts it
    json: str = ""          # the entry as it goes into the request body
    key_text: str = ""      # the key as compact JSON (event ids and the run history), when made
    bus_v2: str = ""        # a Custom Event Bus's ARN: the entry goes through the v2 API (no EventBusName)
    maybe_delivered: bool = False  # a request of it got no answer or a server error (publisher._may_have_landed)
    throttled_at: float = 0.0      # time.monotonic() of its first throttle (publisher: throttle_timeout)
    change: Change | None = None   # what it was rendered from, kept for a keyed preview (--key)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A row that was not delivered on this run, with the reason; it is retried next run.

    ``code`` is EventBridge's error code for an entry it refused, or ours for a row that
    could not become an entry (``RenderError``, ``EntryTooLarge``...)."""

    key: dict[str, Any]
    op: str
    code: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """As the result file and the alerts show it."""
        return {"key": to_json_value(self.key), "op": self.op, "code": self.code, "reason": self.reason}


@dataclass
class Outcome:
    """How EventBridge answered a group of entries (one request, with its retries)."""

    accepted: list[tuple[Entry, str]] = field(default_factory=list)       # entry, AWS EventId
    rejected: list[tuple[Entry, Rejection]] = field(default_factory=list)
    requests: int = 0
    retried_entries: int = 0
    attempts: dict[int, int] = field(default_factory=dict)  # seq -> requests it took, when more than 1
    # seqs of accepted entries that a v2 bus answered DEDUPLICATED: it had them already
    deduplicated: set[int] = field(default_factory=set)

    def reject(self, entry: Entry, code: str, reason: str) -> None:
        self.rejected.append((entry, Rejection(entry.key, entry.op, code, reason)))

    def merge(self, other: Outcome) -> None:
        self.accepted += other.accepted
        self.rejected += other.rejected
        self.attempts.update(other.attempts)
        self.deduplicated |= other.deduplicated
        self.requests += other.requests
        self.retried_entries += other.retried_entries


# Rejection codes after which EventBridge may have taken the entry all the same: no answer
# came (a dropped connection, a lost response), or a server error that may have come after
# the work was done. Such rows are sent again by the next run; on a v2 bus, under the same
# deduplication token (see render.dedup_id), so they are not delivered twice.
MAYBE_DELIVERED_CODES = frozenset({"ConnectionError", "NoResponse", "InternalFailure", "InternalException",
                                   "InternalServerError", "ServiceUnavailable", "ServiceUnavailableException",
                                   "RequestTimeout", "RequestTimeoutException"})


def maybe_delivered(code: str) -> bool:
    return code in MAYBE_DELIVERED_CODES or (code.startswith("HTTP5") and code[4:].isdigit())


def key_text(key: Mapping[str, Any]) -> str:
    """A key as compact JSON in key-column order: in event ids and in the run history."""
    for v in key.values():
        if type(v) is not int and type(v) is not str:  # bool, numbers, dates: made JSON-safe first
            return dumps(to_json_value(dict(key)))
    return dumps(key)


def entry_size(entry: Mapping[str, Any]) -> int:
    """Size as AWS computes it for the PutEvents limit."""
    size = 14 if entry.get("Time") is not None else 0
    for k in ("Source", "DetailType", "Detail", "TraceHeader"):
        v = entry.get(k)
        if v:
            size += len(v.encode("utf-8"))
    for r in entry.get("Resources") or ():
        size += len(r.encode("utf-8"))
    return size


def entry_json(entry: Mapping[str, Any]) -> str:
    """One entry as the JSON that goes into the request body (timestamps as epoch seconds)."""
    t = entry.get("Time")
    if isinstance(t, dt.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.UTC)
        entry = {**entry, "Time": round(t.timestamp(), 6)}
    if len(entry) == 4 and "Resources" not in entry and "Time" not in entry:  # the common case, by hand
        try:
            return (f'{{"Source":{_STR(entry["Source"])},"DetailType":{_STR(entry["DetailType"])},'
                    f'"Detail":{_STR(entry["Detail"])},"EventBusName":{_STR(entry["EventBusName"])}}}')
        except (KeyError, TypeError):
            pass
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
