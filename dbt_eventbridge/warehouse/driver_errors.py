"""A warehouse driver's exceptions as ours: worded in a sentence, classified (a lost
connection is transient, anything else terminal), with the fix when we know it."""

from __future__ import annotations

from dbt_eventbridge.errors import LockedError, WarehouseError, WarehouseUnavailableError


class BusyError(LockedError):
    """The warehouse is held by another process (an embedded database file): free when it ends."""


# How drivers say the connection is gone or never came (libpq, DuckDB, dbt's adapters):
# running again can succeed, so these become WarehouseUnavailableError (Transient).
_UNAVAILABLE = ("could not connect to server", "connection refused", "server closed the connection",
                "connection already closed", "terminating connection", "connection timed out",
                "timeout expired", "could not translate host name", "ssl syscall error", "connection reset")


def warehouse_error(what: str, e: BaseException, fix: str | None = None) -> WarehouseError:
    """A driver's exception as ours, worded "<what>: <the driver's first lines>": a lost
    connection is transient, anything else terminal (with ``fix``, the engine's advice for
    this error, e.g. on running out of memory)."""
    message = f"{what}: {first_line(e)}"
    if any(s in str(e).lower() for s in _UNAVAILABLE):
        return WarehouseUnavailableError(message)
    return WarehouseError(message, fix=fix)


def first_line(e: BaseException) -> str:
    """An error in a sentence: its first three non-empty lines."""
    text = str(e).strip() or e.__class__.__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " ".join(lines[:3])[:600]
