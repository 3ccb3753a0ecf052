"""The delivered state: our tables and only ours, the journal, commits, replay, the lock (state.py)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from dbt_eventbridge.errors import LockedError
from dbt_eventbridge.warehouse import state as state_store
from dbt_eventbridge.warehouse.lock import SyncLock
from dbt_eventbridge.warehouse.tables import NotOursError, Ownership, StateTables, ensure_schema

NO_CHANGES = {"added": 0, "changed": 0, "removed": 0}

def ops_by_key(changes) -> dict:
    return {tuple(c.key.values()): c.op for c in changes}


def objects(engine) -> list[tuple[str, str, str]]:
    """What _eb_objects says dbt-eventbridge created: (name, kind, sync)."""
    return sorted(engine.query(f"select name, kind, sync_name from {engine.state_table('_eb_objects')}"))


def table_names(engine) -> set[str]:
    engine.project.forget_tables()
    return engine.project.table_names(engine.state_table("_eb_objects").without_identifier())


def refusal(relation) -> str:
    return (f"the table {relation} exists but was not created by dbt-eventbridge, so it is never written, "
            "emptied or dropped by it; nothing was changed")


# -- the state schema and what is ours ---------------------------------------------------------

def test_ensure_schema_creates_the_shared_tables_once(engine) -> None:
    tables = StateTables.for_sync(engine.project, engine.state_schema, "customers")
    ensure_schema(engine.project, tables)
    ensure_schema(engine.project, tables)
    # a later run: nothing cached
    engine.project.forget_tables()
    ensure_schema(engine.project, StateTables.for_sync(engine.project, engine.state_schema, "orders"))
    assert table_names(engine) == {"_eb_objects", "_eb_layouts"}
    assert objects(engine) == [("_eb_layouts", "layouts", "")]


def test_every_table_a_run_creates_is_registered_and_the_plan_tables_go_with_the_commit(engine) -> None:
    node = engine.table("customers", "id integer, v varchar(10)", [(1, "a")])
    sync = engine.sync(node, "id")
    sync.plan()
    assert objects(engine) == [("_eb_acks__customers", "acks", "customers"), ("_eb_layouts", "layouts", ""),
                               ("_eb_plan__customers", "plan", "customers")]
    sync.journal([1])
    sync.commit()
    assert objects(engine) == [("_eb_layouts", "layouts", ""), ("_eb_state__customers", "state", "customers")]
    assert table_names(engine) == {"_eb_objects", "_eb_layouts", "_eb_state__customers"}


@pytest.mark.parametrize("prefix", ["_eb_state__", "_eb_plan__", "_eb_acks__"])
def test_a_same_named_table_someone_else_made_is_refused_and_left_as_it_was(engine, prefix) -> None:
    node = engine.table("customers", "id integer, v varchar(10)", [(1, "a")])
    sync = engine.sync(node, "id")
    foreign = engine.make_foreign_table(f"{prefix}customers")
    with pytest.raises(NotOursError) as e:
        sync.plan()
    assert str(e.value).startswith(refusal(foreign))
    assert engine.query(f"select id, note from {foreign}") == [(42, None)]
    assert [c for c, _ in engine.project.relation_columns(foreign)] == ["id", "note"]


@pytest.mark.parametrize("name", ["_eb_objects", "_eb_layouts"])
def test_a_shared_table_of_someone_else_is_refused(engine, name) -> None:
    foreign = engine.make_foreign_table(name)
    with pytest.raises(NotOursError) as e:
        ensure_schema(engine.project, StateTables.for_sync(engine.project, engine.state_schema, "customers"))
    assert str(e.value).startswith(refusal(foreign))
    assert engine.query(f"select id, note from {foreign}") == [(42, None)]


def test_ownership_never_drops_a_table_it_did_not_create(engine) -> None:
    foreign = engine.make_foreign_table("mine")
    owned = Ownership(engine.project, engine.state_schema)
    owned.ensure()
    with pytest.raises(NotOursError):
        owned.drop(foreign)
    with pytest.raises(NotOursError):
        owned.create(foreign, f"create table {foreign} (x integer)", "state", "mine")
    assert engine.query(f"select id, note from {foreign}") == [(42, None)]
    assert owned.check(engine.state_table("missing")) is False


def test_a_drop_that_is_rolled_back_leaves_the_table_ours(engine) -> None:
    """The names of our tables are cached per run; a transaction that rolls back after a drop
    must not leave the table (still there) looking like someone else's."""
    owned = Ownership(engine.project, engine.state_schema)
    owned.ensure()
    table = engine.state_table("_eb_plan__rolled_back")
    owned.create(table, f"create table {table} (x integer)", "plan", "rolled_back")
    with pytest.raises(RuntimeError), engine.project.transaction():
        owned.drop_checked(table)
        raise RuntimeError("the run fails after the drop")
    assert owned.check(table) is True
    assert engine.query(f"select count(*) from {table}") == [(0,)]


def test_a_transaction_that_fails_changes_nothing(engine) -> None:
    project = engine.project
    table = f"{engine.schema}.t"
    project.execute(f"create table {table} (id integer)")
    project.execute(f"insert into {table} values (1)")
    with pytest.raises(RuntimeError), project.transaction():
        project.execute(f"insert into {table} values (2)")
        project.execute(f"delete from {table} where id = 1")
        raise RuntimeError("the run fails here")
    assert engine.query(f"select id from {table}") == [(1,)]


def test_a_reset_that_meets_a_table_of_someone_else_changes_nothing(engine) -> None:
    node = engine.table("customers", "id integer, v varchar(10)", [(1, "a"), (2, "b")])
    sync = engine.sync(node, "id")
    sync.deliver()
    foreign = engine.make_foreign_table("_eb_next__customers")
    with pytest.raises(NotOursError):
        state_store.reset(engine.project, sync.fresh_tables())
    sync.fresh_tables()
    assert sync.delivered() == {(1,): {"id": 1, "v": "a"}, (2,): {"id": 2, "v": "b"}}
    assert engine.query(f"select id from {foreign}") == [(42,)]
    assert sync.plan().counts == NO_CHANGES


def test_a_sync_name_too_long_for_an_identifier_gets_short_distinct_table_names(engine) -> None:
    node = engine.table("t", "id integer, v varchar(10)", [(1, "a")])
    long_a, long_b = "a" * 59 + "_one", "a" * 59 + "_two"  # 63 characters, the longest name
    for name in (long_a, long_b):
        engine.sync(node, "id", name=name).deliver()
    states = sorted(n for n in table_names(engine) if n.startswith("_eb_state__"))
    assert len(states) == 2 and all(len(n) <= 63 for n in states)
    assert sorted(n for n, kind, _ in objects(engine) if kind == "state") == states
    assert engine.sync(node, "id", name=long_b).plan().counts == NO_CHANGES


# -- plan, journal, commit, replay --------------------------------------------------------------

def test_a_commit_records_exactly_the_acked_rows_and_the_next_plan_sends_the_rest(engine) -> None:
    node = engine.table("t", "id integer, v varchar(10)", [(1, "a"), (2, "b"), (3, "c"), (4, "d")])
    sync = engine.sync(node, "id")
    sync.deliver()
    engine.load(node, [(1, "a2"), (2, "b2"), (5, "e"), (6, "f")])  # 1, 2 changed; 3, 4 removed; 5, 6 added
    plan = sync.plan()
    assert plan.counts == {"added": 2, "changed": 2, "removed": 2}
    sync.journal(sync.seqs(plan, 1, 3, 5))  # EventBridge accepted these; the rest was rejected
    sync.commit()
    assert sync.delivered() == {(1,): {"id": 1, "v": "a2"}, (2,): {"id": 2, "v": "b"}, (4,): {"id": 4, "v": "d"},
                                (5,): {"id": 5, "v": "e"}}

    plan = sync.plan()
    changes = sync.changes(plan)
    assert ops_by_key(changes) == {(2,): "changed", (4,): "removed", (6,): "added"}
    assert [c.old_row for c in changes if c.key == {"id": 2}] == [{"id": 2, "v": "b"}]
    sync.journal([c.seq for c in changes])
    sync.commit()
    assert sync.plan().counts == NO_CHANGES
    assert sync.delivered() == {(1,): {"id": 1, "v": "a2"}, (2,): {"id": 2, "v": "b2"}, (5,): {"id": 5, "v": "e"},
                                (6,): {"id": 6, "v": "f"}}


def test_acks_journaled_in_several_chunks_out_of_order_are_all_recorded(engine) -> None:
    node = engine.table("t", "id integer, v varchar(10)", [(i, f"v{i}") for i in range(1, 11)])
    sync = engine.sync(node, "id")
    plan = sync.plan()
    delivered = {c.key["id"] for c in sync.changes(plan) if c.seq in {1, 2, 3, 5, 6, 7, 9}}
    sync.journal([9, 2, 3, 1])
    sync.journal([7])
    sync.journal([5, 6])
    sync.commit()
    assert {k for (k,) in sync.delivered()} == delivered
    assert {c.key["id"] for c in sync.changes(sync.plan())} == set(range(1, 11)) - delivered


def test_changes_of_an_op_without_a_trigger_are_recorded_without_being_sent(engine) -> None:
    node = engine.table("t", "id integer, v varchar(10)", [(1, "a"), (2, "b")])
    sync = engine.sync(node, "id", triggers=["added"])
    sync.deliver(["added"])
    engine.load(node, [(1, "a2"), (3, "c")])  # 1 changed, 2 removed, 3 added
    plan = sync.plan(["added"])
    assert plan.counts == {"added": 1, "changed": 1, "removed": 1}
    assert ops_by_key(sync.changes(plan, ["added"])) == {(3,): "added"}
    sync.journal(sync.seqs(plan, 3))
    sync.commit()
    assert sync.plan(["added"]).counts == NO_CHANGES
    assert sync.delivered() == {(1,): {"id": 1, "v": "a2"}, (3,): {"id": 3, "v": "c"}}


def test_an_interrupted_run_is_completed_from_its_journal(engine) -> None:
    node = engine.table("t", "id integer, v varchar(10)", [(i, f"v{i}") for i in range(1, 6)])
    sync = engine.sync(node, "id")
    plan = sync.plan()
    acked = sync.seqs(plan, 2, 4)
    sync.journal(acked)
    # ... and the process dies. The next run finds the plan and its journal:
    tables = sync.fresh_tables()
    assert state_store.pending_replay(engine.project, tables) is True
    assert state_store.replay(engine.project, tables, sync.keys) == 2
    assert state_store.pending_replay(engine.project, tables) is False
    assert sync.delivered() == {(2,): {"id": 2, "v": "v2"}, (4,): {"id": 4, "v": "v4"}}
    assert ops_by_key(sync.changes(sync.plan())) == {(1,): "added", (3,): "added", (5,): "added"}


def test_a_replay_keeps_the_plans_values_even_if_the_model_changed_since(engine) -> None:
    node = engine.table("t", "id integer, v varchar(10)", [(1, "a"), (2, "b")])
    sync = engine.sync(node, "id")
    sync.deliver()
    engine.load(node, [(1, "a2"), (2, "b2")])
    plan = sync.plan()
    sync.journal(sync.seqs(plan, 1))
    engine.load(node, [(1, "a3"), (2, "b2")])  # rebuilt before the next run
    tables = sync.fresh_tables()
    assert state_store.replay(engine.project, tables, sync.keys) == 1
    assert sync.delivered() == {(1,): {"id": 1, "v": "a2"}, (2,): {"id": 2, "v": "b"}}  # what was sent
    changes = sync.changes(sync.plan())
    assert [(c.key, c.op, c.row, c.old_row) for c in sorted(changes, key=lambda c: c.key["id"])] == [
        ({"id": 1}, "changed", {"id": 1, "v": "a3"}, {"id": 1, "v": "a2"}),
        ({"id": 2}, "changed", {"id": 2, "v": "b2"}, {"id": 2, "v": "b"}),
    ]


def test_a_run_that_died_before_journaling_replays_nothing(engine) -> None:
    node = engine.table("t", "id integer, v varchar(10)", [(1, "a"), (2, "b")])
    sync = engine.sync(node, "id")
    sync.deliver()
    engine.load(node, [(1, "a2")])
    sync.plan()
    tables = sync.fresh_tables()
    assert state_store.replay(engine.project, tables, sync.keys) == 0
    assert sync.delivered() == {(1,): {"id": 1, "v": "a"}, (2,): {"id": 2, "v": "b"}}
    assert ops_by_key(sync.changes(sync.plan())) == {(1,): "changed", (2,): "removed"}


def test_drop_plan_on_a_first_run_leaves_no_trace(engine) -> None:
    node = engine.table("t", "id integer, v varchar(10)", [(1, "a"), (2, "b")])
    sync = engine.sync(node, "id")
    sync.plan()
    state_store.drop_plan(engine.project, sync.tables)
    assert table_names(engine) == {"_eb_objects", "_eb_layouts"}
    assert objects(engine) == [("_eb_layouts", "layouts", "")]
    tables = sync.fresh_tables()
    assert state_store.read_layout(engine.project, tables) == (None, False)
    assert state_store.pending_replay(engine.project, tables) is False
    plan = sync.plan()
    assert plan.spec.with_state is False and plan.counts == {"added": 2, "changed": 0, "removed": 0}


def test_drop_plan_after_deliveries_keeps_the_state_and_its_layout(engine) -> None:
    node = engine.table("t", "id integer, v varchar(10)", [(1, "a"), (2, "b")])
    sync = engine.sync(node, "id")
    sync.deliver()
    layout_before = state_store.read_layout(engine.project, sync.tables)
    engine.project.execute(f"alter table {node.relation_name} add column w integer")
    engine.load(node, [(1, "a2", 7)])
    sync.plan()  # a plan in a new layout, then the mass-removal guard (or a failure) abandons it
    state_store.drop_plan(engine.project, sync.tables)
    tables = sync.fresh_tables()
    assert state_store.read_layout(engine.project, tables) == layout_before
    assert state_store.pending_replay(engine.project, tables) is False
    assert sync.delivered() == {(1,): {"id": 1, "v": "a"}, (2,): {"id": 2, "v": "b"}}
    assert ops_by_key(sync.changes(sync.plan())) == {(1,): "changed", (2,): "removed"}


def test_reset_forgets_what_was_delivered(engine) -> None:
    node = engine.table("t", "id integer, v varchar(10)", [(1, "a"), (2, "b"), (3, "c")])
    sync = engine.sync(node, "id")
    sync.deliver()
    assert state_store.delivered_count(engine.project, sync.tables) == 3
    assert state_store.reset(engine.project, sync.fresh_tables()) == 3
    tables = sync.fresh_tables()
    assert state_store.delivered_count(engine.project, tables) == 0
    assert state_store.read_layout(engine.project, tables) == (None, True)  # reset, not a first run
    plan = sync.plan()
    assert plan.spec.with_state is False and plan.counts == {"added": 3, "changed": 0, "removed": 0}


# -- the lock -----------------------------------------------------------------------------------

def _locks(engine, sync: str) -> list[tuple]:
    """Who holds the sync's lock: its table's row (none when the table is gone)."""
    engine.project.forget_tables()
    lock = engine.state_table(f"_eb_lock__{sync}")
    if f"_eb_lock__{sync}" not in table_names(engine):
        return []
    return engine.query(f"select owner, host, pid from {lock}")


def _lock_held_by(engine, tables: StateTables, host: str, pid: int, age: int) -> None:
    """The lock as a run of another process holds it (made by the statement a run uses)."""
    engine.project.execute(engine.project.sql.create_lock(tables.lock, f"{host}:{pid}:other", host, pid,
                                                          int(time.time()) - age))
    tables.owned.register(tables.lock, "lock", tables.sync)
    engine.project.forget_tables()


def _tables(engine, name: str = "customers") -> StateTables:
    tables = StateTables.for_sync(engine.project, engine.state_schema, name)
    ensure_schema(engine.project, tables)
    return tables


def test_a_second_run_is_refused_while_the_lock_is_held_and_gets_it_once_released(engine) -> None:
    tables = _tables(engine)
    with SyncLock(engine.project, tables, ttl=600, wait=0) as first:
        assert _locks(engine, "customers") == [(first.owner, socket.gethostname(), os.getpid())]
        with pytest.raises(LockedError) as e, SyncLock(engine.project, tables, ttl=600, wait=0):
            pass
        assert f"another run ({first.owner}) is syncing it right now (last heartbeat " in str(e.value)
        # another sync is not held by it
        with SyncLock(engine.project, _tables(engine, "orders"), ttl=600, wait=0) as other:
            assert _locks(engine, "orders") == [(other.owner, socket.gethostname(), os.getpid())]
    assert _locks(engine, "customers") == []
    with SyncLock(engine.project, tables, ttl=600, wait=0) as second:
        assert _locks(engine, "customers") == [(second.owner, socket.gethostname(), os.getpid())]


def test_a_second_run_waits_for_the_lock_up_to_its_wait(engine) -> None:
    tables = _tables(engine)
    _lock_held_by(engine, tables, "elsewhere", 1, age=0)
    start = time.monotonic()
    with pytest.raises(LockedError), SyncLock(engine.project, tables, ttl=600, wait=1):
        pass
    assert time.monotonic() - start >= 1
    assert [r[0] for r in _locks(engine, "customers")] == ["elsewhere:1:other"]


def test_a_lock_without_heartbeat_for_longer_than_its_ttl_is_taken_over(engine) -> None:
    tables = _tables(engine)
    _lock_held_by(engine, tables, "elsewhere", 1, age=120)
    with pytest.raises(LockedError), SyncLock(engine.project, tables, ttl=600, wait=0):
        pass  # 2 minutes without heartbeat: still held
    with SyncLock(engine.project, tables, ttl=60, wait=0) as lock:
        assert _locks(engine, "customers") == [(lock.owner, socket.gethostname(), os.getpid())]


def test_a_lock_of_a_process_of_this_machine_that_is_gone_is_taken_over_at_once(engine) -> None:
    tables = _tables(engine)
    gone = subprocess.Popen([sys.executable, "-c", ""] if not shutil.which("true") else ["true"])
    gone.wait()
    _lock_held_by(engine, tables, socket.gethostname(), gone.pid, age=0)
    with SyncLock(engine.project, tables, ttl=600, wait=0) as lock:
        assert _locks(engine, "customers") == [(lock.owner, socket.gethostname(), os.getpid())]


def test_a_lock_registered_but_never_created_does_not_hold_the_sync(engine) -> None:
    # A lock is registered before its table is created (so that a run killed in between,
    # where DDL is not transactional, leaves no unlisted table of ours): a listing alone
    # holds nothing.
    tables = _tables(engine)
    tables.owned.register(tables.lock, "lock", tables.sync)
    with SyncLock(engine.project, tables, ttl=600, wait=0) as lock:
        assert _locks(engine, "customers") == [(lock.owner, socket.gethostname(), os.getpid())]
    assert _locks(engine, "customers") == []
    assert [o for o in objects(engine) if o[1] == "lock"] == []


def test_a_lock_named_table_of_someone_else_is_refused_and_left_as_it_was(engine) -> None:
    tables = _tables(engine)
    foreign = engine.make_foreign_table("_eb_lock__customers")
    with pytest.raises(NotOursError) as e, SyncLock(engine.project, tables, ttl=0, wait=0):
        pass
    assert str(e.value).startswith(refusal(foreign))
    assert engine.query(f"select id, note from {foreign}") == [(42, None)]


def test_a_run_whose_lock_was_taken_over_leaves_the_new_holders_lock(engine) -> None:
    tables = _tables(engine)
    with SyncLock(engine.project, tables, ttl=600, wait=0) as slow:
        # slow stops heart-beating; after the ttl another run takes the sync over
        engine.project.execute(f"update {tables.lock} set heartbeat_epoch = {int(time.time()) - 3600}")
        with SyncLock(engine.project, _tables(engine), ttl=60, wait=0) as fast:
            pass_owner = fast.owner
            slow.__exit__(None, None, None)  # slow finishes while fast still holds the sync
            assert _locks(engine, "customers") == [(pass_owner, socket.gethostname(), os.getpid())]
    assert _locks(engine, "customers") == []


def test_the_heartbeat_renews_the_lock(engine) -> None:
    tables = _tables(engine)
    with SyncLock(engine.project, tables, ttl=600, wait=0) as lock:
        engine.project.execute(f"update {tables.lock} set heartbeat_epoch = 5")
        lock._last_beat = 0.0
        lock.heartbeat()
        beat = engine.query(f"select heartbeat_epoch from {tables.lock}")[0][0]
        assert abs(int(beat) - time.time()) < 60
