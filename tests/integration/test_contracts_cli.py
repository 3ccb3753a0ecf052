"""Event contracts through the real CLI on DuckDB: derived from a dbt contract, checked on
every row, written and registered in a (local) Schema Registry, and compared on a branch;
and a keyed preview of one row's event against the real run's output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools.schemas_endpoint import LocalSchemaRegistry
from tests.integration.harness import Project, add_model, dbt

ORDERS = """
{{ config(materialized='view') }}
select cast(order_id as integer) as order_id, cast(status as varchar) as status,
       cast(amount as decimal(10, 2)) as amount,
       cast(case when order_id = 2 and {{ var('bad_email', false) }} then null else email end as varchar) as email
from (values (1, 'open', 10.50, 'a@x.com'), (2, 'paid', 20.00, 'b@x.com')) as t(order_id, status, amount, email)
"""
COLUMNS = [{"name": "order_id", "data_type": "integer", "constraints": [{"type": "not_null"}]},
           {"name": "status", "data_type": "varchar"},
           {"name": "amount", "data_type": "decimal(10,2)"},
           {"name": "email", "data_type": "varchar", "constraints": [{"type": "not_null"}]}]
SYNC = {"primary_key": "order_id", "source": "com.acme.orders", "detail_type": "OrderChanged",
        "triggers": {"added": {}, "changed": {}, "removed": {"detail_type": "OrderRemoved"}}}
NAME = "com.acme.orders@OrderChanged"


@pytest.fixture
def project(tmp_path: Path, local_aws: Any) -> Project:
    return Project(tmp_path, "duckdb", local_aws)


@pytest.fixture
def registry() -> Iterator[LocalSchemaRegistry]:
    with LocalSchemaRegistry(credentials=None) as r:  # the harness's dummy AWS keys
        yield r


def orders(project: Project, sql: str = ORDERS, columns: list[dict[str, Any]] = COLUMNS) -> None:
    add_model(project, "orders", sql, SYNC, columns=columns)
    yml = project.dir / "models" / "extra" / "orders.yml"
    doc = yaml.safe_load(yml.read_text())
    doc["models"][0]["config"]["contract"] = {"enforced": True}
    yml.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_a_row_that_breaks_the_models_contract_is_rejected_then_delivered_once_fixed(project: Project) -> None:
    """A view's contract is not enforced by the warehouse (dbt checks its columns, not its
    not_null constraints): a NULL email reaches the model, and its event is held back."""
    orders(project)
    dbt(project, "run", "-s", "orders", vars_={"bad_email": True})
    r = project.sync("sync", "-s", "orders")
    assert r.rc == 1, r.stderr
    [rej] = r.sync("orders")["rejections"]
    assert rej["key"] == {"order_id": 2} and rej["code"] == "SchemaViolation"
    assert "detail.email is null, but the contract says string (email: varchar not null (dbt contract))" \
        in rej["reason"]
    [event] = project.drain()["default"]
    assert event["detail"] == {"order_id": 1, "status": "open", "amount": 10.5, "email": "a@x.com"}

    dbt(project, "run", "-s", "orders")
    r = project.sync("sync", "-s", "orders")
    assert r.rc == 0, r.stderr
    [event] = project.drain()["default"]
    assert event["detail"] == {"order_id": 2, "status": "paid", "amount": 20.0, "email": "b@x.com"}

    # the check can be turned off: the row is then sent as it is
    dbt(project, "run", "-s", "orders", vars_={"bad_email": True})
    r = project.sync("sync", "-s", "orders", extra_env={"DBT_EVENTBRIDGE_VALIDATE_EVENTS": "false"})
    assert r.rc == 0, r.stderr
    assert [e["detail"]["email"] for e in project.drain()["default"]] == [None]


def test_schemas_are_written_registered_and_compared_on_a_branch(project: Project,
                                                                  registry: LocalSchemaRegistry) -> None:
    orders(project)
    env = {"DBT_EVENTBRIDGE_SCHEMA_REGISTRY": "orders-events",
           "DBT_EVENTBRIDGE_SCHEMAS_ENDPOINT_URL": registry.endpoint_url}
    # The contract is enforced: no build is needed to know the events' shape (a pull request's CI).
    r = project.sync("schemas", "-s", "orders")
    assert r.rc == 0, r.stderr
    doc = json.loads((project.dir / "target" / "eventbridge_schemas" / f"{NAME}.json").read_text())
    assert doc["$schema"] == "http://json-schema.org/draft-04/schema#"
    assert doc["properties"]["source"]["enum"] == ["com.acme.orders"]
    detail = doc["properties"]["detail"]
    assert {k: v["type"] for k, v in detail["properties"].items()} == {
        "order_id": "integer", "status": ["string", "null"], "amount": ["number", "null"], "email": "string"}
    assert detail["required"] == ["order_id", "email"] and detail["additionalProperties"] is False
    # a removed row carries the columns it was delivered with: only its key is promised
    removed = json.loads((project.dir / "target" / "eventbridge_schemas" / "com.acme.orders@OrderRemoved.json")
                         .read_text())["properties"]["detail"]
    assert removed["required"] == ["order_id"] and "additionalProperties" not in removed

    r = project.sync("schemas", "-s", "orders", "--register")
    assert r.rc == 2 and "no Schema Registry is configured" in r.stderr and "schema_registry" in r.stderr
    r = project.sync("schemas", "-s", "orders", "--register", extra_env=env)
    assert r.rc == 0, r.stderr
    assert f"{NAME}: created, version 1" in r.stdout
    assert json.loads(registry.content("orders-events", NAME))["properties"]["detail"] == detail
    r = project.sync("schemas", "-s", "orders", "--register", extra_env=env)
    assert f"{NAME}: unchanged, version 1" in r.stdout
    assert [v.version for v in registry.versions("orders-events", NAME)] == ["1"]

    # A branch drops a column and adds a required one: both break consumers.
    branch = [c for c in COLUMNS if c["name"] != "status"] + \
             [{"name": "tier", "data_type": "integer", "constraints": [{"type": "not_null"}]}]
    orders(project, ORDERS.replace("cast(status as varchar) as status", "cast(1 as integer) as tier"), branch)
    r = project.sync("validate", "-s", "orders", "--against-registry", extra_env=env)
    assert r.rc == 1, r.stdout + r.stderr
    assert f"breaking change to the event contract {NAME} (against registry orders-events, version 1): " \
           "detail.status: removed" in r.stderr
    assert "detail.tier: added as required (never null)" in r.stderr
    assert "orders" in r.stderr and "Keep the field and its type" in r.stderr
    r = project.sync("validate", "-s", "orders", "--against-schemas", "target/eventbridge_schemas")
    assert r.rc == 1 and "detail.status: removed" in r.stderr
    r = project.sync("validate", "-s", "orders", "--against-schemas", "target/no_such_folder")
    assert r.rc == 2 and "--against-schemas target/no_such_folder: no such folder" in r.stderr

    # Another branch only adds a nullable column: a note, and validate passes.
    orders(project, ORDERS.replace("as email\n", "as email, cast(null as varchar) as note\n"),
           [*COLUMNS, {"name": "note", "data_type": "varchar"}])
    r = project.sync("validate", "-s", "orders", "--against-registry", extra_env=env)
    assert r.rc == 0, r.stdout + r.stderr
    assert f"note: {NAME}: detail.note: added" in r.stdout
    r = project.sync("schemas", "-s", "orders", "--register", extra_env=env)
    assert f"{NAME}: updated, version 2" in r.stdout
    assert [v.version for v in registry.versions("orders-events", NAME)] == ["1", "2"]


def test_a_model_without_contract_or_relation_cannot_be_typed(project: Project) -> None:
    add_model(project, "loose", "select 1 as id", {"primary_key": "id", "source": "s", "detail_type": "T"})
    r = project.sync("schemas", "-s", "loose")
    assert r.rc == 1
    assert "the relation" in r.stderr and "does not exist, and the model has no enforced contract" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_keyed_preview_renders_exactly_what_the_real_run_sends(project: Project) -> None:
    project.build(day=1)
    assert project.sync("sync", "-s", "customers").rc == 0
    project.drain()
    project.build(day=2)
    out = project.dir / "preview.jsonl"
    r = project.sync("sync", "--sync", "customers_to_crm", "-s", "customers", "--dry-run", "--output", str(out),
                     "--key", "4", "--key", "3", "--key", "customer_id=6", "--key", "1", "--key", "999")
    assert r.rc == 0, r.stderr
    # only the keys asked for were planned (key 2 changed too)
    assert r.sync("customers_to_crm")["planned"] == {"added": 1, "changed": 1, "removed": 1}
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    by_key = {x["key"]["customer_id"]: x for x in lines}
    assert sorted(by_key) == [3, 4, 6]
    assert by_key[4]["op"] == "changed" and by_key[4]["old_row"]["age"] is None
    assert {"age", "email_address", "updated_at"} <= set(by_key[4]["changed_columns"])
    assert by_key[3]["op"] == "removed" and by_key[6]["op"] == "added"
    assert "changed key {\"customer_id\": 4}" in r.stdout and "changed columns: " in r.stdout
    assert 'key {"customer_id":1}: no change to send: the model\'s row is as delivered' in r.stderr
    assert 'key {"customer_id":999}: no row of the model has it' in r.stderr
    assert project.drain()["crm-events"] == []  # nothing sent

    r = project.sync("sync", "--sync", "customers_to_crm", "-s", "customers")
    assert r.rc == 0, r.stderr
    sent = {json.loads(e["resources"][0].rsplit("/", 1)[1]): e for e in project.drain()["crm-events"]}
    assert sorted(sent) == [2, 3, 4, 6]  # the preview left the state as it was
    for k, line in by_key.items():
        assert json.loads(line["entry"]["Detail"]) == sent[k]["detail"]
        assert line["entry"]["DetailType"] == sent[k]["detail-type"]
        assert line["event_id"]  # the real run's events carry the same id in the history

    # Nothing left to send: each key still says why it makes no entry.
    r = project.sync("sync", "--sync", "customers_to_crm", "-s", "customers", "--dry-run", "--key", "4",
                     "--key", "999")
    assert r.rc == 0, r.stderr
    assert 'key {"customer_id":4}: no change to send: the model\'s row is as delivered' in r.stderr
    assert 'key {"customer_id":999}: no row of the model has it' in r.stderr
    r = project.sync("sync", "--sync", "customers_to_crm", "-s", "customers", "--dry-run", "--key", "abc")
    assert r.rc == 2 and "--key 'abc' is not a value of the key (customer_id INTEGER)" in r.stderr


def test_a_key_needs_a_dry_run_and_one_sync(project: Project) -> None:
    project.build(day=1)
    r = project.sync("sync", "--key", "1")
    assert r.rc == 2 and "--key goes with --dry-run" in r.stderr
    r = project.sync("sync", "--dry-run", "--key", "1", "-s", "customers")
    assert r.rc == 2 and "--key names the rows of one sync, but 2 are selected" in r.stderr
    r = project.sync("sync", "--dry-run", "--sync", "order_lines", "-s", "order_lines", "--key", "7")
    assert r.rc == 2 and "ambiguous" in r.stderr and "order_id=..." in r.stderr


def test_event_id_in_detail_is_the_changes_event_id(project: Project) -> None:
    env = {"DBT_EVENTBRIDGE_EVENT_ID_IN_DETAIL": "true"}
    project.build(day=1)
    out = project.dir / "preview.jsonl"
    r = project.sync("sync", "--sync", "customer_profiles", "-s", "customers", "--dry-run", "--output", str(out),
                     "--key", "1", extra_env=env)
    assert r.rc == 0, r.stderr
    [preview] = [json.loads(x) for x in out.read_text().splitlines()]
    assert json.loads(preview["entry"]["Detail"])["event_id"] == preview["event_id"]

    r = project.sync("sync", "--sync", "customer_profiles", "-s", "customers", extra_env=env)
    assert r.rc == 0, r.stderr
    [event] = [e for e in project.drain()["default"] if e["detail"]["customer_first_name"] == "John"]
    assert event["detail"] == {"customer_first_name": "John", "customer_last_name": "Doe",
                               "customer_email": "john@example.com", "event_id": preview["event_id"]}


def test_a_rebaseline_after_a_reset_says_what_it_does(project: Project) -> None:
    project.build(day=1)
    assert project.sync("sync", "-s", "customers").rc == 0
    project.drain()
    assert project.sync("reset", "--sync", "customers_to_crm", "--yes").rc == 0
    r = project.sync("rebaseline", "--sync", "customers_to_crm", "--yes")
    assert r.rc == 0, r.stderr
    assert "re-baselined 5 (recorded without event)" in r.stdout
    assert "every row is sent as added" not in r.stderr + r.stdout
    assert project.drain()["crm-events"] == []
