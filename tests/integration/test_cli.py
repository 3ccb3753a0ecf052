"""The CLI's flags, exit codes and error messages, on DuckDB."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import Project, canon, closed_port, details, edit_schema


@pytest.fixture
def project(tmp_path, local_aws) -> Project:
    return Project(tmp_path, "duckdb", local_aws)






def test_selection_uses_dbt_syntax(project: Project) -> None:
    project.build(day=1)
    r = project.sync("sync", "-s", "tag:orders", "web_events")
    assert r.rc == 0, r.stderr
    assert sorted(s["sync"] for s in r.results["syncs"]) == ["order_lines", "web_events"]
    ev = project.drain()
    assert ev["crm-events"] == []
    assert {e["source"] for e in ev["default"]} == {"com.acme.orders", "com.acme.web"}

    r = project.sync("sync", "--exclude", "order_lines", "web_events", "accounts")
    assert r.rc == 0, r.stderr
    assert sorted(s["sync"] for s in r.results["syncs"]) == ["customer_profiles", "customers_to_crm", "flaky"]
    ev = project.drain()
    assert len(ev["crm-events"]) == 5

    # --sync names a sync of another model: the selection matched, --sync left nothing
    r = project.sync("sync", "-s", "web_events", "--sync", "order_lines")
    assert r.rc == 0, r.stderr
    assert r.results["syncs"] == []
    assert "no selected model has the sync(s) order_lines (--select web_events" in r.stderr
    assert "matched no model" not in r.stderr


def test_full_refresh_resends_current_rows_as_added(project: Project) -> None:
    project.build(day=2)
    assert project.sync("sync", "-s", "customers").rc == 0
    first = project.drain()
    r = project.sync("sync", "-s", "customers", "--full-refresh")
    assert r.rc == 0, r.stderr
    again = project.drain()
    assert {e["detail-type"] for e in again["crm-events"]} == {"CustomerCreated"}
    assert canon(details(again["crm-events"])) == canon(details(first["crm-events"]))
    assert len(again["crm-events"]) == 5
    # and the state is whole again: a normal run finds nothing.
    assert project.sync("sync", "-s", "customers").rc == 0
    assert project.drain()["crm-events"] == []


def test_unreachable_endpoint_exits_2_and_writes_no_state(project: Project) -> None:
    project.build(day=1)
    r = project.sync("sync", "-s", "customers",
                     extra_env={"DBT_EVENTBRIDGE_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}"})
    assert r.rc == 2
    assert "could not reach EventBridge" in r.stderr
    assert "customers_to_crm" in r.stderr
    assert project.drain()["crm-events"] == []
    # nothing was recorded as delivered: the next run sends everything
    r = project.sync("sync", "-s", "customers")
    assert r.rc == 0
    assert len(project.drain()["crm-events"]) == 5


def test_missing_bus_is_a_clear_error(project: Project) -> None:
    project.build(day=1)
    edit_schema(project, lambda m: m["web_events"]["config"]["meta"]["eventbridge"].update(
        event_bus="no-such-bus"))
    r = project.sync("sync", "-s", "web_events")
    assert r.rc == 2
    assert "web_events" in r.stderr and "event bus" in r.stderr.lower()


def test_bad_config_fails_that_sync_only_with_a_clear_message(project: Project) -> None:
    def typo(models):
        models["order_lines"]["config"]["meta"]["eventbridge"]["detial_type"] = "x"

    project.build(day=1)
    edit_schema(project, typo)
    r = project.sync()
    assert r.rc == 2
    line = next(ln for ln in r.stderr.splitlines() if "detial_type" in ln)
    assert "model 'order_lines'" in line and "sync 'order_lines'" in line
    assert "order_lines.config.meta.eventbridge.detial_type" in line
    assert "Did you mean 'detail_type'?" in line
    # the other syncs ran
    assert r.sync("customers_to_crm")["status"] == "success"
    assert len(project.drain()["crm-events"]) == 5


def test_validate_lists_every_problem(project: Project) -> None:
    project.build(day=1)
    ok = project.sync("validate")
    assert ok.rc == 0, ok.stderr
    assert "OK: 6 sync(s) valid" in ok.stdout

    def break_things(models):
        crm = models["customers"]["config"]["meta"]["eventbridge"][0]
        crm["detail"]["template"] = '{% raw %}{"name": "{{ row.full_nam }}"}{% endraw %}'
        crm["source"] = "aws.crm"
        models["order_lines"]["config"]["meta"]["eventbridge"]["primary_key"] = ["order_id", "line_number"]
        models["web_events"]["config"]["meta"]["eventbridge"]["detail"] = {"template": "{% raw %}{{ row.x {% endraw %}"}
        models["accounts"]["config"]["meta"]["eventbridge"]["triggers"] = ["added", "deleted"]

    edit_schema(project, break_things)
    r = project.sync("validate")
    assert r.rc == 1
    err = r.stderr
    assert "full_nam" in err and "customers_to_crm" in err
    assert "starts with 'aws.'" in err
    assert "line_number" in err and "order_lines" in err
    assert "template syntax error" in err and "web_events" in err
    assert "unknown trigger 'deleted'" in err
    assert "5 problem(s)" in err
    assert "Traceback" not in err


def test_package_not_installed(project: Project) -> None:
    import shutil

    (project.dir / "packages.yml").unlink()
    (project.dir / "package-lock.yml").unlink()  # dbt 1.12 checks the installed packages against it
    shutil.rmtree(project.dir / "dbt_packages")
    # the package's own tests need the package; a user's project has none of them
    shutil.rmtree(project.dir / "models" / "package_tests")
    (project.dir / "tests" / "row_hash_is_unambiguous.sql").unlink()
    project.build(day=1)
    r = project.sync()
    assert r.rc == 2
    assert "dbt package 'dbt_eventbridge' is not installed" in r.stderr
    assert "packages.yml" in r.stderr


def test_result_file_and_exit_code_zero(project: Project) -> None:
    project.build(day=1)
    r = project.sync("sync", "-s", "customers")
    assert r.rc == 0
    assert r.results["exit_code"] == 0
    crm = r.sync("customers_to_crm")
    assert crm["sent"] == {"added": 5, "changed": 0, "removed": 0}
    assert crm["planned"] == {"added": 5, "changed": 0, "removed": 0}
    assert crm["rejected"] == 0 and crm["requests"] >= 1
    assert "OK" in r.stdout and "customers_to_crm" in r.stdout


def test_assumed_role_and_named_profile(project: Project, tmp_path: Path) -> None:
    """role_arn + external_id (STS on the local endpoint), and credentials from a named profile."""
    project.build(day=1)
    config = tmp_path / "aws_config"
    config.write_text("[profile analytics]\nregion = us-east-1\n"
                      "aws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret\n")
    env = {"AWS_CONFIG_FILE": str(config), "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    r = project.sync("sync", "-s", "customers", "--aws-profile", "analytics", extra_env=env)
    assert r.rc == 0, r.stderr
    assert len(project.drain()["crm-events"]) == 5
    project.build(day=2)
    r = project.sync("sync", "-s", "customers", vars_={"day": 2, "eventbridge": {
        "region": "us-east-1", "role_arn": "arn:aws:iam::123456789012:role/publisher",
        "external_id": "s3cr3t-external-id"}})
    assert r.rc == 0, r.stderr
    assert len(project.drain()["crm-events"]) == 4
    assert "s3cr3t-external-id" not in r.stdout + r.stderr + json.dumps(r.results)


def _sync_on_a_terminal(project: Project, *args: str) -> str:
    """Run `dbt-eventbridge sync` with stderr on a pseudo-terminal; returns what it wrote there."""
    import os
    import pty
    import subprocess

    from tests.integration.harness import BIN

    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([str(BIN / "dbt-eventbridge"), "sync", *args, *project.target_args],
                                cwd=project.dir, env=project.env, stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal closed: the process exited
                break
            if not chunk:
                break
            out += chunk
        assert proc.wait(timeout=120) == 0, out.decode(errors="replace")
        return out.decode(errors="replace")
    finally:
        os.close(master)


def test_progress_is_shown_on_a_terminal_only(project: Project) -> None:
    project.build(day=1)
    shown = _sync_on_a_terminal(project, "-s", "customers")
    assert "customers_to_crm: planned 5 · sent 5 (100%) · rejected 0 ·" in shown
    assert "events/s" in shown
    assert re.search(r"\r {20,}\r", shown)  # the line is cleared before the summary
    project.drain()
    quiet = _sync_on_a_terminal(project, "-s", "customers", "--full-refresh", "--quiet")
    assert "events/s" not in quiet
    project.drain()
    piped = project.sync("sync", "-s", "customers", "--full-refresh")  # stderr is a pipe, as in CI logs
    assert piped.rc == 0 and "events/s" not in piped.stderr
    assert len(project.drain()["crm-events"]) == 5


def test_workers_flag_reaches_the_result_file(project: Project) -> None:
    project.build(day=1)
    r = project.sync("sync", "-s", "order_lines", "--workers", "2",
                     extra_env={"DBT_EVENTBRIDGE_BATCH_SIZE": "2"})
    assert r.rc == 0, r.stderr
    assert r.results["settings"]["workers"] == 2
    res = r.sync("order_lines")
    ev = project.drain()["default"]
    assert sum(res["sent"].values()) == len(ev) > 2  # several chunks, published by the workers
    assert {e["source"] for e in ev} == {"com.acme.orders"}
    r = project.sync("sync", "--workers", "0")
    assert r.rc == 2 and "workers" in r.stderr


def test_duckdb_out_of_memory_names_the_setting(project: Project) -> None:
    project.build(day=1)
    r = project.sync("sync", "-s", "customers", extra_env={"DBT_EVENTBRIDGE_DUCKDB_MEMORY_LIMIT": "1KB"})
    assert r.rc == 2
    assert "duckdb_memory_limit" in r.stderr and "Traceback" not in r.stderr
    assert project.drain()["crm-events"] == []
    r = project.sync("sync", "-s", "customers")  # the default limit is plenty for this model
    assert r.rc == 0, r.stderr
    assert len(project.drain()["crm-events"]) == 5


def test_sync_leaves_dbts_own_artifacts_alone(project: Project) -> None:
    """A sync parses the project with its own --vars; what it writes goes to a folder of its
    own, so the user's target/ (manifest.json for `--state`, the partial parse of their next
    dbt command) stays exactly as their last dbt command left it."""
    project.build(day=1)
    target = project.dir / "target"
    before = {name: (target / name).read_bytes() for name in ("manifest.json", "partial_parse.msgpack")}
    sync = project.sync("-s", "order_lines")
    assert sync.rc == 0, sync.stderr
    validate = project.sync("validate")
    assert validate.rc == 0, validate.stdout + validate.stderr
    assert {name: (target / name).read_bytes() for name in before} == before
    assert (target / "dbt_eventbridge" / "partial_parse.msgpack").exists()  # ours, beside them
    assert not (target / "dbt_eventbridge" / "manifest.json").exists()  # nothing reads it: not written
    log = project.dir / "logs" / "dbt.log"
    log.write_text("")
    project.build(day=1)  # the user's next command, with the vars of their last one
    text = log.read_text()
    assert "Unable to do partial parsing" not in text and "Partial parsing enabled" in text, text[-2000:]


def test_a_sync_parses_only_what_changed_since_dbt_build_and_says_so(project: Project) -> None:
    """The first sync after `dbt build` starts from the build's partial-parse state: with the
    build's vars nothing is parsed again; after an edit, only what changed is parsed."""
    project.build(day=1)
    r = project.sync("-s", "order_lines", vars_={"day": 1})
    assert r.rc == 0, r.stdout + r.stderr
    files = r.results["parse"]["files"]
    assert files > 10 and r.results["parse"] == {"files": files, "parsed": 0}
    assert "the project is unchanged since the last parse: dbt parsed nothing again" in r.stdout
    model = project.dir / "models" / "order_lines.sql"
    model.write_text(model.read_text() + "\n-- edited\n")
    r = project.sync("-s", "order_lines", vars_={"day": 1})
    assert r.rc == 0, r.stdout + r.stderr
    parsed = r.results["parse"]["parsed"]
    assert 0 < parsed < files, r.results["parse"]
    assert f"dbt parsed {parsed} of the project's {files} files again" in r.stdout
    r = project.sync("-s", "order_lines", vars_={"day": 2})  # other vars: nothing earlier matches
    assert r.results["parse"] == {"files": files, "parsed": files}
    assert f"dbt parsed the whole project ({files} files)" in r.stdout


def test_runs_inspect_and_reset_need_no_parse_of_the_project(project: Project) -> None:
    """They need only the connection: they read the last parse as it is, so they work even
    while the project does not parse; a sync made since then is found by parsing."""
    project.build(day=1)
    assert project.sync("-s", "order_lines").rc == 0
    broken = project.dir / "models" / "broken.sql"
    broken.write_text("select {{ 1 + }}\n")  # a Jinja syntax error: dbt cannot parse the project
    runs = project.sync("runs")
    assert runs.rc == 0, runs.stdout + runs.stderr
    run_id = re.search(r"^([0-9a-f-]{36})\s+order_lines\s+success", runs.stdout, re.M)
    assert run_id, runs.stdout
    inspect = project.sync("inspect", run_id.group(1))
    assert inspect.rc == 0 and "order_lines" in inspect.stdout, inspect.stdout + inspect.stderr
    reset = project.sync("reset", "--sync", "order_lines", "--yes")
    assert reset.rc == 0, reset.stdout + reset.stderr
    assert "Reset order_lines: forgot 3 delivered row(s)" in reset.stdout
    sync = project.sync("-s", "order_lines")
    assert sync.rc == 2 and "dbt could not load the project" in sync.stderr, sync.stdout + sync.stderr
    broken.unlink()

    def second_sync(models: dict[str, Any]) -> None:
        meta = models["order_lines"]["config"]["meta"]
        meta["eventbridge"] = [dict(meta["eventbridge"]), {**meta["eventbridge"], "name": "order_lines_copy"}]

    edit_schema(project, second_sync)
    reset = project.sync("reset", "--sync", "order_lines_copy", "--yes")
    assert reset.rc == 0, reset.stdout + reset.stderr
    assert "order_lines_copy has no delivered state; nothing to reset." in reset.stdout
