"""The configuration contract: sync definitions from model meta, and project-wide settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from dbt_eventbridge.config.definitions import DEFAULT_BUS, DetailSpec, SyncConfig
from dbt_eventbridge.config.settings import Settings
from dbt_eventbridge.config.syncs import check_unique_names, parse_syncs
from dbt_eventbridge.errors import ConfigError, Problem
from tests.support import render_dbt_strings

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_YML = REPO_ROOT / "integration_project" / "models" / "schema.yml"

UID = "model.p.customers"
MODEL = "customers"
BASE = "customers.config.meta.eventbridge"
MINIMAL: dict[str, Any] = {"primary_key": "customer_id", "source": "com.acme.crm", "detail_type": "CustomerChanged"}


def meta(**overrides: Any) -> dict[str, Any]:
    """The minimal valid sync, with some keys replaced (a value of ... removes the key)."""
    out = dict(MINIMAL)
    for k, v in overrides.items():
        if v is ...:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def parse_one(raw: Any, **kw: Any) -> SyncConfig:
    syncs, problems = parse_syncs(UID, MODEL, raw, **kw)
    assert problems == [], [str(p) for p in problems]
    assert len(syncs) == 1
    return syncs[0]


def problems_of(raw: Any, **kw: Any) -> list[Problem]:
    syncs, problems = parse_syncs(UID, MODEL, raw, **kw)
    assert problems, "expected at least one problem"
    assert syncs == [], "a sync with problems must not be returned"
    return problems


def only_problem(raw: Any, **kw: Any) -> Problem:
    problems = problems_of(raw, **kw)
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]



def integration_meta() -> dict[str, Any]:
    doc = yaml.safe_load(SCHEMA_YML.read_text())
    return {m["name"]: render_dbt_strings(m["config"]["meta"]["eventbridge"]) for m in doc["models"]
            if "eventbridge" in (m.get("config") or {}).get("meta", {})}


# --- The integration project's definitions ------------------------------------------------------

def test_integration_project_syncs_parse_without_problems() -> None:
    metas = integration_meta()
    all_syncs: list[SyncConfig] = []
    for model, raw in metas.items():
        syncs, problems = parse_syncs(f"model.eventbridge_integration.{model}", model, raw,
                                      file="models/schema.yml")
        assert problems == [], [str(p) for p in problems]
        all_syncs += syncs
    assert {s.name for s in all_syncs} >= {
        "customers_to_crm", "customer_profiles", "order_lines", "web_events", "accounts", "flaky"}
    assert check_unique_names(all_syncs) == []


def test_integration_customers_to_crm_is_parsed_faithfully() -> None:
    syncs, problems = parse_syncs("model.eventbridge_integration.customers", "customers",
                                  integration_meta()["customers"])
    assert problems == []
    crm, profiles = syncs
    assert crm.name == "customers_to_crm"
    assert crm.primary_key == ("customer_id",)
    assert crm.event_bus == "crm-events"
    assert crm.source == "com.acme.crm"
    assert set(crm.triggers) == {"added", "changed", "removed"}
    assert [crm.detail_type_for(op) for op in ("added", "changed", "removed")] == \
        ["CustomerCreated", "CustomerUpdated", "CustomerDeleted"]
    assert all(crm.source_for(op) == "com.acme.crm" for op in ("added", "changed", "removed"))
    assert crm.detail.mode == "template"
    assert '"age": {{row.age}}' in crm.detail.template
    assert crm.resources == ("arn:aws:acme:us-east-1:123456789012:customer/{{ row.customer_id }}",)
    assert crm.time == "updated_at"
    assert crm.yaml_path == "customers.config.meta.eventbridge[0]"

    assert profiles.name == "customer_profiles"
    assert set(profiles.triggers) == {"added", "changed"}
    assert profiles.event_bus == DEFAULT_BUS
    assert profiles.detail.columns == (("first_name", "customer_first_name"), ("last_name", "customer_last_name"),
                                       ("email_address", "customer_email"))
    assert profiles.yaml_path == "customers.config.meta.eventbridge[1]"


def test_integration_single_mapping_syncs_take_the_model_name() -> None:
    metas = integration_meta()
    order_lines = parse_syncs("model.x.order_lines", "order_lines", metas["order_lines"])[0][0]
    assert order_lines.name == "order_lines"
    assert order_lines.primary_key == ("order_id", "line_no")
    assert order_lines.detail == DetailSpec(template_file="eventbridge/order_line.json.j2")
    assert order_lines.detail_type == "OrderLine{{ op | capitalize }}"
    web = parse_syncs("model.x.web_events", "web_events", metas["web_events"])[0][0]
    assert web.detail.mode == "column" and web.detail.column == "payload"
    assert set(web.triggers) == {"added"}
    accounts = parse_syncs("model.x.accounts", "accounts", metas["accounts"])[0][0]
    assert accounts.initial_sync == "skip"
    assert accounts.detail.mode == "columns" and accounts.detail.columns is None


# --- Defaults ---------------------------------------------------------------------------------

def test_minimal_sync_defaults() -> None:
    s = parse_one(meta())
    assert s.name == "customers"
    assert s.model_unique_id == UID
    assert s.model_name == MODEL
    assert s.primary_key == ("customer_id",)
    assert s.event_bus == "default"
    assert set(s.triggers) == {"added", "changed", "removed"}
    assert all(t.source is None and t.detail_type is None and t.detail is None for t in s.triggers.values())
    assert s.detail.mode == "columns" and s.detail.columns is None  # every column
    assert s.initial_sync == "backfill"
    assert s.resources == ()
    assert s.time is None
    assert s.enabled is True
    assert s.track_columns is None
    assert s.ignore_columns == ()
    assert s.yaml_path == BASE


def test_a_list_of_one_sync_defaults_its_name_to_the_model() -> None:
    s = parse_one([meta()])
    assert s.name == "customers"
    assert s.yaml_path == BASE + "[0]"


def test_several_syncs_without_names_each_get_a_problem() -> None:
    problems = problems_of([meta(), meta()])
    assert [p.path for p in problems] == [BASE + "[0].name", BASE + "[1].name"]
    assert all("name" in p.message for p in problems)
    assert all(p.fix for p in problems)


def test_several_named_syncs_parse_in_order() -> None:
    syncs, problems = parse_syncs(UID, MODEL, [meta(name="a_one"), meta(name="b_two", source="com.acme.other")])
    assert problems == []
    assert [(s.name, s.source, s.yaml_path) for s in syncs] == [
        ("a_one", "com.acme.crm", BASE + "[0]"), ("b_two", "com.acme.other", BASE + "[1]")]


def test_one_bad_sync_in_a_list_does_not_drop_the_good_one() -> None:
    syncs, problems = parse_syncs(UID, MODEL, [meta(name="good"), meta(name="bad", source=...)])
    assert [s.name for s in syncs] == ["good"]
    assert len(problems) == 1
    assert problems[0].sync == "bad"
    assert problems[0].path == BASE + "[1].source"


@pytest.mark.parametrize("value", [None, "customers", 3, [], ["not a mapping"]])
def test_meta_must_be_a_mapping_or_a_list_of_mappings(value: Any) -> None:
    p = problems_of(value)[0]
    assert p.model == MODEL
    assert "mapping" in p.message
    assert p.path.startswith(BASE)


# --- name ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["customers_v2", "_private", "A", "x" * 63])
def test_valid_names(name: str) -> None:
    assert parse_one(meta(name=name)).name == name


@pytest.mark.parametrize("name", ["to-crm", "has space", "2fast", "x" * 64, "", "naïve", 5])
def test_invalid_names(name: Any) -> None:
    p = only_problem(meta(name=name))
    assert p.path == BASE + ".name"
    assert "letters, digits and underscores" in p.message


# --- primary_key ------------------------------------------------------------------------------

def test_primary_key_single_column_and_list() -> None:
    assert parse_one(meta(primary_key="id")).primary_key == ("id",)
    assert parse_one(meta(primary_key=["order_id", "line_no"])).primary_key == ("order_id", "line_no")


def test_primary_key_is_required() -> None:
    p = only_problem(meta(primary_key=...))
    assert p.path == BASE + ".primary_key"
    assert "required" in p.message
    assert p.fix and "primary_key" in p.fix


@pytest.mark.parametrize("value", [[], [1], ["a", ""], 7, {"a": 1}, None])
def test_primary_key_must_name_columns(value: Any) -> None:
    p = only_problem(meta(primary_key=value))
    assert p.path == BASE + ".primary_key"


# --- event_bus ------------------------------------------------------------------------------

@pytest.mark.parametrize("bus", ["crm-events", "default", "a/b.c_d-e",
                                 "arn:aws:events:us-east-1:123456789012:event-bus/crm-events",
                                 "arn:aws-us-gov:events:us-gov-west-1:123456789012:event-bus/x"])
def test_event_bus_name_or_arn(bus: str) -> None:
    assert parse_one(meta(event_bus=bus)).event_bus == bus


@pytest.mark.parametrize("bus", ["crm events", "", "x" * 257, 12,
                                 "arn:aws:events:us-east-1:1234:event-bus/crm",  # short account id
                                 "arn:aws:sqs:us-east-1:123456789012:queue"])
def test_event_bus_rejects_other_values(bus: Any) -> None:
    p = only_problem(meta(event_bus=bus))
    assert p.path == BASE + ".event_bus"
    assert "neither an event bus name nor an event bus ARN" in p.message
    assert "arn:aws:events:" in p.fix


# --- source ---------------------------------------------------------------------------------

def test_source_is_required() -> None:
    p = only_problem(meta(source=...))
    assert p.path == BASE + ".source"
    assert p.message == "'source' is required (for trigger(s) added, changed, removed, which have no source of their own)"
    assert p.fix


@pytest.mark.parametrize("source", ["aws.ec2", "AWS.custom", "  aws.x"])
def test_source_must_not_start_with_aws(source: str) -> None:
    p = only_problem(meta(source=source))
    assert p.path == BASE + ".source"
    assert "aws." in p.message and "reserve" in p.message
    assert p.fix


def test_source_containing_aws_later_is_fine() -> None:
    assert parse_one(meta(source="com.aws.thing")).source == "com.aws.thing"
    assert parse_one(meta(source="awsome.app")).source == "awsome.app"


def test_trigger_source_override_must_not_start_with_aws() -> None:
    p = only_problem(meta(triggers={"removed": {"source": "aws.deleted"}}))
    assert p.path == BASE + ".triggers.removed.source"


# --- detail_type --------------------------------------------------------------------------

def test_detail_type_is_required() -> None:
    p = only_problem(meta(detail_type=...))
    assert p.path == BASE + ".detail_type"
    assert "required" in p.message


@pytest.mark.parametrize("value", ["", "   ", 5, ["a"]])
def test_detail_type_must_be_a_non_empty_string(value: Any) -> None:
    p = only_problem(meta(detail_type=value))
    assert p.path == BASE + ".detail_type"
    assert "non-empty string" in p.message


def test_detail_type_length_limit_is_128() -> None:
    assert parse_one(meta(detail_type="D" * 128)).detail_type == "D" * 128
    p = only_problem(meta(detail_type="D" * 129))
    assert p.path == BASE + ".detail_type"
    assert "129" in p.message and "128" in p.message
    assert p.fix


def test_templated_detail_type_is_checked_when_rendered_not_when_parsed() -> None:
    long_template = "{{ row.kind }}" + "x" * 130
    assert parse_one(meta(detail_type=long_template)).detail_type == long_template


def test_trigger_detail_type_override_length_limit() -> None:
    p = only_problem(meta(triggers={"added": {"detail_type": "C" * 129}}))
    assert p.path == BASE + ".triggers.added.detail_type"


def test_detail_type_templated_with_block_tags_only_is_not_length_checked_at_parse() -> None:
    dt = ("{% if op == 'added' %}com.acme.crm.CustomerCreatedEvent{% elif op == 'changed' %}"
          "com.acme.crm.CustomerUpdatedEvent{% else %}com.acme.crm.CustomerDeletedEvent{% endif %}")
    assert len(dt) > 128  # every rendering is at most 33 characters
    _syncs, problems = parse_syncs(UID, MODEL, meta(detail_type=dt))
    assert problems == [], [str(p) for p in problems]


# --- triggers -------------------------------------------------------------------------------

def test_triggers_as_a_list() -> None:
    s = parse_one(meta(triggers=["added", "changed"]))
    assert set(s.triggers) == {"added", "changed"}
    assert s.trigger("removed") is None


def test_triggers_as_a_single_string() -> None:
    assert set(parse_one(meta(triggers="removed")).triggers) == {"removed"}


def test_triggers_mapping_overrides() -> None:
    s = parse_one(meta(triggers={
        "added": {"detail_type": "CustomerCreated"},
        "changed": None,
        "removed": {"source": "com.acme.gdpr", "detail": {"columns": ["customer_id"]}},
    }))
    assert set(s.triggers) == {"added", "changed", "removed"}
    assert s.detail_type_for("added") == "CustomerCreated"
    assert s.detail_type_for("changed") == "CustomerChanged"
    assert s.detail_type_for("removed") == "CustomerChanged"
    assert s.source_for("added") == "com.acme.crm"
    assert s.source_for("removed") == "com.acme.gdpr"
    assert s.detail_for("added") == DetailSpec()
    assert s.detail_for("removed") == DetailSpec(columns=(("customer_id", "customer_id"),))


def test_triggers_mapping_true_and_false() -> None:
    s = parse_one(meta(triggers={"added": True, "changed": {}, "removed": False}))
    assert set(s.triggers) == {"added", "changed"}


def test_unknown_trigger_in_a_list_suggests_the_closest() -> None:
    p = only_problem(meta(triggers=["added", "delted"]))
    assert p.path == BASE + ".triggers[1]"
    assert "delted" in p.message
    assert p.fix == "Valid keys are: added, changed, removed."
    p = only_problem(meta(triggers=["addded"]))
    assert p.fix == "Did you mean 'added'?"


def test_unknown_trigger_in_a_mapping_suggests_the_closest() -> None:
    p = only_problem(meta(triggers={"chnged": {"detail_type": "X"}}))
    assert p.path == BASE + ".triggers.chnged"
    assert p.fix == "Did you mean 'changed'?"


def test_unknown_key_in_a_trigger_override_suggests_the_closest() -> None:
    p = only_problem(meta(triggers={"added": {"detailtype": "X"}}))
    assert p.path == BASE + ".triggers.added.detailtype"
    assert p.message == "unknown key 'detailtype'"
    assert p.fix == "Did you mean 'detail_type'?"


@pytest.mark.parametrize("value", [5, True])
def test_triggers_must_be_a_list_or_mapping(value: Any) -> None:
    p = only_problem(meta(triggers=value))
    assert p.path == BASE + ".triggers"


def test_trigger_override_must_be_a_mapping() -> None:
    p = only_problem(meta(triggers={"added": "CustomerCreated"}))
    assert p.path == BASE + ".triggers.added"


def test_trigger_detail_override_is_validated() -> None:
    p = only_problem(meta(triggers={"added": {"detail": {"column": "a", "columns": ["b"]}}}))
    assert p.path == BASE + ".triggers.added.detail"
    assert "exactly one" in p.message


# --- detail ---------------------------------------------------------------------------------

def test_detail_template() -> None:
    d = parse_one(meta(detail={"template": '{"id": {{ row.customer_id }}}'})).detail
    assert d == DetailSpec(template='{"id": {{ row.customer_id }}}')
    assert d.mode == "template"


def test_detail_template_file() -> None:
    d = parse_one(meta(detail={"template_file": "eventbridge/c.json.j2"})).detail
    assert d.template_file == "eventbridge/c.json.j2"
    assert d.mode == "template"


def test_detail_column() -> None:
    d = parse_one(meta(detail={"column": "payload"})).detail
    assert d.column == "payload" and d.mode == "column"


def test_detail_columns_list() -> None:
    d = parse_one(meta(detail={"columns": ["customer_id", "email"]})).detail
    assert d.mode == "columns"
    assert d.columns == (("customer_id", "customer_id"), ("email", "email"))


def test_detail_columns_mapping_keeps_order_and_renames() -> None:
    d = parse_one(meta(detail={"columns": {"last_name": "surname", "first_name": "given_name"}})).detail
    assert d.columns == (("last_name", "surname"), ("first_name", "given_name"))


@pytest.mark.parametrize("detail", [
    {},
    {"template": "{}", "column": "payload"},
    {"template": "{}", "template_file": "x.j2"},
])
def test_detail_needs_exactly_one_mode(detail: dict[str, Any]) -> None:
    p = only_problem(meta(detail=detail))
    assert p.path == BASE + ".detail"
    assert "exactly one of template, template_file, column, columns" in p.message
    assert p.fix


def test_detail_unknown_key_suggests_the_closest() -> None:
    problems = problems_of(meta(detail={"colums": ["a"]}))
    unknown = [p for p in problems if p.path == BASE + ".detail.colums"]
    assert len(unknown) == 1
    assert unknown[0].fix == "Did you mean 'columns'?"


@pytest.mark.parametrize("columns", [[], {}, [1], {"a": 1}, "customer_id"])
def test_detail_columns_must_be_a_list_or_a_mapping_of_names(columns: Any) -> None:
    p = only_problem(meta(detail={"columns": columns}))
    assert p.path == BASE + ".detail.columns"


def test_detail_must_be_a_mapping() -> None:
    p = only_problem(meta(detail="payload"))
    assert p.path == BASE + ".detail"
    assert p.fix


@pytest.mark.parametrize("key", ["template", "template_file", "column"])
def test_detail_string_modes_must_be_non_empty(key: str) -> None:
    p = only_problem(meta(detail={key: ""}))
    assert p.path == f"{BASE}.detail.{key}"


# --- initial_sync, resources, time, enabled, track/ignore ------------------------------------

def test_initial_sync_values() -> None:
    assert parse_one(meta(initial_sync="skip")).initial_sync == "skip"
    assert parse_one(meta(initial_sync="backfill")).initial_sync == "backfill"


def test_initial_sync_typo_suggests() -> None:
    p = only_problem(meta(initial_sync="backfil"))
    assert p.path == BASE + ".initial_sync"
    assert p.fix == "Did you mean 'backfill'?"


def test_resources_list_or_single_string() -> None:
    arn = "arn:aws:acme:us-east-1:123456789012:customer/{{ row.customer_id }}"
    assert parse_one(meta(resources=[arn, "static"])).resources == (arn, "static")
    assert parse_one(meta(resources=arn)).resources == (arn,)


@pytest.mark.parametrize("value", [[1], [""], {"a": "b"}, 3])
def test_resources_must_be_strings(value: Any) -> None:
    p = only_problem(meta(resources=value))
    assert p.path == BASE + ".resources"


def test_time_column() -> None:
    assert parse_one(meta(time="updated_at")).time == "updated_at"
    p = only_problem(meta(time=5))
    assert p.path == BASE + ".time"


def test_enabled() -> None:
    assert parse_one(meta(enabled=False)).enabled is False
    p = only_problem(meta(enabled="yes"))
    assert p.path == BASE + ".enabled"


def test_track_and_ignore_columns() -> None:
    s = parse_one(meta(track_columns=["email", "name"]))
    assert s.track_columns == ("email", "name") and s.ignore_columns == ()
    s = parse_one(meta(ignore_columns="loaded_at"))
    assert s.ignore_columns == ("loaded_at",) and s.track_columns is None


def test_track_and_ignore_columns_are_exclusive() -> None:
    p = only_problem(meta(track_columns=["email"], ignore_columns=["loaded_at"]))
    assert p.path == BASE + ".ignore_columns"
    assert "not both" in p.message


def test_named_columns_gathers_every_column_the_config_names() -> None:
    s = parse_one(meta(primary_key=["customer_id", "region"], time="updated_at", ignore_columns=["loaded_at"],
                       detail={"columns": {"email_address": "email"}},
                       triggers={"added": None, "removed": {"detail": {"column": "tombstone"}}}))
    assert set(s.named_columns()) == {"customer_id", "region", "updated_at", "loaded_at", "email_address", "tombstone"}
    # each with the YAML key that names it, for error messages
    assert s.named_columns()["tombstone"] == "triggers.removed.detail.column"
    assert s.named_columns()["email_address"] == "detail.columns"
    assert s.named_columns()["updated_at"] == "time"
    # template details name no columns (they are checked by the renderer)
    t = parse_one(meta(detail={"template": '{"x": "{{ row.email }}"}'}))
    assert set(t.named_columns()) == {"customer_id"}


# --- Unknown keys and problem reporting -----------------------------------------------------

@pytest.mark.parametrize("typo,expected", [
    ("primay_key", "primary_key"), ("eventbus", "event_bus"), ("detail_typ", "detail_type"),
    ("trigers", "triggers"), ("resource", "resources"), ("initial_synch", "initial_sync"),
    ("ignore_column", "ignore_columns"), ("enable", "enabled"),
])
def test_unknown_sync_key_suggests_the_closest_valid_key(typo: str, expected: str) -> None:
    raw = meta(**{typo: "x"})
    problems = problems_of(raw)
    unknown = [p for p in problems if p.message == f"unknown key '{typo}'"]
    assert len(unknown) == 1
    assert unknown[0].fix == f"Did you mean '{expected}'?"
    assert unknown[0].path == f"{BASE}.{typo}"
    assert unknown[0].model == MODEL and unknown[0].sync == MODEL


def test_unknown_key_far_from_any_lists_the_valid_keys() -> None:
    p = only_problem(meta(zzzqqq=1))
    assert p.fix.startswith("Valid keys are: ")
    for key in ("primary_key", "event_bus", "detail_type", "track_columns"):
        assert key in p.fix


def test_every_problem_is_collected_at_once() -> None:
    raw = meta(source="aws.nope", detail_type="D" * 200, event_bus="bad bus", initial_sync="never",
               enabled="no", primay_key="x")
    paths = sorted(p.path for p in problems_of(raw))
    assert paths == sorted(f"{BASE}.{k}" for k in
                           ("source", "detail_type", "event_bus", "initial_sync", "enabled", "primay_key"))


def test_problems_carry_model_sync_file_and_path() -> None:
    p = only_problem([meta(name="to_crm", source=...)], file="models/schema.yml")
    assert p.model == MODEL
    assert p.sync == "to_crm"
    assert p.path == "models/schema.yml: customers.config.meta.eventbridge[0].source"
    text = str(p)
    assert "model 'customers'" in text and "sync 'to_crm'" in text
    assert "(at models/schema.yml: customers.config.meta.eventbridge[0].source)" in text


@pytest.mark.parametrize("raw", [
    meta(primary_key=...),
    meta(source=...),
    meta(source="aws.x"),
    meta(detail_type="D" * 129),
    meta(event_bus="no spaces allowed"),
    meta(initial_sync="later"),
    meta(detail={"template": "{}", "column": "x"}),
    meta(name="bad-name"),
    meta(colour="blue"),
    pytest.param(meta(enabled="yes")),
    pytest.param(meta(detail_type="")),
    pytest.param(meta(track_columns=["a"], ignore_columns=["b"])),
    pytest.param(meta(resources=[1])),
    pytest.param(meta(primary_key=[])),
    pytest.param(meta(triggers=5)),
])
def test_every_problem_carries_a_fix(raw: dict[str, Any]) -> None:
    for p in problems_of(raw):
        assert p.model == MODEL
        assert p.path and p.path.startswith(BASE)
        assert p.fix, f"no fix for: {p}"


def test_suggestion_reads_as_a_question_when_printed() -> None:
    p = only_problem(meta(primay_key="x"))
    assert str(p).endswith("Did you mean 'primary_key'?")


# --- check_unique_names -----------------------------------------------------------------------

def _sync(model: str, name: str | None = None) -> SyncConfig:
    raw = meta(name=name) if name else meta()
    syncs, problems = parse_syncs(f"model.p.{model}", model, raw)
    assert problems == []
    return syncs[0]


def test_unique_names_pass() -> None:
    assert check_unique_names([_sync("customers"), _sync("orders"), _sync("orders_v2", "orders_copy")]) == []


def test_duplicate_names_across_models_are_reported_on_every_one() -> None:
    # None of them may run: which one would own the state table would depend on manifest order.
    a, b = _sync("customers", "shared"), _sync("orders", "shared")
    problems = check_unique_names([a, b])
    assert [(p.model, p.sync) for p in problems] == [("customers", "shared"), ("orders", "shared")]
    p = problems[1]
    assert p.path == "orders.config.meta.eventbridge.name"
    assert "'customers'" in p.message and "'orders'" in problems[0].message
    assert p.fix and "unique" in p.fix


def test_duplicate_names_differing_only_in_case_collide() -> None:
    assert len(check_unique_names([_sync("customers", "Shared"), _sync("orders", "shared")])) == 2
    problems = check_unique_names([_sync("customers", "shared"), _sync("orders", "SHARED")])
    assert [(p.model, p.sync) for p in problems] == [("customers", "shared"), ("orders", "SHARED")]
    assert check_unique_names([_sync("customers", "one"), _sync("orders", "two")]) == []


def test_three_way_duplicate_gives_three_problems() -> None:
    problems = check_unique_names([_sync("a", "s"), _sync("b", "s"), _sync("c", "s")])
    assert [p.model for p in problems] == ["a", "b", "c"]
    assert "'b', 'c'" in problems[0].message


# --- Settings ---------------------------------------------------------------------------------

def test_settings_defaults() -> None:
    s = Settings.load(None, env={})
    assert s == Settings()
    assert s.max_request_bytes == 1_048_575
    assert s.state_schema == "eventbridge_state"


def test_settings_from_vars() -> None:
    s = Settings.load({"region": "eu-west-1", "concurrency": 3, "state_schema": "eb"}, env={})
    assert (s.region, s.concurrency, s.state_schema) == ("eu-west-1", 3, "eb")


def test_env_overrides_vars_and_overrides_override_env() -> None:
    vars_ = {"region": "eu-west-1", "concurrency": 3, "batch_size": 10}
    env = {"DBT_EVENTBRIDGE_REGION": "us-east-1", "DBT_EVENTBRIDGE_CONCURRENCY": "5"}
    s = Settings.load(vars_, env=env)
    assert (s.region, s.concurrency, s.batch_size) == ("us-east-1", 5, 10)
    s = Settings.load(vars_, env=env, overrides={"region": "ap-south-1", "concurrency": None})
    assert (s.region, s.concurrency, s.batch_size) == ("ap-south-1", 5, 10)


def test_empty_env_value_does_not_override() -> None:
    s = Settings.load({"region": "eu-west-1"}, env={"DBT_EVENTBRIDGE_REGION": ""})
    assert s.region == "eu-west-1"


def test_env_ints_are_converted() -> None:
    s = Settings.load({}, env={"DBT_EVENTBRIDGE_MAX_REQUEST_BYTES": "262143",
                               "DBT_EVENTBRIDGE_ROLE_DURATION_SECONDS": "900"})
    assert s.max_request_bytes == 262143 and s.role_duration_seconds == 900


def test_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBT_EVENTBRIDGE_BATCH_SIZE", "77")
    assert Settings.load({}).batch_size == 77


@pytest.mark.parametrize("value", ["abc", "0", "-3", 0, -1, "1.5", None, [1]])
def test_int_settings_must_be_positive_whole_numbers(value: Any) -> None:
    with pytest.raises(ConfigError) as e:
        Settings.load({"concurrency": value}, env={})
    assert len(e.value.problems) == 1
    assert "'concurrency' must be a positive whole number" in e.value.problems[0].message


def test_invalid_env_int_is_reported_with_the_env_name() -> None:
    with pytest.raises(ConfigError) as e:
        Settings.load({}, env={"DBT_EVENTBRIDGE_MAX_ATTEMPTS": "many"})
    assert "DBT_EVENTBRIDGE_MAX_ATTEMPTS" in e.value.problems[0].path


@pytest.mark.parametrize("value", [2.5, True])
def test_int_settings_reject_fractions_and_booleans(value: Any) -> None:
    try:
        Settings.load({"concurrency": value}, env={})
    except ConfigError:
        return
    raise AssertionError(f"concurrency={value!r} was accepted")


def test_unknown_setting_suggests_the_closest() -> None:
    with pytest.raises(ConfigError) as e:
        Settings.load({"concurency": 3, "regoin": "eu-west-1"}, env={})
    problems = e.value.problems
    assert [p.path for p in problems] == ["dbt_project.yml: vars.eventbridge.concurency",
                                          "dbt_project.yml: vars.eventbridge.regoin"]
    assert [p.fix for p in problems] == ["Did you mean 'concurrency'?", "Did you mean 'region'?"]


def test_vars_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError) as e:
        Settings.load(["region"], env={})
    assert "mapping" in e.value.problems[0].message


def test_string_settings_must_be_strings() -> None:
    with pytest.raises(ConfigError) as e:
        Settings.load({"region": 5}, env={})
    assert "'region' must be a string" in e.value.problems[0].message


def test_max_request_bytes_cannot_exceed_the_eventbridge_limit() -> None:
    assert Settings.load({"max_request_bytes": 1_048_575}, env={}).max_request_bytes == 1_048_575
    with pytest.raises(ConfigError) as e:
        Settings.load({"max_request_bytes": 1_048_576}, env={})
    assert e.value.problems[0].fix


@pytest.mark.parametrize("schema", ["eventbridge-state", "1state", "a.b"])
def test_state_schema_must_be_an_identifier(schema: str) -> None:
    with pytest.raises(ConfigError):
        Settings.load({"state_schema": schema}, env={})


def test_external_id_needs_role_arn() -> None:
    with pytest.raises(ConfigError) as e:
        Settings.load({"external_id": "s3cret"}, env={})
    assert "role_arn" in e.value.problems[0].message
    s = Settings.load({"external_id": "s3cret", "role_arn": "arn:aws:iam::123456789012:role/x"}, env={})
    assert s.external_id == "s3cret"
    assert s.redacted()["external_id"] == "***"
    assert s.redacted()["role_arn"] == "arn:aws:iam::123456789012:role/x"
    assert Settings.load({}, env={}).redacted()["external_id"] is None


def test_all_settings_problems_are_reported_together() -> None:
    with pytest.raises(ConfigError) as e:
        Settings.load({"concurrency": "x", "batch_size": 0, "nope": 1}, env={})
    assert len(e.value.problems) == 3
    assert str(e.value).startswith("3 configuration problems:")


@pytest.mark.parametrize("value", ["128MB", "2GB", "1.5 GiB", "0", "512kb"])
def test_duckdb_memory_limit_accepts_sizes_and_zero(value: str) -> None:
    assert Settings.load({"duckdb_memory_limit": value}, env={}).duckdb_memory_limit == value


@pytest.mark.parametrize("value", ["lots", "128", "12 parsecs", "1GB; drop table x"])
def test_duckdb_memory_limit_rejects_what_is_not_a_size(value: str) -> None:
    with pytest.raises(ConfigError) as e:
        Settings.load({"duckdb_memory_limit": value}, env={})
    assert "duckdb_memory_limit" in str(e.value) and "128MB" in str(e.value)


def test_workers_must_be_a_positive_whole_number() -> None:
    assert Settings.load({}, env={"DBT_EVENTBRIDGE_WORKERS": "4"}).workers == 4
    with pytest.raises(ConfigError) as e:
        Settings.load({"workers": 0}, env={})
    assert "workers" in str(e.value)


def test_history_settings_defaults_env_and_errors() -> None:
    s = Settings.load({}, env={})
    assert (s.history_retention_days, s.history_detail, s.alerts) == (30, True, [])
    s = Settings.load({"history_retention_days": 0, "history_detail": True},
                      env={"DBT_EVENTBRIDGE_HISTORY_DETAIL": "false"})
    assert (s.history_retention_days, s.history_detail) == (0, False)
    with pytest.raises(ConfigError) as e:
        Settings.load({"history_detail": "sometimes", "history_retention_days": -1}, env={})
    text = str(e.value)
    assert "history_detail' must be true or false, got 'sometimes'" in text
    assert "history_retention_days' must be a whole number (0 or more), got -1" in text


V2_ARN = "arn:aws:events:us-east-1:123456789012:event-busv2/orders/abcdefghijklmnopqrstuvwxy"


def test_a_v2_bus_orders_per_key_and_deduplicates_by_default() -> None:
    s = parse_one(meta(event_bus=V2_ARN))
    assert s.bus_v2 and s.event_group == "" and s.deduplication is True
    classic = parse_one(meta())
    assert not classic.bus_v2 and classic.event_group is None and classic.deduplication is None


def test_v2_options_are_read_and_checked() -> None:
    s = parse_one(meta(event_bus=V2_ARN, event_group="{{ row.account_id }}", deduplication=False))
    assert s.event_group == "{{ row.account_id }}" and s.deduplication is False
    assert parse_one(meta(event_bus=V2_ARN, event_group=False)).event_group is None
    p = only_problem(meta(event_bus=V2_ARN, event_group=" "))
    assert p.path.endswith("event_group") and "false" in (p.fix or "")
    p = only_problem(meta(event_bus=V2_ARN, deduplication="yes"))
    assert p.path.endswith("deduplication")


@pytest.mark.parametrize("key", ["event_group", "deduplication"])
def test_v2_options_on_a_classic_bus_name_the_fix(key: str) -> None:
    p = only_problem(meta(event_bus="arn:aws:events:us-east-1:123456789012:event-bus/orders",
                          **{key: "{{ row.id }}" if key == "event_group" else True}))
    assert f"'{key}' needs a Custom Event Bus" in p.message
    assert "event-busv2" in (p.fix or "")


@pytest.mark.parametrize("bus", [V2_ARN[:-1], V2_ARN + "z", V2_ARN.replace("/orders/", "/-orders/"),
                                 "arn:aws:events:us-east-1:123456789012:event-busv2/orders"])
def test_a_malformed_v2_arn_is_refused(bus: str) -> None:
    p = only_problem(meta(event_bus=bus))
    assert "is not a Custom Event Bus (v2) ARN" in p.message and p.path.endswith("event_bus")
    # with a v2 option beside it, the one problem is still the ARN (not "a classic bus")
    assert only_problem(meta(event_bus=bus, event_group="{{ row.id }}")).message == p.message
