"""Reading a plan back: its rows as the changes templates see (typed, with the delivered
values of changed and removed rows), chunk by chunk, in this process or a worker's."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from dbt_eventbridge.model import Change
from dbt_eventbridge.warehouse.diff import ModelShape
from dbt_eventbridge.warehouse.layout import LEGACY_ROW, Layout, old
from dbt_eventbridge.warehouse.project import DbtProject


@dataclass(frozen=True)
class RowSpec:
    """How plan rows become the values templates see (picklable, for --workers).

    New values come under the model's names; the delivered ones (removed rows, old_row)
    from the state's physical columns, named by the shape each row was delivered in. JSON
    columns that the driver returns as text are parsed, so a JSON object stays one."""

    columns: tuple[str, ...]
    keys: tuple[str, ...]
    json_columns: frozenset[str]
    # shape id -> ((name, physical index, is JSON), ...); legacy shapes have the JSON text column.
    shapes: tuple[tuple[int, tuple[tuple[str, int, bool], ...], bool], ...] = ()

    @classmethod
    def make(cls, shape: ModelShape, layout: Layout | None, json_types: set[str]) -> RowSpec:
        def is_json(dtype: str) -> bool:
            return dtype.strip().lower() in json_types

        shapes = []
        for s in (layout.shapes.values() if layout else ()):
            shapes.append((s.id, tuple((c.name, c.index, is_json(c.dtype)) for c in s.columns), s.legacy))
        return cls(tuple(shape.columns), tuple(shape.keys),
                   frozenset(c for c in shape.columns if is_json(shape.dtypes.get(c, ""))), tuple(shapes))

    def old_indexes(self) -> list[int]:
        return sorted({i for _, cols, _ in self.shapes for _, i, _ in cols})


def read_chunk(project: DbtProject, source_sql: str, ops: list[str], spec: RowSpec, seq_range: tuple[int, int],
               old_rows: bool) -> tuple[list[str], list[tuple[Any, ...]]]:
    """One chunk of the plan's changes, whole: (column names, rows) for --workers to split."""
    rows: list[tuple[Any, ...]] = []
    names: list[str] = []
    size = seq_range[1] - seq_range[0]
    sql = changes_sql(project, source_sql, ops, spec, seq_range, old_rows)
    for names, batch in project.stream(sql, size):  # noqa: B007 - every batch has the same names
        rows += batch
    return names, rows


def json_types(project: DbtProject) -> set[str]:
    """The engine's JSON column types (lower-cased), from its dispatched macro, once per run."""
    found: set[str] = project.cached("json_types", lambda: {str(t).lower() for t in project.call("json_types")})
    return found


def changes_sql(project: DbtProject, source_sql: str, ops: list[str], spec: RowSpec,
                seq_range: tuple[int, int] | None = None, old_rows: bool = True) -> str:
    return project.sql.plan_changes(source_sql, ops, [project.quote(n) for n in spec.columns],
                                    [old(i) for i in spec.old_indexes()], old_rows, seq_range)


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if type(a) is float and type(b) is float and math.isnan(a) and math.isnan(b):
        return True
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - values some drivers return do not compare; then they differ
        return False


def _json(value: Any) -> Any:
    if isinstance(value, (str, bytes, bytearray)):
        try:
            # Decimal: a JSON number with more digits than a double holds keeps them (it is
            # then sent as a string of its digits, as any such number is); floats rounded it.
            return json.loads(value, parse_float=Decimal)
        except ValueError:
            return value
    return value


class ChangeReader:
    """Plan rows (as the cursor returns them) to Changes; picklable, for --workers."""

    def __init__(self, names: list[str], spec: RowSpec) -> None:
        pos = {n.lower(): i for i, n in enumerate(names)}
        self.names = list(names)
        self.spec = spec
        self.key_idx = [(k, pos[k.lower()]) for k in spec.keys]
        self.col_idx = [(c, pos[c.lower()]) for c in spec.columns]
        self.json_idx = [(c, pos[c.lower()]) for c in spec.columns if c in spec.json_columns]
        self.i_seq, self.i_op, self.i_hash, self.i_shape = pos["_eb_seq"], pos["_eb_op"], pos["_eb_hash"], \
            pos["_eb_shape"]
        # per shape: [(name, position, is JSON)], and the JSON text column of a legacy shape
        self.shapes: dict[int, tuple[list[tuple[str, int, bool]], int | None]] = {}
        for sid, cols, legacy in spec.shapes:
            named = [(n, pos[old(i)], j) for n, i, j in cols if n != LEGACY_ROW and old(i) in pos]
            text = next((pos[old(i)] for n, i, _ in cols if n == LEGACY_ROW and old(i) in pos), None) \
                if legacy else None
            self.shapes[sid] = (named, text)
        # changes_sql selects the model's columns right after the four bookkeeping columns, in order.
        idx = [i for _, i in self.col_idx]
        self.col_slice = (idx[0], idx[0] + len(idx)) if idx and idx == list(range(idx[0], idx[0] + len(idx))) \
            else None

    def _old(self, r: tuple[Any, ...]) -> dict[str, Any] | None:
        sid = r[self.i_shape]
        if sid is None:
            return None
        found = self.shapes.get(int(sid))
        if found is None:
            return None
        named, text = found
        if text is not None:  # delivered by version 1: the warehouse's JSON of the row, keys typed
            row = dict(json.loads(r[text]) if r[text] is not None else {})
            row.update({n: r[i] for n, i, _ in named})
            return row
        return {n: (_json(r[i]) if j else r[i]) for n, i, j in named}

    def __call__(self, rows: list[tuple[Any, ...]]) -> list[Change]:
        batch = []
        columns = self.spec.columns
        i_op, i_seq, i_hash = self.i_op, self.i_seq, self.i_hash
        key_idx, col_idx, sl, json_idx = self.key_idx, self.col_idx, self.col_slice, self.json_idx
        for r in rows:
            op = r[i_op]
            old_row = None if op == "added" else self._old(r)  # an added row has no delivered values
            key = {k: r[i] for k, i in key_idx}  # for removed rows too: the plan keeps the delivered key
            if op == "removed":
                row = old_row or {}
                changed: list[str] = []
            else:
                row = dict(zip(columns, r[sl[0]:sl[1]])) if sl is not None else {c: r[i] for c, i in col_idx}
                for c, i in json_idx:
                    row[c] = _json(r[i])
                changed = []
                if op == "changed" and old_row is not None:
                    changed = [c for c in columns if c in old_row and not _same(row[c], old_row[c])]
            batch.append(Change(r[i_seq], op, key, row, old_row, r[i_hash], changed))
        return batch

    def key_of(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(row[i] for _, i in self.key_idx)
