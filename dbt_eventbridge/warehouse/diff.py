"""The diff: what changed in a model since the last delivered state, computed in the warehouse."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from typing import Any

from dbt_eventbridge.config.definitions import ColumnResolver, DetailSpec, SyncConfig
from dbt_eventbridge.errors import ConfigError, Problem, TerminalError, WarehouseError
from dbt_eventbridge.model import OPS
from dbt_eventbridge.warehouse.layout import LEGACY_ROW, Layout, ModelColumns, Shape, old, phys
from dbt_eventbridge.warehouse.nodes import ModelNode
from dbt_eventbridge.warehouse.project import DbtProject

RESERVED_PREFIX = "_eb_"
SAMPLE_KEYS = 5


@dataclass
class KeyAudit:
    total_rows: int = 0
    null_key_rows: int = 0
    duplicate_key_rows: int = 0
    duplicate_samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def invalid(self) -> int:
        return self.null_key_rows + self.duplicate_key_rows


@dataclass
class ModelShape:
    """The built relation's columns, resolved against what the sync config names."""

    columns: list[str]          # real names, relation order
    keys: list[str]             # real names of the primary key columns
    hash_columns: list[str]     # real names, sorted: what a "change" is measured on
    dtypes: dict[str, str] = field(default_factory=dict)   # real name -> the warehouse's type

    def quoted(self, project: DbtProject, names: list[str]) -> list[str]:
        return [project.quote(n) for n in names]

    def model_columns(self, hash_version: str) -> ModelColumns:
        return ModelColumns(tuple((c, self.dtypes.get(c, "")) for c in self.columns), tuple(self.keys),
                            tuple(self.hash_columns), hash_version)


def resolve_sync(sync: SyncConfig, node: ModelNode, columns: list[str]) -> tuple[SyncConfig, list[Problem]]:
    """The sync with every column it names replaced by the relation's own name, and the
    problems of names that resolve to nothing (or to two columns)."""
    r = ColumnResolver(columns)
    problems: list[Problem] = []

    def real(name: str, where: str) -> str:
        found = r.find(name)
        if found is None:
            what = "primary key column" if where == "primary_key" else "column"
            why = (f"matches several columns that differ only in case ({', '.join(r.case_matches(name))})"
                   if r.ambiguous(name) else f"is not a column of {node.relation_name} (columns: {', '.join(columns)})")
            problems.append(Problem(f"{what} '{name}' {why}", sync.model_name, sync.name,
                                    f"{sync.yaml_path}.{where}",
                                    "Fix the name (as the relation spells it, or in another case when only one "
                                    "column matches), or add the column to the model and run dbt again"))
            return name
        return found

    def detail(spec: DetailSpec, where: str) -> DetailSpec:
        if spec.column is not None:
            return dataclasses.replace(spec, column=real(spec.column, f"{where}.column"))
        if spec.columns is not None:
            return dataclasses.replace(spec, columns=tuple((real(c, f"{where}.columns"), out)
                                                            for c, out in spec.columns))
        return spec

    triggers = {op: dataclasses.replace(t, detail=detail(t.detail, f"triggers.{op}.detail") if t.detail else None)
                for op, t in sync.triggers.items()}
    resolved = dataclasses.replace(
        sync,
        primary_key=tuple(real(k, "primary_key") for k in sync.primary_key),
        track_columns=tuple(real(c, "track_columns") for c in sync.track_columns)
        if sync.track_columns is not None else None,
        ignore_columns=tuple(real(c, "ignore_columns") for c in sync.ignore_columns),
        time=real(sync.time, "time") if sync.time else None,
        detail=detail(sync.detail, "detail"),
        triggers=triggers)
    return resolved, problems


def resolve_shape(sync: SyncConfig, node: ModelNode, columns: list[tuple[str, str]]
                  ) -> tuple[SyncConfig, ModelShape]:
    """Match the sync's column names to the relation; raises ConfigError listing every problem."""
    names = [c for c, _ in columns]
    resolved, problems = resolve_sync(sync, node, names)
    reserved = [c for c in names if c.lower().startswith(RESERVED_PREFIX)]
    if reserved:
        problems.append(Problem(f"column(s) {', '.join(reserved)} use the prefix '{RESERVED_PREFIX}', which "
                                "dbt-eventbridge reserves", sync.model_name, sync.name, sync.yaml_path,
                                "Rename them in the model"))
    keys = list(resolved.primary_key)
    if len(set(keys)) < len(keys):
        problems.append(Problem(f"primary_key names a column twice ({', '.join(sync.primary_key)})",
                                sync.model_name, sync.name, f"{sync.yaml_path}.primary_key",
                                "List each key column once"))
    if resolved.track_columns is not None:
        tracked = set(resolved.track_columns) | set(keys)
    else:
        tracked = {c for c in names if c not in set(resolved.ignore_columns)} | set(keys)
    if names and tracked <= set(keys) and len(names) > len(set(keys)):
        which = "track_columns names only key columns" if resolved.track_columns is not None \
            else "ignore_columns leaves only the key columns"
        setting = "track_columns" if resolved.track_columns is not None else "ignore_columns"
        problems.append(Problem(f"{which}, so no change to a row could ever be seen", sync.model_name, sync.name,
                                f"{sync.yaml_path}.{setting}",
                                "Track at least one column besides the key (or list fewer columns in ignore_columns)"))
    if problems:
        raise ConfigError(problems)
    return resolved, ModelShape(columns=names, keys=keys, hash_columns=sorted(tracked), dtypes=dict(columns))


# -- the plan's shape: which columns to diff, how to compare older rows ---------------------

class KeyChangedError(TerminalError):
    """The key columns (or their types) are not the ones the delivered state was keyed by."""


@dataclass
class PlanSpec:
    """How this run diffs: against which state, and the layout its commit will write."""

    layout: Layout                      # what the commit writes (the pending layout)
    previous: Layout | None             # the committed layout
    with_state: bool                    # diff against the state table (else every row is added)
    stored_fps: list[int]               # older fingerprints comparable with the current one
    shapes: list[dict[str, Any]]        # older value shapes and how to compare them (plan_select_sql)
    notes: list[str] = field(default_factory=list)  # what changed, for the log

    @property
    def restart(self) -> bool:
        return self.layout.restart


def key_change(previous: Layout, model: ModelColumns) -> str | None:
    """How the model's key differs from the key the state's rows were stored by, or None."""
    want = [(k, dict(model.columns).get(k)) for k in model.keys]
    for s in previous.shapes.values():
        have = [(k, c.dtype if (c := s.column(k)) else None) for k in s.keys]
        if [k for k, _ in have] != [k for k, _ in want]:
            return (f"the primary key is now ({', '.join(k for k, _ in want)}), but the delivered rows are keyed "
                    f"by ({', '.join(s.keys)})")
        changed = [f"{k} {a} -> {b}" for (k, a), (_, b) in zip(have, want) if a != b]
        if changed:
            return f"the type of key column(s) changed ({'; '.join(changed)})"
    return None


def hash_version(project: DbtProject) -> str:
    """The version of the engine's row hash (a dispatched macro): a layout made with another
    version compares rows by value, not by hash."""
    return str(project.cached("hash_version", lambda: project.render_macro("hash_version")))


def plan_spec(shape: ModelShape, hash_version: str, previous: Layout | None, state_exists: bool, *,
              start_over: bool, sync: SyncConfig) -> PlanSpec:
    """The layout this run writes and how older rows are compared.

    ``start_over``: --full-refresh or a re-baseline: a changed key is no obstacle, the state
    is rebuilt in the new shape."""
    model = shape.model_columns(hash_version)
    if previous is None or not state_exists:
        fresh = Layout.fresh(model)
        if previous is not None:  # ids stay unique for ever, even across a reset
            fresh = previous.restarted(model)
        return PlanSpec(fresh, previous, False, [], [])
    why = key_change(previous, model)
    if why:
        if not start_over:
            raise KeyChangedError(
                f"{why} since the last delivered run, so delivered rows cannot be matched to the model's rows; "
                "nothing was sent", model=sync.model_name, sync=sync.name,
                fix=f"Run `dbt-eventbridge sync --full-refresh --sync {sync.name}` to send every row again as "
                    f"added, or `dbt-eventbridge rebaseline --sync {sync.name}` to take the model as delivered "
                    f"without sending, or `dbt-eventbridge reset --sync {sync.name}` (the next run sends every row "
                    "as added); each rebuilds the state in the new shape. Or change the key back")
        layout = previous.restarted(model)
        layout.restart = True
        return PlanSpec(layout, previous, False, [], [], [f"{why}; the state is rebuilt in the new shape"])
    layout = previous.evolve(model)
    current = layout.shape
    notes: list[str] = []
    older = [s for s in sorted(previous.shapes.values(), key=lambda s: s.id) if s.id != current.id]
    stored_fps = [s.id for s in older if s.same_hash(current)]
    shapes = [_compare(s, current, model, notes) for s in older]
    if layout is not previous:
        old_cols = {c.name: c.dtype for c in previous.shape.columns if c.name != LEGACY_ROW}
        new_cols = dict(model.columns)
        added = sorted(set(new_cols) - set(old_cols))
        gone = sorted(set(old_cols) - set(new_cols))
        retyped = sorted(c for c in set(new_cols) & set(old_cols) if new_cols[c] != old_cols[c])
        parts = [f"{label} {', '.join(cols)}" for label, cols in
                 (("added", added), ("dropped", gone), ("type changed", retyped)) if cols]
        if previous.shape.tracked != current.tracked:
            parts.append("tracked columns changed")
        if previous.shape.hash_version != current.hash_version:
            parts.append(f"fingerprint {previous.shape.hash_version} -> {current.hash_version}")
        notes.insert(0, "schema changed since the last delivered run (" + "; ".join(parts or ["column order"])
                     + "): rows whose values changed in the columns both have are sent as changed, the others "
                       "re-baselined without sending")
    return PlanSpec(layout, previous, True, stored_fps, shapes, notes)


def _compare(s: Shape, current: Shape, model: ModelColumns, notes: list[str]) -> dict[str, Any]:
    """How rows stored in shape ``s`` are compared with the model (see plan_select_sql)."""
    names = dict(model.columns)
    if s.legacy:
        if s.hash_version == current.hash_version and all(c in names for c in s.tracked):
            return {"id": s.id, "mode": "legacy", "pairs": [[c, None, False] for c in s.tracked]}
        notes.append("rows delivered by an earlier version whose fingerprint cannot be compared any more are "
                     "re-baselined without sending")
        return {"id": s.id, "mode": "rebaseline", "pairs": []}
    stored = s.by_name
    common = [c for c in current.tracked if c in s.tracked and c in stored]
    return {"id": s.id, "mode": "compare",
            "pairs": [[c, phys(stored[c].index), stored[c].dtype != names[c]] for c in common]}


def only_keys(project: DbtProject, relation: Any, columns: list[str], keys: list[dict[str, Any]]) -> str:
    """``relation`` narrowed to the rows of ``keys`` (each a value per key column, in the order
    of ``columns``, quoted): a subquery the plan's macros read as they read a relation, so
    that the engine looks the keys up instead of diffing the whole table. The values are the
    user's --key, as literals of the engine (escaped as every literal of ours is)."""
    if not keys:
        return f"(select * from {relation} where 1 = 0)"
    ors = []
    for key in keys:
        parts = [f"{col} is null" if v is None else f"{col} = {project.literal(v)}"
                 for col, v in zip(columns, key.values())]
        ors.append("(" + " and ".join(parts) + ")")
    return f"(select * from {relation} where {' or '.join(ors)})"


def plan_select(project: DbtProject, model: Any, state: Any, shape: ModelShape, spec: PlanSpec,
                full_refresh: bool, has_duplicates: bool = True, exists_only: bool = False,
                keys: list[dict[str, Any]] | None = None) -> str:
    """The plan's SELECT; ``keys``: only the delivered rows of these keys (a keyed preview,
    whose ``model`` is narrowed to them by :func:`only_keys`)."""
    quote = project.quote
    shapes = [{**o, "pairs": [[quote(m), p, cast] for m, p, cast in o["pairs"]]} for o in spec.shapes]
    state_keys: list[str] = []
    old_columns: list[list[str]] = []
    if spec.with_state and spec.previous is not None:
        key_index = {c.name: c.index for c in spec.previous.shape.columns}
        state_keys = [phys(key_index[k]) for k in shape.keys]
        old_columns = [[phys(c.index), old(c.index)] for c in spec.previous.physical()]
    if keys is not None and state is not None and state_keys:
        state = only_keys(project, state, state_keys, keys)  # the model: narrowed by the caller
    return project.render_macro(
        "plan_select_sql", model=model, state=state if spec.with_state else None,
        keys=shape.quoted(project, shape.keys), columns=shape.quoted(project, shape.columns),
        hash_columns=shape.quoted(project, shape.hash_columns), state_keys=state_keys, old_columns=old_columns,
        current=spec.layout.current, stored_fps=spec.stored_fps, shapes=shapes, full_refresh=full_refresh,
        has_duplicates=has_duplicates, exists_only=exists_only)


# -- reading the plan -------------------------------------------------------------------------

def audit_keys(project: DbtProject, model: Any, shape: ModelShape) -> KeyAudit:
    keys = shape.quoted(project, shape.keys)
    # First one cheap pass (NULL keys, distinct keys); the exact count of rows with a
    # duplicated key only when there are some, which a tested model never has.
    try:  # one pass: NULL keys, rows and distinct keys together
        rows = project.execute(project.render_macro("key_counts_sql", model=model, keys=keys), fetch=True)
        null_rows, total, distinct = (int(v or 0) for v in rows[0])
    except WarehouseError as e:
        per_part = int(project.call("key_distinct_rows_per_part"))
        if not project.out_of_memory(e) or not per_part:
            raise
        # Many keys on a memory-capped engine (DuckDB): distinct keys counted per hash partition.
        rows = project.execute(project.render_macro("key_totals_sql", model=model, keys=keys), fetch=True)
        null_rows, total = (int(v or 0) for v in rows[0])
        parts = max(1, -(-(total - null_rows) // per_part))
        distinct = 0
        for part in range(parts):
            sql = project.render_macro("key_distinct_sql", model=model, keys=keys, part=part, parts=parts)
            distinct += int(project.execute(sql, fetch=True)[0][0] or 0)
    dup_rows = 0
    if distinct < total - null_rows:
        rows = project.execute(project.render_macro("key_audit_sql", model=model, keys=keys), fetch=True)
        null_rows, dup_rows, total = (int(v or 0) for v in rows[0])
    audit = KeyAudit(total_rows=total, null_key_rows=null_rows, duplicate_key_rows=dup_rows)
    if dup_rows:
        sql = project.render_macro("duplicate_keys_sql", model=model, keys=keys, limit=SAMPLE_KEYS)
        for r in project.execute(sql, fetch=True):
            audit.duplicate_samples.append({**dict(zip(shape.keys, r[:-1])), "_rows": int(r[-1])})
    return audit


def create_temp_plan(project: DbtProject, plan_sql: str, schema: str) -> Any:
    """A dry run's plan, in a temporary table of this session (or, on an engine without
    them, a table of its own in the state schema ``schema``); returns it."""
    name = project.engine.temp_relation(project, schema, f"eb_dry_run_{uuid.uuid4().hex[:12]}")
    project.execute(project.sql.create_table_as(name, plan_sql, temporary=True))
    index = project.render_macro("plan_index_sql", plan=name)
    if index:
        project.execute(index)
    return name


def steady(spec: PlanSpec) -> bool:
    """Whether a plan with no rows would leave nothing to write: the state is diffed as it is
    and the layout stays (no schema change, no restart)."""
    return spec.with_state and spec.layout is spec.previous and not spec.restart


# Up to how many rows a model is asked "anything to do?" before its plan is made. The question
# saves a no-change sync about 16 statements (40 ms on DuckDB) but costs a scan of the model and
# the state, which a sync with changes pays on top of its plan: 0.18 s on a 1M-row DuckDB model
# (make bench, 2026-12-07: the diff went from 1.5x to 2.05x of a FULL OUTER JOIN). Below this
# size the scan costs less than the statements it saves; above it, a no-change sync makes its
# (empty) plan as before.
PROBE_MAX_ROWS = 100_000


def anything_planned(project: DbtProject, plan_sql: str) -> bool:
    """Whether the plan would have a row: one statement that reads and writes nothing else.

    When nothing changed (most runs of most syncs) this replaces the plan table, its journal,
    the counts and the commit: 22 statements, about 40 ms of a no-change sync on DuckDB."""
    return bool(project.execute(project.sql.any_row(plan_sql), fetch=True))


def has_duplicate_keys(project: DbtProject, plan: Any, shape: ModelShape) -> bool:
    """A plan made without duplicate handling holds a key twice if the model gained a
    duplicated key after the audit (a concurrent rebuild): then it is planned again."""
    rows = project.execute(project.sql.duplicate_key_groups(plan, shape.quoted(project, shape.keys)), fetch=True)
    return bool(rows and rows[0][0])


def count_ops(project: DbtProject, plan: Any) -> dict[str, int]:
    """Rows per op: added, changed, removed, and rebaseline (recorded, never sent)."""
    rows = project.execute(project.sql.op_counts(plan), fetch=True)
    counts: dict[str, int] = dict.fromkeys(OPS, 0)
    counts.update({str(op): int(n) for op, n in rows})
    return counts


def drop_temp_plan(project: DbtProject, name: Any) -> None:
    """A dry run's plan, once read."""
    project.execute(project.sql.drop_temp(name))
