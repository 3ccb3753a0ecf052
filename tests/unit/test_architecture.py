"""The layout is the architecture: imports run one way, from the CLI down to the shared
vocabulary, and engine differences live in one place. A change that breaks this fails here."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "dbt_eventbridge"

# What each part of the package may import (besides itself). The stages warehouse,
# delivery and alerts sit side by side and do not import each other: run wires them.
ALLOWED: dict[str, set[str]] = {
    "(base)": {"(base)"},
    "config": {"(base)"},
    "warehouse": {"(base)", "config"},
    "delivery": {"(base)", "config"},
    "alerts": {"(base)", "config"},
    "run": {"(base)", "config", "warehouse", "delivery", "alerts"},
    "ops": {"(base)", "config", "warehouse", "run"},
    "cli": {"(base)", "config", "warehouse", "delivery", "run", "ops"},
}
BASE = {"errors", "model", "jsonvalues", "faults", "__init__", "__main__", "__version__"}


def _part(module: str) -> str:
    """dbt_eventbridge.run.tally -> run; dbt_eventbridge.errors -> (base)."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in BASE:
        return "(base)"
    return parts[1]


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "dbt_eventbridge":
            found += [node.module] if node.module != "dbt_eventbridge" else \
                [f"dbt_eventbridge.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "dbt_eventbridge"]
    return found


def _modules() -> list[tuple[str, Path]]:
    return [(".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts), p) for p in sorted(PACKAGE.rglob("*.py"))]


def test_imports_run_one_way() -> None:
    against = []
    for module, path in _modules():
        if module == "dbt_eventbridge.__main__":
            continue  # `python -m dbt_eventbridge` is the CLI
        here = _part(module)
        for target in _imports(path):
            there = _part(target)
            if there != here and there not in ALLOWED[here]:
                against.append(f"{module} imports {target}")
    assert against == []


def test_the_rule_sees_an_upward_import(tmp_path: Path) -> None:
    """The check above is not vacuous: an import of the run from the warehouse is caught."""
    bad = tmp_path / "m.py"
    bad.write_text("from dbt_eventbridge.run.tally import Tally\n")
    assert _imports(bad) == ["dbt_eventbridge.run.tally"]
    assert _part("dbt_eventbridge.run.tally") not in ALLOWED["warehouse"]


def test_the_adapter_type_is_read_in_one_place() -> None:
    """Engine differences live in warehouse/engines/ or in dispatched macros, not in branches."""
    readers = sorted(str(p.relative_to(PACKAGE)) for _, p in _modules() if "adapter_type" in p.read_text())
    # project.py defines the property and hands it to engine_for(), the one registry of engines
    assert readers == ["warehouse/engines/__init__.py", "warehouse/project.py"]
    project = (PACKAGE / "warehouse" / "project.py").read_text()
    # the property, engine_for(self.adapter_type), and whether a saved parse was made for this
    # adapter (saved_fits_target: a comparison, not a branch per engine)
    assert project.count("adapter_type") == 4


def test_importing_the_package_loads_nothing_heavy() -> None:
    """dbt imports every ``dbt_*`` module on each command: ours must cost nothing."""
    code = ("import sys, dbt_eventbridge; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dbt', 'boto3', 'botocore', 'jinja2', "
            "'dbt_eventbridge')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['dbt_eventbridge']"


_STATEMENT = re.compile(r"^\s*(select\s+\S|insert\s+into|delete\s+from|update\s+\S+\s+set|create\s+(temporary\s+)?table|"
                        r"drop\s+table|alter\s+table|merge\s+into)\b", re.IGNORECASE)


def _sql_strings(path: Path) -> list[str]:
    """String constants and f-strings of a module that begin like a SQL statement."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.JoinedStr):
            head = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
            text = node.values[0].value if node.values and isinstance(node.values[0], ast.Constant) else ""
            if _STATEMENT.match(str(text)) or _STATEMENT.match(head[:40]):
                found.append(f"{path.name}:{node.lineno}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _STATEMENT.match(node.value) \
                and node.value.strip().lower() != "select 1":
            found.append(f"{path.name}:{node.lineno}")
    return sorted(set(found))


def test_sql_text_lives_in_the_engines_and_the_macros() -> None:
    """Every statement comes from warehouse/engines/ (statements.py, or an engine's own module)
    or from a dispatched macro; a stage that writes SQL itself fails here."""
    engines = PACKAGE / "warehouse" / "engines"
    outside = [s for _, p in _modules() if engines not in p.parents for s in _sql_strings(p)]
    assert outside == []


def test_the_sql_rule_sees_a_statement(tmp_path: Path) -> None:
    bad = tmp_path / "m.py"
    bad.write_text('def f(t):\n    return f"delete from {t} where x = 1"\n')
    assert _sql_strings(bad) == ["m.py:2"]
