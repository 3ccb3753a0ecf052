"""`dbt-eventbridge sandbox`: the real command on a copy of the sample project, read back as a user reads it."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

from dbt_eventbridge.ops.sandbox import buses_of, format_envelope, format_event
from tests.integration import prewarmed
from tests.integration.harness import BIN, Project

V2_BUS = "arn:aws:events:us-east-1:123456789012:event-busv2/customers/p7e5l3aeyjsdeh4p8x4jmos29"
READY = "Ctrl-C stops"
# What a sync of day 1 sends (accounts' initial_sync is skip): (bus, source, detail-type) -> events.
DAY_1 = {
    ("crm-events", "com.acme.crm", "CustomerCreated"): 5,
    ("default", "com.acme.profiles", "CustomerProfile"): 5,
    ("default", "com.acme.orders", "OrderLineAdded"): 3,
    ("default", "com.acme.web", "WebEvent"): 2,
    ("default", "com.acme.flaky", "FlakyChanged"): 1,
}


class Lines:
    """The lines a pipe of a running process has written so far (read by a thread)."""

    def __init__(self, pipe: IO[str]) -> None:
        self.lines: list[str] = []
        self.closed = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    def wait_for(self, done: Any, timeout: float) -> bool:
        """Until ``done(lines)`` holds (True), the process closes the pipe or ``timeout`` passes (False)."""
        with self._changed:
            self._changed.wait_for(lambda: done(self.lines) or self.closed, timeout)
            return bool(done(self.lines))

    def finish(self) -> str:
        self._thread.join(10)
        return "\n".join(self.lines)


def _sandbox(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], Lines, Lines]:
    proc = subprocess.Popen([str(BIN / "dbt-eventbridge"), "sandbox", *args], cwd=cwd, env=env, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    return proc, Lines(proc.stdout), Lines(proc.stderr)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _clean_env(project: Project) -> dict[str, str]:
    """The project's environment without any AWS or endpoint variable: only what the sandbox prints sets them."""
    return {**prewarmed.outside_env(), "DBT_DUCKDB_PATH": project.env["DBT_DUCKDB_PATH"],
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}


def test_sandbox_serves_the_projects_buses_and_tails_what_a_sync_sends(tmp_path: Path, local_aws: Any) -> None:
    project = Project(tmp_path, "duckdb", local_aws)
    project.env = _clean_env(project)
    # The demo's v2 model is enabled by this var: its bus is skipped, with a note.
    vars_ = {"day": 1, "demo_v2_bus": V2_BUS}
    proc, out, err = _sandbox(["--port", "0", *project.target_args, "--vars", json.dumps(vars_)], project.dir,
                              project.env)
    try:
        assert err.wait_for(lambda lines: any(READY in line for line in lines), 60), \
            f"the sandbox did not start in 60 s (exit code {proc.poll()}):\n" + "\n".join(err.lines)
        banner = "\n".join(err.lines)
        exports = dict(re.findall(r"^export (\w+)=(\S+)$", banner, re.MULTILINE))
        assert set(exports) == {"DBT_EVENTBRIDGE_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                "AWS_DEFAULT_REGION", "AWS_REGION"}, banner
        endpoint = exports["DBT_EVENTBRIDGE_ENDPOINT_URL"]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", endpoint), endpoint
        port = int(endpoint.rsplit(":", 1)[1])
        assert exports["AWS_DEFAULT_REGION"] == "us-east-1"  # the project's vars.eventbridge.region
        assert "bus(es) default, crm-events" in banner
        assert f"Note: skipped {V2_BUS}: the sandbox serves the classic EventBridge API only" in banner
        assert re.search(r"^then build your models and run: dbt-eventbridge sync --profiles-dir \S+ --target duckdb "
                         r"--vars ", banner, re.MULTILINE), banner

        # In "another terminal": the exports, then dbt and our sync, as the banner says.
        project.env.update(exports)
        project.build(day=1, demo_v2_bus=V2_BUS)
        r = project.sync("sync", "--exclude", "customers_v2", vars_=vars_)
        assert r.rc == 1, r.stderr  # accounts has a NULL and a duplicated key: rejected on purpose
        sent = sum(sum(s["sent"].values()) for s in r.results["syncs"])
        assert sent == sum(DAY_1.values())
        out.wait_for(lambda lines: len(lines) >= sent, 20)
        time.sleep(0.5)  # anything more would arrive now
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
    printed, stderr = out.finish(), err.finish()
    assert rc == 0, stderr
    assert "Traceback" not in stderr
    assert f"Stopped after {sent} event(s)" in stderr
    assert not _listening(port)

    # One line an event: time, bus, source, detail-type, detail (whole: stdout is not a terminal).
    events = [re.split(r"\s{2,}", line, maxsplit=4) for line in printed.splitlines()]
    assert all(len(e) == 5 for e in events), printed
    assert Counter((bus, source, dtype) for _, bus, source, dtype, _ in events) == DAY_1
    john = [(t, json.loads(detail)) for t, _, _, dtype, detail in events
            if dtype == "CustomerCreated" and json.loads(detail)["name"] == "John Doe"]
    assert john == [("2024-01-01T10:00:00Z", {  # the sync's `time: updated_at`
        "name": "John Doe", "age": 30,
        "contact_info": [{"type": "email", "value": "john@example.com"}, {"type": "phone", "value": "+14158675309"}]})]


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # Checked before the project is read: no project is needed to see it.
        p = subprocess.run([str(BIN / "dbt-eventbridge"), "sandbox", "--port", str(port)], cwd=tmp_path,
                           env=prewarmed.outside_env(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    assert f"Error: port {port} on 127.0.0.1 is in use by another program" in p.stderr
    assert "--port 0 picks a free one" in p.stderr
    assert "Traceback" not in p.stderr


def test_without_moto_the_error_names_the_extra_to_install(tmp_path: Path) -> None:
    # `import moto` fails in the CLI's process as it does where the extra is not installed.
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n\n\n"
        "class NoMoto:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'moto':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n\n\n"
        "sys.meta_path.insert(0, NoMoto())\n")
    env = {**prewarmed.outside_env(), "PYTHONPATH": str(tmp_path)}
    p = subprocess.run([str(BIN / "dbt-eventbridge"), "sandbox", "--port", "0"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("Error: `dbt-eventbridge sandbox` runs moto's local AWS server, and the package "
                               "'moto' it needs is not installed."), p.stderr
    assert "pip install 'dbt-eventbridge[sandbox]'" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1  # one paragraph, no traceback
    assert p.stdout == ""


def test_a_project_that_cannot_be_loaded_stops_the_server(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.run([str(BIN / "dbt-eventbridge"), "sandbox", "--port", str(port)], cwd=tmp_path,
                       env=prewarmed.outside_env(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    assert "no dbt_project.yml in" in p.stderr and "Traceback" not in p.stderr
    assert not _listening(port)


# -- what the command prints, without a server ---------------------------------------------------

ENVELOPE = {"id": "1", "time": "2024-01-02T03:04:05Z", "version": "0", "detail-type": "Order Created",
            "source": "com.acme", "region": "us-east-1", "resources": [], "detail": {"id": 7, "name": "Zoë"}}


def test_an_event_is_one_line_cut_to_the_width() -> None:
    line = format_event("orders", ENVELOPE)
    assert line == '2024-01-02T03:04:05Z  orders  com.acme  Order Created  {"id":7,"name":"Zoë"}'
    cut = format_event("orders", ENVELOPE, width=60)
    assert len(cut) == 60 and cut.endswith("...") and line.startswith(cut[:-3])
    assert format_event("orders", ENVELOPE, width=200) == line
    assert json.loads(format_envelope(ENVELOPE)) == ENVELOPE and "\n" not in format_envelope(ENVELOPE)


def test_classic_buses_by_name_or_arn_and_v2_buses_apart() -> None:
    found = buses_of(["default", "crm-events", "arn:aws:events:eu-west-1:123456789012:event-bus/crm-events",
                      V2_BUS, "orders", "default"])
    assert found.classic == ["default", "crm-events", "orders"]
    assert found.v2 == [V2_BUS]
    assert found.syncs == 6
