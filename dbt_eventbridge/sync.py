"""The library API: run every selected sync of a dbt project, or validate them.

config -> plan (diff in the warehouse) -> render -> publish -> commit, one sync at a time;
within a sync the plan is streamed in batches and published concurrently.

    from dbt_eventbridge.sync import SyncOptions, run_sync
    result = run_sync(SyncOptions(project_dir="analytics", select=("tag:crm",)))
    result.exit_code
"""

from __future__ import annotations

import json
import os
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from dbt_eventbridge import plan as planning
from dbt_eventbridge import state as state_store
from dbt_eventbridge.config import OPS, Settings, SyncConfig, check_unique_names, parse_syncs
from dbt_eventbridge.errors import ConfigError, EventBridgeSyncError, Problem
from dbt_eventbridge.jsonvalues import to_json_value
from dbt_eventbridge.project import DbtProject, LastRun, ModelNode
from dbt_eventbridge.publish import Outcome, Publisher
from dbt_eventbridge.render import Change, Entry, Renderer, RowRejected
from dbt_eventbridge.results import RunResult, SyncResult, now

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
    settings: dict[str, Any] = field(default_factory=dict)  # overrides of vars.eventbridge
    samples: int = 3


@dataclass
class _Loaded:
    project: DbtProject
    settings: Settings
    syncs: list[tuple[SyncConfig, ModelNode]]
    problems: list[Problem]


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
        if META_KEY not in node.meta or not node.enabled:
            continue
        parsed, probs = parse_syncs(node.unique_id, node.name, node.meta[META_KEY], file=node.file,
                                    lenient=lenient)
        all_syncs += parsed
        if selected is None or node.unique_id in selected:
            problems += probs
            syncs += [(s, node) for s in parsed]
    problems += check_unique_names(all_syncs)
    if not lenient:
        bad = {(p.model, p.sync) for p in problems}
        syncs = [(s, n) for s, n in syncs if (s.model_name, s.name) not in bad]
    return _Loaded(project, settings, syncs, problems)


def run_sync(options: SyncOptions, *, log: Log = _no_log, client: Any = None) -> RunResult:
    """Run the selected syncs. Never raises for problems a user can cause: they are in the result."""
    result = RunResult(run_id=str(uuid.uuid4()), started_at=now(), dry_run=options.dry_run)
    project: DbtProject | None = None
    try:
        loaded = load(options)
        project = loaded.project
        # A broken sync must not stop the others; it fails on its own with exit code 2.
        by_sync: dict[tuple[str | None, str | None], list[Problem]] = {}
        for p in loaded.problems:
            by_sync.setdefault((p.model, p.sync), []).append(p)
        for (model, name), probs in by_sync.items():
            sr = SyncResult(sync=name or "?", model=model or "?", status="error",
                            message=" ".join(str(p) for p in probs))
            result.syncs.append(sr)
            log("error", sr.summary_line())
        todo = loaded.syncs
        last_run = project.last_run()
        result.dbt_invocation_id = last_run.invocation_id
        if not last_run.statuses:
            w = (f"no {project.target_path / 'run_results.json'} found: cannot tell whether the last dbt run "
                 "succeeded, so every selected model is synced as it is")
            result.warnings.append(w)
            log("warn", w)
        if not todo and not loaded.problems:
            log("info", "no syncs selected: add `config: meta: eventbridge:` to a model "
                        "(see the README's configuration reference)")
        publisher = None
        if todo and not options.dry_run:
            if client is None:
                from dbt_eventbridge.aws import make_client

                client = make_client(loaded.settings)
            publisher = Publisher(client, max_request_bytes=loaded.settings.max_request_bytes,
                                  concurrency=loaded.settings.concurrency,
                                  max_attempts=loaded.settings.max_attempts)
        output = open(options.output, "w", encoding="utf-8") if options.output and options.dry_run else None
        try:
            with project.connection("dbt_eventbridge"):
                setup = project.render_macro("session_setup")
                for stmt in (s for s in setup.split(";") if s.strip()):
                    project.execute(stmt)
                for sync, node in todo:
                    sr = _SyncRun(project, loaded.settings, sync, node, last_run, options, publisher, output,
                                  log).run()
                    result.syncs.append(sr)
                    log("error" if sr.status == "error" else "info", sr.summary_line())
                    for rej in sr.rejections[:5]:
                        log("warn", f"{sr.sync}: rejected {rej['op']} key {json.dumps(rej['key'])}: "
                                    f"{rej['code']}: {rej['reason']}")
                    if sr.rejected > 5:
                        log("warn", f"{sr.sync}: {sr.rejected - 5} more rejected row(s) in the result file")
        finally:
            if output:
                output.close()
    except EventBridgeSyncError as e:
        result.error = str(e)
        log("error", result.error)
    result.finished_at = now()
    if project is not None:
        try:
            path = result.write(project.target_path)
            log("debug", f"results written to {path}")
        except OSError as e:
            log("warn", f"could not write the result file: {e}")
    return result


class _SyncRun:
    """One sync, from plan to commit."""

    def __init__(self, project: DbtProject, settings: Settings, sync: SyncConfig, node: ModelNode,
                 last_run: LastRun, options: SyncOptions, publisher: Publisher | None, output: IO[str] | None,
                 log: Log) -> None:
        self.project = project
        self.settings = settings
        self.sync = sync
        self.node = node
        self.last_run = last_run
        self.options = options
        self.publisher = publisher
        self.output = output
        self.log = log
        self.result = SyncResult(sync=sync.name, model=sync.model_name, event_bus=sync.event_bus)
        self.failed_seqs: list[int] = []
        self.samples: list[Entry] = []

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
            r.message = str(e) if isinstance(e, EventBridgeSyncError) else \
                f"unexpected error ({e.__class__.__name__}: {e}); nothing was committed for this sync. " \
                "Please report it with the output of a run with DBT_EVENTBRIDGE_DEBUG=1"
            if os.environ.get("DBT_EVENTBRIDGE_DEBUG") and not isinstance(e, EventBridgeSyncError):
                traceback.print_exc()
            if tables is not None and not self.options.dry_run:
                try:
                    state_store.drop(self.project, tables.plan)
                except EventBridgeSyncError:
                    pass
        finally:
            r.seconds = time.perf_counter() - t0
        return r

    def _run(self, tables: state_store.StateTables) -> None:
        project, sync, r, opts = self.project, self.sync, self.result, self.options
        cols = project.columns(self.node)
        if cols is None:
            raise ConfigError([Problem(f"the relation {self.node.relation_name} does not exist", sync.model_name,
                                       sync.name, None, "Run `dbt run` or `dbt build` for the model first")])
        names = [c for c, _ in cols]
        shape = planning.resolve_shape(sync, self.node, names)
        problems = Renderer.check(sync, project_dir=project.project_dir, dbt_context=project.macro_context(),
                                  model_columns=names)
        if problems:
            raise ConfigError(problems)
        renderer = Renderer(sync, project_dir=project.project_dir, dbt_context=project.macro_context(),
                            model_columns=names)
        model = project.relation(self.node)
        audit = planning.audit_keys(project, model, shape)
        r.invalid_keys = {"null_key_rows": audit.null_key_rows, "duplicate_key_rows": audit.duplicate_key_rows,
                          "duplicate_samples": to_json_value(audit.duplicate_samples)}
        if audit.invalid:
            self.log("warn", f"{sync.name}: {audit.null_key_rows} row(s) with a NULL key and "
                             f"{audit.duplicate_key_rows} row(s) with a duplicated key are not published"
                             + (f" (duplicated: {json.dumps(to_json_value(audit.duplicate_samples))})"
                                if audit.duplicate_samples else ""))
        first_run = not state_store.exists(project, tables.state)
        # A first run diffs against an empty state; the state table itself is only
        # created by the first commit (see state.commit).
        state_sql = tables.state if not first_run else f"({planning.empty_state_select(project, model, shape)})"
        plan_sql = planning.plan_select(project, model, state_sql, shape, opts.full_refresh)
        if opts.dry_run:
            source = f"({plan_sql})"
        else:
            state_store.ensure_schema(project, tables)
            state_store.drop(project, tables.plan)
            project.execute(f"create table {tables.plan} as {plan_sql}")
            source = str(tables.plan)
        r.planned = planning.count_ops(project, source)
        ops = [op for op in OPS if op in sync.triggers]
        if first_run and sync.initial_sync == "skip" and not opts.full_refresh:
            ops = []
            r.initial_sync_skipped = True
        r.not_triggered = sum(n for op, n in r.planned.items() if op not in ops)
        entries = self._entries(planning.changes(project, source, ops, shape, self.settings.batch_size), renderer)
        if opts.dry_run:
            for e in entries:
                r.sent[e.op] += 1
                if self.output:
                    self.output.write(json.dumps({"sync": sync.name, "op": e.op, "key": to_json_value(e.key),
                                                  "event_id": e.event_id, "entry": to_json_value(e.entry)},
                                                 ensure_ascii=False) + "\n")
                if len(self.samples) < opts.samples:
                    self.samples.append(e)
            for e in self.samples:
                self.log("sample", json.dumps(to_json_value(e.entry), ensure_ascii=False))
            r.status = "dry_run"
            return
        assert self.publisher is not None
        self.publisher.publish(entries, self._on_outcome)
        create_sql = state_store.create_state_sql(
            project, tables, model, shape.quoted(project, shape.keys), shape.quoted(project, shape.hash_columns),
            shape.quoted(project, shape.columns)) if first_run else None
        state_store.commit(project, tables, shape.quoted(project, shape.keys), self.failed_seqs, create_sql)
        r.status = "partial" if (r.rejected or r.invalid) else "success"

    def _entries(self, batches: Iterator[list[Change]], renderer: Renderer) -> Iterator[Entry]:
        limit = self.settings.max_rejections_reported

        def rejected(change: Change, err: RowRejected) -> None:
            self.failed_seqs.append(change.seq)
            self.result.add_rejection(change.key, change.op, err.code, err.reason, limit)

        for batch in batches:
            yield from renderer.render_many(batch, rejected)

    def _on_outcome(self, out: Outcome) -> None:
        r = self.result
        for entry, _event_id in out.accepted:
            r.sent[entry.op] += 1
        for entry, code, msg in out.rejected:
            self.failed_seqs.append(entry.seq)
            r.add_rejection(entry.key, entry.op, code, msg, self.settings.max_rejections_reported)
        r.requests += out.requests
        r.retried_entries += out.retried_entries


def validate(options: SyncOptions) -> tuple[list[Problem], int]:
    """Every problem with every selected sync, without publishing or writing anything.

    Returns (problems, number of syncs checked)."""
    loaded = load(options, lenient=True)
    project = loaded.project
    problems = list(loaded.problems)
    with project.connection("dbt_eventbridge_validate"):
        for sync, node in loaded.syncs:
            cols = project.columns(node)
            if cols is None:
                problems.append(Problem(f"the relation {node.relation_name} does not exist", sync.model_name,
                                        sync.name, sync.yaml_path, "Run `dbt run` or `dbt build` first"))
            names = [c for c, _ in cols] if cols is not None else None
            if names is not None:
                try:
                    planning.resolve_shape(sync, node, names)
                except ConfigError as e:
                    problems += e.problems
            problems += Renderer.check(sync, project_dir=project.project_dir, dbt_context=project.macro_context(),
                                       model_columns=names)
    return problems, len(loaded.syncs)
