"""``dbt-eventbridge sandbox``: a local EventBridge for the project's own buses, to try syncs with no AWS account.

The server, the buses and the reading are :mod:`dbt_eventbridge.ops.sandbox`; this is the
command: its options, what it prints, and how it stops.
"""

from __future__ import annotations

import errno
import os
import shlex
import signal
import sys
import threading
from functools import partial
from typing import Any

import click

from dbt_eventbridge.cli.console import terminal_width
from dbt_eventbridge.cli.options import apply_options, build_options, fail, project_options, run_library
from dbt_eventbridge.config.definitions import DEFAULT_BUS
from dbt_eventbridge.ops.sandbox import (
    DEFAULT_REGION,
    LocalEventBridge,
    ProjectBuses,
    format_envelope,
    format_event,
    project_buses,
    require_moto,
)

DEFAULT_PORT = 4010
HOST = "127.0.0.1"


def _note(text: str) -> None:
    click.echo(text, err=True)


def _next_command(common: dict[str, Any]) -> str:
    """`dbt-eventbridge sync` with the project flags this command was given."""
    args = ["dbt-eventbridge", "sync"]
    for flag, key in (("--project-dir", "project_dir"), ("--profiles-dir", "profiles_dir"), ("--target", "target"),
                      ("--profile", "profile"), ("--vars", "vars_")):
        value = common.get(key)
        if value and not (key == "project_dir" and value == "."):
            args += [flag, str(value)]
    return shlex.join(args)


def _project_options(f: Any) -> Any:
    return apply_options(f, project_options())


@click.command()
@_project_options
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
              help=f"The port on {HOST} to serve on; 0 picks a free one.")
@click.option("--full", is_flag=True, help="Print each event's detail whole, not cut to the terminal's width.")
@click.option("--json", "as_json", is_flag=True, help="Print each event's envelope as one JSON line instead.")
def sandbox(port: int, full: bool, as_json: bool, **common: Any) -> None:
    """A local EventBridge for this project's buses: try your syncs with no AWS account.

    Serves moto's EventBridge on 127.0.0.1, creates the classic buses the project's syncs
    publish to (Custom Event Buses, v2, are not served), prints the variables that point
    `dbt-eventbridge sync` at it, then prints every event that arrives (time, bus, source,
    detail-type, detail) until Ctrl-C. Needs the sandbox extra:
    pip install 'dbt-eventbridge[sandbox]'.

    Exit codes: 0 stopped by Ctrl-C or SIGTERM; 2 could not start (moto missing, port in
    use, the project could not be loaded).
    """
    run_library(require_moto, None)
    local = LocalEventBridge(host=HOST, port=port)
    try:
        local.start()
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            fail(f"port {port} on {HOST} is in use by another program. Stop that program, or choose another port "
                 "with --port N (--port 0 picks a free one).", None)
        fail(f"could not serve on {HOST}:{port}: {e.strerror or e}. Choose another port with --port N "
             "(--port 0 picks a free one).", None)

    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        if stop.is_set():  # a second Ctrl-C: stop now, whatever is running
            raise KeyboardInterrupt
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    received = 0
    try:
        found: ProjectBuses = run_library(lambda: project_buses(build_options(**common)), None)
        if stop.is_set():
            return
        _prepare(local, found)
        queues = _route(local, found)
        _banner(local, queues, common)

        # Cut to the terminal's width (COLUMNS wins) on a terminal only: piped or redirected, every
        # line is whole (a COLUMNS inherited from a parent, as pytest's, cut the JSON of a detail).
        width = terminal_width() if not (full or as_json) and sys.stdout.isatty() else None
        bus_width = max(len(bus) for bus in queues)

        def emit(bus: str, envelope: dict[str, Any]) -> None:
            nonlocal received
            received += 1
            click.echo(format_envelope(envelope) if as_json else format_event(bus.ljust(bus_width), envelope, width))

        run_library(lambda: local.tail(queues, emit, stop), None)
    except KeyboardInterrupt:
        _note("Interrupted.")
        sys.exit(130)
    finally:
        local.stop()
    _note(f"Stopped after {received} event(s); the local EventBridge is gone.")


def _prepare(local: LocalEventBridge, found: ProjectBuses) -> None:
    """The region the syncs publish in (the settings', else the one we tell them), and moto's quirks."""
    import warnings

    local.region = found.region or DEFAULT_REGION
    # moto's server answers HTTP 500 when AWS_PROFILE names a profile that does not exist.
    os.environ.pop("AWS_PROFILE", None)
    # moto warns (stderr) on each event whose detail is not an object; AWS ignores those quietly.
    warnings.filterwarnings("ignore", module=r"moto\.")


def _route(local: LocalEventBridge, found: ProjectBuses) -> dict[str, str]:
    """Each bus with a rule that sends every event to a queue of its own: bus -> queue URL."""
    buses = list(found.classic)
    for arn in found.v2:
        _note(f"Note: skipped {arn}: the sandbox serves the classic EventBridge API only, not Custom Event Buses "
              "(v2); syncs to it fail here (leave them out with --exclude).")
    if not buses:
        _note("Note: no sync of this project publishes to a classic bus; serving the default bus." if found.syncs
              else "Note: found no syncs in this project (models with meta.eventbridge); serving the default bus.")
        buses = [DEFAULT_BUS]
    queues: dict[str, str] = {}
    for i, bus in enumerate(buses):
        queues[bus] = run_library(partial(local.create_bus_with_queue, bus, queue_name=f"sandbox-{i}"), None)
    return queues


def _banner(local: LocalEventBridge, queues: dict[str, str], common: dict[str, Any]) -> None:
    exports = {"DBT_EVENTBRIDGE_ENDPOINT_URL": local.endpoint_url, **{
        k: v for k, v in local.env().items() if k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                                     "AWS_DEFAULT_REGION", "AWS_REGION")}}
    _note(f"A local EventBridge (moto) is serving at {local.endpoint_url}, region {local.region}, with the "
          f"bus(es) {', '.join(queues)}.")
    _note("\nIn another terminal, set:")
    for key, value in exports.items():
        _note(f"export {key}={shlex.quote(value)}")
    _note(f"then build your models and run: {_next_command(common)}")
    _note("\nEvents appear here as they arrive (time, bus, source, detail-type, detail); Ctrl-C stops.\n")
