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
        sql = self.project.sql
        # What other processes did to this sync's tables before we held it is seen afresh.
        self.project.forget_tables()
        while True:
            try:
                with self.project.transaction():
                    self.project.execute(sql.insert_values(self.tables.locks, {
                        "sync_name": self.tables.sync, "owner": self.owner, "host": self.host,
                        "pid": os.getpid(), "heartbeat_epoch": int(time.time())}))
                self._last_beat = time.monotonic()
                return self
            except WarehouseError:
                pass  # held: look at the holder
            rows = self.project.execute(sql.select(self.tables.locks, ["owner", "host", "pid", "heartbeat_epoch"],
                                                   sync_name=self.tables.sync), fetch=True)
            if not rows:
                continue
            owner, host, pid, beat = rows[0]
            if self._stale(str(host), int(pid), int(beat)):
                self.project.execute(sql.delete_where(self.tables.locks, sync_name=self.tables.sync,
                                                      owner=str(owner)))
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
        self.project.execute(self.project.sql.lock_beat(self.tables.locks, self.tables.sync, self.owner,
                                                        int(time.time())))

    def __exit__(self, *exc: Any) -> None:
        try:
            self.project.execute(self.project.sql.delete_where(self.tables.locks, sync_name=self.tables.sync,
                                                               owner=self.owner))
        except WarehouseError:
            pass  # the lock expires by itself
