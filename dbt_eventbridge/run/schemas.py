"""`dbt-eventbridge schemas` and `validate`'s contract check: every sync's event contracts,
written to files, registered in the Schema Registry, or compared with the last ones."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbt_eventbridge.delivery.contracts import EventContract, compare, detail_of
from dbt_eventbridge.errors import ConfigError, Problem
from dbt_eventbridge.run.contracts import contract_columns, sync_contracts
from dbt_eventbridge.run.loader import LoadedProject, load
from dbt_eventbridge.run.options import SyncOptions


@dataclass
class SchemaReport:
    contracts: list[EventContract] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    registered: list[Any] = field(default_factory=list)   # schema_registry.Registered
    problems: list[Problem] = field(default_factory=list)
    breaking: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def collect(loaded: LoadedProject) -> SchemaReport:
    """Each sync's contracts; a sync whose relation is missing is derived from its contract
    when dbt enforces one (a pull request's CI need not build the models), else a problem."""
    out = SchemaReport(problems=list(loaded.problems))
    project, settings = loaded.project, loaded.settings
    with project.connection("dbt_eventbridge_schemas"):
        for sync, node in loaded.syncs:
            cols = contract_columns(node) or project.columns(node)
            if cols is None:
                out.problems.append(Problem(
                    f"the relation {node.relation_name} does not exist, and the model has no enforced contract "
                    "to type its events", sync.model_name, sync.name, sync.yaml_path,
                    "Run `dbt run` or `dbt build` for the model first, or give it a contract "
                    "(config: {contract: {enforced: true}} with each column's data_type)"))
                continue
            try:
                found = sync_contracts(project, node, sync, cols, event_id_in_detail=settings.event_id_in_detail)
            except ConfigError as e:
                out.problems += e.problems
                continue
            for c in found:
                out.notes += [f"{c.sync} ({'/'.join(c.ops)}): {n}" for n in c.notes]
            out.contracts += found
    _clashes(out)
    return out


def _clashes(out: SchemaReport) -> None:
    """Two syncs (or ops) that send one source and detail-type with different details share
    a registry name: consumers could not know which shape they get."""
    seen: dict[str, EventContract] = {}
    for c in out.contracts:
        if c.name is None:
            continue
        other = seen.setdefault(c.name, c)
        if other is not c and other.detail != c.detail:
            out.problems.append(Problem(
                f"source and detail-type {c.name} are sent with two different details (sync {other.sync} on "
                f"{'/'.join(other.ops)}, sync {c.sync} on {'/'.join(c.ops)})", c.model, c.sync, None,
                "Give each shape its own detail_type (per trigger: triggers: {changed: {detail_type: ...}})"))


def _unique(contracts: list[EventContract]) -> list[EventContract]:
    out: dict[str, EventContract] = {}
    for c in contracts:
        if c.name is not None:
            out.setdefault(c.name, c)
    return list(out.values())


def write(options: SyncOptions, out_dir: str | None, register: bool) -> SchemaReport:
    """One file per source and detail-type (in the configured format), and with ``register``
    a new registry version of each one that changed."""
    loaded = load(options, lenient=True)
    report = collect(loaded)
    if report.problems:
        return report
    settings = loaded.settings
    folder = Path(out_dir) if out_dir else loaded.project.target_path / "eventbridge_schemas"
    folder.mkdir(parents=True, exist_ok=True)
    for c in _unique(report.contracts):
        path = folder / f"{c.name}.json"
        path.write_text(c.content(settings.schema_format) + "\n")
        report.files.append(path)
    unnamed = [c for c in report.contracts if c.name is None]
    for c in unnamed:
        path = folder / f"{c.sync}.{'_'.join(c.ops)}.json"
        path.write_text(c.content(settings.schema_format) + "\n")
        report.files.append(path)
    if register:
        registry = _registry(loaded)
        registry.ensure_registry()
        for c in _unique(report.contracts):
            report.registered.append(registry.register(
                c.name or "", c.content(settings.schema_format), settings.schema_format,
                f"dbt-eventbridge sync {c.sync} (model {c.model}), {'/'.join(c.ops)}"))
    return report


def _registry(loaded: LoadedProject) -> Any:
    from dbt_eventbridge.delivery.aws import make_schemas_client
    from dbt_eventbridge.delivery.schema_registry import SchemaRegistry

    settings = loaded.settings
    if not settings.schema_registry:
        raise ConfigError([Problem("no Schema Registry is configured", path="vars.eventbridge.schema_registry",
                                   fix="Set vars.eventbridge.schema_registry (or DBT_EVENTBRIDGE_SCHEMA_REGISTRY) "
                                       "to the registry's name")])
    return SchemaRegistry(make_schemas_client(settings), settings.schema_registry)


def check_breaking(options: SyncOptions, against_dir: str | None, against_registry: bool) -> SchemaReport:
    """Each contract compared with the last one (a file written by `schemas`, or the
    registry's latest version): breaking changes are problems, additive ones notes."""
    if against_dir is not None and not Path(against_dir).is_dir():
        # A typo in CI's path must not turn the breaking-change check off.
        raise ConfigError([Problem(f"--against-schemas {against_dir}: no such folder",
                                   fix="Give the folder `dbt-eventbridge schemas --out` wrote (and you committed)")])
    loaded = load(options, lenient=True)
    report = collect(loaded)
    registry = _registry(loaded) if against_registry else None
    for c in _unique(report.contracts):
        name = c.name or ""
        old: str | None = None
        if registry is not None:
            found = registry.latest(name)
            old = found[0] if found else None
            where = f"registry {loaded.settings.schema_registry}, version {found[1]}" if found else ""
        else:
            path = Path(against_dir or "") / f"{name}.json"
            old = path.read_text() if path.is_file() else None
            where = str(path)
        if old is None:
            report.notes.append(f"{name}: new event contract (nothing to compare with)")
            continue
        try:
            changes = compare(detail_of(old), c.detail)
        except (ValueError, json.JSONDecodeError):
            report.problems.append(Problem(f"the schema of {name} in {where} is not JSON", c.model, c.sync, None,
                                           "Write it again with `dbt-eventbridge schemas`"))
            continue
        for b in changes.breaking:
            report.breaking.append(Problem(f"breaking change to the event contract {name} (against {where}): {b}",
                                           c.model, c.sync, None,
                                           "Keep the field and its type (add a new field instead), or publish the "
                                           "new shape under a new detail_type and tell its consumers"))
        report.notes += [f"{name}: {a}" for a in changes.additive]
    return report
