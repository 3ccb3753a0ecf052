"""Rendering planned changes into PutEvents entries: JSON-safe templates, modes, limits, sizes."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbt_eventbridge.config.definitions import SyncConfig
from dbt_eventbridge.config.syncs import parse_syncs
from dbt_eventbridge.delivery.render import Renderer, event_id
from dbt_eventbridge.delivery.templates import RowRejected, environment, make_json_safe, row_columns_used
from dbt_eventbridge.model import Change, Entry, Rejection, entry_size
from tests.support import render_dbt_strings

REPO_ROOT = Path(__file__).resolve().parents[2]
INTEGRATION = REPO_ROOT / "integration_project"

UID = "model.p.customers"
MODEL = "customers"
BASE = "customers.config.meta.eventbridge"
COLUMNS = ["customer_id", "full_name", "age", "email_address", "phone_number", "updated_at"]

REFERENCE_TEMPLATE = ('{"name": "{{row.full_name}}", "age": {{row.age}}, "contact_info": [{"type": "email", '
                      '"value": "{{row.email_address}}"}, {"type": "phone", "value": "{{row.phone_number}}"}]}')
REFERENCE_ROW = {"customer_id": 1, "full_name": "John Doe", "age": 30, "email_address": "",
                 "phone_number": "+14158675309", "updated_at": None}
REFERENCE_EXPECTED = {"name": "John Doe", "age": 30, "contact_info": [{"type": "email", "value": ""},
                                                                      {"type": "phone", "value": "+14158675309"}]}


def sync_of(raw: Any, model: str = MODEL) -> SyncConfig:
    syncs, problems = parse_syncs(f"model.p.{model}", model, raw)
    assert problems == [], [str(p) for p in problems]
    return syncs[0]


def config(**kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"primary_key": "customer_id", "source": "com.acme.crm", "detail_type": "CustomerChanged"}
    out.update(kw)
    return out


def renderer(raw: Any, columns: list[str] | None = None, dbt_context: dict[str, Any] | None = None,
             project_dir: Path = INTEGRATION) -> Renderer:
    return Renderer(sync_of(raw), project_dir=project_dir, dbt_context=dbt_context or {},
                    model_columns=list(columns if columns is not None else COLUMNS))


def change(row: dict[str, Any], op: str = "added", old_row: dict[str, Any] | None = None,
           key: dict[str, Any] | None = None, row_hash: Any = "h1", changed: list[str] | None = None,
           seq: int = 1) -> Change:
    if key is None:
        key = {"customer_id": row.get("customer_id")}
    return Change(seq=seq, op=op, key=key, row=row, old_row=old_row, row_hash=row_hash,
                  changed_columns=changed or [])


def detail_of(entry: Entry) -> Any:
    return json.loads(entry.entry["Detail"])


def render_template(template: str, row: dict[str, Any], **kw: Any) -> Any:
    """Render a detail template for one row and return the parsed detail."""
    r = renderer(config(detail={"template": template}), columns=list(row) or ["customer_id"])
    return detail_of(r.render(change(row, **kw)))


def rejected(r: Renderer, ch: Change) -> RowRejected:
    with pytest.raises(RowRejected) as e:
        r.render(ch)
    return e.value


def dbt_context() -> dict[str, Any]:
    project_vars = {"currency": "EUR", "prefix": "Acme"}
    return {
        "var": lambda name, default=None: project_vars.get(name, default),
        "target": {"name": "dev", "schema": "analytics"},
        "to_cents": lambda amount: round(amount * 100),
        "shout": lambda text: str(text).upper() + "!",
    }



def integration_customers_meta() -> list[dict[str, Any]]:
    doc = yaml.safe_load((INTEGRATION / "models" / "schema.yml").read_text())
    raw = next(m for m in doc["models"] if m["name"] == "customers")["config"]["meta"]["eventbridge"]
    return render_dbt_strings(raw)


# --- The reference document's template --------------------------------------------------------

def test_reference_template_single_line() -> None:
    r = renderer(config(detail={"template": REFERENCE_TEMPLATE}))
    e = r.render(change(REFERENCE_ROW))
    detail = detail_of(e)
    assert detail == REFERENCE_EXPECTED
    assert list(detail) == ["name", "age", "contact_info"]  # order kept
    assert e.entry["Detail"] == json.dumps(REFERENCE_EXPECTED, separators=(",", ":"))
    assert isinstance(detail["age"], int)


def test_reference_template_multi_line_from_the_integration_project() -> None:
    crm = integration_customers_meta()[0]
    template = crm["detail"]["template"]
    assert "\n" in template and '"age": {{row.age}}' in template
    r = Renderer(sync_of(crm), project_dir=INTEGRATION, dbt_context={}, model_columns=COLUMNS)
    for op, detail_type in [("added", "CustomerCreated"), ("changed", "CustomerUpdated"),
                            ("removed", "CustomerDeleted")]:
        e = r.render(change(REFERENCE_ROW, op=op, old_row=REFERENCE_ROW if op != "added" else None))
        assert detail_of(e) == REFERENCE_EXPECTED
        assert e.entry["DetailType"] == detail_type
        assert e.entry["Source"] == "com.acme.crm"
        assert e.entry["EventBusName"] == "crm-events"
        assert e.entry["Resources"] == ["arn:aws:acme:us-east-1:123456789012:customer/1"]
        assert "Time" not in e.entry  # updated_at is NULL


def test_reference_template_with_decimal_age_and_time() -> None:
    crm = integration_customers_meta()[0]
    r = Renderer(sync_of(crm), project_dir=INTEGRATION, dbt_context={}, model_columns=COLUMNS)
    row = dict(REFERENCE_ROW, age=Decimal("30"), updated_at=dt.datetime(2024, 5, 6, 7, 8, 9))
    e = r.render(change(row))
    assert detail_of(e) == REFERENCE_EXPECTED
    assert e.entry["Time"] == dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC)


def test_integration_customer_profiles_column_mapping() -> None:
    profiles = integration_customers_meta()[1]
    cols = ["customer_id", "first_name", "last_name", "email_address"]
    r = Renderer(sync_of(profiles), project_dir=INTEGRATION, dbt_context={}, model_columns=cols)
    row = {"customer_id": 7, "first_name": "Ada", "last_name": "Lovelace", "email_address": None}
    e = r.render(change(row))
    assert e.entry["Detail"] == '{"customer_first_name":"Ada","customer_last_name":"Lovelace","customer_email":null}'
    assert e.entry["EventBusName"] == "default"


def test_integration_order_line_template_file_with_dbt_context() -> None:
    raw = {"primary_key": ["order_id", "line_no"], "source": "com.acme.orders",
           "detail_type": "OrderLine{{ op | capitalize }}",
           "detail": {"template_file": "eventbridge/order_line.json.j2"}}
    cols = ["order_id", "line_no", "sku", "quantity", "amount"]
    sync = sync_of(raw, model="order_lines")
    assert Renderer.check(sync, project_dir=INTEGRATION, dbt_context=dbt_context(), model_columns=cols) == []
    r = Renderer(sync, project_dir=INTEGRATION, dbt_context=dbt_context(), model_columns=cols)
    row = {"order_id": "o-1", "line_no": 2, "sku": 'SKU "7"\n', "quantity": 3, "amount": Decimal("12.50")}
    key = {"order_id": "o-1", "line_no": 2}

    e = r.render(change(row, op="changed", old_row=dict(row, quantity=1), key=key, changed=["quantity"]))
    assert e.entry["DetailType"] == "OrderLineChanged"
    assert detail_of(e) == {
        "order_id": "o-1", "line": 2, "sku": 'SKU "7"\n', "quantity": 3, "amount": 12.5, "amount_cents": 1250,
        "currency": "EUR", "environment": "dev", "changed_columns": ["quantity"], "previous_quantity": 1,
        "event_id": e.event_id}

    e = r.render(change(row, op="added", key=key))
    assert e.entry["DetailType"] == "OrderLineAdded"
    d = detail_of(e)
    assert "changed_columns" not in d and "previous_quantity" not in d
    assert d["event_id"] == e.event_id


# --- JSON safety: values inside string literals --------------------------------------------------

TRICKY_STRINGS = [
    "",
    'He said "hi"',
    "back\\slash",
    "trailing backslash \\",
    "line\nbreak\r\ttab",
    "\x00\x01\x1f\x7f control",
    "unicode é ü 中文 🎉",
    "\u2028\u2029 separators",
    "{{ 7*7 }}",
    "{% raw %}",
    "{% endraw %}{{ row.age }}",
    "{# comment #}",
    '", "injected": true, "x": "',
    "}{",
    "null",
]


@pytest.mark.parametrize("value", TRICKY_STRINGS)
def test_values_inside_string_literals_stay_literal(value: str) -> None:
    d = render_template('{"v": "{{ row.v }}", "n": 1}', {"customer_id": 1, "v": value})
    assert d == {"v": value, "n": 1}


@pytest.mark.parametrize("value", TRICKY_STRINGS)
def test_values_inside_string_literals_with_surrounding_text(value: str) -> None:
    d = render_template('{"v": "<{{ row.v }}>", "w": "{{ row.v }}{{ row.v }}"}', {"customer_id": 1, "v": value})
    assert d == {"v": f"<{value}>", "w": value + value}


@pytest.mark.parametrize("value,text", [
    (30, "30"), (2.5, "2.5"), (True, "true"), (False, "false"), (None, ""), (Decimal("19.99"), "19.99"),
    (Decimal("30"), "30"), (dt.date(2024, 1, 2), "2024-01-02"),
    (dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "2024-01-02T03:04:05+00:00"),
    ({"k": [1, 2]}, '{"k":[1,2]}'), (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
])
def test_non_string_values_inside_string_literals_become_text(value: Any, text: str) -> None:
    assert render_template('{"v": "{{ row.v }}"}', {"customer_id": 1, "v": value}) == {"v": text}


def test_nan_inside_a_string_literal_is_not_python_none() -> None:
    d = render_template('{"v": "{{ row.v }}"}', {"customer_id": 1, "v": float("nan")})
    assert d["v"] in ("", "NaN")


# --- JSON safety: values outside string literals --------------------------------------------------

@pytest.mark.parametrize("value,expected", [
    (30, 30), (-1.25, -1.25), (True, True), (False, False), (None, None), ("30", "30"),
    ("John \"JD\" Doe", "John \"JD\" Doe"), ("{{ 7*7 }}", "{{ 7*7 }}"), (Decimal("12.50"), 12.5),
    (Decimal("100"), 100), (dt.date(2024, 2, 29), "2024-02-29"), ({"a": {"b": None}}, {"a": {"b": None}}),
    ([1, "two", None], [1, "two", None]), (float("inf"), "Infinity"), (Decimal("NaN"), "NaN"),
])
def test_values_outside_string_literals_become_json_values(value: Any, expected: Any) -> None:
    d = render_template('{"v": {{ row.v }}}', {"customer_id": 1, "v": value})
    assert d == {"v": expected}
    assert type(d["v"]) is type(expected)


@pytest.mark.parametrize("value,expected", [
    # More than the decimal context's 28 digits: counted exactly, never rounded into a float.
    (Decimal("99999999999999999999999999999.999999999"), "99999999999999999999999999999.999999999"),
    (Decimal("10000000000000000000.000000001"), "10000000000000000000.000000001"),
    (Decimal("-0.0000000000000000000000000000001234567890123456"),
     "-0.0000000000000000000000000000001234567890123456"),
    (Decimal("123456789012345.6"), "123456789012345.6"),   # 16 digits: a string
    (Decimal("12345678901234.50"), 12345678901234.5),      # 15 significant digits: a number
    (Decimal("0.100000000"), 0.1),
])
def test_decimals_keep_every_digit_in_every_mode(value: Decimal, expected: Any) -> None:
    row = {"customer_id": 1, "v": value}
    assert render_template('{"v": {{ row.v }}}', row) == {"v": expected}
    r = renderer(config(detail={"columns": ["v"]}), columns=list(row))
    assert detail_of(r.render(change(row))) == {"v": expected}
    if isinstance(expected, str):
        assert Decimal(expected) == value


def test_value_outside_quotes_cannot_inject_keys() -> None:
    d = render_template('{"v": {{ row.v }}, "ok": true}', {"customer_id": 1, "v": '1, "admin": true'})
    assert d == {"v": '1, "admin": true', "ok": True}


def test_tojson_gives_raw_json_outside_quotes() -> None:
    d = render_template('{"v": {{ row.v | tojson }}, "cols": {{ changed_columns | tojson }}}',
                        {"customer_id": 1, "v": {"nested": [1, Decimal("2.5"), dt.date(2024, 1, 1)]}},
                        changed=["a", "b"])
    assert d == {"v": {"nested": [1, 2.5, "2024-01-01"]}, "cols": ["a", "b"]}


def test_tojson_inside_quotes_is_a_string() -> None:
    d = render_template('{"v": "{{ row.v | tojson }}"}', {"customer_id": 1, "v": {"a": "x\"y"}})
    assert d == {"v": '{"a": "x\\"y"}'}
    assert json.loads(d["v"]) == {"a": 'x"y'}


def test_fromjson_then_tojson_embeds_a_json_column() -> None:
    d = render_template('{"payload": {{ row.p | fromjson | tojson }}}', {"customer_id": 1, "p": '{"a": [1, 2]}'})
    assert d == {"payload": {"a": [1, 2]}}


def test_value_used_as_an_object_key_outside_quotes_is_quoted() -> None:
    d = render_template('{ {{ row.k }}: 1 }', {"customer_id": 1, "k": 'we"ird'})
    assert d == {'we"ird': 1}


# --- make_json_safe: template syntax around the values ------------------------------------------

def test_whitespace_control_on_expressions() -> None:
    d = render_template('{"a": "x  {{- row.v -}}  y", "b": {{- row.n -}} }', {"customer_id": 1, "v": 'q"', "n": 4})
    assert d == {"a": 'xq"y', "b": 4}


def test_if_blocks_with_whitespace_control() -> None:
    tpl = ('{"id": {{ row.customer_id }},\n'
           '  {%- if row.email %}\n  "email": "{{ row.email }}",\n  {%- else %}\n  "email": null,\n  {%- endif %}\n'
           '  "op": "{{ op }}"\n}')
    assert render_template(tpl, {"customer_id": 1, "email": 'a"b@c'}) == {"id": 1, "email": 'a"b@c', "op": "added"}
    assert render_template(tpl, {"customer_id": 2, "email": None}) == {"id": 2, "email": None, "op": "added"}


def test_for_loop_producing_an_array_of_values() -> None:
    tpl = '{"tags": [{%- for t in row.tags %}{{ t }}{% if not loop.last %}, {% endif %}{%- endfor %}]}'
    d = render_template(tpl, {"customer_id": 1, "tags": [1, "two", None, True, 'q"uote']})
    assert d == {"tags": [1, "two", None, True, 'q"uote']}


def test_for_loop_producing_an_array_of_objects_with_strings() -> None:
    tpl = ('{"contacts": [\n{% for c in row.contacts -%}\n'
           '  {"type": "{{ c.type }}", "value": "{{ c.value }}"}{% if not loop.last %},{% endif %}\n'
           '{% endfor -%}\n]}')
    contacts = [{"type": "email", "value": "a@b"}, {"type": "phone", "value": '+1 "home"'}]
    d = render_template(tpl, {"customer_id": 1, "contacts": contacts})
    assert d == {"contacts": contacts}


def test_for_loop_with_no_items_gives_an_empty_array() -> None:
    tpl = '{"tags": [{% for t in row.tags %}"{{ t }}"{% if not loop.last %},{% endif %}{% endfor %}]}'
    assert render_template(tpl, {"customer_id": 1, "tags": []}) == {"tags": []}


def test_escaped_quotes_in_literal_text_keep_the_string_state() -> None:
    tpl = r'{"a": "say \"{{ row.v }}\" now", "b": {{ row.n }}, "c": "\\", "d": {{ row.n }}}'
    d = render_template(tpl, {"customer_id": 1, "v": 'x"y', "n": 5})
    assert d == {"a": 'say "x"y" now', "b": 5, "c": "\\", "d": 5}


def test_comments_with_quotes_do_not_confuse_the_string_state() -> None:
    tpl = '{# a "quote in a comment #}{"a": {{ row.v }}, {# and "another #}"b": "{{ row.v }}", "c": {{ row.v }}}'
    assert render_template(tpl, {"customer_id": 1, "v": 'x"y'}) == {"a": 'x"y', "b": 'x"y', "c": 'x"y'}


def test_comment_with_whitespace_control_between_members() -> None:
    tpl = '{"a": {{ row.v }},\n  {#- note: a " here is not JSON -#}\n  "b": "{{ row.v }}", "c": {{ row.v }}}'
    assert render_template(tpl, {"customer_id": 1, "v": 'x"'}) == {"a": 'x"', "b": 'x"', "c": 'x"'}


def test_raw_block_text_is_literal_and_tracked_for_quotes() -> None:
    tpl = '{"lit": "{% raw %}{{ not a value }}{% endraw %}", "n": {{ row.n }}}'
    assert render_template(tpl, {"customer_id": 1, "n": 3}) == {"lit": "{{ not a value }}", "n": 3}


def test_set_and_expressions_with_filters_and_conditionals() -> None:
    tpl = ('{% set full = row.first ~ " " ~ row.last %}'
           '{"full": "{{ full | upper }}", "len": {{ full | length }}, "maybe": {{ row.x if row.x else "none" }}}')
    d = render_template(tpl, {"customer_id": 1, "first": 'a"', "last": "b", "x": 0})
    assert d == {"full": 'A" B', "len": 4, "maybe": "none"}


def test_make_json_safe_leaves_string_literals_untouched_and_drops_whitespace_between_tokens() -> None:
    env = environment()
    src = '{\n  "a": "text with \\" and {# c #}  two spaces",\n  "b": [1, 2]\n}'
    out = make_json_safe(src, env)
    assert out == '{"a":"text with \\" and {# c #}  two spaces","b":[1,2]}'
    assert json.loads(out) == json.loads(src)
    out = make_json_safe('{"a": "{{ x }}", "b": {{ x }}}', env)
    assert out.startswith('{"a":"') and out.endswith("}")
    rendered = env.from_string(out).render(x='q"')
    assert json.loads(rendered) == {"a": 'q"', "b": 'q"'}


def test_block_tag_with_whitespace_control_right_after_an_opening_brace() -> None:
    tpl = '{\n  {%- if op == "removed" %}\n  "deleted": true,\n  {%- endif %}\n  "id": {{ row.customer_id }}\n}'
    raw = config(detail={"template": tpl})
    assert Renderer.check(sync_of(raw), project_dir=INTEGRATION, dbt_context={}, model_columns=COLUMNS) == []
    r = renderer(raw)
    assert detail_of(r.render(change({"customer_id": 1}, op="removed"))) == {"deleted": True, "id": 1}
    assert detail_of(r.render(change({"customer_id": 1}, op="added"))) == {"id": 1}


def test_comment_with_whitespace_control_right_after_an_opening_brace() -> None:
    tpl = '{\n  {#- the customer -#}\n  "id": {{ row.customer_id }}\n}'
    assert render_template(tpl, {"customer_id": 1}) == {"id": 1}


# --- Details that are not JSON objects ------------------------------------------------------

def test_rendered_detail_that_is_not_an_object_rejects_only_that_row() -> None:
    r = renderer(config(detail={"template": "{{ row.payload }}"}), columns=["customer_id", "payload"])
    rows = [{"customer_id": 1, "payload": {"ok": True}}, {"customer_id": 2, "payload": [1, 2]},
            {"customer_id": 3, "payload": "text"}, {"customer_id": 4, "payload": None},
            {"customer_id": 5, "payload": {"ok": 5}}]
    rejects: list[tuple[int, str]] = []
    entries = r.render_many([change(row, seq=i) for i, row in enumerate(rows)],
                            lambda ch, err: rejects.append((ch.key["customer_id"], err.code)))
    assert [detail_of(e) for e in entries] == [{"ok": True}, {"ok": 5}]
    assert [e.seq for e in entries] == [0, 4]
    assert rejects == [(2, "InvalidDetail"), (3, "InvalidDetail"), (4, "InvalidDetail")]


def test_rendered_detail_that_is_invalid_json_is_rejected() -> None:
    tpl = '{"tags": [{% for t in row.tags %}{{ t }},{% endfor %}]}'  # trailing comma
    r = renderer(config(detail={"template": tpl}), columns=["customer_id", "tags"])
    err = rejected(r, change({"customer_id": 1, "tags": [1, 2]}))
    assert err.code == "InvalidDetail"
    assert "not valid JSON" in err.reason
    assert detail_of(r.render(change({"customer_id": 1, "tags": []}))) == {"tags": []}


# --- The template context ----------------------------------------------------------------------

def test_template_context_names() -> None:
    tpl = ('{"row": {{ row.customer_id }}, "old": {{ old_row.age }}, "op": "{{ op }}", '
           '"changed": {{ changed_columns | tojson }}, "sync": "{{ sync.name }}", "model": "{{ sync.model }}", '
           '"pk": {{ sync.primary_key | tojson }}, "bus": "{{ sync.event_bus }}", '
           '"event_id": "{{ event_id }}", "key": {{ key | tojson }}}')
    r = renderer(config(name="to_crm", event_bus="crm-events", detail={"template": tpl}))
    row = dict(REFERENCE_ROW, age=31)
    e = r.render(change(row, op="changed", old_row=REFERENCE_ROW, changed=["age"], row_hash="abc"))
    assert detail_of(e) == {"row": 1, "old": 30, "op": "changed", "changed": ["age"], "sync": "to_crm",
                            "model": "customers", "pk": ["customer_id"], "bus": "crm-events",
                            "event_id": e.event_id, "key": {"customer_id": 1}}
    assert e.event_id == event_id("to_crm", "changed", {"customer_id": 1}, "abc")


def test_old_row_attribute_is_null_when_there_is_no_old_row() -> None:
    d = render_template('{"prev": {{ old_row.age }}, "op": "{{ op }}"}', {"customer_id": 1, "age": 3})
    assert d == {"prev": None, "op": "added"}


def test_dbt_context_names_in_detail_and_text_fields() -> None:
    tpl = ('{"currency": "{{ var(\'currency\') }}", "missing": {{ var(\'nope\', 7) }}, '
           '"env": "{{ target.name }}", "cents": {{ to_cents(row.amount) }}, "loud": "{{ shout(row.name) }}"}')
    raw = config(source="com.acme.{{ target.name }}", detail_type="{{ var('prefix') }}{{ op | capitalize }}",
                 detail={"template": tpl}, resources=["urn:{{ target.schema }}:{{ row.customer_id }}"])
    r = renderer(raw, columns=["customer_id", "amount", "name"], dbt_context=dbt_context())
    e = r.render(change({"customer_id": 9, "amount": Decimal("3.07"), "name": 'bo"b'}, op="removed"))
    assert detail_of(e) == {"currency": "EUR", "missing": 7, "env": "dev", "cents": 307, "loud": 'BO"B!'}
    assert e.entry["Source"] == "com.acme.dev"
    assert e.entry["DetailType"] == "AcmeRemoved"
    assert e.entry["Resources"] == ["urn:analytics:9"]


PARITY_TEMPLATE = (
    '{"id": {{ row.customer_id }}, "name": "{{ row.name }}", "item": {{ row["amount"] }}, '
    '"alias": {{ row.customer_ID }}, "prev": {{ old_row.amount }}, "prev_name": "{{ old_row.name }}", '
    '"gone": {{ row.no_such_column }}, "op": "{{ op }}", "cols": {{ changed_columns | tojson }}, '
    '"currency": "{{ var(\'currency\') }}", "env": {{ target.name }}, "sync": "{{ sync.name }}", '
    '"cents": {{ to_cents(row.amount) }}, "loud": "{{ shout(row.name) }}", "sum": {{ row.amount + 1 }}, '
    '"event": "{{ event_id }}", "key": {{ key | tojson }}, "tags": {{ row.tags }}, "when": "{{ row.at }}"}')
PARITY_ROWS = [
    {"customer_id": 1, "name": 'quote " \\ é \n', "amount": Decimal("3.07"), "tags": ["a", 1], "at": None},
    {"customer_id": 2**60, "name": None, "amount": 2.5, "tags": {"x": None}, "at": dt.datetime(2026, 1, 2, 3, 4)},
    {"customer_id": -3, "name": "", "amount": 0, "tags": [], "at": dt.date(2026, 12, 7)},
]


@pytest.mark.parametrize("op", ["added", "changed", "removed"])
def test_templates_without_tags_render_exactly_as_the_whole_jinja_template(op: str) -> None:
    """Templates without tags render piece by piece (column reads, constants once, other
    expressions each compiled alone); a comment sends the same template through Jinja
    whole. Both must give the same bytes, for every kind of expression and value."""
    columns = ["customer_id", "name", "amount", "tags", "at"]

    def render_all(template: str) -> list[str]:
        r = renderer(config(detail={"template": template}), columns=columns, dbt_context=dbt_context())
        return [r.render(change(row, op=op, old_row=PARITY_ROWS[0] if op != "added" else None,
                                changed=["name"] if op == "changed" else None)).entry["Detail"]
                for row in PARITY_ROWS]

    pieces = render_all(PARITY_TEMPLATE)
    whole = render_all(PARITY_TEMPLATE + "{# through Jinja whole #}")
    assert pieces == whole
    first = json.loads(pieces[0])
    assert first["gone"] is None and first["alias"] == 1 and first["cents"] == 307 and first["env"] == "dev"


def test_a_constant_expression_is_rendered_once_and_an_error_in_it_rejects_every_row() -> None:
    reads = []

    class Target:
        @property
        def name(self) -> str:
            reads.append(1)
            return "prod"

    r = renderer(config(detail={"template": '{"env": "{{ target.name }}", "id": {{ row.customer_id }}}'}),
                 dbt_context={**dbt_context(), "target": Target()})
    details = [json.loads(r.render(change({**REFERENCE_ROW, "customer_id": i})).entry["Detail"]) for i in range(3)]
    assert details == [{"env": "prod", "id": i} for i in range(3)]
    assert len(reads) == 1

    def var(name: str) -> str:
        raise KeyError(f"no var {name}")

    bad = renderer(config(detail={"template": '{"v": "{{ var(\'nope\') }}", "id": {{ row.customer_id }}}'}),
                   dbt_context={"var": var})
    for _ in range(2):
        assert rejected(bad, change(REFERENCE_ROW)).code == "TemplateError"


def test_undefined_function_in_a_template_rejects_the_row() -> None:
    r = renderer(config(detail={"template": '{"x": {{ not_in_context(row.age) }}}'}))
    err = rejected(r, change(REFERENCE_ROW))
    assert err.code == "TemplateError"


def test_undefined_name_in_a_text_template_rejects_the_row() -> None:
    r = renderer(config(detail_type="{{ nowhere.name }}"))
    assert rejected(r, change(REFERENCE_ROW)).code == "TemplateError"


@pytest.mark.parametrize("field,template,bad_row", [
    ("detail", '{"ratio": {{ row.a / row.b }}}', {"customer_id": 2, "a": 1, "b": 0}),
    ("detail", '{"p": {{ row.a | fromjson | tojson }}}', {"customer_id": 2, "a": "{not json", "b": 1}),
    ("detail_type", "T{{ row.a + 1 }}", {"customer_id": 2, "a": "x", "b": 1}),
])
def test_runtime_error_in_a_template_rejects_only_that_row(field: str, template: str,
                                                             bad_row: dict[str, Any]) -> None:
    raw = config(detail={"template": template}) if field == "detail" else config(detail_type=template)
    r = renderer(raw, columns=["customer_id", "a", "b"])
    good = {"customer_id": 1, "a": "1" if "fromjson" in template else 1, "b": 1}
    rejects: list[Change] = []
    entries = r.render_many([change(good), change(bad_row)], lambda ch, err: rejects.append(ch))
    assert [e.key for e in entries] == [{"customer_id": 1}]
    assert [ch.key for ch in rejects] == [{"customer_id": 2}]


# --- event_id -----------------------------------------------------------------------------------

def test_event_id_is_deterministic_uuid5() -> None:
    a = event_id("to_crm", "added", {"customer_id": 1}, "h")
    assert a == event_id("to_crm", "added", {"customer_id": 1}, "h")
    assert uuid.UUID(a).version == 5


@pytest.mark.parametrize("other", [
    ("other_sync", "added", {"customer_id": 1}, "h"),
    ("to_crm", "changed", {"customer_id": 1}, "h"),
    ("to_crm", "added", {"customer_id": 2}, "h"),
    ("to_crm", "added", {"customer_id": "1"}, "h"),
    ("to_crm", "added", {"customer_id": 1}, "h2"),
])
def test_event_id_changes_with_each_part(other: tuple[Any, ...]) -> None:
    assert event_id(*other) != event_id("to_crm", "added", {"customer_id": 1}, "h")


def test_event_id_is_stable_across_renderers_and_runs() -> None:
    raw = config(name="to_crm")

    def with_ids() -> Renderer:
        r = renderer(raw)
        r.event_ids = True  # as a dry run asks; otherwise made only when a template uses event_id
        return r

    a = with_ids().render(change(REFERENCE_ROW, row_hash="x1"))
    b = with_ids().render(change(dict(REFERENCE_ROW, full_name="changed in place"), row_hash="x1"))
    c = with_ids().render(change(REFERENCE_ROW, row_hash="x2"))
    assert a.event_id == b.event_id != c.event_id
    assert a.event_id == event_id("to_crm", "added", {"customer_id": 1}, "x1")


def test_event_id_for_a_composite_key_with_warehouse_types() -> None:
    key = {"order_id": uuid.UUID(int=5), "day": dt.date(2024, 1, 1)}
    assert event_id("s", "removed", key, 1) == event_id("s", "removed", dict(key), 1)
    assert event_id("s", "removed", key, 1) != event_id("s", "removed", {**key, "day": dt.date(2024, 1, 2)}, 1)


# --- column mode --------------------------------------------------------------------------------

def _column_renderer() -> Renderer:
    return renderer(config(primary_key="event_id", detail={"column": "payload"}, triggers=["added"]),
                    columns=["event_id", "payload"])


@pytest.mark.parametrize("payload,expected", [
    ('{"page": "/home", "n": 2}', {"page": "/home", "n": 2}),
    (b'{"page": "/b"}', {"page": "/b"}),
    ({"page": "/dict", "at": dt.date(2024, 1, 1), "v": Decimal("1.5")}, {"page": "/dict", "at": "2024-01-01",
                                                                           "v": 1.5}),
    ('{"text": "{{ 7*7 }}"}', {"text": "{{ 7*7 }}"}),
    # every digit kept: a double would have sent 1.0
    ('{"p": 1.00000000000000000001, "q": 2.5, "e": 1.5e-7}', {"p": "1.00000000000000000001", "q": 2.5,
                                                               "e": 1.5e-7}),
])
def test_column_mode_sends_the_json_object_in_the_column(payload: Any, expected: dict[str, Any]) -> None:
    e = _column_renderer().render(change({"event_id": "e1", "payload": payload}, key={"event_id": "e1"}))
    assert detail_of(e) == expected


@pytest.mark.parametrize("payload,needle", [
    ("not json", "does not hold valid JSON"),
    ("[1, 2]", "not a JSON object"),
    ('"text"', "not a JSON object"),
    (None, "NULL"),
    (5, "not a JSON object"),
])
def test_column_mode_rejects_rows_without_a_json_object(payload: Any, needle: str) -> None:
    err = rejected(_column_renderer(), change({"event_id": "e1", "payload": payload}, key={"event_id": "e1"}))
    assert err.code == "InvalidDetail"
    assert needle in err.reason


# --- columns mode -------------------------------------------------------------------------------

def test_default_detail_sends_every_model_column_with_json_types() -> None:
    cols = ["account_id", "name", "balance", "opened_on", "updated_at", "active", "closed_at", "ratio", "id"]
    row = {"account_id": 1, "name": "Zoë", "balance": Decimal("1234.56"), "opened_on": dt.date(2020, 2, 29),
           "updated_at": dt.datetime(2024, 1, 2, 3, 4, 5, 600000, tzinfo=dt.UTC), "active": True,
           "closed_at": None, "ratio": 0.25, "id": uuid.UUID(int=3)}
    r = renderer(config(primary_key="account_id"), columns=cols)
    e = r.render(change(row, key={"account_id": 1}))
    d = detail_of(e)
    assert list(d) == cols
    assert d == {"account_id": 1, "name": "Zoë", "balance": 1234.56, "opened_on": "2020-02-29",
                 "updated_at": "2024-01-02T03:04:05.600000+00:00", "active": True, "closed_at": None,
                 "ratio": 0.25, "id": "00000000-0000-0000-0000-000000000003"}
    assert "Zoë" in e.entry["Detail"]  # unicode kept, not \u-escaped


def test_columns_list_and_mapping() -> None:
    row = dict(REFERENCE_ROW)
    r = renderer(config(detail={"columns": ["full_name", "age"]}))
    assert r.render(change(row)).entry["Detail"] == '{"full_name":"John Doe","age":30}'
    r = renderer(config(detail={"columns": {"email_address": "email", "customer_id": "id"}}))
    assert r.render(change(row)).entry["Detail"] == '{"email":"","id":1}'


def test_trigger_specific_detail() -> None:
    raw = config(triggers={"added": None, "removed": {"detail": {"columns": ["customer_id"]},
                                                      "detail_type": "CustomerDeleted"}})
    r = renderer(raw)
    assert set(detail_of(r.render(change(REFERENCE_ROW)))) == set(COLUMNS)
    e = r.render(change(REFERENCE_ROW, op="removed", old_row=REFERENCE_ROW))
    assert detail_of(e) == {"customer_id": 1}
    assert e.entry["DetailType"] == "CustomerDeleted"


# --- Source, detail-type and resources rendered per row ------------------------------------------

@pytest.mark.parametrize("source_value", ["aws.ec2", "AWS.Custom"])
def test_templated_source_starting_with_aws_is_rejected_per_row(source_value: str) -> None:
    r = renderer(config(source="{{ row.src }}"), columns=["customer_id", "src"])
    rejects: list[Rejection] = []
    entries = r.render_many([change({"customer_id": 1, "src": "com.acme.ok"}),
                             change({"customer_id": 2, "src": source_value})],
                            lambda ch, err: rejects.append(err))
    assert [e.entry["Source"] for e in entries] == ["com.acme.ok"]
    assert len(rejects) == 1 and rejects[0].code == "InvalidArgument"
    assert "aws." in rejects[0].reason


def test_templated_detail_type_over_128_characters_is_rejected_per_row() -> None:
    r = renderer(config(detail_type="{{ row.kind }}"), columns=["customer_id", "kind"])
    assert r.render(change({"customer_id": 1, "kind": "K" * 128})).entry["DetailType"] == "K" * 128
    err = rejected(r, change({"customer_id": 2, "kind": "K" * 129}))
    assert err.code == "InvalidArgument"
    assert "129" in err.reason


@pytest.mark.parametrize("field", ["source", "detail_type"])
def test_text_fields_rendering_empty_are_rejected(field: str) -> None:
    r = renderer(config(**{field: "{{ row.v }}"}), columns=["customer_id", "v"])
    assert rejected(r, change({"customer_id": 1, "v": "   "})).code == "InvalidArgument"


def test_text_fields_are_stripped() -> None:
    r = renderer(config(detail_type="\n  {{ row.kind }}  \n"), columns=["customer_id", "kind"])
    assert r.render(change({"customer_id": 1, "kind": "Big"})).entry["DetailType"] == "Big"


def test_resources_are_templated_and_empty_ones_dropped() -> None:
    raw = config(resources=["arn:aws:acme:us-east-1:123456789012:customer/{{ row.customer_id }}",
                            "{{ row.extra }}", "static-resource"])
    r = renderer(raw, columns=COLUMNS + ["extra"])
    e = r.render(change(dict(REFERENCE_ROW, customer_id=42, extra=""), key={"customer_id": 42}))
    assert e.entry["Resources"] == ["arn:aws:acme:us-east-1:123456789012:customer/42", "static-resource"]
    e = r.render(change(dict(REFERENCE_ROW, extra="arn:x"), key={"customer_id": 1}))
    assert e.entry["Resources"] == ["arn:aws:acme:us-east-1:123456789012:customer/1", "arn:x", "static-resource"]




def test_null_in_a_resource_template_renders_empty_and_is_dropped() -> None:
    r = renderer(config(resources=["{{ row.extra }}", "static"]), columns=COLUMNS + ["extra"])
    e = r.render(change(dict(REFERENCE_ROW, extra=None)))
    assert e.entry["Resources"] == ["static"]


def test_null_detail_type_is_rejected_as_empty() -> None:
    r = renderer(config(detail_type="{{ row.kind }}"), columns=["customer_id", "kind"])
    try:
        entry = r.render(change({"customer_id": 1, "kind": None})).entry
    except RowRejected as e:
        assert e.code == "InvalidArgument"
        return
    raise AssertionError(f"sent with DetailType {entry['DetailType']!r}")


def test_text_fields_use_the_same_text_form_as_json_strings() -> None:
    r = renderer(config(resources=["urn:{{ row.flag }}:{{ row.at }}"]), columns=["customer_id", "flag", "at"])
    e = r.render(change({"customer_id": 1, "flag": True, "at": dt.datetime(2024, 1, 2, 3, 4, 5)}))
    assert e.entry["Resources"] == ["urn:true:2024-01-02T03:04:05"]


def test_no_resources_key_when_none_render() -> None:
    r = renderer(config(resources=["{{ row.extra }}"]), columns=COLUMNS + ["extra"])
    assert "Resources" not in r.render(change(dict(REFERENCE_ROW, extra=""))).entry


def test_resource_over_2048_characters_is_rejected() -> None:
    r = renderer(config(resources=["{{ row.extra }}"]), columns=COLUMNS + ["extra"])
    assert r.render(change(dict(REFERENCE_ROW, extra="r" * 2048))).entry["Resources"] == ["r" * 2048]
    assert rejected(r, change(dict(REFERENCE_ROW, extra="r" * 2049))).code == "InvalidArgument"


# --- Time -------------------------------------------------------------------------------------

@pytest.mark.parametrize("value,expected", [
    (dt.datetime(2024, 1, 2, 3, 4, 5), dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)),
    (dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
     dt.datetime(2024, 1, 2, 1, 4, 5, tzinfo=dt.UTC)),
    (dt.date(2024, 1, 2), dt.datetime(2024, 1, 2, tzinfo=dt.UTC)),
    ("2024-01-02 03:04:05", dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)),
    ("2024-01-02T03:04:05+00:00", dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)),
])
def test_time_column_becomes_the_entry_time(value: Any, expected: dt.datetime) -> None:
    r = renderer(config(time="updated_at"))
    e = r.render(change(dict(REFERENCE_ROW, updated_at=value)))
    assert e.entry["Time"] == expected
    assert e.entry["Time"].tzinfo is not None


def test_null_time_leaves_time_out() -> None:
    e = renderer(config(time="updated_at")).render(change(REFERENCE_ROW))
    assert "Time" not in e.entry


@pytest.mark.parametrize("value", ["yesterday", 12345])
def test_time_that_is_not_a_timestamp_rejects_the_row(value: Any) -> None:
    err = rejected(renderer(config(time="updated_at")), change(dict(REFERENCE_ROW, updated_at=value)))
    assert err.code == "InvalidArgument"


# --- entry_size -------------------------------------------------------------------------------

def test_entry_size_counts_utf8_bytes_of_the_counted_fields() -> None:
    entry = {"Source": "com.acme", "DetailType": "Tÿpe", "Detail": '{"a":"€"}', "EventBusName": "a-long-bus-name",
             "Resources": ["r1", "é"]}
    # 8 + 5 (ÿ is 2 bytes) + 11 (€ is 3 bytes) + 2 + 2; the bus name is not counted
    assert entry_size(entry) == 8 + 5 + 11 + 2 + 2
    assert entry_size({**entry, "Time": dt.datetime(2024, 1, 1, tzinfo=dt.UTC)}) == 28 + 14
    assert entry_size({"Source": "s", "DetailType": "d", "Detail": "{}", "Time": None}) == 4


def test_entry_size_of_rendered_entries() -> None:
    r = renderer(config(time="updated_at", resources=["urn:{{ row.customer_id }}"],
                        detail={"columns": {"full_name": "n"}}))
    row = dict(REFERENCE_ROW, full_name="Jösé", updated_at=dt.datetime(2024, 1, 1))
    e = r.render(change(row))
    assert e.entry["Detail"] == '{"n":"Jösé"}'
    expected = len(b"com.acme.crm") + len(b"CustomerChanged") + len('{"n":"Jösé"}'.encode()) + len(b"urn:1") + 14
    assert e.size == expected == entry_size(e.entry)


# --- Renderer.check -------------------------------------------------------------------------------

def check(raw: Any, columns: list[str] | None = COLUMNS, project_dir: Path = INTEGRATION) -> list[Any]:
    return Renderer.check(sync_of(raw), project_dir=project_dir, dbt_context={}, model_columns=columns)


def test_check_accepts_a_valid_config() -> None:
    raw = config(detail={"template": REFERENCE_TEMPLATE}, detail_type="Customer{{ op | capitalize }}",
                 resources=["urn:{{ row.customer_id }}"], time="updated_at")
    assert check(raw) == []


@pytest.mark.parametrize("raw,path", [
    (config(detail={"template": '{"a": {{ row.age }'}), BASE + ".detail.template"),
    (config(detail={"template": '{% if row.age %}{"a": 1}'}), BASE + ".detail.template"),
    (config(detail_type="Customer{{ op | }}"), BASE + ".detail_type"),
    (config(source="com.{% if %}"), BASE + ".source"),
    (config(resources=["ok", "urn:{{ row.customer_id"]), BASE + ".resources[1]"),
    (config(triggers={"added": {"detail": {"template": "{{ row. }}"}}}), BASE + ".triggers.added.detail.template"),
    (config(triggers={"removed": {"detail_type": "{% endif %}"}}), BASE + ".triggers.removed.detail_type"),
])
def test_check_reports_template_syntax_errors_with_the_yaml_path(raw: dict[str, Any], path: str) -> None:
    problems = check(raw)
    assert len(problems) == 1
    p = problems[0]
    assert p.path == path
    assert p.message.startswith("template syntax error:")
    assert "(line " in p.message
    assert p.model == MODEL and p.sync == MODEL
    assert p.fix and "raw" in p.fix


@pytest.mark.parametrize("raw,path,missing", [
    (config(detail={"template": '{"a": "{{ row.nickname }}", "b": {{ row.age }}}'}), ".detail.template",
     "nickname"),
    (config(detail={"template": '{"a": {{ old_row["loyalty tier"] }}}'}), ".detail.template", "loyalty tier"),
    (config(detail_type="{{ row.kind }}Changed"), ".detail_type", "kind"),
    (config(source="com.acme.{{ row.region }}"), ".source", "region"),
    (config(resources=["urn:{{ row.urn_id }}"]), ".resources[0]", "urn_id"),
    (config(triggers={"changed": {"detail": {"template": '{"x": {{ row.zip }}}'}}}),
     ".triggers.changed.detail.template", "zip"),
])
def test_check_reports_columns_the_model_lacks(raw: dict[str, Any], path: str, missing: str) -> None:
    problems = check(raw)
    assert len(problems) == 1
    p = problems[0]
    assert p.path == BASE + path
    assert f"column(s) {missing} " in p.message
    assert "customer_id" in p.message  # lists the model's columns
    assert p.fix


def test_check_lists_every_missing_column_once_sorted() -> None:
    problems = check(config(detail={"template": '{"a": {{ row.zeta }}, "b": {{ old_row.alpha }}, "c": {{ row.zeta }}}'}))
    assert len(problems) == 1
    assert "column(s) alpha, zeta " in problems[0].message


def test_check_without_model_columns_only_checks_syntax() -> None:
    assert check(config(detail={"template": '{"a": {{ row.nickname }}}'}), columns=None) == []
    assert len(check(config(detail={"template": '{"a": {{ row.nickname }'}), columns=None)) == 1


def test_check_reports_every_problem_of_a_sync() -> None:
    raw = config(detail_type="{{ row.kind }}", resources=["{{ row.r }"], detail={"template": '{"a": {{ row.b }}}'})
    assert sorted(p.path for p in check(raw)) == sorted(
        [BASE + ".detail_type", BASE + ".resources[0]", BASE + ".detail.template"])


def test_check_reports_a_missing_template_file(tmp_path: Path) -> None:
    problems = check(config(detail={"template_file": "eventbridge/nope.json.j2"}), project_dir=tmp_path)
    assert len(problems) == 1
    assert problems[0].path == BASE + ".detail.template_file"
    assert "does not exist" in problems[0].message
    assert problems[0].fix


def test_check_reads_template_files(tmp_path: Path) -> None:
    (tmp_path / "eb").mkdir()
    (tmp_path / "eb" / "c.json.j2").write_text('{"a": "{{ row.full_name }}", "b": {{ row.shoe_size }}}')
    problems = check(config(detail={"template_file": "eb/c.json.j2"}), project_dir=tmp_path)
    assert [(p.path, "shoe_size" in p.message) for p in problems] == [(BASE + ".detail.template_file", True)]
    (tmp_path / "eb" / "c.json.j2").write_text('{"a": "{{ row.full_name }"}')
    problems = check(config(detail={"template_file": "eb/c.json.j2"}), project_dir=tmp_path)
    assert problems[0].message.startswith("template syntax error")


# --- row_columns_used ------------------------------------------------------------------------------

def test_row_columns_used_finds_attribute_and_item_access() -> None:
    src = ('{{ row.a }} {{ row["b c"] }} {{ old_row.d }} {% if row.e %}{{ old_row["f"] }}{% endif %}'
           '{{ key.not_a_column }} {{ sync.name }} {{ row[dynamic] }} {{ other.g }}')
    assert row_columns_used(src) == {"a", "b c", "d", "e", "f"}


def test_row_dict_methods_are_not_columns() -> None:
    tpl = '{"nick": "{{ row.get(\'full_name\', \'\') }}", "n": {{ row.items() | list | length }}}'
    assert check(config(detail={"template": tpl})) == []


# --- check: what can never render is a config error, before any row -------------------------------

@pytest.mark.parametrize("template,needle", [
    ('{"op": "{{ op | nosuchfilter }}"}', "No filter named 'nosuchfilter'"),
    ('{"ok": {{ row.age is nosuchtest }}}', "No test named 'nosuchtest'"),
])
def test_check_compiles_templates_so_unknown_filters_and_tests_are_found(template: str, needle: str) -> None:
    problems = check(config(detail={"template": template}))
    assert [p.path for p in problems] == [BASE + ".detail.template"]
    assert needle in problems[0].message and problems[0].fix


def test_check_reports_names_that_are_neither_template_names_nor_in_dbts_context() -> None:
    raw = config(detail={"template": '{"a": {{ nosuchmacro(op) }}, "c": "{{ var(\'x\') }}", '
                                     '"n": {{ range(2) | list | length }}}'})
    problems = Renderer.check(sync_of(raw), project_dir=INTEGRATION, dbt_context=dbt_context(),
                              model_columns=COLUMNS)
    assert len(problems) == 1
    assert "nosuchmacro" in problems[0].message and "var" not in problems[0].message.split("uses")[1].split(",")[0]
    ok = config(detail={"template": '{"c": "{{ var(\'x\') }}", "t": "{{ target.name }}", "s": "{{ sync.name }}"}'})
    assert Renderer.check(sync_of(ok), project_dir=INTEGRATION, dbt_context=dbt_context(),
                          model_columns=COLUMNS) == []


@pytest.mark.parametrize("template,needle", [
    ('{"a": {{ row.age }},}', "Expecting property name"),                  # a trailing comma
    ('{"a": "{{ row.full_name }}, "b": 1}', "Expecting ',' delimiter"),     # a missing quote
    ('[{{ row.age }}]', "not an object"),
])
def test_check_reports_a_detail_template_that_is_invalid_json_for_every_row(template: str, needle: str) -> None:
    problems = check(config(detail={"template": template}))
    assert [p.path for p in problems] == [BASE + ".detail.template"]
    assert needle in problems[0].message and "JSON" in problems[0].fix


def test_check_leaves_templates_with_tags_to_each_row_and_names_the_template_file(tmp_path: Path) -> None:
    # With tags the JSON depends on the row: checked per row, never refused up front.
    assert check(config(detail={"template": '{"a": 1{% if row.age %}, "b": {{ row.age }}{% endif %}}'})) == []
    (tmp_path / "eb").mkdir()
    (tmp_path / "eb" / "c.json.j2").write_text('{"a": {{ row.age }},}')
    problems = check(config(detail={"template_file": "eb/c.json.j2"}), project_dir=tmp_path)
    assert len(problems) == 1 and "eb/c.json.j2" in problems[0].message
    (tmp_path / "eb" / "c.json.j2").write_text('{"a": "{{ row.full_name }"}')
    problems = check(config(detail={"template_file": "eb/c.json.j2"}), project_dir=tmp_path)
    assert "eb/c.json.j2" in problems[0].message and "raw" not in problems[0].fix
