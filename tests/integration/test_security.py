"""Secrets, hostile row values and hostile identifiers, through the real CLIs.

(a) Known fake secrets (AWS secret key, session token, the role's external ID, a profile
    password) never appear in stdout/stderr, the result file, the lines our run added to
    logs/dbt.log, or any table of the state schema, on successful and failing runs.
(b) Row values are data, never template code: they are published literally and run nothing.
(c) Identifiers from the config are checked against the relation's real columns, and hostile
    column names in a model are quoted: the sync still works and nothing is dropped.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from devtools.fault_endpoint import FaultEndpoint, RequestFault
from tests.integration.harness import BIN, CliResult, Project, delivered_rows, edit_schema, state_tables
from tests.integration.test_bad_inputs import StsDenied

STATE_SCHEMA = "eventbridge_state"

SECRET_KEY = "FAKEsecretKEY/zz9Q8w7e6r5t4y3u2i1o0pAAbbCC"
SESSION_TOKEN = "FAKEsessionTOKEN+aa1b2c3d4e5f6g7h8i9j0kkLLmm"
EXTERNAL_ID = "FAKEexternalID-7734-xyzzy"
PASSWORD = "FAKEpassw0rd-profile-qq77"
SECRETS = (SECRET_KEY, SESSION_TOKEN, EXTERNAL_ID, PASSWORD)
ROLE_ARN = "arn:aws:iam::123456789012:role/publisher"
AWS_SECRETS_ENV = {"AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_SESSION_TOKEN": SESSION_TOKEN}
ROLE_ENV = {"DBT_EVENTBRIDGE_ROLE_ARN": ROLE_ARN, "DBT_EVENTBRIDGE_EXTERNAL_ID": EXTERNAL_ID}

# Row values that would do something if they were ever treated as template code or SQL.
HOSTILE_CUSTOMERS = [
    # customer_id, first_name, last_name, email_address, phone_number, plan
    (7, "{{ env_var('AWS_SECRET_ACCESS_KEY') }}", "'); drop table x; --", '"}, "injected": true, "x": {"',
     "{% endraw %}{{ 7*7 }}", "{{ 7*7 }}"),
    (8, "{%- if true %}yes{% endif %}", "{# gone? #}", "{{ sync.name }}", "{{ row }}", "{% raw %}"),
    (9, "{{ var('currency') }}", "{{ target.name }}", "{{ ''.__class__.__mro__ }}", "${aws.events.event}",
     "{{ env_var('AWS_SECRET_ACCESS_KEY') }}"),
]

# A model whose column names are SQL keywords, mixed case, and SQL fragments.
HOSTILE_MODEL_SQL = """select 1 as "select", '{{ var('hv', 'x') }}' as "Mixed Case", 'w' as "semi; drop table x; --",
  'q' as "order", 'd' as "dot.ted"
union all
select 2, 'x2', 'w2', 'q2', 'd2'
"""
HOSTILE_COLUMNS = ["select", "Mixed Case", "semi; drop table x; --", "order", "dot.ted"]
HOSTILE_SYNC = {"primary_key": "select", "source": "com.acme.hostile", "detail_type": "Hostile"}

TEXT_SYNC = {  # row values in the text fields: source, detail-type, resources
    "name": "customers_text",
    "primary_key": "customer_id",
    "event_bus": "crm-events",
    "source": "{% raw %}com.acme.text.{{ row.plan }}{% endraw %}",
    "detail_type": "{% raw %}Customer {{ row.first_name }}{% endraw %}",
    "resources": ["{% raw %}urn:acme:{{ row.last_name }}{% endraw %}"],
    "detail": {"columns": ["plan", "first_name", "last_name", "email_address", "phone_number"]},
}


# --------------------------------------------------------------------------------------------
# helpers




def _all_tables(db: Path) -> set[tuple[str, str]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {(s, t) for s, t in con.execute(
            "select table_schema, table_name from information_schema.tables").fetchall()}
    finally:
        con.close()


def _x_rows(db: Path) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("select * from main.x").fetchall()
    finally:
        con.close()


class LogTail:
    """The lines of logs/dbt.log written after this point (by our run)."""

    def __init__(self, project: Project) -> None:
        self.path = project.dir / "logs" / "dbt.log"
        self.start = self.path.stat().st_size if self.path.exists() else 0

    def read(self) -> str:
        data = self.path.read_bytes() if self.path.exists() else b""
        assert len(data) > self.start, "our run wrote nothing to logs/dbt.log"
        return data[self.start:].decode("utf-8", "replace")


def _assert_no_secret(where: str, text: str, secrets: tuple[str, ...] = SECRETS) -> None:
    for s in secrets:
        assert s not in text, f"secret {s[:12]}... found in {where}"




def _add_model(project: Project, name: str, sql: str, sync: dict[str, Any] | None) -> None:
    (project.dir / "models" / f"{name}.sql").write_text(sql)
    path = project.dir / "models" / "schema.yml"
    doc = yaml.safe_load(path.read_text())
    entry: dict[str, Any] = {"name": name}
    if sync is not None:
        entry["config"] = {"meta": {"eventbridge": sync}}
    doc["models"].append(entry)
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


def _dbt_run(project: Project, *args: str) -> None:
    project.run_ok([str(BIN / "dbt"), "run", "--quiet", *project.target_args, *args])


# --------------------------------------------------------------------------------------------
# the shared project


class Sec:
    def __init__(self, project: Project, tmp: Path, first: CliResult, events: dict[str, list[dict]]) -> None:
        self.project = project
        self.tmp = tmp
        self.first = first
        self.events = events

    @property
    def db(self) -> Path:
        return self.project.db


@pytest.fixture(scope="module")
def sec(tmp_path_factory: pytest.TempPathFactory, local_aws: Any) -> Sec:
    tmp = tmp_path_factory.mktemp("security")
    project = Project(tmp, "duckdb", local_aws)
    d = project.dir

    # (b) hostile values in the seed, valid on days 1 to 3
    seed = d / "seeds" / "customers_versions.csv"
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for cid, first, last, email, phone, plan in HOSTILE_CUSTOMERS:
        w.writerow([cid, 1, 3, first, last, 30 + cid, email, phone, plan, "2024-01-01 15:00:00"])
    seed.write_text(seed.read_text().rstrip("\n") + "\n" + buf.getvalue())
    edit_schema(project, lambda m: m["customers"]["config"]["meta"]["eventbridge"].append(TEXT_SYNC))

    # (c) a model with hostile column names; its sync is added by the test that runs it
    _add_model(project, "hostile", HOSTILE_MODEL_SQL, None)

    # (a) a password in the profile (dbt-duckdb ignores it, but dbt reads and renders it)
    profiles = d / "profiles.yml"
    text = profiles.read_text()
    assert "      threads: 4\n" in text
    profiles.write_text(text.replace(
        "      threads: 4\n", "      threads: 4\n      password: \"{{ env_var('DBT_FAKE_PASSWORD', '') }}\"\n", 1))
    project.env["DBT_FAKE_PASSWORD"] = PASSWORD

    project.build(day=1)
    con = duckdb.connect(str(tmp / "warehouse.duckdb"))
    con.execute("create table main.x as select 42 as v")
    con.close()

    log = LogTail(project)
    first = project.sync("sync", "-s", "customers", extra_env={**AWS_SECRETS_ENV, **ROLE_ENV})
    assert first.rc == 0, first.stdout + first.stderr
    _check_run_is_clean(project, first, log.read(), tmp / "warehouse.duckdb")
    return Sec(project, tmp, first, project.drain())


def _check_run_is_clean(project: Project, r: CliResult, log: str, db: Path | None) -> None:
    _assert_no_secret("stdout", r.stdout)
    _assert_no_secret("stderr", r.stderr)
    _assert_no_secret("the result file", json.dumps(r.results))
    _assert_no_secret("logs/dbt.log (lines of this run)", log)
    if db is not None:
        _assert_no_secret("the state tables", json.dumps(state_tables(db), default=str))


# --------------------------------------------------------------------------------------------
# (a) secrets


def test_secrets_stay_out_of_output_logs_results_and_state(sec: Sec) -> None:
    project = sec.project
    assert sec.first.sync("customers_to_crm")["sent"]["added"] == 8  # published through the assumed role

    # failing runs leak most: refused credentials ...
    with FaultEndpoint(request_faults=[RequestFault("auth", first=1000)]) as ep:
        log = LogTail(project)
        r = project.sync("sync", "-s", "customers", "--full-refresh",
                         extra_env={**AWS_SECRETS_ENV, "DBT_EVENTBRIDGE_ENDPOINT_URL": ep.endpoint_url})
        assert ep.requests, "the run never reached the endpoint"
    assert r.rc == 2 and "UnrecognizedClientException" in r.stderr, r.stderr
    _check_run_is_clean(project, r, log.read(), sec.db)
    # ... the role refused by STS (the request carries the external ID) ...
    with StsDenied() as sts:
        log = LogTail(project)
        p = project.run([str(BIN / "dbt-eventbridge"), "sync", "-s", "customers", "--full-refresh",
                         *project.target_args],
                        {**AWS_SECRETS_ENV, **ROLE_ENV, "DBT_EVENTBRIDGE_ENDPOINT_URL": sts.endpoint_url})
        assert any(f"ExternalId={EXTERNAL_ID}" in c for c in sts.calls), sts.calls
    assert p.returncode == 2 and "AccessDenied" in p.stderr, p.stderr
    results = json.loads((project.dir / "target" / "eventbridge_sync_results.json").read_text())
    _check_run_is_clean(project, CliResult(p.returncode, p.stdout, p.stderr, results), log.read(), sec.db)
    # ... and a warehouse that cannot be opened
    log = LogTail(project)
    r = project.sync("sync", "-s", "customers",
                     extra_env={**AWS_SECRETS_ENV, **ROLE_ENV, "DBT_DUCKDB_PATH": str(sec.tmp / "no" / "such.duckdb")})
    assert r.rc == 2
    _check_run_is_clean(project, r, log.read(), sec.db)
    assert project.drain() == {"crm-events": [], "default": []}


@pytest.fixture
def project_setting(sec: Sec) -> Iterator[Any]:
    """Add lines under vars.eventbridge in dbt_project.yml; restored afterwards."""
    path = sec.project.dir / "dbt_project.yml"
    saved = path.read_text()

    def add(*lines: str) -> None:
        assert "    region: us-east-1\n" in saved
        path.write_text(saved.replace("    region: us-east-1\n",
                                      "    region: us-east-1\n" + "".join(f"    {ln}\n" for ln in lines)))
    yield add
    path.write_text(saved)
    sec.project.drain()


def test_external_id_in_dbt_project_yml_stays_secret(sec: Sec, project_setting: Any) -> None:
    project_setting(f"role_arn: {ROLE_ARN}", f"external_id: {EXTERNAL_ID}")
    log = LogTail(sec.project)
    r = sec.project.sync("sync", "-s", "customers", "--full-refresh", extra_env=AWS_SECRETS_ENV)
    assert r.rc == 0, r.stderr
    assert len(sec.project.drain()["crm-events"]) == 16  # customers_to_crm + customers_text, through the role
    _check_run_is_clean(sec.project, r, log.read(), sec.db)
    with StsDenied() as sts:
        log = LogTail(sec.project)
        p = sec.project.run([str(BIN / "dbt-eventbridge"), "sync", "-s", "customers", "--full-refresh",
                             *sec.project.target_args],
                            {**AWS_SECRETS_ENV, "DBT_EVENTBRIDGE_ENDPOINT_URL": sts.endpoint_url})
        assert any(f"ExternalId={EXTERNAL_ID}" in c for c in sts.calls), sts.calls
    assert p.returncode == 2 and "AccessDenied" in p.stderr, p.stderr
    results = json.loads((sec.project.dir / "target" / "eventbridge_sync_results.json").read_text())
    _check_run_is_clean(sec.project, CliResult(p.returncode, p.stdout, p.stderr, results), log.read(), sec.db)


def test_external_id_given_with_vars_is_not_printed(sec: Sec) -> None:
    """`--vars` is how CI passes values; README: the external ID is 'Never printed'."""
    r = sec.project.sync("sync", "-s", "customers", "--full-refresh", extra_env=AWS_SECRETS_ENV, vars_={
        "eventbridge": {"region": "us-east-1", "role_arn": ROLE_ARN, "external_id": EXTERNAL_ID}})
    assert r.rc == 0, r.stderr
    assert len(sec.project.drain()["crm-events"]) == 16  # customers_to_crm + customers_text, through the role
    _assert_no_secret("stdout/stderr", r.stdout + r.stderr)
    _assert_no_secret("the result file", json.dumps(r.results))
    _assert_no_secret("the state tables", json.dumps(state_tables(sec.db), default=str))


def test_external_id_given_with_vars_stays_out_of_dbt_log(sec: Sec) -> None:
    """dbt logs its invocation's argv and --vars to logs/dbt.log; ours must not carry the external ID there."""
    log = LogTail(sec.project)
    r = sec.project.sync("sync", "-s", "customers", "--full-refresh", extra_env=AWS_SECRETS_ENV, vars_={
        "eventbridge": {"region": "us-east-1", "role_arn": ROLE_ARN, "external_id": EXTERNAL_ID}})
    assert r.rc == 0, r.stderr
    sec.project.drain()
    _check_run_is_clean(sec.project, r, log.read(), sec.db)


def test_invalid_external_id_is_not_echoed(sec: Sec, project_setting: Any) -> None:
    secret = "918273645501"
    project_setting(f"role_arn: {ROLE_ARN}", f"external_id: {secret}")  # unquoted: YAML reads a number
    log = LogTail(sec.project)
    r = sec.project.sync("sync", "-s", "customers", extra_env=AWS_SECRETS_ENV)
    assert r.rc == 0, r.stderr  # a YAML number is read as the ID it spells
    sec.project.drain()
    _check_run_is_clean(sec.project, r, log.read(), sec.db)
    _assert_no_secret("stdout/stderr", r.stdout + r.stderr, (secret,))
    _assert_no_secret("the result file", json.dumps(r.results), (secret,))


def test_profile_password_stays_out_on_postgres(tmp_path: Path, local_aws: Any, postgres: Any) -> None:
    """A password the warehouse really receives; success and failure, state schema in PostgreSQL."""
    import psycopg2

    project = Project(tmp_path, "postgres", local_aws, postgres)
    password = postgres.password or PASSWORD  # our own server trusts local connections
    project.env["PGPASSWORD"] = password
    secrets = (SECRET_KEY, SESSION_TOKEN, password)
    project.build(day=1)

    def check(r: CliResult, log: str) -> None:
        _assert_no_secret("stdout/stderr", r.stdout + r.stderr, secrets)
        _assert_no_secret("the result file", json.dumps(r.results), secrets)
        _assert_no_secret("logs/dbt.log (lines of this run)", log, secrets)
        schema = project.env["DBT_EVENTBRIDGE_STATE_SCHEMA"]
        with psycopg2.connect(**postgres.connect_kwargs()) as con, con.cursor() as cur:
            cur.execute("select table_name from information_schema.tables where table_schema = %s", (schema,))
            tables = [t for (t,) in cur.fetchall()]
            dump = []
            for t in tables:
                cur.execute(f'select * from "{schema}"."{t}"')
                dump += cur.fetchall()
        assert tables
        _assert_no_secret("the state tables", json.dumps(dump, default=str), secrets)

    log = LogTail(project)
    r = project.sync("sync", "-s", "customers", extra_env=AWS_SECRETS_ENV)
    assert r.rc == 0, r.stderr
    check(r, log.read())
    with FaultEndpoint(request_faults=[RequestFault("auth", first=1000)]) as ep:
        log = LogTail(project)
        r = project.sync("sync", "-s", "customers", "--full-refresh",
                         extra_env={**AWS_SECRETS_ENV, "DBT_EVENTBRIDGE_ENDPOINT_URL": ep.endpoint_url})
    assert r.rc == 2, r.stderr
    check(r, log.read())
    log = LogTail(project)
    r = project.sync("sync", "-s", "customers", extra_env={**AWS_SECRETS_ENV, "PGPORT": "1"})
    assert r.rc == 2 and "warehouse" in r.stderr, r.stderr
    check(r, log.read())
    assert len(project.drain()["crm-events"]) == 5  # only the first run published


# --------------------------------------------------------------------------------------------
# (b) row values are data


def test_row_values_are_published_literally_and_run_nothing(sec: Sec) -> None:
    crm = sec.events["crm-events"]
    profiles = [e for e in sec.events["default"] if e["source"] == "com.acme.profiles"]
    assert len(profiles) == 8
    texts = [e for e in crm if e["source"].startswith("com.acme.text.")]
    assert len(texts) == 8
    for cid, first, last, email, phone, plan in HOSTILE_CUSTOMERS:
        # 1. a JSON template (customers_to_crm): values escaped as string content
        [ev] = [e for e in crm if e["source"] == "com.acme.crm"
                and e["resources"] == [f"arn:aws:acme:us-east-1:123456789012:customer/{cid}"]]
        assert ev["detail"] == {"name": f"{first} {last}", "age": 30 + cid, "contact_info": [
            {"type": "email", "value": email}, {"type": "phone", "value": phone}]}
        # 2. the column mapping (customer_profiles)
        assert {"customer_first_name": first, "customer_last_name": last, "customer_email": email} in \
            [e["detail"] for e in profiles]
        # 3. text fields rendered from templates that read the row (customers_text)
        [tx] = [e for e in texts if e["detail"]["first_name"] == first]
        assert tx["source"] == f"com.acme.text.{plan}"
        assert tx["detail-type"] == f"Customer {first}"
        assert tx["resources"] == [f"urn:acme:{last}"]
        assert tx["detail"] == {"plan": plan, "first_name": first, "last_name": last, "email_address": email,
                                "phone_number": phone}
    # the sample's own template-looking values
    assert {"customer_first_name": "{{ 7*7 }}", "customer_last_name": "{% raw %}",
            "customer_email": "tpl@example.com"} in [e["detail"] for e in profiles]
    assert SECRET_KEY not in json.dumps(sec.events, ensure_ascii=False)  # env_var() was never called
    # nothing was dropped: x, the models and the state are all there
    assert _x_rows(sec.db) == [(42,)]
    tables = _all_tables(sec.db)
    assert {("main", "x"), ("main", "customers"), (STATE_SCHEMA, "_eb_state__customers_text")} <= tables


# --------------------------------------------------------------------------------------------
# (c) identifiers


@pytest.fixture
def hostile(sec: Sec) -> Iterator[Project]:
    """The shared project with the `hostile` model's sync; schema.yml is restored afterwards."""
    path = sec.project.dir / "models" / "schema.yml"
    saved = path.read_text()
    edit_schema(sec.project, lambda m: m["hostile"].update(config={"meta": {"eventbridge": dict(HOSTILE_SYNC)}}))
    sec.project.drain()
    yield sec.project
    path.write_text(saved)
    sec.project.drain()


INJECTIONS = [
    pytest.param({"primary_key": "select; drop table x"}, "primary key column 'select; drop table x' is not a column",
                 id="primary-key"),
    pytest.param({"primary_key": ["select", 'order"; drop table x; --']},
                 """primary key column 'order"; drop table x; --' is not a column""", id="composite-key-part"),
    pytest.param({"ignore_columns": ['Mixed Case" ; drop table x; --']}, "is not a column of", id="ignore-columns"),
    pytest.param({"track_columns": ["order) from x; drop table x; --"]}, "is not a column of", id="track-columns"),
    pytest.param({"detail": {"columns": {"dot.ted\"; drop table x": "d"}}}, "is not a column of",
                 id="detail-columns"),
    pytest.param({"time": "order; drop table x"}, "column 'order; drop table x' is not a column of", id="time"),
    pytest.param({"name": "hostile; drop table x"}, "sync name 'hostile; drop table x' must be letters, digits",
                 id="sync-name"),
]


@pytest.mark.parametrize("change, message", INJECTIONS)
def test_config_identifiers_are_checked_against_real_columns(sec: Sec, hostile: Project, change: dict[str, Any],
                                                             message: str) -> None:
    edit_schema(hostile, lambda m: m["hostile"]["config"]["meta"]["eventbridge"].update(change))
    tables, state = _all_tables(sec.db), state_tables(sec.db)
    r = hostile.sync("sync", "-s", "hostile", extra_env=AWS_SECRETS_ENV)
    assert r.rc == 2, r.stdout + r.stderr
    line = next((ln for ln in r.stderr.splitlines() if message in ln), None)
    assert line is not None, r.stderr
    assert "model 'hostile'" in line and "hostile.config.meta.eventbridge" in line
    assert "Binder Error" not in r.stderr and "Parser Error" not in r.stderr  # refused before any SQL
    assert _x_rows(sec.db) == [(42,)]
    assert _all_tables(sec.db) == tables and state_tables(sec.db) == state
    assert hostile.drain() == {"crm-events": [], "default": []}


def test_state_schema_flag_is_an_identifier(sec: Sec) -> None:
    tables = _all_tables(sec.db)
    r = sec.project.sync("sync", "-s", "customers", "--state-schema", "eventbridge_state; drop table main.x",
                         extra_env=AWS_SECRETS_ENV)
    assert r.rc == 2
    assert "state_schema 'eventbridge_state; drop table main.x' is not a plain identifier" in r.stderr
    assert _all_tables(sec.db) == tables and _x_rows(sec.db) == [(42,)]
    assert sec.project.drain() == {"crm-events": [], "default": []}


def test_hostile_column_names_sync_and_diff(sec: Sec, hostile: Project) -> None:
    before_tables = _all_tables(sec.db)
    r = hostile.sync("sync", "-s", "hostile", extra_env=AWS_SECRETS_ENV)
    assert r.rc == 0, r.stderr
    events = [e for e in hostile.drain()["default"] if e["source"] == "com.acme.hostile"]
    assert sorted((e["detail"] for e in events), key=lambda d: d["select"]) == [
        dict(zip(HOSTILE_COLUMNS, [1, "x", "w", "q", "d"])), dict(zip(HOSTILE_COLUMNS, [2, "x2", "w2", "q2", "d2"]))]
    assert [list(e["detail"]) for e in events] == [HOSTILE_COLUMNS, HOSTILE_COLUMNS]  # names kept, relation order

    # a change in a column named with a space and capitals is found and published
    _dbt_run(hostile, "-s", "hostile", "--vars", "{hv: changed}")
    r = hostile.sync("sync", "-s", "hostile", extra_env=AWS_SECRETS_ENV)
    assert r.rc == 0, r.stderr
    assert r.sync("hostile")["sent"] == {"added": 0, "changed": 1, "removed": 0}
    [ev] = hostile.drain()["default"]
    assert ev["detail"] == dict(zip(HOSTILE_COLUMNS, [1, "changed", "w", "q", "d"]))
    state = delivered_rows(sec.db, "hostile")
    assert sorted((row["select"], row["Mixed Case"]) for row in state) == [(1, "changed"), (2, "x2")]
    # nothing dropped, one state table more
    assert _x_rows(sec.db) == [(42,)]
    assert _all_tables(sec.db) == before_tables | {(STATE_SCHEMA, "_eb_state__hostile")}
    # and it stays quiet: no change, nothing sent
    r = hostile.sync("sync", "-s", "hostile", extra_env=AWS_SECRETS_ENV)
    assert r.rc == 0 and r.sync("hostile")["sent"] == {"added": 0, "changed": 0, "removed": 0}


def test_column_name_with_a_double_quote(sec: Sec) -> None:
    project = sec.project
    path = project.dir / "models" / "schema.yml"
    saved = path.read_text()
    try:
        _add_model(project, "quoted", 'select 1 as id, \'v\' as "weird ""name""", 2 as "a""b"\n',
                   {"primary_key": "id", "source": "com.acme.quoted", "detail_type": "Quoted"})
        _dbt_run(project, "-s", "quoted")
        tables = _all_tables(sec.db)
        project.drain()
        r = project.sync("sync", "-s", "quoted", extra_env=AWS_SECRETS_ENV)
        assert _x_rows(sec.db) == [(42,)]
        assert _all_tables(sec.db) >= tables
        assert r.rc == 0, r.stderr
        [ev] = project.drain()["default"]
        assert ev["detail"] == {"id": 1, 'weird "name"': "v", 'a"b': 2}
    finally:
        path.write_text(saved)
        (project.dir / "models" / "quoted.sql").unlink(missing_ok=True)
