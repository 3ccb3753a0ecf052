"""Alert conditions: whether each trigger of an alert holds for what a run did to one sync.

What a run's status says about each trigger; any other status leaves the stored state as it
is, because that run cannot tell whether the condition holds:

* ``failed``: fires on ``error``; recovers on ``success``, ``partial`` or ``blocked``.
* ``rejected``: fires on ``success``/``partial`` at the threshold; recovers on them below it.
* ``mass_removal``: fires on ``blocked``; recovers on ``success`` or ``partial``.
* ``stale``: every status but ``dry_run``, from ``last_success_at`` (see :func:`stale_since`).
* ``interrupted``: fires when the run found that an earlier run of the sync was killed before
  it finished (it completed that run's plan: ``interrupted``, or ``recovered`` changes), whatever
  its own status; recovers on ``success``, ``partial`` or ``blocked`` without one (those runs
  got past the check). An ``error`` without one cannot tell: it may have failed before looking.

Dry runs never alert nor recover anything. Skipped syncs (their model failed in dbt) only
evaluate ``stale``. A failure of the whole run is reported with the sync name ``(run)``;
it passes every alert's ``syncs`` filter, only evaluates ``failed``, and recovers on the
next run that reports any sync (that run did load the project).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dbt_eventbridge.config.alerts import RUN_SYNC as RUN_SYNC  # re-exported: callers build SyncStatus with it
from dbt_eventbridge.config.alerts import AlertConfig

MAX_SAMPLES = 5  # rejected rows quoted in a notification

# Statuses whose run got far enough to say something about each trigger.
_COMPLETED = ("success", "partial")
_STALE_STATUSES = ("success", "partial", "error", "blocked", "skipped")


@dataclass
class SyncStatus:
    """What a run did for one sync, with what run history says about its last success."""

    sync: str                # the sync's name; RUN_SYNC for a failure of the whole run
    model: str
    status: str              # success | partial | error | skipped | blocked | dry_run
    exit_code: int
    message: str | None
    run_id: str
    planned: dict[str, int]  # added / changed / removed
    sent: dict[str, int]
    rejected: int
    last_success_at: dt.datetime | None   # last run with status success/partial, this one included
    finished_at: dt.datetime
    # Samples {key, op, code, reason}, as the run result keeps them (key is any JSON value).
    rejections: list[dict[str, Any]] = field(default_factory=list)
    # The sync's first recorded run: a sync that never succeeded is stale once this is
    # older than stale_after_hours. None: measured from this run instead.
    first_run_at: dt.datetime | None = None
    # What this run found of an earlier run of the sync that was killed before it finished
    # (SyncResult.recovered: the changes that run had delivered, recorded by this one).
    # ``interrupted`` also says so when that run had delivered nothing yet (recovered 0).
    recovered: int = 0
    interrupted: bool = False
    interrupted_run_id: str | None = None  # which run was killed, when the run history says


def utc(t: dt.datetime) -> dt.datetime:
    # Naive times are taken as UTC, which is what the run history stores.
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def found_interrupted(s: SyncStatus) -> bool:
    """Whether this run found (and completed) an earlier run that was killed before it finished."""
    return s.interrupted or s.recovered > 0


def rejected_share(s: SyncStatus) -> float:
    attempted = sum(s.sent.values()) + s.rejected
    return s.rejected / attempted if attempted else 0.0


def rejected_over_threshold(alert: AlertConfig, s: SyncStatus) -> bool:
    """Rejected rows at or above either threshold; a threshold of 0 is off."""
    by_rows = alert.rejected_min_rows > 0 and s.rejected >= alert.rejected_min_rows
    by_share = alert.rejected_min_share > 0 and s.rejected > 0 and rejected_share(s) >= alert.rejected_min_share
    return by_rows or by_share


def stale_since(s: SyncStatus) -> dt.datetime:
    """Where staleness is measured from: the last success, else the first run, else this run.

    A sync that never succeeded has had ``stale_after_hours`` from its first recorded run to
    succeed once. Without that date, the clock starts at this run: a new sync is not stale on
    its first run, and its errors are the ``failed`` trigger's business.
    """
    return utc(s.last_success_at or s.first_run_at or s.finished_at)


def evaluate(alert: AlertConfig, s: SyncStatus, now: dt.datetime) -> dict[str, bool | None]:
    """Each of the alert's triggers -> True (holds), False (cleared) or None (this run cannot tell)."""
    out: dict[str, bool | None] = {}
    for trigger in alert.triggers:
        out[trigger] = _condition(trigger, alert, s, utc(now))
    return out


def _condition(trigger: str, alert: AlertConfig, s: SyncStatus, now: dt.datetime) -> bool | None:
    if s.status == "dry_run":
        return None
    if s.sync == RUN_SYNC:
        return s.status == "error" if trigger == "failed" else None
    if trigger == "failed":
        return True if s.status == "error" else False if s.status in _COMPLETED + ("blocked",) else None
    if trigger == "rejected":
        return rejected_over_threshold(alert, s) if s.status in _COMPLETED else None
    if trigger == "mass_removal":
        return True if s.status == "blocked" else False if s.status in _COMPLETED else None
    if trigger == "stale":
        if s.status not in _STALE_STATUSES:
            return None
        return now - stale_since(s) > dt.timedelta(hours=alert.stale_after_hours)
    if trigger == "interrupted":
        if found_interrupted(s):
            return True
        # These statuses are reached only after the sync's lock was taken and any earlier plan
        # completed; an error may come before that point, so it does not say "none found".
        return False if s.status in _COMPLETED + ("blocked",) else None
    return None


def with_run_recovery(statuses: Sequence[SyncStatus]) -> list[SyncStatus]:
    """Add a successful RUN_SYNC status when a real run reported syncs but no run failure.

    A run that reports syncs did load the project, so an earlier failure of the whole run
    has recovered; nothing else would ever say so.
    """
    out = list(statuses)
    real = [s for s in out if s.status != "dry_run"]
    if not real or any(s.sync == RUN_SYNC for s in out):
        return out
    last = max(real, key=lambda s: utc(s.finished_at))
    out.append(SyncStatus(
        sync=RUN_SYNC, model="", status="success", exit_code=max(s.exit_code for s in real), message=None,
        run_id=last.run_id, planned={}, sent={}, rejected=0, last_success_at=None, finished_at=last.finished_at))
    return out
