"""The CI examples in examples/ stay true (docs/ci.md).

(a) Each file parses, has the structure docs/ci.md describes, and every `dbt-eventbridge ...`
    command in it, including those in comments, parses with the real CLI (click's
    make_context, without invoking it: an unknown option or subcommand fails).
(b) The pull-request jobs' `dbt ...` / `dbt-eventbridge ...` lines, extracted from the YAML,
    run as written against a copy of integration_project on DuckDB, with no AWS credentials
    at all: every line exits 0, the dry-run file holds JSON lines, nothing is published and
    no state is written.
(c) The production jobs' lines run against the local EventBridge (moto): exit 0, the
    events arrive in the SQS queues behind the buses, the state is written.

GitHub's and GitLab's jobs run the same dbt and dbt-eventbridge commands, so each distinct
command list runs once (in its own DuckDB file) and the other file's job checks its outcome.
What only one file has (GitLab's `|| exit 3` guard, GitHub's commented exit-code variant)
is checked by running that shell with stubbed `dbt` / `dbt-eventbridge` functions.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tempfile
import textwrap
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from dbt_eventbridge.cli.main import main as cli_main
from tests.integration.harness import BIN, REPO_ROOT, Project, by_type, edit_schema, state_tables

EXAMPLES = REPO_ROOT / "examples"
GH_PR = EXAMPLES / "github-actions" / "pr.yml"
GH_PROD = EXAMPLES / "github-actions" / "production.yml"
GITLAB = EXAMPLES / "gitlab-ci" / ".gitlab-ci.yml"
ALL_FILES = [GH_PR, GH_PROD, GITLAB]
RESULT_FILE = "target/eventbridge_sync_results.json"
# The sample data has rows with NULL / duplicated keys (accounts) and payloads that are not
# JSON objects (web_events), on purpose: they make a sync exit 1. The examples are run on
# the other syncs, where a healthy project exits 0.
DISABLED_SYNCS = ("accounts", "web_events")
TOOLS = ("dbt", "dbt-eventbridge")


# -- reading the examples ---------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict), path
    return doc


def gh_triggers(doc: dict[str, Any]) -> dict[str, Any]:
    on = doc["on"] if "on" in doc else doc[True]  # YAML 1.1 reads a bare `on:` key as true
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return on


@dataclass
class Line:
    """One shell line of a CI job, with the literal environment the CI system would give it."""
    text: str
    env: dict[str, str] = field(default_factory=dict)


def literal_env(*scopes: dict[str, Any] | None) -> dict[str, str]:
    """Variables a test can reproduce: no CI expressions or references (`${{ }}`, `$X`),
    and no AWS_* (the test chooses the AWS environment: none, or the local EventBridge)."""
    out: dict[str, str] = {}
    for scope in scopes:
        for k, v in (scope or {}).items():
            if isinstance(v, dict):  # GitLab: {value: ..., description: ...}
                v = v.get("value")
            if v is None or isinstance(v, (dict, list)):
                continue
            v = str(v).lower() if isinstance(v, bool) else str(v)
            if "$" in v or str(k).startswith("AWS_"):
                continue
            out[str(k)] = v
    return out


def shell_lines(script: str) -> list[str]:
    """Command lines of a shell script: continuation lines joined, comments and blanks dropped."""
    joined = re.sub(r"\\\n\s*", " ", script)
    return [s.strip() for s in joined.splitlines() if s.strip() and not s.strip().startswith("#")]


def gh_job_lines(doc: dict[str, Any], job: dict[str, Any]) -> list[Line]:
    out = []
    for step in job["steps"]:
        if "run" in step:
            env = literal_env(doc.get("env"), job.get("env"), step.get("env"))
            out += [Line(s, env) for s in shell_lines(step["run"])]
    return out


def gitlab_jobs(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: job for name, job in doc.items()
            if isinstance(job, dict) and "script" in job and not name.startswith(".")}


def gitlab_job_lines(doc: dict[str, Any], job: dict[str, Any]) -> list[Line]:
    default = doc.get("default") or {}
    before = job.get("before_script", default.get("before_script", []))
    env = literal_env(doc.get("variables"), job.get("variables"))
    return [Line(s, env) for entry in [*before, *job["script"]] for s in shell_lines(str(entry))]


def segments(line: str) -> list[list[str]]:
    """The simple commands of a shell line (split at && || ; | &), leading VAR=x dropped."""
    lex = shlex.shlex(line, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    out: list[list[str]] = [[]]
    for tok in lex:
        if tok and set(tok) <= set("();<>|&"):
            out.append([])
        else:
            out[-1].append(tok)
    cmds = []
    for seg in out:
        while seg and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", seg[0]):
            seg = seg[1:]
        if seg:
            cmds.append(seg)
    return cmds


def tool_commands(lines: list[Line]) -> list[list[str]]:
    """Every `dbt ...` and `dbt-eventbridge ...` command of the lines, in order."""
    return [seg for ln in lines for seg in segments(ln.text) if seg[0] in TOOLS]


def runnable(lines: list[Line]) -> list[Line]:
    """The lines that start with dbt or dbt-eventbridge: what the tests run."""
    return [ln for ln in lines if ln.text.split()[0] in TOOLS]


# A command inside a comment: `dbt-eventbridge <word>` followed by the end of the line, an
# option or a shell operator (prose such as "dbt-eventbridge is tested" does not match).
COMMENTED_COMMAND = re.compile(r"dbt-eventbridge\s+[a-z][\w-]*(?=\s*$|\s+-|\s*(?:&&|\|\||;))")


def comment_lines(path: Path) -> list[tuple[int, str] | None]:
    """Per line of the file: (indent after '#', text) of a whole-line comment, else None."""
    out: list[tuple[int, str] | None] = []
    for raw in path.read_text().splitlines():
        s = raw.lstrip()
        if s.startswith("#"):
            body = s[1:]
            out.append((len(body) - len(body.lstrip()), body.strip()))
        else:
            out.append(None)
    return out


def commented_commands(path: Path) -> list[list[str]]:
    cmds = []
    for _, text in filter(None, comment_lines(path)):
        for m in COMMENTED_COMMAND.finditer(text):
            rest = text[m.start():].split("`")[0]
            cmds.append(segments(rest)[0])
    return cmds


def commented_commands_in(text: str) -> list[list[str]]:
    """commented_commands() of a snippet (to test the extraction itself)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write(text + "\n")
    try:
        return commented_commands(Path(f.name))
    finally:
        os.unlink(f.name)


def commented_block(path: Path, head: str) -> str:
    """The comment block that starts with the line `head` (after '#'), uncommented."""
    comments = comment_lines(path)
    starts = [i for i, c in enumerate(comments) if c and (c[1] == head or c[1].startswith(head + " "))]
    assert len(starts) == 1, f"{path.name}: expected one commented `{head}` block, found {len(starts)}"
    indent, first = comments[starts[0]]  # type: ignore[misc]
    block = [" " * indent + first]
    for c in comments[starts[0] + 1:]:
        if c is None or c[0] <= indent or not c[1]:
            break
        block.append(" " * c[0] + c[1])
    return textwrap.dedent("\n".join(block))


def parse_cli(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """Parse `dbt-eventbridge ...` with the real CLI, without running it. Returns (subcommand, params)."""
    assert argv[0] == "dbt-eventbridge", argv
    try:
        ctx = cli_main.make_context("dbt-eventbridge", list(argv[1:]))
        # click 8.2+ keeps the subcommand in _protected_args (8.1: protected_args).
        protected = getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])
        pending = [*protected, *ctx.args]
        name, cmd, rest = cli_main.resolve_command(ctx, pending)
        assert cmd is not None and name is not None, argv
        sub = cmd.make_context(name, list(rest), parent=ctx)
    except click.exceptions.Exit as e:  # --help / --version: parsed, but not a CI command
        raise AssertionError(f"{shlex.join(argv)}: exits at parse time ({e.exit_code})") from None
    except click.UsageError as e:
        raise AssertionError(f"{shlex.join(argv)}: the CLI rejects it: {e.format_message()}") from None
    params = sub.params
    # Checks the CLI makes after parsing, in the command body.
    if params.get("output"):
        assert params.get("dry_run"), f"{shlex.join(argv)}: --output goes with --dry-run"
    if params.get("vars_"):
        assert isinstance(yaml.safe_load(params["vars_"]), dict), f"{shlex.join(argv)}: --vars is not a mapping"
    return name, params


def dbt_target(argv: list[str]) -> str | None:
    for i, a in enumerate(argv):
        if a in ("--target", "-t") and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--target="):
            return a.split("=", 1)[1]
    return None


def target_of(argv: list[str]) -> str | None:
    return parse_cli(argv)[1]["target"] if argv[0] == "dbt-eventbridge" else dbt_target(argv)


def kinds(cmds: list[list[str]]) -> list[str]:
    """`dbt build`, `dbt-eventbridge sync`, ... of each command, in order."""
    return [f"{c[0]} {next((a for a in c[1:] if not a.startswith('-')), '')}".strip() for c in cmds]


def assert_order(cmds: list[list[str]], *expected: str) -> None:
    got = kinds(cmds)
    positions = []
    for k in expected:
        assert k in got, f"`{k}` missing from the job's commands {got}"
        positions.append(got.index(k))
    assert positions == sorted(positions), f"expected {expected} in this order, got {got}"


def one(items: list[Any], what: str) -> Any:
    assert len(items) == 1, f"expected one {what}, found {len(items)}"
    return items[0]


# -- the jobs -----------------------------------------------------------------------------------


def gh_pr() -> tuple[dict[str, Any], dict[str, Any]]:
    doc = load(GH_PR)
    return doc, one(list(doc["jobs"].values()), "job in pr.yml")


def gh_prod() -> tuple[dict[str, Any], dict[str, Any]]:
    doc = load(GH_PROD)
    return doc, one(list(doc["jobs"].values()), "job in production.yml")


def is_dry_run_sync(argv: list[str]) -> bool:
    if argv[0] != "dbt-eventbridge":
        return False
    name, params = parse_cli(argv)
    return name == "sync" and bool(params["dry_run"])


def is_real_sync(argv: list[str]) -> bool:
    if argv[0] != "dbt-eventbridge":
        return False
    name, params = parse_cli(argv)
    return name == "sync" and not params["dry_run"]


def gitlab_job(kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    doc = load(GITLAB)
    jobs = gitlab_jobs(doc)
    pick = is_dry_run_sync if kind == "pr" else is_real_sync
    found = [j for j in jobs.values() if any(pick(c) for c in tool_commands(gitlab_job_lines(doc, j)))]
    return doc, one(found, f"GitLab {kind} job")


def job_lines(ci: str, kind: str) -> list[Line]:
    if ci == "github":
        doc, job = gh_pr() if kind == "pr" else gh_prod()
        return gh_job_lines(doc, job)
    doc, job = gitlab_job(kind)
    return gitlab_job_lines(doc, job)


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if str(s.get("uses", "")).split("@")[0] == action]


def step_index(job: dict[str, Any], pred: Any) -> int:
    found = [i for i, s in enumerate(job["steps"]) if pred(s)]
    return one(found, "matching step")


def runs_command(step: dict[str, Any], pred: Any) -> bool:
    return "run" in step and any(pred(c) for c in tool_commands([Line(s) for s in shell_lines(step["run"])]))


def artifact_paths(step: dict[str, Any]) -> list[str]:
    return [p.strip() for p in str(step["with"]["path"]).splitlines() if p.strip()]


def check_install(lines: list[Line]) -> None:
    installs = [ln.text for ln in lines if "pip install" in ln.text]
    assert installs, "no pip install line"
    text = " ".join(installs)
    assert re.search(r'"dbt-eventbridge(\[\w+\])? @ git\+https://', text), text
    assert "dbt-core" in text, text
    assert re.search(r"\bdbt-(postgres|duckdb|snowflake|bigquery|redshift|databricks)\b", text), \
        f"no adapter installed: {text}"


# -- (a) structure and CLI parsing ----------------------------------------------------------------


def test_github_pr_workflow_structure() -> None:
    doc, job = gh_pr()
    assert "pull_request" in gh_triggers(doc)
    assert set(gh_triggers(doc)) <= {"pull_request"}, "the dry run workflow must not run on pushes or schedules"
    perms = doc.get("permissions") or {}
    assert perms.get("id-token") in (None, "none"), "the PR job must not be able to get AWS credentials"
    assert not steps_using(job, "aws-actions/configure-aws-credentials")
    for scope in (doc.get("env"), job.get("env"), *(s.get("env") for s in job["steps"])):
        assert not any(str(k).startswith("AWS_") for k in (scope or {})), scope
    assert job["runs-on"] and isinstance(job["steps"], list)
    for s in job["steps"]:
        assert ("uses" in s) != ("run" in s), s
        if "uses" in s:
            assert "@" in s["uses"], f"pin the action's version: {s['uses']}"
    one(steps_using(job, "actions/checkout"), "checkout step")
    py = one(steps_using(job, "actions/setup-python"), "setup-python step")
    assert str(py["with"]["python-version"]) == "3.11"

    lines = gh_job_lines(doc, job)
    check_install(lines)
    cmds = tool_commands(lines)
    assert_order(cmds, "dbt deps", "dbt build", "dbt-eventbridge validate", "dbt-eventbridge sync")
    syncs = [c for c in cmds if kinds([c])[0] == "dbt-eventbridge sync"]
    assert syncs and all(is_dry_run_sync(c) for c in syncs), "the PR job must only dry-run"
    output = one([parse_cli(c)[1]["output"] for c in syncs if parse_cli(c)[1]["output"]], "--output")
    targets = {target_of(c) for c in cmds if kinds([c])[0] != "dbt deps"}
    assert len(targets) == 1 and None not in targets, f"build, validate and sync on one target: {targets}"

    up = step_index(job, lambda s: str(s.get("uses", "")).startswith("actions/upload-artifact@"))
    sync_step = step_index(job, lambda s: runs_command(s, is_dry_run_sync))
    assert up > sync_step
    upload = job["steps"][up]
    assert upload.get("if") == "always()"
    assert set(artifact_paths(upload)) >= {output, RESULT_FILE}


def test_github_production_workflow_structure() -> None:
    doc, job = gh_prod()
    on = gh_triggers(doc)
    assert "workflow_dispatch" in on
    assert on["schedule"] and all(isinstance(s.get("cron"), str) for s in on["schedule"])
    assert "pull_request" not in on and "push" not in on
    assert (doc.get("permissions") or {}).get("id-token") == "write"
    conc = doc.get("concurrency") or job.get("concurrency")
    assert isinstance(conc, dict) and conc.get("group"), "two production syncs must never overlap"
    assert conc.get("cancel-in-progress", False) is False, "a running sync must not be cancelled"
    assert "${{" not in str(conc["group"]), "one group for every run, whatever the ref"

    lines = gh_job_lines(doc, job)
    check_install(lines)
    cmds = tool_commands(lines)
    assert_order(cmds, "dbt deps", "dbt build", "dbt-eventbridge sync")
    assert not any(is_dry_run_sync(c) for c in cmds)
    targets = {target_of(c) for c in cmds if kinds([c])[0] != "dbt deps"}
    assert len(targets) == 1 and None not in targets, targets

    aws = one(steps_using(job, "aws-actions/configure-aws-credentials"), "configure-aws-credentials step")
    assert aws["with"].get("role-to-assume") and aws["with"].get("aws-region")
    assert not any(k in aws["with"] for k in ("aws-access-key-id", "aws-secret-access-key")), "OIDC, not keys"
    steps = job["steps"]
    build = step_index(job, lambda s: runs_command(s, lambda c: kinds([c])[0] == "dbt build"))
    sync = step_index(job, lambda s: runs_command(s, is_real_sync))
    assert build < steps.index(aws) < sync
    # dbt build && dbt-eventbridge sync: the sync runs only after a successful build, and its
    # exit code decides the job (1 fails it unless the commented variant is used).
    assert "if" not in steps[sync] and not steps[sync].get("continue-on-error")
    up = step_index(job, lambda s: str(s.get("uses", "")).startswith("actions/upload-artifact@"))
    assert up > sync and steps[up].get("if") == "always()"
    assert RESULT_FILE in artifact_paths(steps[up])


def test_github_production_exit_code_1_as_warning_variant() -> None:
    """The commented `run:` that turns exit code 1 into a warning maps 0, 1, 2 as documented."""
    block = yaml.safe_load(commented_block(GH_PROD, "run: |"))
    script = block["run"]
    assert "dbt-eventbridge sync" in script
    for fake, expected in ((0, 0), (1, 0), (2, 2)):
        stub = f"dbt-eventbridge() {{ return {fake}; }}\n"
        # GitHub runs `run:` with bash -e (-eo pipefail when `shell: bash` is given).
        p = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", stub + script],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == expected, (fake, p.stdout, p.stderr)
        assert ("::warning" in p.stdout) == (fake == 1), (fake, p.stdout)


def test_gitlab_pipeline_structure() -> None:
    doc = load(GITLAB)
    stages = doc["stages"]
    jobs = gitlab_jobs(doc)
    assert len(jobs) == 2, list(jobs)
    for name, job in jobs.items():
        assert job.get("stage") in stages, f"{name}: stage {job.get('stage')} not in {stages}"

    _, pr = gitlab_job("pr")
    pr_rules = " ".join(str(r.get("if", "")) for r in pr["rules"])
    assert '$CI_PIPELINE_SOURCE == "merge_request_event"' in pr_rules
    assert "schedule" not in pr_rules
    assert "id_tokens" not in pr, "the merge-request job must not get AWS credentials"
    assert not any(str(k).startswith("AWS_") for k in (pr.get("variables") or {}))
    cmds = tool_commands(gitlab_job_lines(doc, pr))
    assert_order(cmds, "dbt deps", "dbt build", "dbt-eventbridge validate", "dbt-eventbridge sync")
    assert all(is_dry_run_sync(c) for c in cmds if kinds([c])[0] == "dbt-eventbridge sync")
    output = one([parse_cli(c)[1]["output"] for c in cmds if is_dry_run_sync(c) and parse_cli(c)[1]["output"]],
                 "--output")
    assert pr["artifacts"]["when"] == "always"
    assert set(pr["artifacts"]["paths"]) >= {output, RESULT_FILE}
    check_install(gitlab_job_lines(doc, pr))

    _, prod = gitlab_job("production")
    prod_rules = " ".join(str(r.get("if", "")) for r in prod["rules"])
    assert '$CI_PIPELINE_SOURCE == "schedule"' in prod_rules
    assert "merge_request_event" not in prod_rules
    assert prod.get("resource_group"), "two production syncs must never overlap"
    assert prod["id_tokens"]["AWS_ID_TOKEN"]["aud"]
    assert (prod.get("variables") or {}).get("AWS_ROLE_ARN")
    lines = gitlab_job_lines(doc, prod)
    assert any("AWS_WEB_IDENTITY_TOKEN_FILE" in ln.text for ln in lines)
    cmds = tool_commands(lines)
    assert_order(cmds, "dbt deps", "dbt build", "dbt-eventbridge sync")
    assert not any(is_dry_run_sync(c) for c in cmds)
    assert prod["artifacts"]["when"] == "always"
    assert RESULT_FILE in prod["artifacts"]["paths"]

    # allow_failure: exit_codes [1] makes a partial sync a warning. Shown as an option, in a
    # comment; it may also be enabled, but never for 2 (failed).
    if "allow_failure" in prod:
        allowed = prod["allow_failure"]["exit_codes"]
    else:
        allowed = yaml.safe_load(commented_block(GITLAB, "allow_failure:"))["allow_failure"]["exit_codes"]
    assert allowed == [1] or allowed == 1, allowed
    # ... so a failed dbt build must not exit with 1: its line maps any failure elsewhere.
    build_line = one([ln.text for ln in lines if ln.text.split()[:2] == ["dbt", "build"]], "dbt build line")
    for fake in (1, 2):
        p = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
                            f"dbt() {{ return {fake}; }}\n{build_line}\necho reached"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode not in (0, 1) and "reached" not in p.stdout, (fake, p.returncode)


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_every_dbt_eventbridge_command_parses_with_the_cli(path: Path) -> None:
    doc = load(path)
    if path == GITLAB:
        lines = [ln for j in gitlab_jobs(doc).values() for ln in gitlab_job_lines(doc, j)]
    else:
        lines = [ln for j in doc["jobs"].values() for ln in gh_job_lines(doc, j)]
    cmds = [c for c in tool_commands(lines) if c[0] == "dbt-eventbridge"]
    in_comments = commented_commands(path)
    assert cmds, f"no dbt-eventbridge command found in {path.name}"
    if path == GH_PROD:
        assert in_comments, "the commented exit-code variant was not found"
    for c in cmds + in_comments:
        parse_cli(c)  # raises on an unknown subcommand or option


def test_the_command_parser_rejects_unknown_options() -> None:
    """The check above is real: a mistyped option or subcommand fails it."""
    assert parse_cli(["dbt-eventbridge", "sync", "--target", "prod", "--dry-run", "--output", "x.jsonl"])[0] == "sync"
    for bad in (["dbt-eventbridge", "sync", "--dryrun"], ["dbt-eventbridge", "synk"],
                ["dbt-eventbridge", "validate", "--dry-run"], ["dbt-eventbridge", "sync", "--output", "x.jsonl"]):
        with pytest.raises(AssertionError):
            parse_cli(bad)
    assert commented_commands_in("# run: dbt-eventbridge sync --target prod || rc=$?") == [
        ["dbt-eventbridge", "sync", "--target", "prod"]]
    assert commented_commands_in("# dbt-eventbridge is tested with dbt-postgres") == []


# -- (b) and (c): running the jobs' commands ------------------------------------------------------


@dataclass
class JobRun:
    lines: list[str]
    rcs: list[int]
    logs: list[str]
    results: dict[str, Any] | None
    dry_run_lines: list[str] | None
    events: dict[str, list[dict[str, Any]]]
    state: dict[str, list[tuple]]

    def check_exit_codes(self) -> None:
        assert len(self.rcs) == len(self.lines) and all(rc == 0 for rc in self.rcs), \
            "\n".join(f"$ {ln}\n(exit {rc})\n{log}" for ln, rc, log in zip(self.lines, self.rcs, self.logs))


class CiProject:
    """One copy of integration_project for the module; each distinct command list runs in
    its own DuckDB file."""

    def __init__(self, project: Project, tmp: Path) -> None:
        self.project = project
        self.tmp = tmp
        self.runs: dict[Any, JobRun] = {}
        self._n = count()

    def env(self, kind: str, line_env: dict[str, str], db: Path) -> dict[str, str]:
        env = dict(self.project.env)
        if kind == "pr":
            # No AWS configuration at all: a dry run must not need any.
            env = {k: v for k, v in env.items() if not k.startswith("AWS_") and k != "DBT_EVENTBRIDGE_ENDPOINT_URL"}
            env.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
                       AWS_EC2_METADATA_DISABLED="true")
        env.update(line_env)
        env["DBT_DUCKDB_PATH"] = str(db)
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        return env

    def run(self, kind: str, lines: list[Line]) -> JobRun:
        todo = runnable(lines)
        key = (kind, tuple(tuple(c) for c in tool_commands(todo)), tuple(sorted(
            (k, v) for ln in todo for k, v in ln.env.items())))
        if key in self.runs:
            return self.runs[key]
        d = self.project.dir
        db = self.tmp / f"warehouse-{kind}-{next(self._n)}.duckdb"
        outputs = [d / parse_cli(c)[1]["output"] for c in tool_commands(todo)
                   if c[0] == "dbt-eventbridge" and parse_cli(c)[1].get("output")]
        for f in [d / RESULT_FILE, *outputs]:
            f.unlink(missing_ok=True)
        self.project.drain()
        rcs, logs = [], []
        for ln in todo:
            p = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", ln.text], cwd=d,
                               env=self.env(kind, ln.env, db), capture_output=True, text=True, timeout=600)
            assert "Traceback" not in p.stdout + p.stderr, p.stdout + p.stderr
            rcs.append(p.returncode)
            logs.append(p.stdout[-3000:] + p.stderr[-3000:])
            if p.returncode:
                break
        result_path = d / RESULT_FILE
        results = json.loads(result_path.read_text()) if result_path.exists() else None
        dry = outputs[0].read_text().splitlines() if outputs and outputs[0].exists() else None
        run = JobRun([ln.text for ln in todo], rcs, logs, results, dry, self.project.drain(),
                     state_tables(db) if db.exists() else {})
        self.runs[key] = run
        return run


def ci_targets() -> set[str]:
    lines = [*job_lines("github", "pr"), *job_lines("github", "production"),
             *job_lines("gitlab", "pr"), *job_lines("gitlab", "production")]
    return {t for c in tool_commands(lines) if (t := target_of(c))}


@pytest.fixture(scope="module")
def ci(tmp_path_factory: pytest.TempPathFactory, local_aws: Any) -> CiProject:
    tmp = tmp_path_factory.mktemp("ci_examples")
    project = Project(tmp, "duckdb", local_aws)
    # The examples' targets (ci, prod), as DuckDB outputs of the sample project's profile.
    path = project.dir / "profiles.yml"
    profiles = yaml.safe_load(path.read_text())
    outputs = profiles["eventbridge_integration"]["outputs"]
    for target in ci_targets():
        outputs[target] = dict(outputs["duckdb"])
    path.write_text(yaml.safe_dump(profiles, sort_keys=False))

    def disable(models: dict[str, Any]) -> None:
        for name in DISABLED_SYNCS:
            models[name]["config"]["meta"]["eventbridge"]["enabled"] = False

    edit_schema(project, disable)
    return CiProject(project, tmp)


@pytest.mark.parametrize("ci_system", ["github", "gitlab"])
def test_pr_job_runs_as_written_without_aws_credentials(ci: CiProject, ci_system: str) -> None:
    run = ci.run("pr", job_lines(ci_system, "pr"))
    assert [ln.split()[:2] for ln in run.lines][:2] == [["dbt", "deps"], ["dbt", "build"]], run.lines
    run.check_exit_codes()

    assert run.dry_run_lines, "the dry run wrote no entries"
    entries = [json.loads(s) for s in run.dry_run_lines]
    for e in entries:
        assert {"sync", "op", "key", "event_id", "entry"} <= set(e), e
        assert {"Source", "DetailType", "Detail", "EventBusName"} <= set(e["entry"]), e
        assert isinstance(json.loads(e["entry"]["Detail"]), dict)
    assert run.results is not None and run.results["dry_run"] is True and run.results["exit_code"] == 0
    would_send = sum(sum(s["sent"].values()) for s in run.results["syncs"])
    assert len(entries) == would_send > 0
    assert {e["sync"] for e in entries} == {"customers_to_crm", "customer_profiles", "order_lines", "flaky"}
    # A dry run publishes nothing and writes no state (state_tables leaves out the record of
    # dbt's own results, which `dbt build` keeps through the package's on-run-end hook).
    assert all(not evs for evs in run.events.values()), run.events
    assert run.state == {}, list(run.state)


@pytest.mark.parametrize("ci_system", ["github", "gitlab"])
def test_production_job_runs_as_written_and_events_arrive(ci: CiProject, ci_system: str) -> None:
    run = ci.run("production", job_lines(ci_system, "production"))
    run.check_exit_codes()

    assert run.results is not None and run.results["dry_run"] is False and run.results["exit_code"] == 0
    synced = {s["sync"]: s for s in run.results["syncs"] if s["status"] == "success"}
    assert set(synced) == {"customers_to_crm", "customer_profiles", "order_lines", "flaky"}, run.results["syncs"]
    sent = sum(sum(s["sent"].values()) for s in synced.values())
    arrived = [e for evs in run.events.values() for e in evs]
    assert len(arrived) == sent > 0
    assert len(by_type(run.events["crm-events"])["CustomerCreated"]) == 5
    assert {"com.acme.orders", "com.acme.profiles", "com.acme.flaky"} <= {e["source"] for e in run.events["default"]}
    # ... and recorded as delivered.
    assert {f"_eb_state__{n}" for n in ("customers_to_crm", "customer_profiles", "order_lines", "flaky")} \
        <= set(run.state)
    assert len(run.state["_eb_state__customers_to_crm"]) == 5
