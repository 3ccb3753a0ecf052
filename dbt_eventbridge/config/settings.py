"""Project-wide settings: ``vars: eventbridge:`` < ``DBT_EVENTBRIDGE_*`` env vars < CLI flags.

Every value is checked against the type its field is declared with; all problems are
collected and raised together, like the sync definitions' (config/syncs.py).
"""

from __future__ import annotations

import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from dbt_eventbridge.config.definitions import IDENT_RE, suggest
from dbt_eventbridge.errors import ConfigError, Problem

_ZERO_ALLOWED = frozenset({"max_requests_per_second", "throttle_timeout", "lock_wait_seconds", "removal_guard_min_rows",
                           "history_retention_days"})
_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off"})
_SECRET_SETTINGS = frozenset({"external_id"})
# YAML reads an all-digit value as a number; these settings take it as the text it was.
_DIGITS_AS_TEXT = frozenset({"external_id", "role_session_name"})
MEMORY_RE = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)
ROLE_ARN_RE = re.compile(r"^arn:aws[\w-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
# The service model's EndpointId pattern: letters, digits and dashes, then a dot and more.
ENDPOINT_ID_RE = re.compile(r"^[A-Za-z0-9\-]+[\.][A-Za-z0-9\-]+$")
# The Schema Registry's formats, and the registry names its console accepts.
SCHEMA_FORMATS = ("JSONSchemaDraft4", "OpenApi3")
REGISTRY_RE = re.compile(r"^[.\-_A-Za-z0-9]{1,64}$")
MAX_REQUEST_BYTES = 1_048_575  # EventBridge's limit on a PutEvents request: below 1 MiB


@dataclass
class Settings:
    """Project-wide settings: ``vars: eventbridge:`` < ``DBT_EVENTBRIDGE_*`` env vars < CLI flags."""

    region: str | None = None
    aws_profile: str | None = None
    role_arn: str | None = None
    external_id: str | None = None
    role_session_name: str = "dbt-eventbridge"
    role_duration_seconds: int = 3600
    endpoint_url: str | None = None
    # The Custom Event Bus API (eventbridgev2) has its own endpoint (eventsv2.<region>...):
    # set this to reach it elsewhere (a local endpoint, a VPC endpoint).
    v2_endpoint_url: str | None = None
    # A global endpoint (Route 53 failover between two regions) for classic buses: PutEvents
    # goes to <endpoint_id>.endpoint.events.amazonaws.com, signed with SigV4a (the [global] extra).
    endpoint_id: str | None = None
    state_schema: str = "eventbridge_state"
    max_request_bytes: int = MAX_REQUEST_BYTES
    concurrency: int = 64                     # the most PutEvents requests in flight per process (found as it runs)
    workers: int = 1                          # publishing processes (--workers)
    build_syncs: int = 1                      # dbt-eventbridge build: syncs at once beside dbt's threads
    # DuckDB only: the memory DuckDB may use in this process; the diff spills to disk
    # beyond it, so memory stays flat as models grow. "0" keeps the profile's setting.
    duckdb_memory_limit: str = "128MB"
    max_attempts: int = 6
    # Throttling is the account's quota, not a fault of the row: a throttled entry is retried
    # past max_attempts until this many seconds after its first throttle (0: max_attempts only).
    throttle_timeout: int = 120
    batch_size: int = 2000
    max_rejections_reported: int = 10_000
    max_requests_per_second: int = 0          # 0: no cap; the rate still adapts to throttling
    max_removal_share: float = 0.5            # of the delivered rows, before a run is stopped
    removal_guard_min_rows: int = 10
    lock_ttl_seconds: int = 600
    lock_wait_seconds: int = 0
    # Run history in the state schema (_eb_runs, _eb_events): every run and every event.
    history_retention_days: int = 30          # 0 keeps it forever
    history_detail: bool = True               # False: events are recorded without their detail (personal data)
    alerts: list[Any] = field(default_factory=list)  # validated by dbt_eventbridge.config.alerts.parse_alerts
    # Event contracts (delivery/contracts.py): each rendered detail is checked against the JSON
    # Schema derived from its model's contract (or its relation's types) before it is sent.
    validate_events: bool = True
    # Adds the change's event_id to the detail in the columns and column payload modes
    # (templates read it as {{ event_id }}).
    event_id_in_detail: bool = False
    # The EventBridge Schema Registry that `dbt-eventbridge schemas --register` writes to and
    # `validate --against-registry` reads; its format (JSONSchemaDraft4 or OpenApi3) and endpoint.
    schema_registry: str | None = None
    schema_format: str = "JSONSchemaDraft4"
    schemas_endpoint_url: str | None = None
    # Read by the package's on-run-end hook (macros/dbt_results.sql), which records every dbt
    # invocation's results for the synced models so that the test gate sees earlier failures.
    record_dbt_results: bool = True

    @classmethod
    def load(cls, project_vars: Any, env: Mapping[str, str] | None = None,
             overrides: Mapping[str, Any] | None = None) -> Settings:
        """The settings from dbt_project.yml's vars, the environment and the CLI, checked.

        Raises ConfigError with every problem found (unknown names, values of the wrong type)."""
        names = [f.name for f in fields(cls)]
        problems: list[Problem] = []
        values = _layered(names, project_vars, os.environ if env is None else env, overrides or {}, problems)
        hints = typing.get_type_hints(cls)
        for name, value in values.items():
            try:
                values[name] = _convert(name, hints[name], value)
            except _Invalid as e:
                problems.append(Problem(e.message, path=f"vars.eventbridge.{name} / DBT_EVENTBRIDGE_{name.upper()}",
                                        fix=e.fix))
        if problems:
            raise ConfigError(problems)
        settings = cls(**values)
        _check(settings)
        return settings

    def redacted(self) -> dict[str, Any]:
        """Settings safe to print or write: the external ID is a shared secret."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if out.get("external_id"):
            out["external_id"] = "***"
        return out


def _layered(names: list[str], project_vars: Any, env: Mapping[str, str], overrides: Mapping[str, Any],
             problems: list[Problem]) -> dict[str, Any]:
    """The raw value of each setting that is set: vars, then env vars over them, then CLI flags."""
    if project_vars is None:
        project_vars = {}
    if not isinstance(project_vars, Mapping):
        raise ConfigError([Problem(f"vars.eventbridge must be a mapping, got {project_vars!r}",
                                   path="dbt_project.yml: vars.eventbridge")])
    values: dict[str, Any] = {}
    for key, value in project_vars.items():
        if key not in names:
            problems.append(Problem(f"unknown setting '{key}'", path=f"dbt_project.yml: vars.eventbridge.{key}",
                                    fix=suggest(str(key), names)))
        else:
            values[key] = value
    for name in names:
        env_value = env.get(f"DBT_EVENTBRIDGE_{name.upper()}")
        if env_value not in (None, ""):
            values[name] = env_value
    for name, value in overrides.items():
        if name not in names:
            problems.append(Problem(f"unknown setting '{name}'", fix=suggest(str(name), names)))
        elif value is not None:
            values[name] = value
    return values


class _Invalid(Exception):
    """A setting's value does not fit its type."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix


def _convert(name: str, hint: Any, value: Any) -> Any:
    """``value`` as the type the field is declared with (``hint``, a real annotation)."""
    base, optional = _unwrap_optional(hint)
    if value is None and optional:
        return None
    convert = _CONVERTERS.get(base)
    if convert is None:  # alerts: a list checked by dbt_eventbridge.config.alerts.parse_alerts
        return value
    return convert(name, value)


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); any other annotation -> (it, False)."""
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        args = typing.get_args(hint)
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(args) == 2:
            return rest[0], True
    return hint, False


def _to_bool(name: str, value: Any) -> bool:
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, bool):
        return value
    raise _Invalid(f"setting '{name}' must be true or false, got {value!r}", "Write true or false")


def _to_share(name: str, value: Any) -> float:
    """The one float setting is a share (max_removal_share): above 0, at most 1."""
    try:
        if isinstance(value, bool):
            raise ValueError
        share = float(value)
        if not 0 < share <= 1:
            raise ValueError
    except (TypeError, ValueError):
        raise _Invalid(f"setting '{name}' must be a share between 0 and 1, got {value!r}",
                       "Write for example 0.5 for half") from None
    return share


def _to_int(name: str, value: Any) -> int:
    lowest = 0 if name in _ZERO_ALLOWED else 1
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        number = int(value)
        if number < lowest:
            raise ValueError
    except (TypeError, ValueError):
        what = "a positive whole number" if lowest else "a whole number (0 or more)"
        raise _Invalid(f"setting '{name}' must be {what}, got {value!r}", "Write a plain number") from None
    return number


def _to_str(name: str, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and name in _DIGITS_AS_TEXT:
        return str(value)
    if not isinstance(value, str):
        shown = "a value that is not text" if name in _SECRET_SETTINGS else repr(value)
        raise _Invalid(f"setting '{name}' must be a string, got {shown}", "Quote it in YAML")
    if "{{" in value or "{%" in value:
        raise _Invalid(f"setting '{name}' holds a Jinja template, but dbt does not render templates inside vars, "
                       "so it would be used as written",
                       f"Set DBT_EVENTBRIDGE_{name.upper()} in the environment instead (also the right place for "
                       "secrets)")
    return value


_CONVERTERS: dict[Any, Callable[[str, Any], Any]] = {bool: _to_bool, float: _to_share, int: _to_int, str: _to_str}


def _check(settings: Settings) -> None:
    """What each value must be beyond its type; the first problem found is raised."""
    if settings.role_arn and not ROLE_ARN_RE.match(settings.role_arn):
        raise ConfigError([Problem(f"role_arn {settings.role_arn!r} is not an IAM role ARN",
                                   path="vars.eventbridge.role_arn / DBT_EVENTBRIDGE_ROLE_ARN",
                                   fix="Write it as arn:aws:iam::123456789012:role/name")])
    if settings.external_id and not settings.role_arn:
        raise ConfigError([Problem("external_id is set but role_arn is not", path="vars.eventbridge.external_id",
                                   fix="Set role_arn to the role that trusts this external ID")])
    if not IDENT_RE.match(settings.state_schema):
        raise ConfigError([Problem(f"state_schema {settings.state_schema!r} is not a plain identifier",
                                   path="vars.eventbridge.state_schema")])
    if settings.duckdb_memory_limit not in ("0", "") and not MEMORY_RE.match(settings.duckdb_memory_limit):
        raise ConfigError([Problem(
            f"duckdb_memory_limit {settings.duckdb_memory_limit!r} is not a size",
            path="vars.eventbridge.duckdb_memory_limit / DBT_EVENTBRIDGE_DUCKDB_MEMORY_LIMIT",
            fix="Write for example 128MB or 2GB, or 0 to keep the DuckDB profile's memory_limit")])
    if settings.schema_format not in SCHEMA_FORMATS:
        raise ConfigError([Problem(f"schema_format {settings.schema_format!r} is not a Schema Registry format",
                                   path="vars.eventbridge.schema_format / DBT_EVENTBRIDGE_SCHEMA_FORMAT",
                                   fix=f"Write {' or '.join(SCHEMA_FORMATS)}")])
    if settings.schema_registry is not None and not REGISTRY_RE.match(settings.schema_registry):
        raise ConfigError([Problem(f"schema_registry {settings.schema_registry!r} is not a registry name",
                                   path="vars.eventbridge.schema_registry / DBT_EVENTBRIDGE_SCHEMA_REGISTRY",
                                   fix="Use letters, digits, '.', '-' and '_' (up to 64 characters), "
                                       "e.g. orders-events")])
    for name, example in (("endpoint_url", "https://events.us-east-1.amazonaws.com"),
                          ("v2_endpoint_url", "https://eventsv2.us-east-1.amazonaws.com"),
                          ("schemas_endpoint_url", "https://schemas.us-east-1.amazonaws.com")):
        url = getattr(settings, name)
        parts = urlsplit(url or "")
        if url and (parts.scheme not in ("http", "https") or not parts.netloc):
            raise ConfigError([Problem(
                f"could not reach EventBridge: {name} {url!r} is not an http(s) URL",
                path=f"vars.eventbridge.{name} / DBT_EVENTBRIDGE_{name.upper()}"
                     + (" / --endpoint-url" if name == "endpoint_url" else ""),
                fix=f"Give a URL such as {example}, or unset it")])
    if settings.endpoint_id and not ENDPOINT_ID_RE.match(settings.endpoint_id):
        raise ConfigError([Problem(
            f"endpoint_id {settings.endpoint_id!r} is not a global endpoint's id",
            path="vars.eventbridge.endpoint_id / DBT_EVENTBRIDGE_ENDPOINT_ID",
            fix="Copy the endpoint's EndpointId as `aws events describe-endpoint` shows it (for example "
                "abcde.veo), not its name or its URL")])
    if settings.build_syncs < 1:
        raise ConfigError([Problem(f"build_syncs {settings.build_syncs} is not a number of syncs",
                                   path="vars.eventbridge.build_syncs / DBT_EVENTBRIDGE_BUILD_SYNCS",
                                   fix="Give 1 (the default) or more")])
    if settings.max_request_bytes > MAX_REQUEST_BYTES:
        raise ConfigError([Problem(
            f"max_request_bytes {settings.max_request_bytes} is above EventBridge's limit (below 1 MiB)",
            path="vars.eventbridge.max_request_bytes", fix="Use 1048575 or less (262143 for the old limit)")])
