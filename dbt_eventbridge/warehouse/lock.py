"""One writer per sync: a table of its own, ``_eb_lock__<sync>``, with a heartbeat.

The lock is the table's existence: creating a table of a given name succeeds for one
creator on every warehouse, where a primary key (the lock row of versions before 0.2) is
not enforced on Snowflake, BigQuery, Redshift or Spark, so two runs could both insert it.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from typing import Any

from dbt_eventbridge.errors import LockedError, WarehouseError
from dbt_eventbridge.warehouse.project import DbtProject
from dbt_eventbridge.warehouse.tables import LOCK_COLUMNS, StateTables


class SyncLock:
    """One writer per sync, as the table ``_eb_lock__<sync>`` holding its owner and heartbeat.

    A lock whose owner stopped heart-beating for ``ttl`` seconds, or whose owner was a
    process on this machine that no longer exists (a killed run), is taken over: dropped,
    then created again by the one run whose CREATE succeeds.
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
        lock, owned = self.tables.lock, self.tables.owned
        while True:
            # What other processes did to this sync's tables is seen afresh each time.
            self.project.forget_tables()
            try:
                with self.project.transaction():
                    owned.register(lock, "lock", self.tables.sync)  # before it exists (see Ownership)
                    self.project.execute(self.project.sql.create_lock(lock, self.owner, self.host, os.getpid(),
                                                                      int(time.time())), lists=(lock, True))
                self._last_beat = time.monotonic()
                return self
            except WarehouseError as e:
                self.project.forget_tables()
                if not owned.check(lock):  # raises when a table of that name is someone else's
                    raise e from None  # not held: the warehouse refused the CREATE for its own reason
            rows = self.project.execute(self.project.sql.select(lock, LOCK_COLUMNS), fetch=True)
            if not rows:
                continue  # dropped in between: try again
            owner, host, pid, beat = rows[0]
            if self._stale(str(host), int(pid), int(beat)):
                owned.drop(lock)
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
        self.project.execute(self.project.sql.lock_beat(self.tables.lock, self.owner, int(time.time())))

    def __exit__(self, *exc: Any) -> None:
        lock = self.tables.lock
        try:
            rows = self.project.execute(self.project.sql.select(lock, ["owner"]), fetch=True)
            if rows and rows[0][0] == self.owner:  # not one that a run taking over ours made
                self.tables.owned.drop(lock)
        except WarehouseError:
            pass  # the lock expires by itself
