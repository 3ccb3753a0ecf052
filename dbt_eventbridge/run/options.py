"""What a caller asks of a run: the library API's one input (the CLI fills it from its flags)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class SyncOptions:
    project_dir: str | Path = "."
    profiles_dir: str | Path | None = None
    target: str | None = None
    profile: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    select: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    dry_run: bool = False
    output: str | Path | None = None   # dry run: every entry as JSON lines
    full_refresh: bool = False
    allow_mass_removal: bool = False
    settings: dict[str, Any] = field(default_factory=dict)  # overrides of vars.eventbridge
    samples: int = 3
    syncs: tuple[str, ...] = ()   # only these sync names (reset, rebaseline, --sync)
    rebaseline: bool = False      # record the model as delivered without sending anything
    keys: tuple[str, ...] = ()    # dry run of one sync: only the rows of these keys (--key), a keyed lookup
