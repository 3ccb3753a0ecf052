"""The library API: run every selected sync of a dbt project, or validate them.

    from dbt_eventbridge.run.options import SyncOptions
    from dbt_eventbridge.run.runner import run_sync
    result = run_sync(SyncOptions(project_dir="analytics", select=("tag:crm",)))
    result.exit_code

Syncs run one at a time (each in :class:`~dbt_eventbridge.run.sync_run.SyncRun`); within a
sync the plan is streamed in chunks and published concurrently. What the run shows goes
to a :class:`~dbt_eventbridge.run.console.Console`; what it did is in the returned
:class:`~dbt_eventbridge.run.results.RunResult` and its result file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from dbt_eventbridge.alerts.channels import client_factory
from dbt_eventbridge.alerts.evaluate import MAX_SAMPLES, RUN_SYNC, SyncStatus
from dbt_eventbridge.alerts.notify import notify
from dbt_eventbridge.alerts.store import AlertStore, FileAlertStore
from dbt_eventbridge.config.definitions import SyncConfig
from dbt_eventbridge.delivery.publisher import Publisher
from dbt_eventbridge.delivery.rate import AdaptiveRate
from dbt_eventbridge.delivery.render import Renderer
from dbt_eventbridge.errors import ConfigError, EventBridgeSyncError, LockedError, Problem
from dbt_eventbridge.run.console import Console, NullConsole
from dbt_eventbridge.run.contracts import contract_columns, sync_contracts
from dbt_eventbridge.run.loader import LoadedProject, load
from dbt_eventbridge.run.options import SyncOptions
from dbt_eventbridge.run.results import BLOCKED_BY_LOCK, RunResult, SyncResult, now
from dbt_eventbridge.run.sync_run import RunContext, SharedPublisher, SyncRun
from dbt_eventbridge.warehouse import diff as planning
from dbt_eventbridge.warehouse import state as state_store
from dbt_eventbridge.warehouse.history import History, WarehouseAlertStore, parse_time
from dbt_eventbridge.warehouse.nodes import LastRun, ModelNode
from dbt_eventbridge.warehouse.project import DbtProject
from dbt_eventbridge.warehouse.tables import NotOursError


def run_sync(options: SyncOptions, *, console: Console | None = None, client: Any = None) -> RunResult:
    """Run the selected syncs. Never raises for problems a user can cause: they are in the result.

    ``client``: an EventBridge client to publish with (tests, embedding); by default one is
    made from the settings (and one per process with --workers)."""
    console = console or NullConsole()
    result = RunResult(run_id=str(uuid.uuid4()), started_at=now(), dry_run=options.dry_run)
    loaded: LoadedProject | None = None
    t_start = time.perf_counter()
    try:
        loaded = load(options)
        result.startup_seconds = time.perf_counter() - t_start
        _parsed(loaded, result, console)
        result.settings = loaded.settings.redacted()
        _config_failures(loaded, result, console)
        last_run = loaded.project.last_run()
        result.dbt_invocation_id = last_run.invocation_id
        _nothing_to_do_warnings(loaded, options, last_run, result, console)
        _check_preview(loaded, options)
        with _dry_run_output(options) as output:
            _run_syncs(loaded, options, last_run, result, console, client, output)
    except EventBridgeSyncError as e:
        result.error = str(e)
        result.retryable = e.retryable
        if isinstance(e, LockedError):  # the warehouse is held (DuckDB's file): every sync was held back
            result.blocked_by = BLOCKED_BY_LOCK
        console.error(result.error)
        if loaded is not None and loaded.alerts and not options.dry_run:
            _send_alerts(loaded, result, None, console)
    result.finished_at = now()
    result.seconds = time.perf_counter() - t_start
    _write_result(result, options, loaded, console)
    return result


def _check_preview(loaded: LoadedProject, options: SyncOptions) -> None:
    """--key previews one sync's rows: the key is that sync's, and nothing is sent."""
    if not options.keys:
        return
    if not options.dry_run:
        raise ConfigError([Problem("--key previews rows without sending them, so it goes with --dry-run",
                                   fix="Add --dry-run (a real run always sends every change of the model)")])
    if len(loaded.syncs) != 1:
        names = ", ".join(s.name for s, _ in loaded.syncs) or "none"
        raise ConfigError([Problem(f"--key names the rows of one sync, but {len(loaded.syncs)} are selected "
                                   f"({names})", fix="Add --sync NAME (or --select the model) for the sync whose "
                                                     "rows to preview")])


def _parsed(loaded: LoadedProject, result: RunResult, console: Console) -> None:
    counts = loaded.project.parse_counts
    if counts is None:
        return
    files, parsed = counts
    result.parse = {"files": files, "parsed": parsed}
    console.info("the project is unchanged since the last parse: dbt parsed nothing again" if not parsed else
                 f"dbt parsed {parsed} of the project's {files} files again" if parsed < files else
                 f"dbt parsed the whole project ({files} files): no earlier parse matched these flags and files")


def _config_failures(loaded: LoadedProject, result: RunResult, console: Console) -> None:
    """A broken sync must not stop the others; it fails on its own with exit code 2."""
    by_sync: dict[tuple[str | None, str | None], list[Problem]] = {}
    for p in loaded.problems:
        by_sync.setdefault((p.model, p.sync), []).append(p)
    for (model, name), probs in by_sync.items():
        sr = SyncResult(sync=name or model or "?", model=model or "?", status="error",
                        message=" ".join(str(p) for p in probs))
        result.syncs.append(sr)
        console.sync_finished(sr, [])


def _warn(result: RunResult, console: Console, message: str) -> None:
    result.warnings.append(message)
    console.warning(message)


def _nothing_to_do_warnings(loaded: LoadedProject, options: SyncOptions, last_run: LastRun, result: RunResult,
                            console: Console) -> None:
    if not last_run.statuses:
        _warn(result, console, f"no {loaded.project.target_path / 'run_results.json'} found: cannot tell whether "
                               "the last dbt run succeeded, so every selected model is synced as it is")
    if loaded.syncs or loaded.problems:
        return
    if options.syncs:
        _warn(result, console, f"no selected model has the sync(s) {', '.join(options.syncs)} (--select "
                               f"{' '.join(options.select) or '-'} --exclude {' '.join(options.exclude) or '-'}); "
                               "nothing to do. Select the model the sync is declared on, or drop --sync")
    elif options.select or options.exclude:
        _warn(result, console, f"the selection (--select {' '.join(options.select) or '-'} --exclude "
                               f"{' '.join(options.exclude) or '-'}) matched no model with a sync; nothing to do. "
                               "Check the selector with `dbt ls -s ...`")
    else:
        _warn(result, console, "no model has a sync: add `config: meta: eventbridge:` to a model "
                               "(see the README's configuration reference)")


@contextlib.contextmanager
def _dry_run_output(options: SyncOptions) -> Iterator[IO[str] | None]:
    if not (options.output and options.dry_run):
        yield None
        return
    with open(options.output, "w", encoding="utf-8") as f:
        yield f


def _publisher_factory(loaded: LoadedProject, client: Any) -> Callable[[AdaptiveRate | None], Publisher]:
    settings = loaded.settings

    def make_publisher(rate: AdaptiveRate | None = None) -> Publisher:
        # --workers: each process builds its own client (connections must not be shared
        # across processes); an injected client (tests, embedding) is used as given.
        if client is not None:
            c = client
        else:
            from dbt_eventbridge.delivery.aws import make_client

            c = make_client(settings)
        from dbt_eventbridge.delivery.aws import make_v2_client

        return Publisher(c, max_request_bytes=settings.max_request_bytes, concurrency=settings.concurrency,
                         max_attempts=settings.max_attempts, throttle_timeout=settings.throttle_timeout,
                         max_requests_per_second=settings.max_requests_per_second or None, rate=rate,
                         v2_client=lambda bus_arn: make_v2_client(settings, bus_arn))

    return make_publisher


def _run_syncs(loaded: LoadedProject, options: SyncOptions, last_run: LastRun, result: RunResult,
               console: Console, client: Any, output: IO[str] | None) -> None:
    make_publisher = _publisher_factory(loaded, client)
    sends = bool(loaded.syncs) and not options.dry_run and not options.rebaseline
    publisher = SharedPublisher(make_publisher) if sends else None
    try:
        _each_sync(loaded, options, last_run, result, console, publisher, make_publisher, output)
    finally:
        if publisher is not None:
            publisher.close()


def _each_sync(loaded: LoadedProject, options: SyncOptions, last_run: LastRun, result: RunResult,
               console: Console, publisher: SharedPublisher | None,
               make_publisher: Callable[[AdaptiveRate | None], Publisher], output: IO[str] | None) -> None:
    project, settings = loaded.project, loaded.settings
    with project.connection("dbt_eventbridge", wait_seconds=settings.lock_wait_seconds):
        project.setup_session(settings.duckdb_memory_limit)
        _merge_recorded_results(loaded, last_run, result, console)
        history = None if options.dry_run else _open_history(loaded, result, console)
        ctx = RunContext(project, settings, options, last_run, console, history, publisher, make_publisher, output)
        for sync, node in loaded.syncs:
            _run_one(ctx, sync, node, result)
        if history is not None:
            _best_effort(console, "prune the run history", history.prune)
            if loaded.alerts:
                _send_alerts(loaded, result, history, console)


def _run_one(ctx: RunContext, sync: SyncConfig, node: ModelNode, result: RunResult) -> None:
    """One sync of the run, recorded in the result, the history and the console."""
    sr = SyncRun(ctx, sync, node).run()
    result.syncs.append(sr)
    if ctx.history is not None:
        _record(ctx.history, sr, result, ctx.console)
    if sr.status == "skipped":
        result.warnings.append(f"{sr.sync}: {sr.message}")
    ctx.console.sync_finished(sr, sr.samples)


def _merge_recorded_results(loaded: LoadedProject, last_run: LastRun, result: RunResult, console: Console) -> None:
    """The test gate: results of earlier dbt invocations, as the package's hook recorded them."""
    project = loaded.project
    try:
        project.merge_recorded(last_run, state_store.recorded_dbt_results(project, loaded.settings.state_schema))
    except NotOursError as e:
        _warn(result, console, f"the results of earlier dbt invocations are not read: {e}")


def _history_writer(loaded: LoadedProject, project: DbtProject, result: RunResult) -> History:
    """This run's history, written through ``project``'s connection."""
    settings = loaded.settings
    return History(project, settings.state_schema, run_id=result.run_id, detail=settings.history_detail,
                    retention_days=settings.history_retention_days, run_by=result.run_by)


def _open_history(loaded: LoadedProject, result: RunResult, console: Console) -> History:
    history = _history_writer(loaded, loaded.project, result)
    # The tables first, outside any sync's transaction: a history made by an earlier version
    # gets its new columns here, and a warehouse that refuses them is one warning, not a
    # failed sync.
    if loaded.syncs or result.syncs:  # (a run with nothing to record makes no tables)
        _best_effort(console, "upgrade the run history", history.ensure)
    for sr in result.syncs:  # syncs whose config is broken are runs too
        _record(history, sr, result, console)
    return history


def _record(history: History, sr: SyncResult, result: RunResult, console: Console) -> None:
    _best_effort(console, f"record the run of {sr.sync} in the history",
                 lambda: history.sync_finished(sr, result.dbt_invocation_id))


def _best_effort(console: Console, what: str, action: Callable[[], Any]) -> None:
    """Bookkeeping that must not fail the syncs it describes (history, pruning)."""
    try:
        action()
    except EventBridgeSyncError as e:
        console.warning(f"could not {what}: {e}")


def _write_result(result: RunResult, options: SyncOptions, loaded: LoadedProject | None, console: Console) -> None:
    """Written on every run, failed ones included, so the file never shows an older run;
    only inside a dbt project (never create folders for a mistyped --project-dir)."""
    project = loaded.project if loaded is not None else None
    target = project.target_path if project is not None and project.config is not None \
        else Path(options.project_dir) / "target"
    if (Path(options.project_dir) / "dbt_project.yml").exists():
        try:
            result.result_file = str(result.write(target))
        except OSError as e:
            console.warning(f"could not write the result file: {e}")


def _send_alerts(loaded: LoadedProject, result: RunResult, history: History | None, console: Console) -> None:
    """Evaluate the alerts on this run; their status is kept in the warehouse (or, when
    the warehouse cannot be reached, in the target folder) so each change is sent once."""
    now_dt = dt.datetime.now(dt.UTC)
    try:
        statuses = [_alert_status(sr, result, history, now_dt) for sr in result.syncs]
    except EventBridgeSyncError as e:
        console.warning(f"alerts were not evaluated: the run history could not be read: {e}")
        return
    if result.error:
        statuses.append(SyncStatus(
            sync=RUN_SYNC, model="-", status="error", exit_code=2, message=result.error,
            run_id=result.run_id, planned={}, sent={}, rejected=0, last_success_at=None, finished_at=now_dt))
    store: AlertStore = WarehouseAlertStore(history) if history is not None else \
        FileAlertStore(loaded.project.target_path / "eventbridge_alert_status.json")
    settings = loaded.settings

    def log(level: str, message: str) -> None:
        console.warning(message) if level in ("warn", "error") else console.info(message)

    notify(loaded.alerts, statuses, store, now=now_dt,
           make_client=client_factory(settings.region, settings.aws_profile), log=log)


def _alert_status(sr: SyncResult, result: RunResult, history: History | None, now_dt: dt.datetime
                  ) -> SyncStatus:
    last = first = None
    if history is not None:
        last, first = history.last_success(sr.sync), history.first_run(sr.sync)
    return SyncStatus(
        sync=sr.sync, model=sr.model, status=sr.status, exit_code=sr.exit_code, message=sr.message,
        run_id=result.run_id, planned=dict(sr.planned), sent=dict(sr.sent), rejected=sr.rejected,
        last_success_at=last, finished_at=parse_time(sr.finished_at) or now_dt,
        rejections=sr.rejections[:MAX_SAMPLES], first_run_at=first, recovered=sr.recovered,
        interrupted=sr.interrupted)


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
            # A model with an enforced contract is checked against it when it is not built yet (CI).
            cols = project.columns(node) or contract_columns(node)
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
            if cols is not None and loaded.settings.event_id_in_detail:
                try:
                    sync_contracts(project, node, sync, cols, event_id_in_detail=True)
                except ConfigError as e:
                    problems += e.problems
    return problems, len(loaded.syncs)
