"""Run the `dbt` and `dbt-eventbridge` commands of the integration tests in processes forked from a pre-warmed one.

Why: each command is a new Python process that spends about 3.5 CPU-s importing dbt-core and its
adapters, and about 2.5 CPU-s more building the JSON schemas dbt validates its configs with, before it
does any work; a `dbt build` of integration_project/ costs 8.5-11 CPU-s in all. The integration lane runs
several hundred such commands. A server process (one per test process) imports dbt once and
builds those schemas once; each command then runs in a process forked from it, with its own
argv, working folder, environment, stdin (/dev/null), stdout and stderr (files), and exit code,
exactly as the console script would run it: the same entry point (looked up in the installed
package metadata), the same exit-code rules, atexit handlers and logging shut down on the way out.

Measured on the 2-core machine (2026-12-01): `dbt parse` of integration_project/ with a partial parse,
4.7 s as a new process, 1.3 s forked from the warm server.

What this does not exercise is the console script's own start-up (the shebang, the import of
dbt_eventbridge from cold): the tests that start the CLI with subprocess.Popen (kills,
concurrency), the CI example scripts and `make demo` still do. EB_TEST_COLD=1 runs every
command as a new process instead.

Protocol: JSON lines on the server's stdin ({"argv", "cwd", "env", "stdout", "stderr"}); the server
answers on its stdout {"pid": N} when the command started and {"rc": N} when it ended.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

# The commands served: console script name -> entry point (module:function).
SERVED = ("dbt", "dbt-eventbridge")


# The classes whose JSON schema (built on first use, then cached per process) a parse, a build and a
# sync of integration_project/ validate with: recorded by wrapping dbtClassMixin.json_schema. A
# name dbt no longer has is skipped (it only costs that class's first use in each command).
_SCHEMAS = {
    "dbt.adapters.duckdb.credentials:DuckDBCredentials", "dbt.adapters.postgres.connections:PostgresCredentials",
    "dbt.artifacts.resources.v1.components:Contract", "dbt.artifacts.resources.v1.config:Hook",
    "dbt.artifacts.resources.v1.config:NodeConfig", "dbt.artifacts.resources.v1.config:TestConfig",
    "dbt.artifacts.resources.v1.model:ModelConfig", "dbt.artifacts.resources.v1.seed:SeedConfig",
    "dbt.artifacts.resources.v1.source_definition:SourceConfig", "dbt.contracts.graph.nodes:GenericTestNode",
    "dbt.contracts.graph.nodes:HookNode", "dbt.contracts.graph.nodes:ModelNode", "dbt.contracts.graph.nodes:SeedNode",
    "dbt.contracts.graph.nodes:SingularTestNode", "dbt.contracts.graph.unparsed:UnparsedModelUpdate",
    "dbt.contracts.graph.unparsed:UnparsedSourceDefinition", "dbt.contracts.project:Configuration",
    "dbt.contracts.project:PackageConfig", "dbt.contracts.project:ProfileConfig", "dbt.contracts.project:Project",
    "dbt.contracts.project:ProjectFlags", "dbt.contracts.selection:SelectorFile", "dbt.task.test:TestResultData",
}


def _warm() -> None:
    import importlib.util

    import dbt.adapters.duckdb.impl
    import dbt.cli.main
    import dbt.contracts.selection
    import dbt.parser.manifest
    import dbt.task.build
    import dbt.task.test
    from dbt_common.dataclass_schema import dbtClassMixin

    import dbt_eventbridge.cli.main
    import dbt_eventbridge.run.runner
    import dbt_eventbridge.warehouse.project  # noqa: F401

    if importlib.util.find_spec("dbt.adapters.postgres") is not None:  # not in the dbt-version venvs
        import dbt.adapters.postgres.connections
        import dbt.adapters.postgres.impl  # noqa: F401

    seen: set[type] = set()
    todo: list[type] = [dbtClassMixin]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in seen:
                seen.add(sub)
                todo.append(sub)
                if f"{sub.__module__}:{sub.__qualname__}" in _SCHEMAS:
                    sub.json_schema()  # type: ignore[attr-defined]


def _warm_manifest_loading(project: Path) -> bool:
    """Load a partial-parse file that a served command wrote, once, in the server itself.

    mashumaro builds a node class's msgpack decoder on the first node of that class it meets,
    which costs each command about 0.36 s of its partial parse (measured: 0.41 s the first load
    of integration_project's file in a process, 0.05 s the next). Loading one real file here,
    between two commands, builds them for every command forked after it. Only class-level
    caches change: no adapter, flag or connection is touched."""
    from dbt.contracts.graph.manifest import Manifest
    from dbt.parser.manifest import extended_mashumaro_encoder, extended_mashumuro_decoder

    for path in sorted(project.glob("target/**/partial_parse.msgpack")):
        try:
            manifest = Manifest.from_msgpack(path.read_bytes(), decoder=extended_mashumuro_decoder)  # type: ignore[attr-defined]
            manifest.to_msgpack(extended_mashumaro_encoder)  # and the encoders a full parse writes with (0.22 s)
        except Exception:  # a file of another dbt version: warm from a later one
            continue
        return True
    return False


def _exit_code(code: object) -> int:
    """What the interpreter makes of sys.exit(code)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _child(req: dict[str, Any], mains: dict[str, Any], replies: int) -> None:
    """In the forked process: become the command, run it, exit with its code (never returns)."""
    rc = 1
    try:
        os.close(replies)
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, req["stdout"]), (2, req["stderr"])):
            f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(f, fd)
            os.close(f)
        os.close(null)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115
        sys.argv = list(req["argv"])
        main = mains[Path(req["argv"][0]).name]
        try:
            rc = _exit_code(main())
        except SystemExit as e:
            rc = _exit_code(e.code)
        except BaseException:  # what the interpreter does with an uncaught error
            import traceback

            traceback.print_exc()
            rc = 1
        try:
            atexit._run_exitfuncs()
            import logging

            logging.shutdown()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
    finally:
        os._exit(rc)


def serve() -> None:
    _warm()
    mains = {ep.name: ep.load() for ep in entry_points(group="console_scripts") if ep.name in SERVED}
    assert set(mains) == set(SERVED), f"console scripts not installed: {set(SERVED) - set(mains)}"
    assert threading.active_count() == 1, "the server must not fork with threads running"
    # Replies go to a private copy of stdout; fd 1 is free for the children to take over.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    out.write(json.dumps({"ready": True}) + "\n")
    warmed = False
    for line in sys.stdin:
        req = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(req, mains, out.fileno())
        out.write(json.dumps({"pid": pid}) + "\n")
        started = time.monotonic()
        _, status, usage = os.wait4(pid, 0)
        if not warmed:
            warmed = _warm_manifest_loading(Path(req["cwd"]))
        if log := os.environ.get("EB_TEST_CMDLOG"):  # where the suite's time goes, one line a command
            with open(log, "a") as f:
                f.write(json.dumps({"argv": req["argv"], "wall": round(time.monotonic() - started, 3),
                                    "cpu": round(usage.ru_utime + usage.ru_stime, 3)}) + "\n")
        out.write(json.dumps({"rc": os.waitstatus_to_exitcode(status)}) + "\n")


def outside_env() -> dict[str, str]:
    """This process's environment without dbt's and AWS's variables: a test gives its own."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("DBT_", "AWS_"))}


class Server:
    """The client side: one server per test process, started on first use, stopped at exit."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        atexit.register(self.stop)

    def _start(self) -> subprocess.Popen[str]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "tests.integration.prewarmed"], cwd=Path(__file__).resolve().parents[2],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, env=outside_env())
            assert json.loads(self._read(self._proc, 300)).get("ready"), "the pre-warmed server did not start"
        return self._proc

    @staticmethod
    def _read(proc: subprocess.Popen[str], timeout: float) -> str:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError
        line = proc.stdout.readline()
        assert line, "the pre-warmed server died"
        return line

    def run(self, argv: list[str], cwd: Path, env: dict[str, str], timeout: float,
            tmp: Path) -> subprocess.CompletedProcess[str]:
        proc = self._start()
        n = time.monotonic_ns()
        out, err = tmp / f".cmd-{n}.out", tmp / f".cmd-{n}.err"
        assert proc.stdin is not None
        proc.stdin.write(json.dumps({"argv": argv, "cwd": str(cwd), "env": env,
                                     "stdout": str(out), "stderr": str(err)}) + "\n")
        pid = json.loads(self._read(proc, 60))["pid"]
        try:
            rc = json.loads(self._read(proc, timeout))["rc"]
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            json.loads(self._read(proc, 60))
            raise subprocess.TimeoutExpired(argv, timeout) from None
        try:
            return subprocess.CompletedProcess(argv, rc, out.read_text(errors="replace"),
                                               err.read_text(errors="replace"))
        finally:
            out.unlink(missing_ok=True)
            err.unlink(missing_ok=True)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


if __name__ == "__main__":
    serve()
