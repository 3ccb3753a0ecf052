"""How a sync's delivered state keeps the values it sent: typed columns, one shape per schema.

The state table holds each delivered row's values in the warehouse's own types, in
physical columns named ``_eb_c1``, ``_eb_c2``, ... (never the model's names: any name a
model may have, hostile or 63 characters long, stays out of our DDL). A *shape* maps
the model's column names to physical columns, with their types, the key and the
tracked columns, and the fingerprint expression the rows' ``_eb_hash`` was made with.
Each state row records its shape (``_eb_shape``).

Why typed columns: a ``removed`` event and ``old_row`` must carry exactly what was
delivered. Read back through the same cursor as the model's rows, the stored values come
back as the same Python values (Decimal, datetime with its zone, bytes, dicts), so the
rendered detail is the same JSON, byte for byte, for every type an adapter returns.

Why shapes: when a model's schema changes (a column added, dropped, renamed, or a type
changed), the rows delivered before keep the values and columns they were delivered
with until they are delivered again. A physical column has one type for ever; a column
whose type changes gets a new physical column. Shapes that no row uses any more are
forgotten, and their physical columns dropped when the state is next rebuilt.

This module is data only (no SQL, no dbt): it sits below the plan, the render and the
state, which all read it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

FORMAT = 2
LEGACY_ROW = "_eb_row"  # format 1 kept the delivered values as the warehouse's JSON text


def phys(index: int) -> str:
    """The state's physical column for a value."""
    return f"_eb_c{index}"


def old(index: int) -> str:
    """The plan's copy of a delivered value (the row as the state holds it before the run)."""
    return f"_eb_o{index}"


@dataclass(frozen=True)
class StoredColumn:
    name: str     # the model's column name, exactly as the relation has it
    index: int    # its physical column: _eb_c<index>
    dtype: str    # the warehouse's type, as the adapter describes the model's column


@dataclass(frozen=True)
class Shape:
    """The columns a group of state rows was delivered with."""

    id: int
    columns: tuple[StoredColumn, ...]
    keys: tuple[str, ...]
    tracked: tuple[str, ...]          # sorted: what _eb_hash was computed on
    hash_version: str
    # Format 1 rows (before typed columns): keys typed, the other values only as JSON text.
    legacy: bool = False

    def column(self, name: str) -> StoredColumn | None:
        for c in self.columns:
            if c.name == name:
                return c
        return None

    @property
    def by_name(self) -> dict[str, StoredColumn]:
        return {c.name: c for c in self.columns}

    def same_hash(self, other: Shape) -> bool:
        """Rows of both shapes have comparable stored fingerprints (same expression, same typed columns)."""
        if self.legacy or other.legacy or self.hash_version != other.hash_version or self.tracked != other.tracked:
            return False
        mine, theirs = self.by_name, other.by_name
        return all(mine[c].dtype == theirs[c].dtype for c in self.tracked)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "columns": [[c.name, c.index, c.dtype] for c in self.columns],
                "keys": list(self.keys), "tracked": list(self.tracked), "hash_version": self.hash_version,
                "legacy": self.legacy}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Shape:
        return cls(id=int(d["id"]), columns=tuple(StoredColumn(str(n), int(i), str(t)) for n, i, t in d["columns"]),
                   keys=tuple(d["keys"]), tracked=tuple(d["tracked"]), hash_version=str(d["hash_version"]),
                   legacy=bool(d.get("legacy", False)))


@dataclass(frozen=True)
class ModelColumns:
    """What the plan needs of the model: its columns and types, key and tracked columns."""

    columns: tuple[tuple[str, str], ...]   # (name, dtype), relation order
    keys: tuple[str, ...]
    tracked: tuple[str, ...]               # sorted
    hash_version: str


@dataclass
class Layout:
    """Every shape the state's rows may have; ``current`` is the one new rows are written in."""

    shapes: dict[int, Shape] = field(default_factory=dict)
    current: int = 0
    next_index: int = 1
    next_id: int = 1        # shape ids are never reused: rows name theirs (_eb_shape, _eb_fp)
    format: int = FORMAT
    # The state is rebuilt from this run's plan alone (its key changed): no row is kept.
    restart: bool = False
    # (A pending layout only.) The rebuilt state is complete in _eb_next__<sync>, in this
    # layout, and is being swapped in: a run that stops from here on is completed by moving
    # it in, never by rebuilding (see state._rebuild).
    swapping: bool = False
    # The delivery token of the plan that wrote this layout (v2 buses' DeduplicationIds; see
    # render.dedup_id): whether it was inherited from the run before, and whether that plan
    # left rows whose delivery is unknown (an answer lost for good), which the next run
    # sends again under the same token.
    token: str = ""
    token_inherited: bool = False
    unsettled: bool = False

    @property
    def shape(self) -> Shape:
        return self.shapes[self.current]

    def physical(self) -> list[StoredColumn]:
        """The state table's value columns (one per index), in index order."""
        seen: dict[int, StoredColumn] = {}
        for s in self.shapes.values():
            for c in s.columns:
                seen.setdefault(c.index, c)
        return [seen[i] for i in sorted(seen)]

    def to_text(self) -> str:
        return json.dumps({"format": self.format, "current": self.current, "next_index": self.next_index,
                           "next_id": self.next_id, "restart": self.restart, "swapping": self.swapping,
                           "shapes": [s.to_json() for s in self.shapes.values()],
                           **({"token": self.token, "token_inherited": self.token_inherited,
                               "unsettled": self.unsettled} if self.token else {})},
                          separators=(",", ":"))

    @classmethod
    def from_text(cls, text: str | None) -> Layout | None:
        if not text:
            return None
        d = json.loads(text)
        shapes = {int(s["id"]): Shape.from_json(s) for s in d["shapes"]}
        return cls(shapes=shapes, current=int(d["current"]), next_index=int(d["next_index"]),
                   next_id=int(d.get("next_id", max(shapes, default=0) + 1)),
                   format=int(d.get("format", FORMAT)), restart=bool(d.get("restart", False)),
                   swapping=bool(d.get("swapping", False)), token=str(d.get("token", "")),
                   token_inherited=bool(d.get("token_inherited", False)), unsettled=bool(d.get("unsettled", False)))

    def matches(self, model: ModelColumns) -> bool:
        """The model has exactly the current shape (names, types, key, tracked, fingerprint)."""
        if not self.shapes:
            return False
        s = self.shape
        return (not s.legacy and tuple((c.name, c.dtype) for c in s.columns) == model.columns
                and s.keys == model.keys and s.tracked == model.tracked and s.hash_version == model.hash_version)

    def evolve(self, model: ModelColumns) -> Layout:
        """This layout with the model's shape as the current one (the same layout if it matches).

        A column keeps its physical column while its name and type stay; a new column, or
        a column whose type changed, gets a new one."""
        if self.matches(model):
            return self
        reuse: dict[tuple[str, str], int] = {}
        for s in sorted(self.shapes.values(), key=lambda s: s.id):
            for c in s.columns:
                if not s.legacy or c.name in s.keys:
                    reuse[(c.name, c.dtype)] = c.index
        nxt = self.next_index
        cols = []
        for name, dtype in model.columns:
            index = reuse.get((name, dtype))
            if index is None:
                index, nxt = nxt, nxt + 1
            cols.append(StoredColumn(name, index, dtype))
        new_id = max(self.next_id, max(self.shapes, default=0) + 1)
        shape = Shape(new_id, tuple(cols), model.keys, model.tracked, model.hash_version)
        return Layout({**self.shapes, new_id: shape}, new_id, nxt, new_id + 1)

    def keeping(self, shape_ids: set[int]) -> Layout:
        """Only the current shape and the given ones (those some state row still has)."""
        keep = shape_ids | {self.current}
        return Layout({i: s for i, s in self.shapes.items() if i in keep}, self.current, self.next_index,
                      self.next_id, token=self.token, token_inherited=self.token_inherited,
                      unsettled=self.unsettled)

    @classmethod
    def fresh(cls, model: ModelColumns) -> Layout:
        return cls().evolve(model)

    def restarted(self, model: ModelColumns) -> Layout:
        """A layout with only the model's shape, for a state rebuilt from scratch; its shape id
        is new, so no row of the old state could be taken for one of it."""
        new = Layout(next_id=self.next_id).evolve(model)
        return new
