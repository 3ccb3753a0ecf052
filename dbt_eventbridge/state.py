"""The delivered state in the warehouse: its tables, the ack journal, commits, locks.

Per sync, in the state schema:
- ``<sync>``: what was delivered (key, fingerprint, values as JSON);
- ``<sync>__plan``: the changes of the current run, numbered by ``_eb_seq``;
- ``<sync>__acks``: the ``_eb_seq`` of plan rows that need no more sending, journaled as
  EventBridge accepts them, so a killed run loses at most what was in flight.
Shared: ``_eb_syncs`` (which hash expression and columns each state was written with)
and ``_eb_locks`` (one writer per sync).
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from dbt_eventbridge.errors import TerminalError, WarehouseError
from dbt_eventbridge.faults import CrashPoints
from dbt_eventbridge.project import DbtProject

_INSERT_CHUNK = 1000
REGISTRY = "_eb_syncs"
LOCKS = "_eb_locks"


@dataclass(frozen=True)
class StateTables:
    """Relations of one sync, all in the state schema, named after the (unique) sync name."""

    sync: str
    state: Any
    plan: Any
    acks: Any
    registry: Any
    locks: Any
    state_name: str  # quoted identifier alone, for correlated SQL

    @classmethod
    def for_sync(cls, project: DbtProject, schema: str, sync_name: str) -> "StateTables":
        name = sync_name.lower()
        return cls(sync=name,
                   state=project.state_relation(schema, name),
                   plan=project.state_relation(schema, f"{name}__plan"),
                   acks=project.state_relation(schema, f"{name}__acks"),
                   registry=project.state_relation(schema, REGISTRY),
                   locks=project.state_relation(schema, LOCKS),
                   state_name=project.quote(name))


def exists(project: DbtProject, relation: Any) -> bool:
    # Not adapter.get_relation: dbt's relation cache is filled when the adapter opens and
    # does not see the tables we create or drop with SQL (e.g. the state made by a replay).
    try:
        with project.transaction():
            found = project.adapter.list_relations_without_caching(relation.without_identifier())
    except WarehouseError:
        raise
    except Exception as e:
        raise WarehouseError(f"could not list the tables of {relation.without_identifier()}: "
                             f"{str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__}") from None
    name = str(relation.identifier).lower()
    return any(str(r.identifier).lower() == name for r in found)


def drop(project: DbtProject, relation: Any) -> None:
    project.execute(f"drop table if exists {relation}")


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def ensure_schema(project: DbtProject, tables: StateTables) -> None:
    with project.transaction():
        project.adapter.create_schema(tables.state.without_identifier())
    if not exists(project, tables.registry):
        # pending_*: the bookkeeping of the plan not yet committed, so that a replay after
        # a crash records what that plan's hashes were computed with.
        project.execute(f"create table if not exists {tables.registry} (sync_name varchar(256) primary key, "
                        "hash_version varchar(64), hash_columns varchar(65000), pending_hash_version varchar(64), "
                        "pending_hash_columns varchar(65000), updated_epoch bigint)")
    if not exists(project, tables.locks):
        project.execute(f"create table if not exists {tables.locks} (sync_name varchar(256) primary key, "
                        "owner varchar(256), host varchar(256), pid bigint, heartbeat_epoch bigint)")


def read_registry(project: DbtProject, tables: StateTables) -> tuple[str, list[str]] | None:
    rows = project.execute(f"select hash_version, hash_columns from {tables.registry} "
                           f"where sync_name = {_literal(tables.sync)}", fetch=True)
    if not rows or rows[0][0] is None:
        return None
    return str(rows[0][0]), json.loads(rows[0][1])


def create_plan(project: DbtProject, tables: StateTables, plan_sql: str, send_ops: list[str],
                hash_version: str, hash_columns: list[str]) -> None:
    """The plan and its journal, atomically; rows that will never be sent are acked at once."""
    drop(project, tables.plan)
    drop(project, tables.acks)
    name = _literal(tables.sync)
    pending = f"{_literal(hash_version)}, {_literal(json.dumps(hash_columns))}"
    with project.transaction():
        project.execute(f"update {tables.registry} set pending_hash_version = {_literal(hash_version)}, "
                        f"pending_hash_columns = {_literal(json.dumps(hash_columns))} where sync_name = {name}")
        project.execute(f"insert into {tables.registry} (sync_name, pending_hash_version, pending_hash_columns, "
                        f"updated_epoch) select {name}, {pending}, {int(time.time())} where not exists "
                        f"(select 1 from {tables.registry} where sync_name = {name})")
        project.execute(f"create table {tables.plan} as {plan_sql}")
        index = project.render_macro("plan_index_sql", plan=tables.plan)
        if index:
            project.execute(index)
        project.execute(f"create table {tables.acks} (_eb_seq bigint)")
        ops = ", ".join(_literal(op) for op in send_ops) or "''"
        project.execute(f"insert into {tables.acks} (_eb_seq) select _eb_seq from {tables.plan} "
                        f"where _eb_op not in ({ops})")


def seq_runs(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, distinct seqs as (first, last) runs: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    runs: list[tuple[int, int]] = []
    for s in sorted(set(seqs)):
        if runs and s == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], s)
        else:
            runs.append((s, s))
    return runs


def journal(project: DbtProject, tables: StateTables, seqs: list[int]) -> None:
    """Record accepted plan rows; committed at once, so they survive a crash of this run."""
    if not seqs:
        return
    max_rows = project.cached("ack_insert_max_rows", lambda: int(project.call("ack_insert_max_rows")))
    with project.transaction():
        for group in _statements(seq_runs(seqs), max_rows):
            project.execute_fast(project.render_macro("ack_insert_sql", acks=tables.acks, runs=group))


def _statements(runs: list[tuple[int, int]], max_rows: int) -> Iterator[list[list[int]]]:
    """Runs grouped per statement: at most _INSERT_CHUNK runs and max_rows seqs each."""
    group: list[list[int]] = []
    rows = 0
    for lo, hi in runs:
        while lo <= hi:
            take = min(hi - lo + 1, max_rows - rows)
            group.append([lo, lo + take - 1])
            rows += take
            lo += take
            if rows >= max_rows or len(group) >= _INSERT_CHUNK:
                yield group
                group, rows = [], 0
    if group:
        yield group


def commit(project: DbtProject, tables: StateTables, keys: list[str], crash: CrashPoints | None = None) -> None:
    """Merge the acked part of the plan into the state and drop the plan, in one transaction.

    Plan rows without an ack stay out of the state, so the next run finds them again.
    The state table is created by its first commit, so a first run that fails leaves
    no state and the next run is a first run again (which matters for initial_sync).
    """
    # Plan seqs are 1..n and acks are distinct by construction (each accepted entry is
    # journaled once): n acks adding up to n(n+1)/2 are all of them.
    n = int(project.execute(f"select count(*) from {tables.plan}", fetch=True)[0][0])
    acked, total = project.execute(f"select count(*), sum(_eb_seq) from {tables.acks}", fetch=True)[0]
    all_acked = int(acked) == n and int(total or 0) == n * (n + 1) // 2
    statements = project.call("commit_sql", state=tables.state, state_name=tables.state_name,
                              plan=tables.plan, acks=tables.acks, keys=keys, all_acked=all_acked)
    create = None if exists(project, tables.state) else \
        project.render_macro("create_state_sql", state=tables.state, plan=tables.plan, keys=keys)
    with project.transaction():
        if create:
            project.execute(create)
        for sql in statements:
            project.execute(str(sql))
            if crash:
                crash.reach("commit.statement")
        project.execute(f"update {tables.registry} set hash_version = pending_hash_version, "
                        f"hash_columns = pending_hash_columns, updated_epoch = {int(time.time())} "
                        f"where sync_name = {_literal(tables.sync)}")
        project.execute(f"drop table {tables.plan}")
        project.execute(f"drop table {tables.acks}")


def pending_replay(project: DbtProject, tables: StateTables) -> bool:
    """A plan left by a run that did not finish."""
    return exists(project, tables.plan)


def replay(project: DbtProject, tables: StateTables, keys: list[str], crash: CrashPoints | None = None) -> int:
    """Complete an interrupted run: commit what its journal says was delivered.

    Returns the number of acked rows recovered (0 when the run died before journaling).
    """
    if not exists(project, tables.acks):
        drop(project, tables.plan)
        return 0
    n = int(project.execute(f"select count(*) from {tables.acks}", fetch=True)[0][0])
    commit(project, tables, keys, crash)
    return n


def delivered_count(project: DbtProject, tables: StateTables) -> int:
    if not exists(project, tables.state):
        return 0
    return int(project.execute(f"select count(*) from {tables.state}", fetch=True)[0][0])


class LockedError(TerminalError):
    """Another run holds the sync."""


class SyncLock:
    """One writer per sync, as a row in ``_eb_locks``.

    A lock whose owner stopped heart-beating for ``ttl`` seconds, or whose owner was a
    process on this machine that no longer exists (a killed run), is taken over.
    """

    def __init__(self, project: DbtProject, tables: StateTables, *, ttl: int, wait: int) -> None:
        self.project = project
        self.tables = tables
        self.ttl = ttl
        self.wait = wait
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.host = socket.gethostname()
        self._last_beat = 0.0

    def __enter__(self) -> "SyncLock":
        deadline = time.monotonic() + self.wait
        name = _literal(self.tables.sync)
        while True:
            try:
                with self.project.transaction():
                    self.project.execute(
                        f"insert into {self.tables.locks} (sync_name, owner, host, pid, heartbeat_epoch) values "
                        f"({name}, {_literal(self.owner)}, {_literal(self.host)}, {os.getpid()}, {int(time.time())})")
                self._last_beat = time.monotonic()
                return self
            except WarehouseError:
                pass  # held: look at the holder
            rows = self.project.execute(f"select owner, host, pid, heartbeat_epoch from {self.tables.locks} "
                                        f"where sync_name = {name}", fetch=True)
            if not rows:
                continue
            owner, host, pid, beat = rows[0]
            if self._stale(str(host), int(pid), int(beat)):
                self.project.execute(f"delete from {self.tables.locks} where sync_name = {name} "
                                     f"and owner = {_literal(str(owner))}")
                continue
            if time.monotonic() >= deadline:
                age = int(time.time()) - int(beat)
                raise LockedError(
                    f"another run ({owner}) is syncing it right now (last heartbeat {age}s ago), so this run "
                    "published nothing", sync=self.tables.sync,
                    fix=f"Wait for it to finish; a run that died is taken over after {self.ttl}s without "
                        "heartbeat (lock_ttl_seconds), or at once on the same machine. lock_wait_seconds "
                        "makes this run wait instead")
            time.sleep(1)

    def _stale(self, host: str, pid: int, beat: int) -> bool:
        if time.time() - beat > self.ttl:
            return True
        if host == self.host and pid != os.getpid():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
        return False

    def heartbeat(self) -> None:
        if time.monotonic() - self._last_beat < 5:
            return
        self._last_beat = time.monotonic()
        self.project.execute(f"update {self.tables.locks} set heartbeat_epoch = {int(time.time())} "
                             f"where sync_name = {_literal(self.tables.sync)} and owner = {_literal(self.owner)}")

    def __exit__(self, *exc: Any) -> None:
        try:
            self.project.execute(f"delete from {self.tables.locks} where sync_name = {_literal(self.tables.sync)} "
                                 f"and owner = {_literal(self.owner)}")
        except WarehouseError:
            pass  # the lock expires by itself
