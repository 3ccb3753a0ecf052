"""What a run did, for people (summary lines) and machines (the result file)."""

from __future__ import annotations

import datetime as dt
import getpass
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dbt_eventbridge.model import OPS, Rejection

RESULT_FILE = "eventbridge_sync_results.json"

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_FAILED = 2

# What held a sync back, so that it did nothing (SyncResult.blocked_by): another run holds it,
# its model's last build or tests failed in dbt, or the mass-removal guard stopped it.
BLOCKED_BY_LOCK = "lock"
BLOCKED_BY_MODEL = "model_failed"
BLOCKED_BY_MASS_REMOVAL = "mass_removal"


def os_user() -> str | None:
    """Who runs this process (the OS user), for the run history; None where the OS cannot say."""
    try:
        return getpass.getuser() or None
    except Exception:  # noqa: BLE001 - no user name (a container without one): the record says so
        return None


def actions(full_refresh: bool = False, allow_mass_removal: bool = False, rebaseline: bool = False) -> str | None:
    """What an operator asked of a sync beyond an ordinary run, as the run history records it:
    ``rebaseline``, ``full-refresh``, ``allow-mass-removal`` (comma-separated), or None."""
    if rebaseline:  # (the rebaseline command lets removals through itself: nothing is sent)
        return "rebaseline"
    asked = [name for name, on in (("full-refresh", full_refresh), ("allow-mass-removal", allow_mass_removal)) if on]
    return ",".join(asked) or None


@dataclass
class SyncResult:
    sync: str
    model: str
    status: str = "pending"  # success | partial | error | skipped | blocked | dry_run
    event_bus: str | None = None
    action: str | None = None    # what was asked beyond an ordinary run (see actions())
    blocked_by: str | None = None  # lock | model_failed | mass_removal: what held the sync back
    planned: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPS, 0))
    sent: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPS, 0))
    rejected: int = 0
    rejected_by_op: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPS, 0))
    # Planned changes recorded in the state without an event: their trigger is off
    # (not_triggered), the rebaseline command took them as delivered (in rebaselined), or
    # the sync's first run skipped them (initial_skipped, with initial_sync: skip).
    not_triggered: int = 0
    initial_skipped: int = 0
    invalid_keys: dict[str, Any] = field(default_factory=lambda: {"null_key_rows": 0, "duplicate_key_rows": 0,
                                                                     "duplicate_samples": []})
    rejections: list[dict[str, Any]] = field(default_factory=list)
    rejections_truncated: int = 0
    requests: int = 0
    retried_entries: int = 0
    deduplicated: int = 0        # sent entries a v2 bus answered DEDUPLICATED (it had them: not delivered twice)
    maybe_delivered: int = 0     # rejected with no answer (or a server error): EventBridge may have them
    initial_sync_skipped: bool = False
    recovered: int = 0           # rows an interrupted earlier run had delivered, recorded by this run
    interrupted: bool = False    # this run found an earlier run's plan left by a kill, and completed it
    rebaselined: int = 0         # rows recorded as delivered without sending (a schema change, or `rebaseline`)
    notes: list[str] = field(default_factory=list)  # what this run noticed (a schema change, a reset)
    message: str | None = None
    retryable: bool = False      # an error that running again unchanged can clear (an outage, a lock)
    seconds: float = 0.0
    # Seconds per phase: audit, plan, stream (reading the plan), render, publish (the
    # whole publish loop, stream and render included), journal, commit.
    timings: dict[str, float] = field(default_factory=dict)
    # CPU seconds of this process (every thread) in the publish phase: what an event costs,
    # which wall time hides on a shared machine. Not counted: the --workers processes.
    publish_cpu_seconds: float = 0.0
    started_at: str | None = None
    finished_at: str | None = None
    # One point per published chunk: [seconds since publishing started, sent, rejected].
    timeline: list[list[float]] = field(default_factory=list)
    samples: list[Any] = field(default_factory=list, repr=False, compare=False)  # dry run: entries shown

    @property
    def invalid(self) -> int:
        return int(self.invalid_keys["null_key_rows"]) + int(self.invalid_keys["duplicate_key_rows"])

    @property
    def exit_code(self) -> int:
        if self.status == "error":
            return EXIT_FAILED
        if self.rejected or self.invalid or self.status == "blocked":
            return EXIT_PARTIAL
        return EXIT_OK

    def summary_line(self) -> str:
        head = f"{self.sync} ({self.model})"
        if self.status == "error":
            return f"ERROR   {head}: {self.message}"
        if self.status == "skipped":
            return f"SKIPPED {head}: {self.message}"
        if self.status == "blocked":
            return f"BLOCKED {head}: {self.message}"
        dry = self.status == "dry_run"
        verb = "would send" if dry else "sent"
        parts = [f"{verb} {self.sent['added']} added / {self.sent['changed']} changed / "
                 f"{self.sent['removed']} removed"]
        parts.append(f"rejected {self.rejected}")
        parts.append(f"invalid keys {self.invalid}")
        if self.not_triggered:
            parts.append(f"{'would record' if dry else 'recorded'} without event {self.not_triggered} (trigger off)")
        if self.rebaselined:
            parts.append(f"re-baselined {self.rebaselined} (recorded without event)")
        if self.recovered:
            parts.append(f"recovered {self.recovered} from an interrupted run")
        if self.initial_sync_skipped:
            parts.append(f"initial sync skipped ({self.initial_skipped} row(s) " + ("would be " if dry else "")
                         + "recorded as delivered without event)")
        label = {"success": "OK     ", "partial": "PARTIAL", "dry_run": "DRY RUN"}.get(self.status, self.status)
        return f"{label} {head}: {', '.join(parts)} in {self.seconds:.2f}s"

    def log_fields(self) -> dict[str, Any]:
        """The sync's counts as structured fields (a JSON log line): numbers as numbers, times
        with their zone; what a log collector sums and alerts on without parsing the summary."""
        return {
            "sync": self.sync, "model": self.model, "status": self.status, "exit_code": self.exit_code,
            "event_bus": self.event_bus, "action": self.action, "blocked_by": self.blocked_by,
            "planned": {op: int(self.planned.get(op, 0)) for op in OPS},
            "sent": {op: int(self.sent.get(op, 0)) for op in OPS},
            "rejected": {op: int(self.rejected_by_op.get(op, 0)) for op in OPS},
            "rejected_total": self.rejected,
            "not_triggered": self.not_triggered, "rebaselined": self.rebaselined,
            "initial_skipped": self.initial_skipped, "initial_sync_skipped": self.initial_sync_skipped,
            "deduplicated": self.deduplicated, "maybe_delivered": self.maybe_delivered,
            "recovered": self.recovered,
            "invalid_keys": {"null_key_rows": int(self.invalid_keys["null_key_rows"]),
                             "duplicate_key_rows": int(self.invalid_keys["duplicate_key_rows"])},
            "requests": self.requests, "retried_entries": self.retried_entries,
            "seconds": round(self.seconds, 3), "started_at": self.started_at, "finished_at": self.finished_at,
            "message": self.message,
        }

    def add_time(self, phase: str, seconds: float) -> None:
        self.timings[phase] = self.timings.get(phase, 0.0) + seconds

    def add_rejection(self, rejection: Rejection, limit: int) -> None:
        self.rejected += 1
        self.rejected_by_op[rejection.op] = self.rejected_by_op.get(rejection.op, 0) + 1
        if len(self.rejections) < limit:
            self.rejections.append(rejection.to_dict())
        else:
            self.rejections_truncated += 1


@dataclass
class RunResult:
    run_id: str
    started_at: str
    finished_at: str | None = None
    dbt_invocation_id: str | None = None
    dry_run: bool = False
    run_by: str | None = field(default_factory=os_user)  # the OS user who ran it
    syncs: list[SyncResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    retryable: bool = False      # the run's error can clear by running again unchanged
    blocked_by: str | None = None  # the run's error held every sync back (lock: the warehouse is held)
    result_file: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # as used, secrets masked
    startup_seconds: float = 0.0   # dbt parse, selection and opening the adapter
    # dbt's parse of the project: {"files": of the project, "parsed": parsed again (0: nothing
    # changed since the last parse, dbt's partial parse reused everything)}
    parse: dict[str, int] | None = None
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        if self.error:
            return EXIT_FAILED
        return max([s.exit_code for s in self.syncs], default=EXIT_OK)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for sd in d["syncs"]:
            sd.pop("samples", None)
        d["exit_code"] = self.exit_code
        for s, sd in zip(self.syncs, d["syncs"]):
            sd["exit_code"] = s.exit_code
            sd["timings"] = {k: round(v, 4) for k, v in s.timings.items()}
        return d

    def write(self, target_dir: Path) -> Path:
        target_dir.mkdir(exist_ok=True)
        path = target_dir / RESULT_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, default=str))
        tmp.replace(path)
        return path


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
