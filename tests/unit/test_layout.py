"""The state's layout: shapes, physical columns, and how older rows are compared."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from dbt_eventbridge.config.definitions import ColumnResolver
from dbt_eventbridge.config.syncs import near_miss_keys, parse_syncs, parse_time_templates
from dbt_eventbridge.errors import TerminalError
from dbt_eventbridge.jsonvalues import duration, to_json_value
from dbt_eventbridge.warehouse.diff import ModelShape, plan_spec
from dbt_eventbridge.warehouse.layout import Layout, ModelColumns
from tests.unit.test_config import meta


def model(cols: list[tuple[str, str]], keys=("id",), tracked=None, version="duckdb-v1") -> ModelColumns:
    names = [c for c, _ in cols]
    return ModelColumns(tuple(cols), tuple(keys), tuple(sorted(tracked or names)), version)


V1 = [("id", "INTEGER"), ("name", "VARCHAR"), ("age", "INTEGER")]


def test_a_column_keeps_its_physical_column_while_its_name_and_type_stay() -> None:
    a = Layout.fresh(model(V1))
    assert [(c.name, c.index) for c in a.shape.columns] == [("id", 1), ("name", 2), ("age", 3)]
    assert a.evolve(model(V1)) is a  # nothing changed: the same layout
    b = a.evolve(model([("id", "INTEGER"), ("age", "BIGINT"), ("town", "VARCHAR")]))
    assert b.current == 2 and set(b.shapes) == {1, 2}
    # id kept, age retyped (a new column), town new; name is no longer in the current shape
    assert [(c.name, c.index) for c in b.shape.columns] == [("id", 1), ("age", 4), ("town", 5)]
    assert [c.index for c in b.physical()] == [1, 2, 3, 4, 5]


def test_shape_ids_are_never_reused_even_after_shapes_are_forgotten() -> None:
    a = Layout.fresh(model(V1)).evolve(model(V1[:2]))
    kept = a.keeping(set())  # no row has shape 1 any more
    assert set(kept.shapes) == {2}
    c = kept.evolve(model(V1))
    assert c.current == 3
    again = Layout.from_text(c.to_text())
    assert again is not None and again.next_id == 4 and again.current == 3
    assert again.restarted(model(V1)).current == 4


def shape_of(cols: list[tuple[str, str]], keys=("id",), tracked=None) -> ModelShape:
    names = [c for c, _ in cols]
    return ModelShape(names, list(keys), sorted(tracked or names), dict(cols))


def test_older_rows_are_compared_on_the_tracked_columns_both_have() -> None:
    sync, _ = parse_syncs("model.p.m", "m", meta())
    prev = Layout.fresh(model(V1))
    spec = plan_spec(shape_of([("id", "INTEGER"), ("name", "VARCHAR"), ("age", "BIGINT")]), "duckdb-v1", prev,
                     True, start_over=False, sync=sync[0])
    assert spec.with_state and spec.stored_fps == []
    assert spec.shapes == [{"id": 1, "mode": "compare",
                            "pairs": [["age", "_eb_c3", True], ["id", "_eb_c1", False], ["name", "_eb_c2", False]]}]
    assert "type changed age" in spec.notes[0]
    # only an untracked column added: the stored fingerprints still compare
    prev2 = Layout.fresh(model(V1, tracked=["id", "name", "age"]))
    spec2 = plan_spec(shape_of(V1 + [("note", "VARCHAR")], tracked=["id", "name", "age"]), "duckdb-v1", prev2,
                      True, start_over=False, sync=sync[0])
    assert spec2.stored_fps == [1]


def test_a_changed_key_stops_unless_the_run_starts_over() -> None:
    sync, _ = parse_syncs("model.p.m", "m", meta())
    prev = Layout.fresh(model(V1))
    retyped = shape_of([("id", "VARCHAR"), ("name", "VARCHAR"), ("age", "INTEGER")])
    with pytest.raises(TerminalError) as e:
        plan_spec(retyped, "duckdb-v1", prev, True, start_over=False, sync=sync[0])
    assert "type of key column(s) changed (id INTEGER -> VARCHAR)" in str(e.value)
    assert "--full-refresh --sync" in str(e.value)
    spec = plan_spec(retyped, "duckdb-v1", prev, True, start_over=True, sync=sync[0])
    assert spec.restart and not spec.with_state and spec.layout.current == 2


@pytest.mark.parametrize("value, text", [
    (dt.timedelta(days=1, hours=2, minutes=3, seconds=4, microseconds=500000), "P1DT2H3M4.5S"),
    (dt.timedelta(0), "PT0S"), (dt.timedelta(days=30), "P30D"), (dt.timedelta(hours=-6), "-PT6H"),
    (dt.timedelta(microseconds=1), "PT0.000001S")])
def test_intervals_are_iso_8601_durations(value: dt.timedelta, text: str) -> None:
    assert duration(value) == text


@pytest.mark.parametrize("value, json_value", [
    (2 ** 53 - 1, 2 ** 53 - 1), (2 ** 53, "9007199254740992"), (-(2 ** 53), "-9007199254740992"),
    (Decimal("12345678901234.50"), 12345678901234.5), (Decimal("1234567890123456.7"), "1234567890123456.7"),
    (Decimal("1E+20"), "100000000000000000000"), (float("nan"), "NaN"), (float("-inf"), "-Infinity"),
    ({1: "a", (2, 3): "b"}, {"1": "a", "[2,3]": "b"})])
def test_numbers_a_double_cannot_hold_are_strings(value, json_value) -> None:
    assert to_json_value(value) == json_value


def test_names_resolve_exactly_or_case_insensitively_when_unambiguous() -> None:
    r = ColumnResolver(["Customer_ID", "email", "Email"])
    assert r.find("customer_id") == "Customer_ID"
    assert r.find("email") == "email" and r.find("Email") == "Email"
    assert r.find("EMAIL") is None and r.ambiguous("EMAIL")
    assert "differ only in case" in r.why_not("EMAIL")
    assert r.find("nope") is None and not r.ambiguous("nope")


def test_near_miss_meta_keys_and_parse_time_templates_are_found() -> None:
    probs = near_miss_keys({"event_bridge": {}, "EventBridge": {}, "eventbrige": {}, "owner": "x"}, "m", "f.yml")
    assert [p.path for p in probs] == ["f.yml: m.config.meta.event_bridge", "f.yml: m.config.meta.EventBridge",
                                       "f.yml: m.config.meta.eventbrige"]
    raw = {"detail_type": "Thing{{ op }}", "source": "com.{{ var('env') }}",
           "detail": {"template": "{% raw %}{{ row.x }}{% endraw %}"}, "resources": ["{{ row.id }}"]}
    found = parse_time_templates(raw, "m", None)
    assert sorted(p.path for p in found) == ["m.config.meta.eventbridge.detail_type",
                                             "m.config.meta.eventbridge.resources[0]"]
