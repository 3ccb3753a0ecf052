"""Every change delivered exactly as it is in the model, through schema changes and for every type.

Each test builds models of its own in a copy of the sample project, runs the real `dbt`
and `dbt-eventbridge` CLIs, and reads what reached EventBridge (moto, through SQS), on
DuckDB and on PostgreSQL:

- a column dropped or renamed in the same build as a real value change: the change is
  sent (with old_row and changed_columns), the other rows are re-baselined, and a later
  `removed` event still carries the values that were delivered;
- a key column that changes type: the run stops with a message naming the fixes, and
  --full-refresh, reset and rebaseline each recover;
- each type's JSON, pinned (the README's type table), and `removed` events and `old_row`
  equal to what was delivered, with the same Python types in templates.
"""

from __future__ import annotations

import base64
import signal
from typing import Any

import pytest

from tests.integration.harness import (
    Project,
    add_model,
    canon,
    dbt,
    details,
    model_schema,
    sql,
    state_schema,
    state_tables,
)


@pytest.fixture(params=["duckdb", "postgres"])
def project(request: pytest.FixtureRequest, tmp_path, local_aws) -> Project:
    pg = request.getfixturevalue("postgres") if request.param == "postgres" else None
    return Project(tmp_path, request.param, local_aws, pg)


def diff(got: dict[str, Any], want: dict[str, Any]) -> dict[str, Any]:
    """Keys whose values differ (readable where a whole-dict comparison is truncated)."""
    return {k: (got.get(k, "<missing>"), want.get(k, "<missing>")) for k in set(got) | set(want)
            if got.get(k, "<missing>") != want.get(k, "<missing>")}


def events(project: Project, source: str) -> list[dict[str, Any]]:
    return [e for e in project.drain()["default"] if e["source"] == source]


def by_op(evs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for e in evs:
        out.setdefault(e["detail-type"], []).append(e["detail"])
    return out


# -- schema evolution ---------------------------------------------------------------------------

def evo_sql(rows: list[tuple], columns: str, id_type: str = "integer") -> str:
    values = ", ".join("(" + ", ".join(repr(v) if isinstance(v, str) else str(v) for v in r) + ")" for r in rows)
    first, rest = columns.split(", ", 1)
    return (f"select cast({first} as {id_type}) as {first}, {', '.join(c for c in rest.split(', '))} "
            f"from (values {values}) as t({columns})")


EVO_SYNCS = [
    {"name": "evo_all", "primary_key": "id", "source": "com.test.evo", "detail_type": "{% raw %}{{ op }}{% endraw %}"},
    {"name": "evo_tpl", "primary_key": "id", "source": "com.test.evotpl",
     "detail_type": "{% raw %}{{ op }}{% endraw %}",
     "detail": {"template": "{% raw %}{\"id\": {{ row.id | tojson }}, \"changed\": {{ changed_columns | tojson }}, "
                            "\"old\": {{ old_row | tojson }}}{% endraw %}"}},
]


def test_schema_changes_never_swallow_a_change(project: Project) -> None:
    v1 = [(1, "a", 10, "x"), (2, "b", 20, "y"), (3, "c", 30, "z")]
    add_model(project, "evo", evo_sql(v1, "id, name, age, city"), EVO_SYNCS)
    dbt(project, "run", "-s", "evo")
    r = project.sync("sync", "-s", "evo")
    assert r.rc == 0, r.stdout + r.stderr
    added = {d["id"]: d for d in by_op(events(project, "com.test.evo"))["added"]}
    assert added == {1: {"id": 1, "name": "a", "age": 10, "city": "x"}, 2: {"id": 2, "name": "b", "age": 20, "city": "y"},
                     3: {"id": 3, "name": "c", "age": 30, "city": "z"}}
    project.drain()

    # city renamed to town, in the same build as a real change of age for id 2
    v2 = [(1, "a", 10, "x"), (2, "b", 21, "y"), (3, "c", 30, "z")]
    add_model(project, "evo", evo_sql(v2, "id, name, age, town"), EVO_SYNCS)
    dbt(project, "run", "-s", "evo")
    r = project.sync("sync", "-s", "evo")
    assert r.rc == 0, r.stdout + r.stderr
    evs = project.drain()["default"]
    all_ = by_op([e for e in evs if e["source"] == "com.test.evo"])
    assert all_ == {"changed": [{"id": 2, "name": "b", "age": 21, "town": "y"}]}
    tpl = by_op([e for e in evs if e["source"] == "com.test.evotpl"])
    assert tpl == {"changed": [{"id": 2, "changed": ["age"],
                                "old": {"id": 2, "name": "b", "age": 20, "city": "y"}}]}
    for name in ("evo_all", "evo_tpl"):
        assert r.sync(name)["rebaselined"] == 2
        assert r.sync(name)["sent"] == {"added": 0, "changed": 1, "removed": 0}
    assert "re-baselined" in r.stderr and "schema changed" in r.stderr

    # nothing changes: nothing is sent
    r = project.sync("sync", "-s", "evo")
    assert r.rc == 0 and project.drain()["default"] == []

    # id 1 is removed: the event carries what was delivered for it (with city, as sent on day one)
    add_model(project, "evo", evo_sql(v2[1:], "id, name, age, town"), EVO_SYNCS)
    dbt(project, "run", "-s", "evo")
    r = project.sync("sync", "-s", "evo")
    assert r.rc == 0, r.stdout + r.stderr
    evs = project.drain()["default"]
    assert by_op([e for e in evs if e["source"] == "com.test.evo"]) == {"removed": [added[1]]}
    assert by_op([e for e in evs if e["source"] == "com.test.evotpl"]) == {
        "removed": [{"id": 1, "changed": [], "old": added[1]}]}


# Not on the Snowflake emulator: a client killed inside a transaction leaves it open in the
# server (fakesnow keeps the session's DuckDB transaction; real Snowflake keeps the session's
# locks until it expires), and the next run's UPDATE of the same row conflicts. See README
# "Guarantees per warehouse".
# On Spark each step stands alone: killed after the old state is dropped, after the new one is
# renamed in, and (the layout's row rewritten) after the swap's marker is staged.
@pytest.mark.parametrize(("engine", "where"), [
    ("duckdb", "commit.swap:1"), ("postgres", "commit.swap:1"),
    ("spark", "commit.swap:1"), ("spark", "commit.swap:2"), ("spark", "spark.staged._eb_layouts:2")])
def test_a_run_killed_while_a_rebuilt_state_is_swapped_in_resends_nothing(
        request: pytest.FixtureRequest, tmp_path, local_aws, engine: str, where: str) -> None:
    # A schema change rebuilds the state into _eb_next__ and swaps it in. Where DDL is not
    # transactional (Snowflake, BigQuery, Spark), a kill between the steps (the old state
    # dropped, the new one renamed in, its layout not yet recorded) leaves them done: the
    # next run must complete the swap, not rebuild from the plan, which holds re-baselined
    # rows only as fingerprints. On DuckDB and PostgreSQL the kill rolls the swap back whole.
    pg = request.getfixturevalue("postgres") if engine == "postgres" else None
    port = request.getfixturevalue("snowflake") if engine == "snowflake" else None
    spark = request.getfixturevalue("spark") if engine == "spark" else None
    project = Project(tmp_path, engine, local_aws, pg, port, spark_port=spark)
    named = (lambda d: {k.upper(): v for k, v in d.items()}) if engine == "snowflake" else (lambda d: d)
    add_model(project, "evo", evo_sql([(1, "a", 10), (2, "b", 20), (3, "c", 30)], "id, name, age"), EVO_SYNCS[:1])
    dbt(project, "run", "-s", "evo")
    assert project.sync("sync", "-s", "evo").rc == 0
    assert len(events(project, "com.test.evo")) == 3

    # age dropped, in the same build as a change of id 2's name: killed while swapping
    add_model(project, "evo", evo_sql([(1, "a"), (2, "B"), (3, "c")], "id, name"), EVO_SYNCS[:1])
    dbt(project, "run", "-s", "evo")
    r = project.sync("sync", "-s", "evo", extra_env={"DBT_EVENTBRIDGE_CRASH_AT": where})
    assert r.rc == -signal.SIGKILL, f"crash point {where} was not reached ({r.rc}): {r.stderr}"
    assert by_op(events(project, "com.test.evo")) == {"changed": [named({"id": 2, "name": "B"})]}

    # the next run completes the swap and sends nothing again
    r = project.sync("sync", "-s", "evo")
    assert r.rc == 0, r.stderr
    assert events(project, "com.test.evo") == []

    # and what was delivered is what later events say: id 3 changes, id 1 is removed with
    # the values it was delivered with (age included, as sent on the first day)
    add_model(project, "evo", evo_sql([(2, "B"), (3, "C")], "id, name"), EVO_SYNCS[:1])
    dbt(project, "run", "-s", "evo")
    r = project.sync("sync", "-s", "evo")
    assert r.rc == 0, r.stderr
    assert by_op(events(project, "com.test.evo")) == {"changed": [named({"id": 3, "name": "C"})],
                                                      "removed": [named({"id": 1, "name": "a", "age": 10})]}


def test_a_key_that_changes_type_stops_with_the_fix_and_each_fix_recovers(project: Project) -> None:
    rows = [(1, "a"), (2, "b")]
    syncs = [{"name": "kt_refresh", "primary_key": "id", "source": "com.test.kt", "detail_type": "KtRefresh"},
             {"name": "kt_reset", "primary_key": "id", "source": "com.test.kt", "detail_type": "KtReset"},
             {"name": "kt_rebase", "primary_key": "id", "source": "com.test.kt", "detail_type": "KtRebase"}]
    add_model(project, "kt", evo_sql(rows, "id, name"), syncs)
    dbt(project, "run", "-s", "kt")
    assert project.sync("sync", "-s", "kt").rc == 0
    project.drain()
    before = state_tables(project.db) if project.engine == "duckdb" else None

    add_model(project, "kt", evo_sql(rows, "id, name", id_type="varchar(10)"), syncs)
    dbt(project, "run", "-s", "kt")
    r = project.sync("sync", "-s", "kt")
    assert r.rc == 2
    for name in ("kt_refresh", "kt_reset", "kt_rebase"):
        msg = r.sync(name)["message"]
        assert "type of key column(s) changed (id" in msg, msg
        assert f"--full-refresh --sync {name}" in msg and f"rebaseline --sync {name}" in msg \
            and f"reset --sync {name}" in msg
    assert project.drain()["default"] == []
    if before is not None:
        assert state_tables(project.db) == before  # nothing recorded

    # each fix rebuilds the state in the new shape
    assert project.sync("sync", "--full-refresh", "--sync", "kt_refresh").rc == 0
    assert canon(by_op(project.drain()["default"])["KtRefresh"]) == canon([{"id": "1", "name": "a"},
                                                                         {"id": "2", "name": "b"}])
    assert project.sync("reset", "--sync", "kt_reset", "--yes").rc == 0
    assert project.sync("rebaseline", "--sync", "kt_rebase", "--yes").rc == 0
    assert project.drain()["default"] == []  # a rebaseline sends nothing
    r = project.sync("sync", "-s", "kt")
    assert r.rc == 0, r.stdout + r.stderr
    # the full refresh and the rebaseline are current; the reset sync sends every row again as added
    assert {k: canon(v) for k, v in by_op(project.drain()["default"]).items()} == {
        "KtReset": canon([{"id": "1", "name": "a"}, {"id": "2", "name": "b"}])}
    r = project.sync("sync", "-s", "kt")
    assert r.rc == 0 and project.drain()["default"] == []
    # and the new shape diffs as any other: a real change to id "2"
    add_model(project, "kt", evo_sql([(1, "a"), (2, "B")], "id, name", id_type="varchar(10)"), syncs)
    dbt(project, "run", "-s", "kt")
    assert project.sync("sync", "-s", "kt").rc == 0
    got = by_op(project.drain()["default"])
    assert got == {"KtRefresh": [{"id": "2", "name": "B"}], "KtReset": [{"id": "2", "name": "B"}],
                   "KtRebase": [{"id": "2", "name": "B"}]}


# -- types --------------------------------------------------------------------------------------

DUCKDB_TYPES = """
select * from (
  select 1 as id,
    cast('2024-01-02 03:04:05.678' as timestamp) as ts,
    cast(9007199254740993 as bigint) as big_int,
    cast(42 as bigint) as small_int,
    cast('170141183460469231731687303715884105727' as hugeint) as huge,
    cast('12345678901234567890.1234567890' as decimal(38,10)) as dec_wide,
    cast(19.99 as decimal(12,2)) as dec_money,
    cast('nan' as double) as nan_v, cast('inf' as double) as inf_v, cast('-inf' as double) as ninf_v,
    cast(1.5 as double) as dbl,
    interval '1 day 2 hours 3 minutes 4.5 seconds' as iv,
    cast('12:34:56.789' as time) as tm,
    cast('2024-01-02 03:04:05.678+02' as timestamptz) as tstz,
    cast('2024-02-29' as date) as d,
    cast('\\xDE\\xAD\\xBE\\xEF' as blob) as bin,
    cast('{"a": [1, 2], "b": {"c": null}}' as json) as js,
    {'x': 1, 'y': 'z'} as st,
    [1, 2, 3] as lst,
    map([1, 2], ['a', 'b']) as mp,
    cast('6f1d3b8e-4f0c-5a59-9d0e-2b7c1e8a9f10' as uuid) as u,
    true as b,
    '__TXT__' as txt
) where {{ var('types_rows', 1) }} > 0 and '{{ var('types_txt', 'v1') }}' <> ''
"""
POSTGRES_TYPES = """
select * from (
  select 1 as id,
    cast('2024-01-02 03:04:05.678' as timestamp) as ts,
    cast(9007199254740993 as bigint) as big_int,
    cast(42 as bigint) as small_int,
    cast('12345678901234567890.1234567890' as numeric(38,10)) as dec_wide,
    cast(19.99 as numeric(12,2)) as dec_money,
    cast('NaN' as double precision) as nan_v, cast('Infinity' as double precision) as inf_v,
    cast('-Infinity' as double precision) as ninf_v,
    cast(1.5 as double precision) as dbl,
    interval '1 day 2 hours 3 minutes 4.5 seconds' as iv,
    cast('12:34:56.789' as time) as tm,
    cast('2024-01-02 03:04:05.678+02' as timestamptz) as tstz,
    cast('2024-02-29' as date) as d,
    cast('\\xdeadbeef' as bytea) as bin,
    cast('{"a": [1, 2], "b": {"c": null}}' as jsonb) as js,
    array[1, 2, 3] as lst,
    cast('6f1d3b8e-4f0c-5a59-9d0e-2b7c1e8a9f10' as uuid) as u,
    true as b,
    cast('__TXT__' as text) as txt
) t where {{ var('types_rows', 1) }} > 0 and '{{ var('types_txt', 'v1') }}' <> ''
"""
# The pinned JSON of each type (the README's type table).
EXPECTED = {
    "id": 1, "ts": "2024-01-02T03:04:05.678000", "big_int": "9007199254740993", "small_int": 42,
    "huge": "170141183460469231731687303715884105727", "dec_wide": "12345678901234567890.1234567890",
    "dec_money": 19.99, "nan_v": "NaN", "inf_v": "Infinity", "ninf_v": "-Infinity", "dbl": 1.5,
    "iv": "P1DT2H3M4.5S", "tm": "12:34:56.789000", "tstz": "2024-01-02T01:04:05.678000+00:00", "d": "2024-02-29",
    "bin": base64.b64encode(bytes.fromhex("deadbeef")).decode(), "js": {"a": [1, 2], "b": {"c": None}},
    "st": {"x": 1, "y": "z"}, "lst": [1, 2, 3], "mp": {"1": "a", "2": "b"},
    "u": "6f1d3b8e-4f0c-5a59-9d0e-2b7c1e8a9f10", "b": True, "txt": 'Zoë "q" \\ end',
}
# Templates that call methods of the values: a removed row and old_row must give them the same types.
TYPES_TEMPLATE = ('{% raw %}{"id": {{ row.id }}, "year": "{{ row.d.strftime(\'%Y\') }}", '
                  '"at": "{{ row.tstz.isoformat() }}", "ts_day": {{ row.ts.day }}, "dec": {{ row.dec_wide | tojson }}, '
                  '"js_a": {{ row.js.a | tojson }}, "js": {{ row.js }}, "bin_len": {{ row.bin | length }}, '
                  '"was": {{ (old_row.d.strftime(\'%m\') if old_row else none) | tojson }}, '
                  '"changed": {{ changed_columns | tojson }}}{% endraw %}')


def types_sql(project: Project, txt: str = 'Zoë "q" \\ end') -> str:
    base = DUCKDB_TYPES if project.engine == "duckdb" else POSTGRES_TYPES
    return base.replace("__TXT__", txt.replace("'", "''"))


def test_each_type_has_its_json_and_removed_events_carry_exactly_what_was_delivered(project: Project) -> None:
    expected = dict(EXPECTED)
    if project.engine == "postgres":  # no HUGEINT, STRUCT or MAP in PostgreSQL
        for k in ("huge", "st", "mp"):
            expected.pop(k)
    syncs = [
        {"name": "types_all", "primary_key": ["id", "ts"], "source": "com.test.types",
         "detail_type": "{% raw %}{{ op }}{% endraw %}"},
        {"name": "types_tpl", "primary_key": ["id", "ts"], "source": "com.test.typestpl",
         "detail_type": "{% raw %}{{ op }}{% endraw %}", "detail": {"template": TYPES_TEMPLATE}},
        {"name": "types_json_column", "primary_key": ["id", "ts"], "source": "com.test.typescol",
         "detail_type": "{% raw %}{{ op }}{% endraw %}", "detail": {"column": "js"}},
    ]
    add_model(project, "types", types_sql(project), syncs)
    dbt(project, "run", "-s", "types")
    r = project.sync("sync", "-s", "types")
    assert r.rc == 0, r.stdout + r.stderr
    evs = project.drain()["default"]
    added = by_op([e for e in evs if e["source"] == "com.test.types"])["added"]
    assert len(added) == 1 and diff(added[0], expected) == {}
    tpl_added = by_op([e for e in evs if e["source"] == "com.test.typestpl"])["added"]
    assert tpl_added == [{"id": 1, "year": "2024", "at": "2024-01-02T01:04:05.678000+00:00", "ts_day": 2,
                          "dec": "12345678901234567890.1234567890", "js_a": [1, 2],
                          "js": {"a": [1, 2], "b": {"c": None}}, "bin_len": 4, "was": None, "changed": []}]
    # a JSON column is an object in every mode: the column mode sends it as the detail
    assert by_op([e for e in evs if e["source"] == "com.test.typescol"])["added"] == [expected["js"]]

    # a changed row: old_row has the same types as row
    add_model(project, "types", types_sql(project, "changed text"), syncs)
    dbt(project, "run", "-s", "types")
    r = project.sync("sync", "-s", "types")
    assert r.rc == 0, r.stdout + r.stderr
    evs = project.drain()["default"]
    changed = by_op([e for e in evs if e["source"] == "com.test.typestpl"])["changed"]
    assert [(c["was"], c["changed"]) for c in changed] == [("02", ["txt"])]  # NaN == NaN: not a change
    delivered_all = by_op([e for e in evs if e["source"] == "com.test.types"])["changed"]
    assert delivered_all == [{**expected, "txt": "changed text"}]

    # every row removed: each removed event is the last delivered detail, exactly
    dbt(project, "run", "-s", "types", vars_={"types_rows": 0})
    r = project.sync("sync", "-s", "types", "--allow-mass-removal")
    assert r.rc == 0, r.stdout + r.stderr
    evs = project.drain()["default"]
    assert by_op([e for e in evs if e["source"] == "com.test.types"]) == {"removed": delivered_all}
    removed_tpl = by_op([e for e in evs if e["source"] == "com.test.typestpl"])["removed"]
    assert removed_tpl == [{**tpl_added[0], "was": "02"}]  # old_row of a removed row is its row
    assert by_op([e for e in evs if e["source"] == "com.test.typescol"]) == {"removed": [expected["js"]]}
    assert details(evs) and all(r.sync(n)["rejected"] == 0 for n in ("types_all", "types_tpl", "types_json_column"))


def test_bytes_that_are_not_utf8_reject_that_row_only(project: Project) -> None:
    if project.engine == "duckdb":
        model = ("select 1 as id, cast('{\"ok\": 1}' as blob) as payload "
                 "union all select 2, cast('\\xFF\\xFE' as blob)")
    else:
        model = ("select 1 as id, convert_to('{\"ok\": 1}', 'UTF8') as payload "
                 "union all select 2, cast('\\xfffe' as bytea)")
    add_model(project, "bin_payload", model, {"primary_key": "id", "source": "com.test.bin", "detail_type": "Bin",
                                              "detail": {"column": "payload"}})
    dbt(project, "run", "-s", "bin_payload")
    r = project.sync("sync", "-s", "bin_payload")
    assert r.rc == 1, r.stdout + r.stderr
    s = r.sync("bin_payload")
    assert s["sent"]["added"] == 1 and s["rejected"] == 1
    assert [(x["key"], x["code"]) for x in s["rejections"]] == [({"id": 2}, "InvalidDetail")]
    assert "not UTF-8" in s["rejections"][0]["reason"]
    assert details(project.drain()["default"], "Bin") == [{"ok": 1}]


def test_the_state_keeps_typed_values_in_columns_of_its_own(project: Project) -> None:
    """What the state holds for a row is what was sent: same values, same types, as columns."""
    add_model(project, "evo", evo_sql([(1, "a", 10, "x")], "id, name, age, city"), EVO_SYNCS[:1])
    dbt(project, "run", "-s", "evo")
    assert project.sync("sync", "-s", "evo").rc == 0
    rows = sql(project, f"select _eb_c1, _eb_c2, _eb_c3, _eb_c4 from {state_schema(project)}._eb_state__evo_all")
    assert rows == [(1, "a", 10, "x")]
    model = sql(project, f"select id, name, age, city from {model_schema(project)}.evo")
    assert rows == model


def test_a_state_written_by_version_1_is_migrated_without_losing_or_resending(tmp_path, local_aws) -> None:
    """Version 0.1.0 kept the delivered values as the warehouse's JSON, in a table named after
    the sync, with its fingerprints registered in _eb_syncs: the first run converts it."""
    project = Project(tmp_path, "duckdb", local_aws)
    add_model(project, "legacy", "select i as id, concat('v', i) as status from range(1, 4) t(i)",
              {"primary_key": "id", "source": "com.test.legacy", "detail_type": "{% raw %}{{ op }}{% endraw %}",
               "detail": {"template": "{% raw %}{\"id\": {{ row.id }}, \"status\": \"{{ row.status }}\", "
                                      "\"was\": {{ old_row | tojson }}}{% endraw %}"}})
    dbt(project, "run", "-s", "legacy")
    # the state as version 1 wrote it: rows 1-3 delivered, and row 4 delivered but gone from the model
    sql(project, "create schema if not exists eventbridge_state")
    sql(project, "create table eventbridge_state._eb_syncs (sync_name varchar(256) primary key, hash_version "
                 "varchar(64), hash_columns varchar(65000), pending_hash_version varchar(64), pending_hash_columns "
                 "varchar(65000), updated_epoch bigint)")
    sql(project, "insert into eventbridge_state._eb_syncs values ('legacy', 'duckdb-v1', '[\"id\", \"status\"]', "
                 "null, null, 0)")
    sql(project, "create table eventbridge_state.legacy as select id, hash(id, status) as _eb_hash, "
                 "cast(to_json(t) as varchar) as _eb_row, now() as _eb_delivered_at from main.legacy t "
                 "union all select 4, 0, '{\"id\": 4, \"status\": \"v4\"}', now()")
    sql(project, "update main.legacy set status = 'changed' where id = 2")
    r = project.sync("sync", "-s", "legacy")
    assert r.rc == 0, r.stdout + r.stderr
    assert "written by an earlier version" in r.stderr
    got = by_op(project.drain()["default"])
    assert got == {"changed": [{"id": 2, "status": "changed", "was": {"id": 2, "status": "v2"}}],
                   "removed": [{"id": 4, "status": "v4", "was": {"id": 4, "status": "v4"}}]}
    tables = {t for (t,) in sql(project, "select table_name from information_schema.tables "
                                         "where table_schema = 'eventbridge_state'")}
    assert "legacy" not in tables and "_eb_state__legacy" in tables
    assert sql(project, "select count(*) from eventbridge_state._eb_syncs") == [(0,)]
    # unchanged rows now have typed values: a later removal carries them exactly
    assert project.sync("sync", "-s", "legacy").rc == 0 and project.drain()["default"] == []
    sql(project, "delete from main.legacy where id = 1")
    assert project.sync("sync", "-s", "legacy").rc == 0
    assert by_op(project.drain()["default"]) == {"removed": [{"id": 1, "status": "v1", "was": {"id": 1, "status": "v1"}}]}
