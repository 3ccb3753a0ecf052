"""A live warehouse for the unit lane of the warehouse stages (state, diff, history).

No dbt or dbt-eventbridge subprocess: a minimal dbt project is written to a temporary
folder, with our dbt package linked in as ``dbt deps`` links a ``local:`` package
(``dbt_packages/dbt_eventbridge`` -> the repository root), parsed in this process by
``DbtProject.parse`` and connected by ``DbtProject.open_adapter``, once per session and
engine. Each test gets fresh schemas (its model tables and its state schema), so tests
never see each other's tables, also under pytest-xdist.

The ``engine`` fixture is parametrized over ``duckdb`` and ``postgres``; the PostgreSQL
items are marked ``postgres`` by tests/conftest.py, so ``-m "not postgres"`` is the
DuckDB-only lane.

``Sync`` drives the warehouse stages with the calls a real run makes (``_SyncRun._run`` in
dbt_eventbridge/run/sync_run.py and ``StatePlan`` in run/plan_store.py), minus rendering
and publishing: what EventBridge accepted is given to it as plan seqs.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from dbt_common.events.event_manager import EventManager
from dbt_common.events.event_manager_client import ctx_set_event_manager, get_event_manager

from dbt_eventbridge.config.definitions import SyncConfig
from dbt_eventbridge.config.syncs import parse_syncs
from dbt_eventbridge.warehouse import changes as reading
from dbt_eventbridge.warehouse import diff as planning
from dbt_eventbridge.warehouse import state as state_store
from dbt_eventbridge.warehouse.layout import phys
from dbt_eventbridge.warehouse.nodes import ModelNode
from dbt_eventbridge.warehouse.project import DbtProject
from dbt_eventbridge.warehouse.tables import StateTables, ensure_schema

REPO_ROOT = Path(__file__).resolve().parents[3]
OPS = ("added", "changed", "removed")
PROJECT_NAME = "eb_unit"
_names = itertools.count(1)
SHM = "/dev/shm"


def _cache_root() -> Path:
    base = SHM if os.path.isdir(SHM) and os.access(SHM, os.W_OK) else tempfile.gettempdir()
    return Path(base) / f"dbt_eventbridge_unit_{os.getuid()}"


@pytest.fixture(scope="session")
def project_slot() -> Iterator[Path]:
    """A folder of this session's own for the dbt projects (and the DuckDB file), the same
    from one session to the next: dbt's partial parsing (target/dbt_eventbridge/partial_parse.msgpack)
    then spares the full parse of dbt's own macros (2 s of CPU, 3-5 s on a busy machine).
    dbt checks every file it would read against that cache, our package's included. A lock held for the
    session keeps any other session (an xdist worker, another checkout) out of the slot.

    In memory-backed storage where there is some (/dev/shm): every commit of a DuckDB
    file on disk would wait for the disk."""
    root = _cache_root()
    root.mkdir(parents=True, exist_ok=True)
    for n in itertools.count():
        lock = open(root / f"slot{n}.lock", "w")  # noqa: SIM115 - held open for the session
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        break
    try:
        yield root / f"slot{n}"
    finally:
        lock.close()


def _write_project(folder: Path, profile_target: str) -> None:
    """The project, written the same way every session (so that dbt's partial parse holds)."""
    for leftover in ("logs", "warehouse.duckdb", "warehouse.duckdb.wal"):
        path = folder / leftover
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    (folder / "models").mkdir(parents=True, exist_ok=True)
    (folder / "dbt_packages").mkdir(exist_ok=True)
    # What `dbt deps` makes of a `local:` package: a link to the package's folder.
    link = folder / "dbt_packages" / "dbt_eventbridge"
    if link.is_symlink() and link.resolve() != REPO_ROOT:
        link.unlink()
    if not link.is_symlink():
        link.symlink_to(REPO_ROOT, target_is_directory=True)
    (folder / "dbt_project.yml").write_text(
        f"name: {PROJECT_NAME}\nversion: '1.0.0'\nconfig-version: 2\nprofile: {PROJECT_NAME}\n"
        "model-paths: [models]\nseed-paths: []\ntest-paths: []\nsnapshot-paths: []\nanalysis-paths: []\n")
    (folder / "profiles.yml").write_text(f"{PROJECT_NAME}:\n  target: unit\n  outputs:\n    unit:\n{profile_target}")


def _duckdb_target(path: Path) -> str:
    # DuckDB's own thread pool costs more than it brings on the many tiny statements here.
    return f"      type: duckdb\n      path: '{path}'\n      threads: 1\n      settings:\n        threads: 1\n"


def _postgres_target(pg: Any) -> str:
    return (f"      type: postgres\n      host: '{pg.host}'\n      port: {pg.port}\n      user: '{pg.user}'\n"
            f"      password: '{pg.password or ''}'\n      dbname: '{pg.dbname}'\n      schema: public\n"
            "      threads: 1\n")


@pytest.fixture(scope="session", params=["duckdb", "postgres"])
def warehouse_project(request: pytest.FixtureRequest, project_slot: Path) -> Iterator[DbtProject]:
    """A parsed dbt project with our package, its adapter open and connected (one per engine).

    dbt keeps one set of adapters per process (open_adapter resets them), so only one of
    these is alive at a time: pytest groups the tests by engine and tears one down before
    setting up the other."""
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    folder = project_slot / request.param
    if request.param == "duckdb":
        target = _duckdb_target(folder / "warehouse.duckdb")  # a database file, as users have
    else:
        target = _postgres_target(request.getfixturevalue("postgres"))
    _write_project(folder, target)
    events = None
    try:
        project = DbtProject(folder, profiles_dir=folder)
        project.parse()
        project.open_adapter()
        assert project.adapter_type == request.param
        events = _silence_dbt_events()
        with project.connection("dbt_eventbridge"):
            project.setup_session()  # what a run does first on its connection (UTC, text forms of values)
            yield project
        project.adapter.cleanup_connections()
    finally:
        if events is not None:
            ctx_set_event_manager(events)
        for leftover in ("warehouse.duckdb", "warehouse.duckdb.wal"):
            (folder / leftover).unlink(missing_ok=True)


class _SilentEvents(EventManager):
    """dbt's event manager, with events dropped as they are fired."""

    def fire_event(self, e: Any, level: Any = None, node: Any = None,
                   force_warn_or_error_handling: bool = False) -> None:
        return None


def _silence_dbt_events() -> Any:
    """dbt fires events for every statement (connection used, the SQL, its status, the
    commit...), each turned into structured log lines (logs/dbt.log, pytest's log capture):
    40% of what a statement costs here, for logs no test reads (our errors carry the
    warehouse's message). Returns the manager to put back when the session ends."""
    before = get_event_manager()
    ctx_set_event_manager(_SilentEvents())
    return before


@pytest.fixture
def engine(warehouse_project: DbtProject) -> Iterator[Warehouse]:
    """The live project, with schemas of this test's own."""
    n = next(_names)
    tag = f"{os.getpid()}_{n}"
    wh = Warehouse(warehouse_project, schema=f"unit_m{tag}", state_schema=f"unit_st{tag}")
    wh.project.execute(f"create schema {wh.schema}")
    yield wh
    wh.project.forget_tables()
    if wh.kind != "duckdb":  # (a DuckDB file goes with the session; a server may outlive it)
        for schema in (wh.schema, wh.state_schema):
            wh.project.execute(f"drop schema if exists {schema} cascade")


def sql_literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    if isinstance(value, dt.datetime):
        return f"timestamp '{value.isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"date '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


class Warehouse:
    """One test's view of the live project: its model schema and its state schema."""

    def __init__(self, project: DbtProject, schema: str, state_schema: str) -> None:
        self.project = project
        self.kind = project.adapter_type
        self.database = project.config.credentials.database
        self.schema = schema
        self.state_schema = state_schema

    def query(self, sql: str) -> list[tuple]:
        return self.project.execute(sql, fetch=True)

    def state_table(self, name: str) -> Any:
        return self.project.state_relation(self.state_schema, name)

    def table(self, name: str, columns: str, rows: Sequence[tuple] = ()) -> ModelNode:
        """A model's relation, built here with SQL (as `dbt run` would build it)."""
        relation = self.project.adapter.Relation.create(database=self.database, schema=self.schema, identifier=name)
        self.project.execute(f"create table {relation} ({columns})")
        node = ModelNode(unique_id=f"model.{PROJECT_NAME}.{name}", name=name, relation_name=str(relation),
                         database=self.database, schema=self.schema, alias=name, meta={}, file=None,
                         materialized="table")
        self.load(node, rows)
        return node

    def load(self, node: ModelNode, rows: Sequence[tuple]) -> None:
        """Replace the model's rows (a rebuild of the model)."""
        with self.project.transaction():
            self.project.execute(f"delete from {node.relation_name}")
            if rows:
                values = ", ".join("(" + ", ".join(sql_literal(v) for v in r) + ")" for r in rows)
                self.project.execute(f"insert into {node.relation_name} values {values}")

    def sync(self, node: ModelNode, primary_key: str | list[str], **meta: Any) -> Sync:
        syncs, problems = parse_syncs(node.unique_id, node.name,
                                      {"primary_key": primary_key, "source": "com.example.unit",
                                       "detail_type": "RowChanged", **meta})
        assert not problems, problems
        return Sync(self, node, syncs[0])

    def make_foreign_table(self, name: str, columns: str = "id integer, note varchar(20)") -> Any:
        """A table in the state schema that someone else created, with one row."""
        self.project.execute(f"create schema if not exists {self.state_schema}")
        relation = self.state_table(name)
        self.project.execute(f"create table {relation} ({columns})")
        self.project.execute(f"insert into {relation} (id) values (42)")
        self.project.forget_tables()
        return relation


@dataclass
class Plan:
    audit: planning.KeyAudit
    counts: dict[str, int]
    spec: planning.PlanSpec
    shape: planning.ModelShape
    rows: reading.RowSpec


class Sync:
    """A sync through the warehouse stages, as a run calls them (``_SyncRun._run``, ``StatePlan``)."""

    def __init__(self, wh: Warehouse, node: ModelNode, config: SyncConfig) -> None:
        self.wh = wh
        self.project = wh.project
        self.node = node
        self.config = config
        self.tables = StateTables.for_sync(self.project, wh.state_schema, config.name)

    def fresh_tables(self) -> StateTables:
        """The sync's tables as a new process (the next run) sees them: nothing cached."""
        self.project.forget_tables()
        self.tables = StateTables.for_sync(self.project, self.wh.state_schema, self.config.name)
        return self.tables

    @property
    def keys(self) -> list[str]:
        return [self.project.quote(k) for k in self.config.primary_key]

    def plan(self, ops: Sequence[str] = OPS, *, full_refresh: bool = False) -> Plan:
        project, tables = self.project, self.tables
        cols = project.columns(self.node)
        assert cols is not None, f"{self.node.relation_name} does not exist"
        resolved, shape = planning.resolve_shape(self.config, self.node, cols)
        model = project.relation(self.node)
        audit = planning.audit_keys(project, model, shape)
        ensure_schema(project, tables)
        previous, _ = state_store.read_layout(project, tables)
        state_exists = tables.owned.check(tables.state)
        spec = planning.plan_spec(shape, project.render_macro("hash_version"), previous, state_exists,
                                  start_over=full_refresh, sync=resolved)
        dups = audit.duplicate_key_rows > 0

        def create(dups: bool) -> None:
            sql = planning.plan_select(project, model, tables.state, shape, spec, full_refresh, dups)
            state_store.create_plan(project, tables, sql, list(ops), spec.layout)

        create(dups)
        if not dups and planning.has_duplicate_keys(project, tables.plan, shape):
            create(True)  # a key duplicated after the audit (a concurrent rebuild)
        counts = planning.count_ops(project, tables.plan)
        json_types = project.cached("json_types", lambda: {str(t).lower() for t in project.call("json_types")})
        rows = reading.RowSpec.make(shape, spec.previous if spec.with_state else None, json_types)
        return Plan(audit, counts, spec, shape, rows)

    def anything_to_do(self) -> bool | None:
        """A run's first question (sync_run): None when the answer needs the whole plan (no
        state yet, or a schema change), else whether the plan would have a row."""
        project, tables = self.project, self.tables
        cols = project.columns(self.node)
        assert cols is not None, f"{self.node.relation_name} does not exist"
        resolved, shape = planning.resolve_shape(self.config, self.node, cols)
        previous, _ = state_store.read_layout(project, tables)
        spec = planning.plan_spec(shape, project.render_macro("hash_version"), previous,
                                  tables.owned.check(tables.state), start_over=False, sync=resolved)
        if not planning.steady(spec):
            return None
        model = project.relation(self.node)
        return planning.anything_planned(project, planning.plan_select(project, model, tables.state, shape, spec,
                                                                       False, True, exists_only=True))

    def changes(self, plan: Plan, ops: Sequence[str] = OPS, *, seq_range: tuple[int, int] | None = None,
                old_rows: bool = True) -> list[Any]:
        """The plan's Changes, in seq order, read as a run reads a chunk (by default, the whole plan)."""
        whole = (0, sum(plan.counts.values()))
        names, rows = reading.read_chunk(self.project, str(self.tables.plan), list(ops), plan.rows,
                                         seq_range or whole, old_rows)
        out = reading.ChangeReader(names, plan.rows)(rows) if rows else []
        return sorted(out, key=lambda c: c.seq)

    def seqs(self, plan: Plan, *keys: Any) -> list[int]:
        """The plan seqs of the rows with these keys (a key: a value, or a tuple for composite keys)."""
        wanted = {k if isinstance(k, tuple) else (k,) for k in keys}
        found = [c.seq for c in self.changes(plan)
                 if tuple(c.key[k] for k in self.config.primary_key) in wanted]
        assert len(found) == len(wanted), f"not all of {keys} are in the plan"
        return found

    def journal(self, seqs: list[int]) -> None:
        state_store.journal(self.project, self.tables, seqs)

    def commit(self) -> None:
        state_store.commit(self.project, self.tables, self.keys)

    def deliver(self, ops: Sequence[str] = OPS) -> Plan:
        """A run whose every event EventBridge accepted: plan, journal every change sent, commit."""
        plan = self.plan(ops)
        self.journal([c.seq for c in self.changes(plan, ops)])
        self.commit()
        return plan

    def delivered(self) -> dict[tuple, dict[str, Any]]:
        """The state as the model's columns: key -> the values as delivered."""
        tables = self.tables
        layout, _ = state_store.read_layout(self.project, tables)
        if layout is None or not tables.owned.check(tables.state):
            return {}
        physical = layout.physical()
        cols = ", ".join(phys(c.index) for c in physical)
        out = {}
        for r in self.wh.query(f"select _eb_shape, {cols} from {tables.state}"):
            shape = layout.shapes[int(r[0])]
            by_index = dict(zip((c.index for c in physical), r[1:]))
            row = {c.name: by_index[c.index] for c in shape.columns}
            out[tuple(row[k] for k in shape.keys)] = row
        return out
