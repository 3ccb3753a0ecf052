"""One error hierarchy for the whole tool.

Every error a user can cause or meet derives from :class:`EventBridgeSyncError`, so the
CLI can turn any of them into a one-paragraph message and an exit code instead of a
traceback. ``retryable`` tells callers (and orchestrators) whether running again
unchanged can succeed: throttling and outages can, a typo in a config cannot.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class EventBridgeSyncError(Exception):
    """Base of every error dbt-eventbridge raises on purpose."""

    retryable: bool = False
    exit_code: int = 2

    def __init__(self, message: str, *, model: str | None = None, sync: str | None = None,
                 fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.model = model
        self.sync = sync
        self.fix = fix

    def __str__(self) -> str:
        where = []
        if self.model:
            where.append(f"model '{self.model}'")
        if self.sync:
            where.append(f"sync '{self.sync}'")
        text = (", ".join(where) + ": " if where else "") + self.message.rstrip(".") + "."
        if self.fix:
            text += " " + _sentence(self.fix)
        return text


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "?", "!")) else text + "."


class TerminalError(EventBridgeSyncError):
    """Running again unchanged will fail the same way; a person must fix something."""

    retryable = False


class RetryableError(EventBridgeSyncError):
    """A passing condition (throttling, an outage, a lost connection); running again can succeed."""

    retryable = True


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration, located for the person who must fix it."""

    message: str
    model: str | None = None
    sync: str | None = None
    path: str | None = None  # e.g. "models/schema.yml: customers.config.meta.eventbridge.detail"
    fix: str | None = None

    def __str__(self) -> str:
        where = []
        if self.model:
            where.append(f"model '{self.model}'")
        if self.sync:
            where.append(f"sync '{self.sync}'")
        head = ", ".join(where)
        text = (head + ": " if head else "") + self.message.rstrip(".") + "."
        if self.path:
            text += f" (at {self.path})"
        if self.fix:
            text += " " + _sentence(self.fix)
        return text


class ConfigError(TerminalError):
    """The configuration is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = problems[0]
        super().__init__(first.message, model=first.model, sync=first.sync, fix=first.fix)

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return str(self.problems[0])
        return f"{len(self.problems)} configuration problems:\n" + "\n".join(
            f"  - {p}" for p in self.problems)


class ProjectError(TerminalError):
    """The dbt project, its artifacts or the dbt package are missing or unusable."""


class WarehouseError(TerminalError):
    """A statement in the warehouse failed (connection, permissions, a missing relation)."""


class CredentialsError(TerminalError):
    """AWS refused who we are or what we may do; nothing was published."""


class EndpointError(RetryableError):
    """EventBridge could not be reached at all; nothing was published."""


@dataclass
class Rejection:
    """A row that was not delivered on this run, with the reason; it is retried next run."""

    key: dict[str, object]
    op: str
    reason: str
    code: str = "Rejected"
    extra: dict[str, object] = field(default_factory=dict)
