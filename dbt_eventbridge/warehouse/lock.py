"""One writer per sync: a row in ``_eb_locks``, with a heartbeat."""

from __future__ import annotations

import os
import socket
import time
import uuid
from typing import Any

from dbt_eventbridge.errors import LockedError, WarehouseError
from dbt_eventbridge.warehouse.project import DbtProject
from dbt_eventbridge.warehouse.tables import StateTables


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

    def __enter__(self) -> SyncLock:
        deadline = time.monotonic() + self.wait
        name = self.project.literal(self.tables.sync)
        # What other processes did to this sync's tables before we held it is seen afresh.
        self.project.forget_tables()
        while True:
            try:
                with self.project.transaction():
                    self.project.execute(
                        f"insert into {self.tables.locks} (sync_name, owner, host, pid, heartbeat_epoch) values "
                        f"({name}, {self.project.literal(self.owner)}, {self.project.literal(self.host)}, "
                        f"{os.getpid()}, "
                        f"{int(time.time())})")
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
                                     f"and owner = {self.project.literal(str(owner))}")
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

    def _mine(self) -> str:
        """The condition that selects this lock's row."""
        lit = self.project.literal
        return f"sync_name = {lit(self.tables.sync)} and owner = {lit(self.owner)}"

    def heartbeat(self) -> None:
        if time.monotonic() - self._last_beat < 5:
            return
        self._last_beat = time.monotonic()
        self.project.execute(f"update {self.tables.locks} set heartbeat_epoch = {int(time.time())} "
                             f"where {self._mine()}")

    def __exit__(self, *exc: Any) -> None:
        try:
            self.project.execute(f"delete from {self.tables.locks} where {self._mine()}")
        except WarehouseError:
            pass  # the lock expires by itself
