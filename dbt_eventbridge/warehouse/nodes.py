"""What dbt knows about the nodes a sync reads, and what its last invocations did to them.

Plain data, read from dbt's manifest and run results by :mod:`~dbt_eventbridge.warehouse.project`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbt_eventbridge.errors import ProjectError


@dataclass(frozen=True)
class ModelNode:
    unique_id: str
    name: str
    relation_name: str | None
    database: str | None
    schema: str
    alias: str
    meta: dict[str, Any]
    file: str | None  # the schema file that declared the meta, for error messages
    materialized: str
    enabled: bool = True
    resource_type: str = "model"
    # The columns the model's YAML declares: name -> (data_type or None, not_null constraint).
    # Their types are the event contract's where declared (delivery/contracts.py).
    declared_columns: tuple[tuple[str, str | None, bool], ...] = ()
    contract_enforced: bool = False  # dbt builds it with exactly the declared columns and types


SYNCABLE = ("model", "seed", "snapshot")
FAILED = ("error", "skipped", "fail", "runtime error")


@dataclass(frozen=True)
class NodeResult:
    status: str
    invocation_id: str | None
    command: str | None
    at: str | None = None


@dataclass
class LastRun:
    """What dbt did to each synced node: its last build and the last run of each of its tests,
    from ``target/run_results.json`` (the last invocation) and from the results the package's
    on-run-end hook recorded for earlier ones (``_eb_dbt_results``)."""

    invocation_id: str | None = None
    command: str | None = None
    statuses: dict[str, str] = field(default_factory=dict)  # unique_id -> status, last invocation
    builds: dict[str, NodeResult] = field(default_factory=dict)            # node -> its last build
    tests: dict[str, dict[str, NodeResult]] = field(default_factory=dict)  # node -> test -> last run
    test_names: dict[str, str] = field(default_factory=dict)
    skip_causes: dict[str, str] = field(default_factory=dict)  # node -> what failed upstream (build)

    def record(self, node: str, kind: str, test: str | None, result: NodeResult) -> None:
        if kind == "build":
            self.builds[node] = result
        else:
            self.tests.setdefault(node, {})[test or ""] = result

    def _when(self, res: NodeResult) -> str:
        if res.invocation_id and res.invocation_id == self.invocation_id:
            return f"in the last dbt invocation ({res.command or 'dbt'}, status '{res.status}')"
        at = f" at {res.at.replace('T', ' ')} UTC" if res.at else ""
        return f"in an earlier dbt invocation ({res.command or 'dbt'}{at}, status '{res.status}')"

    def reason_to_skip(self, unique_id: str) -> str | None:
        build = self.builds.get(unique_id)
        if build is not None and build.status in FAILED:
            verb = "was skipped" if build.status == "skipped" else "failed"
            since = "" if build.invocation_id == self.invocation_id else \
                ", and no dbt invocation has built it successfully since"
            cause = self.skip_causes.get(unique_id) if build.status == "skipped" else None
            return f"it {verb} {self._when(build)}{since}" + (f" because {cause}" if cause else "")
        failed = {t: r for t, r in self.tests.get(unique_id, {}).items() if r.status in ("fail", "error")}
        if failed:
            names = sorted(self.test_names.get(t, t) for t in failed)
            latest = max(failed.values(), key=lambda r: (r.invocation_id == self.invocation_id, r.at or ""))
            since = "" if latest.invocation_id == self.invocation_id else \
                ", and no dbt invocation has run them successfully since"
            return f"its tests failed {self._when(latest)} ({', '.join(names[:3])}){since}"
        return None


def read_last_run(path: Path, manifest: Any) -> LastRun:
    """What the invocation that wrote ``path`` (run_results.json) did to each node."""
    out = LastRun()
    if not path.exists():
        return out
    try:
        data = json.loads(path.read_text())
        results = data["results"]
        out.invocation_id = data.get("metadata", {}).get("invocation_id")
        out.command = (data.get("args") or {}).get("which")
        at = (data.get("metadata") or {}).get("generated_at")
        for r in results:
            out.statuses[r["unique_id"]] = str(r["status"]).lower()
    except (ValueError, KeyError, TypeError) as e:
        raise ProjectError(f"{path} is not a readable run_results.json ({e.__class__.__name__}: {e})",
                           fix="Delete it, or run dbt again to rewrite it") from None
    for uid, status in out.statuses.items():
        record_result(out, manifest, uid, NodeResult(status, out.invocation_id, out.command, at))
    return out


def record_result(out: LastRun, manifest: Any, uid: str, res: NodeResult) -> None:
    """One node's result: a build of a syncable node, or a test run for each node it tests."""
    node = manifest.nodes.get(uid)
    if node is None:
        return
    kind = node.resource_type.value
    if kind in SYNCABLE:
        out.record(uid, "build", None, res)
    elif kind == "test":
        # A failing test marks the nodes it tests: under `dbt build` those are the models
        # dbt would have skipped downstream, and we must not publish their content either.
        out.test_names[uid] = node.name
        for parent in node.depends_on.nodes:
            if parent.split(".", 1)[0] in SYNCABLE:
                out.record(parent, "test", uid, res)


def merge_recorded(out: LastRun, rows: list[tuple[Any, ...]], manifest: Any) -> None:
    """Results of earlier invocations (model_id, node_id, kind, status, invocation_id,
    command, completed_at, relation_name); the last invocation's own results
    (run_results.json) win. Only results for the relations this target builds count."""
    last = dict(out.builds), {k: dict(v) for k, v in out.tests.items()}
    for model_id, node_id, kind, status, inv, command, at, relation in rows:
        node = manifest.nodes.get(str(node_id))
        model = manifest.nodes.get(str(model_id))
        if node is None or model is None:
            continue  # a test or model that no longer exists
        if (relation or "") != (model.relation_name or ""):
            continue  # built as another relation: another target (a CI schema), not this one
        res = NodeResult(str(status).lower(), inv, command, at)
        if kind == "build":
            out.builds[str(model_id)] = res
        else:
            out.test_names[str(node_id)] = node.name
            out.tests.setdefault(str(model_id), {})[str(node_id)] = res
    out.builds.update(last[0])
    for model_id, tests in last[1].items():
        out.tests.setdefault(model_id, {}).update(tests)


def declared_meta(project_dir: Path, node: ModelNode, key: str, cache: dict[Path, Any]) -> Any:
    """The node's ``meta: {key: ...}`` as written in its schema YAML (before dbt rendered
    its Jinja), or None when it is not declared in a YAML file of this project. ``cache``
    keeps each file read once."""
    if not node.file or not node.file.endswith((".yml", ".yaml")):
        return None
    path = project_dir / node.file
    if path not in cache:
        import yaml

        try:
            cache[path] = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            cache[path] = {}
    doc = cache[path]
    if not isinstance(doc, dict):
        return None
    for section in ("models", "seeds", "snapshots"):
        for entry in doc.get(section) or []:
            if not isinstance(entry, dict) or entry.get("name") != node.name:
                continue
            config = entry.get("config")
            for meta in ((config if isinstance(config, dict) else {}).get("meta"), entry.get("meta")):
                if isinstance(meta, dict) and key in meta:
                    return meta[key]
    return None
