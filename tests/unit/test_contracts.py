"""Event contracts: schemas derived from a model's columns and templates, the per-row check,
and the comparison that finds breaking changes."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dbt_eventbridge.config.definitions import DetailSpec, SyncConfig, TriggerSpec
from dbt_eventbridge.delivery.contracts import Checker, Column, compare, contracts, detail_of, json_type
from dbt_eventbridge.delivery.render import Renderer
from dbt_eventbridge.delivery.templates import RowRejected, environment
from dbt_eventbridge.jsonvalues import dumps, to_json_value
from dbt_eventbridge.model import Change

ALL = {op: TriggerSpec(op) for op in ("added", "changed", "removed")}
COLS = [Column("id", "integer", nullable=True, declared=True),
        Column("email", "varchar", nullable=False, declared=True),
        Column("amount", "numeric(10,2)", declared=True),
        Column("big", "bigint"),
        Column("seen_at", "timestamp with time zone"),
        Column("tags", "VARCHAR[]"),
        Column("doc", "json")]


def sync(detail: DetailSpec | None = None, **kw: Any) -> SyncConfig:
    base: dict[str, Any] = {"name": "s", "model_unique_id": "model.p.m", "model_name": "m", "primary_key": ("id",),
                            "source": "com.acme", "detail_type": "Thing", "triggers": ALL,
                            "detail": detail or DetailSpec()}
    base.update(kw)
    return SyncConfig(**base)


@pytest.mark.parametrize("data_type,expected", [
    ("INTEGER", "integer"), ("smallint", "integer"), ("BIGINT", ["integer", "string"]),
    ("HUGEINT", ["integer", "string"]), ("NUMBER(38,0)", ["integer", "string"]), ("NUMBER(9,0)", "integer"),
    ("DECIMAL(10,2)", "number"), ("DECIMAL(18,3)", ["number", "string"]), ("numeric", ["number", "string"]),
    ("DOUBLE", ["number", "string"]), ("double precision", ["number", "string"]), ("BOOLEAN", "boolean"),
    ("DATE", "string"), ("TIMESTAMP_NTZ", "string"), ("timestamp without time zone", "string"),
    ("TIMESTAMP_NS", "string"), ("INTERVAL", "string"), ("BLOB", "string"), ("bytea", "string"), ("UUID", "string"),
    ("character varying(20)", "string"), ("TEXT", "string"), ("STRUCT(x INTEGER)", "object"),
    ("MAP(VARCHAR, INTEGER)", "object"), ("INTEGER[]", "array"), ("array<string>", "array"), ("ARRAY", "array"),
])
def test_sql_types_map_to_the_json_our_values_become(data_type: str, expected: Any) -> None:
    assert json_type(data_type).get("type") == expected


@pytest.mark.parametrize("data_type", ["json", "jsonb", "VARIANT", "USER-DEFINED", "money", "geometry_z"])
def test_types_whose_json_is_not_fixed_take_any_value(data_type: str) -> None:
    assert json_type(data_type) == {}


def test_column_types_agree_with_the_values_sent() -> None:
    """The schema of each type accepts what to_json_value makes of a value of that type."""
    values = {"integer": 42, "bigint": 2 ** 60, "numeric(10,2)": Decimal("19.99"),
              "decimal(30,10)": Decimal("12345678901234567890.1234567890"), "double": float("nan"),
              "boolean": True, "date": dt.date(2024, 2, 29), "timestamp": dt.datetime(2024, 1, 2, 3, 4, 5),
              "interval": dt.timedelta(days=1), "blob": b"\x00\xff", "INTEGER[]": [1, 2], "STRUCT(a INT)": {"a": 1}}
    for data_type, value in values.items():
        schema = {"properties": {"x": json_type(data_type)}}
        assert Checker(schema).error(dumps({"x": to_json_value(value)})) is None, data_type


def test_columns_mode_types_every_column_and_requires_the_not_null_ones() -> None:
    removal = {"removed": TriggerSpec("removed", detail_type="ThingRemoved")}
    [added_changed, removed] = contracts(sync(triggers={**ALL, **removal}), COLS, {}, environment(text=False))
    assert added_changed.ops == ("added", "changed") and removed.ops == ("removed",)
    d = added_changed.detail
    assert d["additionalProperties"] is False
    assert list(d["properties"]) == ["id", "email", "amount", "big", "seen_at", "tags", "doc"]
    assert d["required"] == ["id", "email"]  # the key is never null, email is declared not null
    assert d["properties"]["id"]["type"] == "integer"
    assert d["properties"]["amount"]["type"] == ["number", "null"]
    assert d["properties"]["big"]["type"] == ["integer", "string", "null"]
    assert d["properties"]["doc"] == {"description": "doc: json (the relation)"}
    assert "dbt contract" in d["properties"]["email"]["description"]
    # a removed row carries the columns it was delivered with: only the key is promised
    assert removed.detail["required"] == ["id"] and "additionalProperties" not in removed.detail
    assert added_changed.name == "com.acme@Thing" and removed.name == "com.acme@ThingRemoved"


def test_one_event_type_for_every_op_has_a_schema_each_of_them_fits() -> None:
    [c] = contracts(sync(), COLS, {}, environment(text=False))
    assert c.ops == ("added", "changed", "removed")
    assert c.detail["required"] == ["id"] and "additionalProperties" not in c.detail
    assert c.by_op["added"]["required"] == ["id", "email"]


def test_a_column_mapping_names_the_fields_and_event_id_is_added() -> None:
    spec = DetailSpec(columns=(("email", "customer_email"), ("amount", "total")))
    [c] = contracts(sync(spec, triggers={"added": TriggerSpec("added")}), COLS, {}, environment(text=False),
                    event_id_in_detail=True)
    assert list(c.detail["properties"]) == ["customer_email", "total", "event_id"]
    assert c.detail["required"] == ["customer_email", "event_id"]


def test_a_template_skeleton_types_its_fields_from_the_columns() -> None:
    template = ('{"id": {{ row.id }}, "who": {"email": "{{ row.email }}", "amount": {{row["amount"]}}}, '
                '"op": "{{ op }}", "eid": {{ event_id }}, "fixed": 3, "calc": {{ row.id * 2 }}, "list": [1]}')
    spec = DetailSpec(template=template)
    [c] = contracts(sync(spec, triggers={"added": TriggerSpec("added")}), COLS, {"added": template},
                    environment(text=False))
    p = c.detail["properties"]
    assert p["id"]["type"] == "integer"
    assert p["who"]["properties"]["email"] == {"type": "string"}  # inside a string: text
    assert p["who"]["properties"]["amount"]["type"] == ["number", "null"]
    assert p["eid"] == {"type": "string"} and p["fixed"] == {"type": "integer"}
    assert p["calc"] == {} and c.exact is False  # an expression of unknown type
    assert p["list"] == {"type": "array", "items": {"type": "integer"}}
    assert c.detail["required"] == ["id", "who", "op", "eid", "fixed", "calc", "list"]


def test_a_template_with_tags_or_a_templated_detail_type_is_untyped() -> None:
    template = '{% if row.id %}{"id": {{ row.id }}}{% else %}{}{% endif %}'
    [c] = contracts(sync(DetailSpec(template=template), detail_type="Thing{{ op }}",
                         triggers={"added": TriggerSpec("added")}), COLS, {"added": template}, environment(text=False))
    assert c.detail == {"type": "object"} and not c.exact
    assert c.name is None and any("no fixed name" in n for n in c.notes)


def render(s: SyncConfig, row: dict[str, Any], cols: list[Column], **kw: Any) -> str:
    found = contracts(s, cols, {op: s.detail_for(op).template or "" for op in s.triggers
                                if s.detail_for(op).template}, environment(text=False), checked=True,
                      event_id_in_detail=kw.get("event_id_in_detail", False))
    r = Renderer(s, project_dir=Path("."), dbt_context={}, model_columns=[c.name for c in cols], contracts=found,
                 **kw)
    return str(r.render(Change(1, "added", {"id": row["id"]}, row, None, "h", [])).entry["Detail"])


def test_a_row_that_breaks_the_declared_contract_is_rejected_with_the_field() -> None:
    s = sync(triggers={"added": TriggerSpec("added")})
    good = {"id": 1, "email": "a@b", "amount": Decimal("1.50"), "big": 1, "seen_at": None, "tags": [], "doc": None}
    assert json.loads(render(s, good, COLS))["amount"] == 1.5
    with pytest.raises(RowRejected) as e:
        render(s, {**good, "email": None}, COLS)
    assert e.value.code == "SchemaViolation"
    assert "detail.email is null, but the contract says string (email: varchar not null (dbt contract))" \
        in e.value.reason
    with pytest.raises(RowRejected) as e:
        render(s, {**good, "amount": "n/a"}, COLS)
    assert 'detail.amount is string "n/a", but the contract says number or null' in e.value.reason
    # a type read from the relation is not checked (the values are what it is)
    assert json.loads(render(s, {**good, "big": "x"}, COLS))["big"] == "x"


def test_a_template_value_of_the_wrong_type_is_rejected() -> None:
    template = '{"amount": {{ row.amount }}, "n": "{{ row.email }}"}'
    s = sync(DetailSpec(template=template), triggers={"added": TriggerSpec("added")})
    row = {"id": 1, "email": "a", "amount": "free"}
    with pytest.raises(RowRejected) as e:
        render(s, row, COLS)
    assert "detail.amount is string" in e.value.reason


def test_no_checker_when_nothing_is_declared() -> None:
    cols = [Column(c.name, c.data_type) for c in COLS]
    s = sync(triggers={"added": TriggerSpec("added")})
    found = contracts(s, cols, {}, environment(text=False), checked=True)
    r = Renderer(s, project_dir=Path("."), dbt_context={}, model_columns=[c.name for c in cols], contracts=found)
    assert r._checkers == {}


def test_event_id_in_detail_in_the_columns_and_column_modes() -> None:
    s = sync(triggers={"added": TriggerSpec("added")})
    row = {"id": 1, "email": "a", "amount": None, "big": None, "seen_at": None, "tags": None, "doc": None}
    detail = json.loads(render(s, row, COLS, event_id_in_detail=True))
    assert len(detail["event_id"]) == 36 and list(detail)[-1] == "event_id"
    col = sync(DetailSpec(column="doc"), triggers={"added": TriggerSpec("added")})
    assert json.loads(render(col, {**row, "doc": '{"a": 1}'}, COLS, event_id_in_detail=True))["a"] == 1
    with pytest.raises(RowRejected) as e:
        render(col, {**row, "doc": '{"event_id": "mine"}'}, COLS, event_id_in_detail=True)
    assert "already holds an event_id" in e.value.reason


def test_breaking_and_additive_changes() -> None:
    s = sync(triggers={"added": TriggerSpec("added"), "changed": TriggerSpec("changed")})
    old = contracts(s, COLS, {}, environment(text=False))[0]
    cols = [c for c in COLS if c.name != "tags"]                          # removed
    cols = [Column("amount", "varchar", declared=True) if c.name == "amount" else c for c in cols]  # retyped
    cols = [Column("email", "varchar", nullable=True, declared=True) if c.name == "email" else c for c in cols]
    cols += [Column("nickname", "varchar"), Column("tier", "integer", nullable=False, declared=True)]
    new = contracts(s, cols, {}, environment(text=False))[0]
    changes = compare(detail_of(old.content("JSONSchemaDraft4")), new.detail)
    assert sorted(changes.breaking) == sorted([
        "detail.tags: removed",
        "detail.amount: type null/number became null/string",
        "detail.email: type string became null/string",
        "detail.email: no longer required (may now be null)",
        "detail.tier: added as required (never null)"])
    assert changes.additive == ["detail.nickname: added"]
    same = compare(detail_of(old.content("OpenApi3")), old.detail)
    assert same.breaking == [] and same.additive == []


def test_openapi_has_the_layout_of_discovered_schemas() -> None:
    c = contracts(sync(triggers={"added": TriggerSpec("added")}), COLS, {}, environment(text=False))[0]
    doc = json.loads(c.content("OpenApi3"))
    event = doc["components"]["schemas"]["AWSEvent"]
    assert event["x-amazon-events-source"] == "com.acme" and event["x-amazon-events-detail-type"] == "Thing"
    detail = doc["components"]["schemas"][event["properties"]["detail"]["$ref"].rsplit("/", 1)[-1]]
    assert detail["properties"]["amount"] == {"type": "number", "nullable": True,
                                              "description": "amount: numeric(10,2) (dbt contract)"}
    assert detail["properties"]["big"]["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert json.loads(c.content("JSONSchemaDraft4"))["properties"]["source"] == {"type": "string", "enum": ["com.acme"]}


def test_a_bigint_retyped_as_text_breaks_and_a_column_made_not_null_does_not() -> None:
    s = sync(triggers={"added": TriggerSpec("added")})
    old = contracts(s, [Column("id", "integer", declared=True), Column("n", "bigint", declared=True),
                        Column("m", "varchar", declared=True)], {}, environment(text=False))[0]
    new = contracts(s, [Column("id", "integer", declared=True), Column("n", "varchar", declared=True),
                        Column("m", "varchar", nullable=False, declared=True)], {}, environment(text=False))[0]
    changes = compare(old.detail, new.detail)
    assert changes.breaking == ["detail.n: type integer/null/string became null/string"]
    assert sorted(changes.additive) == ["detail.m: now required (never null)",
                                        "detail.m: type null/string became string (never null)"]
