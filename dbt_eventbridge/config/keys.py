"""A row's key as a user types it (`--key 42`, `--key a=1,b=x`, `--key '{"a": 1}'`)."""

from __future__ import annotations

import json
from typing import Any

from dbt_eventbridge.errors import ConfigError, Problem
from dbt_eventbridge.model import key_text as key_json


def key_candidates(names: list[str], key: str) -> list[str]:
    """What `--key` may mean, as stored keys (JSON in key-column order): a JSON object,
    `a=1,b=x`, or the value of a one-column key (42 matches both the number and the text)."""
    text = key.strip()
    by_lower = {n.lower(): n for n in names}

    def ordered(value: dict[str, Any]) -> dict[str, Any]:
        named = {by_lower.get(str(k).lower(), str(k)): v for k, v in value.items()}
        return {**{n: named[n] for n in names if n in named}, **named}

    if text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError as e:
            raise ConfigError([Problem(f"--key {key!r} is not valid JSON: {e}",
                                       fix='Write it as {"customer_id": 42}, customer_id=42 or 42')]) from None
        return [key_json(ordered(value))]
    if "=" in text:
        parts = [p.split("=", 1) for p in text.split(",") if p.strip()]
        options: list[dict[str, Any]] = [{}]
        for k, v in parts:
            options = [{**o, k.strip(): val} for o in options for val in _values(v.strip())]
        return [key_json(ordered(o)) for o in options]
    if len(names) != 1:
        raise ConfigError([Problem(f"this sync's key has {len(names)} columns ({', '.join(names) or 'unknown'}), "
                                   f"so --key {key!r} is ambiguous",
                                   fix="Name every column: --key " + ",".join(f"{n}=..." for n in names))])
    return [key_json({names[0]: v}) for v in _values(text)]


def _values(text: str) -> list[Any]:
    out: list[Any] = [text]
    try:
        out.insert(0, int(text))
    except ValueError:
        try:
            out.insert(0, float(text))
        except ValueError:
            pass
    return out
