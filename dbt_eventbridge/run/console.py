"""What a run shows while it works, as typed calls: the run decides what happened, a
console decides how it looks (the CLI's text and JSON lines, an orchestrator's logger).

Modelled on SQLMesh's ``Console``: one method per thing shown, so a new front end
implements a protocol instead of parsing message levels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from dbt_eventbridge.model import Entry
    from dbt_eventbridge.run.results import SyncResult


@dataclass(frozen=True)
class Progress:
    """A sync's publishing so far."""

    sync: str
    planned: int
    sent: int
    rejected: int
    events_per_second: float
    done: bool = False

    def line(self) -> str:
        share = f" ({(self.sent + self.rejected) / self.planned:.0%})" if self.planned else ""
        return (f"{self.sync}: planned {self.planned:,} · sent {self.sent:,}{share} · rejected {self.rejected:,} · "
                f"{self.events_per_second:,.0f} events/s")


class Console(Protocol):
    def info(self, message: str) -> None:
        """Something worth knowing that needs no action."""

    def warning(self, message: str) -> None:
        """Something a person should look at; the run goes on."""

    def error(self, message: str) -> None:
        """The run failed as a whole."""

    def progress(self, progress: Progress) -> None:
        """Publishing progress of one sync (often: a console shows what it wants of it)."""

    def sync_finished(self, result: SyncResult, samples: list[Entry]) -> None:
        """One sync is done: its summary, the sample entries of a dry run, its first rejections."""


class NullConsole:
    """Shows nothing: the default of the library API."""

    def info(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        pass

    def error(self, message: str) -> None:
        pass

    def progress(self, progress: Progress) -> None:
        pass

    def sync_finished(self, result: SyncResult, samples: list[Entry]) -> None:
        pass
