"""The library API: run every selected sync of a dbt project, or validate them.

config -> plan (diff in the warehouse) -> render -> publish -> commit, one sync at a time;
within a sync the plan is streamed in batches and published concurrently.

    from dbt_eventbridge.run.sync_run import SyncOptions, run_sync
    result = run_sync(SyncOptions(project_dir="analytics", select=("tag:crm",)))
    result.exit_code
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from dbt_eventbridge.config.syncs import (
    OPS,
    Settings,
    SyncConfig,
    check_unique_names,
    near_miss_keys,
    parse_syncs,
    parse_time_templates,
)
from dbt_eventbridge.delivery.publisher import Outcome, Publisher
from dbt_eventbridge.delivery.render import Change, Entry, Renderer, RowRejected
from dbt_eventbridge.errors import ConfigError, EventBridgeSyncError, Problem, TerminalError, WarehouseError
from dbt_eventbridge.faults import CrashPoints
from dbt_eventbridge.jsonvalues import to_json_value
from dbt_eventbridge.run.results import RunResult, SyncResult, now
from dbt_eventbridge.run.workers import WorkerPool, shared_rate
from dbt_eventbridge.warehouse import diff as planning
from dbt_eventbridge.warehouse import state as state_store
from dbt_eventbridge.warehouse.history import EventBuffer, History
from dbt_eventbridge.warehouse.project import DbtProject, LastRun, ModelNode, memory_fix

META_KEY = "eventbridge"
Log = Callable[[str, str], None]  # (level, message)


def _no_log(level: str, message: str) -> None:
    pass


@dataclass
class SyncOptions:
    project_dir: str | Path = "."
    profiles_dir: str | Path | None = None
    target: str | None = None
    profile: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    select: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    dry_run: bool = False
    output: str | Path | None = None   # dry run: every entry as JSON lines
    full_refresh: bool = False
    allow_mass_removal: bool = False
    settings: dict[str, Any] = field(default_factory=dict)  # overrides of vars.eventbridge
    samples: int = 3
    syncs: tuple[str, ...] = ()   # only these sync names (reset, rebaseline, --sync)
    rebaseline: bool = False      # record the model as delivered without sending anything


@dataclass
class _Loaded:
    project: DbtProject
    settings: Settings
    syncs: list[tuple[SyncConfig, ModelNode]]
    problems: list[Problem]
    alerts: list[Any] = field(default_factory=list)  # alerts.AlertConfig


def load(options: SyncOptions, *, lenient: bool = False) -> _Loaded:
    """Parse the project, open its adapter, and read every sync definition."""
    project = DbtProject(options.project_dir, options.profiles_dir, options.target, options.vars, options.profile)
    project.parse()
    # dbt's runner resets dbt's process-wide flags and adapters, so select before opening ours.
    selected = project.select(options.select, options.exclude) if (options.select or options.exclude) else None
    project.open_adapter()
    settings = Settings.load(project.project_var(META_KEY, {}), overrides=options.settings)
    syncs: list[tuple[SyncConfig, ModelNode]] = []
    problems: list[Problem] = []
    all_syncs: list[SyncConfig] = []
    for node in project.models():
        if not node.enabled:
            continue
        chosen = selected is None or node.unique_id in selected
        if META_KEY not in node.meta:
            if chosen:
                problems += near_miss_keys(node.meta, node.name, node.file)
            continue
        parsed, probs = parse_syncs(node.unique_id, node.name, node.meta[META_KEY], file=node.file,
                                    lenient=lenient)
        all_syncs += parsed
        if chosen:
            problems += probs + _parse_time_problems(project, node, parsed)
            syncs += [(s, node) for s in parsed]
    problems += check_unique_names(all_syncs)
    from dbt_eventbridge.ops.alerts import check_alert_syncs, parse_alerts

    alerts, alert_problems = parse_alerts(settings.alerts)
    alert_problems += check_alert_syncs(alerts, [s.name for s in all_syncs])
    if alert_problems and not lenient:
        raise ConfigError(alert_problems)  # a run whose failures nobody would hear of must not start
    problems += alert_problems
    if options.syncs:
        wanted = {s.lower() for s in options.syncs}
        unknown = sorted(wanted - {s.name.lower() for s in all_syncs})
        if unknown:
            names = ", ".join(sorted(s.name for s in all_syncs)) or "none"
            raise ConfigError([Problem(f"no sync is named {', '.join(unknown)} (syncs: {names})",
                                        fix="Use a sync name as `dbt-eventbridge runs` or the summary lines show it")])
        syncs = [(s, n) for s, n in syncs if s.name.lower() in wanted]
        problems = [p for p in problems if p.sync is None or p.sync.lower() in wanted]
    if not lenient:
        bad = {(p.model, p.sync) for p in problems}
        syncs = [(s, n) for s, n in syncs if (s.model_name, s.name) not in bad]
    return _Loaded(project, settings, syncs, problems, alerts)


def _parse_time_problems(project: DbtProject, node: ModelNode, syncs: list[SyncConfig]) -> list[Problem]:
    """Templates dbt consumed at parse time (see config.parse_time_templates), per sync."""
    raw = project.yaml_meta(node, META_KEY)
    if raw is None:
        return []
    items = [(raw, "")] if isinstance(raw, dict) else [(v, f"[{i}]") for i, v in enumerate(raw)] \
        if isinstance(raw, list) else []
    out = []
    for item, sub in items:
        name = item.get("name", node.name) if isinstance(item, dict) else None
        for p in parse_time_templates(item, node.name, node.file, sub):
            out.append(dataclasses.replace(p, sync=name if isinstance(name, str) else None))
    return out


def _best_effort(log: Log, what: str, action: Callable[[], Any]) -> None:
    """Bookkeeping that must not fail the syncs it describes (history, pruning)."""
    try:
        action()
    except EventBridgeSyncError as e:
        log("warn", f"could not {what}: {e}")


def _send_alerts(loaded: _Loaded, result: RunResult, history: History | None, log: Log) -> None:
    """Evaluate the alerts on this run; their status is kept in the warehouse (or, when
    the warehouse cannot be reached, in the target folder) so each change is sent once."""
    import datetime as dt

    from dbt_eventbridge.ops import alerts as alerting
    from dbt_eventbridge.warehouse.history import WarehouseAlertStore, parse_time

    now_dt = dt.datetime.now(dt.UTC)
    statuses: list[alerting.SyncStatus] = []
    try:
        for sr in result.syncs:
            last = first = None
            if history is not None:
                last, first = history.last_success(sr.sync), history.first_run(sr.sync)
            statuses.append(alerting.SyncStatus(
                sync=sr.sync, model=sr.model, status=sr.status, exit_code=sr.exit_code, message=sr.message,
                run_id=result.run_id, planned=dict(sr.planned), sent=dict(sr.sent), rejected=sr.rejected,
                last_success_at=last, finished_at=parse_time(sr.finished_at) or now_dt,
                rejections=sr.rejections[:alerting.MAX_SAMPLES], first_run_at=first))
    except EventBridgeSyncError as e:
        log("warn", f"alerts were not evaluated: the run history could not be read: {e}")
        return
    if result.error:
        statuses.append(alerting.SyncStatus(
            sync=alerting.RUN_SYNC, model="-", status="error", exit_code=2, message=result.error,
            run_id=result.run_id, planned={}, sent={}, rejected=0, last_success_at=None, finished_at=now_dt))
    store: Any = WarehouseAlertStore(history) if history is not None else \
        _FileAlertStore(loaded.project.target_path / "eventbridge_alert_status.json")
    settings = loaded.settings
    alerting.notify(loaded.alerts, statuses, store, now=now_dt,
                    make_client=alerting.client_factory(settings.region, settings.aws_profile), log=log)


class _FileAlertStore:
    """Alert status when the warehouse is out of reach (the run itself failed)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[tuple[str, str, str], str]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return {tuple(k.split("\x1f")): v for k, v in data.items()}  # type: ignore[misc]

    def save(self, changes: dict[tuple[str, str, str], str]) -> None:
        state = self.load()
        state.update(changes)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"\x1f".join(k): v for k, v in state.items()}))


def run_sync(options: SyncOptions, *, log: Log = _no_log, client: Any = None) -> RunResult:
    """Run the selected syncs. Never raises for problems a user can cause: they are in the result."""
    result = RunResult(run_id=str(uuid.uuid4()), started_at=now(), dry_run=options.dry_run)
    project: DbtProject | None = None
    loaded: _Loaded | None = None
    history: History | None = None
    t_start = time.perf_counter()
    try:
        loaded = load(options)
        project = loaded.project
        result.startup_seconds = time.perf_counter() - t_start
        result.settings = loaded.settings.redacted()
        # A broken sync must not stop the others; it fails on its own with exit code 2.
        by_sync: dict[tuple[str | None, str | None], list[Problem]] = {}
        for p in loaded.problems:
            by_sync.setdefault((p.model, p.sync), []).append(p)
        for (model, name), probs in by_sync.items():
            sr = SyncResult(sync=name or model or "?", model=model or "?", status="error",
                            message=" ".join(str(p) for p in probs))
            result.syncs.append(sr)
            log("summary_error", sr.summary_line())
        todo = loaded.syncs
        last_run = project.last_run()
        result.dbt_invocation_id = last_run.invocation_id
        if not last_run.statuses:
            w = (f"no {project.target_path / 'run_results.json'} found: cannot tell whether the last dbt run "
                 "succeeded, so every selected model is synced as it is")
            result.warnings.append(w)
            log("warn", w)
        if not todo and not loaded.problems:
            if options.select or options.exclude:
                w = (f"the selection (--select {' '.join(options.select) or '-'} --exclude "
                     f"{' '.join(options.exclude) or '-'}) matched no model with a sync; nothing to do. "
                     "Check the selector with `dbt ls -s ...`")
            else:
                w = ("no model has a sync: add `config: meta: eventbridge:` to a model "
                     "(see the README's configuration reference)")
            result.warnings.append(w)
            log("warn", w)
        publisher = None
        injected = client
        settings = loaded.settings

        def make_publisher(rate: Any = None) -> Publisher:
            # --workers: each process builds its own client (connections must not be shared
            # across processes); an injected client (tests, embedding) is used as given.
            if injected is not None:
                c = injected
            else:
                from dbt_eventbridge.delivery.aws import make_client

                c = make_client(settings)
            return Publisher(c, max_request_bytes=settings.max_request_bytes, concurrency=settings.concurrency,
                             max_attempts=settings.max_attempts,
                             max_requests_per_second=settings.max_requests_per_second or None, rate=rate)

        if todo and not options.dry_run and not options.rebaseline:
            publisher = make_publisher()
        output = open(options.output, "w", encoding="utf-8") if options.output and options.dry_run else None
        try:
            with project.connection("dbt_eventbridge", wait_seconds=settings.lock_wait_seconds):
                setup = project.render_macro("session_setup")
                for stmt in (s for s in setup.split(";") if s.strip()):
                    project.execute(stmt)
                limit = loaded.settings.duckdb_memory_limit
                if project.adapter_type == "duckdb" and limit not in ("0", ""):
                    project.execute(f"set memory_limit = '{limit}'")
                # The test gate: results of earlier dbt invocations, as the package's hook recorded them.
                try:
                    project.merge_recorded(last_run, state_store.recorded_dbt_results(project, settings.state_schema))
                except state_store.NotOursError as e:
                    w = f"the results of earlier dbt invocations are not read: {e}"
                    result.warnings.append(w)
                    log("warn", w)
                if not options.dry_run:  # a dry run writes nothing, history included
                    history = History(project, settings.state_schema, run_id=result.run_id,
                                      detail=settings.history_detail, retention_days=settings.history_retention_days)
                    for sr in result.syncs:  # syncs whose config is broken are runs too
                        _best_effort(log, f"record the run of {sr.sync} in the history",
                                     lambda sr=sr: history.sync_finished(sr, result.dbt_invocation_id))
                for sync, node in todo:
                    sr = _SyncRun(project, loaded.settings, sync, node, last_run, options, publisher, output,
                                  log, make_publisher, history).run()
                    result.syncs.append(sr)
                    if history is not None:
                        _best_effort(log, f"record the run of {sr.sync} in the history",
                                     lambda sr=sr: history.sync_finished(sr, result.dbt_invocation_id))
                    if sr.status == "skipped":
                        result.warnings.append(f"{sr.sync}: {sr.message}")
                    log("summary_error" if sr.status in ("error", "skipped", "blocked") else "summary",
                        sr.summary_line())
                    for e in sr.samples:
                        log("sample", json.dumps(to_json_value(e.entry), ensure_ascii=False))
                    for rej in sr.rejections[:5]:
                        log("warn", f"{sr.sync}: rejected {rej['op']} key {json.dumps(rej['key'])}: "
                                    f"{rej['code']}: {rej['reason']}")
                    if sr.rejected > 5:
                        log("warn", f"{sr.sync}: {sr.rejected - 5} more rejected row(s) in the result file")
                if history is not None:
                    _best_effort(log, "prune the run history", history.prune)
                    if loaded.alerts:
                        _send_alerts(loaded, result, history, log)
        finally:
            if output:
                output.close()
    except EventBridgeSyncError as e:
        result.error = str(e)
        log("error", result.error)
        if loaded is not None and loaded.alerts and not options.dry_run:
            _send_alerts(loaded, result, None, log)
    result.finished_at = now()
    result.seconds = time.perf_counter() - t_start
    # Written on every run, failed ones included, so the file never shows an older run.
    target = project.target_path if project is not None and project.config is not None \
        else Path(options.project_dir) / "target"
    # Never create folders for a mistyped --project-dir: write only inside a dbt project.
    if (Path(options.project_dir) / "dbt_project.yml").exists():
        try:
            result.result_file = str(result.write(target))
        except OSError as e:
            log("warn", f"could not write the result file: {e}")
    return result


@contextmanager
def _timed(result: SyncResult, phase: str) -> Iterator[None]:
    t = time.perf_counter()
    try:
        yield
    finally:
        result.add_time(phase, time.perf_counter() - t)


def _timed_iter(result: SyncResult, phase: str, it: Iterator[Any]) -> Iterator[Any]:
    """Time spent producing the items (e.g. reading the plan), not consuming them."""
    while True:
        t = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            result.add_time(phase, time.perf_counter() - t)
            return
        result.add_time(phase, time.perf_counter() - t)
        yield item


class _SyncRun:
    """One sync, from plan to commit."""

    def __init__(self, project: DbtProject, settings: Settings, sync: SyncConfig, node: ModelNode,
                 last_run: LastRun, options: SyncOptions, publisher: Publisher | None, output: IO[str] | None,
                 log: Log, make_publisher: Callable[..., Publisher] | None = None,
                 history: History | None = None) -> None:
        self.make_publisher = make_publisher
        self.history = history
        self.chunk_events = EventBuffer()
        self._reported = (0, 0)  # sent, rejected at the last timeline point
        self.project = project
        self.settings = settings
        self.sync = sync
        self.node = node
        self.last_run = last_run
        self.options = options
        self.publisher = publisher
        self.output = output
        self.log = log
        self.result = SyncResult(sync=sync.name, model=sync.model_name, event_bus=sync.event_bus, started_at=now())
        self.chunk_acked: list[int] = []
        self._publish_started = time.perf_counter()
        self.journaled = 0
        self.samples: list[Any] = []
        self.crash = CrashPoints.from_env()

    def run(self) -> SyncResult:
        t0 = time.perf_counter()
        r = self.result
        tables = None
        try:
            reason = self.last_run.reason_to_skip(self.node.unique_id)
            if reason or not self.sync.enabled:
                r.status = "skipped"
                r.message = (f"not synced because {reason}; its changes will be sent after a successful run"
                             if reason else "disabled in its config (enabled: false)")
                return r
            tables = state_store.StateTables.for_sync(self.project, self.settings.state_schema, self.sync.name)
            self._run(tables)
        except Exception as e:  # one sync's failure, expected or not, must not stop the others
            r.status = "error"
            if not isinstance(e, EventBridgeSyncError) and "Out of Memory" in str(e):
                e = WarehouseError(f"the warehouse ran out of memory: {str(e).strip().splitlines()[-1][:300]}",
                                   fix=memory_fix(e))
            r.message = str(e) if isinstance(e, EventBridgeSyncError) else \
                f"unexpected error ({e.__class__.__name__}: {e}); nothing was committed for this sync. " \
                "Please report it with the output of a run with DBT_EVENTBRIDGE_DEBUG=1"
            if os.environ.get("DBT_EVENTBRIDGE_DEBUG") and not isinstance(e, EventBridgeSyncError):
                traceback.print_exc()
        finally:
            r.seconds = time.perf_counter() - t0
            r.finished_at = now()
        return r

    def _prepare(self) -> tuple[SyncConfig, planning.ModelShape, Renderer]:
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
        resolved, shape = planning.resolve_shape(sync, self.node, cols)
        problems = Renderer.check(resolved, project_dir=project.project_dir, dbt_context=project.macro_context(),
                                  model_columns=names)
        if problems:
            raise ConfigError(problems)
        renderer = Renderer(resolved, project_dir=project.project_dir, dbt_context=project.macro_context(),
                            model_columns=names)
        return resolved, shape, renderer

    def _row_spec(self, shape: planning.ModelShape, spec: planning.PlanSpec) -> planning.RowSpec:
        project = self.project
        json_types = project.cached("json_types", lambda: {str(t).lower() for t in project.call("json_types")})
        return planning.RowSpec.make(shape, spec.previous if spec.with_state else None, json_types)

    def _plan_spec(self, tables: state_store.StateTables, shape: planning.ModelShape, previous: Any,
                   state_exists: bool) -> planning.PlanSpec:
        opts = self.options
        spec = planning.plan_spec(shape, self.project.render_macro("hash_version"), previous,
                                  state_exists and previous is not None,
                                  start_over=opts.full_refresh or opts.rebaseline, sync=self.sync)
        for note in spec.notes:
            self.log("warn", f"{self.sync.name}: {note}")
            self.result.notes.append(note)
        return spec

    def _run(self, tables: state_store.StateTables) -> None:
        project, r, opts = self.project, self.result, self.options
        self.sync, shape, renderer = self._prepare()
        sync = self.sync
        model = project.relation(self.node)
        with _timed(r, "audit"):
            audit = planning.audit_keys(project, model, shape)
        r.invalid_keys = {"null_key_rows": audit.null_key_rows, "duplicate_key_rows": audit.duplicate_key_rows,
                          "duplicate_samples": to_json_value(audit.duplicate_samples)}
        if audit.invalid:
            self.log("warn", f"{sync.name}: {audit.null_key_rows} row(s) with a NULL key and "
                             f"{audit.duplicate_key_rows} row(s) with a duplicated key are not published"
                             + (f" (duplicated: {json.dumps(to_json_value(audit.duplicate_samples))})"
                                if audit.duplicate_samples else ""))
        keys = shape.quoted(project, shape.keys)
        ops = [op for op in OPS if op in sync.triggers]
        dups = audit.duplicate_key_rows > 0
        if opts.dry_run:
            self._dry_run(tables, model, shape, renderer, ops, dups)
            return
        state_store.ensure_schema(project, tables)
        with state_store.SyncLock(project, tables, ttl=self.settings.lock_ttl_seconds,
                                  wait=self.settings.lock_wait_seconds) as lock:
            self.crash.reach("locked")
            if self.history is not None:
                self.history.mark_interrupted(sync.name)
                self.history.sync_started(sync.name, sync.model_name, sync.event_bus, r.started_at or now(),
                                          self.last_run.invocation_id)
            state_store.migrate_legacy(project, tables, self.log)
            if state_store.pending_replay(project, tables):
                r.recovered = state_store.replay(project, tables, keys, self.crash)
                self.log("warn", f"{sync.name}: completed a run that was interrupted: {r.recovered} row(s) it "
                                 "had delivered are now recorded; the rest is planned again")
            previous, committed = state_store.read_layout(project, tables)
            spec = self._plan_spec(tables, shape, previous, tables.owned.check(tables.state))
            if not spec.with_state and committed and previous is None:
                self.log("warn", f"{sync.name}: its delivered state was reset: every row is sent as added")
            if not committed and sync.initial_sync == "skip" and not opts.full_refresh:
                ops = []
                r.initial_sync_skipped = True
            if opts.rebaseline:
                ops = []  # every change is recorded as delivered, none is sent

            def plan_sql(dups: bool) -> str:
                return planning.plan_select(project, model, tables.state, shape, spec, opts.full_refresh, dups)

            self.crash.reach("plan.start")
            with _timed(r, "plan"):
                state_store.create_plan(project, tables, plan_sql(dups), ops, spec.layout)
                if not dups and planning.has_duplicate_keys(project, tables.plan, shape):
                    state_store.create_plan(project, tables, plan_sql(True), ops, spec.layout)
            self.crash.reach("plan.created")
            try:
                with _timed(r, "plan"):
                    counts = planning.count_ops(project, tables.plan)
                self._counted(counts, ops)
                if self._mass_removal(tables):
                    state_store.drop_plan(project, tables)
                    return
                with _timed(r, "publish"):
                    self._publish(tables, self._row_spec(shape, spec), renderer, ops, sum(counts.values()), lock)
            except EventBridgeSyncError:
                self._abandon(tables, keys)
                raise
            self.crash.reach("commit.start")
            with _timed(r, "commit"):
                state_store.commit(project, tables, keys, self.crash)
            self.crash.reach("commit.done")
        r.status = "partial" if (r.rejected or r.invalid) else "success"

    def _counted(self, counts: dict[str, int], ops: list[str]) -> None:
        r = self.result
        r.planned = {op: counts.get(op, 0) for op in OPS}
        r.rebaselined = counts.get("rebaseline", 0)
        r.not_triggered = sum(n for op, n in r.planned.items() if op not in ops)
        if r.rebaselined:
            self.log("info", f"{self.sync.name}: {r.rebaselined} row(s) differ only by the schema change: "
                             "re-baselined without sending")

    def _abandon(self, tables: state_store.StateTables, keys: list[str]) -> None:
        """After a failure: keep what EventBridge accepted, forget the rest of the plan.

        If nothing was sent, nothing is written (exit code 2 promises no state). If some
        chunks were delivered before the failure, their acks are committed so they are
        not sent again; if even that fails, the plan stays for the next run's replay.
        """
        try:
            if self.journaled:
                state_store.commit(self.project, tables, keys, self.crash)
            else:
                state_store.drop_plan(self.project, tables)
        except EventBridgeSyncError:
            pass

    def _mass_removal(self, tables: state_store.StateTables) -> bool:
        """Stop before publishing when a run would remove too much of what was delivered."""
        r, st = self.result, self.settings
        removed = r.planned["removed"]
        if self.options.allow_mass_removal or removed < st.removal_guard_min_rows:
            return False
        delivered = state_store.delivered_count(self.project, tables)
        if not delivered or removed <= st.max_removal_share * delivered:
            return False
        r.status = "blocked"
        would = "a real run would stop" if self.options.dry_run else "stopped"
        r.message = (f"{would} before publishing: this run would remove {removed} of the {delivered} delivered "
                     f"rows ({removed / delivered:.0%}, above max_removal_share {st.max_removal_share:.0%}). "
                     "A truncated or half-built model is the usual cause. Nothing was sent or recorded. If the "
                     "removal is real, run again with --allow-mass-removal")
        return True

    def _publish(self, tables: state_store.StateTables, spec: planning.RowSpec, renderer: Renderer,
                 ops: list[str], total: int, lock: state_store.SyncLock) -> None:
        """Publish the plan chunk by chunk, journaling acks after each chunk.

        A crash loses at most the chunk in flight (batch_size rows): those may be sent
        again by the next run, which is the bound on duplicates.
        """
        if not ops or not total:
            return
        assert self.publisher is not None
        self._publish_started = time.perf_counter()
        size = self.settings.batch_size
        preflight = True
        workers = self.settings.workers
        pool: WorkerPool | None = None
        outstanding: deque[int] = deque()
        try:
            for lo in range(0, total, size):
                if pool is None:
                    # In this process: always the first request (it checks credentials and the
                    # endpoint before anything else is sent), and everything with --workers 1.
                    self.chunk_acked = []
                    batches = planning.changes(self.project, str(tables.plan), ops, spec, size,
                                               seq_range=(lo, lo + size), old_rows=renderer.uses_old_rows)
                    sent = self.publisher.publish(self._entries(batches, renderer), self._on_outcome,
                                                  preflight=preflight)
                    preflight = preflight and not sent
                    self._journal(tables, lock)
                    if workers > 1 and not preflight and lo + size < total and self.make_publisher:
                        rate = shared_rate(self.settings.max_requests_per_second or None)
                        make = self.make_publisher
                        pool = WorkerPool(workers, renderer, lambda: make(rate),
                                  history_detail=None if self.history is None else self.history.detail)
                    continue
                self._dispatch(pool, tables, spec, ops, lo, size, renderer.uses_old_rows)
                outstanding.append(lo)
                if len(outstanding) >= 2:  # read the next chunk while the workers publish this one
                    self._collect(pool, outstanding.popleft(), tables, lock)
            while outstanding:
                self._collect(pool, outstanding.popleft(), tables, lock)  # type: ignore[arg-type]
        finally:
            if pool is not None:
                pool.close()
            self._progress(done=True)
            if self.history is not None:
                self.history.flush()

    def _journal(self, tables: state_store.StateTables, lock: state_store.SyncLock) -> None:
        self.crash.reach("publish.chunk_sent")
        r = self.result
        with _timed(r, "journal"), self.project.transaction():
            state_store.journal(self.project, tables, self.chunk_acked)
            if self.history is not None and len(self.chunk_events):
                self.history.add_events(self.sync.name, self.chunk_events)
        self.chunk_events = EventBuffer()
        sent = sum(r.sent.values())
        r.timeline.append([round(time.perf_counter() - self._publish_started, 3), sent - self._reported[0],
                           r.rejected - self._reported[1]])
        self._reported = (sent, r.rejected)
        self.journaled += len(self.chunk_acked)
        self.crash.reach("publish.journaled")
        lock.heartbeat()
        self._progress()

    def _progress(self, done: bool = False) -> None:
        r = self.result
        sent = sum(r.sent.values())
        elapsed = time.perf_counter() - self._publish_started
        planned = sum(n for op, n in r.planned.items() if op in self.sync.triggers)
        share = f" ({(sent + r.rejected) / planned:.0%})" if planned else ""
        self.log("progress_done" if done else "progress",
                 f"{self.sync.name}: planned {planned:,} · sent {sent:,}{share} · rejected {r.rejected:,} · "
                 f"{sent / elapsed if elapsed > 0 else 0:,.0f} events/s")

    def _dispatch(self, pool: WorkerPool, tables: state_store.StateTables, spec: planning.RowSpec,
                  ops: list[str], lo: int, size: int, old_rows: bool) -> None:
        sql = planning.changes_sql(self.project, str(tables.plan), ops, spec, (lo, lo + size), old_rows)
        rows: list[tuple] = []
        names: list[str] = []
        with _timed(self.result, "stream"):
            for names, batch in self.project.stream(sql, size):
                rows += batch
        reader = planning.ChangeReader(names, spec) if names else None
        parts = WorkerPool.partition(reader, rows, pool.n) if reader else [[] for _ in range(pool.n)]
        pool.dispatch(lo, names, spec, parts)

    def _collect(self, pool: WorkerPool, chunk: int, tables: state_store.StateTables,
                 lock: state_store.SyncLock) -> None:
        r, limit = self.result, self.settings.max_rejections_reported
        self.chunk_acked = []
        errors = []
        for res in pool.collect(chunk):
            self.chunk_acked += res.acked
            for op, n in res.sent.items():
                r.sent[op] += n
            for key, op, code, reason in res.rejected:
                r.add_rejection(key, op, code, reason, limit)
            r.requests += res.requests
            r.retried_entries += res.retried_entries
            r.add_time("render", res.render_seconds)
            self.chunk_events.extend(res.events)
            if res.error:
                errors.append(res.error)
        self._journal(tables, lock)  # what was delivered is recorded, errors or not
        if errors:
            raise TerminalError(f"publishing failed in a worker process: {errors[0]}",
                                fix="Fix the cause and run again; what was delivered is recorded")

    def _dry_run(self, tables: state_store.StateTables, model: Any, shape: planning.ModelShape,
                 renderer: Renderer, ops: list[str], dups: bool) -> None:
        """The real run's steps and checks, with the plan in a temporary table: nothing is
        written, nothing is sent, and the exit code is the one the real run would have."""
        project, sync, r, opts = self.project, self.sync, self.result, self.options
        renderer.event_ids = True  # the dry run's output shows them
        owned = tables.owned
        previous, committed = state_store.read_layout(project, tables)
        state: Any = tables.state
        if previous is None and not committed:
            legacy = state_store.legacy_layout(project, tables)
            if legacy is not None:  # written by an earlier version: the real run migrates it first
                previous, state = legacy
                committed = True
        state_exists = state is not tables.state or owned.check(tables.state)
        spec = self._plan_spec(tables, shape, previous, state_exists)
        # The plan goes to a temporary table (gone with the session, nothing is written) and is
        # read back in seq ranges like a real run's: one diff, and memory bounded by batch_size.
        with _timed(r, "plan"):
            temp = planning.create_temp_plan(project, planning.plan_select(project, model, state, shape, spec,
                                                                          opts.full_refresh, dups))
        try:
            counts = planning.count_ops(project, temp)
            if not committed and sync.initial_sync == "skip" and not opts.full_refresh:
                ops = []
                r.initial_sync_skipped = True
            self._counted(counts, ops)
            blocked = self._mass_removal(tables)
            self._dry_run_entries(temp, self._row_spec(shape, spec), renderer, ops, sum(counts.values()))
        finally:
            project.execute(f"drop table if exists {temp}")
        r.samples = self.samples
        if not blocked:
            r.status = "dry_run"

    def _dry_run_entries(self, temp: str, spec: planning.RowSpec, renderer: Renderer, ops: list[str],
                         total: int) -> None:
        sync, r, opts = self.sync, self.result, self.options
        size = self.settings.batch_size
        batches = (b for lo in range(0, total, size)
                   for b in planning.changes(self.project, temp, ops, spec, size, seq_range=(lo, lo + size),
                                             old_rows=renderer.uses_old_rows))
        for e in self._entries(batches, renderer):
            r.sent[e.op] += 1
            if self.output:
                self.output.write(json.dumps({"sync": sync.name, "op": e.op, "key": to_json_value(e.key),
                                              "event_id": e.event_id, "entry": to_json_value(e.entry)},
                                             ensure_ascii=False) + "\n")
            if len(self.samples) < opts.samples:
                self.samples.append(e)

    def _entries(self, batches: Iterator[planning.PlanRows], renderer: Renderer) -> Iterator[Entry]:
        limit = self.settings.max_rejections_reported

        def rejected(change: Change, err: RowRejected) -> None:
            self.result.add_rejection(change.key, change.op, err.code, err.reason, limit)
            if self.history is not None:
                self.chunk_events.add_unrendered(change.key, change.op, err.code, err.reason)

        r = self.result
        for batch in _timed_iter(r, "stream", batches):
            t = time.perf_counter()
            entries = renderer.render_many(batch.changes(), rejected)
            r.add_time("render", time.perf_counter() - t)
            yield from entries

    def _on_outcome(self, out: Outcome) -> None:
        r = self.result
        for entry, _event_id in out.accepted:
            r.sent[entry.op] += 1
            self.chunk_acked.append(entry.seq)
        for entry, code, msg in out.rejected:
            r.add_rejection(entry.key, entry.op, code, msg, self.settings.max_rejections_reported)
        r.requests += out.requests
        r.retried_entries += out.retried_entries
        if self.history is not None:
            self.chunk_events.add_outcome(out, self.history.detail)


def validate(options: SyncOptions) -> tuple[list[Problem], int]:
    """Every problem with every selected sync, without publishing or writing anything.

    Returns (problems, number of syncs checked)."""
    loaded = load(options, lenient=True)
    project = loaded.project
    problems = list(loaded.problems)
    with project.connection("dbt_eventbridge_validate"):
        for sync, node in loaded.syncs:
            if node.materialized == "ephemeral":
                problems.append(Problem(f"{node.name} is ephemeral: it has no table or view to diff", sync.model_name,
                                        sync.name, sync.yaml_path,
                                        "Materialize it as a table, view or incremental model"))
                continue
            cols = project.columns(node)
            if cols is None:
                problems.append(Problem(f"the relation {node.relation_name} does not exist", sync.model_name,
                                        sync.name, sync.yaml_path, "Run `dbt run` or `dbt build` first"))
            names = [c for c, _ in cols] if cols is not None else None
            if cols is not None:
                try:
                    planning.resolve_shape(sync, node, cols)
                except ConfigError as e:
                    problems += e.problems
            problems += Renderer.check(sync, project_dir=project.project_dir, dbt_context=project.macro_context(),
                                       model_columns=names)
    return problems, len(loaded.syncs)
