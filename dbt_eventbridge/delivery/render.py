"""Render planned changes into EventBridge entries.

Templates are compiled once per sync and rendered per row with a small context: dbt's
full context has hundreds of entries and copying it per row costs more than the render.
Only the names a template actually uses are taken from dbt's context.

JSON templates are made safe by rewriting every ``{{ expression }}`` before compiling:
inside a JSON string literal the value is escaped as string content, outside it becomes
a JSON value (number, true/false, null, or a quoted string). Row values are therefore
data, never template code, and no value can break the JSON around it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import jinja2.nodes

from dbt_eventbridge.config.definitions import MAX_GROUP_ID, TEMPLATE_NAMES, ColumnResolver, DetailSpec, SyncConfig
from dbt_eventbridge.delivery.contracts import Checker, EventContract, informative
from dbt_eventbridge.delivery.templates import (
    Memo,
    RowRejected,
    environment,
    globals_for,
    make_json_safe,
    row_columns_used,
)
from dbt_eventbridge.errors import Problem
from dbt_eventbridge.jsonvalues import dumps, to_json_value
from dbt_eventbridge.model import Change, Entry, Rejection, entry_json, entry_size, key_text

EVENT_ID_NAMESPACE = uuid.UUID("6f1d3b8e-4f0c-5a59-9d0e-2b7c1e8a9f10")
_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes
MAX_DETAIL_TYPE = 128
MAX_RESOURCE = 2048


def event_id(sync: str, op: str, key: Mapping[str, Any], row_hash: Any, text: str | None = None) -> str:
    """The same change keeps the same id across retries and re-runs, so consumers can dedupe.

    uuid.uuid5, computed without building UUID objects (a tenth of the cost per row).
    ``text``: the key's :func:`key_text`, when the caller has it already."""
    name = f"{sync}\x1f{op}\x1f{text if text is not None else key_text(key)}\x1f{row_hash}"
    h = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode("utf-8")).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50
    h[8] = (h[8] & 0x3F) | 0x80
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def dedup_id(event_id: str, token: str) -> str:
    """A v2 entry's DeduplicationId: the change's event_id, within a delivery token.

    The token is the plan's (state.py): a run that sends again what an interrupted or
    uncertain run may have delivered keeps that run's token, so the bus answers DEDUPLICATED;
    any other run has a new one. The event_id alone would repeat when a row goes back to
    values it had (added, removed, added again), and the bus would drop a real change."""
    return f"{event_id}.{token}" if token else event_id


def key_group(sync: str, ktext: str) -> str:
    """A v2 entry's default EventGroupId: a digest of the sync and the key (keys may be
    longer than the 128 characters a group id allows, and may be personal data)."""
    return hashlib.sha256(f"{sync}\x1f{ktext}".encode()).hexdigest()[:40]


def _names(env: jinja2.Environment, source: str) -> set[str]:
    return set(jinja2.meta.find_undeclared_variables(env.parse(source)))


class _Compiled:
    """A compiled template rendered with a flat context.

    ``Template.render`` merges the template's globals (a ChainMap) into a new dict on
    every call, which costs more than rendering a small template; here they are
    flattened once and the per-row names laid over a copy.
    """

    def __init__(self, env: jinja2.Environment, source: str, globals_: Mapping[str, Any]) -> None:
        self.template = env.from_string(source, globals=dict(globals_))
        self._base = dict(self.template.globals)
        self._env = env
        self._globals_keys = set(self._base)

    def render(self, ctx: Mapping[str, Any]) -> str:
        c = self._base.copy()
        c.update(ctx)
        t = self.template
        # What Template.new_context(c, shared=True) does, minus re-listing the globals each time.
        context = self._env.context_class(self._env, c, t.name, t.blocks)
        context.globals_keys = self._globals_keys
        return "".join(t.root_render_func(context))


# The template names a row sets (``sync`` is the same for every row).
_ROW_NAMES = TEMPLATE_NAMES - {"sync"}


def _expressions(env: jinja2.Environment, safe_source: str) -> list[tuple[bool, str]]:
    """A tag-free template made JSON-safe, as (is an expression, text) pieces in order."""
    out: list[tuple[bool, str]] = []
    expr: list[str] | None = None
    for _, token, value in env.lex(safe_source):
        if token == "variable_begin":
            expr = []
        elif token == "variable_end" and expr is not None:
            out.append((True, "".join(expr)))
            expr = None
        elif expr is not None:
            expr.append(value)
        else:
            out.append((False, value))
    return out


class _Pieces:
    """A JSON template without tags, rendered as its literal text and its expressions.

    Rendering the bench's 13-expression template through Jinja cost about 40 us a row (a
    context per render, the sandbox's checks, a generator of every piece); most expressions
    read one column, and the rest are the same for every row (``var('currency')``,
    ``target.name``). Here a column read is the sandbox's own ``getattr``/``getitem`` on the
    row and the escaping filter, a constant is rendered once, and any other expression
    (a macro call, a filter) is a compiled Jinja expression of its own, so every value goes
    through exactly the code the whole template would run.
    """

    def __init__(self, env: jinja2.Environment, safe_source: str, globals_: Mapping[str, Any]) -> None:
        self._out: list[str] = []
        self._dynamic: list[tuple[int, Callable[[Mapping[str, Any]], str]]] = []
        for is_expr, text in _expressions(env, safe_source):
            if is_expr:
                self._dynamic.append((len(self._out), self._piece(env, text, globals_)))
                text = ""
            self._out.append(text)

    @staticmethod
    def applies(safe_source: str) -> bool:
        return "{%" not in safe_source and "{#" not in safe_source

    def _piece(self, env: jinja2.Environment, text: str, globals_: Mapping[str, Any]
               ) -> Callable[[Mapping[str, Any]], str]:
        node = env.parse("{{ " + text + " }}").body[0]
        assert isinstance(node, jinja2.nodes.Output) and isinstance(node.nodes[0], jinja2.nodes.Filter)
        escape = env.filters[node.nodes[0].name]
        inner = node.nodes[0].node
        assert inner is not None
        if isinstance(inner, jinja2.nodes.Getattr) and isinstance(inner.node, jinja2.nodes.Name) \
                and inner.node.name in ("row", "old_row"):
            base, attr, getattr_ = inner.node.name, inner.attr, env.getattr
            return lambda ctx: escape(getattr_(ctx[base], attr))
        if isinstance(inner, jinja2.nodes.Getitem) and isinstance(inner.node, jinja2.nodes.Name) \
                and inner.node.name in ("row", "old_row") and isinstance(inner.arg, jinja2.nodes.Const) \
                and isinstance(inner.arg.value, str):
            base, item, getitem = inner.node.name, inner.arg.value, env.getitem
            return lambda ctx: escape(getitem(ctx[base], item))
        compiled = _Compiled(env, "{{ " + text + " }}", globals_)
        if not _constant(inner, globals_):
            return compiled.render
        done: list[str] = []

        def constant(ctx: Mapping[str, Any]) -> str:
            if not done:
                done.append(compiled.render(ctx))  # an error is raised again for the next row
            return done[0]
        return constant

    def render(self, ctx: Mapping[str, Any]) -> str:
        out = self._out.copy()
        for i, piece in self._dynamic:
            out[i] = piece(ctx)
        return "".join(out)


def _constant(node: jinja2.nodes.Node, globals_: Mapping[str, Any]) -> bool:
    """The expression reads only names that no row changes, through attributes, items and
    calls of var/env_var with literal arguments (no filters: ``random`` is one)."""
    if isinstance(node, jinja2.nodes.Const):
        return True
    if isinstance(node, jinja2.nodes.Name):
        return node.name == "sync" or (node.name not in _ROW_NAMES and node.name in globals_
                                       and not callable(globals_[node.name]))
    if isinstance(node, jinja2.nodes.Getattr):
        return _constant(node.node, globals_)
    if isinstance(node, jinja2.nodes.Getitem):
        return _constant(node.node, globals_) and _constant(node.arg, globals_)
    if isinstance(node, jinja2.nodes.Call):
        callee = node.node
        return isinstance(callee, jinja2.nodes.Name) and isinstance(globals_.get(callee.name), Memo) \
            and not node.kwargs and node.dyn_args is None and node.dyn_kwargs is None \
            and all(isinstance(a, jinja2.nodes.Const) for a in node.args)
    return False


# Names whose value is the same for every row of an op: a text using only these is rendered once per op.
_PER_OP_NAMES = frozenset({"op", "sync", "var", "env_var", "target"})


class _Text:
    """A text field (source, detail-type, a resource): constant, or a template."""

    def __init__(self, env: jinja2.Environment, source: str, globals_: Mapping[str, Any]) -> None:
        self.const = source if ("{{" not in source and "{%" not in source) else None
        self.template = None if self.const is not None else _Compiled(env, source, globals_)
        self.names = set() if self.const is not None else _names(env, source)
        self.per_op = self.const is None and self.names <= _PER_OP_NAMES
        self._by_op: dict[str, str] = {}

    def render(self, ctx: Mapping[str, Any]) -> str:
        template = self.template
        if template is None:
            return self.const or ""  # const is set exactly when there is no template
        if self.per_op:
            op = ctx["op"]
            text = self._by_op.get(op)
            if text is None:
                text = self._by_op[op] = template.render(ctx).strip()
            return text
        return template.render(ctx).strip()


class _Detail:
    """How an event's detail is made: a JSON template, a column that holds JSON, or columns."""

    def __init__(self, env: jinja2.Environment, spec: DetailSpec, project_dir: Path,
                 dbt_context: Mapping[str, Any], aliases: Mapping[str, str]) -> None:
        self.spec = spec
        self.mode = spec.mode
        self.template: _Compiled | _Pieces | None = None
        self.names: set[str] = set()
        # Without {% %} tags, and with a literal object around every expression, the JSON
        # skeleton is the same for every row and every value is escaped by its filter into a
        # JSON value or string content: once one render parses as an object, all do.
        self.validate_each = True
        self._validated = False
        text = spec.template
        if text is None and spec.template_file is not None:
            text = (project_dir / spec.template_file).read_text()
        if text is not None:
            denv = environment(text=False, aliases=aliases)
            safe = make_json_safe(text, denv)
            globals_ = globals_for(denv, text, dbt_context)
            self.template = _Pieces(denv, safe, globals_) if _Pieces.applies(safe) \
                else _Compiled(denv, safe, globals_)
            self.names = _names(denv, text)
            tokens = [(tok, val) for _, tok, val in denv.lex(safe)]
            wrapped = bool(tokens) and tokens[0][0] == "data" and tokens[0][1].startswith("{") \
                and tokens[-1][0] == "data" and tokens[-1][1].endswith("}")
            self.validate_each = "{%" in text or not wrapped
        # None: every column of the row, under its own name. A removed row has the columns it
        # was delivered with, so its detail is the one that was delivered.
        self.columns = list(spec.columns) if spec.columns else None

    def render(self, change: Change, ctx: Mapping[str, Any], event_id: str | None = None,
               checker: Checker | None = None) -> str:
        """``event_id``: added to the detail as ``event_id`` (columns and column modes).
        ``checker``: the detail must fit its event contract (checked before it is serialized
        where the value is at hand: a parse of the text cost more than the check)."""
        if self.template is not None:
            text = self._from_template(self.template, ctx)
            if checker is not None:
                _check(checker, json.loads(text))
            return text
        column = self.spec.column  # set exactly when the detail is one column (no template)
        if column is not None:
            return _from_column(column, change.row.get(column), event_id, checker)
        row = change.row
        if self.columns is None:
            value = {col: to_json_value(v) for col, v in row.items()}
        else:
            value = {out: to_json_value(row.get(col)) for col, out in self.columns}
        if event_id is not None:
            value["event_id"] = event_id
        if checker is not None:
            _check(checker, value)
        return dumps(value)

    def _from_template(self, template: _Compiled | _Pieces, ctx: Mapping[str, Any]) -> str:
        try:
            text = template.render(ctx)
        except Exception as e:  # noqa: BLE001 - any error in user code rejects this row, not the sync
            raise RowRejected("TemplateError", f"the detail template failed: "
                              f"{e.__class__.__name__}: {e}") from None
        if self._validated and not self.validate_each:
            return text
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise RowRejected("InvalidDetail", f"the rendered detail is not valid JSON ({e.msg} at "
                              f"character {e.pos}): {text[:200]!r}") from None
        if not isinstance(value, dict):
            raise RowRejected("InvalidDetail", f"the rendered detail is a JSON {type(value).__name__}, "
                              "not an object")
        self._validated = True
        return text  # compact already: make_json_safe dropped the template's whitespace


def _check(checker: Checker, value: Any) -> None:
    why = checker.error_of(value)
    if why is not None:
        raise RowRejected("SchemaViolation", f"the detail does not fit the sync's event contract: {why}. "
                          "Fix the row or the model's contract (or set validate_events: false)")


def _from_column(column: str, raw: Any, event_id: str | None = None, checker: Checker | None = None) -> str:
    """The detail from a column that holds a JSON object (as text, bytes or a JSON value)."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as e:
            raise RowRejected("InvalidDetail", f"column '{column}' holds bytes that are not "
                              f"UTF-8 text (at byte {e.start}), so not a JSON object") from None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw, parse_float=Decimal)  # every digit kept (see jsonvalues)
        except ValueError as e:
            raise RowRejected("InvalidDetail", f"column '{column}' does not hold valid JSON "
                              f"({getattr(e, 'msg', e)}): {raw[:200]!r}") from None
    if not isinstance(raw, dict):
        raise RowRejected("InvalidDetail", f"column '{column}' holds "
                          f"{'NULL' if raw is None else 'a JSON ' + type(raw).__name__}, not a JSON object")
    if event_id is not None:
        if "event_id" in raw and raw["event_id"] != event_id:
            # Overwriting it would alter the row's data; leaving it would break the promise.
            raise RowRejected("InvalidDetail", f"column '{column}' already holds an event_id field, and "
                              "event_id_in_detail would replace it")
        raw = {**raw, "event_id": event_id}
    value = to_json_value(raw)
    if checker is not None:
        _check(checker, value)
    return dumps(value)


def _aliases(sync: SyncConfig, project_dir: Path, model_columns: list[str]) -> dict[str, str]:
    """Names templates use for columns the relation spells otherwise (see _Sandbox)."""
    resolver = ColumnResolver(model_columns)
    env = environment()
    out: dict[str, str] = {}
    for _, src in _template_sources(sync, project_dir):
        try:
            used = row_columns_used(src, env)
        except jinja2.TemplateSyntaxError:
            continue
        for name in used:
            real = resolver.find(name)
            if real is not None and real != name:
                out[name] = real
    return out


def _template_sources(sync: SyncConfig, project_dir: Path, problems: list[Problem] | None = None
                      ) -> list[tuple[str, str]]:
    """(YAML path, template text) of every template of a sync, for its published triggers."""
    out: list[tuple[str, str]] = []
    base = sync.yaml_path
    if sync.source is not None:
        out.append((f"{base}.source", sync.source))
    if sync.detail_type is not None:
        out.append((f"{base}.detail_type", sync.detail_type))
    out += [(f"{base}.resources[{i}]", r) for i, r in enumerate(sync.resources)]
    if sync.event_group:
        out.append((f"{base}.event_group", sync.event_group))
    specs = [(f"{base}.detail", sync.detail)]
    for op, t in sync.triggers.items():
        if t.source:
            out.append((f"{base}.triggers.{op}.source", t.source))
        if t.detail_type:
            out.append((f"{base}.triggers.{op}.detail_type", t.detail_type))
        if t.detail:
            specs.append((f"{base}.triggers.{op}.detail", t.detail))
    for path, spec in specs:
        if spec.template_file is not None:
            f = project_dir / spec.template_file
            if not f.is_file():
                if problems is not None:
                    problems.append(Problem(f"template file '{spec.template_file}' does not exist "
                                            f"(looked in {project_dir})", sync.model_name, sync.name,
                                            path + ".template_file",
                                            "Give the path relative to the dbt project folder"))
                continue
            out.append((path + ".template_file", f.read_text()))
        elif spec.template is not None:
            out.append((path + ".template", spec.template))
    return out


def detail_templates(sync: SyncConfig, project_dir: Path) -> dict[str, str]:
    """Each published op's detail template text (inline or from its file), where it has one."""
    out = {}
    for op in sync.triggers:
        spec = sync.detail_for(op)
        if spec.template is not None:
            out[op] = spec.template
        elif spec.template_file is not None and (project_dir / spec.template_file).is_file():
            out[op] = (project_dir / spec.template_file).read_text()
    return out


def _template_file(sync: SyncConfig, path: str) -> str | None:
    """The file a template comes from, when its YAML path is a ``template_file``."""
    base = sync.yaml_path
    files = {f"{base}.detail.template_file": sync.detail.template_file}
    files.update({f"{base}.triggers.{op}.detail.template_file": t.detail.template_file
                  for op, t in sync.triggers.items() if t.detail})
    found = files.get(path)
    return str(found) if found is not None else None


def _json_skeleton_error(source: str, path: str) -> str | None:
    """For a detail template without tags: what makes it invalid JSON whatever the values
    (each value is escaped into a JSON value or string content, so the skeleton decides)."""
    if not path.endswith((".detail.template", ".detail.template_file")):
        return None
    env = environment(text=False)
    safe = make_json_safe(source, env)
    if not _Pieces.applies(safe):
        return None
    text = "".join(("null" if "__eb_value" in t else "") if is_expr else t for is_expr, t in _expressions(env, safe))
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        return f"{e.msg} at character {e.pos} of {text[max(0, e.pos - 40):e.pos + 20]!r} (each {{{{ }}}} as null)"
    if not isinstance(value, dict):
        return f"it is a JSON {type(value).__name__}, not an object"
    return None


def unset_env_vars(source: str, env: jinja2.Environment) -> list[str]:
    """Variables a template reads with ``env_var('NAME')`` (no default) that are not set:
    dbt's env_var fails on each of them, which would reject every row."""
    import os

    missing = []
    for call in env.parse(source).find_all(jinja2.nodes.Call):
        if isinstance(call.node, jinja2.nodes.Name) and call.node.name == "env_var" and len(call.args) == 1 \
                and not call.kwargs and isinstance(call.args[0], jinja2.nodes.Const) \
                and isinstance(call.args[0].value, str) and call.args[0].value not in os.environ:
            missing.append(call.args[0].value)
    return missing


class Renderer:
    """Turns the changes of one sync into PutEvents entries."""

    def __init__(self, sync: SyncConfig, *, project_dir: Path, dbt_context: Mapping[str, Any],
                 model_columns: list[str], contracts: Iterable[EventContract] = (),
                 event_id_in_detail: bool = False) -> None:
        """``contracts``: each rendered detail of their ops is checked against its schema
        (a row that does not fit is rejected). ``event_id_in_detail``: the columns and column
        modes add the change's event_id to the detail."""
        self.sync = sync
        # Only schemas that can reject something cost a parse of each detail.
        self._checkers = {op: Checker(d) for c in contracts for op, d in c.by_op.items() if informative(d)}
        aliases = _aliases(sync, project_dir, model_columns)
        env = environment(aliases=aliases)
        self.env = env
        self._sync_ctx = {"name": sync.name, "model": sync.model_name, "primary_key": list(sync.primary_key),
                          "event_bus": sync.event_bus}

        def text(src: str) -> _Text:
            plain = "{{" not in src and "{%" not in src  # a constant needs no dbt names (parsing costs 1 ms)
            return _Text(env, src, {} if plain else globals_for(env, src, dbt_context))

        ops = [op for op in ("added", "changed", "removed") if op in sync.triggers]
        self._source = {op: text(sync.source_for(op)) for op in ops}
        self._detail_type = {op: text(sync.detail_type_for(op)) for op in ops}
        details: dict[DetailSpec, _Detail] = {}
        self._detail = {}
        for op in ops:
            spec = sync.detail_for(op)
            if spec not in details:
                details[spec] = _Detail(env, spec, project_dir, dbt_context, aliases)
            self._detail[op] = details[spec]
        self._resources = [text(r) for r in sync.resources]
        # A Custom Event Bus (v2): ordered per key or per a group template, deduplicated by event id.
        self.v2 = sync.bus_v2
        self._group = text(sync.event_group) if self.v2 and sync.event_group else None
        self.dedup_token = ""  # set by the run from its plan (see dedup_id)
        used = set().union(*(d.names for d in details.values()))
        for t in [*self._source.values(), *self._detail_type.values(), *self._resources,
                  *([self._group] if self._group else [])]:
            used |= t.names
        self._id_in_detail = {op: event_id_in_detail and d.mode != "template" for op, d in self._detail.items()}
        # Event ids cost a hash per row; they are made when a template uses them (or for a dry run's
        # output, a v2 bus's deduplication ids, or the detail's event_id field).
        self.event_ids = "event_id" in used or bool(self.v2 and sync.deduplication) or any(self._id_in_detail.values())
        # The previous values of changed rows are read from the plan only if a template uses them.
        self.uses_old_rows = bool(used & {"old_row", "changed_columns"})
        self.keep_changes = False  # each entry keeps its change (a keyed preview shows it whole)

    @staticmethod
    def check(sync: SyncConfig, *, project_dir: Path, dbt_context: Mapping[str, Any],
              model_columns: list[str] | None) -> list[Problem]:
        """Compile every template of a sync and check the columns they read; returns problems."""
        env = environment()
        problems: list[Problem] = []
        resolver = ColumnResolver(model_columns) if model_columns is not None else None
        for path, src in _template_sources(sync, project_dir, problems):
            in_file = _template_file(sync, path)
            try:
                # Compiled, not only parsed: an unknown filter or test is found here, not at
                # the first row (it stopped the sync as an unexpected error).
                env.compile(src)
            except jinja2.TemplateSyntaxError as e:
                kind = "template syntax error" if type(e) is jinja2.TemplateSyntaxError else "template error"
                where = f" in {in_file}" if in_file else ""
                fix = f"Fix the Jinja in {in_file}" if in_file else \
                    "Fix the Jinja syntax; inline templates in YAML must be wrapped in {% raw %}...{% endraw %}"
                problems.append(Problem(f"{kind}{where}: {e.message} (line {e.lineno})", sync.model_name,
                                        sync.name, path, fix))
                continue
            undefined = sorted(_names(env, src) - TEMPLATE_NAMES - set(env.globals) - set(dbt_context))
            if undefined:
                problems.append(Problem(
                    f"the template{f' in {in_file}' if in_file else ''} uses {', '.join(undefined)}, which "
                    "is neither a template name (row, old_row, op, changed_columns, key, event_id, sync) nor "
                    "in dbt's context (macros, var, env_var, target...)", sync.model_name, sync.name, path,
                    "Fix the name, or define the macro in the project's macros folder"))
                continue
            skeleton = _json_skeleton_error(src, path)
            if skeleton:
                problems.append(Problem(
                    f"the detail template{f' in {in_file}' if in_file else ''} is not valid JSON for any row: "
                    f"{skeleton}", sync.model_name, sync.name, path,
                    "Fix the JSON around the {{ }} expressions (a trailing comma, a missing quote or brace)"))
                continue
            for name in unset_env_vars(src, env):
                problems.append(Problem(f"the template reads env_var('{name}'), which is not set and has no default",
                                        sync.model_name, sync.name, path,
                                        f"Set {name} in the environment of the run, or give a default: "
                                        f"env_var('{name}', '...')"))
            if resolver is not None:
                unresolved = [c for c in sorted(row_columns_used(src, env)) if resolver.find(c) is None]
                missing = [c for c in unresolved if not resolver.ambiguous(c)]
                if missing:
                    problems.append(Problem(
                        f"the template reads column(s) {', '.join(missing)} that the model does not have "
                        f"(columns: {', '.join(model_columns or [])})", sync.model_name, sync.name, path,
                        "Fix the column name or add the column to the model"))
                for c in unresolved:
                    if resolver.ambiguous(c):
                        problems.append(Problem(f"the template reads {resolver.why_not(c)}", sync.model_name,
                                                sync.name, path,
                                                "Write the column's name exactly as the relation has it"))
        return problems

    def render(self, change: Change) -> Entry:
        entry = self._render(change)
        if self.keep_changes:
            entry.change = change
        return entry

    def _render(self, change: Change) -> Entry:
        sync = self.sync
        if self.event_ids:
            ktext = key_text(change.key)
            eid = event_id(sync.name, change.op, change.key, change.row_hash, ktext)
        else:
            ktext = eid = ""
        ctx = {"row": change.row, "old_row": change.old_row, "op": change.op,
               "changed_columns": change.changed_columns, "sync": self._sync_ctx, "event_id": eid,
               "key": change.key}
        op = change.op
        try:
            source = self._source[op].render(ctx)
            detail_type = self._detail_type[op].render(ctx)
            resources = [r.render(ctx) for r in self._resources]
        except Exception as e:  # noqa: BLE001 - any error in user code rejects this row, not the sync
            raise RowRejected("TemplateError", f"a template failed: {e.__class__.__name__}: {e}") from None
        detail = self._detail[op].render(change, ctx, eid if self._id_in_detail[op] else None,
                                         self._checkers.get(op))
        if not source:
            raise RowRejected("InvalidArgument", "source rendered empty")
        if source.lower().startswith("aws."):
            raise RowRejected("InvalidArgument", f"source '{source[:80]}' starts with 'aws.', which is reserved")
        if not detail_type:
            raise RowRejected("InvalidArgument", "detail-type rendered empty")
        if len(detail_type) > MAX_DETAIL_TYPE:
            raise RowRejected("InvalidArgument", f"detail-type is {len(detail_type)} characters, "
                              f"more than EventBridge's {MAX_DETAIL_TYPE}")
        entry: dict[str, Any] = {"Source": source, "DetailType": detail_type, "Detail": detail}
        if not self.v2:
            entry["EventBusName"] = sync.event_bus
        resources = [r for r in resources if r]
        if resources:
            too_long = [r for r in resources if len(r) > MAX_RESOURCE]
            if too_long:
                raise RowRejected("InvalidArgument", f"a resource is {len(too_long[0])} characters, "
                                  f"more than {MAX_RESOURCE}")
            entry["Resources"] = resources
        if sync.time:
            t = _as_time(change.row.get(sync.time))
            if t is not None:
                entry["Time"] = t
        if self.v2:
            return self._v2_entry(change, ctx, entry, eid, ktext)
        return Entry(change.seq, op, change.key, eid, entry, entry_size(entry), entry_json(entry), ktext)

    def _v2_entry(self, change: Change, ctx: Mapping[str, Any], entry: dict[str, Any], eid: str,
                  ktext: str) -> Entry:
        """An entry for a Custom Event Bus: its SystemMetadata, its size with it (counted as
        part of the entry, which is never less than the service counts)."""
        sync = self.sync
        ktext = ktext or key_text(change.key)
        meta: dict[str, str] = {}
        if sync.deduplication:
            meta["DeduplicationId"] = dedup_id(eid, self.dedup_token)
        if sync.event_group is not None:
            if self._group is None:
                group = key_group(sync.name, ktext)
            else:
                try:
                    group = self._group.render(ctx)
                except Exception as e:  # noqa: BLE001 - any error in user code rejects this row, not the sync
                    raise RowRejected("TemplateError", f"event_group failed: {e.__class__.__name__}: {e}") from None
                if not group:
                    raise RowRejected("InvalidArgument", "event_group rendered empty")
                if len(group) > MAX_GROUP_ID:
                    raise RowRejected("InvalidArgument", f"event_group is {len(group)} characters, more than "
                                      f"EventBridge's {MAX_GROUP_ID}")
            meta["EventGroupId"] = group
        size = entry_size(entry) + sum(len(v.encode("utf-8")) for v in meta.values())
        if meta:
            entry["SystemMetadata"] = meta
        return Entry(change.seq, change.op, change.key, eid, entry, size, "", ktext, bus_v2=sync.event_bus)

    def render_many(self, changes: Iterable[Change], on_reject: Callable[[Change, Rejection], None]
                    ) -> list[Entry]:
        """Every change that renders; each one that does not goes to ``on_reject`` with the reason."""
        out = []
        for ch in changes:
            try:
                out.append(self.render(ch))
            except RowRejected as e:
                on_reject(ch, Rejection(ch.key, ch.op, e.code, e.reason))
        return out


def _as_time(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if isinstance(value, str):
        try:
            return _as_time(dt.datetime.fromisoformat(value.replace(" ", "T", 1)))
        except ValueError:
            raise RowRejected("InvalidArgument", f"time column value {value!r} is not a timestamp") from None
    raise RowRejected("InvalidArgument", f"time column value {value!r} is not a timestamp")
