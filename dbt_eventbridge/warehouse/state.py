"""The delivered state in the warehouse: its tables, the ack journal, commits, locks.

Per sync, in the state schema (the names cannot collide with each other, with another
sync's, or with a model of the same name: every table of ours starts with ``_eb_``):
- ``_eb_state__<sync>``: what was delivered, typed (see layout.py);
- ``_eb_plan__<sync>``: the changes of the current run, numbered by ``_eb_seq``;
- ``_eb_acks__<sync>``: the ``_eb_seq`` of plan rows that need no more sending, journaled
  as EventBridge accepts them, so a killed run loses at most what was in flight.
Shared: ``_eb_layouts`` (each state's layout, and the one its pending plan will write),
``_eb_locks`` (one writer per sync) and ``_eb_objects``: every table dbt-eventbridge
created. A table is written, emptied or dropped only if ``_eb_objects`` lists it, so a
table of someone else's is never touched, whatever the state schema holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from dbt_eventbridge.errors import TerminalError, WarehouseError
from dbt_eventbridge.faults import CrashPoints
from dbt_eventbridge.warehouse.layout import LEGACY_ROW, Layout, Shape, StoredColumn, old, phys
from dbt_eventbridge.warehouse.project import DbtProject

_INSERT_CHUNK = 1000
OBJECTS = "_eb_objects"
LAYOUTS = "_eb_layouts"
LOCKS = "_eb_locks"
LEGACY_REGISTRY = "_eb_syncs"    # format 1
MAX_NAME = 63                    # PostgreSQL truncates longer identifiers (and so would collide)
_PREFIXES = ("_eb_state__", "_eb_plan__", "_eb_acks__", "_eb_next__")

OBJECT_COLUMNS = [["name", "string"], ["kind", "string"], ["sync_name", "string"], ["created_epoch", "bigint"]]
LAYOUT_COLUMNS = [["sync_name", "string"], ["layout", "string"], ["pending_layout", "string"],
                  ["committed_epoch", "bigint"], ["updated_epoch", "bigint"]]
LOCK_COLUMNS = ["sync_name", "owner", "host", "pid", "heartbeat_epoch"]
LEGACY_REGISTRY_COLUMNS = ["sync_name", "hash_version", "hash_columns", "pending_hash_version",
                           "pending_hash_columns", "updated_epoch"]


class NotOursError(TerminalError):
    """A table with one of our names exists but dbt-eventbridge did not create it."""


def table_stem(sync: str) -> str:
    """The sync's part of its table names: the name itself, or, when too long for every
    warehouse, a prefix and a digest of it (still one name per sync)."""
    name = sync.lower()
    room = MAX_NAME - max(len(p) for p in _PREFIXES)
    if len(name) <= room:
        return name
    return name[:room - 9] + "_" + hashlib.sha1(name.encode()).hexdigest()[:8]


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def exists(project: DbtProject, relation: Any) -> bool:
    return str(relation.identifier).lower() in project.table_names(relation.without_identifier())


class Ownership:
    """Which tables of one schema dbt-eventbridge created (the ``_eb_objects`` table)."""

    def __init__(self, project: DbtProject, schema: str) -> None:
        self.project = project
        self.schema = schema
        self.objects = project.state_relation(schema, OBJECTS)
        self._names: set[str] | None = None

    def relation(self, name: str) -> Any:
        return self.project.state_relation(self.schema, name)

    def _load(self) -> set[str]:
        """The names we own (read only: a dry run writes nothing, not even this table)."""
        if self._names is None:
            if not exists(self.project, self.objects):
                return set()
            self._check_columns(self.objects, [c for c, _ in OBJECT_COLUMNS])
            rows = self.project.execute(f"select name from {self.objects}", fetch=True)
            self._names = {str(r[0]).lower() for r in rows}
        return self._names

    def ensure(self) -> None:
        """The schema and the ownership table (once per run)."""
        if self._names is not None:
            return
        project = self.project
        try:
            with project.transaction():
                project.adapter.create_schema(self.objects.without_identifier())
            project.forget_tables()
        except WarehouseError:
            raise
        except Exception as e:
            raise WarehouseError(f"could not create the schema {self.objects.without_identifier()}: "
                                 f"{str(e).strip().splitlines()[0] if str(e).strip() else e}") from None
        if exists(project, self.objects):
            self._check_columns(self.objects, [c for c, _ in OBJECT_COLUMNS])
        else:
            project.execute(project.render_macro("history_table_sql", relation=self.objects, columns=OBJECT_COLUMNS))
        rows = project.execute(f"select name from {self.objects}", fetch=True)
        self._names = {str(r[0]).lower() for r in rows}

    def _check_columns(self, relation: Any, expected: list[str]) -> None:
        have = [c.lower() for c, _ in self.project.relation_columns(relation)]
        if sorted(have) != sorted(expected):
            raise self._refusal(relation)

    def _refusal(self, relation: Any) -> NotOursError:
        return NotOursError(
            f"the table {relation} exists but was not created by dbt-eventbridge, so it is never written, "
            "emptied or dropped by it; nothing was changed",
            fix="Use a schema of its own for the state (vars.eventbridge.state_schema or "
                "DBT_EVENTBRIDGE_STATE_SCHEMA; the default is eventbridge_state), or move that table away")

    def is_ours(self, relation: Any) -> bool:
        return str(relation.identifier).lower() in self._load()

    def check(self, relation: Any) -> bool:
        """Whether the table exists; raises if it exists and is not ours."""
        if not exists(self.project, relation):
            return False
        if not self.is_ours(relation):
            raise self._refusal(relation)
        return True

    def readable(self, relation: Any, columns: list[str]) -> bool:
        """Whether a shared table of ours exists, to read it (one of an earlier version, made
        before _eb_objects, is recognised by exactly its columns); nothing is written."""
        if not exists(self.project, relation):
            return False
        if not self.is_ours(relation):
            self._check_columns(relation, columns)
        return True

    def adopt(self, relation: Any, kind: str, columns: list[str], sync: str = "") -> bool:
        """A table of an earlier version (before _eb_objects), recognised by exactly its columns."""
        if not self.readable(relation, columns):
            return False
        if not self.is_ours(relation):
            self.register(relation, kind, sync)
        return True

    def register(self, relation: Any, kind: str, sync: str = "") -> None:
        self.ensure()
        name = str(relation.identifier).lower()
        self.project.execute(f"delete from {self.objects} where name = {_literal(name)}")
        self.project.execute(f"insert into {self.objects} (name, kind, sync_name, created_epoch) values "
                             f"({_literal(name)}, {_literal(kind)}, {_literal(sync)}, {int(time.time())})")
        assert self._names is not None
        self._names.add(name)

    def ensure_table(self, relation: Any, kind: str, create_sql: str, columns: list[str]) -> None:
        """A shared table of ours: created (and registered) when missing, refused when someone else's."""
        if self.adopt(relation, kind, columns):
            return
        with self.project.transaction():
            self.project.execute(create_sql)
            self.register(relation, kind)

    def create(self, relation: Any, sql: str, kind: str, sync: str) -> None:
        """Create one of our tables (inside the caller's transaction)."""
        if self.check(relation):
            self.drop(relation)
        self.project.execute(sql)
        self.register(relation, kind, sync)

    def drop(self, relation: Any) -> None:
        if not self.check(relation):
            return
        name = str(relation.identifier).lower()
        with self.project.transaction():
            self.project.execute(f"drop table {relation}")
            self.project.execute(f"delete from {self.objects} where name = {_literal(name)}")
        if self._names is not None:
            self._names.discard(name)

    def renamed(self, old_relation: Any, new_relation: Any) -> None:
        old_name, new_name = str(old_relation.identifier).lower(), str(new_relation.identifier).lower()
        self.project.execute(f"delete from {self.objects} where name = {_literal(old_name)}")
        if self._names is not None:
            self._names.discard(old_name)
        self.project.execute(f"update {self.objects} set created_epoch = {int(time.time())} "
                             f"where name = {_literal(new_name)}")


class StateTables:
    """Relations of one sync, all in the state schema, named after the (unique) sync name."""

    def __init__(self, project: DbtProject, schema: str, sync_name: str) -> None:
        self.sync = sync_name.lower()
        stem = table_stem(sync_name)
        rel = project.state_relation
        self.project = project
        self.schema = schema
        self.owned = Ownership(project, schema)
        self.state = rel(schema, f"_eb_state__{stem}")
        self.plan = rel(schema, f"_eb_plan__{stem}")
        self.acks = rel(schema, f"_eb_acks__{stem}")
        self.next = rel(schema, f"_eb_next__{stem}")
        self.layouts = rel(schema, LAYOUTS)
        self.locks = rel(schema, LOCKS)
        self.state_name = project.quote(f"_eb_state__{stem}")
        self.next_name = project.quote(f"_eb_next__{stem}")
        # format 1 (before typed state), migrated on the first run
        self.legacy_state = rel(schema, self.sync)
        self.legacy_plan = rel(schema, f"{self.sync}__plan")
        self.legacy_acks = rel(schema, f"{self.sync}__acks")
        self.legacy_registry = rel(schema, LEGACY_REGISTRY)

    @classmethod
    def for_sync(cls, project: DbtProject, schema: str, sync_name: str) -> StateTables:
        return cls(project, schema, sync_name)


def ensure_schema(project: DbtProject, tables: StateTables) -> None:
    owned = tables.owned
    owned.ensure()
    owned.ensure_table(tables.layouts, "layouts",
                       project.render_macro("history_table_sql", relation=tables.layouts, columns=LAYOUT_COLUMNS),
                       [c for c, _ in LAYOUT_COLUMNS])
    # The lock's primary key is what makes it a lock: a second insert fails.
    owned.ensure_table(tables.locks, "locks",
                       f"create table {tables.locks} (sync_name varchar(256) primary key, owner varchar(256), "
                       "host varchar(256), pid bigint, heartbeat_epoch bigint)", LOCK_COLUMNS)


def read_layout(project: DbtProject, tables: StateTables) -> tuple[Layout | None, bool]:
    """The committed layout (None: no state, or it was reset), and whether anything was ever committed."""
    if not exists(project, tables.layouts):
        return None, False
    rows = project.execute(f"select layout, committed_epoch from {tables.layouts} "
                           f"where sync_name = {_literal(tables.sync)}", fetch=True)
    if not rows:
        return None, False
    return Layout.from_text(rows[0][0]), rows[0][1] is not None


def _pending_layout(project: DbtProject, tables: StateTables) -> Layout | None:
    rows = project.execute(f"select pending_layout from {tables.layouts} where sync_name = {_literal(tables.sync)}",
                           fetch=True)
    return Layout.from_text(rows[0][0]) if rows else None


def _set_layout(project: DbtProject, tables: StateTables, **values: Any) -> None:
    """Update this sync's row of _eb_layouts (inserted when missing). ``updated_epoch`` is the
    time the committed layout last changed: a plan that is abandoned leaves the row as it was."""
    name = _literal(tables.sync)
    sets = {k: ("null" if v is None else str(v) if isinstance(v, int) else _literal(str(v)))
            for k, v in values.items()}
    if "layout" in values:
        sets["updated_epoch"] = str(int(time.time()))
    project.execute(f"update {tables.layouts} set {', '.join(f'{k} = {v}' for k, v in sets.items())} "
                    f"where sync_name = {name}")
    cols = ", ".join(sets)
    project.execute(f"insert into {tables.layouts} (sync_name, {cols}) select {name}, {', '.join(sets.values())} "
                    f"where not exists (select 1 from {tables.layouts} where sync_name = {name})")


def create_plan(project: DbtProject, tables: StateTables, plan_sql: str, send_ops: list[str],
                layout: Layout) -> None:
    """The plan and its journal, atomically; rows that will never be sent are acked at once."""
    owned = tables.owned
    owned.drop(tables.plan)
    owned.drop(tables.acks)
    with project.transaction():
        _set_layout(project, tables, pending_layout=layout.to_text())
        owned.create(tables.plan, f"create table {tables.plan} as {plan_sql}", "plan", tables.sync)
        index = project.render_macro("plan_index_sql", plan=tables.plan)
        if index:
            project.execute(index)
        owned.create(tables.acks, f"create table {tables.acks} (_eb_seq bigint)", "acks", tables.sync)
        ops = ", ".join(_literal(op) for op in send_ops) or "''"
        project.execute(f"insert into {tables.acks} (_eb_seq) select _eb_seq from {tables.plan} "
                        f"where _eb_op not in ({ops})")


def drop_plan(project: DbtProject, tables: StateTables) -> None:
    """Forget a plan that recorded nothing (a failure before anything was delivered, or the
    mass-removal guard): the state, its layout included, stays exactly as it was."""
    with project.transaction():
        tables.owned.drop(tables.plan)
        tables.owned.drop(tables.acks)
        if exists(project, tables.layouts):
            name = _literal(tables.sync)
            project.execute(f"update {tables.layouts} set pending_layout = null where sync_name = {name}")
            project.execute(f"delete from {tables.layouts} where sync_name = {name} and layout is null "
                            "and committed_epoch is null")


def seq_runs(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, distinct seqs as (first, last) runs: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    runs: list[tuple[int, int]] = []
    for s in sorted(set(seqs)):
        if runs and s == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], s)
        else:
            runs.append((s, s))
    return runs


def journal(project: DbtProject, tables: StateTables, seqs: list[int]) -> None:
    """Record accepted plan rows; committed at once, so they survive a crash of this run."""
    if not seqs:
        return
    max_rows = project.cached("ack_insert_max_rows", lambda: int(project.call("ack_insert_max_rows")))
    with project.transaction():
        for group in _statements(seq_runs(seqs), max_rows):
            project.execute_fast(project.render_macro("ack_insert_sql", acks=tables.acks, runs=group))


def _statements(runs: list[tuple[int, int]], max_rows: int) -> Iterator[list[list[int]]]:
    """Runs grouped per statement: at most _INSERT_CHUNK runs and max_rows seqs each."""
    group: list[list[int]] = []
    rows = 0
    for lo, hi in runs:
        while lo <= hi:
            take = min(hi - lo + 1, max_rows - rows)
            group.append([lo, lo + take - 1])
            rows += take
            lo += take
            if rows >= max_rows or len(group) >= _INSERT_CHUNK:
                yield group
                group, rows = [], 0
    if group:
        yield group


def commit(project: DbtProject, tables: StateTables, keys: list[str], crash: CrashPoints | None = None) -> None:
    """Merge the acked part of the plan into the state and drop the plan, in one transaction.

    Plan rows without an ack stay out of the state, so the next run finds them again.
    When the schema changed (or there is no state table yet), the state is rebuilt in the
    new layout: rows kept as they were keep their own shape and values.
    """
    owned = tables.owned
    layout = _pending_layout(project, tables)
    if layout is None:
        raise WarehouseError(f"the plan of sync '{tables.sync}' has no layout in {tables.layouts}",
                             fix=f"Run `dbt-eventbridge reset --sync {tables.sync}` to start it afresh")
    previous, _ = read_layout(project, tables)
    # Plan seqs are 1..n and acks are distinct by construction (each accepted entry is
    # journaled once): n acks adding up to n(n+1)/2 are all of them.
    n = int(project.execute(f"select count(*) from {tables.plan}", fetch=True)[0][0])
    acked, total = project.execute(f"select count(*), sum(_eb_seq) from {tables.acks}", fetch=True)[0]
    all_acked = int(acked) == n and int(total or 0) == n * (n + 1) // 2
    qkeys = [project.quote(k) for k in layout.shape.keys]
    new_columns = [[project.quote(c.name), phys(c.index)] for c in layout.shape.columns]
    state_exists = owned.check(tables.state)
    rebuild = (not state_exists or layout.restart or previous is None
               or previous.current != layout.current)
    args = dict(plan=tables.plan, acks=tables.acks, keys=qkeys, all_acked=all_acked)
    if rebuild:
        keep_from = tables.state if state_exists and not layout.restart and previous is not None else None
        kept: set[int] = set()
        if keep_from is not None:
            key_index = {c.name: c.index for c in previous.shape.columns}  # type: ignore[union-attr]
            state_keys = [phys(key_index[k]) for k in layout.shape.keys]
            rows = project.execute(project.render_macro("kept_shapes_sql", state=tables.state, state_keys=state_keys,
                                                        **args), fetch=True)
            kept = {int(r[0]) for r in rows if r[0] is not None}
        else:
            state_keys = []
        final = Layout({i: s for i, s in (previous.shapes.items() if keep_from is not None and previous else ())
                        if i in kept}, layout.current, layout.next_index, layout.next_id)
        final.shapes[layout.current] = layout.shape
        current_index = {c.index for c in layout.shape.columns}
        kept_columns = [[phys(c.index), old(c.index)] for c in final.physical() if c.index not in current_index]
        copy = sorted({c.index for s in final.shapes.values() if s.id != layout.current for c in s.columns})
        statements = project.call("rebuild_state_sql", next=tables.next, next_name=tables.next_name,
                                  state=keep_from, state_keys=state_keys,
                                  new_columns=new_columns, kept_columns=kept_columns, current=layout.current,
                                  copy_columns=[phys(i) for i in copy], **args)
        owned.drop(tables.next)  # a leftover of a rebuild that failed
        with project.transaction():
            owned.create(tables.next, str(statements[0]), "state", tables.sync)
            for sql in statements[1:]:
                project.execute(str(sql))
                if crash:
                    crash.reach("commit.statement")
            if state_exists:
                project.execute(f"drop table {tables.state}")
            project.execute(project.render_macro("rename_table_sql", relation=tables.next,
                                                 new_name=tables.state_name))
            owned.renamed(tables.next, tables.state)
            if not state_exists:
                owned.register(tables.state, "state", tables.sync)
            _finish(project, tables, final)
        return
    assert previous is not None
    key_index = {c.name: c.index for c in previous.shape.columns}
    statements = project.call("commit_sql", state=tables.state, state_name=tables.state_name,
                              state_keys=[phys(key_index[k]) for k in layout.shape.keys],
                              new_columns=new_columns, current=layout.current, **args)
    with project.transaction():
        for sql in statements:
            project.execute(str(sql))
            if crash:
                crash.reach("commit.statement")
        final = layout
        if len(layout.shapes) > 1:  # forget shapes no row has any more
            rows = project.execute(f"select distinct _eb_shape from {tables.state}", fetch=True)
            final = layout.keeping({int(r[0]) for r in rows if r[0] is not None})
        _finish(project, tables, final)


def _finish(project: DbtProject, tables: StateTables, layout: Layout) -> None:
    """The end of a commit (in its transaction): the layout becomes the state's, the plan goes."""
    layout.restart = False
    _set_layout(project, tables, layout=layout.to_text(), pending_layout=None, committed_epoch=int(time.time()))
    for relation in (tables.plan, tables.acks):
        project.execute(f"drop table {relation}")
        project.execute(f"delete from {tables.owned.objects} where name = "
                        f"{_literal(str(relation.identifier).lower())}")
        if tables.owned._names is not None:
            tables.owned._names.discard(str(relation.identifier).lower())


def pending_replay(project: DbtProject, tables: StateTables) -> bool:
    """A plan left by a run that did not finish."""
    return tables.owned.check(tables.plan)


def replay(project: DbtProject, tables: StateTables, keys: list[str], crash: CrashPoints | None = None) -> int:
    """Complete an interrupted run: commit what its journal says was delivered.

    Returns the number of acked rows recovered (0 when the run died before journaling).
    """
    if not tables.owned.check(tables.acks) or _pending_layout(project, tables) is None:
        tables.owned.drop(tables.plan)
        return 0
    n = int(project.execute(f"select count(*) from {tables.acks}", fetch=True)[0][0])
    commit(project, tables, keys, crash)
    return n


def delivered_count(project: DbtProject, tables: StateTables) -> int:
    if not tables.owned.check(tables.state):
        return 0
    return int(project.execute(f"select count(*) from {tables.state}", fetch=True)[0][0])


def reset(project: DbtProject, tables: StateTables) -> int:
    """Forget what was delivered (the next run sends every row as added, and is not a first run)."""
    n = delivered_count(project, tables)
    owned = tables.owned
    with project.transaction():
        for relation in (tables.state, tables.plan, tables.acks, tables.next):
            owned.drop(relation)
        if exists(project, tables.layouts):
            project.execute(f"update {tables.layouts} set layout = null, pending_layout = null "
                            f"where sync_name = {_literal(tables.sync)}")
    return n


# -- format 1 (before typed state) ------------------------------------------------------------

def legacy_layout(project: DbtProject, tables: StateTables) -> tuple[Layout, str] | None:
    """The layout, and a select giving the typed-state columns, of a state written by version 1
    (the delivered values as JSON text, the tables named after the sync); None if there is none."""
    owned = tables.owned
    if not exists(project, tables.legacy_registry):
        return None
    owned._check_columns(tables.legacy_registry, LEGACY_REGISTRY_COLUMNS)
    rows = project.execute(f"select hash_version, hash_columns from {tables.legacy_registry} "
                           f"where sync_name = {_literal(tables.sync)}", fetch=True)
    if not rows or rows[0][0] is None or not exists(project, tables.legacy_state):
        return None
    hash_version, tracked = str(rows[0][0]), json.loads(rows[0][1])
    cols = project.relation_columns(tables.legacy_state)
    names = [c for c, _ in cols]
    if not {"_eb_hash", LEGACY_ROW, "_eb_delivered_at"} <= set(names):
        raise owned._refusal(tables.legacy_state)
    key_cols = [(c, t) for c, t in cols if c not in ("_eb_hash", LEGACY_ROW, "_eb_delivered_at")]
    stored = [StoredColumn(c, i + 1, t) for i, (c, t) in enumerate(key_cols)]
    stored.append(StoredColumn(LEGACY_ROW, len(stored) + 1, "text"))
    shape = Shape(1, tuple(stored), tuple(c for c, _ in key_cols), tuple(sorted(tracked)), hash_version, legacy=True)
    q = project.quote
    select = ", ".join([f"{q(c.name)} as {phys(c.index)}" for c in stored[:-1]]
                       + [f"{LEGACY_ROW} as {phys(stored[-1].index)}", "_eb_hash",
                          f"cast(1 as {project.render_macro('int_type')}) as _eb_shape",
                          f"cast(1 as {project.render_macro('int_type')}) as _eb_fp", "_eb_delivered_at"])
    return Layout({1: shape}, 1, len(stored) + 1, 2), f"(select {select} from {tables.legacy_state})"


def migrate_legacy(project: DbtProject, tables: StateTables, log: Any = None) -> bool:
    """A state written by version 1 becomes a typed state in a legacy shape: nothing delivered
    is forgotten, and the first run re-baselines unchanged rows into typed values (see
    plan._compare). An interrupted version 1 run is completed from its journal first."""
    owned = tables.owned
    layout, _ = read_layout(project, tables)
    if layout is not None:
        return False
    found = legacy_layout(project, tables)
    if found is None:
        return False
    q = project.quote
    with project.transaction():
        plan_cols = [c for c, _ in project.relation_columns(tables.legacy_plan)] \
            if exists(project, tables.legacy_plan) else []
        if plan_cols:
            if not {"_eb_seq", "_eb_op", "_eb_old_row"} <= set(plan_cols):
                raise owned._refusal(tables.legacy_plan)
            if exists(project, tables.legacy_acks):
                keys = [q(k) for k in found[0].shape.keys]
                done = (f"(select * from {tables.legacy_plan} as p where exists (select 1 from {tables.legacy_acks} "
                        f"as a where a._eb_seq = p._eb_seq))")
                match = " and ".join(f"d.{k} = {q(str(tables.legacy_state.identifier))}.{k}" for k in keys)
                project.execute(f"delete from {tables.legacy_state} using {done} as d where {match}")
                project.execute(f"insert into {tables.legacy_state} ({', '.join(keys)}, _eb_hash, {LEGACY_ROW}, "
                                f"_eb_delivered_at) select {', '.join(keys)}, _eb_hash, {LEGACY_ROW}, "
                                f"{project.render_macro('now_sql')} from {done} as d where d._eb_op <> 'removed'")
                project.execute(f"drop table {tables.legacy_acks}")
            project.execute(f"drop table {tables.legacy_plan}")
        new, select = legacy_layout(project, tables)  # type: ignore[misc]  # after the journal's rows
        owned.create(tables.state, f"create table {tables.state} as select * from {select} as legacy",
                     "state", tables.sync)
        _set_layout(project, tables, layout=new.to_text(), pending_layout=None, committed_epoch=int(time.time()))
        project.execute(f"drop table {tables.legacy_state}")
        project.execute(f"delete from {tables.legacy_registry} where sync_name = {_literal(tables.sync)}")
    if log:
        log("warn", f"{tables.sync}: the delivered state was written by an earlier version; it now keeps typed "
                    "values (this run re-baselines unchanged rows into them without sending)")
    return True


class LockedError(TerminalError):
    """Another run holds the sync."""


class SyncLock:
    """One writer per sync, as a row in ``_eb_locks``.

    A lock whose owner stopped heart-beating for ``ttl`` seconds, or whose owner was a
    process on this machine that no longer exists (a killed run), is taken over.
    """

    def __init__(self, project: DbtProject, tables: StateTables, *, ttl: int, wait: int) -> None:
        self.project = project
        self.tables = tables
        self.ttl = ttl
        self.wait = wait
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.host = socket.gethostname()
        self._last_beat = 0.0

    def __enter__(self) -> SyncLock:
        deadline = time.monotonic() + self.wait
        name = _literal(self.tables.sync)
        # What other processes did to this sync's tables before we held it is seen afresh.
        self.project.forget_tables()
        while True:
            try:
                with self.project.transaction():
                    self.project.execute(
                        f"insert into {self.tables.locks} (sync_name, owner, host, pid, heartbeat_epoch) values "
                        f"({name}, {_literal(self.owner)}, {_literal(self.host)}, {os.getpid()}, {int(time.time())})")
                self._last_beat = time.monotonic()
                return self
            except WarehouseError:
                pass  # held: look at the holder
            rows = self.project.execute(f"select owner, host, pid, heartbeat_epoch from {self.tables.locks} "
                                        f"where sync_name = {name}", fetch=True)
            if not rows:
                continue
            owner, host, pid, beat = rows[0]
            if self._stale(str(host), int(pid), int(beat)):
                self.project.execute(f"delete from {self.tables.locks} where sync_name = {name} "
                                     f"and owner = {_literal(str(owner))}")
                continue
            if time.monotonic() >= deadline:
                age = int(time.time()) - int(beat)
                raise LockedError(
                    f"another run ({owner}) is syncing it right now (last heartbeat {age}s ago), so this run "
                    "published nothing", sync=self.tables.sync,
                    fix=f"Wait for it to finish; a run that died is taken over after {self.ttl}s without "
                        "heartbeat (lock_ttl_seconds), or at once on the same machine. lock_wait_seconds "
                        "makes this run wait instead")
            time.sleep(1)

    def _stale(self, host: str, pid: int, beat: int) -> bool:
        if time.time() - beat > self.ttl:
            return True
        if host == self.host and pid != os.getpid():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
        return False

    def heartbeat(self) -> None:
        if time.monotonic() - self._last_beat < 5:
            return
        self._last_beat = time.monotonic()
        self.project.execute(f"update {self.tables.locks} set heartbeat_epoch = {int(time.time())} "
                             f"where sync_name = {_literal(self.tables.sync)} and owner = {_literal(self.owner)}")

    def __exit__(self, *exc: Any) -> None:
        try:
            self.project.execute(f"delete from {self.tables.locks} where sync_name = {_literal(self.tables.sync)} "
                                 f"and owner = {_literal(self.owner)}")
        except WarehouseError:
            pass  # the lock expires by itself


DBT_RESULTS = "_eb_dbt_results"
DBT_RESULT_COLUMNS = ["model_id", "node_id", "kind", "status", "invocation_id", "command", "completed_at",
                      "relation_name"]


def recorded_dbt_results(project: DbtProject, schema: str) -> list[tuple]:
    """What the package's on-run-end hook recorded of earlier dbt invocations (read only)."""
    owned = Ownership(project, schema)
    relation = owned.relation(DBT_RESULTS)
    if not exists(project, relation):
        return []
    owned._check_columns(relation, DBT_RESULT_COLUMNS)
    return project.execute(f"select {', '.join(DBT_RESULT_COLUMNS)} from {relation}", fetch=True)
