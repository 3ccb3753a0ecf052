"""`dbt-eventbridge build`: dbt's build in the CLI's process, each synced model synced as soon
as it and its tests pass, through the real CLI against the local EventBridge."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from tests.integration.harness import Project, details

# A model downstream of `customers` (skipped by dbt when a test of customers fails), and a
# slow one (a Python model that sleeps), so that a sync can be seen to finish mid-build.
CHILD_SQL = "select customer_id, email_address from {{ ref('customers') }}\n"
CHILD_YML = """version: 2
models:
  - name: customer_emails
    config:
      meta:
        eventbridge:
          primary_key: customer_id
          source: com.acme.emails
          detail_type: CustomerEmail
"""
SLOW_PY = """import time


def model(dbt, session):
    dbt.config(materialized="table")
    time.sleep(float(dbt.config.get("seconds") or 6))
    return session.sql("select 1 as id")
"""


@pytest.fixture
def project(tmp_path, local_aws) -> Project:
    p = Project(tmp_path, "duckdb", local_aws)
    (p.dir / "models" / "customer_emails.sql").write_text(CHILD_SQL)
    (p.dir / "models" / "customer_emails.yml").write_text(CHILD_YML)
    (p.dir / "models" / "slow_model.py").write_text(SLOW_PY)
    return p


def build(p: Project, env: dict[str, str] | None = None, **vars_: Any) -> Any:
    """`dbt-eventbridge build` with dbt's flags; `accounts` and `web_events` (whose duplicated keys
    and bad payloads make their syncs exit 1 by design) are left out with dbt's own --exclude."""
    return p.sync("build", "--exclude", "accounts", "web_events", "--vars", json.dumps({"day": 1, **vars_}),
                  extra_env=env)


def when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)


def test_build_syncs_each_model_once_it_and_its_tests_pass(project: Project) -> None:
    r = build(project, env={"DBT_EVENTBRIDGE_BUILD_SYNCS": "2"})  # two syncs at a time beside dbt's threads
    assert r.rc == 0, r.stdout + r.stderr
    assert r.results is not None and r.results["exit_code"] == 0
    synced = {s["sync"]: s for s in r.results["syncs"]}
    assert {n: s["status"] for n, s in synced.items()} == dict.fromkeys(
        ("customers_to_crm", "customer_profiles", "customer_emails", "order_lines", "flaky"), "success")
    ev = project.drain()
    assert len(details(ev["crm-events"], "CustomerCreated")) == 5
    emails = details(ev["default"], "CustomerEmail")
    assert len(emails) == 5 and {"customer_id", "email_address"} <= set(emails[0]), emails
    # dbt's own artifacts, as `dbt build` writes them, from the one parse and the build
    run_results = json.loads((project.dir / "target" / "run_results.json").read_text())
    assert run_results["args"]["which"] == "build"
    assert (project.dir / "target" / "manifest.json").exists()
    statuses = {x["unique_id"]: x["status"] for x in run_results["results"]}
    assert statuses["model.eventbridge_integration.slow_model"] == "success"
    # the customers' syncs ran while dbt was still building the slow model
    slow = next(x for x in run_results["results"] if x["unique_id"].endswith(".slow_model"))
    slow_done = when(next(t["completed_at"] for t in slow["timing"] if t["name"] == "execute"))
    assert when(synced["customers_to_crm"]["finished_at"]) < slow_done, (synced["customers_to_crm"], slow["timing"])
    assert r.results["dbt_invocation_id"] == run_results["metadata"]["invocation_id"]
    assert r.results["settings"]["build_syncs"] == 2
    # the run history has every sync of the run, as `sync` records them
    runs = project.sync("runs", "--log-format", "json")
    assert runs.rc == 0, runs.stderr
    rows = [json.loads(line)["data"] for line in runs.stdout.splitlines() if line.startswith("{")]
    assert sorted(x["sync_name"] for x in rows if x.get("run_id") == r.results["run_id"]) == sorted(synced), rows


def test_build_holds_back_failed_models_failed_tests_and_what_dbt_skipped(project: Project) -> None:
    assert build(project).rc == 0
    project.drain()

    # day 2: flaky fails, a test of customers fails (so dbt skips customer_emails)
    r = build(project, day=2, break_flaky=True, fail_customer_test=True)
    assert r.rc == 1, r.stdout + r.stderr  # dbt's failure outranks our exit code
    assert r.results is not None and r.results["exit_code"] == 0, r.stdout + r.stderr  # every sync that ran delivered
    flaky = r.sync("flaky")
    assert flaky["status"] == "skipped" and "failed in the last dbt invocation (build" in flaky["message"]
    for name in ("customers_to_crm", "customer_profiles"):
        s = r.sync(name)
        assert s["status"] == "skipped" and "tests failed" in s["message"] and "customers_fail_on_demand" in \
            s["message"], s
    child = r.sync("customer_emails")
    assert child["status"] == "skipped", child
    assert "was skipped in the last dbt invocation (build" in child["message"], child
    assert "customers_fail_on_demand" in child["message"], child  # names what failed upstream
    assert r.sync("order_lines")["status"] == "success"
    ev = project.drain()
    assert ev["crm-events"] == []
    assert details(ev["default"], "FlakyChanged") == [] and details(ev["default"], "CustomerEmail") == []
    assert [e for e in ev["default"] if e["source"] == "com.acme.orders"] != []  # day 2's order lines, synced
    run_results = json.loads((project.dir / "target" / "run_results.json").read_text())
    statuses = {x["unique_id"].rsplit(".", 1)[-1]: x["status"] for x in run_results["results"]}
    assert statuses["flaky"] == "error" and statuses["customer_emails"] == "skipped"

    # the build passes again: the held-back changes go out, and the exit code is ours (0)
    r = build(project, day=2)
    assert r.rc == 0, r.stdout + r.stderr
    ev = project.drain()
    assert len(details(ev["crm-events"], "CustomerCreated")) == 1
    assert r.sync("flaky")["status"] == "success" and r.sync("customer_emails")["status"] == "success"


def test_build_without_our_package_still_builds_and_says_what_to_fix(project: Project) -> None:
    import shutil

    (project.dir / "packages.yml").unlink()
    (project.dir / "package-lock.yml").unlink()
    shutil.rmtree(project.dir / "dbt_packages")
    shutil.rmtree(project.dir / "models" / "package_tests")  # the package's own tests need the package
    (project.dir / "tests" / "row_hash_is_unambiguous.sql").unlink()
    r = build(project)
    assert r.rc == 2, r.stdout + r.stderr  # the build passed; nothing could be synced
    assert "dbt package 'dbt_eventbridge' is not installed" in r.stderr and "packages.yml" in r.stderr
    assert "dbt builds; nothing is synced" in r.stderr
    run_results = json.loads((project.dir / "target" / "run_results.json").read_text())
    assert {x["status"] for x in run_results["results"]} == {"success", "pass"}
    assert project.drain() == {"crm-events": [], "default": []}


ITEMS_YML = """version: 2
seeds:
  - name: seed_items
    config:
      meta:
        eventbridge:
          primary_key: id
          source: com.test.seed
          detail_type: "{% raw %}Seed{{ op | capitalize }}{% endraw %}"
snapshots:
  - name: snap_items
    relation: ref('seed_items')
    config:
      unique_key: id
      strategy: check
      check_cols: all
      meta:
        eventbridge:
          primary_key: dbt_scd_id
          source: com.test.snapshot
          detail_type: "{% raw %}Version{{ op | capitalize }}{% endraw %}"
          detail:
            columns: [id, name, dbt_valid_to]
models:
  - name: current_items
    config:
      meta:
        eventbridge:
          primary_key: id
          source: com.test.current
          detail_type: "{% raw %}Current{{ op | capitalize }}{% endraw %}"
"""
# The README's recipe: only the current version of each snapshotted row, as a model.
CURRENT_SQL = "select id, name from {{ ref('snap_items') }} where dbt_valid_to is null\n"


def names(events: list[dict[str, Any]], detail_type: str) -> list[str]:
    return sorted(str(d["name"]) for d in details(events, detail_type))


def test_seed_snapshot_and_run_sync_what_they_build(project: Project) -> None:
    (project.dir / "seeds" / "seed_items.csv").write_text("id,name\n1,one\n2,two\n")
    (project.dir / "seeds" / "seed_items.yml").write_text(ITEMS_YML)
    (project.dir / "snapshots").mkdir(exist_ok=True)
    (project.dir / "models" / "current_items.sql").write_text(CURRENT_SQL)
    items = ["-s", "seed_items+", "--vars", "{day: 1}"]

    # build: the seed, its snapshot and the model on it, each synced as it is built
    r = project.sync("build", *items)
    assert r.rc == 0, r.stdout + r.stderr
    assert {s["sync"]: s["status"] for s in r.results["syncs"]} == dict.fromkeys(
        ("seed_items", "snap_items", "current_items"), "success")
    ev = project.drain()["default"]
    assert names(ev, "SeedAdded") == names(ev, "VersionAdded") == names(ev, "CurrentAdded") == ["one", "two"]

    # seed: only the seed is loaded and synced; the snapshot and the model wait for their own commands
    (project.dir / "seeds" / "seed_items.csv").write_text("id,name\n1,one\n2,TWO\n")
    r = project.sync("seed", *items)
    assert r.rc == 0, r.stdout + r.stderr
    assert [s["sync"] for s in r.results["syncs"]] == ["seed_items"]
    ev = project.drain()["default"]
    assert names(ev, "SeedChanged") == ["TWO"] and names(ev, "VersionAdded") == []

    # snapshot: the old version of row 2 is closed (changed) and the new one opened (added)
    r = project.sync("snapshot", "-s", "snap_items", "--vars", "{day: 1}")
    assert r.rc == 0, r.stdout + r.stderr
    assert [s["sync"] for s in r.results["syncs"]] == ["snap_items"]
    ev = project.drain()["default"]
    assert names(ev, "VersionChanged") == ["two"] and names(ev, "VersionAdded") == ["TWO"]

    # run: the current rows only, as a model over the snapshot (dbt_valid_to is null)
    r = project.sync("run", "-s", "current_items", "--vars", "{day: 1}")
    assert r.rc == 0, r.stdout + r.stderr
    ev = project.drain()["default"]
    assert names(ev, "CurrentChanged") == ["TWO"] and names(ev, "CurrentAdded") == []

    # a failing model under `run` is not synced, and dbt's exit code is the run's
    (project.dir / "models" / "current_items.sql").write_text("select no_such_column from {{ ref('snap_items') }}\n")
    r = project.sync("run", "-s", "current_items", "--vars", "{day: 1}")
    assert r.rc == 1, r.stdout + r.stderr
    s = r.sync("current_items")
    assert s["status"] == "skipped" and "failed in the last dbt invocation (run, status 'error')" in s["message"], s
    assert project.drain()["default"] == []
