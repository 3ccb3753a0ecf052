"""Bad inputs, run through the CLI as a user would: exit code, message, and an untouched state.

One project is built and synced once at day 1 (so there is delivered state to protect), then
rebuilt at day 2 (so there ARE changes that a failing run must not record). Every case starts
from a copy of that project and its DuckDB file, breaks one thing, runs `dbt-eventbridge`, and
checks:

- the documented exit code (2: could not run; 1: rows rejected / invalid, or `validate` found
  problems; 0: fine);
- one stderr line per problem that names the model, the sync, the YAML path where there is one,
  and a fix; no traceback (the harness asserts that on every run);
- the state tables in the DuckDB file, read after the CLI exited, are exactly as before (or,
  for rejected rows, keep exactly those rows out);
- nothing was published when the sync could not run.
"""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools.fault_endpoint import FaultEndpoint, RequestFault, _error
from tests.integration.harness import BIN, CliResult, Project, closed_port, edit_schema, state_tables

STATE_SCHEMA = "eventbridge_state"
OL = "order_lines"  # the single-sync model most cases break: `-s order_lines` runs nothing else
OL_PATH = "order_lines.config.meta.eventbridge"
ALL_SYNCS = ("accounts", "customer_profiles", "customers_to_crm", "flaky", "order_lines", "web_events")


# --------------------------------------------------------------------------------------------
# Fault endpoints the devtools do not have


class RefusingEndpoint(FaultEndpoint):
    """Every PutEvents request fails as a whole with one AWS error code (e.g. ExpiredTokenException)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__()
        self.code, self.message, self.status = code, message, status

    def _answer(self, headers: Any, body: bytes) -> tuple[int, dict[str, Any]] | None:
        entries = list(json.loads(body or b"{}").get("Entries") or [])
        with self._lock:
            self._requests.append(_Req(len(self._requests) + 1, entries))
            self._faults[self.code] += 1
        return _error(self.status, self.code, self.message)


@dataclass
class _Req:
    number: int
    entries: list[dict[str, Any]]


class StsDenied:
    """An STS endpoint that refuses sts:AssumeRole as AWS does (HTTP 403, XML AccessDenied)."""

    ERROR = ('<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
             '<Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:user/ci is not authorized to '
             'perform: sts:AssumeRole on resource: arn:aws:iam::123456789012:role/publisher</Message></Error>'
             '<RequestId>{id}</RequestId></ErrorResponse>')

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.accepted: list[Any] = []  # never accepts anything; same interface as FaultEndpoint

    def __enter__(self) -> StsDenied:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.calls.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
                data = outer.ERROR.format(id=uuid.uuid4()).encode()
                self.send_response(403)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.endpoint_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()




# --------------------------------------------------------------------------------------------
# The shared project


@dataclass
class Base:
    project: Project
    tmp: Path
    pristine: Path

    @property
    def db(self) -> Path:
        return self.project.db


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, local_aws: Any) -> Base:
    tmp = tmp_path_factory.mktemp("bad_inputs")
    project = Project(tmp, "duckdb", local_aws)
    project.build(day=1)
    first = project.sync()
    assert first.rc == 1, first.stderr  # the sample accounts have NULL / duplicated keys on purpose
    for name in ALL_SYNCS:
        assert first.sync(name)["status"] in ("success", "partial"), first.stdout + first.stderr
    project.build(day=2)
    project.drain()
    pristine = tmp / "pristine"
    shutil.copytree(project.dir, pristine / "project", symlinks=True)
    for f in tmp.glob("warehouse.duckdb*"):
        shutil.copy2(f, pristine / f.name)
    b = Base(project, tmp, pristine)
    # day 2 has changes for order_lines (A-1/2 changed, B-7/1 removed, B-7/2 added): a broken
    # run that recorded anything would show in the state.
    assert len(_ol_state(state_tables(b.db))) == 3
    return b


@pytest.fixture
def project(base: Base) -> Project:
    """A fresh copy of the day-2 project and warehouse for each case."""
    shutil.rmtree(base.project.dir)
    shutil.copytree(base.pristine / "project", base.project.dir, symlinks=True)
    for f in base.tmp.glob("warehouse.duckdb*"):
        f.unlink()
    for f in base.pristine.glob("warehouse.duckdb*"):
        shutil.copy2(f, base.tmp / f.name)
    base.project.drain()
    return base.project




def _ol_state(snap: dict[str, list[tuple]]) -> dict[tuple, tuple]:
    return {tuple(r[:2]): r for r in snap[f"_eb_state__{OL}"]}




def _add_model(project: Project, name: str, sql: str, sync: dict[str, Any]) -> None:
    (project.dir / "models" / f"{name}.sql").write_text(sql)
    path = project.dir / "models" / "schema.yml"
    doc = yaml.safe_load(path.read_text())
    doc["models"].append({"name": name, "config": {"meta": {"eventbridge": sync}}})
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


def _dbt_run(project: Project, *args: str) -> None:
    project.run_ok([str(BIN / "dbt"), "run", "--quiet", *project.target_args, *args])


def _set_project_setting(project: Project, line: str) -> None:
    f = project.dir / "dbt_project.yml"
    text = f.read_text()
    assert "    region: us-east-1\n" in text
    f.write_text(text.replace("    region: us-east-1\n", f"    region: us-east-1\n    {line}\n"))


# --------------------------------------------------------------------------------------------
# Setups (each breaks one thing in the project copy)


def ol(**changes: Any) -> Callable[[Project], None]:
    """Set keys of the order_lines sync; a value of None removes the key."""
    def setup(project: Project) -> None:
        def edit(models: dict[str, Any]) -> None:
            eb = models[OL]["config"]["meta"]["eventbridge"]
            for k, v in changes.items():
                if v is None:
                    eb.pop(k, None)
                else:
                    eb[k] = v
        edit_schema(project, edit)
    return setup


def _duplicate_name(project: Project) -> None:
    # The accounts sync takes the name of the flaky sync: which one "owns" the state table
    # `flaky` is ambiguous, so neither may run.
    edit_schema(project, lambda m: m["accounts"]["config"]["meta"]["eventbridge"].update(name="flaky"))


def _no_package(project: Project) -> None:
    (project.dir / "packages.yml").unlink()
    shutil.rmtree(project.dir / "dbt_packages")
    # the package's own test models need it; a user's project has none of them
    shutil.rmtree(project.dir / "models" / "package_tests")
    (project.dir / "tests" / "row_hash_is_unambiguous.sql").unlink()


def _corrupt_run_results(project: Project) -> None:
    (project.dir / "target" / "run_results.json").write_text('{"metadata": {"invocation_id": "x"}, "resu')


def _never_built(project: Project) -> None:
    _add_model(project, "never_built", "select 1 as id\n",
               {"primary_key": "id", "source": "com.acme.never", "detail_type": "Never"})


def _empty_new_model(project: Project) -> None:
    _add_model(project, "empty_model", "select 1 as id, 'x' as v where false\n",
               {"primary_key": "id", "source": "com.acme.empty", "detail_type": "Empty"})
    _dbt_run(project, "-s", "empty_model")


def _emptied_customers(project: Project) -> None:
    f = project.dir / "models" / "customers.sql"
    f.write_text(f.read_text().rstrip() + "\n  and false\n")
    _dbt_run(project, "-s", "customers", "--vars", "{day: 2}")


def _unknown_setting(project: Project) -> None:
    _set_project_setting(project, "regoin: eu-west-1")


def _templated_role_arn(project: Project) -> None:
    # Natural to write, since dbt_project.yml takes env_var() elsewhere; but dbt does not
    # render Jinja inside `vars:`, so this is the literal text, not an ARN.
    _set_project_setting(project, "role_arn: \"{{ env_var('EB_ROLE_ARN') }}\"")


def _negative_concurrency(project: Project) -> None:
    _set_project_setting(project, "concurrency: -1")


# --------------------------------------------------------------------------------------------
# State expectations


def untouched(before: dict, after: dict) -> None:
    assert after == before


def kept_out(removed: tuple[tuple, ...] = (), added: tuple[tuple, ...] = ()) -> Callable[[dict, dict], None]:
    """order_lines rows that were rejected keep their old state; only delivered rows moved.

    `removed` / `added`: keys whose `removed` / `added` event was delivered (gone from / new in
    the state). Every other key keeps exactly its day-1 state row, so the rejected changes are
    planned again on the next run.
    """
    def check(before: dict, after: dict) -> None:
        old, new = _ol_state(before), _ol_state(after)
        assert set(new) == (set(old) - set(removed)) | set(added)
        for key in set(new) - set(added):
            assert new[key] == old[key], key
        # no plan or journal left behind, no lock held
        assert set(after) == set(before)
        assert [t for t in after if t.startswith("_eb_lock__")] == []
        for table in before:
            if table not in (f"_eb_state__{OL}", "_eb_layouts"):
                assert after[table] == before[table], table
        strip = lambda rows: sorted(r[:3] for r in rows)  # noqa: E731 (the commit's time moves)
        assert strip(after["_eb_layouts"]) == strip(before["_eb_layouts"])
    return check


def new_empty_state(before: dict, after: dict) -> None:
    assert after["_eb_state__empty_model"] == []  # a first run of an empty model records an empty state
    mine = ("_eb_state__empty_model", "_eb_layouts", "_eb_objects")
    assert {k: v for k, v in after.items() if k not in mine} == {k: v for k, v in before.items() if k not in mine}


def customers_all_removed(before: dict, after: dict) -> None:
    assert after["_eb_state__customers_to_crm"] == [] and after["_eb_state__customer_profiles"] == []
    assert before["_eb_state__customers_to_crm"] and before["_eb_state__customer_profiles"]
    for table in before:
        if table not in ("_eb_state__customers_to_crm", "_eb_state__customer_profiles", "_eb_layouts"):
            assert after[table] == before[table], table


def _both_refused(r: CliResult) -> None:
    """Neither of two syncs sharing a name may run: either could own the state table."""
    named = [s for s in r.results["syncs"] if s["sync"] == "flaky"]
    assert sorted(s["model"] for s in named) == ["accounts", "flaky"], named
    assert all(s["status"] == "error" for s in named), named
    assert "statement failed in the warehouse" not in r.stderr, r.stderr


# --------------------------------------------------------------------------------------------
# The table


@dataclass
class Case:
    setup: Callable[[Project], None] | None = None
    args: tuple[str, ...] = ("sync", "-s", OL)
    env: dict[str, str] = field(default_factory=dict)
    vars_: dict[str, Any] | None = None
    endpoint: Callable[[], Any] | None = None  # a FaultEndpoint-like context manager
    rc: int = 2
    line: tuple[str, ...] = ()            # all in ONE stderr line: what, where, model, sync, fix
    also: tuple[str, ...] = ()            # anywhere in stdout + stderr
    state: Callable[[dict, dict], None] = untouched
    published: int = 0                    # events that reached moto (both buses)
    rejected: dict[tuple, str] | None = None  # (op, key...) -> AWS code / our reason code
    one_line: bool = True                 # the message is a single line
    check: Callable[[CliResult], None] | None = None


MODEL_SYNC = f"model '{OL}', sync '{OL}'"
SYNC_FAILED = f"ERROR   {OL} ({OL}): {MODEL_SYNC}"
EXPIRED = "The security token included in the request is expired"
DENIED = "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: events:PutEvents"
ROLE = {"DBT_EVENTBRIDGE_ROLE_ARN": "arn:aws:iam::123456789012:role/publisher",
        "DBT_EVENTBRIDGE_EXTERNAL_ID": "ext-id-for-bad-inputs"}
NO_REGION = {"AWS_REGION": "", "AWS_DEFAULT_REGION": "", "AWS_CONFIG_FILE": "/nonexistent/aws-config",
             "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials"}
OL_REJECTED_ALL = lambda code: {("changed", "A-1", 2): code, ("added", "B-7", 2): code,  # noqa: E731
                                ("removed", "B-7", 1): code}
BUG_DUP = ("BUG: of two syncs sharing a name, one still runs, and which one depends on the manifest's node "
           "order: here the accounts sync renamed 'flaky' ran against the flaky sync's state table (a Binder "
           "Error this time; with matching key columns it takes the state over and publishes removals) while "
           "the real owner is the one reported as the duplicate")
BUG_WAREHOUSE = ("BUG: a warehouse that cannot be opened is reported as 'unexpected IOException ... please report "
                 "it', with no result file, instead of a clear connection error")
BUG_MULTILINE = ("BUG: dbt's parse error is embedded with its newlines, so the problem ('dbt found 1 package(s) "
                 "... Run \"dbt deps\"') lands on a second stderr line, and the fix offered is about flags, not "
                 "`dbt deps`")
BUG_ROLE_ARN = ("BUG: settings are used as written and role_arn is never checked: dbt does not render Jinja in "
                "`vars:`, so role_arn \"{{ env_var('EB_ROLE_ARN') }}\" goes to sts:AssumeRole as the ARN itself "
                "(moto accepts it: the run publishes and exits 0); the same happens to an external_id template")
BUG_STS = ("BUG: when sts:AssumeRole is refused, botocore's logger prints a Python traceback on stderr before our "
           "one-line message")

CASES: list[Any] = [
    # -- the sync's config (exit 2: that sync does not run)
    pytest.param(Case(ol(evnt_bus="crm-events"),
                      line=(SYNC_FAILED, "unknown key 'evnt_bus'", f"models/schema.yml: {OL_PATH}.evnt_bus",
                            "Did you mean 'event_bus'?")), id="typo-in-config-key"),
    pytest.param(Case(ol(primary_key=5),
                      line=(SYNC_FAILED, "expected a column name or a list of column names, got 5",
                            f"models/schema.yml: {OL_PATH}.primary_key", "Write a column name")),
                 id="primary-key-wrong-type"),
    pytest.param(Case(ol(triggers=7),
                      line=(SYNC_FAILED, "expected a list or mapping of added/changed/removed, got 7",
                            f"models/schema.yml: {OL_PATH}.triggers", "triggers: [added, changed]")),
                 id="triggers-wrong-type"),
    pytest.param(Case(ol(enabled="yes"),
                      line=(SYNC_FAILED, "expected true or false, got 'yes'", f"models/schema.yml: {OL_PATH}.enabled",
                            "enabled: false")), id="enabled-wrong-type"),
    pytest.param(Case(ol(primary_key=["order_id", "line_number"]),
                      line=(SYNC_FAILED, "primary key column 'line_number' is not a column of",
                            "(columns: order_id, line_no, sku, quantity, amount)", f"{OL_PATH}.primary_key",
                            "Fix the name")), id="primary-key-column-missing"),
    pytest.param(Case(ol(primary_key=None),
                      line=(SYNC_FAILED, "'primary_key' is required", f"models/schema.yml: {OL_PATH}.primary_key",
                            "primary_key: customer_id")), id="no-primary-key"),
    pytest.param(Case(ol(detail={"template": '{% raw %}{"q": {{ row.quantity }{% endraw %}'}),
                      line=(SYNC_FAILED, "template syntax error: unexpected '}'", f"{OL_PATH}.detail.template",
                            "Fix the Jinja syntax")), id="template-syntax-error"),
    pytest.param(Case(ol(detail={"template": '{% raw %}{"q": {{ row.quantiy }}}{% endraw %}'}),
                      line=(SYNC_FAILED, "the template reads column(s) quantiy that the model does not have",
                            f"{OL_PATH}.detail.template", "Fix the column name")),
                 id="template-names-missing-column"),
    pytest.param(Case(ol(detail={"template_file": "eventbridge/no_such.json.j2"}),
                      line=(SYNC_FAILED, "template file 'eventbridge/no_such.json.j2' does not exist",
                            f"{OL_PATH}.detail.template_file", "relative to the dbt project folder")),
                 id="template-file-missing"),
    pytest.param(Case(ol(detail={"column": "payload_json"}),
                      line=(SYNC_FAILED, "column 'payload_json' is not a column of", OL_PATH,
                            "add the column to the model")), id="detail-column-missing"),
    pytest.param(Case(ol(source="aws.orders"),
                      line=(SYNC_FAILED, "source 'aws.orders' starts with 'aws.'",
                            f"models/schema.yml: {OL_PATH}.source", "such as com.acme.crm")),
                 id="source-starts-with-aws"),
    pytest.param(Case(ol(detail_type="D" * 129),
                      line=(SYNC_FAILED, "129 characters long; EventBridge allows at most 128",
                            f"models/schema.yml: {OL_PATH}.detail_type", "Shorten it")),
                 id="detail-type-over-128"),
    pytest.param(Case(ol(event_bus="crm events!"),
                      line=(SYNC_FAILED, "'crm events!' is neither an event bus name nor an event bus ARN",
                            f"models/schema.yml: {OL_PATH}.event_bus", "Use a name like 'crm-events'")),
                 id="invalid-bus-name"),
    pytest.param(Case(ol(event_bus="arn:aws:events:us-east-1:12345:event-bus/crm-events"),
                      line=(SYNC_FAILED, "is neither an event bus name nor an event bus ARN",
                            f"models/schema.yml: {OL_PATH}.event_bus", "an ARN like")), id="invalid-bus-arn"),
    pytest.param(Case(_duplicate_name, args=("sync", "-s", "accounts", "flaky"),
                      line=("the sync name 'flaky' is also used by model", "config.meta.eventbridge.name",
                            "must be unique"), check=_both_refused),
                 id="two-syncs-same-name"),

    # -- rows that cannot be sent (exit 1: the rest is delivered, those rows stay out of the state)
    pytest.param(Case(ol(detail={"template": '{% raw %}{% if row.line_no == 2 %}"only text"{% else %}'
                                             '{"order": "{{ row.order_id }}"}{% endif %}{% endraw %}'}),
                      rc=1, line=(f"{OL}: rejected changed key", '"A-1"', "InvalidDetail", "not an object"),
                      state=kept_out(removed=(("B-7", 1),)), published=1,
                      rejected={("changed", "A-1", 2): "InvalidDetail", ("added", "B-7", 2): "InvalidDetail"}),
                 id="detail-renders-to-non-object"),
    pytest.param(Case(ol(detail={"template": '{% raw %}{"per": {{ 10 // (row.quantity - 3) }}}{% endraw %}'}),
                      rc=1, line=(f"{OL}: rejected changed key", "TemplateError", "ZeroDivisionError"),
                      state=kept_out(removed=(("B-7", 1),), added=(("B-7", 2),)), published=2,
                      rejected={("changed", "A-1", 2): "TemplateError"}),
                 id="template-fails-for-one-row"),
    pytest.param(Case(env={"DBT_EVENTBRIDGE_MAX_REQUEST_BYTES": "150"}, rc=1,
                      line=(f"{OL}: rejected", "EntryTooLarge", "the request size limit is 150 bytes"),
                      state=kept_out(), rejected=OL_REJECTED_ALL("EntryTooLarge")), id="entry-over-size-limit"),
    pytest.param(Case(ol(time="sku"), rc=1,
                      line=(f"{OL}: rejected", "InvalidArgument", "time column value 'SKU-", "is not a timestamp"),
                      state=kept_out(), rejected=OL_REJECTED_ALL("InvalidArgument")),
                 id="time-column-not-a-timestamp"),

    # -- AWS (exit 2: nothing published, no state; per-entry refusals are rejected rows, exit 1)
    pytest.param(Case(env={"DBT_EVENTBRIDGE_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}"},
                      line=(f"ERROR   {OL} ({OL})", "could not reach EventBridge", "Check endpoint_url")),
                 id="unreachable-endpoint"),
    pytest.param(Case(endpoint=lambda: FaultEndpoint(request_faults=[RequestFault("auth", first=1000)]),
                      line=(f"ERROR   {OL} ({OL})", "AWS refused the request (UnrecognizedClientException)",
                            "Check the credentials")), id="bad-credentials"),
    pytest.param(Case(endpoint=lambda: RefusingEndpoint("ExpiredTokenException", EXPIRED),
                      line=(f"ERROR   {OL} ({OL})", "AWS refused the request (ExpiredTokenException)", EXPIRED,
                            "Check the credentials")), id="expired-credentials"),
    pytest.param(Case(endpoint=lambda: RefusingEndpoint("AccessDeniedException", DENIED),
                      line=(f"ERROR   {OL} ({OL})", "AWS refused the request (AccessDeniedException)", DENIED,
                            "events:PutEvents permission on the bus")), id="access-denied-request"),
    pytest.param(Case(endpoint=lambda: FaultEndpoint(reject=lambda e: ("AccessDeniedException", DENIED)), rc=1,
                      line=(f"{OL}: rejected", "AccessDeniedException", DENIED), state=kept_out(),
                      rejected=OL_REJECTED_ALL("AccessDeniedException")), id="access-denied-per-entry"),
    pytest.param(Case(endpoint=StsDenied, env=ROLE,
                      line=(f"ERROR   {OL} ({OL})", "AccessDenied", "sts:AssumeRole", "Check the credentials")),
                 id="role-cannot-be-assumed"),
    pytest.param(Case(env=NO_REGION, vars_={"eventbridge": {"state_schema": STATE_SCHEMA}},
                      line=("no AWS region is set", "vars.eventbridge.region", "Set vars.eventbridge.region")),
                 id="missing-region"),
    pytest.param(Case(args=("sync", "-s", OL, "--aws-profile", "no-such-profile"),
                      env={"AWS_CONFIG_FILE": "/nonexistent/aws-config"},
                      line=("the AWS profile 'no-such-profile' is not in your AWS config", "--aws-profile",
                            "AWS_CONFIG_FILE")), id="unknown-aws-profile"),

    # -- project settings (exit 2: nothing runs)
    pytest.param(Case(_unknown_setting,
                      line=("unknown setting 'regoin'", "dbt_project.yml: vars.eventbridge.regoin",
                            "Did you mean 'region'?")), id="unknown-setting"),
    pytest.param(Case(_templated_role_arn, env={"EB_ROLE_ARN": "arn:aws:iam::123456789012:role/publisher"},
                      line=("role_arn", "vars.eventbridge.role_arn")),
                 id="role-arn-not-an-arn"),
    pytest.param(Case(_negative_concurrency,
                      line=("setting 'concurrency' must be a positive whole number, got -1",
                            "vars.eventbridge.concurrency", "Write a plain number")), id="negative-concurrency"),
    pytest.param(Case(env={"DBT_EVENTBRIDGE_MAX_REQUEST_BYTES": "2000000"},
                      line=("max_request_bytes 2000000 is above EventBridge's limit",
                            "vars.eventbridge.max_request_bytes", "Use 1048575 or less")),
                 id="max-request-bytes-over-aws-limit"),

    # -- the dbt project (exit 2)
    pytest.param(Case(_no_package,
                      line=("the dbt package 'dbt_eventbridge' is not installed", "packages.yml", "dbt deps")),
                 id="package-not-installed"),
    pytest.param(Case(args=("sync", "--project-dir", "models"),
                      line=("no dbt_project.yml in ", "/project/models", "pass --project-dir")),
                 id="no-dbt-project-yml"),
    pytest.param(Case(lambda p: shutil.rmtree(p.dir / "dbt_packages"),
                      line=("dbt could not load the project", 'Run "dbt deps"')),
                 id="dbt-deps-never-run"),
    pytest.param(Case(_corrupt_run_results,
                      line=("run_results.json is not a readable run_results.json", "JSONDecodeError",
                            "run dbt again")), id="corrupt-run-results"),
    pytest.param(Case(_never_built, args=("sync", "-s", "never_built"),
                      line=("ERROR   never_built (never_built)", "model 'never_built', sync 'never_built'",
                            '"main"."never_built" does not exist', "Run `dbt run` or `dbt build`")),
                 id="relation-does-not-exist"),
    pytest.param(Case(args=("sync", "-s", OL, "--vars", "{day: [2"),
                      line=("--vars is not valid YAML",), one_line=False), id="vars-not-yaml"),
    pytest.param(Case(env={"DBT_DUCKDB_PATH": "/nonexistent-dir/warehouse.duckdb"},
                      line=("the warehouse", "/nonexistent-dir/warehouse.duckdb"),
                      also=("eventbridge_sync_results.json",)),
                 id="warehouse-cannot-be-opened"),

    # -- empty models (README: every change is delivered; an empty first run sends nothing)
    pytest.param(Case(_empty_new_model, args=("sync", "-s", "empty_model"), rc=0, state=new_empty_state,
                      also=("OK      empty_model (empty_model): sent 0 added / 0 changed / 0 removed",)),
                 id="empty-model-first-run"),
    pytest.param(Case(_emptied_customers, args=("sync", "-s", "customers"), rc=0, state=customers_all_removed,
                      published=5, also=("customers_to_crm (customers): sent 0 added / 0 changed / 5 removed",)),
                 id="model-emptied-below-guard-minimum"),
    pytest.param(Case(_emptied_customers, args=("sync", "-s", "customers"), rc=1,
                      vars_={"eventbridge": {"region": "us-east-1", "removal_guard_min_rows": 1}},
                      also=("BLOCKED customers_to_crm (customers)", "would remove 5 of the 5 delivered rows",
                            "Nothing was sent or recorded", "--allow-mass-removal")),
                 id="model-emptied-mass-removal-guard"),

    # -- validate: lists problems, exit 1, writes nothing
    pytest.param(Case(ol(evnt_bus="crm-events"), args=("validate",), rc=1,
                      line=(f"- {MODEL_SYNC}: unknown key 'evnt_bus'", f"models/schema.yml: {OL_PATH}.evnt_bus",
                            "Did you mean 'event_bus'?"), also=("1 problem(s) found, in 1 sync(s).",)),
                 id="validate-typo"),
    pytest.param(Case(ol(primary_key=["order_id", "line_number"],
                         detail={"template": '{% raw %}{"q": {{ row.qty }}}{% endraw %}'}),
                      args=("validate",), rc=1,
                      line=(f"- {MODEL_SYNC}: the template reads column(s) qty", f"{OL_PATH}.detail.template"),
                      also=("primary key column 'line_number' is not a column of", "2 problem(s) found")),
                 id="validate-missing-columns"),
    pytest.param(Case(_never_built, args=("validate", "-s", "never_built"), rc=1,
                      line=("- model 'never_built', sync 'never_built': the relation", "does not exist",
                            "never_built.config.meta.eventbridge", "Run `dbt run` or `dbt build` first")),
                 id="validate-relation-does-not-exist"),
    pytest.param(Case(_duplicate_name, args=("validate",), rc=1,
                      line=("model 'accounts', sync 'flaky': the sync name 'flaky' is also used by model 'flaky'",
                            "accounts.config.meta.eventbridge.name", "set a distinct `name`"),
                      also=("model 'flaky', sync 'flaky': the sync name 'flaky' is also used by model 'accounts'",)),
                 id="validate-two-syncs-same-name"),
    pytest.param(Case(_no_package, args=("validate",), rc=1,
                      line=("the dbt package 'dbt_eventbridge' is not installed", "dbt deps")),
                 id="validate-package-not-installed"),
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input(project: Project, base: Base, case: Case) -> None:
    if case.setup:
        case.setup(project)
    before = state_tables(base.db)
    endpoint = case.endpoint() if case.endpoint else None
    if endpoint is not None:
        with endpoint:
            r = project.sync(*case.args, vars_=case.vars_,
                             extra_env={**case.env, "DBT_EVENTBRIDGE_ENDPOINT_URL": endpoint.endpoint_url})
        assert endpoint.accepted == []
    else:
        r = project.sync(*case.args, vars_=case.vars_, extra_env=case.env)
    after = state_tables(base.db)  # the CLI has exited
    out = r.stdout + r.stderr

    assert r.rc == case.rc, out
    if r.results is not None:
        assert r.results["exit_code"] == r.rc
    for text in case.also:
        assert text in out, out
    if case.line:
        hits = [ln for ln in r.stderr.splitlines() if all(t in ln for t in case.line)]
        assert hits, f"no stderr line has all of {case.line}:\n{r.stderr}"
        if case.one_line and hits[0].startswith(("Error:", "- ")):
            # one problem, one paragraph: a single line that ends as a sentence
            assert len(hits) == 1, r.stderr
            assert hits[0].rstrip().endswith((".", "?")), hits[0]
    assert "Traceback" not in out, out
    assert "Error: unexpected" not in out and "please report" not in out, out
    if case.check is not None:
        case.check(r)
    if case.rejected is not None:
        got = {(x["op"], *x["key"].values()): x["code"] for s in r.results["syncs"] for x in s["rejections"]}
        assert got == case.rejected
        assert sum(s["rejected"] for s in r.results["syncs"]) == len(case.rejected)
    events = project.drain()
    assert sum(len(v) for v in events.values()) == case.published, events
    case.state(before, after)
    assert not any(t.startswith(("_eb_plan__", "_eb_acks__")) for t in after), sorted(after)


def test_every_config_problem_names_the_schema_file(project: Project) -> None:
    def break_things(models: dict[str, Any]) -> None:
        models[OL]["config"]["meta"]["eventbridge"]["primary_key"] = ["order_id", "line_number"]
        models["web_events"]["config"]["meta"]["eventbridge"]["detail"] = {
            "template": '{% raw %}{"p": {{ row.paylod }}}{% endraw %}'}
        models["accounts"]["config"]["meta"]["eventbridge"]["name"] = "flaky"
        models["flaky"]["config"]["meta"]["eventbridge"]["evnt_bus"] = "default"

    edit_schema(project, break_things)
    r = project.sync("validate")
    assert r.rc == 1
    problems = [ln for ln in r.stderr.splitlines() if ln.startswith("- ")]
    assert len(problems) == 5, r.stderr  # the shared name is reported on both syncs
    # the parse-time problem has it ...
    assert any("(at models/schema.yml: flaky.config.meta.eventbridge.evnt_bus)" in p for p in problems)
    # ... so every other one must too
    for p in problems:
        assert "(at models/schema.yml: " in p, p


def test_mass_removal_guard_is_explained_on_stderr_even_when_quiet(project: Project) -> None:
    _emptied_customers(project)
    before = state_tables(project.dir.parent / "warehouse.duckdb")
    r = project.sync("sync", "-s", "customers", "--quiet",
                     vars_={"eventbridge": {"region": "us-east-1", "removal_guard_min_rows": 1}})
    assert r.rc == 1
    assert state_tables(project.dir.parent / "warehouse.duckdb") == before
    line = next((ln for ln in r.stderr.splitlines() if "customers_to_crm" in ln), "")
    assert "would remove 5 of the 5 delivered rows" in line and "--allow-mass-removal" in line, r.stderr


def test_mistyped_project_dir_creates_nothing(project: Project, tmp_path: Path) -> None:
    typo = tmp_path / "analytcs" / "dbt"
    r = project.sync("sync", "--project-dir", str(typo))
    assert r.rc == 2
    line = next(ln for ln in r.stderr.splitlines() if "no dbt_project.yml" in ln)
    assert str(typo) in line and "pass --project-dir" in line
    assert not (tmp_path / "analytcs").exists(), sorted(p.name for p in tmp_path.rglob("*"))
