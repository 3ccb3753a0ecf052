"""The sample project over three days, on DuckDB and on PostgreSQL.

Each step asserts exactly which events reached which bus, as a user reading the
SQS queue behind each bus would check them.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.integration.harness import Project, by_type, canon, details

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def crm(name: str, age: int | None, email: str, phone: str) -> dict[str, Any]:
    """The reference document's template output."""
    return {"name": name, "age": age,
            "contact_info": [{"type": "email", "value": email}, {"type": "phone", "value": phone}]}


JOHN = crm("John Doe", 30, "john@example.com", "+14158675309")
ANA = crm("Ana O'Neil \"the Quote\"", 41, "ana\\backslash@example.com", "+1 555\n0100")
ZOE_1 = crm("Zoë Ünïcødé 日本", 25, "zoe@example.com", "+33 1 23 45 67 89")
ZOE_3 = crm("Zoë Ünïcødé 日本", 26, "zoe@example.com", "+33 1 23 45 67 89")
NULLS_1 = crm("Nora Nulls", None, "", "")
NULLS_2 = crm("Nora Nulls", 52, "nora.nulls@example.com", "")
TEMPLATE_LOOKING = crm("{{ 7*7 }} {% raw %}", 60, "tpl@example.com", "+1 555 0199")
NEW = crm("New Customer", 19, "new@example.com", "+1 555 0142")


def profile(first: str, last: str, email: str | None) -> dict[str, Any]:
    return {"customer_first_name": first, "customer_last_name": last, "customer_email": email}


def order_line(order: str, line: int, sku: str, qty: int, amount: float, cents: int, engine: str,
               **extra: Any) -> dict[str, Any]:
    return {"order_id": order, "line": line, "sku": sku, "quantity": qty, "amount": amount,
            "amount_cents": cents, "currency": "EUR", "environment": engine, **extra}


def without_event_id(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for d in items:
        assert UUID_RE.match(d.pop("event_id")), d
    return items


def as_stored(engine: str, row: dict[str, Any]) -> dict[str, Any]:
    """A row of a sync that sends the model's columns as they are named in the warehouse:
    Snowflake stores an unquoted name upper-case (`1 as id` is the column ID)."""
    return {k.upper(): v for k, v in row.items()} if engine == "snowflake" else row


@pytest.fixture(params=["duckdb", "postgres", "snowflake", "spark"])
def project(request: pytest.FixtureRequest, tmp_path, local_aws) -> Project:
    pg = request.getfixturevalue("postgres") if request.param == "postgres" else None
    port = request.getfixturevalue("snowflake") if request.param == "snowflake" else None
    spark = request.getfixturevalue("spark") if request.param == "spark" else None
    return Project(tmp_path, request.param, local_aws, pg, port, spark_port=spark)


def test_three_days_of_changes(project: Project) -> None:
    engine = project.engine

    # -- day 1: first sync. Backfill everywhere except `accounts` (initial_sync: skip).
    project.build(day=1)
    r = project.sync()
    assert r.rc == 1, r.stdout + r.stderr  # accounts has NULL and duplicated keys: reported, exit 1
    ev = project.drain()
    crm_events = by_type(ev["crm-events"])
    assert set(crm_events) == {"CustomerCreated"}
    assert canon(details(ev["crm-events"])) == canon([JOHN, ANA, ZOE_1, NULLS_1, TEMPLATE_LOOKING])
    john = next(e for e in ev["crm-events"] if e["detail"]["name"] == "John Doe")
    assert john["source"] == "com.acme.crm"
    assert john["resources"] == ["arn:aws:acme:us-east-1:123456789012:customer/1"]
    assert john["time"].startswith("2024-01-01T10:00:00")
    default = ev["default"]
    assert canon(details(default, "CustomerProfile")) == canon([
        profile("John", "Doe", "john@example.com"),
        profile("Ana", "O'Neil \"the Quote\"", "ana\\backslash@example.com"),
        profile("Zoë", "Ünïcødé 日本", "zoe@example.com"),
        profile("Nora", "Nulls", None),
        profile("{{ 7*7 }}", "{% raw %}", "tpl@example.com")])
    assert canon(without_event_id(details(default, "OrderLineAdded"))) == canon([
        order_line("A-1", 1, "SKU-1", 1, 10, 1000, engine),
        order_line("A-1", 2, "SKU-2", 2, 20.5, 2050, engine),
        order_line("B-7", 1, "SKU-3", 1, 99.99, 9999, engine)])
    assert canon(details(default, "WebEvent")) == canon([
        {"type": "page_view", "page": {"path": "/home", "title": "Home"}, "user": 1},
        {"type": "click", "element": "buy", "tags": ["a", "b"], "value": None}])
    assert details(default, "FlakyChanged") == [as_stored(engine, {"id": 1, "status": "steady"})]
    assert details(default, source="com.acme.accounts") == []  # initial_sync: skip
    accounts = r.sync("accounts")
    assert accounts["initial_sync_skipped"] is True
    assert accounts["invalid_keys"]["null_key_rows"] == 1
    assert accounts["invalid_keys"]["duplicate_key_rows"] == 2
    assert accounts["invalid_keys"]["duplicate_samples"] == [{**as_stored(engine, {"account_id": 102}), "_rows": 2}]
    assert accounts["exit_code"] == 1
    assert r.sync("customers_to_crm")["sent"] == {"added": 5, "changed": 0, "removed": 0}
    assert r.sync("customers_to_crm")["exit_code"] == 0
    assert len(ev["crm-events"]) + len(default) == 16

    # -- no change: nothing is sent.
    r = project.sync()
    assert r.rc == 1
    ev = project.drain()
    assert ev == {"crm-events": [], "default": []}
    assert all(sum(s["sent"].values()) == 0 for s in r.results["syncs"])

    # -- day 2: changes, removals, additions.
    project.build(day=2)
    r = project.sync()
    assert r.rc == 1
    ev = project.drain()
    crm_events = by_type(ev["crm-events"])
    assert canon(details(crm_events["CustomerCreated"])) == canon([NEW])
    assert canon(details(crm_events["CustomerUpdated"])) == canon([ANA, NULLS_2])
    # `removed` renders the last delivered values
    assert canon(details(crm_events["CustomerDeleted"])) == canon([ZOE_1])
    default = ev["default"]
    # customer_profiles publishes added and changed only; the removal is recorded silently
    assert canon(details(default, "CustomerProfile")) == canon([
        profile("New", "Customer", "new@example.com"),
        profile("Ana", "O'Neil \"the Quote\"", "ana\\backslash@example.com"),
        profile("Nora", "Nulls", "nora.nulls@example.com")])
    assert r.sync("customer_profiles")["not_triggered"] == 1
    # composite key, template file with old_row and changed_columns
    assert canon(without_event_id(details(default, "OrderLineAdded"))) == canon([
        order_line("B-7", 2, "SKU-4", 5, 5.25, 525, engine)])
    assert canon(without_event_id(details(default, "OrderLineChanged"))) == canon([
        order_line("A-1", 2, "SKU-2", 3, 30.75, 3075, engine,
                   changed_columns=list(as_stored(engine, {"quantity": 0, "amount": 0})),
                   previous_quantity=2)])
    assert canon(without_event_id(details(default, "OrderLineRemoved"))) == canon([
        order_line("B-7", 1, "SKU-3", 1, 99.99, 9999, engine)])
    # one JSON column: objects are sent, anything else is rejected with its key and reason
    assert details(default, "WebEvent") == [
        {"type": "signup", "plan": "pro", "nested": {"deep": {"deeper": [1, 2, 3]}}}]
    web = r.sync("web_events")
    assert web["rejected"] == 2
    (key,) = as_stored(engine, {"event_id": None})  # a rejection names its key's columns as stored
    assert sorted((x["key"][key], x["code"]) for x in web["rejections"]) == [
        ("ev-4", "InvalidDetail"), ("ev-5", "InvalidDetail")]
    assert "not a JSON object" in next(x["reason"] for x in web["rejections"] if x["key"][key] == "ev-4")
    assert "ev-4" in r.stderr and "ev-5" in r.stderr
    # every column with JSON types, after an initial sync that was skipped
    assert details(default, "AccountChanged") == [as_stored(engine, {
        "account_id": 103, "name": "Umbrella", "active": True, "balance": 99999.99, "opened_on": "2023-09-09"})]
    assert details(default, "FlakyChanged") == []

    # -- day 3: a removed customer comes back; rejected rows are retried (and rejected again).
    project.build(day=3)
    r = project.sync()
    ev = project.drain()
    assert canon(details(ev["crm-events"])) == canon([ZOE_3])
    assert by_type(ev["crm-events"]).keys() == {"CustomerCreated"}
    assert canon(details(ev["default"], "CustomerProfile")) == canon([profile("Zoë", "Ünïcødé 日本",
                                                                                "zoe@example.com")])
    assert r.sync("web_events")["rejected"] == 2


def test_failed_model_and_failed_tests_are_not_synced(project: Project) -> None:
    project.build(day=1)
    project.sync()
    project.drain()

    # flaky fails to build on day 2: its stale table must not be synced; the rest is.
    project.build(day=2, expect_rc=1, break_flaky=True)
    r = project.sync()
    flaky = r.sync("flaky")
    assert flaky["status"] == "skipped"
    assert "failed in the last dbt invocation" in flaky["message"]
    assert "SKIPPED flaky" in r.stderr
    assert any("flaky" in w for w in r.results["warnings"])
    ev = project.drain()
    assert details(ev["default"], "FlakyChanged") == []
    assert canon(details(ev["crm-events"], "CustomerCreated")) == canon([NEW])

    # a failing data test on customers under `dbt build`: both of its syncs are held back.
    project.build(day=3, expect_rc=1, fail_customer_test=True)
    r = project.sync()
    assert r.sync("customers_to_crm")["status"] == "skipped"
    assert "tests failed" in r.sync("customers_to_crm")["message"]
    assert r.sync("customer_profiles")["status"] == "skipped"
    ev = project.drain()
    assert ev["crm-events"] == []
    assert details(ev["default"], "CustomerProfile") == []

    # once the build succeeds, the held-back changes are delivered.
    project.build(day=3)
    r = project.sync()
    ev = project.drain()
    assert canon(details(ev["crm-events"])) == canon([ZOE_3])
    assert r.sync("flaky")["status"] == "success"


def test_dry_run_sends_nothing_and_keeps_state(project: Project, tmp_path) -> None:
    project.build(day=1)
    out = tmp_path / "entries.jsonl"
    r = project.sync("sync", "--dry-run", "--output", str(out))
    assert r.rc == 1  # the invalid keys of accounts are still reported
    assert project.drain() == {"crm-events": [], "default": []}
    lines = out.read_text().splitlines()
    assert len(lines) == 16
    assert "sample entry" in r.stdout
    # the state was not touched: the real run sends everything.
    r = project.sync()
    ev = project.drain()
    assert len(ev["crm-events"]) + len(ev["default"]) == 16
