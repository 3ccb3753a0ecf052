"""The configuration contract: sync definitions from model meta (project-wide settings are
in config/settings.py).

Parsing never stops at the first mistake: every problem is collected with the model, the
sync and the YAML path, so ``dbt-eventbridge validate`` can list them all at once.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from dbt_eventbridge.config.definitions import (
    BUS_ARN_RE,
    BUS_NAME_RE,
    BUS_V2_ARN_RE,
    DEFAULT_BUS,
    DETAIL_KEYS,
    IDENT_RE,
    RESERVED_PREFIX,
    SYNC_KEYS,
    TEMPLATE_NAMES,
    TRIGGER_KEYS,
    DetailSpec,
    SyncConfig,
    TriggerSpec,
    suggest,
)
from dbt_eventbridge.errors import Problem
from dbt_eventbridge.model import OPS


class _Collector:
    """Collects problems for one model's meta, with YAML paths."""

    def __init__(self, model: str, file: str | None, base: str) -> None:
        self.model = model
        self.file = file
        self.base = base
        self.problems: list[Problem] = []
        self.sync: str | None = None

    def add(self, path: str, message: str, fix: str | None = None) -> None:
        loc = f"{self.base}{path}"
        if self.file:
            loc = f"{self.file}: {loc}"
        self.problems.append(Problem(message=message, model=self.model, sync=self.sync, path=loc, fix=fix))

    def unknown_keys(self, path: str, data: Mapping[str, Any], valid: tuple[str, ...]) -> None:
        for key in data:
            if key not in valid:
                self.add(f"{path}.{key}", f"unknown key '{key}'", suggest(str(key), valid))

    def string(self, path: str, value: Any, *, required: bool = False, max_len: int | None = None,
               why: str = "") -> str | None:
        if value is None:
            if required:
                self.add(path, f"'{path.rsplit('.', 1)[-1]}' is required" + (f" ({why})" if why else ""),
                         "Add it to the sync's eventbridge config, or to each of those triggers")
            return None
        if not isinstance(value, str) or not value.strip():
            self.add(path, f"expected a non-empty string, got {type(value).__name__} {value!r}",
                     "Give it a text value (quote it in YAML if it looks like a number or boolean)")
            return None
        if max_len and "{{" not in value and "{%" not in value and len(value) > max_len:
            self.add(path, f"'{path.rsplit('.', 1)[-1]}' is {len(value)} characters long; EventBridge allows at "
                     f"most {max_len}", "Shorten it")
            return None
        return value

    def column_list(self, path: str, value: Any) -> tuple[str, ...] | None:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            self.add(path, f"expected a column name or a list of column names, got {value!r}",
                     "Write a column name, or a YAML list such as [order_id, line_no]")
            return None
        return tuple(value)


def _parse_detail(c: _Collector, path: str, raw: Any) -> DetailSpec | None:
    if not isinstance(raw, Mapping):
        c.add(path, f"expected a mapping with one of {', '.join(DETAIL_KEYS)}, got {raw!r}",
              "Write for example `detail: {columns: [id, email]}`")
        return None
    c.unknown_keys(path, raw, DETAIL_KEYS)
    given = [k for k in DETAIL_KEYS if k in raw]
    if len(given) != 1:
        c.add(path, "needs exactly one of template, template_file, column, columns"
              + (f" (got {', '.join(given)})" if given else ""),
              "Keep one of them, or remove `detail` to send every column")
        return None
    key = given[0]
    value = raw[key]
    if key in ("template", "template_file", "column"):
        s = c.string(f"{path}.{key}", value)
        if s is None:
            return None
        if key == "template":
            return DetailSpec(template=s)
        if key == "template_file":
            return DetailSpec(template_file=s)
        return DetailSpec(column=s)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        twice = sorted({v for v in value if value.count(v) > 1})
        if twice:
            c.add(f"{path}.columns", f"column(s) {', '.join(twice)} listed twice", "List each column once")
            return None
        return DetailSpec(columns=tuple((v, v) for v in value))
    if isinstance(value, Mapping) and value and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        outs: dict[str, list[str]] = {}
        for k, v in value.items():
            outs.setdefault(v, []).append(k)
        clash = {v: ks for v, ks in outs.items() if len(ks) > 1}
        if clash:
            v, ks = next(iter(clash.items()))
            c.add(f"{path}.columns", f"columns {', '.join(ks)} are all mapped to the detail key '{v}', so all but "
                  "one would be lost", "Give each column its own detail key")
            return None
        return DetailSpec(columns=tuple(value.items()))
    c.add(f"{path}.columns", f"expected a list of columns or a mapping column -> detail key, got {value!r}",
          "Write for example `columns: [first_name, email]` or `columns: {first_name: customer_first_name}`")
    return None


def _parse_triggers(c: _Collector, path: str, raw: Any) -> dict[str, TriggerSpec] | None:
    if raw is None:
        return {op: TriggerSpec(op) for op in OPS}
    if isinstance(raw, str):
        raw = [raw]
    if isinstance(raw, list):
        out: dict[str, TriggerSpec] = {}
        for i, op in enumerate(raw):
            if op not in OPS:
                c.add(f"{path}[{i}]", f"unknown trigger {op!r}", suggest(str(op), OPS))
            else:
                out[op] = TriggerSpec(op)
        return out
    if not isinstance(raw, Mapping):
        c.add(path, f"expected a list or mapping of added/changed/removed, got {raw!r}",
              "Write for example `triggers: [added, changed]`")
        return None
    out = {}
    for op, spec in raw.items():
        if op not in OPS:
            c.add(f"{path}.{op}", f"unknown trigger '{op}'", suggest(str(op), OPS))
            continue
        if spec is False:
            continue
        if spec is None or spec is True:
            out[op] = TriggerSpec(op)
            continue
        if not isinstance(spec, Mapping):
            c.add(f"{path}.{op}", f"expected a mapping of overrides ({', '.join(TRIGGER_KEYS)}), got {spec!r}",
                  f"Write for example `{op}: {{detail_type: Customer{op.capitalize()}}}`, or `{op}: true`")
            continue
        c.unknown_keys(f"{path}.{op}", spec, TRIGGER_KEYS)
        detail = _parse_detail(c, f"{path}.{op}.detail", spec["detail"]) if "detail" in spec else None
        out[op] = TriggerSpec(
            op,
            source=c.string(f"{path}.{op}.source", spec.get("source")),
            detail_type=c.string(f"{path}.{op}.detail_type", spec.get("detail_type"), max_len=128),
            detail=detail,
        )
    return out


def _check_source(c: _Collector, path: str, value: str | None) -> None:
    if value and value.strip().lower().startswith("aws."):
        c.add(path, f"source '{value}' starts with 'aws.', which EventBridge reserves for AWS services",
              "Use your own reverse-DNS name, such as com.acme.crm")


def parse_syncs(model_unique_id: str, model_name: str, meta_value: Any, *, file: str | None = None,
                lenient: bool = False) -> tuple[list[SyncConfig], list[Problem]]:
    """Parse the ``eventbridge`` meta value of one model into syncs, and every problem found."""
    base = f"{model_name}.config.meta.eventbridge"
    c = _Collector(model_name, file, base)
    items = _sync_items(c, meta_value)
    syncs = []
    for sub, raw in items:
        c.sync = None
        if not isinstance(raw, Mapping):
            c.add(sub, f"expected a mapping, got {raw!r}", "Each sync is a mapping with primary_key, source, ...")
            continue
        name = _sync_name(c, sub, raw.get("name", model_name if len(items) == 1 else None))
        before = len(c.problems)
        c.unknown_keys(sub, raw, SYNC_KEYS)
        pk = c.column_list(f"{sub}.primary_key", raw.get("primary_key")) if "primary_key" in raw else None
        if "primary_key" not in raw:
            c.add(f"{sub}.primary_key", "'primary_key' is required",
                  "Name the column (or list of columns) that identifies a row, e.g. primary_key: customer_id")
        events = _sync_events(c, sub, raw)
        rows = _sync_rows(c, sub, raw)
        v2 = _v2_options(c, sub, raw, events.bus) if events is not None else {}
        # With `lenient`, a sync with problems is still returned when its parts could be
        # read, so that `validate` can check its templates and columns too.
        if (len(c.problems) > before and not lenient) or name is None or pk is None or events is None:
            continue
        syncs.append(SyncConfig(
            name=name, model_unique_id=model_unique_id, model_name=model_name, primary_key=pk,
            source=events.source, detail_type=events.detail_type, event_bus=events.bus, triggers=events.triggers,
            detail=events.detail, initial_sync=rows.initial, resources=rows.resources, time=rows.time,
            enabled=rows.enabled, track_columns=rows.track, ignore_columns=rows.ignore,
            yaml_path=f"{file}: {base}{sub}" if file else f"{base}{sub}",
            **v2,
        ))
    return syncs, c.problems


def _sync_items(c: _Collector, meta_value: Any) -> list[tuple[str, Any]]:
    """(YAML path suffix, raw sync) for each sync of the meta value: one mapping or a list of them."""
    if isinstance(meta_value, Mapping):
        return [("", meta_value)]
    if isinstance(meta_value, list) and meta_value:
        return [(f"[{i}]", v) for i, v in enumerate(meta_value)]
    c.add("", f"expected a mapping (one sync) or a list of mappings, got {meta_value!r}",
          "See the configuration reference in the README")
    return []


def _sync_name(c: _Collector, sub: str, name: Any) -> str | None:
    """The sync's name, or None (with a problem) when it is missing or unusable; names the sync in ``c``."""
    c.sync = name if isinstance(name, str) else None
    if name is None:
        c.add(f"{sub}.name", "a model with several syncs needs a 'name' on each",
              "Give each sync a unique name")
        return None
    if not isinstance(name, str) or not IDENT_RE.match(name):
        c.add(f"{sub}.name", f"sync name {name!r} must be letters, digits and underscores "
              "(at most 63, not starting with a digit)", "It names the state table, so keep it simple")
        return None
    if name.lower().startswith(RESERVED_PREFIX):
        c.add(f"{sub}.name", f"sync name {name!r} starts with '{RESERVED_PREFIX}', which dbt-eventbridge "
              "reserves for its own tables", "Choose a name without that prefix")
        return None
    return name


class _Events(NamedTuple):
    """What a sync's entries are made of: triggers, source, detail-type, bus and detail."""

    triggers: dict[str, TriggerSpec]
    source: str | None
    detail_type: str | None
    bus: Any  # as written: a problem is reported when it is not a bus name or ARN
    detail: DetailSpec


def _sync_events(c: _Collector, sub: str, raw: Mapping[str, Any]) -> _Events | None:
    """The parts of a sync that make its entries, or None when one that is needed could not be read."""
    triggers = _parse_triggers(c, f"{sub}.triggers", raw.get("triggers"))
    # The reference document's model: each trigger may have its own source and detail-type;
    # the sync's own are needed only for published triggers that have none.
    needs_source = [op for op, t in (triggers or {}).items() if t.source is None]
    needs_type = [op for op, t in (triggers or {}).items() if t.detail_type is None]
    source = c.string(f"{sub}.source", raw.get("source"), required=bool(needs_source) and triggers is not None,
                      why=f"for trigger(s) {', '.join(needs_source)}, which have no source of their own")
    _check_source(c, f"{sub}.source", source)
    detail_type = c.string(f"{sub}.detail_type", raw.get("detail_type"),
                           required=bool(needs_type) and triggers is not None, max_len=128,
                           why=f"for trigger(s) {', '.join(needs_type)}, which have no detail_type of their own")
    bus = raw.get("event_bus", DEFAULT_BUS)
    if isinstance(bus, str) and ":event-busv2/" in bus and not BUS_V2_ARN_RE.match(bus):
        c.add(f"{sub}.event_bus", f"{bus!r} is not a Custom Event Bus (v2) ARN",
              "Copy the bus's ARN as EventBridge shows it: "
              "arn:aws:events:<region>:<account>:event-busv2/<name>/<25-character id>")
    elif not isinstance(bus, str) or not (BUS_NAME_RE.match(bus) or BUS_ARN_RE.match(bus)
                                          or BUS_V2_ARN_RE.match(bus)):
        c.add(f"{sub}.event_bus", f"{bus!r} is neither an event bus name nor an event bus ARN",
              "Use a name like 'crm-events' or an ARN like "
              "'arn:aws:events:us-east-1:123456789012:event-bus/crm-events'")
    for op, t in (triggers or {}).items():
        _check_source(c, f"{sub}.triggers.{op}.source", t.source)
    detail = _parse_detail(c, f"{sub}.detail", raw["detail"]) if "detail" in raw else DetailSpec()
    if triggers is None or detail is None or (source is None and needs_source) \
            or (detail_type is None and needs_type):
        return None
    return _Events(triggers, source, detail_type, bus, detail)


def _v2_options(c: _Collector, sub: str, raw: Mapping[str, Any], bus: Any) -> dict[str, Any]:
    """``event_group`` and ``deduplication``: what only a Custom Event Bus (v2) does."""
    v2 = isinstance(bus, str) and bool(BUS_V2_ARN_RE.match(bus))
    given = [k for k in ("event_group", "deduplication") if k in raw]
    if not v2:
        if given and isinstance(bus, str) and (BUS_NAME_RE.match(bus) or BUS_ARN_RE.match(bus)):
            # (a bus that is neither was reported already, as a bad event_bus)
            c.add(f"{sub}.{given[0]}", f"'{given[0]}' needs a Custom Event Bus (EventBridge's v2 API), and "
                  f"event_bus {bus!r} is a classic bus, which has no event groups or deduplication ids",
                  "Set event_bus to the v2 bus's ARN (arn:aws:events:<region>:<account>:event-busv2/<name>/<id>), "
                  f"or remove '{given[0]}'")
        return {}
    group = raw.get("event_group", "")
    if group is False:
        group = None
    elif "event_group" in raw and (not isinstance(group, str) or not group.strip()):
        c.add(f"{sub}.event_group", f"expected a template or false, got {group!r}",
              "Leave it out to order per key, write `event_group: \"{{ row.account_id }}\"` (inside {% raw %}) to "
              "order per account, or `event_group: false` for no order")
        group = ""
    dedup = raw.get("deduplication", True)
    if not isinstance(dedup, bool):
        c.add(f"{sub}.deduplication", f"expected true or false, got {dedup!r}",
              "Write `deduplication: false` to send no DeduplicationId, or remove it")
        dedup = True
    return {"event_group": group, "deduplication": dedup}


class _Rows(NamedTuple):
    """Which rows and columns a sync follows, and how it starts."""

    initial: Any  # as written: a problem is reported when it is not backfill or skip
    resources: tuple[str, ...]
    time: str | None
    enabled: Any  # as written: a problem is reported when it is not true or false
    track: tuple[str, ...] | None
    ignore: tuple[str, ...]


def _sync_rows(c: _Collector, sub: str, raw: Mapping[str, Any]) -> _Rows:
    """The rest of a sync: initial_sync, resources, time, enabled, track_columns, ignore_columns."""
    initial = raw.get("initial_sync", "backfill")
    if initial not in ("backfill", "skip"):
        c.add(f"{sub}.initial_sync", f"expected 'backfill' or 'skip', got {initial!r}",
              suggest(str(initial), ("backfill", "skip")))
    resources = raw.get("resources", [])
    if isinstance(resources, str):
        resources = [resources]
    if not isinstance(resources, list) or not all(isinstance(r, str) and r for r in resources):
        c.add(f"{sub}.resources", f"expected a list of strings (templates allowed), got {resources!r}",
              "Write for example `resources: [\"arn:aws:...:customer/{{ row.id }}\"]` (inside {% raw %})")
        resources = []
    time_col = c.string(f"{sub}.time", raw.get("time"))
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        c.add(f"{sub}.enabled", f"expected true or false, got {enabled!r}", "Write `enabled: false` or remove it")
    track = c.column_list(f"{sub}.track_columns", raw["track_columns"]) if "track_columns" in raw else None
    ignore = c.column_list(f"{sub}.ignore_columns", raw["ignore_columns"]) if "ignore_columns" in raw else ()
    if track and ignore:
        c.add(f"{sub}.ignore_columns", "set track_columns or ignore_columns, not both",
              "Keep the one that is shorter to write")
    return _Rows(initial, tuple(resources), time_col, enabled, track, ignore or ())


def check_unique_names(syncs: list[SyncConfig]) -> list[Problem]:
    """A problem for *every* sync that shares its name: none of them may run, since which
    one would own the state table would depend on the manifest's order."""
    by_name: dict[str, list[SyncConfig]] = {}
    for s in syncs:
        by_name.setdefault(s.name.lower(), []).append(s)
    problems = []
    for group in by_name.values():
        if len(group) < 2:
            continue
        for s in group:
            others = ", ".join(f"'{o.model_name}'" for o in group if o is not s)
            problems.append(Problem(
                message=f"the sync name '{s.name}' is also used by model {others}",
                model=s.model_name, sync=s.name, path=s.yaml_path + ".name",
                fix="Sync names key the delivered state and must be unique in the project; set a distinct `name` "
                    "(none of these syncs runs until then)"))
    return problems


def near_miss_keys(meta: Mapping[str, Any], model: str, file: str | None) -> list[Problem]:
    """Meta keys that look like ``eventbridge`` but are not: that model would silently not sync."""
    problems = []
    for key in meta:
        if not isinstance(key, str) or key == "eventbridge":
            continue
        flat = re.sub(r"[^a-z0-9]", "", key.lower())
        if flat == "eventbridge" or difflib.SequenceMatcher(None, key.lower(), "eventbridge").ratio() >= 0.8:
            where = f"{model}.config.meta.{key}"
            problems.append(Problem(
                f"the meta key '{key}' looks like 'eventbridge', which dbt-eventbridge reads; as written, this "
                "model is not synced", model, None, f"{file}: {where}" if file else where,
                "Rename the key to eventbridge (under config: meta:)"))
    return problems


def parse_time_templates(raw: Any, model: str, file: str | None, path: str = "") -> list[Problem]:
    """Templates that dbt rendered when it parsed the project, found in the YAML as written.

    dbt renders Jinja in schema.yml at parse time; a per-row name there (``{{ op }}``)
    is undefined then and renders empty, so every event would get the same text. Only
    ``{% raw %}`` keeps a template for us; var() and env_var() may be meant for parse time."""
    import jinja2
    import jinja2.meta

    problems: list[Problem] = []
    if isinstance(raw, Mapping):
        for k, v in raw.items():
            problems += parse_time_templates(v, model, file, f"{path}.{k}")
    elif isinstance(raw, list):
        for i, v in enumerate(raw):
            problems += parse_time_templates(v, model, file, f"{path}[{i}]")
    elif isinstance(raw, str) and ("{{" in raw or "{%" in raw):
        try:
            names = jinja2.meta.find_undeclared_variables(jinja2.Environment().parse(raw))
        except jinja2.TemplateSyntaxError:
            return []
        used = sorted(names & TEMPLATE_NAMES)
        if used:
            where = f"{model}.config.meta.eventbridge{path}"
            problems.append(Problem(
                f"dbt rendered this template when it parsed the project, before any row existed "
                f"({', '.join(used)} rendered empty), so every event would get the same text: {raw[:80]!r}",
                model, None, f"{file}: {where}" if file else where,
                "Wrap the template in {% raw %}...{% endraw %} in the YAML, or move it to a template_file"))
    return problems
