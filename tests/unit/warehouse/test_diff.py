"""The plan of a model against its delivered state, computed in the warehouse (diff.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from dbt_eventbridge.warehouse import state as state_store
from dbt_eventbridge.warehouse.diff import KeyChangedError

NO_CHANGES = {"added": 0, "changed": 0, "removed": 0}


def by_key(changes: list[Any]) -> dict[tuple, tuple]:
    """key values -> (op, row, old_row, changed_columns): what a template is given per row."""
    out = {}
    for c in changes:
        key = tuple(c.key.values())
        assert key not in out, f"key {key} planned twice"
        out[key] = (c.op, c.row, c.old_row, c.changed_columns)
    return out


def test_a_first_run_plans_every_row_as_added(engine) -> None:
    node = engine.table("customers", "id integer, name varchar(50), age integer",
                        [(1, "Ann", 30), (2, "Bob", None), (3, "Cy", 41)])
    sync = engine.sync(node, "id")
    plan = sync.plan()
    assert plan.spec.with_state is False
    assert plan.counts == {"added": 3, "changed": 0, "removed": 0}
    changes = sync.changes(plan)
    assert sorted(c.seq for c in changes) == [1, 2, 3]
    assert by_key(changes) == {
        (1,): ("added", {"id": 1, "name": "Ann", "age": 30}, None, []),
        (2,): ("added", {"id": 2, "name": "Bob", "age": None}, None, []),
        (3,): ("added", {"id": 3, "name": "Cy", "age": 41}, None, []),
    }


def test_one_query_tells_a_run_with_nothing_to_do_and_sees_every_kind_of_change(engine) -> None:
    rows = [(1, "Ann", 30), (2, "Bob", None), (3, "Cy", 41)]
    node = engine.table("customers", "id integer, name varchar(50), age integer", rows)
    sync = engine.sync(node, "id")
    assert sync.anything_to_do() is None  # nothing delivered yet: the whole plan is made
    sync.deliver()
    assert sync.anything_to_do() is False
    for changed in ([(1, "Ann", 30), (2, "Bob", 25), (3, "Cy", 41)],      # a NULL became a value
                    [(1, "Ann", 30), (2, "Bob", None), (3, "Cy", 41), (4, "Di", 1)],  # added
                    [(1, "Ann", 30), (3, "Cy", 41)],                       # removed
                    [(1, "Ann", 30), (2, "Bob", None), (3, "Cy", None)]):  # a value became NULL
        engine.load(node, changed)
        assert sync.anything_to_do() is True, changed
    engine.load(node, rows)
    assert sync.anything_to_do() is False
    # a row planned but not accepted (not journaled) is still to do at the next run
    engine.load(node, [*rows, (4, "Di", 1)])
    sync.plan()
    sync.commit()
    assert sync.anything_to_do() is True
    sync.deliver()
    assert sync.anything_to_do() is False
    # a schema change needs the whole plan (rows are re-baselined, the layout changes)
    engine.query(f"alter table {node.relation_name} add column note varchar(10)")
    assert sync.anything_to_do() is None


def test_rows_are_added_changed_and_removed_by_key_and_unchanged_rows_plan_nothing(engine) -> None:
    node = engine.table("customers", "id integer, name varchar(50), age integer",
                        [(1, "Ann", 30), (2, "Bob", 25), (3, "Cy", 41), (4, "Di", 52)])
    sync = engine.sync(node, "id")
    sync.deliver()
    plan = sync.plan()  # the model as delivered: nothing to send
    assert plan.counts == NO_CHANGES and sync.changes(plan) == []

    engine.load(node, [(1, "Ann", 30), (2, "Bobby", 25), (4, "Di", 52), (5, "Eve", 19)])
    plan = sync.plan()
    assert plan.spec.with_state is True
    assert plan.counts == {"added": 1, "changed": 1, "removed": 1}
    assert by_key(sync.changes(plan)) == {
        (2,): ("changed", {"id": 2, "name": "Bobby", "age": 25}, {"id": 2, "name": "Bob", "age": 25}, ["name"]),
        (3,): ("removed", {"id": 3, "name": "Cy", "age": 41}, {"id": 3, "name": "Cy", "age": 41}, []),
        (5,): ("added", {"id": 5, "name": "Eve", "age": 19}, None, []),
    }


def test_nulls_are_compared_as_values(engine) -> None:
    node = engine.table("t", "id integer, a varchar(10), b integer", [
        (1, None, 1),     # NULL -> value
        (2, "y", 2),      # value -> NULL
        (3, None, None),  # NULL -> NULL: no change
        (4, "", 4),       # '' -> NULL
        (5, None, 5),     # NULL -> ''
        (6, "z", None),   # NULL -> 0
        (7, "w", 0),      # 0 -> NULL
    ])
    sync = engine.sync(node, "id")
    sync.deliver()
    engine.load(node, [(1, "x", 1), (2, None, 2), (3, None, None), (4, None, 4), (5, "", 5), (6, "z", 0),
                       (7, "w", None)])
    plan = sync.plan()
    assert plan.counts == {"added": 0, "changed": 6, "removed": 0}
    assert by_key(sync.changes(plan)) == {
        (1,): ("changed", {"id": 1, "a": "x", "b": 1}, {"id": 1, "a": None, "b": 1}, ["a"]),
        (2,): ("changed", {"id": 2, "a": None, "b": 2}, {"id": 2, "a": "y", "b": 2}, ["a"]),
        (4,): ("changed", {"id": 4, "a": None, "b": 4}, {"id": 4, "a": "", "b": 4}, ["a"]),
        (5,): ("changed", {"id": 5, "a": "", "b": 5}, {"id": 5, "a": None, "b": 5}, ["a"]),
        (6,): ("changed", {"id": 6, "a": "z", "b": 0}, {"id": 6, "a": "z", "b": None}, ["b"]),
        (7,): ("changed", {"id": 7, "a": "w", "b": None}, {"id": 7, "a": "w", "b": 0}, ["b"]),
    }


def test_composite_keys_match_on_every_key_column(engine) -> None:
    node = engine.table("lines", "k1 varchar(10), k2 varchar(10), v varchar(10)", [
        ("eu", "1", "a"), ("us", "1", "b"), ("eu", "2", "c"),
        ("a", "bc", "x"), ("ab", "c", "y"),  # the same text once the key columns are joined
    ])
    sync = engine.sync(node, ["k1", "k2"])
    sync.deliver()
    engine.load(node, [("eu", "1", "a2"), ("us", "2", "d"), ("eu", "2", "c"), ("a", "bc", "x"), ("ab", "c", "y2")])
    plan = sync.plan()
    assert plan.counts == {"added": 1, "changed": 2, "removed": 1}
    changes = sync.changes(plan)
    assert by_key(changes) == {
        ("eu", "1"): ("changed", {"k1": "eu", "k2": "1", "v": "a2"}, {"k1": "eu", "k2": "1", "v": "a"}, ["v"]),
        ("us", "1"): ("removed", {"k1": "us", "k2": "1", "v": "b"}, {"k1": "us", "k2": "1", "v": "b"}, []),
        ("us", "2"): ("added", {"k1": "us", "k2": "2", "v": "d"}, None, []),
        ("ab", "c"): ("changed", {"k1": "ab", "k2": "c", "v": "y2"}, {"k1": "ab", "k2": "c", "v": "y"}, ["v"]),
    }
    assert [list(c.key) for c in changes] == [["k1", "k2"]] * 4  # keys in primary_key order


def test_duplicate_and_null_keys_are_reported_by_the_audit_and_not_published(engine) -> None:
    node = engine.table("t", "id integer, v varchar(10)",
                        [(1, "a"), (2, "b"), (2, "b2"), (None, "n"), (3, "c"), (4, "d")])
    sync = engine.sync(node, "id")
    plan = sync.plan()
    assert (plan.audit.total_rows, plan.audit.null_key_rows, plan.audit.duplicate_key_rows) == (6, 1, 2)
    assert plan.audit.duplicate_samples == [{"id": 2, "_rows": 2}]
    assert plan.counts == {"added": 3, "changed": 0, "removed": 0}
    assert sorted(c.key["id"] for c in sync.changes(plan)) == [1, 3, 4]
    sync.journal([c.seq for c in sync.changes(plan)])
    sync.commit()

    # Key 1 becomes duplicated: it is neither sent as changed nor as removed; key 2 is
    # unique again and is added; key 3 is gone, key 4 changed.
    engine.load(node, [(1, "a"), (1, "a3"), (2, "b"), (4, "d2"), (None, "m")])
    plan = sync.plan()
    assert (plan.audit.null_key_rows, plan.audit.duplicate_key_rows) == (1, 2)
    assert plan.audit.duplicate_samples == [{"id": 1, "_rows": 2}]
    assert plan.counts == {"added": 1, "changed": 1, "removed": 1}
    assert {k: v[0] for k, v in by_key(sync.changes(plan)).items()} == {(2,): "added", (3,): "removed",
                                                                       (4,): "changed"}


def test_an_audit_of_clean_keys_finds_nothing(engine) -> None:
    node = engine.table("t", "a integer, b varchar(5), v integer", [(1, "x", 1), (1, "y", 2), (2, "x", 3)])
    sync = engine.sync(node, ["a", "b"])
    audit = sync.plan().audit
    assert (audit.total_rows, audit.null_key_rows, audit.duplicate_key_rows, audit.duplicate_samples) == (3, 0, 0, [])


def test_changes_are_read_back_in_seq_ranges_and_batches(engine) -> None:
    node = engine.table("t", "id integer, v varchar(10)", [(i, f"v{i}") for i in range(1, 8)])
    sync = engine.sync(node, "id")
    sync.deliver()
    engine.load(node, [(1, "v1"), (2, "new"), (3, "v3"), (5, "v5"), (6, "six"), (7, "v7"), (8, "v8"), (9, "v9")])
    plan = sync.plan()
    assert plan.counts == {"added": 2, "changed": 2, "removed": 1}
    everything = sync.changes(plan)
    assert [c.seq for c in everything] == [1, 2, 3, 4, 5]

    first = sync.changes(plan, seq_range=(0, 2))
    rest = sync.changes(plan, seq_range=(2, 5))
    assert [c.seq for c in first] == [1, 2] and [c.seq for c in rest] == [3, 4, 5]
    assert by_key(first + rest) == by_key(everything)
    assert sync.changes(plan, seq_range=(5, 10)) == []

    only = sync.changes(plan, ["changed", "removed"])
    assert {k: v[0] for k, v in by_key(only).items()} == {(2,): "changed", (6,): "changed", (4,): "removed"}
    assert by_key(only)[(6,)][2:] == ({"id": 6, "v": "v6"}, ["v"])


def test_without_old_rows_a_removed_row_still_carries_the_delivered_values(engine) -> None:
    node = engine.table("t", "id integer, v varchar(10)", [(1, "a"), (2, "b")])
    sync = engine.sync(node, "id")
    sync.deliver()
    engine.load(node, [(1, "a2")])
    plan = sync.plan()
    changes = by_key(sync.changes(plan, old_rows=False))
    assert changes[(2,)][:2] == ("removed", {"id": 2, "v": "b"})
    assert changes[(1,)][:2] == ("changed", {"id": 1, "v": "a2"})


def test_removed_and_old_rows_carry_the_delivered_values_in_their_types(engine) -> None:
    node = engine.table("t", "id integer, amount decimal(12,2), day date, seen timestamp, flag boolean", [
        (1, Decimal("12.50"), dt.date(2024, 2, 29), dt.datetime(2024, 3, 1, 12, 30, 5), True),
        (2, Decimal("-0.01"), dt.date(1999, 12, 31), dt.datetime(2000, 1, 1, 0, 0, 0), False),
    ])
    sync = engine.sync(node, "id")
    sync.deliver()
    engine.load(node, [(1, Decimal("12.50"), dt.date(2024, 2, 29), dt.datetime(2024, 3, 1, 12, 30, 5), False)])
    changes = by_key(sync.changes(sync.plan()))
    assert changes == {
        (1,): ("changed",
               {"id": 1, "amount": Decimal("12.50"), "day": dt.date(2024, 2, 29),
                "seen": dt.datetime(2024, 3, 1, 12, 30, 5), "flag": False},
               {"id": 1, "amount": Decimal("12.50"), "day": dt.date(2024, 2, 29),
                "seen": dt.datetime(2024, 3, 1, 12, 30, 5), "flag": True},
               ["flag"]),
        (2,): ("removed",
               {"id": 2, "amount": Decimal("-0.01"), "day": dt.date(1999, 12, 31),
                "seen": dt.datetime(2000, 1, 1), "flag": False},
               {"id": 2, "amount": Decimal("-0.01"), "day": dt.date(1999, 12, 31),
                "seen": dt.datetime(2000, 1, 1), "flag": False},
               []),
    }
    assert type(changes[(2,)][1]["amount"]) is Decimal


@pytest.mark.parametrize("option", [{"ignore_columns": ["seen_at"]}, {"track_columns": ["name"]}])
def test_a_change_only_in_columns_that_are_not_tracked_plans_nothing(engine, option) -> None:
    node = engine.table("t", "id integer, name varchar(10), seen_at integer", [(1, "a", 100), (2, "b", 100)])
    sync = engine.sync(node, "id", **option)
    sync.deliver()
    engine.load(node, [(1, "a", 200), (2, "b2", 200)])
    plan = sync.plan()
    assert plan.counts == {"added": 0, "changed": 1, "removed": 0}
    # The event carries the whole row; the delivered values are those of the last delivery.
    assert by_key(sync.changes(plan)) == {
        (2,): ("changed", {"id": 2, "name": "b2", "seen_at": 200}, {"id": 2, "name": "b", "seen_at": 100},
               ["name", "seen_at"]),
    }


def test_a_full_refresh_plans_every_row_as_added_again(engine) -> None:
    node = engine.table("t", "id integer, v varchar(10)", [(1, "a"), (2, "b"), (3, "c")])
    sync = engine.sync(node, "id")
    sync.deliver()
    engine.load(node, [(1, "a"), (2, "b2")])
    plan = sync.plan(full_refresh=True)
    assert plan.counts == {"added": 2, "changed": 0, "removed": 1}
    assert {k: (op, row) for k, (op, row, _, _) in by_key(sync.changes(plan)).items()} == {
        (1,): ("added", {"id": 1, "v": "a"}),
        (2,): ("added", {"id": 2, "v": "b2"}),
        (3,): ("removed", {"id": 3, "v": "c"}),
    }
    assert by_key(sync.changes(plan))[(3,)][2] == {"id": 3, "v": "c"}


def test_a_full_refresh_gives_added_rows_no_old_row(engine) -> None:
    node = engine.table("t", "id integer, v varchar(10)", [(1, "a"), (2, "b")])
    sync = engine.sync(node, "id")
    sync.deliver()
    engine.load(node, [(1, "a"), (2, "b2")])
    changes = sync.changes(sync.plan(full_refresh=True))
    assert [(c.key, c.op, c.old_row) for c in sorted(changes, key=lambda c: c.key["id"])] == [
        ({"id": 1}, "added", None), ({"id": 2}, "added", None)]


def test_a_new_column_sends_only_rows_whose_tracked_values_changed(engine) -> None:
    node = engine.table("t", "id integer, v varchar(10)", [(1, "a"), (2, "b"), (3, "c")])
    sync = engine.sync(node, "id")
    sync.deliver()
    engine.project.execute(f"alter table {node.relation_name} add column email varchar(20)")
    engine.load(node, [(1, "a", "a@x"), (2, "b2", None), (3, "c", None)])
    plan = sync.plan()
    assert plan.spec.notes == [
        "schema changed since the last delivered run (added email; tracked columns changed): rows whose values "
        "changed in the columns both have are sent as changed, the others re-baselined without sending"]
    # Rows the same on the columns both shapes have are re-baselined: recorded, not sent.
    assert plan.counts == {"added": 0, "changed": 1, "removed": 0, "rebaseline": 2}
    assert by_key(sync.changes(plan)) == {
        (2,): ("changed", {"id": 2, "v": "b2", "email": None}, {"id": 2, "v": "b"}, ["v"]),
    }
    sync.journal(sync.seqs(plan, 2))
    sync.commit()
    assert sync.plan().counts == NO_CHANGES
    assert sync.delivered() == {(1,): {"id": 1, "v": "a"}, (2,): {"id": 2, "v": "b2", "email": None},
                                (3,): {"id": 3, "v": "c"}}


def test_a_changed_primary_key_is_refused_unless_the_state_starts_over(engine) -> None:
    node = engine.table("t", "id integer, region varchar(5), v varchar(10)", [(1, "eu", "a"), (2, "us", "b")])
    engine.sync(node, "id").deliver()
    rekeyed = engine.sync(node, ["id", "region"])
    with pytest.raises(KeyChangedError) as e:
        rekeyed.plan()
    assert "the primary key is now (id, region), but the delivered rows are keyed by (id)" in str(e.value)
    assert not state_store.pending_replay(engine.project, rekeyed.tables)  # no plan was made

    plan = rekeyed.plan(full_refresh=True)  # --full-refresh: the state is rebuilt in the new shape
    assert plan.counts == {"added": 2, "changed": 0, "removed": 0}
    assert by_key(rekeyed.changes(plan)) == {
        (1, "eu"): ("added", {"id": 1, "region": "eu", "v": "a"}, None, []),
        (2, "us"): ("added", {"id": 2, "region": "us", "v": "b"}, None, []),
    }
    rekeyed.journal([c.seq for c in rekeyed.changes(plan)])
    rekeyed.commit()
    assert rekeyed.plan().counts == NO_CHANGES
    assert rekeyed.delivered() == {(1, "eu"): {"id": 1, "region": "eu", "v": "a"},
                                   (2, "us"): {"id": 2, "region": "us", "v": "b"}}


def test_a_models_columns_come_from_its_own_schema_when_another_differs_only_by_case(engine) -> None:
    if engine.kind == "duckdb":
        pytest.skip("DuckDB's schema names are case-insensitive: no two schemas differ only by case")
    # the model's table differs from its alias by case: only a name matched in another case is in its schema
    node = dataclasses.replace(engine.table("Orders", "id integer, amount integer", [(1, 10)]), alias="orders")
    other = engine.project.quote(engine.schema.upper())  # PostgreSQL's listing matches schemas with ilike
    engine.project.execute(f"create schema {other}")
    try:
        engine.project.execute(f"create table {other}.orders (id integer, note text, extra date)")
        assert engine.project.columns(node) == [("id", "integer"), ("amount", "integer")]
    finally:
        engine.project.execute(f"drop schema {other} cascade")


def test_a_schema_spelled_in_another_case_finds_the_models_columns_on_duckdb(engine) -> None:
    if engine.kind != "duckdb":
        pytest.skip("PostgreSQL's quoted schema names are case-sensitive: the spelling is the schema")
    node = engine.table("orders", "id integer, amount integer", [(1, 10)])
    shouted = dataclasses.replace(node, schema=node.schema.upper())  # a profile's `schema: MAIN`
    assert engine.project.columns(shouted) == [("id", "INTEGER"), ("amount", "INTEGER")]
