"""One sync of a run, from plan to commit: the same flow for a real run and a dry run.

config -> plan (diff in the warehouse) -> render -> publish -> commit. The plan is
read chunk by chunk (``batch_size`` rows) and rendered as it is sent; acks are journaled
as answers come, so that at most ``batch_size`` entries are ever sent and not journaled:
a crash makes the next run send again at most that many.
Where the plan lives (:mod:`~dbt_eventbridge.run.plan_store`) and where entries go
(:mod:`~dbt_eventbridge.run.sinks`) are what a dry run changes; nothing else.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from dbt_eventbridge.config.definitions import SyncConfig
from dbt_eventbridge.config.settings import Settings
from dbt_eventbridge.delivery.publisher import Publisher
from dbt_eventbridge.delivery.rate import AdaptiveRate
from dbt_eventbridge.delivery.render import Renderer
from dbt_eventbridge.errors import ConfigError, EventBridgeSyncError, LockedError, Problem
from dbt_eventbridge.faults import CrashPoints
from dbt_eventbridge.jsonvalues import to_json_value
from dbt_eventbridge.model import OPS, Change, Entry, Rejection
from dbt_eventbridge.run.console import Console, Progress
from dbt_eventbridge.run.contracts import sync_contracts
from dbt_eventbridge.run.options import SyncOptions
from dbt_eventbridge.run.plan_store import PlanStore, StatePlan, TempPlan
from dbt_eventbridge.run.results import (
    BLOCKED_BY_LOCK,
    BLOCKED_BY_MASS_REMOVAL,
    BLOCKED_BY_MODEL,
    SyncResult,
    actions,
    now,
)
from dbt_eventbridge.run.sinks import DryRunSink, Sink
from dbt_eventbridge.run.tally import Tally
from dbt_eventbridge.run.workers import WorkerPool, shared_rate
from dbt_eventbridge.warehouse import changes as reading
from dbt_eventbridge.warehouse import diff as planning
from dbt_eventbridge.warehouse.history import History
from dbt_eventbridge.warehouse.layout import Layout
from dbt_eventbridge.warehouse.nodes import LastRun, ModelNode
from dbt_eventbridge.warehouse.project import DbtProject
from dbt_eventbridge.warehouse.tables import StateTables

# Rows rendered before their entries go to the publisher: the first requests of a chunk
# leave after 500 rows are rendered, not 2,000 (rendering is about half of the CPU of
# publishing, and the network waited for all of it).
RENDER_SLICE = 500


class SharedPublisher:
    """The run's publisher, made when a sync first has something to send: a run where nothing
    changed never builds the AWS client (about 0.15 s of CPU)."""

    def __init__(self, make: Callable[[AdaptiveRate | None], Publisher]) -> None:
        self._make = make
        self._made: Publisher | None = None

    def get(self) -> Publisher:
        if self._made is None:
            self._made = self._make(None)
        return self._made

    def close(self) -> None:
        """Its sender threads stop (they start again if it is used after)."""
        if self._made is not None:
            self._made.close()


@dataclass
class RunContext:
    """What every sync of one run shares."""

    project: DbtProject
    settings: Settings
    options: SyncOptions
    last_run: LastRun
    console: Console
    history: History | None                  # None: a dry run writes no history
    publisher: SharedPublisher | None        # the real run's (None: a dry run, or nothing to send)
    make_publisher: Callable[[AdaptiveRate | None], Publisher] | None  # --workers: one per process
    output: IO[str] | None = None            # a dry run's --output


@contextmanager
def _timed(result: SyncResult, phase: str) -> Iterator[None]:
    t = time.perf_counter()
    try:
        yield
    finally:
        result.add_time(phase, time.perf_counter() - t)


class SyncRun:
    """One sync, from plan to commit."""

    def __init__(self, ctx: RunContext, sync: SyncConfig, node: ModelNode) -> None:
        self.ctx = ctx
        self.project = ctx.project
        self.settings = ctx.settings
        self.sync = sync
        self.node = node
        self.dry = ctx.options.dry_run
        self._model_rows = 0  # rows of the model, from its key audit
        opts = ctx.options
        self.result = SyncResult(sync=sync.name, model=sync.model_name, event_bus=sync.event_bus, started_at=now(),
                                 action=actions(opts.full_refresh, opts.allow_mass_removal, opts.rebaseline))
        self.crash = CrashPoints.from_env()
        self.journaled = 0  # rows whose acks are journaled
        self._publish_started = time.perf_counter()
        self._reported = (0, 0)  # sent, rejected at the last timeline point

    def warn(self, message: str) -> None:
        self.ctx.console.warning(f"{self.sync.name}: {message}")

    def run(self) -> SyncResult:
        """Never raises: one sync's failure, expected or not, must not stop the others."""
        t0 = time.perf_counter()
        r = self.result
        try:
            reason = self.ctx.last_run.reason_to_skip(self.node.unique_id)
            if reason or not self.sync.enabled:
                r.status = "skipped"
                r.blocked_by = BLOCKED_BY_MODEL if reason else None
                r.message = (f"not synced because {reason}; its changes will be sent after a successful run"
                             if reason else "disabled in its config (enabled: false)")
                return r
            self._run(StateTables.for_sync(self.project, self.settings.state_schema, self.sync.name))
        except Exception as e:  # noqa: BLE001 - reported in the result, with the fix when we know it
            self._failed(e)
        finally:
            r.seconds = time.perf_counter() - t0
            r.finished_at = now()
        return r

    def _failed(self, e: Exception) -> None:
        r = self.result
        r.status = "error"
        if isinstance(e, LockedError):
            r.blocked_by = BLOCKED_BY_LOCK
        if not isinstance(e, EventBridgeSyncError):
            e = self.project.out_of_memory_error(e) or e
        if isinstance(e, EventBridgeSyncError):
            r.message = str(e)
            r.retryable = e.retryable
            return
        r.message = (f"unexpected error ({e.__class__.__name__}: {e}); nothing was committed for this sync. "
                     "Please report it with the output of a run with DBT_EVENTBRIDGE_DEBUG=1")
        if os.environ.get("DBT_EVENTBRIDGE_DEBUG"):
            traceback.print_exc()

    def _prepare(self) -> tuple[planning.ModelShape, Renderer]:
        """The model's columns, the sync's names resolved against them, its templates compiled."""
        project, sync = self.project, self.sync
        if self.node.materialized == "ephemeral":
            raise ConfigError([Problem(f"{self.node.name} is ephemeral: it has no table or view to diff",
                                       sync.model_name, sync.name, sync.yaml_path,
                                       "Materialize it as a table, view or incremental model")])
        cols = project.columns(self.node)
        if cols is None:
            raise ConfigError([Problem(f"the relation {self.node.relation_name} does not exist", sync.model_name,
                                       sync.name, None, "Run `dbt run` or `dbt build` for the model first")])
        names = [c for c, _ in cols]
        self._cols = cols
        self.sync, shape = planning.resolve_shape(sync, self.node, cols)
        context = project.macro_context()
        problems = Renderer.check(self.sync, project_dir=project.project_dir, dbt_context=context,
                                  model_columns=names)
        if problems:
            raise ConfigError(problems)
        settings = self.settings
        found = sync_contracts(project, self.node, self.sync, cols, event_id_in_detail=settings.event_id_in_detail,
                               checked=True) if settings.validate_events or settings.event_id_in_detail else []
        renderer = Renderer(self.sync, project_dir=project.project_dir, dbt_context=context, model_columns=names,
                            contracts=found if settings.validate_events else (),
                            event_id_in_detail=settings.event_id_in_detail)
        renderer.event_ids = renderer.event_ids or self.dry  # a dry run's output shows them
        if self.ctx.options.keys:  # a keyed preview shows each change whole
            renderer.keep_changes = renderer.uses_old_rows = True
        return shape, renderer

    def _audit(self, model: Any, shape: planning.ModelShape) -> bool:
        """Rows with a NULL or duplicated key are never published; returns whether any key is duplicated."""
        r = self.result
        with _timed(r, "audit"):
            audit = planning.audit_keys(self.project, model, shape)
        self._model_rows = audit.total_rows
        r.invalid_keys = {"null_key_rows": audit.null_key_rows, "duplicate_key_rows": audit.duplicate_key_rows,
                          "duplicate_samples": to_json_value(audit.duplicate_samples)}
        if audit.invalid:
            self.warn(f"{audit.null_key_rows} row(s) with a NULL key and {audit.duplicate_key_rows} row(s) with a "
                      "duplicated key are not published"
                      + (f" (duplicated: {json.dumps(to_json_value(audit.duplicate_samples))})"
                         if audit.duplicate_samples else ""))
        return audit.duplicate_key_rows > 0

    def _store(self, tables: StateTables, keys: list[str]) -> PlanStore:
        if self.dry:
            return TempPlan(self.project, tables)
        return StatePlan(self.project, tables, keys, lock_ttl=self.settings.lock_ttl_seconds,
                         lock_wait=self.settings.lock_wait_seconds, history=self.ctx.history, crash=self.crash)

    def _run(self, tables: StateTables) -> None:
        project, r, opts = self.project, self.result, self.ctx.options
        shape, renderer = self._prepare()
        model = project.relation(self.node)
        keys = self._preview_keys(shape) if opts.keys else None
        if keys is not None:
            model = planning.only_keys(project, model, shape.quoted(project, shape.keys), keys)
        dups = self._audit(model, shape)
        store = self._store(tables, shape.quoted(project, shape.keys))
        with store.opened():
            self._started()
            r.recovered = store.recover(self.warn)
            r.interrupted = store.interrupted is not None
            if r.recovered:
                self.warn(f"completed a run that was interrupted: {r.recovered} row(s) it had delivered are now "
                          "recorded; the rest is planned again")
            elif r.interrupted:
                self.warn("completed a run that was interrupted before any of its rows was recorded as delivered: "
                          "its changes are planned again")
            previous, committed, state, state_exists = store.previous()
            spec = self._plan_spec(shape, previous, state_exists)
            renderer.dedup_token = self._delivery_token(store.interrupted, previous, spec.layout)
            if not spec.with_state and committed and previous is None and not opts.rebaseline:
                self.warn("its delivered state was reset: every row is sent as added")
            ops = self._ops(committed)

            def plan_sql(state: Any, dups: bool, exists_only: bool = False) -> str:
                return planning.plan_select(project, model, state, shape, spec, opts.full_refresh, dups, exists_only,
                                            keys)

            if self._nothing_to_do(spec, lambda: plan_sql(state, dups, True), ops):
                if keys is not None:
                    self._unchanged_keys(keys, shape)
                return
            with _timed(r, "plan"):
                store.create(plan_sql, state, dups, shape, ops, spec.layout)
            try:
                self._plan_and_publish(store, shape, spec, renderer, ops)
            except EventBridgeSyncError:
                store.abandon(self.journaled)
                raise
            if r.status == "blocked" and store.blocks:
                return
            with _timed(r, "commit"):
                store.finish(unsettled=r.maybe_delivered > 0)
        if r.status != "blocked":
            r.status = "dry_run" if self.dry else "partial" if (r.rejected or r.invalid) else "success"
        if keys is not None:
            self._unchanged_keys(keys, shape)

    def _unchanged_keys(self, keys: list[dict[str, Any]], shape: planning.ModelShape) -> None:
        """A keyed preview says why a key it names made no entry."""
        from dbt_eventbridge.model import key_text

        shown = {key_text(e.key) for e in self.result.samples} | {key_text(x["key"]) for x in self.result.rejections}
        project = self.project
        for key in keys:
            if key_text(key) in shown:
                continue
            narrowed = planning.only_keys(project, project.relation(self.node), shape.quoted(project, shape.keys),
                                          [key])
            in_model = bool(project.execute(f"select count(*) from {narrowed} as k", fetch=True)[0][0])
            self.warn(f"key {key_text(key)}: " + (
                "no change to send: the model's row is as delivered (--full-refresh shows its event as added)"
                if in_model else "no row of the model has it, and no delivered row either"))

    def _preview_keys(self, shape: planning.ModelShape) -> list[dict[str, Any]]:
        """The rows --key names, each as a value per key column in the type the column takes
        (42 for a number column, '42' for a text one: PostgreSQL compares no text to a number)."""
        from dbt_eventbridge.config.keys import key_candidates
        from dbt_eventbridge.delivery.contracts import json_type

        types = dict(self._cols)
        out: list[dict[str, Any]] = []
        for text in self.ctx.options.keys:
            for candidate in key_candidates(list(shape.keys), text):
                value = json.loads(candidate)
                if set(value) != set(shape.keys):
                    raise ConfigError([Problem(
                        f"--key {text!r} names {', '.join(value)}, but the key of this sync is "
                        f"{', '.join(shape.keys)}", self.sync.model_name, self.sync.name, None,
                        "Write it as " + ",".join(f"{k}=..." for k in shape.keys))])
                typed: dict[str, Any] = {}
                for k in shape.keys:
                    v, t = value[k], json_type(types.get(k, "")).get("type")
                    numeric = bool({"integer", "number"} & set(t if isinstance(t, list) else [t]))
                    if numeric and isinstance(v, str):
                        break  # the text reading of a number-like key: the number is the other candidate
                    typed[k] = str(v) if not numeric and isinstance(v, int | float) and not isinstance(v, bool) \
                        else v
                else:
                    if typed not in out:
                        out.append(typed)
                    break
            else:
                typed_key = ", ".join(f"{k} {types.get(k, '?')}" for k in shape.keys)
                raise ConfigError([Problem(f"--key {text!r} is not a value of the key ({typed_key})",
                                           self.sync.model_name, self.sync.name, None,
                                           "Give the key's value as the column holds it")])
        return out

    def _delivery_token(self, interrupted: Layout | None, previous: Layout | None, layout: Layout) -> str:
        """The token of this run's DeduplicationIds on a v2 bus (render.dedup_id), recorded in the plan.

        A run inherits the token of the run before it when that run may have delivered rows
        it has no ack for (it was interrupted, or an answer was lost for good): what it sends
        again is then deduplicated by the bus. Only a token that was not itself inherited
        passes on: two runs in a row under one token cannot send the same change of a key
        twice (the second plans against what the first delivered), three could (added,
        removed, added again). --full-refresh and a rebuilt state send again on purpose, and
        get a new token."""
        import secrets

        if not (self.sync.bus_v2 and self.sync.deduplication):
            return ""  # a classic bus has no DeduplicationId: its plans record no token
        if self.dry:
            return "dry-run"  # the real run's token is made (or inherited) when it plans
        token, inherited = secrets.token_hex(8), False
        prior = interrupted or (previous if previous is not None and previous.unsettled else None)
        if prior is not None and prior.token and not prior.token_inherited \
                and not self.ctx.options.full_refresh and not layout.restart:
            token, inherited = prior.token, True
        layout.token, layout.token_inherited = token, inherited
        return token

    def _nothing_to_do(self, spec: planning.PlanSpec, plan_sql: Callable[[], str], ops: list[str]) -> bool:
        """Most runs of most syncs: the model is as delivered. One query says so, instead of a
        plan table, its journal, the counts and a commit (16 statements fewer on DuckDB). (A
        key duplicated since the audit cannot hide a change: its rows either match the
        delivered row, or they are planned, and the full plan handles them.)"""
        opts, r = self.ctx.options, self.result
        if opts.full_refresh or opts.rebaseline or not planning.steady(spec) \
                or self._model_rows > planning.PROBE_MAX_ROWS:
            return False
        with _timed(r, "plan"):
            if planning.anything_planned(self.project, plan_sql()):
                return False
        self._counted(dict.fromkeys(OPS, 0), ops)
        r.status = "dry_run" if self.dry else "partial" if r.invalid else "success"
        return True

    def _started(self) -> None:
        history, sync = self.ctx.history, self.sync
        if history is not None:
            with self.project.transaction():
                history.mark_interrupted(sync.name)
                history.sync_started(sync.name, sync.model_name, sync.event_bus, self.result.started_at or now(),
                                      self.ctx.last_run.invocation_id, action=self.result.action)

    def _ops(self, committed: bool) -> list[str]:
        """The ops this run sends: none on a skipped initial sync or a rebaseline (recorded, not sent)."""
        opts = self.ctx.options
        if not committed and self.sync.initial_sync == "skip" and not opts.full_refresh:
            self.result.initial_sync_skipped = True
            return []
        if opts.rebaseline:
            return []
        return [op for op in OPS if op in self.sync.triggers]

    def _plan_spec(self, shape: planning.ModelShape, previous: Any, with_state: bool) -> planning.PlanSpec:
        opts = self.ctx.options
        spec = planning.plan_spec(shape, planning.hash_version(self.project), previous, with_state,
                                  start_over=opts.full_refresh or opts.rebaseline, sync=self.sync)
        for note in spec.notes:
            self.warn(note)
            self.result.notes.append(note)
        return spec

    def _plan_and_publish(self, store: PlanStore, shape: planning.ModelShape, spec: planning.PlanSpec,
                          renderer: Renderer, ops: list[str]) -> None:
        r = self.result
        with _timed(r, "plan"):
            counts = planning.count_ops(self.project, store.plan)
        self._counted(counts, ops)
        if self._mass_removal(store):
            r.status = "blocked"
            if store.blocks:
                store.abandon(0)
                return
        cpu = time.process_time()
        try:
            with _timed(r, "publish"):
                self._publish(store, self._row_spec(shape, spec), renderer, ops, sum(counts.values()))
        finally:
            r.publish_cpu_seconds += time.process_time() - cpu

    def _row_spec(self, shape: planning.ModelShape, spec: planning.PlanSpec) -> reading.RowSpec:
        return reading.RowSpec.make(shape, spec.previous if spec.with_state else None,
                                    reading.json_types(self.project))

    def _counted(self, counts: dict[str, int], ops: list[str]) -> None:
        r = self.result
        r.planned = {op: counts.get(op, 0) for op in OPS}
        schema_change = counts.get("rebaseline", 0)
        unsent = sum(n for op, n in r.planned.items() if op not in ops)
        # Why a planned change gets no event, each counted once: the rebaseline command takes
        # every row as delivered, a first run with initial_sync: skip records them, or the
        # sync's trigger for the op is off.
        r.rebaselined, r.initial_skipped, r.not_triggered = schema_change, 0, 0
        if self.ctx.options.rebaseline:
            r.rebaselined += unsent
        elif r.initial_sync_skipped:
            r.initial_skipped = unsent
        else:
            r.not_triggered = unsent
        if schema_change:
            self.ctx.console.info(f"{self.sync.name}: {schema_change} row(s) differ only by the schema change: "
                                  "re-baselined without sending")

    def _mass_removal(self, store: PlanStore) -> bool:
        """Stop before publishing when a run would remove too much of what was delivered."""
        r, st = self.result, self.settings
        removed = r.planned["removed"]
        if removed < st.removal_guard_min_rows:
            return False
        delivered = store.delivered_count()
        if not delivered or removed <= st.max_removal_share * delivered:
            return False
        share = f"{removed} of the {delivered} delivered rows ({removed / delivered:.0%}, above max_removal_share " \
                f"{st.max_removal_share:.0%})"
        if self.ctx.options.allow_mass_removal:
            if not self.ctx.options.rebaseline:  # (which sends nothing: nothing to note)
                # The guard would have stopped it: the run history says who let it through.
                r.message = f"--allow-mass-removal let through the removal of {share}"
                self.warn(r.message)
            return False
        r.blocked_by = BLOCKED_BY_MASS_REMOVAL
        would = "a real run would stop" if self.dry else "stopped"
        r.message = (f"{would} before publishing: this run would remove {share}. "
                     "A truncated or half-built model is the usual cause. Nothing was sent or recorded. If the "
                     "removal is real, run again with --allow-mass-removal")
        return True

    def _sink(self) -> Sink:
        if self.dry:
            opts = self.ctx.options
            # a keyed preview shows every entry it makes (a key has one row, and 42 may be 42 or '42')
            return DryRunSink(self.sync.name, self.ctx.output, max(opts.samples, 2 * len(opts.keys)))
        assert self.ctx.publisher is not None, "a real run with something to send has a publisher"
        return self.ctx.publisher.get()

    def _tally(self) -> Tally:
        history = self.ctx.history
        return Tally(history_detail=None if history is None else history.detail)

    def _publish(self, store: PlanStore, spec: reading.RowSpec, renderer: Renderer, ops: list[str],
                 total: int) -> None:
        """Publish the plan, journaling acks as answers come (at least every half chunk).

        At most ``batch_size`` entries are sent and not yet journaled at any time: a crash
        makes the next run send again at most that many, which is the bound on duplicates.
        In this process: always the first request (it checks credentials and the endpoint
        before anything else is sent), and everything with --workers 1; then the worker
        processes, if any, a chunk each.
        """
        if not ops or not total:
            return
        sink = self._sink()
        self._publish_started = time.perf_counter()
        size = self.settings.batch_size
        # --workers N: processes publish the rest of the plan after the first chunk (never a dry run)
        pooled = self.settings.workers > 1 and self.ctx.make_publisher is not None and not self.dry
        pool: WorkerPool | None = None
        outstanding: deque[int] = deque()
        try:
            if not pooled:
                self._publish_here(store, sink, spec, renderer, ops, (0, total), True)
                return
            preflight = True
            for lo in range(0, total, size):
                if pool is None:
                    sent = self._publish_here(store, sink, spec, renderer, ops, (lo, lo + size), preflight)
                    preflight = preflight and not sent
                    if not preflight and lo + size < total:
                        pool = self._pool(renderer)
                    continue
                self._dispatch(pool, store, spec, ops, lo, size, renderer.uses_old_rows)
                outstanding.append(lo)
                if len(outstanding) >= 2:  # read the next chunk while the workers publish this one
                    self._collect(pool, outstanding.popleft(), store)
            while outstanding:
                assert pool is not None
                self._collect(pool, outstanding.popleft(), store)
        finally:
            if pool is not None:
                pool.close()
            self._progress(done=True)
            if self.ctx.history is not None:
                self.ctx.history.flush()
            if isinstance(sink, DryRunSink):
                self.result.samples = sink.samples

    def _publish_here(self, store: PlanStore, sink: Sink, spec: reading.RowSpec, renderer: Renderer,
                      ops: list[str], seqs: tuple[int, int], preflight: bool) -> bool:
        """The plan's rows with seq in ``seqs`` in this process. Their counts reach the result
        even if publishing fails midway (what EventBridge accepted was sent); acks are
        journaled as the publisher asks (each time half of ``batch_size`` was answered) and
        once all are answered, never after a failure."""
        tally = [self._tally()]

        def journal() -> None:
            done, tally[0] = tally[0], self._tally()
            done.into(self.result, self.settings.max_rejections_reported)
            self._journal(store, done)

        entries = self._entries(store, spec, renderer, ops, seqs, lambda c, r: tally[0].on_unrendered(c, r))
        try:
            sent = sink.publish(entries, lambda out: tally[0].on_outcome(out), preflight=preflight,
                                window=self.settings.batch_size, journal=journal)
        finally:
            tally[0].into(self.result, self.settings.max_rejections_reported)
        self._journal(store, tally[0])
        return sent

    def _pool(self, renderer: Renderer) -> WorkerPool:
        """--workers N: the processes that publish the rest of the plan."""
        make = self.ctx.make_publisher
        assert make is not None
        if self.ctx.publisher is not None:
            self.ctx.publisher.close()  # no sender threads across the fork (it starts them again when used)
        rate = shared_rate(self.settings.max_requests_per_second or None)
        history = self.ctx.history
        return WorkerPool(self.settings.workers, renderer, lambda: make(rate),
                          history_detail=None if history is None else history.detail)

    def _entries(self, store: PlanStore, spec: reading.RowSpec, renderer: Renderer, ops: list[str],
                 seqs: tuple[int, int], on_unrendered: Callable[[Change, Rejection], None]) -> Iterator[Entry]:
        """The entries of the plan rows with seq in ``seqs``, a chunk (``batch_size`` rows) read
        whole at a time, so that no result is open in the warehouse while the publisher
        journals; rendered a slice at a time, so that the first requests go out while the
        rest of the chunk renders."""
        r = self.result
        size = self.settings.batch_size
        for lo in range(seqs[0], seqs[1], size):
            with _timed(r, "stream"):
                names, rows = reading.read_chunk(self.project, str(store.plan), ops, spec,
                                                 (lo, min(lo + size, seqs[1])), renderer.uses_old_rows)
            if not rows:
                continue
            changes = reading.ChangeReader(names, spec)(rows)
            for i in range(0, len(changes), RENDER_SLICE):
                t = time.perf_counter()
                entries = renderer.render_many(changes[i:i + RENDER_SLICE], on_unrendered)
                r.add_time("render", time.perf_counter() - t)
                yield from entries

    def _journal(self, store: PlanStore, tally: Tally) -> None:
        r = self.result
        with _timed(r, "journal"):
            store.journal(tally)
        sent = sum(r.sent.values())
        r.timeline.append([round(time.perf_counter() - self._publish_started, 3), sent - self._reported[0],
                           r.rejected - self._reported[1]])
        self._reported = (sent, r.rejected)
        self.journaled += len(tally.acked)
        self._progress()

    def _progress(self, done: bool = False) -> None:
        r = self.result
        sent = sum(r.sent.values())
        elapsed = time.perf_counter() - self._publish_started
        planned = sum(n for op, n in r.planned.items() if op in self.sync.triggers)
        self.ctx.console.progress(Progress(self.sync.name, planned, sent, r.rejected,
                                           sent / elapsed if elapsed > 0 else 0.0, done))

    def _dispatch(self, pool: WorkerPool, store: PlanStore, spec: reading.RowSpec, ops: list[str], lo: int,
                  size: int, old_rows: bool) -> None:
        with _timed(self.result, "stream"):
            names, rows = reading.read_chunk(self.project, str(store.plan), ops, spec, (lo, lo + size), old_rows)
        reader = reading.ChangeReader(names, spec) if names else None
        parts = WorkerPool.partition(reader, rows, pool.n) if reader else [[] for _ in range(pool.n)]
        pool.dispatch(lo, names, spec, parts)

    def _collect(self, pool: WorkerPool, chunk: int, store: PlanStore) -> None:
        tally = self._tally()
        for res in pool.collect(chunk):
            tally.merge(res)
        tally.into(self.result, self.settings.max_rejections_reported)
        self._journal(store, tally)  # what was delivered is recorded, errors or not
        if tally.error is not None:
            raise tally.error
