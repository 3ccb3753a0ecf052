"""What a sync is, once parsed: its definition, its payload and triggers, and the rule that
resolves the names it uses to the relation's real columns."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_BUS = "default"
IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# Names and ARNs as AWS documents them for event buses.
BUS_NAME_RE = re.compile(r"^[/.\-_A-Za-z0-9]{1,256}$")
BUS_ARN_RE = re.compile(r"^arn:aws[\w-]*:events:[a-z0-9-]+:\d{12}:event-bus/[/.\-_A-Za-z0-9]+$")
# EventBridge's Custom Event Bus (API eventbridgev2, 2025-05-15) is addressed by ARN only;
# the pattern is its service model's (EventBusArn): the bus's name, then a 25-character id.
BUS_V2_ARN_RE = re.compile(r"^arn:aws(-[a-z0-9]+)*:events:[a-z][a-z0-9]*(-[a-z0-9]+)*:([0-9]{12}):"
                           r"event-busv2/[A-Za-z0-9][.\-_A-Za-z0-9]{0,255}/[a-z0-9]{25}$")
MAX_GROUP_ID = 128  # EventGroupId and DeduplicationId, each (the v2 service model)

SYNC_KEYS = ("name", "primary_key", "event_bus", "source", "detail_type", "triggers", "detail",
             "initial_sync", "resources", "time", "enabled", "track_columns", "ignore_columns",
             "event_group", "deduplication")
TRIGGER_KEYS = ("source", "detail_type", "detail")
# What a template sees per row (render.py): a template that uses them is rendered per event.
TEMPLATE_NAMES = frozenset({"row", "old_row", "op", "changed_columns", "key", "event_id", "sync"})
RESERVED_PREFIX = "_eb_"
DETAIL_KEYS = ("template", "template_file", "column", "columns")


def suggest(key: str, valid: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    if close:
        return f"Did you mean '{close[0]}'?"
    return "Valid keys are: " + ", ".join(valid) + "."


@dataclass(frozen=True)
class DetailSpec:
    """How the event's ``detail`` is built; exactly one mode is set."""

    template: str | None = None
    template_file: str | None = None
    column: str | None = None
    # model column -> detail key; None means "every column under its own name"
    columns: tuple[tuple[str, str], ...] | None = None

    @property
    def mode(self) -> str:
        if self.template is not None or self.template_file is not None:
            return "template"
        if self.column is not None:
            return "column"
        return "columns"


@dataclass(frozen=True)
class TriggerSpec:
    op: str
    source: str | None = None
    detail_type: str | None = None
    detail: DetailSpec | None = None


@dataclass(frozen=True)
class SyncConfig:
    """One sync: a model, a key, and how its changes become EventBridge entries."""

    name: str
    model_unique_id: str
    model_name: str
    primary_key: tuple[str, ...]
    source: str | None          # None when every published trigger has its own
    detail_type: str | None     # likewise
    event_bus: str = DEFAULT_BUS
    triggers: Mapping[str, TriggerSpec] = field(default_factory=dict)
    detail: DetailSpec = field(default_factory=DetailSpec)
    initial_sync: str = "backfill"
    resources: tuple[str, ...] = ()
    time: str | None = None
    enabled: bool = True
    track_columns: tuple[str, ...] | None = None
    ignore_columns: tuple[str, ...] = ()
    yaml_path: str = ""
    # A v2 bus only (both None on a classic bus). event_group: "" orders per key (a digest
    # of it), a template names the group, None sends no group. deduplication: each entry
    # carries a DeduplicationId made from its event_id (see render.dedup_id).
    event_group: str | None = None
    deduplication: bool | None = None

    @property
    def bus_v2(self) -> bool:
        """The bus is a Custom Event Bus (eventbridgev2): its ARN says so."""
        return bool(BUS_V2_ARN_RE.match(self.event_bus))

    def trigger(self, op: str) -> TriggerSpec | None:
        return self.triggers.get(op)

    def source_for(self, op: str) -> str:
        t = self.triggers.get(op)
        value = t.source if t and t.source is not None else self.source
        assert value is not None, "parse_syncs requires a source for every published trigger"
        return value

    def detail_type_for(self, op: str) -> str:
        t = self.triggers.get(op)
        value = t.detail_type if t and t.detail_type is not None else self.detail_type
        assert value is not None, "parse_syncs requires a detail_type for every published trigger"
        return value

    def detail_for(self, op: str) -> DetailSpec:
        t = self.triggers.get(op)
        return t.detail if t and t.detail is not None else self.detail

    def named_columns(self) -> dict[str, str]:
        """Every model column the config names -> the YAML key that names it, for checking."""
        cols: dict[str, str] = {}
        for c in self.primary_key:
            cols.setdefault(c, "primary_key")
        for c in self.track_columns or ():
            cols.setdefault(c, "track_columns")
        for c in self.ignore_columns:
            cols.setdefault(c, "ignore_columns")
        if self.time:
            cols.setdefault(self.time, "time")
        specs = [("detail", self.detail)] + [(f"triggers.{op}.detail", t.detail)
                                             for op, t in self.triggers.items() if t.detail]
        for where, spec in specs:
            if spec.column:
                cols.setdefault(spec.column, f"{where}.column")
            for c, _ in spec.columns or ():
                cols.setdefault(c, f"{where}.columns")
        return cols


class ColumnResolver:
    """One rule for every name a config gives: the relation's column of exactly that name,
    else the one column that matches ignoring case (warehouses fold unquoted names: a
    Snowflake relation has CUSTOMER_ID for customer_id). Nothing else: no match, or two
    columns that differ only in case, is a configuration problem, never a NULL sent."""

    def __init__(self, columns: list[str]) -> None:
        self.columns = list(columns)
        self._exact = set(columns)
        self._lower: dict[str, list[str]] = {}
        for c in columns:
            self._lower.setdefault(c.lower(), []).append(c)

    def find(self, name: str) -> str | None:
        if name in self._exact:
            return name
        found = self._lower.get(name.lower(), [])
        return found[0] if len(found) == 1 else None

    def case_matches(self, name: str) -> list[str]:
        return list(self._lower.get(name.lower(), []))

    def ambiguous(self, name: str) -> bool:
        return name not in self._exact and len(self._lower.get(name.lower(), [])) > 1

    def why_not(self, name: str) -> str:
        found = self._lower.get(name.lower(), [])
        if len(found) > 1:
            return f"'{name}' matches several columns that differ only in case ({', '.join(found)})"
        return f"'{name}' is not a column of the relation (columns: {', '.join(self.columns)})"
