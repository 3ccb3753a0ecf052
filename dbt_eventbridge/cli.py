"""The ``dbt-eventbridge`` command: a thin layer over :mod:`dbt_eventbridge.sync`."""

from __future__ import annotations

import sys
from typing import Any

import click

from dbt_eventbridge import __version__


class _MultiValue(click.Option):
    """Accept dbt's `-s a b` as well as `-s a -s b`, like dbt's own selection flags."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("multiple", True)
        super().__init__(*args, **kwargs)

    def add_to_parser(self, parser: Any, ctx: click.Context) -> None:
        super().add_to_parser(parser, ctx)
        for name in self.opts:
            opt = parser._long_opt.get(name) or parser._short_opt.get(name)
            if opt is None:
                continue
            original = opt.process

            def process(value: Any, state: Any, original: Any = original) -> None:
                values = [value]
                while state.rargs and not state.rargs[0].startswith("-"):
                    values.append(state.rargs.pop(0))
                for v in values:
                    for part in str(v).split():
                        original(part, state)

            opt.process = process


def _common(f: Any) -> Any:
    options = [
        click.option("--project-dir", default=".", show_default=True, type=click.Path(file_okay=False),
                     help="The dbt project folder."),
        click.option("--profiles-dir", default=None, type=click.Path(file_okay=False),
                     help="Folder of profiles.yml (default: DBT_PROFILES_DIR, the project folder, ~/.dbt)."),
        click.option("--target", "-t", default=None, help="The dbt target to use."),
        click.option("--profile", default=None, help="The dbt profile to use (default: the project's)."),
        click.option("--vars", "vars_", default=None, help="dbt vars as YAML, e.g. '{day: 2}'."),
        click.option("--select", "-s", "select", cls=_MultiValue, help="dbt selection syntax, e.g. -s customers+ tag:crm."),
        click.option("--exclude", "exclude", cls=_MultiValue, help="dbt selection syntax of models to leave out."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _options(project_dir: str, profiles_dir: str | None, target: str | None, profile: str | None,
             vars_: str | None, select: tuple[str, ...], exclude: tuple[str, ...], **extra: Any) -> Any:
    import yaml

    from dbt_eventbridge.sync import SyncOptions

    parsed: dict[str, Any] = {}
    if vars_:
        try:
            parsed = yaml.safe_load(vars_) or {}
        except yaml.YAMLError as e:
            raise click.UsageError(f"--vars is not valid YAML: {e}")
        if not isinstance(parsed, dict):
            raise click.UsageError("--vars must be a YAML mapping, e.g. '{day: 2}'")
    return SyncOptions(project_dir=project_dir, profiles_dir=profiles_dir, target=target, profile=profile,
                       vars=parsed, select=tuple(select), exclude=tuple(exclude), **extra)


class _Printer:
    """Messages of a run, and a one-line progress display on a terminal."""

    PROGRESS_INTERVAL = 0.25

    def __init__(self, quiet: bool, progress: bool | None = None) -> None:
        self.quiet = quiet
        # Progress only on a terminal: CI logs and pipes get the summary lines alone.
        self.progress = (not quiet and sys.stderr.isatty()) if progress is None else progress
        self._shown = 0
        self._last = 0.0

    def _clear(self) -> None:
        if self._shown:
            sys.stderr.write("\r" + " " * self._shown + "\r")
            sys.stderr.flush()
            self._shown = 0

    def __call__(self, level: str, message: str) -> None:
        import time

        if level == "debug":
            return
        if level in ("progress", "progress_done"):
            if not self.progress:
                return
            now = time.monotonic()
            if level == "progress" and now - self._last < self.PROGRESS_INTERVAL:
                return
            self._last = now
            width = max(20, shutil_width() - 1)
            line = message[:width]
            sys.stderr.write("\r" + line + " " * max(0, self._shown - len(line)))
            sys.stderr.flush()
            self._shown = len(line)
            if level == "progress_done":
                self._clear()
            return
        self._clear()
        if level in ("error", "warn"):
            click.echo(f"{'Error' if level == 'error' else 'Warning'}: {message}", err=True)
        elif level == "summary_error":  # the line has its own label (ERROR, SKIPPED, BLOCKED)
            click.echo(message, err=True)
        elif not self.quiet:
            click.echo(f"  sample entry: {message}" if level == "sample" else message)


def shutil_width() -> int:
    import shutil

    return shutil.get_terminal_size((100, 20)).columns


def _internal_error(e: Exception) -> None:
    import os
    import traceback

    if os.environ.get("DBT_EVENTBRIDGE_DEBUG"):
        traceback.print_exc()
    click.echo(f"Error: unexpected {e.__class__.__name__}: {e}. Nothing more was published or committed. "
               "Run again with DBT_EVENTBRIDGE_DEBUG=1 to see the traceback, and please report it.", err=True)
    sys.exit(2)


@click.group()
@click.version_option(__version__, prog_name="dbt-eventbridge")
def main() -> None:
    """Publish the changes of dbt models to Amazon EventBridge."""
    import logging

    # botocore logs a traceback when refreshing assumed-role credentials fails; the
    # failure itself reaches the user as one clear error.
    logging.getLogger("botocore.credentials").setLevel(logging.CRITICAL)


@main.command()
@_common
@click.option("--dry-run", is_flag=True, help="Plan and render; send nothing and leave the state untouched.")
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="With --dry-run: write every entry as JSON lines to this file.")
@click.option("--full-refresh", is_flag=True, help="Send every current row again, as 'added'.")
@click.option("--allow-mass-removal", is_flag=True,
              help="Publish even when a run removes more than max_removal_share of the delivered rows.")
@click.option("--region", default=None, help="AWS region (overrides vars.eventbridge.region).")
@click.option("--endpoint-url", default=None, help="EventBridge endpoint, e.g. a local one for tests.")
@click.option("--aws-profile", default=None, help="AWS profile from your AWS config.")
@click.option("--concurrency", type=int, default=None, help="Concurrent PutEvents requests per process.")
@click.option("--workers", type=int, default=None,
              help="Processes that render and publish, splitting each sync's plan by key (default 1).")
@click.option("--state-schema", default=None, help="Schema that holds the delivered state.")
@click.option("--quiet", "-q", is_flag=True, help="Only print errors and warnings.")
def sync(dry_run: bool, output: str | None, full_refresh: bool, allow_mass_removal: bool, region: str | None, endpoint_url: str | None,
         aws_profile: str | None, concurrency: int | None, workers: int | None, state_schema: str | None,
         quiet: bool,
         **common: Any) -> None:
    """Diff each synced model against what was delivered and publish the changes.

    Exit codes: 0 every change delivered; 1 finished, but rows were rejected or had
    invalid keys (the rest was delivered); 2 could not run (config, connection,
    credentials): nothing published and no state written for the failing syncs.
    """
    if output and not dry_run:
        raise click.UsageError("--output goes with --dry-run")
    from dbt_eventbridge.sync import run_sync

    opts = _options(dry_run=dry_run, output=output, full_refresh=full_refresh,
                    allow_mass_removal=allow_mass_removal,
                    settings={"region": region, "endpoint_url": endpoint_url, "aws_profile": aws_profile,
                              "concurrency": concurrency, "workers": workers, "state_schema": state_schema},
                    **common)
    try:
        result = run_sync(opts, log=_Printer(quiet))
    except Exception as e:  # never a traceback for users; DBT_EVENTBRIDGE_DEBUG=1 shows it
        _internal_error(e)
    if not quiet:
        click.echo(f"Done. exit code {result.exit_code}; details in {result.result_file or 'no result file'}")
    sys.exit(result.exit_code)


@main.command()
@_common
def validate(**common: Any) -> None:
    """Check every sync's config, templates and columns; list every problem. For CI.

    Exit codes: 0 every sync is valid; 1 problems were found (each listed with the model,
    the sync and the YAML path); 2 the project could not be loaded.
    """
    from dbt_eventbridge.errors import EventBridgeSyncError
    from dbt_eventbridge.sync import validate as run_validate

    from dbt_eventbridge.project import PackageMissingError

    try:
        problems, checked = run_validate(_options(**common))
    except PackageMissingError as e:  # a problem validate exists to find, not a failure to run
        click.echo(f"- {e}", err=True)
        click.echo("1 problem(s) found.", err=True)
        sys.exit(1)
    except EventBridgeSyncError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(2)
    except Exception as e:
        _internal_error(e)
    for p in problems:
        click.echo(f"- {p}", err=True)
    if problems:
        click.echo(f"{len(problems)} problem(s) found in {checked} sync(s).", err=True)
        sys.exit(1)
    click.echo(f"OK: {checked} sync(s) valid.")


if __name__ == "__main__":
    main()
