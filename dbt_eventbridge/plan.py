"""The diff: what changed in a model since the last delivered state, computed in the warehouse."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterator

from dbt_eventbridge.config import OPS, SyncConfig
from dbt_eventbridge.errors import ConfigError, Problem, WarehouseError
from dbt_eventbridge.project import DbtProject, ModelNode
from dbt_eventbridge.render import Change

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

    def quoted(self, project: DbtProject, names: list[str]) -> list[str]:
        return [project.quote(n) for n in names]


def resolve_shape(sync: SyncConfig, node: ModelNode, columns: list[str]) -> ModelShape:
    """Match configured column names to the relation (case-insensitively, as warehouses fold case)."""
    by_lower = {c.lower(): c for c in columns}
    problems = []

    def real(name: str, what: str, path: str) -> str | None:
        found = by_lower.get(name.lower())
        if found is None:
            problems.append(Problem(
                f"{what} '{name}' is not a column of {node.relation_name} (columns: {', '.join(columns)})",
                sync.model_name, sync.name, f"{sync.yaml_path}.{path}",
                "Fix the name, or add the column to the model and run dbt again"))
        return found

    keys = [real(k, "primary key column", "primary_key") for k in sync.primary_key]
    reserved = [c for c in columns if c.lower().startswith(RESERVED_PREFIX)]
    if reserved:
        problems.append(Problem(f"column(s) {', '.join(reserved)} use the prefix '{RESERVED_PREFIX}', which "
                                "dbt-eventbridge reserves", sync.model_name, sync.name, sync.yaml_path,
                                "Rename them in the model"))
    for col, where in sorted(sync.named_columns().items()):
        if where != "primary_key":
            real(col, "column", where)
    if sync.track_columns:
        tracked = {by_lower[c.lower()] for c in sync.track_columns if c.lower() in by_lower}
        tracked |= {k for k in keys if k}
    else:
        ignored = {c.lower() for c in sync.ignore_columns}
        tracked = {c for c in columns if c.lower() not in ignored}
    if problems:
        raise ConfigError(problems)
    return ModelShape(columns=columns, keys=[k for k in keys if k], hash_columns=sorted(tracked))


def audit_keys(project: DbtProject, model: Any, shape: ModelShape) -> KeyAudit:
    keys = shape.quoted(project, shape.keys)
    # First one cheap pass (NULL keys, distinct keys); the exact count of rows with a
    # duplicated key only when there are some, which a tested model never has.
    try:  # one pass: NULL keys, rows and distinct keys together
        rows = project.execute(project.render_macro("key_counts_sql", model=model, keys=keys), fetch=True)
        null_rows, total, distinct = (int(v or 0) for v in rows[0])
    except WarehouseError as e:
        per_part = int(project.call("key_distinct_rows_per_part"))
        if "Out of Memory" not in str(e) or not per_part:
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


def plan_select(project: DbtProject, model: Any, state_sql: Any, shape: ModelShape, full_refresh: bool,
                compare_columns: list[str] | None = None, rebaseline_all: bool = False,
                has_duplicates: bool = True) -> str:
    return project.render_macro(
        "plan_select_sql", model=model, state=state_sql, keys=shape.quoted(project, shape.keys),
        columns=shape.quoted(project, shape.columns), hash_columns=shape.quoted(project, shape.hash_columns),
        full_refresh=full_refresh, compare_columns=compare_columns, rebaseline_all=rebaseline_all,
        has_duplicates=has_duplicates)


def create_temp_plan(project: DbtProject, plan_sql: str) -> str:
    """A dry run's plan, in a temporary table of this session; returns its name."""
    name = f"eb_dry_run_{uuid.uuid4().hex[:12]}"
    project.execute(f"create temporary table {name} as {plan_sql}")
    index = project.render_macro("plan_index_sql", plan=name)
    if index:
        project.execute(index)
    return name


def has_duplicate_keys(project: DbtProject, plan: Any, shape: ModelShape) -> bool:
    """A plan made without duplicate handling holds a key twice if the model gained a
    duplicated key after the audit (a concurrent rebuild): then it is planned again."""
    keys = ", ".join(shape.quoted(project, shape.keys))
    rows = project.execute(f"select count(*) from (select {keys} from {plan} as p group by {keys} "
                           "having count(*) > 1) as d", fetch=True)
    return bool(rows and rows[0][0])


def empty_state_select(project: DbtProject, model: Any, shape: ModelShape) -> str:
    return project.render_macro("empty_state_sql", model=model, keys=shape.quoted(project, shape.keys),
                                hash_columns=shape.quoted(project, shape.hash_columns),
                                columns=shape.quoted(project, shape.columns))


def count_ops(project: DbtProject, plan: Any) -> dict[str, int]:
    """Rows per op: added, changed, removed, and rebaseline (recorded, never sent)."""
    rows = project.execute(f"select _eb_op, count(*) from {plan} as p group by _eb_op", fetch=True)
    counts = {op: 0 for op in OPS}
    counts.update({str(op): int(n) for op, n in rows})
    return counts


@dataclass
class PlanRows:
    """A batch of plan rows as the cursor returned them; ``changes()`` makes the renderer's input.

    The rows stay tuples until rendering: the same form the --workers processes receive."""

    reader: "ChangeReader"
    rows: list[tuple]

    def changes(self) -> list[Change]:
        return self.reader(self.rows)


def changes(project: DbtProject, source_sql: str, ops: list[str], shape: ModelShape, batch_size: int,
            seq_range: tuple[int, int] | None = None, old_rows: bool = True) -> Iterator[PlanRows]:
    """Stream the plan's changes for the given ops, in batches (optionally seq in (lo, hi])."""
    if not ops:
        return
    reader: ChangeReader | None = None
    sql = changes_sql(project, source_sql, ops, shape, seq_range, old_rows)
    for names, rows in project.stream(sql, batch_size):
        if reader is None:
            reader = ChangeReader(names, shape)
        yield PlanRows(reader, rows)


def changes_sql(project: DbtProject, source_sql: str, ops: list[str], shape: ModelShape,
                seq_range: tuple[int, int] | None = None, old_rows: bool = True) -> str:
    op_list = ", ".join(f"'{op}'" for op in ops)
    # The JSON columns cross the wire only where they are used: the delivered values of a
    # removed row are its payload; for changed rows, the old and new values give old_row
    # and changed_columns, read only when a template uses them.
    cols = ", ".join(f"p.{c}" for c in shape.quoted(project, shape.columns))
    if old_rows:
        json_cols = "p._eb_old_row, case when p._eb_op = 'changed' then p._eb_row end as _eb_row"
    else:
        json_cols = "case when p._eb_op = 'removed' then p._eb_old_row end as _eb_old_row, null as _eb_row"
    sql = (f"select p._eb_seq, p._eb_op, p._eb_hash, {json_cols}, {cols} from {source_sql} as p "
           f"where p._eb_op in ({op_list})")
    if seq_range is not None:
        sql += f" and p._eb_seq > {int(seq_range[0])} and p._eb_seq <= {int(seq_range[1])}"
    return sql


class ChangeReader:
    """Plan rows (as the cursor returns them) to Changes; picklable, for --workers."""

    def __init__(self, names: list[str], shape: ModelShape) -> None:
        pos = {n.lower(): i for i, n in enumerate(names)}
        self.names = list(names)
        self.shape = shape
        self.key_idx = [(k, pos[k.lower()]) for k in shape.keys]
        self.col_idx = [(c, pos[c.lower()]) for c in shape.columns]
        self.i_seq, self.i_op, self.i_hash = pos["_eb_seq"], pos["_eb_op"], pos["_eb_hash"]
        self.i_old, self.i_new = pos["_eb_old_row"], pos["_eb_row"]
        # changes_sql selects the model's columns last, in order: one slice per row.
        idx = [i for _, i in self.col_idx]
        self.col_slice = idx[0] if idx and idx == list(range(idx[0], idx[0] + len(idx))) \
            and idx[-1] == len(names) - 1 else None

    def __call__(self, rows: list[tuple]) -> list[Change]:
        batch = []
        columns = self.shape.columns
        i_op, i_old, i_new, i_seq, i_hash = self.i_op, self.i_old, self.i_new, self.i_seq, self.i_hash
        key_idx, col_idx, start = self.key_idx, self.col_idx, self.col_slice
        for r in rows:
            op = r[i_op]
            old = r[i_old]
            old_row = None if old is None else _loads(old)
            key = {k: r[i] for k, i in key_idx}
            if op == "removed":
                row = old_row or {}
                changed: list[str] = []
            else:
                row = dict(zip(columns, r[start:])) if start is not None else {c: r[i] for c, i in col_idx}
                changed = []
                if op == "changed" and old_row is not None:
                    new = _loads(r[i_new]) or {}
                    changed = [c for c in columns if new.get(c) != old_row.get(c)]
            batch.append(Change(r[i_seq], op, key, row, old_row, r[i_hash], changed))
        return batch

    def key_of(self, row: tuple) -> tuple:
        return tuple(row[i] for _, i in self.key_idx)


def _loads(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return value
    return json.loads(value)
