"""Where alert states are kept between runs: the :class:`AlertStore` protocol and two stores.

The warehouse keeps them when it can (``dbt_eventbridge.warehouse.history.WarehouseAlertStore``);
:class:`FileAlertStore` when the warehouse is out of reach, :class:`MemoryStore` in tests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

FIRING, OK = "firing", "ok"

StateKey = tuple[str, str, str]  # (alert name, sync, trigger)


class AlertStore(Protocol):
    """The state of each (alert name, sync, trigger): "firing" or "ok"; missing means ok."""

    def load(self) -> dict[StateKey, str]: ...

    def save(self, changes: dict[StateKey, str]) -> None: ...


class MemoryStore:
    """An AlertStore in memory, for tests and for embedding in a long-lived process."""

    def __init__(self, state: Mapping[StateKey, str] | None = None) -> None:
        self.state: dict[StateKey, str] = dict(state or {})

    def load(self) -> dict[StateKey, str]:
        return dict(self.state)

    def save(self, changes: dict[StateKey, str]) -> None:
        self.state.update(changes)


class FileAlertStore:
    """Alert status when the warehouse is out of reach (the run itself failed)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[StateKey, str]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        # save() wrote each key as its three parts joined by \x1f.
        return {tuple(k.split("\x1f")): v for k, v in data.items()}

    def save(self, changes: dict[StateKey, str]) -> None:
        state = self.load()
        state.update(changes)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"\x1f".join(k): v for k, v in state.items()}))
