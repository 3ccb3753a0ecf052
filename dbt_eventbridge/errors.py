"""One error hierarchy for the whole tool.

Every error a user can cause or meet derives from :class:`EventBridgeSyncError`, so the
CLI can turn any of them into a one-paragraph message and an exit code instead of a
traceback. Whether running again unchanged can succeed is said by a mixin on the
concrete error, as dlt does: :class:`Transient` (throttling, an outage, a lost
connection, a lock another run holds) or :class:`Terminal` (a typo in a config, a table
that is not ours). ``retryable`` reads it, and the result file reports it per sync, so
an orchestrator can retry what can succeed and page a person for the rest.

Errors are picklable with everything they carry: ``--workers`` processes send them back
to the parent as they are, not as strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class Terminal:
    """Mixin: running again unchanged will fail the same way; a person must fix something."""


class Transient:
    """Mixin: a passing condition (throttling, an outage, a lost connection); running again can succeed."""


def _rebuild(cls: type[EventBridgeSyncError], args: tuple[Any, ...], state: dict[str, Any]) -> EventBridgeSyncError:
    err = cls.__new__(cls)
    err.args = args
    err.__dict__.update(state)
    return err


class EventBridgeSyncError(Exception):
    """Base of every error dbt-eventbridge raises on purpose."""

    exit_code: int = 2

    def __init__(self, message: str, *, model: str | None = None, sync: str | None = None,
                 fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.model = model
        self.sync = sync
        self.fix = fix

    @property
    def retryable(self) -> bool:
        """Whether running again unchanged can succeed."""
        return isinstance(self, Transient)

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take other constructor arguments (ConfigError: problems); rebuild from the state.
        return _rebuild, (self.__class__, self.args, dict(self.__dict__))

    def __str__(self) -> str:
        text = _located(self.model, self.sync, self.message)
        if self.fix:
            text += " " + _sentence(self.fix)
        return text


def _located(model: str | None, sync: str | None, message: str) -> str:
    """``model 'm', sync 's': message.`` (the parts that are known)."""
    where = [f"{kind} '{name}'" for kind, name in (("model", model), ("sync", sync)) if name]
    return (", ".join(where) + ": " if where else "") + message.rstrip(".") + "."


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "?", "!")) else text + "."


class TerminalError(EventBridgeSyncError, Terminal):
    """A terminal error with no more specific class."""


class TransientError(EventBridgeSyncError, Transient):
    """A transient error with no more specific class."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration, located for the person who must fix it."""

    message: str
    model: str | None = None
    sync: str | None = None
    path: str | None = None  # e.g. "models/schema.yml: customers.config.meta.eventbridge.detail"
    fix: str | None = None

    def __str__(self) -> str:
        text = _located(self.model, self.sync, self.message)
        if self.path:
            text += f" (at {self.path})"
        if self.fix:
            text += " " + _sentence(self.fix)
        return text


class ConfigError(EventBridgeSyncError, Terminal):
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


class ProjectError(EventBridgeSyncError, Terminal):
    """The dbt project, its artifacts or the dbt package are missing or unusable."""


class WarehouseError(EventBridgeSyncError, Terminal):
    """A statement in the warehouse failed (permissions, a missing relation, bad SQL)."""


class WarehouseUnavailableError(WarehouseError, Transient):
    """The warehouse could not be reached, or the connection was lost: running again can succeed.

    Transient wins over the Terminal of WarehouseError: ``retryable`` asks for Transient."""


class LockedError(EventBridgeSyncError, Transient):
    """Another run holds the sync; it is free again when that run ends."""


class CredentialsError(EventBridgeSyncError, Terminal):
    """AWS refused who we are or what we may do; nothing was published."""


class EndpointError(EventBridgeSyncError, Transient):
    """EventBridge could not be reached at all; nothing was published."""
