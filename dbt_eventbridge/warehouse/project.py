"""Everything that touches dbt's Python internals lives here.

dbt keeps process-wide state (flags, the adapter registry, invocation context), so this
is the one module allowed to set it. Keeping it in one place also means the rest of the
tool does not care whether dbt is 1.9 or 1.11, and a move to dbt's next engine replaces
one file.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from argparse import Namespace
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from dbt_eventbridge.errors import ProjectError, WarehouseError, WarehouseUnavailableError
from dbt_eventbridge.warehouse.driver_errors import BusyError, file_lock_holder, first_line, memory_fix, warehouse_error
from dbt_eventbridge.warehouse.engines import engine_for
from dbt_eventbridge.warehouse.engines.base import Engine
from dbt_eventbridge.warehouse.engines.statements import Statements
from dbt_eventbridge.warehouse.nodes import (
    SYNCABLE,
    LastRun,
    ModelNode,
    declared_meta,
    merge_recorded,
    read_last_run,
)

# A statement that may create, drop or rename a table (over-matching only costs a listing).
_DDL = re.compile(r"\b(create|drop|alter|rename)\b", re.IGNORECASE)

PACKAGE = "dbt_eventbridge"
INSTALL_HINT = (
    "Add the dbt package to the project's packages.yml (`- local: <path to a dbt-eventbridge checkout>`, or "
    "`- git: <its git URL>` with a `revision:`) and run `dbt deps`")


class PackageMissingError(ProjectError):
    """The dbt package is not installed in the project."""


def _quiet(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a dbt invocation without its stdout, and without our command line in dbt.log.

    dbt prints ls output straight to stdout, and logs ``sys.argv`` as the invocation
    command, which would put secrets given with ``--vars`` (an external ID) in the log.
    """
    import sys

    buf = io.StringIO()
    argv = sys.argv
    sys.argv = [os.path.basename(argv[0]) if argv else "dbt-eventbridge"]
    try:
        with contextlib.redirect_stdout(buf):
            return fn(*args, **kwargs)
    finally:
        sys.argv = argv


class DbtProject:
    """A parsed dbt project with an open adapter on its target."""

    def __init__(self, project_dir: str | os.PathLike[str], profiles_dir: str | os.PathLike[str] | None = None,
                 target: str | None = None, vars: dict[str, Any] | None = None,
                 profile: str | None = None) -> None:
        self.project_dir = Path(project_dir).resolve()
        if not (self.project_dir / "dbt_project.yml").exists():
            raise ProjectError(f"no dbt_project.yml in {self.project_dir}",
                               fix="Run from the dbt project's folder or pass --project-dir")
        if profiles_dir is None:
            profiles_dir = os.environ.get("DBT_PROFILES_DIR")
        if profiles_dir is None:
            profiles_dir = self.project_dir if (self.project_dir / "profiles.yml").exists() \
                else Path.home() / ".dbt"
        self.profiles_dir = Path(profiles_dir).resolve()
        self.target = target
        self.profile = profile
        self.vars = vars or {}
        self.manifest: Any = None
        self.config: Any = None
        self.adapter: Any = None
        self._macro_ctx: dict[str, Any] | None = None
        self._cache: dict[str, Any] = {}
        self._engine: Engine | None = None
        self._listings: dict[str, set[str]] = {}
        self._in_transaction = False

    # -- dbt invocations -------------------------------------------------------------------
    def _cli_args(self) -> list[str]:
        args = ["--project-dir", str(self.project_dir), "--profiles-dir", str(self.profiles_dir)]
        if self.target:
            args += ["--target", self.target]
        if self.profile:
            args += ["--profile", self.profile]
        # dbt writes its invocation's --vars to logs/dbt.log; our own settings (which may
        # hold an external ID) stay out of it: they are read through open_adapter instead.
        dbt_vars = {k: v for k, v in self.vars.items() if k != "eventbridge"}
        if dbt_vars:
            args += ["--vars", json.dumps(dbt_vars)]
        return args

    def parse(self) -> None:
        from dbt.cli.main import dbtRunner

        res = _quiet(dbtRunner().invoke, ["parse", "--quiet", *self._cli_args()])
        if not res.success or res.result is None:
            detail = first_line(res.exception) if res.exception else "see logs/dbt.log in the project"
            fix = "Run `dbt deps` in the project" if "dbt deps" in detail else \
                "Check the flags (--target, --profiles-dir, --vars); `dbt debug` with the same flags shows more"
            raise ProjectError(f"dbt could not load the project in {self.project_dir}: {detail}", fix=fix)
        self.manifest = res.result
        if not any(m.package_name == PACKAGE for m in self.manifest.macros.values()):
            raise PackageMissingError(f"the dbt package '{PACKAGE}' is not installed in this project",
                                      fix=INSTALL_HINT)

    def select(self, select: Sequence[str] = (), exclude: Sequence[str] = ()) -> set[str]:
        """Model unique_ids matched by dbt's own selection syntax."""
        from dbt.cli.main import dbtRunner

        types = [a for t in SYNCABLE for a in ("--resource-type", t)]
        args = ["ls", "--quiet", *types, "--output", "json", "--output-keys", "unique_id",
                *self._cli_args()]
        if select:
            args += ["--select", *select]
        if exclude:
            args += ["--exclude", *exclude]
        res = _quiet(dbtRunner(manifest=self.manifest).invoke, args)
        if not res.success:
            raise ProjectError(f"dbt could not apply the selection {list(select)} / exclude {list(exclude)}: "
                               f"{res.exception}", fix="Check the selector with `dbt ls -s ...`")
        return {json.loads(line)["unique_id"] for line in (res.result or [])}

    # -- the manifest and artifacts ----------------------------------------------------------
    def models(self) -> list[ModelNode]:
        """Every node with a relation a sync can read: models, and seeds and snapshots too (a
        snapshot is a natural source of change events)."""
        out = []
        for uid, node in self.manifest.nodes.items():
            if node.resource_type.value not in SYNCABLE:
                continue
            meta = dict(node.config.meta or {}) or dict(node.meta or {})
            patch = getattr(node, "patch_path", None)
            file = patch.split("://", 1)[-1] if patch else node.original_file_path
            out.append(ModelNode(
                unique_id=uid, name=node.name, relation_name=node.relation_name, database=node.database,
                schema=node.schema, alias=node.alias or node.name, meta=meta, file=file,
                materialized=node.config.materialized, enabled=node.config.enabled,
                resource_type=node.resource_type.value))
        return out

    def yaml_meta(self, node: ModelNode, key: str) -> Any:
        """The node's ``meta: {key: ...}`` as written in its schema YAML (see nodes.declared_meta)."""
        return declared_meta(self.project_dir, node, key, self._cache.setdefault("yaml_files", {}))

    @property
    def target_path(self) -> Path:
        tp = Path(getattr(self.config, "target_path", None) or "target") if self.config else Path("target")
        return tp if tp.is_absolute() else self.project_dir / tp

    def last_run(self) -> LastRun:
        """What dbt's last invocation did to each node (``target/run_results.json``)."""
        return read_last_run(self.target_path / "run_results.json", self.manifest)

    def merge_recorded(self, out: LastRun, rows: list[tuple[Any, ...]]) -> None:
        """Add what the package's hook recorded of earlier invocations (see nodes.merge_recorded)."""
        merge_recorded(out, rows, self.manifest)

    # -- the adapter -------------------------------------------------------------------------
    def open_adapter(self) -> None:
        from dbt.adapters.factory import get_adapter, register_adapter, reset_adapters
        from dbt.config.runtime import RuntimeConfig
        from dbt.context.providers import generate_runtime_macro_context
        from dbt.flags import set_from_args
        from dbt.mp_context import get_mp_context

        args = Namespace(project_dir=str(self.project_dir), profiles_dir=str(self.profiles_dir),
                         target=self.target, profile=self.profile, vars=self.vars, threads=1)
        set_from_args(args, None)
        try:
            self.config = RuntimeConfig.from_args(args)
        except Exception as e:  # noqa: BLE001 - dbt raises many kinds for a bad profile
            raise ProjectError(f"dbt could not load the profile: {e}",
                               fix="Check profiles.yml and --target; `dbt debug` shows the details") from None
        reset_adapters()  # type: ignore[no-untyped-call]  # dbt's, unannotated
        register_adapter(self.config, get_mp_context())
        self.adapter = get_adapter(self.config)
        self.adapter.set_macro_resolver(self.manifest)
        self.adapter.set_macro_context_generator(generate_runtime_macro_context)

    @property
    def engine(self) -> Engine:
        """What differs per engine on the Python side (see warehouse/engines/)."""
        if self._engine is None:
            self._engine = engine_for(self.adapter_type)
        return self._engine

    @property
    def sql(self) -> Statements:
        """The statements on our own tables, in this engine's dialect."""
        return self.engine.sql

    def literal(self, value: Any) -> str:
        """A SQL literal in this engine's syntax (our own names and ids; row values never go into SQL)."""
        return self.engine.literal(value)

    @property
    def adapter_type(self) -> str:
        return str(self.adapter.type())

    @contextlib.contextmanager
    def connection(self, name: str = "dbt_eventbridge", wait_seconds: int = 0) -> Iterator[None]:
        """The warehouse connection. An embedded database held by another process (DuckDB lets
        one process write a file) is waited for up to ``wait_seconds`` (lock_wait_seconds)."""
        import time

        deadline = time.monotonic() + wait_seconds
        while True:
            opened = False
            try:
                with self.adapter.connection_named(name):
                    self._open(name)
                    opened = True
                    yield
                return
            except BusyError:
                if opened or time.monotonic() >= deadline:
                    raise
                self.adapter.cleanup_connections()
                time.sleep(1)

    def _open(self, name: str) -> None:
        try:
            self.execute("select 1")
        except WarehouseError as e:
            holder = file_lock_holder(e.message)
            if holder is not None:
                raise BusyError(
                    f"another run is syncing right now: the warehouse file is held by another process ({holder}); "
                    "DuckDB lets one process write a database file, so this run published nothing",
                    fix="Wait for it to finish (a `dbt` command holds the file too); lock_wait_seconds makes this "
                        "run wait instead") from None
            cls = WarehouseUnavailableError if isinstance(e, WarehouseUnavailableError) else WarehouseError
            raise cls(f"could not connect to the warehouse (target '{self.config.target_name}'): "
                      f"{e.message.split(': ', 1)[-1]}",
                      fix="Check profiles.yml (a relative DuckDB path is relative to the current "
                          "folder); `dbt debug` shows the connection details") from None

    def setup_session(self, memory_limit: str = "") -> None:
        """The session settings our SQL relies on (UTC, exact floats; DuckDB's memory limit)."""
        setup = self.render_macro("session_setup", memory_limit=memory_limit)
        for stmt in (s for s in setup.split(";") if s.strip()):
            self.execute(stmt)

    def macro_context(self) -> dict[str, Any]:
        """dbt's runtime context (var, env_var, target, the project's macros) for our templates."""
        if self._macro_ctx is None:
            from dbt.context.providers import generate_runtime_macro_context

            macro = next(m for m in self.manifest.macros.values() if m.package_name == PACKAGE)
            self._macro_ctx = generate_runtime_macro_context(macro, self.config, self.manifest,
                                                             self.config.project_name)
        return self._macro_ctx

    def project_var(self, name: str, default: Any = None) -> Any:
        return self.macro_context()["var"](name, default)

    # -- SQL ---------------------------------------------------------------------------------
    def call(self, macro: str, **kwargs: Any) -> Any:
        """Run one of our package's macros (dispatched per adapter) and return its value."""
        try:
            return self.adapter.execute_macro(macro, project=PACKAGE, kwargs=kwargs)
        except Exception as e:  # noqa: BLE001 - dbt and its drivers raise many kinds; each becomes ours, classified
            raise warehouse_error(f"the warehouse failed in {macro}", e) from None

    def render_macro(self, macro: str, **kwargs: Any) -> str:
        """Render a macro to SQL text without running it."""
        return str(self.call(macro, **kwargs)).strip()

    def execute(self, sql: str, fetch: bool = False) -> list[tuple[Any, ...]]:
        """Run one statement; outside :meth:`transaction` it is committed on its own.

        (psycopg2 opens a transaction implicitly, so a statement that is not committed
        explicitly would be rolled back when the connection closes.)
        """
        if not self._in_transaction:
            with self.transaction():
                return self.execute(sql, fetch)
        if _DDL.search(sql):
            self._listings.clear()
        try:
            _, table = self.adapter.execute(sql, auto_begin=False, fetch=fetch)
        except Exception as e:  # noqa: BLE001 - dbt and its drivers raise many kinds; each becomes ours, classified
            raise warehouse_error("a statement failed in the warehouse", e) from None
        return [tuple(r.values()) for r in table.rows] if fetch else []

    def table_names(self, schema_relation: Any) -> set[str]:
        """The lower-cased table names of one schema, listed once until a statement of ours
        changes tables (any DDL through :meth:`execute`), a transaction rolls back, or
        :meth:`forget_tables` (taking a sync's lock: other processes may have made tables).

        Not adapter.get_relation: dbt's relation cache is filled when the adapter opens and
        does not see the tables we create or drop with SQL. Measured on DuckDB: a listing
        costs about 36 ms of dbt macro rendering and events, and a sync asked about 14 times
        (0.5 s of its 1.3 s).
        """
        key = str(schema_relation).lower()
        if key not in self._listings:
            try:
                with self.transaction():
                    found = self.adapter.list_relations_without_caching(schema_relation)
            except WarehouseError:
                raise
            except Exception as e:  # noqa: BLE001 - dbt and its drivers raise many kinds; each becomes ours, classified
                raise warehouse_error(f"could not list the tables of {schema_relation}", e) from None
            self._listings[key] = {str(r.identifier).lower() for r in found}
        return self._listings[key]

    def forget_tables(self) -> None:
        self._listings.clear()

    def cached(self, name: str, compute: Callable[[], Any]) -> Any:
        """A value computed once per project (e.g. a dispatched macro's constant answer)."""
        if name not in self._cache:
            self._cache[name] = compute()
        return self._cache[name]

    def execute_fast(self, sql: str, params: Any = None) -> None:
        """A statement on the connection's own cursor, inside the current transaction.

        For the per-chunk statements (journal inserts): dbt's execute builds and fires two
        log events per statement, which costs more than the statement. Nothing is fetched.
        """
        if not self._in_transaction:
            with self.transaction():
                return self.execute_fast(sql, params)
        try:
            handle = self.adapter.connections.get_thread_connection().handle
            cursor = handle.cursor()
            if params is None:
                cursor.execute(sql)
            else:
                cursor.execute(sql, params)
            self.engine.close_cursor(cursor)
        except Exception as e:  # noqa: BLE001 - dbt and its drivers raise many kinds; each becomes ours, classified
            raise warehouse_error("a statement failed in the warehouse", e) from None

    def stream(self, sql: str, batch_size: int) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
        """Yield (column names, rows) batches; the result is never loaded whole."""
        if self.engine.streams_outside_transaction and not self._in_transaction:
            yield from self._stream(sql, batch_size)
            return
        with self.transaction():
            yield from self._stream(sql, batch_size)

    def _stream(self, sql: str, batch_size: int) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
        try:
            cursor = self.engine.open_stream(self.adapter, sql, batch_size)
            first = cursor.fetchmany(batch_size)
            names = [d[0] for d in cursor.description]
            rows = first
            while rows:
                yield names, rows if isinstance(rows, list) else list(rows)
                rows = cursor.fetchmany(batch_size)
            self.engine.close_stream(cursor)
        except WarehouseError:
            raise
        except Exception as e:  # noqa: BLE001 - any driver error becomes ours, classified
            raise warehouse_error("reading changes from the warehouse failed", e) from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        if self._in_transaction:
            yield
            return
        conns = self.adapter.connections
        try:
            if conns.get_thread_connection().transaction_open:
                # dbt's own macros (get_relation, get_columns_in_relation) leave a
                # transaction open; close it so ours starts clean.
                conns.commit()
            conns.begin()
            self.engine.began(self.adapter)
        except Exception as e:  # noqa: BLE001 - dbt and its drivers raise many kinds; each becomes ours, classified
            raise warehouse_error("the warehouse refused to start a transaction", e) from None
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self._in_transaction = False
            self._listings.clear()  # a listing read inside it may show tables rolled back
            conns.rollback_if_open()
            raise
        self._in_transaction = False
        if not conns.get_thread_connection().transaction_open:
            return  # some of dbt's own macros (create_schema) commit by themselves
        try:
            conns.commit()
        except Exception as e:  # noqa: BLE001 - dbt and its drivers raise many kinds; each becomes ours, classified
            raise warehouse_error("committing to the warehouse failed", e) from None

    def columns(self, node: ModelNode) -> list[tuple[str, str]] | None:
        """(name, data type) of the built relation, or None when it does not exist."""
        try:
            relation = self.adapter.get_relation(node.database, node.schema, node.alias)
            if relation is None:
                return None
        except Exception as e:  # noqa: BLE001 - dbt and its drivers raise many kinds; each becomes ours, classified
            raise warehouse_error(f"reading the columns of {node.relation_name} failed", e) from None
        return self.relation_columns(relation)

    def relation_columns(self, relation: Any) -> list[tuple[str, str]]:
        """(name, type) of a relation's columns, typed the same way from run to run (a macro per adapter)."""
        try:
            with self.transaction():
                return [(str(n), str(t)) for n, t in self.adapter.execute_macro(
                    "relation_columns", project=PACKAGE, kwargs={"relation": relation})]
        except WarehouseError:
            raise
        except Exception as e:  # noqa: BLE001 - dbt and its drivers raise many kinds; each becomes ours, classified
            raise warehouse_error(f"reading the columns of {relation} failed", e) from None

    @staticmethod
    def out_of_memory(e: BaseException) -> bool:
        return memory_fix(e) is not None

    def relation(self, node: ModelNode) -> Any:
        return self.adapter.Relation.create(database=node.database, schema=node.schema, identifier=node.alias)

    def state_relation(self, schema: str, name: str) -> Any:
        return self.adapter.Relation.create(database=self.config.credentials.database, schema=schema,
                                            identifier=name)

    def quote(self, name: str) -> str:
        """The adapter's identifier quoting, with the quote character doubled inside the name
        (dbt's quote() does not, so a column named `a"b` would change the SQL)."""
        mark = str(self.adapter.quote("x"))[0]
        return mark + name.replace(mark, mark * 2) + mark
