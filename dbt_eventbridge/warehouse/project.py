"""The door to dbt: parsing, selection, the manifest, the adapter (with session.py, its SQL half).

dbt keeps process-wide state (flags, the adapter registry, invocation context), so this
is the one module allowed to set it. Keeping dbt's internals here and in session.py (which
only uses the adapter's public methods) means the rest of the tool does not care whether
dbt is 1.9 or 1.12, and a move to dbt's next engine replaces these two files.

The dbt APIs used that are not dbt's documented programmatic interface (``dbtRunner``), each
checked on dbt-core 1.9.11, 1.10.23, 1.11.16 and 1.12.6 (devtools/dbt_versions.py runs the
DuckDB integration lane on each):

- ``dbt.cli.main.dbtRunner(manifest=..., callbacks=...)``: list, parse and build with a
  manifest already loaded; the events' ``info.name``, ``info.invocation_id`` and, for
  ``NodeFinished``, ``data.node_info.unique_id`` and ``data.run_result.status``.
- ``dbt.cli.main.cli.commands["build"].make_context``: ``dbt build``'s reading of its flags.
- ``dbt.adapters.factory.get_adapter`` (by the credentials' type), the adapter's ``config``, and its
  ``cleanup_connections`` called once, at the end of ``execute_with_hooks`` (wrapped, for the
  running build's adapter only, so syncs in flight finish before dbt closes connections).
- ``dbt.contracts.graph.manifest.Manifest.from_msgpack`` with
  ``dbt.parser.manifest.extended_mashumuro_decoder`` (sic): read dbt's partial-parse file.
- ``dbt.parser.read_files.normalize_file_contents`` (1.12 and later; absent before) and
  ``dbt.artifacts.resources.base.FileHash.from_contents`` with
  ``dbt_common.clients.system.load_file_contents(strip=True)``: a file's checksum as dbt takes it.
- ``manifest.files`` (``project_name``, ``path.absolute_path``, ``checksum``), ``manifest.nodes``
  (``name``, ``resource_type``, ``database``, ``schema``, ``alias``, ``relation_name``, ``meta``,
  ``config.meta``/``enabled``/``materialized``, ``depends_on.nodes``, ``original_file_path``),
  ``manifest.macros``, ``manifest.find_macro_by_name``, ``manifest.metadata`` (``dbt_version``,
  the adapter's type); ``RuntimeConfig`` (``project_name``, ``credentials``).
- ``dbt.config.runtime.RuntimeConfig.from_args``, ``dbt.flags.set_from_args``,
  ``dbt.mp_context.get_mp_context``, ``dbt.adapters.factory`` (``register_adapter``,
  ``get_adapter``, ``reset_adapters``), ``adapter.set_macro_resolver`` and
  ``set_macro_context_generator``: an adapter outside a dbt command.
- ``dbt.context.providers.generate_runtime_macro_context`` and
  ``dbt_common.clients.jinja.CallableMacroGenerator``: our macros, and dbt's context in templates.
- ``dbt_common.context`` (``get_invocation_context``, ``set_invocation_context``) and
  ``dbt_common.events.event_manager_client.cleanup_event_logger``: env_var() and logging
  outside a dbt command.
- ``dbt.version.__version__``; ``dbt_common.exceptions.macros.MacroReturn`` (delivery/templates.py).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from argparse import Namespace
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from dbt_eventbridge.errors import ProjectError
from dbt_eventbridge.warehouse.driver_errors import first_line
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
from dbt_eventbridge.warehouse.session import PACKAGE, AdapterSession

INSTALL_HINT = (
    "Add the dbt package to the project's packages.yml (`- local: <path to a dbt-eventbridge checkout>`, or "
    "`- git: <its git URL>` with a `revision:`) and run `dbt deps`")


PARSE_FOLDER = "dbt_eventbridge"  # in dbt's target path: our parse's artifacts (see _parse_target)
PARTIAL_PARSE_FILE = "partial_parse.msgpack"  # dbt's name for its partial-parse state


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


def _parse_counts(perf_info: Path) -> tuple[int, int] | None:
    """(files of the project, files dbt parsed again) from the perf_info.json of a parse."""
    try:
        info = json.loads(perf_info.read_text())
        return int(info["path_count"]), int(info["parsed_path_count"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class DbtProject(AdapterSession):
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
        self.parse_counts: tuple[int, int] | None = None  # (files, parsed again) of our parse
        self.config: Any = None
        self.adapter: Any = None
        self._macro_ctx: dict[str, Any] | None = None
        self._macro_fns: dict[str, Any] = {}
        self._exec_ctx: dict[str, Any] | None = None
        self._cache: dict[str, Any] = {}
        self._engine: Engine | None = None
        self._listings: dict[str, set[str]] = {}
        self._schemas: set[str] = set()
        self._model_listings: dict[tuple[str, str], list[Any]] = {}
        self._in_transaction = False
        self.rollbacks = 0

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

    def _parse_target(self) -> Path:
        """Where our parse writes its artifacts: a folder of its own in dbt's target path.

        Written to the target path itself, they replaced the user's (partial_parse.msgpack,
        manifest.json) with a parse made under other --vars: the user's next dbt command
        parsed the whole project again, and `--state target` compared against our parse.
        In a folder of their own, dbt still parses our next run partially from them."""
        configured = os.environ.get("DBT_TARGET_PATH") or ""
        if not configured:
            try:
                project = yaml.safe_load((self.project_dir / "dbt_project.yml").read_text()) or {}
            except (OSError, yaml.YAMLError):
                project = {}
            value = project.get("target-path") if isinstance(project, dict) else None
            configured = value if isinstance(value, str) and "{" not in value else "target"
        base = Path(configured)
        return (base if base.is_absolute() else self.project_dir / base) / PARSE_FOLDER

    def parse(self) -> None:
        """dbt's parse, partial when dbt's partial-parse state of our last parse is current
        (dbt compares the files, vars, profile and its version; only what changed is parsed
        again). Before our first parse in a target path, the user's own partial-parse state
        (of the `dbt build` that made the models) is the starting point: with the same vars
        and target, dbt parses nothing again (20-model project: 0.9 s of CPU instead of 1.7)."""
        from dbt.cli.main import dbtRunner

        ours = self._parse_target()
        seed = ours.parent / PARTIAL_PARSE_FILE
        if not (ours / PARTIAL_PARSE_FILE).exists() and seed.exists():
            try:
                ours.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(seed, ours / PARTIAL_PARSE_FILE)
            except OSError:
                pass  # only a head start: dbt parses everything without it
        # --no-write-json: our parse needs the manifest in memory and dbt's partial-parse file,
        # not manifest.json (writing it cost 0.35 s of CPU a run on integration_project).
        res = _quiet(dbtRunner().invoke, ["parse", "--quiet", "--no-write-json",
                                          "--target-path", str(ours), *self._cli_args()])
        if not res.success or res.result is None:
            detail = first_line(res.exception) if res.exception else "see logs/dbt.log in the project"
            fix = "Run `dbt deps` in the project" if "dbt deps" in detail else \
                "Check the flags (--target, --profiles-dir, --vars); `dbt debug` with the same flags shows more"
            raise ProjectError(f"dbt could not load the project in {self.project_dir}: {detail}", fix=fix)
        self.manifest = res.result
        self.parse_counts = _parse_counts(ours / "perf_info.json")
        self._check_package()

    def _check_package(self) -> None:
        if not any(m.package_name == PACKAGE for m in self.manifest.macros.values()):
            raise PackageMissingError(f"the dbt package '{PACKAGE}' is not installed in this project",
                                      fix=INSTALL_HINT)

    def load_saved(self) -> bool:
        """The manifest of our last parse, read as it is (not checked against the files):
        for the commands that need only the connection and the macros (runs, inspect,
        reset), which then start in 0.25 s of CPU less than a partial parse (0.9 s on a
        20-model project). False when there is none this dbt can read: parse instead."""
        try:
            data = (self._parse_target() / PARTIAL_PARSE_FILE).read_bytes()
        except OSError:
            return False
        try:
            from dbt.contracts.graph.manifest import Manifest
            from dbt.parser import manifest as loader
            from dbt.version import __version__ as dbt_version

            decoder = getattr(loader, "extended_mashumuro_decoder", None)
            manifest = Manifest.from_msgpack(data, decoder=decoder) if decoder else Manifest.from_msgpack(data)
            if manifest.metadata.dbt_version != dbt_version:
                return False
        except Exception:  # noqa: BLE001 - written by another dbt, or damaged: a parse reads the project instead
            return False
        if not self._package_unchanged(manifest):
            return False
        self.manifest = manifest
        self._check_package()
        return True

    @staticmethod
    def _package_unchanged(manifest: Any) -> bool:
        """Whether our dbt package's files are as the saved parse read them: after an upgrade
        and `dbt deps`, the saved macros are the old ones (checked as dbt checks a file for
        its partial parse: the checksum of its stripped text; 5 small files)."""
        from dbt.artifacts.resources.base import FileHash
        from dbt.parser import read_files
        from dbt_common.clients.system import load_file_contents

        # dbt 1.12 hashes a file's text with its whitespace runs made single spaces; 1.9 to 1.11
        # hash the stripped text as it is.
        normalize: Callable[[str], str] = getattr(read_files, "normalize_file_contents", lambda text: text)
        files = [f for f in manifest.files.values() if f.project_name == PACKAGE]
        if not files:
            return False
        for f in files:
            try:
                text = normalize(load_file_contents(f.path.absolute_path, strip=True))
                if FileHash.from_contents(text) != f.checksum:
                    return False
            except OSError:
                return False
        return True

    def saved_fits_target(self) -> bool:
        """Whether the manifest read by load_saved was parsed for this target's adapter (a
        parse for DuckDB has no Snowflake macros). Call after open_adapter."""
        return str(getattr(self.manifest.metadata, "adapter_type", "") or "") == self.adapter_type

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

    # -- dbt-eventbridge build: dbt's build in this process -----------------------------------
    @staticmethod
    def build_params(dbt_args: Sequence[str], command: str = "build") -> dict[str, Any]:
        """dbt's own reading of a command's arguments (flags, and their environment variables)."""
        from dbt.cli.main import cli

        try:
            return dict(cli.commands[command].make_context(command, list(dbt_args)).params)
        except Exception as e:  # noqa: BLE001 - click raises a usage error, dbt its own kinds
            raise ProjectError(f"dbt {command} does not take these arguments: {first_line(e)}",
                               fix=f"Pass `dbt {command}`'s own flags (see `dbt {command} --help`)") from None

    def parse_for_build(self) -> None:
        """The parse of the coming build, as ``dbt build`` makes it: in dbt's target path, with
        its partial-parse state and manifest.json, under the build's vars (the build is then
        given this manifest and does not parse again)."""
        from dbt.cli.main import dbtRunner

        args = ["parse", "--quiet", "--project-dir", str(self.project_dir), "--profiles-dir", str(self.profiles_dir)]
        if self.target:
            args += ["--target", self.target]
        if self.profile:
            args += ["--profile", self.profile]
        if self.vars:
            args += ["--vars", json.dumps(self.vars)]
        res = _quiet(dbtRunner().invoke, args)
        if not res.success or res.result is None:
            detail = first_line(res.exception) if res.exception else "see logs/dbt.log in the project"
            raise ProjectError(f"dbt could not load the project in {self.project_dir}: {detail}",
                               fix="Run `dbt parse` with the same flags to see the details")
        self.manifest = res.result
        self._check_package()

    def build_selection(self, params: dict[str, Any]) -> set[str]:
        """Every node (models, seeds, snapshots, tests...) the build's selection flags select."""
        from dbt.cli.main import dbtRunner

        args = ["ls", "--quiet", "--output", "json", "--output-keys", "unique_id", *self._cli_args()]
        for name, flag in (("select", "--select"), ("exclude", "--exclude"), ("resource_types", "--resource-type"),
                           ("exclude_resource_types", "--exclude-resource-type")):
            values = [str(v) for v in (params.get(name) or ())]
            if values:
                args += [flag, *values] if name in ("select", "exclude") else \
                    [a for v in values for a in (flag, v)]
        if params.get("selector"):
            args += ["--selector", str(params["selector"])]
        if params.get("indirect_selection"):
            args += ["--indirect-selection", str(params["indirect_selection"])]
        res = _quiet(dbtRunner(manifest=self.manifest).invoke, args)
        if not res.success:
            raise ProjectError(f"dbt could not apply the build's selection: {res.exception}",
                               fix="Check the selector with `dbt ls` and the same flags")
        return {json.loads(line)["unique_id"] for line in (res.result or [])}

    def run_build(self, dbt_args: Sequence[str], callback: Callable[[Any], None],
                  command: str = "build") -> tuple[int, str | None]:
        """``dbt build`` (or run, or snapshot) with these arguments, on the manifest of
        :meth:`parse_for_build`, with ``callback`` called for each of dbt's events (from dbt's
        threads). Returns dbt's exit code (0 success, 1 a node failed, 2 dbt could not run)
        and its error, if any."""
        from dbt.cli.main import dbtRunner

        res = dbtRunner(manifest=self.manifest, callbacks=[callback]).invoke([command, *dbt_args])
        if res.exception is not None:
            return 2, first_line(res.exception)
        return (0 if res.success else 1), None

    def attach_to_running_dbt(self, manifest: Any) -> None:
        """Use the adapter of the dbt command running in this process (registered by dbt at
        the start of its invocation), with its config: nothing process-wide is changed. Call
        after open_adapter (load does)."""
        from dbt.adapters.factory import get_adapter

        adapter = get_adapter(self.config)  # looked up by the type of our config's credentials: the build's
        self._macro_fns.clear()
        self._exec_ctx = self._macro_ctx = self._engine = None
        self._listings.clear()
        self._model_listings.clear()
        self.manifest = manifest
        self.adapter = adapter
        self.config = adapter.config

    def sibling(self) -> DbtProject:
        """Another project object on the same manifest, config and adapter, for another thread
        (each keeps its own connection's transaction state and caches)."""
        other = DbtProject(self.project_dir, self.profiles_dir, self.target, self.vars, self.profile)
        other.manifest, other.config, other.adapter = self.manifest, self.config, self.adapter
        return other

    def before_dbt_closes_connections(self, wait: Callable[[], None]) -> None:
        """Call ``wait`` when the running dbt command is about to close every connection of
        its adapter (ours too: they are the same adapter's), after its nodes and on-run-end
        hooks: in dbt 1.9 to 1.12, ``adapter.cleanup_connections()`` at the end of
        ``execute_with_hooks`` is that moment, and the only call of it in a build."""
        adapter = self.adapter
        original = adapter.cleanup_connections

        def cleanup() -> None:
            try:
                wait()
            finally:
                adapter.cleanup_connections = original
                original()

        adapter.cleanup_connections = cleanup

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
                resource_type=node.resource_type.value, declared_columns=_declared_columns(node),
                contract_enforced=bool(getattr(getattr(node.config, "contract", None), "enforced", False))))
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
        from dbt_common.context import get_invocation_context, set_invocation_context

        try:  # (dbt-common's try_get_invocation_context is 1.16 and later; dbt-core 1.9 allows 1.13)
            get_invocation_context()
            invoked = True
        except LookupError:
            invoked = False
        if not invoked:  # no dbt command ran in this process (load_saved)
            from dbt_common.events.event_manager_client import cleanup_event_logger

            set_invocation_context(os.environ)  # profiles.yml's env_var() reads it
            # dbt_common's fallback logger prints INFO events ("Registered adapter: ...") to
            # stdout until a dbt command sets logging up: that broke `runs --format json`.
            cleanup_event_logger()
        self._macro_fns.clear()  # made with the adapter that open_adapter replaces
        self._exec_ctx = self._macro_ctx = self._engine = None
        self._listings.clear()
        self._model_listings.clear()
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

    def macro_context(self) -> dict[str, Any]:
        """dbt's runtime context (var, env_var, target, the project's macros) for our templates."""
        if self._macro_ctx is None:
            from dbt.context.providers import generate_runtime_macro_context

            macro = next(m for m in self.manifest.macros.values() if m.package_name == PACKAGE)
            self._macro_ctx = generate_runtime_macro_context(macro, self.config, self.manifest,
                                                             self.config.project_name)
        return self._macro_ctx

    def run_macro(self, name: str, kwargs: dict[str, Any]) -> Any:
        """Run one of our package's macros, as ``adapter.execute_macro(name, project=PACKAGE)`` does,
        in one context made once per project.

        dbt's execute_macro builds dbt's whole runtime context anew for every call (every macro
        of every package, the adapter, the flags): about 5 ms of CPU each on DuckDB, and a
        no-change sync called it 13 times (a third of a no-change sync of 20 models went there).
        dbt itself shares one context between all the macros a node calls."""
        fn = self._macro_fns.get(name)
        if fn is None:
            from dbt_common.clients.jinja import CallableMacroGenerator

            macro = self.manifest.find_macro_by_name(name, self.config.project_name, PACKAGE)
            if macro is None:
                raise PackageMissingError(f"the dbt package '{PACKAGE}' has no macro {name}: it is older than "
                                          "this dbt-eventbridge", fix="Install the matching version of the dbt "
                                          "package (`dbt deps`)")
            if self._exec_ctx is None:
                from dbt.context.providers import generate_runtime_macro_context

                self._exec_ctx = generate_runtime_macro_context(macro, self.config, self.manifest, PACKAGE)
            fn = self._macro_fns[name] = CallableMacroGenerator(macro, self._exec_ctx)
        with self.adapter.connections.exception_handler(f"macro {name}"):
            return fn(**kwargs)

    def project_var(self, name: str, default: Any = None) -> Any:
        return self.macro_context()["var"](name, default)

    def cached(self, name: str, compute: Callable[[], Any]) -> Any:
        """A value computed once per project (e.g. a dispatched macro's constant answer)."""
        if name not in self._cache:
            self._cache[name] = compute()
        return self._cache[name]

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


def _declared_columns(node: Any) -> tuple[tuple[str, str | None, bool], ...]:
    """(name, data_type, not null) of each column the node's YAML declares, with its
    constraints: the column's own, and the model's (``constraints: [{type: not_null,
    columns: [...]}]``, a primary key's columns too)."""
    def kind(c: Any) -> str:
        t = getattr(c, "type", None)
        return str(getattr(t, "value", t) or "")

    model_not_null = {col.lower() for c in (getattr(node, "constraints", None) or ())
                      if kind(c) in ("not_null", "primary_key") for col in (getattr(c, "columns", None) or ())}
    out = []
    for name, col in (getattr(node, "columns", None) or {}).items():
        not_null = name.lower() in model_not_null or any(kind(c) in ("not_null", "primary_key")
                                                         for c in (getattr(col, "constraints", None) or ()))
        out.append((str(name), getattr(col, "data_type", None) or None, not_null))
    return tuple(out)
