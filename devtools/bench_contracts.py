"""make bench: what checking each detail against its event contract costs (validate_events).

In one process, the same 20-column changes rendered in the columns mode without and with a
contract that declares every column's type (the check parses each detail and checks each
field); CPU seconds per row, so the figure holds on a noisy machine."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

TYPES = ["integer", "varchar", "decimal(10,2)", "timestamp", "boolean", "bigint", "date", "double"] * 3


def run(rows: int, step: Any) -> dict[str, Any]:
    from dbt_eventbridge.config.definitions import DetailSpec, SyncConfig, TriggerSpec
    from dbt_eventbridge.delivery.contracts import Column, contracts
    from dbt_eventbridge.delivery.render import Renderer
    from dbt_eventbridge.delivery.templates import environment
    from dbt_eventbridge.model import Change

    step(f"contracts: rendering {rows:,} 20-column details without and with a declared contract")
    cols = [Column(f"c{i}", TYPES[i], nullable=i != 0, declared=True) for i in range(20)]
    values = [7, "text ✓", Decimal("19.99"), dt.datetime(2024, 1, 2, 3, 4, 5), True, 2 ** 40, dt.date(2024, 2, 29),
              1.5] * 3
    sync = SyncConfig(name="bench", model_unique_id="model.b.m", model_name="m", primary_key=("c0",), source="s",
                      detail_type="T", triggers={"added": TriggerSpec("added")}, detail=DetailSpec())
    changes = [Change(i, "added", {"c0": i}, {f"c{j}": (i if j == 0 else values[j]) for j in range(20)}, None,
                      "h", []) for i in range(rows)]
    found = contracts(sync, cols, {}, environment(text=False), checked=True)

    def cpu_per_row(with_contract: bool) -> float:
        r = Renderer(sync, project_dir=Path("."), dbt_context={}, model_columns=[c.name for c in cols],
                     contracts=found if with_contract else ())
        start = time.process_time()
        for ch in changes:
            r.render(ch)
        return (time.process_time() - start) / rows * 1e6

    plain, checked = min(cpu_per_row(False) for _ in range(3)), min(cpu_per_row(True) for _ in range(3))
    return {"rows": rows, "columns": 20, "render_us_per_row": round(plain, 1),
            "render_checked_us_per_row": round(checked, 1), "check_us_per_row": round(checked - plain, 1),
            "ratio": round(checked / plain, 2)}


if __name__ == "__main__":
    print(run(20_000, print))
