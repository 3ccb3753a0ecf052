"""The ``dbt-eventbridge`` command: a thin layer over :mod:`dbt_eventbridge.run.sync_run`."""

from __future__ import annotations

import sys
from typing import Any

import click

from dbt_eventbridge import __version__
from dbt_eventbridge.cli.console import CliConsole, json_line, resolve_format
from dbt_eventbridge.cli.options import (
    build_options,
    fail,
    history_options,
    internal_error,
    run_library,
    selection_options,
)


@click.group()
@click.version_option(__version__, prog_name="dbt-eventbridge")
def main() -> None:
    """Publish the changes of dbt models to Amazon EventBridge."""
    import logging

    # botocore logs a traceback when refreshing assumed-role credentials fails; the
    # failure itself reaches the user as one clear error.
    logging.getLogger("botocore.credentials").setLevel(logging.CRITICAL)


@main.command()
@selection_options
@click.option("--dry-run", is_flag=True, help="Plan and render; send nothing and leave the state untouched.")
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="With --dry-run: write every entry as JSON lines to this file.")
@click.option("--report", type=click.Path(dir_okay=False), default=None,
              help="Write a self-contained HTML report of this run to this file.")
@click.option("--full-refresh", is_flag=True, help="Send every current row again, as 'added'.")
@click.option("--allow-mass-removal", is_flag=True,
              help="Publish even when a run removes more than max_removal_share of the delivered rows.")
@click.option("--region", default=None, help="AWS region (overrides vars.eventbridge.region).")
@click.option("--endpoint-url", default=None, help="EventBridge endpoint, e.g. a local one for tests.")
@click.option("--aws-profile", default=None, help="AWS profile from your AWS config.")
@click.option("--concurrency", type=int, default=None,
              help="The most PutEvents requests in flight per process (default 64).")
@click.option("--workers", type=int, default=None,
              help="Processes that render and publish, splitting each sync's plan by key (default 1).")
@click.option("--state-schema", default=None, help="Schema that holds the delivered state.")
@click.option("--key", "keys", multiple=True,
              help="With --dry-run and one sync: preview only the rows of this key (42, customer_id=42 or JSON), "
                   "each change with its op, old row, changed columns and entry. Repeatable.")
@click.option("--sync", "sync_names", multiple=True,
              help="Only this sync (a model may have several); repeat for more. Combines with --select.")
@click.option("--quiet", "-q", is_flag=True, help="Only print errors and warnings.")
def sync(dry_run: bool, output: str | None, report: str | None, full_refresh: bool, allow_mass_removal: bool,
         region: str | None, endpoint_url: str | None, aws_profile: str | None, concurrency: int | None,
         workers: int | None, state_schema: str | None, keys: tuple[str, ...], sync_names: tuple[str, ...],
         quiet: bool, **common: Any) -> None:
    """Diff each synced model against what was delivered and publish the changes.

    Exit codes: 0 every change delivered; 1 finished, but rows were rejected or had
    invalid keys (the rest was delivered); 2 could not run (config, connection,
    credentials): a failing sync published nothing, or (if it failed midway) only what
    its state now records; the next run sends the rest.
    """
    if output and not dry_run:
        raise click.UsageError("--output goes with --dry-run")
    from dbt_eventbridge.run.runner import run_sync

    log_format = common.get("log_format")
    if keys and not dry_run:
        raise click.UsageError("--key goes with --dry-run (a preview sends nothing)")
    opts = build_options(dry_run=dry_run, output=output, full_refresh=full_refresh,
                    allow_mass_removal=allow_mass_removal, syncs=tuple(sync_names), keys=tuple(keys),
                    settings={"region": region, "endpoint_url": endpoint_url, "aws_profile": aws_profile,
                              "concurrency": concurrency, "workers": workers, "state_schema": state_schema},
                    **common)
    printer = CliConsole(quiet, log_format_value=log_format)
    try:
        result = run_sync(opts, console=printer)
    except Exception as e:  # noqa: BLE001 - never a traceback for users; DBT_EVENTBRIDGE_DEBUG=1 shows it
        internal_error(e, log_format)
    if report:
        _write_report(result.to_dict(), report, printer)
    if printer.json:
        json_line("info", f"Done. exit code {result.exit_code}", {"result": result.to_dict()})
    elif not quiet:
        click.echo(f"Done. exit code {result.exit_code}; details in {result.result_file or 'no result file'}")
    sys.exit(result.exit_code)


def _building_command(command: str, summary: str) -> None:
    """`dbt-eventbridge build` (run, snapshot, seed): dbt's command in this process, syncing as it goes."""

    @click.option("--eb-quiet", is_flag=True, help="Only print the syncs' errors and warnings (dbt's output is dbt's).")
    @click.argument("dbt_args", nargs=-1, type=click.UNPROCESSED)
    def invoke(eb_quiet: bool, dbt_args: tuple[str, ...]) -> None:
        from dbt_eventbridge.run.build import run_build

        printer = CliConsole(eb_quiet, log_format_value=None)  # (DBT_EVENTBRIDGE_LOG_FORMAT: dbt's flags are dbt's)
        try:
            outcome = run_build(dbt_args, command=command, console=printer)
        except Exception as e:  # noqa: BLE001 - never a traceback for users; DBT_EVENTBRIDGE_DEBUG=1 shows it
            internal_error(e, None)
        result = outcome.result
        dbt_said = f"dbt {command} succeeded" if outcome.dbt_exit_code == 0 else \
            f"dbt {command} failed (exit code {outcome.dbt_exit_code})"
        done = f"Done. {dbt_said}; the syncs' exit code {result.exit_code}; exit code {outcome.exit_code}"
        if printer.json:
            json_line("info", done, {"dbt_exit_code": outcome.dbt_exit_code, "exit_code": outcome.exit_code,
                                     "result": result.to_dict()})
        elif not eb_quiet:
            click.echo(f"{done}; details in {result.result_file or 'no result file'}")
        sys.exit(outcome.exit_code)

    invoke.__doc__ = summary + f"""

    Every argument is dbt {command}'s (`dbt-eventbridge {command} -s tag:crm --target prod`); our
    settings come from vars.eventbridge and the environment, as for `sync`. A node that
    fails{', whose tests fail,' if command == 'build' else ''} or that dbt skips is not synced, and the result says why.

    Exit codes: dbt's when dbt failed (1 a node failed, 2 dbt could not run); otherwise as
    `sync`: 0 every change delivered, 1 rows rejected, 2 a sync could not run.
    """
    main.command(name=command, context_settings={"ignore_unknown_options": True, "allow_extra_args": True})(invoke)


_building_command("build", "`dbt build` in this process, syncing each synced model (seed, snapshot) as soon as it "
                           "and all of its tests have passed, while dbt builds the rest.")
_building_command("run", "`dbt run` in this process, syncing each synced model as soon as dbt has built it.")
_building_command("snapshot", "`dbt snapshot` in this process, syncing each synced snapshot as soon as dbt has "
                              "taken it.")
_building_command("seed", "`dbt seed` in this process, syncing each synced seed as soon as dbt has loaded it.")


def _write_report(run: dict[str, Any], path: str, console: CliConsole) -> None:
    from dbt_eventbridge.ops.report import write_report

    try:
        written = write_report(run, path)
    except OSError as e:
        console.warning(f"could not write the report {path}: {e}")
        return
    console.info(f"report written to {written}")


@main.command()
@click.option("--against-schemas", "against_dir", type=click.Path(file_okay=False), default=None,
              help="Compare each event contract with the file of the same name in this folder (written by "
                   "`dbt-eventbridge schemas`): breaking changes are problems.")
@click.option("--against-registry", is_flag=True,
              help="Compare each event contract with its latest version in the Schema Registry (schema_registry).")
@selection_options
def validate(against_dir: str | None, against_registry: bool, **common: Any) -> None:
    """Check every sync's config, templates and columns; list every problem. For CI.

    With --against-schemas or --against-registry, each event contract is also compared
    with the last one: a field removed or retyped, or one added as required, is a problem
    (your consumers would break); an additive change is a note.

    Exit codes: 0 every sync is valid; 1 problems were found (each listed with the model,
    the sync and the YAML path); 2 the project could not be loaded.
    """
    from dbt_eventbridge.errors import EventBridgeSyncError
    from dbt_eventbridge.run.runner import validate as run_validate
    from dbt_eventbridge.warehouse.project import PackageMissingError

    log_format = common.get("log_format")
    as_json = resolve_format(log_format) == "json"

    def problem(text: str) -> None:
        json_line("error", text) if as_json else click.echo(f"- {text}", err=True)

    if against_dir and against_registry:
        raise click.UsageError("give --against-schemas or --against-registry, not both")
    try:
        problems, checked = run_validate(build_options(**common))
        if (against_dir or against_registry) and not problems:
            from dbt_eventbridge.run.schemas import check_breaking

            contract = check_breaking(build_options(**common), against_dir, against_registry)
            problems = contract.problems + contract.breaking
            for note in contract.notes:
                json_line("info", note) if as_json else click.echo(f"note: {note}")
    except PackageMissingError as e:  # a problem validate exists to find, not a failure to run
        problem(str(e))
        fail("1 problem(s) found.", log_format, 1) if as_json else click.echo("1 problem(s) found.", err=True)
        sys.exit(1)
    except EventBridgeSyncError as e:
        fail(str(e), log_format)
    except Exception as e:  # noqa: BLE001 - never a traceback for users; DBT_EVENTBRIDGE_DEBUG=1 shows it
        internal_error(e, log_format)
    for p in problems:
        problem(str(p))
    if problems:
        syncs = len({(p.model, p.sync) for p in problems if p.model or p.sync})  # a broken one is not loaded
        others = sum(1 for p in problems if not (p.model or p.sync))  # an alert's, the settings'
        where = [f"{syncs} sync(s)"] * bool(syncs) + [f"{others} outside the syncs (settings, alerts)"] * bool(others)
        summary = f"{len(problems)} problem(s) found, in {' and '.join(where)}."
        json_line("error", summary) if as_json else click.echo(summary, err=True)
        sys.exit(1)
    json_line("info", f"OK: {checked} sync(s) valid.") if as_json else click.echo(f"OK: {checked} sync(s) valid.")


@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the schema files (default: target/eventbridge_schemas).")
@click.option("--register", is_flag=True,
              help="Register each schema in the Schema Registry (schema_registry): a new version when it changed.")
@selection_options
def schemas(out_dir: str | None, register: bool, **common: Any) -> None:
    """Write each sync's event contracts as JSON Schema (or OpenAPI 3) files, one per source
    and detail-type, typed from the models' dbt contracts; with --register, register them.

    Exit codes: 0 written (and registered); 1 problems were found (listed); 2 the project,
    AWS or the registry could not be reached.
    """
    from dbt_eventbridge.errors import EventBridgeSyncError
    from dbt_eventbridge.run.schemas import write

    log_format = common.get("log_format")
    as_json = resolve_format(log_format) == "json"

    def say(text: str, fields: dict[str, Any] | None = None) -> None:
        json_line("info", text, fields) if as_json else click.echo(text)

    try:
        report = write(build_options(**common), out_dir, register)
    except EventBridgeSyncError as e:
        fail(str(e), log_format)
    except Exception as e:  # noqa: BLE001 - never a traceback for users; DBT_EVENTBRIDGE_DEBUG=1 shows it
        internal_error(e, log_format)
    for p in report.problems:
        json_line("error", str(p)) if as_json else click.echo(f"- {p}", err=True)
    if report.problems:
        fail(f"{len(report.problems)} problem(s) found; no schema written.", log_format, 1)
    for note in report.notes:
        say(f"note: {note}")
    for f in report.files:
        say(f"wrote {f}", {"file": str(f)})
    for r in report.registered:
        say(f"{r.name}: {r.action}, version {r.version}", {"schema": r.name, "action": r.action, "version": r.version})
    say(f"OK: {len(report.files)} schema file(s)" + (f", {len(report.registered)} registered." if register else "."))


# -- run history and day-two commands --------------------------------------------------------

def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
    """A plain text table: (heading, key) per column."""
    cells = [[_cell(r.get(key)) for _, key in columns] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (h, _) in enumerate(columns)]
    click.echo("  ".join(h.ljust(w) for (h, _), w in zip(columns, widths)).rstrip())
    for c in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(c, widths)).rstrip())


def _cell(value: Any, limit: int = 80) -> str:
    import datetime as dt
    from decimal import Decimal

    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (float, Decimal)) and not float(value).is_integer():
        return f"{float(value):.2f}"  # warehouses return seconds as float or decimal
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _emit_json(kind: str, rows: list[dict[str, Any]]) -> None:
    for r in rows:
        json_line("info", kind, _json_row(r))


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    """A history row for a JSON line: its key as a JSON object, not JSON inside a string (times
    and numbers are made JSON by json_line)."""
    import json

    key = row.get("event_key")
    return {**row, "event_key": json.loads(key)} if isinstance(key, str) and key.startswith("{") else row


def _counts_cells(r: dict[str, Any]) -> None:
    """The text tables' cells of a history row: planned and sent per op, and the rows recorded
    without an event (trigger off, re-baselined, initial sync skipped), so planned minus sent
    never reads as loss."""
    for group in ("planned", "sent"):
        r[f"{group}_cell"] = "/".join(str(r.get(f"{group}_{op}") or 0) for op in ("added", "changed", "removed"))
    r["no_event_cell"] = sum(int(r.get(k) or 0) for k in ("not_triggered", "rebaselined", "initial_skipped"))


_COUNT_COLUMNS = [("PLANNED A/C/R", "planned_cell"), ("SENT A/C/R", "sent_cell"), ("NO EVENT", "no_event_cell"),
                  ("REJECTED", "rejected")]


@main.command()
@history_options
@click.option("--sync", "sync_name", default=None, help="Only the runs of this sync.")
@click.option("--limit", type=int, default=20, show_default=True, help="How many rows (one per sync per run).")
def runs(sync_name: str | None, limit: int, **common: Any) -> None:
    """List recent runs from the run history, newest first (one line per sync per run)."""
    from dbt_eventbridge.ops.operations import recent_runs

    log_format = common.get("log_format")
    rows = run_library(lambda: recent_runs(build_options(**common), limit=limit, sync=sync_name), log_format)
    if resolve_format(log_format) == "json":
        _emit_json("run", rows)
        return
    if not rows:
        click.echo("No runs recorded yet.")
        return
    for r in rows:
        _counts_cells(r)
    _table(rows, [("RUN ID", "run_id"), ("SYNC", "sync_name"), ("STATUS", "status"), ("ACTION", "action"),
                  ("BY", "run_by"), ("EXIT", "exit_code"), ("STARTED (UTC)", "started_at"), ("SECONDS", "seconds"),
                  *_COUNT_COLUMNS, ("MESSAGE", "message")])


@main.command()
@history_options
@click.argument("run_id", required=False)
@click.option("--sync", "sync_name", default=None, help="With --key: the sync whose row to follow.")
@click.option("--key", default=None, help="With --sync: the row's key: 42, customer_id=42 or '{\"customer_id\": 42}'.")
@click.option("--failed", is_flag=True, help="Only rejected events.")
@click.option("--limit", type=int, default=50, show_default=True, help="How many events to show.")
@click.option("--detail/--no-detail", default=True, help="Show each event's detail (with --key).")
@click.option("--report", type=click.Path(dir_okay=False), default=None,
              help="With RUN_ID: also write the run's HTML report to this file.")
def inspect(run_id: str | None, sync_name: str | None, key: str | None, failed: bool, limit: int, detail: bool,
            report: str | None, **common: Any) -> None:
    """Show one run's events and failures (RUN_ID, or its first characters), or the history
    of one row (--sync S --key K): every entry sent for it, when, and what AWS answered."""
    from dbt_eventbridge.ops import operations

    log_format = common.get("log_format")
    as_json = resolve_format(log_format) == "json"
    if (run_id is None) == (key is None) or (key is not None and not sync_name):
        raise click.UsageError("give a RUN_ID, or --sync S --key K")
    opts = build_options(**common)
    if key is not None:
        rows = run_library(lambda: operations.key_history(opts, sync_name or "", key, limit=limit), log_format)
        if as_json:
            _emit_json("event", rows)
            return
        if not rows:
            click.echo(f"No event recorded for key {key} of sync {sync_name} (in the last "
                       "history_retention_days).")
            return
        click.echo(f"{len(rows)} event(s) for key {rows[0]['event_key']} of sync {sync_name}:")
        for r in rows:
            answer = f"accepted, EventId {r['aws_event_id']}" if r["error_code"] is None else \
                f"REJECTED {r['error_code']}: {r['error_message']}"
            click.echo(f"- {_cell(r['sent_at'])} UTC  run {r['run_id']}  {r['op']}  {r['detail_type'] or '-'}  "
                       f"{r['size_bytes'] or 0} bytes  attempts {r['attempts']}  {answer}")
            if r["event_id"]:
                click.echo(f"    event id {r['event_id']}")
            if detail and r.get("detail"):
                click.echo(f"    detail {r['detail']}")
        return
    d = run_library(lambda: operations.run_details(opts, run_id or "", limit=limit, failed_only=failed,
                                                    report=bool(report)), log_format)
    if report:
        _write_report(d.report, report, CliConsole(False, log_format_value=log_format))
    if as_json:
        json_line("info", f"run {d.run_id}: {d.status}", {
            "run_id": d.run_id, "status": d.status, "exit_code": d.exit_code, "syncs": d.syncs, "counts": d.counts,
            "events": [_json_row(e) for e in d.events], "more_events": d.more_events})
        return
    click.echo(f"Run {d.run_id}: {d.status} (exit {d.exit_code})")
    for s in d.syncs:
        _counts_cells(s)
    _table(d.syncs, [("SYNC", "sync_name"), ("MODEL", "model"), ("STATUS", "status"), ("ACTION", "action"),
                     ("BY", "run_by"), ("EXIT", "exit_code"), ("STARTED (UTC)", "started_at"), ("SECONDS", "seconds"),
                     *_COUNT_COLUMNS, ("MESSAGE", "message")])
    for s in d.syncs:
        for line in _sync_notes(s):
            click.echo(f"\n{s['sync_name']}: {line}")
    if d.counts:
        click.echo("\nEvents:")
        for c in d.counts:
            c["answer"] = "accepted" if c["error_code"] is None else f"rejected: {c['error_code']}"
        _table(d.counts, [("SYNC", "sync_name"), ("OP", "op"), ("ANSWER", "answer"), ("EVENTS", "events"),
                          ("RETRIES", "retries")])
    if d.events:
        click.echo("\nRejected events:" if failed else "\nEvents (rejected first):")
        for e in d.events:
            answer = f"EventId {e['aws_event_id']}" if e["error_code"] is None else \
                f"REJECTED {e['error_code']}: {e['error_message']}"
            click.echo(f"- {e['sync_name']}  {e['op']}  key {e['event_key']}  {answer}")
    if d.more_events:
        click.echo(f"... and {d.more_events} more (--limit)")


def _sync_notes(s: dict[str, Any]) -> list[str]:
    """What `inspect RUN_ID` says of one sync under its table: what was asked of it, by whom and
    when; the rows it recorded without an event; what held it back; a message too long for the table."""
    from dbt_eventbridge.ops.report import BLOCKED_BY, describe_action, without_event, without_event_text

    notes = []
    sync = {**s, "planned": {op: s.get(f"planned_{op}") for op in ("added", "changed", "removed")},
            "sent": {op: s.get(f"sent_{op}") for op in ("added", "changed", "removed")}}
    action = describe_action(sync)
    if action:
        when = s.get("finished_at") or s.get("started_at")
        invocation = f", dbt invocation {s['dbt_invocation_id']}" if s.get("dbt_invocation_id") else ""
        notes.append(f"{action} (at {_cell(when)} UTC{invocation})")
    if without_event(s):
        notes.append(f"recorded as delivered without an event: {without_event(s)} ({without_event_text(s)})")
    if s.get("blocked_by"):
        notes.append(f"held back: {BLOCKED_BY.get(str(s['blocked_by']), s['blocked_by'])}")
    if s.get("message") and len(str(s["message"])) > 80:
        notes.append(str(s["message"]))
    return notes


def _confirm(yes: bool, question: str, log_format: str | None) -> None:
    if yes:
        return
    if not sys.stdin or not sys.stdin.isatty():
        fail(f"{question} This needs a confirmation: run it again with --yes (no terminal to ask on).",
              log_format, 1)
    if not click.confirm(question, default=False):
        fail("cancelled; nothing was changed.", log_format, 1)


@main.command()
@history_options
@click.option("--sync", "sync_name", required=True, help="The sync whose delivered state to forget.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def reset(sync_name: str, yes: bool, **common: Any) -> None:
    """Forget what was delivered for one sync: its next run sends every current row again."""
    from dbt_eventbridge.ops.operations import reset_sync

    log_format = common.get("log_format")
    _confirm(yes, f"Forget the delivered state of sync {sync_name}? Its next run sends every row again.",
             log_format)
    done = run_library(lambda: reset_sync(build_options(**common), sync_name), log_format)
    n = done.forgotten
    message = (f"Reset {sync_name}: forgot {n} delivered row(s); the next sync sends every current row as "
               f"added. Recorded in the run history as run {done.run_id} (by {done.run_by or 'an unknown user'})."
               if n else f"{sync_name} has no delivered state; nothing to reset.")
    json_line("info", message, {"sync": sync_name, "forgotten": n, "run_id": done.run_id, "run_by": done.run_by,
                                "at": done.at}) if resolve_format(log_format) == "json" else click.echo(message)


@main.command()
@history_options
@click.option("--sync", "sync_name", required=True, help="The sync to re-baseline.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def rebaseline(sync_name: str, yes: bool, **common: Any) -> None:
    """Take the model as it is now as delivered, sending nothing: the next run sends only later changes."""
    from dbt_eventbridge.run.runner import run_sync

    log_format = common.get("log_format")
    _confirm(yes, f"Record the current rows of sync {sync_name} as delivered, without sending them?", log_format)
    printer = CliConsole(False, log_format_value=log_format)
    # Nothing is sent, so the mass-removal guard has nothing to protect: removals are taken as delivered.
    opts = build_options(syncs=(sync_name,), rebaseline=True, allow_mass_removal=True, **common)
    try:
        result = run_sync(opts, console=printer)
    except Exception as e:  # noqa: BLE001 - never a traceback for users; DBT_EVENTBRIDGE_DEBUG=1 shows it
        internal_error(e, log_format)
    if printer.json:
        json_line("info", f"Done. exit code {result.exit_code}", {"result": result.to_dict()})
    sys.exit(result.exit_code)


from dbt_eventbridge.cli.sandbox import sandbox  # noqa: E402 - the command lives in its own module

main.add_command(sandbox)

if __name__ == "__main__":
    main()
