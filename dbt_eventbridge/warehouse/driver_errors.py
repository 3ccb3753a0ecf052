"""A warehouse driver's exceptions as ours: worded in a sentence, classified (a lost
connection is transient, anything else terminal), with the fix when we know it."""

from __future__ import annotations

import re

from dbt_eventbridge.errors import LockedError, WarehouseError, WarehouseUnavailableError


class BusyError(LockedError):
    """The warehouse is held by another process (an embedded database file): free when it ends."""


def file_lock_holder(message: str) -> str | None:
    """DuckDB's "Could not set lock on file ... Conflicting lock is held in <program> (PID n)"."""
    if "Could not set lock on file" not in message:
        return None
    found = re.search(r"Conflicting lock is held in (.*?\(PID \d+\))", message)
    return found.group(1) if found else "another process"


# How drivers say the connection is gone or never came (libpq, DuckDB, dbt's adapters):
# running again can succeed, so these become WarehouseUnavailableError (Transient).
_UNAVAILABLE = ("could not connect to server", "connection refused", "server closed the connection",
                "connection already closed", "terminating connection", "connection timed out",
                "timeout expired", "could not translate host name", "ssl syscall error", "connection reset")


def warehouse_error(what: str, e: BaseException) -> WarehouseError:
    """A driver's exception as ours, worded "<what>: <the driver's first lines>": a lost
    connection is transient, anything else terminal; running out of memory says the fix."""
    message = f"{what}: {first_line(e)}"
    if any(s in str(e).lower() for s in _UNAVAILABLE):
        return WarehouseUnavailableError(message)
    return WarehouseError(message, fix=memory_fix(e))


def out_of_memory(e: BaseException) -> WarehouseError | None:
    """An engine's out-of-memory error that escaped a statement wrapper (e.g. while streaming)."""
    if memory_fix(e) is None:
        return None
    return WarehouseError(f"the warehouse ran out of memory: {str(e).strip().splitlines()[-1][:300]}",
                          fix=memory_fix(e))


def memory_fix(e: BaseException) -> str | None:
    if "Out of Memory" in str(e):
        return ("DuckDB needed more memory than duckdb_memory_limit allows; raise it (vars.eventbridge."
                "duckdb_memory_limit or DBT_EVENTBRIDGE_DUCKDB_MEMORY_LIMIT, e.g. 1GB), or set 0 to use the "
                "profile's memory_limit")
    return None


def first_line(e: BaseException) -> str:
    """An error in a sentence: its first three non-empty lines."""
    text = str(e).strip() or e.__class__.__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " ".join(lines[:3])[:600]
