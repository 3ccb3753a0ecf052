"""Where a sync's plan lives while it is published, and what happens to it after.

A real run keeps the plan in the state schema under the sync's lock, journals each
chunk's acks and commits them into the state (:class:`StatePlan`). A dry run keeps it
in a temporary table of the session and writes nothing (:class:`TempPlan`). The run
itself (:mod:`dbt_eventbridge.run.sync_run`) is one flow over either.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from dbt_eventbridge.errors import EventBridgeSyncError
from dbt_eventbridge.faults import CrashPoints
from dbt_eventbridge.run.tally import Tally
from dbt_eventbridge.warehouse import diff as planning
from dbt_eventbridge.warehouse import state as state_store
from dbt_eventbridge.warehouse.history import History
from dbt_eventbridge.warehouse.layout import Layout
from dbt_eventbridge.warehouse.lock import SyncLock
from dbt_eventbridge.warehouse.project import DbtProject
from dbt_eventbridge.warehouse.tables import StateTables, ensure_schema

PlanSql = Callable[[Any, bool], str]  # (the state relation, handle duplicated keys) -> the plan's SELECT


class PlanStore(Protocol):
    interrupted: Layout | None  # the plan of an interrupted run that recover() completed
    plan: Any           # the plan's relation, once created
    blocks: bool        # whether the mass-removal guard stops the run here (a dry run shows what it would send)

    def opened(self) -> contextlib.AbstractContextManager[None]: ...
    def recover(self, warn: Callable[[str], None]) -> int: ...
    def previous(self) -> tuple[Layout | None, bool, Any, bool]: ...
    def create(self, plan_sql: PlanSql, state: Any, dups: bool, shape: planning.ModelShape, ops: list[str],
               layout: Layout) -> None: ...
    def journal(self, tally: Tally) -> None: ...
    def delivered_count(self) -> int: ...
    def finish(self, unsettled: bool = False) -> None: ...
    def abandon(self, journaled: int) -> None: ...


def _create(project: DbtProject, plan_sql: PlanSql, state: Any, dups: bool, shape: planning.ModelShape,
            make: Callable[[str], Any]) -> Any:
    """The plan, made again with duplicate handling when the model gained a duplicated key
    after the audit (a concurrent rebuild)."""
    plan = make(plan_sql(state, dups))
    if not dups and planning.has_duplicate_keys(project, plan, shape):
        plan = make(plan_sql(state, True))
    return plan


class StatePlan:
    """A real run: the plan and its journal in the state schema, under the sync's lock."""

    blocks = True

    def __init__(self, project: DbtProject, tables: StateTables, keys: list[str], *, lock_ttl: int,
                 lock_wait: int, history: History | None, crash: CrashPoints) -> None:
        self.project = project
        self.tables = tables
        self.keys = keys
        self.lock_ttl = lock_ttl
        self.lock_wait = lock_wait
        self.history = history
        self.crash = crash
        self.plan: Any = tables.plan
        self._lock: SyncLock | None = None
        self.interrupted: Layout | None = None  # the plan of an interrupted run that recover() completed

    @contextlib.contextmanager
    def opened(self) -> Iterator[None]:
        ensure_schema(self.project, self.tables)
        with SyncLock(self.project, self.tables, ttl=self.lock_ttl, wait=self.lock_wait) as lock:
            self._lock = lock
            self.crash.reach("locked")
            yield

    def recover(self, warn: Callable[[str], None]) -> int:
        """Migrate a state an earlier version wrote; complete an interrupted run's commit."""
        state_store.migrate_legacy(self.project, self.tables, warn)
        if not state_store.pending_replay(self.project, self.tables):
            return 0
        self.interrupted = state_store.pending_layout(self.project, self.tables)
        return state_store.replay(self.project, self.tables, self.keys, self.crash)

    def previous(self) -> tuple[Layout | None, bool, Any, bool]:
        layout, committed = state_store.read_layout(self.project, self.tables)
        return layout, committed, self.tables.state, self.tables.owned.check(self.tables.state)

    def create(self, plan_sql: PlanSql, state: Any, dups: bool, shape: planning.ModelShape, ops: list[str],
               layout: Layout) -> None:
        self.crash.reach("plan.start")

        def make(sql: str) -> Any:
            state_store.create_plan(self.project, self.tables, sql, ops, layout)
            return self.tables.plan

        self.plan = _create(self.project, plan_sql, state, dups, shape, make)
        self.crash.reach("plan.created")

    def journal(self, tally: Tally) -> None:
        """A chunk's acks (and its events, for the history) in one transaction."""
        self.crash.reach("publish.chunk_sent")
        with self.project.transaction():
            state_store.journal(self.project, self.tables, tally.acked)
            if self.history is not None and len(tally.events):
                self.history.add_events(self.tables.sync, tally.events)
        self.crash.reach("publish.journaled")
        if self._lock is not None:
            self._lock.heartbeat()

    def delivered_count(self) -> int:
        return state_store.delivered_count(self.project, self.tables)

    def finish(self, unsettled: bool = False) -> None:
        self.crash.reach("commit.start")
        state_store.commit(self.project, self.tables, self.keys, self.crash, unsettled)
        self.crash.reach("commit.done")

    def abandon(self, journaled: int) -> None:
        """After a failure (or the mass-removal guard): keep what EventBridge accepted, forget
        the rest of the plan.

        If nothing was sent, nothing is written (exit code 2 promises no state). If some
        chunks were delivered before the failure, their acks are committed so they are
        not sent again; if even that fails, the plan stays for the next run's replay.
        """
        try:
            if journaled:
                state_store.commit(self.project, self.tables, self.keys, self.crash)
            else:
                state_store.drop_plan(self.project, self.tables)
        except EventBridgeSyncError:
            pass


class TempPlan:
    """A dry run: the plan in a temporary table of this session, read back in seq ranges like
    a real run's (one diff, memory bounded by batch_size); nothing is written."""

    blocks = False

    def __init__(self, project: DbtProject, tables: StateTables) -> None:
        self.project = project
        self.tables = tables
        self.plan: Any = None
        self.interrupted: Layout | None = None

    def opened(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def recover(self, warn: Callable[[str], None]) -> int:
        return 0  # a real run completes an interrupted one first; the plan below reads the state as it is

    def previous(self) -> tuple[Layout | None, bool, Any, bool]:
        layout, committed = state_store.read_layout(self.project, self.tables)
        state: Any = self.tables.state
        if layout is None and not committed:
            legacy = state_store.legacy_layout(self.project, self.tables)
            if legacy is not None:  # written by an earlier version: the real run migrates it first
                return legacy[0], True, legacy[1], True
        return layout, committed, state, self.tables.owned.check(state)

    def create(self, plan_sql: PlanSql, state: Any, dups: bool, shape: planning.ModelShape, ops: list[str],
               layout: Layout) -> None:
        def make(sql: str) -> str:
            self._drop()
            self.plan = planning.create_temp_plan(self.project, sql, self.tables.schema)
            return str(self.plan)

        _create(self.project, plan_sql, state, dups, shape, make)

    def journal(self, tally: Tally) -> None:
        pass

    def delivered_count(self) -> int:
        return state_store.delivered_count(self.project, self.tables)

    def finish(self, unsettled: bool = False) -> None:
        self._drop()

    def abandon(self, journaled: int) -> None:
        self._drop()

    def _drop(self) -> None:
        if self.plan is not None:
            planning.drop_temp_plan(self.project, self.plan)
            self.plan = None
