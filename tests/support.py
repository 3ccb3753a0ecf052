"""Helpers shared by the unit tests."""

from __future__ import annotations

from typing import Any

import jinja2


def render_dbt_strings(value: Any) -> Any:
    """dbt renders Jinja in schema.yml config values; `{% raw %}` keeps the templates for us."""
    if isinstance(value, str):
        return jinja2.Environment(keep_trailing_newline=True).from_string(value).render()
    if isinstance(value, list):
        return [render_dbt_strings(v) for v in value]
    if isinstance(value, dict):
        return {k: render_dbt_strings(v) for k, v in value.items()}
    return value
