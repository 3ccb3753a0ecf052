"""The options every command shares, and how the CLI turns the library's errors into one paragraph."""

from __future__ import annotations

import sys
from typing import Any

import click

from dbt_eventbridge.cli.console import json_line, resolve_format


class MultiValue(click.Option):
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


log_format_option = click.option(
    "--log-format", type=click.Choice(["text", "json"]), default=None, envvar="DBT_EVENTBRIDGE_LOG_FORMAT",
    help="text (default) or json: one JSON object per line on stdout, for log collectors.")


def project_options() -> list[Any]:
    """Where the dbt project and its connection are: the options every command takes."""
    return [
        click.option("--project-dir", default=".", show_default=True, type=click.Path(file_okay=False),
                     help="The dbt project folder."),
        click.option("--profiles-dir", default=None, type=click.Path(file_okay=False),
                     help="Folder of profiles.yml (default: DBT_PROFILES_DIR, the project folder, ~/.dbt)."),
        click.option("--target", "-t", default=None, help="The dbt target to use."),
        click.option("--profile", default=None, help="The dbt profile to use (default: the project's)."),
        click.option("--vars", "vars_", default=None, help="dbt vars as YAML, e.g. '{day: 2}'."),
    ]


def apply_options(f: Any, options: list[Any]) -> Any:
    for option in reversed(options):
        f = option(f)
    return f


def history_options(f: Any) -> Any:
    """The options of commands that only read or reset the state schema (no selection)."""
    return apply_options(f, project_options() + [
        click.option("--state-schema", default=None, help="Schema that holds the delivered state and history."),
        log_format_option])


def selection_options(f: Any) -> Any:
    return apply_options(f, project_options() + [
        click.option("--select", "-s", "select", cls=MultiValue,
                     help="dbt selection syntax, e.g. -s customers+ tag:crm."),
        click.option("--exclude", "exclude", cls=MultiValue, help="dbt selection syntax of models to leave out."),
        log_format_option])


def build_options(project_dir: str, profiles_dir: str | None, target: str | None, profile: str | None,
                  vars_: str | None, select: tuple[str, ...] = (), exclude: tuple[str, ...] = (),
                  log_format: str | None = None, state_schema: str | None = None, **extra: Any) -> Any:
    """The library's SyncOptions from the command line's options (``extra``: the command's own)."""
    import yaml

    from dbt_eventbridge.run.options import SyncOptions

    parsed: dict[str, Any] = {}
    if vars_:
        try:
            parsed = yaml.safe_load(vars_) or {}
        except yaml.YAMLError as e:
            raise click.UsageError(f"--vars is not valid YAML: {e}") from None
        if not isinstance(parsed, dict):
            raise click.UsageError("--vars must be a YAML mapping, e.g. '{day: 2}'")
    if state_schema:
        extra.setdefault("settings", {})["state_schema"] = state_schema
    return SyncOptions(project_dir=project_dir, profiles_dir=profiles_dir, target=target, profile=profile,
                       vars=parsed, select=tuple(select), exclude=tuple(exclude), **extra)


def internal_error(e: Exception, log_format: str | None = None) -> None:
    import os
    import traceback

    if os.environ.get("DBT_EVENTBRIDGE_DEBUG"):
        traceback.print_exc()
    fail(f"unexpected {e.__class__.__name__}: {e}. Nothing more was published or committed. "
          "Run again with DBT_EVENTBRIDGE_DEBUG=1 to see the traceback, and please report it.", log_format)


def fail(message: str, log_format: str | None, code: int = 2) -> None:
    if resolve_format(log_format) == "json":
        json_line("error", message)
    else:
        click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def run_library(action: Any, log_format: str | None) -> Any:
    """Call the library; its errors become one paragraph and exit code 2, never a traceback."""
    from dbt_eventbridge.errors import EventBridgeSyncError

    try:
        return action()
    except EventBridgeSyncError as e:
        fail(str(e), log_format)
    except Exception as e:  # noqa: BLE001 - never a traceback for users; DBT_EVENTBRIDGE_DEBUG=1 shows it
        internal_error(e, log_format)
