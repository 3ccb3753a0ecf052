"""Templates made safe: every ``{{ expression }}`` in a JSON template rewritten so a row's
values are data, never template code, and can never break the JSON around them; the
sandboxed Jinja environment they render in; which row columns a template reads.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import jinja2
import jinja2.meta
import jinja2.nodes
from jinja2.sandbox import SandboxedEnvironment

from dbt_eventbridge.config.definitions import TEMPLATE_NAMES
from dbt_eventbridge.jsonvalues import MAX_SAFE_INT, dumps, to_json_value, to_text


class JsonFragment(str):
    """Text that is already JSON (from ``tojson``): placed as is outside string literals."""


def _tojson(value: Any, indent: int | None = None) -> JsonFragment:
    if isinstance(value, JsonFragment):
        return value
    return JsonFragment(json.dumps(to_json_value(value), ensure_ascii=False, indent=indent))


def _fromjson(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


# The C escaper json.dumps(ensure_ascii=False) uses for a str, called without the encoder's
# checks around it: 0.25 of the filters' CPU per row in the bench's template.
_escape: Any = getattr(json.encoder, "c_encode_basestring", None) or json.encoder.encode_basestring


def _in_json_string(value: Any) -> str:
    """Escape a value as the inside of a JSON string literal."""
    if type(value) is str:
        return _escape(value)[1:-1]  # type: ignore[no-any-return]
    if value is None or isinstance(value, jinja2.Undefined):
        return ""
    return _escape(to_text(value))[1:-1]  # type: ignore[no-any-return]


def _as_json_value(value: Any) -> str:
    cls = type(value)
    if cls is str:
        return _escape(value)  # type: ignore[no-any-return]
    if cls is int:
        return str(value) if -MAX_SAFE_INT <= value <= MAX_SAFE_INT else f'"{value}"'
    if value is None:
        return "null"
    if cls is bool:
        return "true" if value else "false"
    if cls is float and math.isfinite(value):
        return repr(value)
    if isinstance(value, JsonFragment):
        return str(value)
    if isinstance(value, jinja2.Undefined):
        return "null"
    return dumps(to_json_value(value))


def make_json_safe(source: str, env: jinja2.Environment) -> str:
    """Wrap each ``{{ expr }}`` of a JSON template with the escaper its position needs.

    Position is found by following JSON string state through the template's literal
    text; expressions and tags do not change it, since values are escaped.
    """
    out: list[str] = []
    in_string = False
    escaped = False
    expr: list[str] | None = None
    begin = ""
    for _, token, value in env.lex(source):
        if token.endswith("_begin") and out and out[-1].endswith("{"):
            # The lexer already removed the whitespace a `{%-` strips, which can leave a
            # JSON `{` touching the tag (`{{%-`); a space keeps them apart and is
            # stripped again by the tag's `-`.
            out.append(" ")
        if token == "variable_begin":
            expr, begin = [], value
            continue
        if token == "variable_end" and expr is not None:
            # A filter, not a call: the sandbox checks every call, which costs more than the escaping.
            func = "__eb_in_string" if in_string else "__eb_value"
            out.append(f"{begin} ({''.join(expr)}) | {func} {value}")
            expr = None
            continue
        if expr is not None:
            expr.append(value)
            continue
        if token == "data":
            # Whitespace between JSON tokens is dropped here, once, so that rendered details
            # are compact without re-serializing every one of them.
            kept = []
            for ch in value:
                if escaped:
                    escaped = False
                elif ch == "\\" and in_string:
                    escaped = True
                elif ch == '"':
                    in_string = not in_string
                elif not in_string and ch in " \t\r\n":
                    continue
                kept.append(ch)
            value = "".join(kept)
        out.append(value)
    return "".join(out)


class _Sandbox(SandboxedEnvironment):
    """Rows are dicts: ``row.x`` reads the column first (the sandbox's default tries a
    Python attribute, fails with an exception, then the item: 3x slower per value).

    ``aliases``: names templates use for a column that the relation spells differently
    (``row.customer_id`` for Snowflake's CUSTOMER_ID), resolved by the same rule as every
    other name in the config (plan.ColumnResolver)."""

    def __init__(self, *args: Any, aliases: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.aliases = dict(aliases or {})

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                real = self.aliases.get(attribute)
                if real is not None and real in obj:
                    return obj[real]
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if type(obj) is dict and type(argument) is str and argument not in obj:
            real = self.aliases.get(argument)
            if real is not None and real in obj:
                return obj[real]
        return super().getitem(obj, argument)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        # Our own wrappers of dbt's var/env_var and project macros are safe by construction.
        if type(__obj) is Memo or type(__obj) is Macro:
            return __obj(*args, **kwargs)
        return super().call(__context, __obj, *args, **kwargs)


def _finalize(v: Any) -> str:
    return v if isinstance(v, str) else to_text(v)


def environment(text: bool = True, aliases: Mapping[str, str] | None = None) -> jinja2.Environment:
    # Sandboxed: templates come from the project, but rendering must never reach into
    # Python objects beyond the values and dbt helpers we hand it.
    env = _Sandbox(
        extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"],
        undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True,
        # Text fields (source, detail-type, resources): NULL is empty, not "None".
        # Detail templates need none: every value is escaped into a string by its filter.
        finalize=_finalize if text else None, aliases=aliases)
    env.filters["tojson"] = _tojson
    env.filters["fromjson"] = _fromjson
    env.filters["__eb_in_string"] = _in_json_string
    env.filters["__eb_value"] = _as_json_value
    return env


def row_columns_used(source: str, env: jinja2.Environment | None = None) -> set[str]:
    """Columns a template reads as ``row.x`` / ``row['x']`` / ``old_row.x``, for validation."""
    env = env or environment()
    cols: set[str] = set()
    tree = env.parse(source)
    methods: set[int] = set()
    for call in tree.find_all(jinja2.nodes.Call):
        # row.get('x') / row.items(): dict methods, not columns; get's argument is one
        if isinstance(call.node, jinja2.nodes.Getattr) and _is_row(call.node.node):
            methods.add(id(call.node))
            if call.node.attr == "get" and call.args and isinstance(call.args[0], jinja2.nodes.Const) \
                    and isinstance(call.args[0].value, str):
                cols.add(call.args[0].value)
    for attr in tree.find_all(jinja2.nodes.Getattr):
        if id(attr) not in methods and _is_row(attr.node):
            cols.add(attr.attr)
    for item in tree.find_all(jinja2.nodes.Getitem):
        if _is_row(item.node) and isinstance(item.arg, jinja2.nodes.Const) and isinstance(item.arg.value, str):
            cols.add(item.arg.value)
    return cols


def _is_row(node: jinja2.nodes.Node) -> bool:
    return isinstance(node, jinja2.nodes.Name) and node.name in ("row", "old_row")


class RowRejected(Exception):
    """This row cannot become an entry; the sync goes on and the row is retried next run."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def globals_for(env: jinja2.Environment, source: str, dbt_context: Mapping[str, Any]) -> dict[str, Any]:
    names = jinja2.meta.find_undeclared_variables(env.parse(source)) - TEMPLATE_NAMES
    return {n: _dbt_value(n, dbt_context[n]) for n in names if n in dbt_context}


class Memo:
    """``var`` / ``env_var``: constant for a run, and dbt's lookup costs ~30 us per call."""

    def __init__(self, fn: Any) -> None:
        self._fn = fn
        self._cache: dict[Any, Any] = {}

    def __call__(self, *args: Any) -> Any:
        try:
            return self._cache[args]
        except KeyError:
            value = self._cache[args] = self._fn(*args)
            return value
        except TypeError:  # an unhashable default
            return self._fn(*args)

    def __getattr__(self, name: str) -> Any:  # e.g. var.has_var
        return getattr(self._fn, name)


class Macro:
    """A project macro, called without rebuilding its Jinja module on every call.

    dbt's MacroGenerator makes a new module (a copy of the whole dbt context) per call,
    ~70 us; the module is built once here and the macro called as dbt calls it.
    """

    def __init__(self, generator: Any) -> None:
        self._generator = generator
        self._macro: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._macro is None:
            from dbt_common.exceptions.macros import MacroReturn

            self._macro = self._generator.get_macro()
            self._return = MacroReturn
        try:
            return self._macro(*args, **kwargs)
        except self._return as e:
            return e.value


def _dbt_value(name: str, value: Any) -> Any:
    if name in ("var", "env_var") and callable(value):
        return Memo(value)
    if hasattr(value, "get_macro") and hasattr(value, "call_macro"):
        return Macro(value)
    return value
