"""``dbt-eventbridge build``: dbt's build in this process, and each synced node synced as soon
as it and all of its tests have passed, while dbt builds the rest of the DAG.

    from dbt_eventbridge.run.build import run_build
    outcome = run_build(["--select", "tag:crm", "--target", "prod"])
    outcome.exit_code   # dbt's failure outranks ours

One parse: the project is parsed once, as ``dbt build`` parses it (its partial-parse state and
manifest.json in dbt's target path), and the build is given that manifest. dbt tells us what
it finished through its event callbacks (``NodeFinished``, from its threads); a synced node is
decided when its own build and every test of it that the build selected have finished. One
sync runs at a time, on a thread of ours beside dbt's threads, with dbt's own adapter (the
same connections dbt opens for its threads, one more for ours). Before dbt closes its
connections at the end of the build (after its on-run-end hooks), the nodes dbt never
finished (skipped because something upstream failed) are decided, and the syncs still
running finish. dbt then writes run_results.json, as ``dbt build`` does; our result file and
run history are written as ``sync`` writes them.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dbt_eventbridge.config.definitions import SyncConfig
from dbt_eventbridge.errors import EventBridgeSyncError
from dbt_eventbridge.run.console import Console, NullConsole
from dbt_eventbridge.run.loader import LoadedProject, load
from dbt_eventbridge.run.options import SyncOptions
from dbt_eventbridge.run.results import RunResult, now
from dbt_eventbridge.run.runner import (
    _best_effort,
    _config_failures,
    _history_writer,
    _merge_recorded_results,
    _open_history,
    _publisher_factory,
    _run_one,
    _send_alerts,
    _warn,
    _write_result,
)
from dbt_eventbridge.run.sync_run import RunContext, SharedPublisher
from dbt_eventbridge.warehouse.nodes import FAILED, LastRun, ModelNode, NodeResult, record_result
from dbt_eventbridge.warehouse.project import DbtProject

_STOP = "\0stop"


@dataclass
class BuildOutcome:
    dbt_exit_code: int   # 0 success, 1 a node failed, 2 dbt could not run
    dbt_error: str | None
    result: RunResult    # the syncs, as `sync` reports them

    @property
    def exit_code(self) -> int:
        """dbt's failure outranks ours; otherwise ours."""
        return self.dbt_exit_code or self.result.exit_code


class BuildGate:
    """Which synced nodes the running build has decided, from dbt's events (any thread)."""

    def __init__(self, manifest: Any, synced: set[str], selected: set[str], command: str = "build") -> None:
        self.manifest = manifest
        self.last_run = LastRun(command=command)
        self.lock = threading.Lock()
        self._built: set[str] = set()
        # each synced node -> the tests of it that the build selected and has not finished
        self._waiting: dict[str, set[str]] = {uid: set() for uid in synced}
        for uid in selected:
            node = manifest.nodes.get(uid)
            if node is not None and node.resource_type.value == "test":
                for parent in node.depends_on.nodes:
                    if parent in self._waiting:
                        self._waiting[parent].add(uid)

    def finished(self, uid: str, status: str, invocation_id: str | None) -> list[str]:
        """Record one node's result; the synced nodes now decided."""
        with self.lock:
            self.last_run.invocation_id = invocation_id
            self.last_run.statuses[uid] = status
            at = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat()
            record_result(self.last_run, self.manifest, uid,
                          NodeResult(status, invocation_id, self.last_run.command, at))
            if uid in self._waiting:
                self._built.add(uid)
                if status == "skipped":  # dbt skips a node when something upstream failed
                    cause = self._failed_upstream(uid)
                    if cause:
                        self.last_run.skip_causes[uid] = cause
            for tests in self._waiting.values():
                tests.discard(uid)
            ready = [m for m, tests in self._waiting.items()
                     if m in self._built and (not tests or status_of(self.last_run, m) in FAILED)]
            for m in ready:
                del self._waiting[m]
            return ready

    def remaining(self) -> list[str]:
        """At the end of the build, every synced node not decided yet: dbt skipped it (with
        what failed upstream), or its tests did not all run."""
        with self.lock:
            out = list(self._waiting)
            for m in out:
                if m not in self._built:
                    res = NodeResult("skipped", self.last_run.invocation_id, self.last_run.command, None)
                    self.last_run.record(m, "build", None, res)
                    cause = self._failed_upstream(m)
                    if cause:
                        self.last_run.skip_causes[m] = cause
            self._waiting.clear()
            return out

    def _failed_upstream(self, uid: str) -> str | None:
        ancestors: set[str] = set()
        todo = [uid]
        while todo:
            node = self.manifest.nodes.get(todo.pop())
            for parent in getattr(getattr(node, "depends_on", None), "nodes", ()) if node is not None else ():
                if parent not in ancestors:
                    ancestors.add(parent)
                    todo.append(parent)
        failed = []
        for other, status in self.last_run.statuses.items():
            if status not in ("error", "fail", "runtime error"):
                continue
            node = self.manifest.nodes.get(other)
            if node is None:
                continue
            tested = set(node.depends_on.nodes) if node.resource_type.value == "test" else {other}
            if tested & ancestors:
                what = "failed" if status == "fail" else "had an error"
                failed.append(f"{node.resource_type.value} {node.name} ({other}) {what}")
        return ", ".join(sorted(failed)[:3]) or None


def status_of(last_run: LastRun, uid: str) -> str | None:
    build = last_run.builds.get(uid)
    return build.status if build is not None else None


class _Syncers:
    """Runs the decided syncs, ``build_syncs`` at a time (each on a thread of ours with its own
    connection, history writer and publisher), on dbt's adapter, while dbt builds."""

    def __init__(self, loaded: LoadedProject, options: SyncOptions, result: RunResult, console: Console,
                 client: Any, gate: BuildGate, syncs: dict[str, list[tuple[SyncConfig, ModelNode]]]) -> None:
        self.loaded, self.options, self.result, self.console = loaded, options, result, console
        self.client, self.gate, self.syncs = client, gate, syncs
        self.queue: queue.Queue[str] = queue.Queue()
        self.attached = threading.Event()
        self._lock = threading.Lock()
        self._finished = False
        self._set_up = False   # the first thread with work merged the recorded results and made the history
        self._working = 0      # threads that took work and have not finished: the last one prunes
        self._threads = [threading.Thread(target=self._work, args=(i,), name=f"dbt-eventbridge-sync-{i}",
                                          daemon=True) for i in range(max(1, loaded.settings.build_syncs))]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def attach(self) -> None:
        """Bind our project to the adapter dbt registered for this build (at its first event
        of execution, or after the build if it never got there)."""
        with self._lock:
            if not self.attached.is_set():
                self.loaded.project.attach_to_running_dbt(self.loaded.project.manifest)
                self.loaded.project.before_dbt_closes_connections(self.finish)
                self.attached.set()

    def finish(self) -> None:
        """Decide what is left and wait for every sync (dbt's end, or after the build)."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
        for uid in self.gate.remaining():
            self.queue.put(uid)
        self.queue.put(_STOP)
        for t in self._threads:
            t.join()

    def _next(self) -> str:
        uid = self.queue.get()
        if uid == _STOP:
            self.queue.put(_STOP)  # for the other threads
        return uid

    def _work(self, index: int) -> None:
        first = self._next()
        if first == _STOP:
            return
        with self._lock:
            self._working += 1
        publisher: SharedPublisher | None = None
        loaded, result, console = self.loaded, self.result, self.console
        try:
            if not self.attached.is_set():
                self.attach()
            settings = loaded.settings
            # A project object per thread: it keeps its connection's transaction state.
            project = loaded.project if index == 0 else loaded.project.sibling()
            make_publisher = _publisher_factory(loaded, self.client)
            publisher = SharedPublisher(make_publisher)
            with project.connection(f"dbt_eventbridge_{index}", wait_seconds=settings.lock_wait_seconds):
                # No memory limit: DuckDB's is one for the whole database, and dbt is building in it.
                project.setup_session("")
                with self._lock:  # the others wait for the schema and history tables to exist
                    if not self._set_up:
                        with self.gate.lock:
                            _merge_recorded_results(loaded, self.gate.last_run, result, console)
                        history = _open_history(loaded, result, console)  # (its tables made, or upgraded)
                        self._set_up = True
                    else:
                        history = _history_writer(loaded, project, result)
                ctx = RunContext(project, settings, self.options, self.gate.last_run, console, history, publisher,
                                 make_publisher)
                uid = first
                while uid != _STOP:
                    for sync, node in self.syncs.get(uid, []):
                        _run_one(ctx, sync, node, result)
                    uid = self._next()
                with self._lock:
                    self._working -= 1
                    last = self._working == 0
                if last:  # every sync has run (work ends only with _STOP)
                    _best_effort(console, "prune the run history", history.prune)
                    if loaded.alerts:
                        _send_alerts(loaded, result, history, console)
        except EventBridgeSyncError as e:
            result.error, result.retryable = str(e), e.retryable
            console.error(result.error)
        except Exception as e:  # noqa: BLE001 - reported, never a traceback from our thread
            result.error = f"the syncs stopped on an unexpected error: {e.__class__.__name__}: {e}"
            console.error(result.error)
        finally:
            if publisher is not None:
                publisher.close()


BUILDING_COMMANDS = ("build", "run", "snapshot", "seed")  # dbt commands that build synced nodes
BUILT_BY = {"run": {"model"}, "snapshot": {"snapshot"}, "seed": {"seed"}}  # build: every kind


def _kind(manifest: Any, uid: str) -> str | None:
    node = manifest.nodes.get(uid)
    return str(node.resource_type.value) if node is not None else None


def run_build(dbt_args: Sequence[str], *, command: str = "build", console: Console | None = None, client: Any = None,
              settings: dict[str, Any] | None = None) -> BuildOutcome:
    """Run ``dbt build`` (or ``run``, ``snapshot``, ``seed``) with these arguments, syncing each
    synced node as soon as it (and, under build, each of its selected tests) passes. Never
    raises for problems a user can cause."""
    if command not in BUILDING_COMMANDS:
        raise ValueError(f"not a dbt command that builds nodes: {command}")
    console = console or NullConsole()
    result = RunResult(run_id=str(uuid.uuid4()), started_at=now())
    t_start = time.perf_counter()
    try:
        params = DbtProject.build_params(dbt_args, command)
    except EventBridgeSyncError as e:
        result.error = str(e)
        console.error(result.error)
        return BuildOutcome(2, result.error, result)
    options = SyncOptions(project_dir=params.get("project_dir") or ".", profiles_dir=params.get("profiles_dir"),
                          target=params.get("target"), profile=params.get("profile"),
                          vars=dict(params.get("vars") or {}), settings=dict(settings or {}))
    project: DbtProject | None = None
    loaded: LoadedProject | None = None
    syncer: _Syncers | None = None
    try:
        project = DbtProject(options.project_dir, options.profiles_dir, options.target, options.vars, options.profile)
        project.parse_for_build()
        selected = project.build_selection(params)
        if command in BUILT_BY:  # `dbt ls` lists every type; `dbt run` builds models only, and so on
            selected = {u for u in selected if _kind(project.manifest, u) in BUILT_BY[command]}
        loaded = load(options, parsed=project, selected=selected)
        result.startup_seconds = time.perf_counter() - t_start
        result.settings = loaded.settings.redacted()
        _config_failures(loaded, result, console)
        syncs: dict[str, list[tuple[SyncConfig, ModelNode]]] = {}
        for sync, node in loaded.syncs:
            syncs.setdefault(node.unique_id, []).append((sync, node))
        if not syncs and not loaded.problems:
            _warn(result, console, f"no node that this dbt {command} selects has a sync: dbt runs, nothing is synced")
        # only `dbt build` runs tests: under the others, a node is decided when it is built
        gate = BuildGate(project.manifest, set(syncs), selected if command == "build" else set(), command)
        syncer = _Syncers(loaded, options, result, console, client, gate, syncs)
        syncer.start()
    except EventBridgeSyncError as e:  # dbt still builds: our problem must not stop the user's build
        result.error, result.retryable = str(e), e.retryable
        console.error(f"{result.error} (dbt {'builds' if command == 'build' else 'runs'}; nothing is synced)")
        syncer = None

    failed_events: list[str] = []

    def on_event(event: Any) -> None:
        """Called by dbt, in its threads, for every event: it must never raise into dbt's build."""
        if syncer is None:
            return
        try:
            name = event.info.name
            if name == "NodeFinished":
                uid = event.data.node_info.unique_id
                for ready in gate.finished(uid, str(event.data.run_result.status).lower(), event.info.invocation_id):
                    syncer.queue.put(ready)
            elif name in ("ConcurrencyLine", "NodeStart") and not syncer.attached.is_set():
                syncer.attach()
        except Exception as e:  # noqa: BLE001 - reported after the build; the node is decided at its end
            if not failed_events:
                failed_events.append(f"{e.__class__.__name__}: {e}")

    runner = project if project is not None else DbtProject(options.project_dir, options.profiles_dir,
                                                            options.target, options.vars, options.profile)
    if syncer is None:
        runner.manifest = None  # dbt parses on its own, and says what is wrong
    dbt_rc, dbt_error = runner.run_build(list(dbt_args), on_event, command)
    if failed_events:
        _warn(result, console, f"an event of dbt's could not be read ({failed_events[0]}): a synced node it "
                               "concerned may be reported as skipped and not synced; `dbt-eventbridge sync` sends "
                               "its changes")
    if syncer is not None:
        if not syncer.attached.is_set():
            try:
                syncer.attach()
            except Exception as e:  # noqa: BLE001 - dbt stopped before it ran anything
                result.error = f"dbt stopped before it built anything: {e}"
                syncer.queue.put(_STOP)
        syncer.finish()
        result.dbt_invocation_id = syncer.gate.last_run.invocation_id
    result.finished_at = now()
    result.seconds = time.perf_counter() - t_start
    _write_result(result, options, loaded, console)
    return BuildOutcome(dbt_rc, dbt_error, result)
