"""Load a project for a run: parse it, open its adapter, read every sync definition.

Shared by the run, ``validate`` and the operations (runs, inspect, reset), which all
start from the same parsed project and its syncs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from dbt_eventbridge.config.alerts import AlertConfig, check_alert_syncs, parse_alerts
from dbt_eventbridge.config.definitions import SyncConfig
from dbt_eventbridge.config.settings import Settings
from dbt_eventbridge.config.syncs import check_unique_names, near_miss_keys, parse_syncs, parse_time_templates
from dbt_eventbridge.errors import ConfigError, Problem
from dbt_eventbridge.run.options import SyncOptions
from dbt_eventbridge.warehouse.nodes import ModelNode
from dbt_eventbridge.warehouse.project import DbtProject

META_KEY = "eventbridge"


@dataclass
class LoadedProject:
    """A parsed project with its adapter open, its settings, and the syncs a run takes on."""

    project: DbtProject
    settings: Settings
    syncs: list[tuple[SyncConfig, ModelNode]]
    problems: list[Problem]
    alerts: list[AlertConfig] = field(default_factory=list)


def load(options: SyncOptions, *, lenient: bool = False, saved: bool = False,
         parsed: DbtProject | None = None, selected: set[str] | None = None) -> LoadedProject:
    """Parse the project, open its adapter, and read every sync definition.

    ``lenient`` (validate, the operations): report every problem instead of stopping at
    broken alerts, and keep syncs whose config has problems. ``saved`` (the operations):
    the manifest of the last parse will do, if there is one (see DbtProject.load_saved).
    ``parsed`` and ``selected`` (dbt-eventbridge build): the project parsed for the build,
    and the nodes its selection selects."""
    project = parsed or DbtProject(options.project_dir, options.profiles_dir, options.target, options.vars,
                                   options.profile)
    from_saved = parsed is not None or (saved and not (options.select or options.exclude) and project.load_saved())
    if not from_saved:
        project.parse()
    # dbt's runner resets dbt's process-wide flags and adapters, so select before opening ours.
    if options.select or options.exclude:
        selected = project.select(options.select, options.exclude)
    project.open_adapter()
    if from_saved and parsed is None and not project.saved_fits_target():  # the last parse was for another --target
        project.parse()
        project.open_adapter()
    settings = Settings.load(project.project_var(META_KEY, {}), overrides=options.settings)
    syncs, all_syncs, problems = _read_syncs(project, selected, lenient)
    alerts, alert_problems = parse_alerts(settings.alerts)
    alert_problems += check_alert_syncs(alerts, [s.name for s in all_syncs])
    if alert_problems and not lenient:
        raise ConfigError(alert_problems)  # a run whose failures nobody would hear of must not start
    problems += alert_problems
    if options.syncs:
        syncs, problems = _only_named(options.syncs, syncs, all_syncs, problems)
    if not lenient:
        bad = {(p.model, p.sync) for p in problems}
        syncs = [(s, n) for s, n in syncs if (s.model_name, s.name) not in bad]
    return LoadedProject(project, settings, syncs, problems, alerts)


def _read_syncs(project: DbtProject, selected: set[str] | None, lenient: bool
                ) -> tuple[list[tuple[SyncConfig, ModelNode]], list[SyncConfig], list[Problem]]:
    """(the selected syncs with their models, every sync of the project, the selected ones' problems)."""
    syncs: list[tuple[SyncConfig, ModelNode]] = []
    problems: list[Problem] = []
    all_syncs: list[SyncConfig] = []
    for node in project.models():
        if not node.enabled:
            continue
        chosen = selected is None or node.unique_id in selected
        if META_KEY not in node.meta:
            if chosen:
                problems += near_miss_keys(node.meta, node.name, node.file)
            continue
        parsed, probs = parse_syncs(node.unique_id, node.name, node.meta[META_KEY], file=node.file,
                                    lenient=lenient)
        all_syncs += parsed
        if chosen:
            problems += probs + _parse_time_problems(project, node)
            syncs += [(s, node) for s in parsed]
    problems += check_unique_names(all_syncs)
    return syncs, all_syncs, problems


def _only_named(names: tuple[str, ...], syncs: list[tuple[SyncConfig, ModelNode]], all_syncs: list[SyncConfig],
                problems: list[Problem]) -> tuple[list[tuple[SyncConfig, ModelNode]], list[Problem]]:
    """--sync / reset / rebaseline: only the syncs named, and an error naming the real ones."""
    wanted = {s.lower() for s in names}
    unknown = sorted(wanted - {s.name.lower() for s in all_syncs})
    if unknown:
        known = ", ".join(sorted(s.name for s in all_syncs)) or "none"
        raise ConfigError([Problem(f"no sync is named {', '.join(unknown)} (syncs: {known})",
                                   fix="Use a sync name as `dbt-eventbridge runs` or the summary lines show it")])
    return ([(s, n) for s, n in syncs if s.name.lower() in wanted],
            [p for p in problems if p.sync is None or p.sync.lower() in wanted])


def _parse_time_problems(project: DbtProject, node: ModelNode) -> list[Problem]:
    """Templates dbt consumed at parse time (see config.parse_time_templates), per sync."""
    raw = project.yaml_meta(node, META_KEY)
    if raw is None:
        return []
    if isinstance(raw, dict):
        items = [(raw, "")]
    elif isinstance(raw, list):
        items = [(v, f"[{i}]") for i, v in enumerate(raw)]
    else:
        items = []
    out = []
    for item, sub in items:
        name = item.get("name", node.name) if isinstance(item, dict) else None
        for p in parse_time_templates(item, node.name, node.file, sub):
            out.append(dataclasses.replace(p, sync=name if isinstance(name, str) else None))
    return out
