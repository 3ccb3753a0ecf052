"""The delivered state in the warehouse: its tables, the ack journal, commits, locks.

Per sync, in the state schema (the names cannot collide with each other, with another
sync's, or with a model of the same name: every table of ours starts with ``_eb_``):
- ``_eb_state__<sync>``: what was delivered, typed (see layout.py);
- ``_eb_plan__<sync>``: the changes of the current run, numbered by ``_eb_seq``;
- ``_eb_acks__<sync>``: the ``_eb_seq`` of plan rows that need no more sending, journaled
  as EventBridge accepts them, so a killed run loses at most what was in flight;
- ``_eb_lock__<sync>``: exists while a run holds the sync (see lock.py).
Shared: ``_eb_layouts`` (each state's layout, and the one its pending plan will write) and
``_eb_objects``: every table dbt-eventbridge created. A table is written, emptied or
dropped only if ``_eb_objects`` lists it, so a table of someone else's is never touched,
whatever the state schema holds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from dbt_eventbridge.errors import WarehouseError
from dbt_eventbridge.faults import CrashPoints
from dbt_eventbridge.warehouse.layout import LEGACY_ROW, Layout, Shape, StoredColumn, old, phys
from dbt_eventbridge.warehouse.project import DbtProject
from dbt_eventbridge.warehouse.tables import (
    LEGACY_REGISTRY_COLUMNS,
    Ownership,
    StateTables,
    exists,
)

_INSERT_CHUNK = 1000


def read_layout(project: DbtProject, tables: StateTables) -> tuple[Layout | None, bool]:
    """The committed layout (None: no state, or it was reset), and whether anything was ever committed."""
    if not exists(project, tables.layouts):
        return None, False
    rows = project.execute(project.sql.select(tables.layouts, ["layout", "committed_epoch"], sync_name=tables.sync),
                           fetch=True)
    if not rows:
        return None, False
    return Layout.from_text(rows[0][0]), rows[0][1] is not None


def pending_layout(project: DbtProject, tables: StateTables) -> Layout | None:
    """The layout of a plan not yet committed (an interrupted run's, at the start of a run)."""
    if not exists(project, tables.layouts):
        return None
    return _pending_layout(project, tables)


def _pending_layout(project: DbtProject, tables: StateTables) -> Layout | None:
    rows = project.execute(project.sql.select(tables.layouts, ["pending_layout"], sync_name=tables.sync), fetch=True)
    return Layout.from_text(rows[0][0]) if rows else None


def _set_layout(project: DbtProject, tables: StateTables, **values: Any) -> None:
    """Update this sync's row of _eb_layouts (inserted when missing). ``updated_epoch`` is the
    time the committed layout last changed: a plan that is abandoned leaves the row as it was."""
    sets = {k: (v if v is None or isinstance(v, int) else str(v)) for k, v in values.items()}
    if "layout" in values:
        sets["updated_epoch"] = int(time.time())
    for sql in project.sql.layout_upsert(tables.layouts, tables.sync, sets):
        project.execute(sql)


def create_plan(project: DbtProject, tables: StateTables, plan_sql: str, send_ops: list[str],
                layout: Layout) -> None:
    """The plan and its journal, atomically; rows that will never be sent are acked at once."""
    owned = tables.owned
    owned.drop(tables.plan)
    owned.drop(tables.acks)
    with project.transaction():
        _set_layout(project, tables, pending_layout=layout.to_text())
        owned.create(tables.plan, project.sql.create_table_as(tables.plan, plan_sql), "plan", tables.sync)
        index = project.render_macro("plan_index_sql", plan=tables.plan)
        if index:
            project.execute(index)
        owned.create(tables.acks, project.sql.create_acks(tables.acks), "acks", tables.sync)
        project.execute(project.sql.ack_unsent(tables.acks, tables.plan, send_ops))


def drop_plan(project: DbtProject, tables: StateTables) -> None:
    """Forget a plan that recorded nothing (a failure before anything was delivered, or the
    mass-removal guard): the state, its layout included, stays exactly as it was."""
    with project.transaction():
        tables.owned.drop(tables.plan)
        tables.owned.drop(tables.acks)
        if exists(project, tables.layouts):
            project.execute(project.sql.layout_set(tables.layouts, tables.sync, {"pending_layout": None}))
            project.execute(project.sql.layout_forget_unused(tables.layouts, tables.sync))


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
            project.execute(project.render_macro("ack_insert_sql", acks=tables.acks, runs=group))


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


def commit(project: DbtProject, tables: StateTables, keys: list[str], crash: CrashPoints | None = None,
           unsettled: bool = True) -> None:
    """Merge the acked part of the plan into the state and drop the plan, in one transaction.

    Plan rows without an ack stay out of the state, so the next run finds them again.
    When the schema changed (or there is no state table yet), the state is rebuilt in the
    new layout: rows kept as they were keep their own shape and values.
    """
    layout = _pending_layout(project, tables)
    if layout is None:
        raise WarehouseError(f"the plan of sync '{tables.sync}' has no layout in {tables.layouts}",
                             fix=f"Run `dbt-eventbridge reset --sync {tables.sync}` to start it afresh")
    # Whether rows of this plan may have been delivered without an ack (see Layout.unsettled):
    # a replay or an abandoned run cannot know, so it says they may.
    layout.unsettled = unsettled
    if layout.swapping:
        _swap_in(project, tables, layout, crash)
        return
    previous, _ = read_layout(project, tables)
    # Plan seqs are 1..n and acks are distinct by construction (each accepted entry is
    # journaled once): n acks adding up to n(n+1)/2 are all of them.
    n = int(project.execute(project.sql.count(tables.plan), fetch=True)[0][0])
    acked, total = project.execute(project.sql.ack_totals(tables.acks), fetch=True)[0]
    all_acked = int(acked) == n and int(total or 0) == n * (n + 1) // 2
    args = {"plan": tables.plan, "acks": tables.acks, "keys": [project.quote(k) for k in layout.shape.keys],
            "all_acked": all_acked}
    state_exists = tables.owned.check(tables.state)
    if not state_exists or layout.restart or previous is None or previous.current != layout.current:
        _rebuild(project, tables, layout, previous if state_exists and not layout.restart else None, state_exists,
                 args, crash)
    else:
        _merge(project, tables, layout, previous, args, crash)


def _rebuild(project: DbtProject, tables: StateTables, layout: Layout, keep: Layout | None, state_exists: bool,
             args: dict[str, Any], crash: CrashPoints | None) -> None:
    """The state rebuilt in a new layout; ``keep``: the layout of the rows to keep as they are."""
    owned = tables.owned
    kept: set[int] = set()
    state_keys: list[str] = []
    if keep is not None:
        key_index = {c.name: c.index for c in keep.shape.columns}
        state_keys = [phys(key_index[k]) for k in layout.shape.keys]
        rows = project.execute(project.render_macro("kept_shapes_sql", state=tables.state, state_keys=state_keys,
                                                    **args), fetch=True)
        kept = {int(r[0]) for r in rows if r[0] is not None}
    final = Layout({i: s for i, s in (keep.shapes.items() if keep is not None else ()) if i in kept},
                   layout.current, layout.next_index, layout.next_id, token=layout.token,
                   token_inherited=layout.token_inherited, unsettled=layout.unsettled)
    final.shapes[layout.current] = layout.shape
    current_index = {c.index for c in layout.shape.columns}
    kept_columns = [[phys(c.index), old(c.index)] for c in final.physical() if c.index not in current_index]
    copy = sorted({c.index for s in final.shapes.values() if s.id != layout.current for c in s.columns})
    statements = project.call("rebuild_state_sql", next=tables.next, next_name=tables.next_name,
                              state=tables.state if keep is not None else None, state_keys=state_keys,
                              new_columns=_new_columns(project, layout), kept_columns=kept_columns,
                              current=layout.current,
                              copy_columns=[phys(i) for i in copy], **args)
    owned.drop(tables.next)  # a leftover of a rebuild that failed
    with project.transaction():
        owned.create(tables.next, str(statements[0]), "state", tables.sync)
        for sql in statements[1:]:
            project.execute(str(sql))
            if crash:
                crash.reach("commit.statement")
        # The rebuilt state is complete. Where DDL is not transactional (Snowflake, BigQuery,
        # Spark), the swap below is several steps that each stand on their own: a run that
        # stops between them would find the state dropped, or renamed in but its layout
        # not yet recorded. One row update says from here on that the next run completes
        # the swap (_swap_in), which each step leaves possible.
        final.swapping = True
        _set_layout(project, tables, pending_layout=final.to_text())
        final.swapping = False
        if crash:
            crash.reach("commit.swapping")
        _swap_in(project, tables, final, crash)


def _swap_in(project: DbtProject, tables: StateTables, final: Layout, crash: CrashPoints | None) -> None:
    """Move the complete rebuilt state (_eb_next__) in, and record its layout: from any
    point the swap stopped at (the next table gone means it was moved in already)."""
    owned = tables.owned
    final.swapping = False
    with project.transaction():
        if owned.check(tables.next):
            if owned.check(tables.state):
                owned.drop_checked(tables.state)
                if crash:
                    crash.reach("commit.swap")
            owned.register(tables.state, "state", tables.sync)  # before the name exists (see Ownership)
            project.execute(project.render_macro("rename_table_sql", relation=tables.next,
                                                 new_name=tables.state_name))
            owned.renamed(tables.next)
            if crash:
                crash.reach("commit.swap")
        _finish(project, tables, final)


def _merge(project: DbtProject, tables: StateTables, layout: Layout, previous: Layout, args: dict[str, Any],
           crash: CrashPoints | None) -> None:
    """The acked rows merged into the state, in the layout it has."""
    key_index = {c.name: c.index for c in previous.shape.columns}
    statements = project.call("commit_sql", state=tables.state, state_name=tables.state_name,
                              state_keys=[phys(key_index[k]) for k in layout.shape.keys],
                              new_columns=_new_columns(project, layout), current=layout.current, **args)
    with project.transaction():
        for sql in statements:
            project.execute(str(sql))
            if crash:
                crash.reach("commit.statement")
        final = layout
        if len(layout.shapes) > 1:  # forget shapes no row has any more
            rows = project.execute(project.sql.distinct_shapes(tables.state), fetch=True)
            final = layout.keeping({int(r[0]) for r in rows if r[0] is not None})
        _finish(project, tables, final)


def _new_columns(project: DbtProject, layout: Layout) -> list[list[str]]:
    """The current shape's columns: [quoted model column, physical state column]."""
    return [[project.quote(c.name), phys(c.index)] for c in layout.shape.columns]


def _finish(project: DbtProject, tables: StateTables, layout: Layout) -> None:
    """The end of a commit (in its transaction): the layout becomes the state's, the plan goes."""
    layout.restart = False
    _set_layout(project, tables, layout=layout.to_text(), pending_layout=None, committed_epoch=int(time.time()))
    for relation in (tables.plan, tables.acks):
        tables.owned.drop_checked(relation)  # checked by create_plan or replay: no second listing


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
    n = int(project.execute(project.sql.count(tables.acks), fetch=True)[0][0])
    commit(project, tables, keys, crash)
    return n


def delivered_count(project: DbtProject, tables: StateTables) -> int:
    if not tables.owned.check(tables.state):
        return 0
    return int(project.execute(project.sql.count(tables.state), fetch=True)[0][0])


def reset(project: DbtProject, tables: StateTables) -> int:
    """Forget what was delivered (the next run sends every row as added, and is not a first run)."""
    n = delivered_count(project, tables)
    owned = tables.owned
    with project.transaction():
        for relation in (tables.state, tables.plan, tables.acks, tables.next):
            owned.drop(relation)
        if exists(project, tables.layouts):
            project.execute(project.sql.layout_set(tables.layouts, tables.sync,
                                                   {"layout": None, "pending_layout": None}))
    return n


# -- format 1 (before typed state) ------------------------------------------------------------

def legacy_layout(project: DbtProject, tables: StateTables) -> tuple[Layout, str] | None:
    """The layout, and a select giving the typed-state columns, of a state written by version 1
    (the delivered values as JSON text, the tables named after the sync); None if there is none."""
    owned = tables.owned
    if not exists(project, tables.legacy_registry):
        return None
    owned._check_columns(tables.legacy_registry, LEGACY_REGISTRY_COLUMNS)
    rows = project.execute(project.sql.select(tables.legacy_registry, ["hash_version", "hash_columns"],
                                              sync_name=tables.sync), fetch=True)
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
    one = project.sql.cast("1", project.render_macro("int_type"))
    columns = ([(q(c.name), phys(c.index)) for c in stored[:-1]]
               + [(LEGACY_ROW, phys(stored[-1].index)), ("_eb_hash", "_eb_hash"), (one, "_eb_shape"),
                  (one, "_eb_fp"), ("_eb_delivered_at", "_eb_delivered_at")])
    return Layout({1: shape}, 1, len(stored) + 1, 2), project.sql.renamed(tables.legacy_state, columns)


def migrate_legacy(project: DbtProject, tables: StateTables, warn: Callable[[str], None] | None = None
                   ) -> bool:
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
                for sql in project.sql.legacy_apply_journal(
                        tables.legacy_state, q(str(tables.legacy_state.identifier)), tables.legacy_plan,
                        tables.legacy_acks, keys, LEGACY_ROW, project.render_macro("now_sql")):
                    project.execute(sql)
                project.execute(project.sql.drop_table(tables.legacy_acks))
            project.execute(project.sql.drop_table(tables.legacy_plan))
        new, select = legacy_layout(project, tables)  # type: ignore[misc]  # after the journal's rows
        owned.create(tables.state, project.sql.create_table_as(tables.state, project.sql.all_of(select)),
                     "state", tables.sync)
        _set_layout(project, tables, layout=new.to_text(), pending_layout=None, committed_epoch=int(time.time()))
        project.execute(project.sql.drop_table(tables.legacy_state))
        project.execute(project.sql.delete_where(tables.legacy_registry, sync_name=tables.sync))
    if warn is not None:
        warn("the delivered state was written by an earlier version; it now keeps typed "
             "values (this run re-baselines unchanged rows into them without sending)")
    return True


DBT_RESULTS = "_eb_dbt_results"
DBT_RESULT_COLUMNS = ["model_id", "node_id", "kind", "status", "invocation_id", "command", "completed_at",
                      "relation_name"]


def recorded_dbt_results(project: DbtProject, schema: str) -> list[tuple[Any, ...]]:
    """What the package's on-run-end hook recorded of earlier dbt invocations (read only)."""
    owned = Ownership(project, schema)
    relation = owned.relation(DBT_RESULTS)
    if not exists(project, relation):
        return []
    owned._check_columns(relation, DBT_RESULT_COLUMNS)
    return project.execute(project.sql.select(relation, DBT_RESULT_COLUMNS), fetch=True)
