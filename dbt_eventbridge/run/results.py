"""What a run did, for people (summary lines) and machines (the result file)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dbt_eventbridge.model import OPS, Rejection

RESULT_FILE = "eventbridge_sync_results.json"

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_FAILED = 2


@dataclass
class SyncResult:
    sync: str
    model: str
    status: str = "pending"  # success | partial | error | skipped | dry_run
    event_bus: str | None = None
    planned: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPS, 0))
    sent: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPS, 0))
    rejected: int = 0
    not_triggered: int = 0       # changes recorded in the state without an event (trigger off)
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
    rebaselined: int = 0         # rows whose fingerprint was updated without sending
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
            parts.append(f"{'would record' if dry else 'recorded'} without event {self.not_triggered}")
        if self.rebaselined:
            parts.append(f"re-baselined {self.rebaselined}")
        if self.recovered:
            parts.append(f"recovered {self.recovered} from an interrupted run")
        if self.initial_sync_skipped:
            parts.append("initial sync skipped (rows " + ("would be " if dry else "") + "recorded as delivered)")
        label = {"success": "OK     ", "partial": "PARTIAL", "dry_run": "DRY RUN"}.get(self.status, self.status)
        return f"{label} {head}: {', '.join(parts)} in {self.seconds:.2f}s"

    def add_time(self, phase: str, seconds: float) -> None:
        self.timings[phase] = self.timings.get(phase, 0.0) + seconds

    def add_rejection(self, rejection: Rejection, limit: int) -> None:
        self.rejected += 1
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
    syncs: list[SyncResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    retryable: bool = False      # the run's error can clear by running again unchanged
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
