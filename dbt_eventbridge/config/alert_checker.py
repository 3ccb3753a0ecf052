"""The checker that collects one alert's problems, each located by its YAML path.

Also the value checks shared by every alert key: numbers in a range, non-empty texts, and
quoting what was written without ever echoing a URL (webhook URLs are secrets).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import TypeGuard

from dbt_eventbridge.errors import Problem

# One alert as written in the YAML (or the JSON of DBT_EVENTBRIDGE_ALERTS), not checked yet.
RawAlert = Mapping[str, object]


def closest(value: str, valid: Sequence[str], what: str) -> str:
    close = difflib.get_close_matches(value, list(valid), n=1, cutoff=0.6)
    if close:
        return f"Did you mean '{close[0]}'?"
    return f"Valid {what} are: " + ", ".join(valid) + "."


class Checker:
    """Collects the problems of one alert, located by their YAML path."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.name: str | None = None
        self.problems: list[Problem] = []

    def add(self, key: str | None, message: str, fix: str | None = None) -> None:
        who = f"alert '{self.name}': " if self.name else ""
        where = f"{self.path}.{key}" if key else self.path
        self.problems.append(Problem(message=who + message, path=where, fix=fix))

    def number(self, raw: RawAlert, key: str, default: float, *, whole: bool, low: float,
               high: float | None, low_open: bool, fix: str) -> float:
        value = raw.get(key, default)
        if _in_range(value, whole, low, high, low_open):
            return int(value) if whole else float(value)
        self.add(key, f"'{key}' must be {_number_range(whole, low, high, low_open)}, got {value!r}", fix)
        return default

    def optional_string(self, raw: RawAlert, key: str, fix: str) -> str | None:
        value = raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.add(key, f"'{key}' must be a non-empty text, got {value!r}", fix)
            return None
        return value.strip()


def _in_range(value: object, whole: bool, low: float, high: float | None, low_open: bool) -> TypeGuard[float]:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    if whole and isinstance(value, float) and not value.is_integer():
        return False
    return (value > low if low_open else value >= low) and (high is None or value <= high)


def _number_range(whole: bool, low: float, high: float | None, low_open: bool) -> str:
    kind = "a whole number" if whole else "a number"
    if high is not None:
        return f"{kind} from {low:g} to {high:g}"
    return f"{kind} {'above' if low_open else 'of at least'} {low:g}"


def looks_like_url(value: object) -> bool:
    return isinstance(value, str) and ("://" in value or value.strip().lower().startswith(("http:", "https:",
                                                                                         "hooks.slack.com")))


def shown(value: object) -> str:
    # Error messages quote what was written, except URLs: they may be secret webhooks.
    return "a URL (not shown)" if looks_like_url(value) else repr(value)


def secret_url_fix(alert_type: str | None) -> str:
    example = "SLACK_WEBHOOK_URL" if alert_type == "slack" else "ALERT_WEBHOOK_URL"
    return (f"Put the URL in an environment variable (export {example}='https://...') and write "
            f"`url_env: {example}`. dbt_project.yml is committed, so treat a URL written there as leaked and "
            "have it replaced")
