"""Errors say whether running again can help, and survive a trip between processes."""

from __future__ import annotations

import pickle

import pytest

from dbt_eventbridge.errors import (
    ConfigError,
    CredentialsError,
    EndpointError,
    EventBridgeSyncError,
    LockedError,
    Problem,
    Terminal,
    TerminalError,
    Transient,
    TransientError,
    WarehouseError,
    WarehouseUnavailableError,
)
from dbt_eventbridge.warehouse.driver_errors import BusyError, warehouse_error
from dbt_eventbridge.warehouse.engines import engine_for


@pytest.mark.parametrize(("error", "retryable"), [
    (ConfigError([Problem("bad", "m", "s", "p", "fix it")]), False),
    (CredentialsError("refused"), False),
    (WarehouseError("syntax"), False),
    (TerminalError("x"), False),
    (EndpointError("unreachable"), True),
    (WarehouseUnavailableError("lost"), True),
    (LockedError("held"), True),
    (BusyError("file held"), True),
    (TransientError("x"), True),
])
def test_retryable_follows_the_mixin(error: EventBridgeSyncError, retryable: bool) -> None:
    assert error.retryable is retryable
    assert isinstance(error, Transient if retryable else Terminal)


def test_an_error_keeps_everything_through_pickle() -> None:
    """--workers processes send their errors back as they were raised."""
    problems = [Problem("first", "customers", "crm", "models/schema.yml: x", "fix one"),
                Problem("second", "customers", "crm", None, None)]
    for original in (ConfigError(problems),
                     EndpointError("could not reach EventBridge", model="m", sync="s", fix="check the network")):
        copy = pickle.loads(pickle.dumps(original))
        assert type(copy) is type(original)
        assert str(copy) == str(original)
        assert (copy.model, copy.sync, copy.fix, copy.retryable) == \
            (original.model, original.sync, original.fix, original.retryable)
    copy = pickle.loads(pickle.dumps(ConfigError(problems)))
    assert isinstance(copy, ConfigError) and copy.problems == problems


@pytest.mark.parametrize(("driver_message", "kind"), [
    ("could not connect to server: Connection refused", WarehouseUnavailableError),
    ("server closed the connection unexpectedly", WarehouseUnavailableError),
    ("SSL SYSCALL error: EOF detected", WarehouseUnavailableError),
    ('relation "x" does not exist', WarehouseError),
    ("permission denied for schema analytics", WarehouseError),
])
def test_a_driver_error_is_classified(driver_message: str, kind: type[WarehouseError]) -> None:
    err = warehouse_error("a statement failed in the warehouse", RuntimeError(driver_message))
    assert type(err) is kind
    assert str(err).startswith(f"a statement failed in the warehouse: {driver_message}")


def test_out_of_memory_on_duckdb_says_the_fix() -> None:
    duckdb, postgres = engine_for("duckdb"), engine_for("postgres")
    oom = RuntimeError("Out of Memory Error: failed to allocate data of size 1.0 GiB")
    assert "duckdb_memory_limit" in (duckdb.memory_fix(oom) or "")
    assert duckdb.memory_fix(RuntimeError("something else")) is None
    assert postgres.memory_fix(oom) is None  # the advice is DuckDB's setting


def test_a_duckdb_file_held_by_another_process_names_it() -> None:
    duckdb = engine_for("duckdb")
    message = ('IO Error: Could not set lock on file "w.duckdb": Conflicting lock is held in '
               "/usr/bin/python3.11 (PID 4242) by user root")
    assert duckdb.lock_holder(message) == "/usr/bin/python3.11 (PID 4242)"
    assert duckdb.lock_holder("Catalog Error: no such table") is None
    assert engine_for("postgres").lock_holder(message) is None
