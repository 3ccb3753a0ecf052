"""Which tables are ours, and the names of one sync's tables.

Every table dbt-eventbridge creates is listed in ``_eb_objects``; a table is written,
emptied or dropped only if that list names it, so a table of someone else's is never
touched, whatever the state schema holds.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

from dbt_eventbridge.errors import TerminalError
from dbt_eventbridge.warehouse.project import DbtProject

OBJECTS = "_eb_objects"
LAYOUTS = "_eb_layouts"
LEGACY_REGISTRY = "_eb_syncs"    # format 1
MAX_NAME = 63                    # PostgreSQL truncates longer identifiers (and so would collide)
_PREFIXES = ("_eb_state__", "_eb_plan__", "_eb_acks__", "_eb_next__", "_eb_lock__")

OBJECT_COLUMNS = [["name", "string"], ["kind", "string"], ["sync_name", "string"], ["created_epoch", "bigint"]]
LAYOUT_COLUMNS = [["sync_name", "string"], ["layout", "string"], ["pending_layout", "string"],
                  ["committed_epoch", "bigint"], ["updated_epoch", "bigint"]]
LOCK_COLUMNS = ["owner", "host", "pid", "heartbeat_epoch"]
LEGACY_REGISTRY_COLUMNS = ["sync_name", "hash_version", "hash_columns", "pending_hash_version",
                           "pending_hash_columns", "updated_epoch"]


class NotOursError(TerminalError):
    """A table with one of our names exists but dbt-eventbridge did not create it."""


def table_stem(sync: str) -> str:
    """The sync's part of its table names: the name itself, or, when too long for every
    warehouse, a prefix and a digest of it (still one name per sync)."""
    name = sync.lower()
    room = MAX_NAME - max(len(p) for p in _PREFIXES)
    if len(name) <= room:
        return name
    return name[:room - 9] + "_" + hashlib.sha1(name.encode()).hexdigest()[:8]


def exists(project: DbtProject, relation: Any) -> bool:
    return str(relation.identifier).lower() in project.table_names(relation.without_identifier())


class Ownership:
    """Which tables of one schema dbt-eventbridge created (the ``_eb_objects`` table)."""

    def __init__(self, project: DbtProject, schema: str) -> None:
        self.project = project
        self.schema = schema
        self.objects = project.state_relation(schema, OBJECTS)
        self._names: set[str] | None = None
        self._names_rollbacks = 0  # project.rollbacks when _names was read: a rollback voids it

    def _known(self) -> set[str] | None:
        """The names read from _eb_objects, unless a transaction rolled back since (it may have
        undone a registration or a drop that _names already shows)."""
        if self._names is not None and self._names_rollbacks != self.project.rollbacks:
            self._names = None
        return self._names

    def _read_names(self) -> set[str]:
        rows = self.project.execute(self.project.sql.select(self.objects, ["name"]), fetch=True)
        self._names = {str(r[0]).lower() for r in rows}
        self._names_rollbacks = self.project.rollbacks
        return self._names

    def relation(self, name: str) -> Any:
        return self.project.state_relation(self.schema, name)

    def _load(self) -> set[str]:
        """The names we own (read only: a dry run writes nothing, not even this table)."""
        names = self._known()
        if names is None:
            if not exists(self.project, self.objects):
                return set()
            self._check_columns(self.objects, [c for c, _ in OBJECT_COLUMNS])
            names = self._read_names()
        return names

    def ensure(self) -> None:
        """The schema and the ownership table (once per run)."""
        if self._known() is not None:
            return
        project = self.project

        def made() -> bool:
            project.create_schema(self.objects.without_identifier())
            if exists(project, self.objects):
                self._check_columns(self.objects, [c for c, _ in OBJECT_COLUMNS])
            else:
                project.execute(project.render_macro("history_table_sql", relation=self.objects,
                                                     columns=OBJECT_COLUMNS), lists=(self.objects, True))
            return True

        # Once per process and schema (each sync has its own Ownership): creating the schema and
        # checking the table cost two dbt macros and a listing, 20 ms a sync on DuckDB. Made
        # again after a rollback, which may have undone the CREATE.
        project.cached(f"objects_table:{self.objects}:{project.rollbacks}", made)
        self._read_names()

    def _check_columns(self, relation: Any, expected: list[str], earlier: Sequence[Sequence[str]] = ()) -> None:
        """Raises unless the table has exactly ``expected`` columns (or one of the ``earlier``
        versions' sets, which its owner then migrates)."""
        have = sorted(c.lower() for c, _ in self.project.relation_columns(relation))
        if all(have != sorted(cols) for cols in (expected, *earlier)):
            raise self._refusal(relation)

    def _refusal(self, relation: Any) -> NotOursError:
        return NotOursError(
            f"the table {relation} exists but was not created by dbt-eventbridge, so it is never written, "
            "emptied or dropped by it; nothing was changed",
            fix="Use a schema of its own for the state (vars.eventbridge.state_schema or "
                "DBT_EVENTBRIDGE_STATE_SCHEMA; the default is eventbridge_state), or move that table away")

    def is_ours(self, relation: Any) -> bool:
        return str(relation.identifier).lower() in self._load()

    def check(self, relation: Any) -> bool:
        """Whether the table exists; raises if it exists and is not ours."""
        if not exists(self.project, relation):
            return False
        if not self.is_ours(relation):
            raise self._refusal(relation)
        return True

    def readable(self, relation: Any, columns: list[str], earlier: Sequence[Sequence[str]] = ()) -> bool:
        """Whether a shared table of ours exists, to read it (one of an earlier version, made
        before _eb_objects, is recognised by exactly its columns, or those of ``earlier``
        versions); nothing is written."""
        if not exists(self.project, relation):
            return False
        if not self.is_ours(relation):
            self._check_columns(relation, columns, earlier)
        return True

    def adopt(self, relation: Any, kind: str, columns: list[str], sync: str = "",
              earlier: Sequence[Sequence[str]] = ()) -> bool:
        """A table of an earlier version (before _eb_objects), recognised by exactly its columns."""
        if not self.readable(relation, columns, earlier):
            return False
        if not self.is_ours(relation):
            self.register(relation, kind, sync)
        return True

    # Where DDL is not transactional (Snowflake, BigQuery, Spark), a run can die between a
    # CREATE and the registration of what it made, or between a DROP and the removal of its
    # row. So a table is registered before it is created and unregistered after it is
    # dropped: _eb_objects may name a table that is gone (harmless: nothing is there to
    # touch), never miss one of ours (it would be refused as someone else's forever).

    def register(self, relation: Any, kind: str, sync: str = "") -> None:
        """List a table as ours, before it is created (a second registration renews the row)."""
        self.ensure()
        name = str(relation.identifier).lower()
        names = self._known()
        assert names is not None
        sql = self.project.sql
        if name in names:
            # One statement, never a delete and an insert: a crash between them would
            # leave a table of ours unlisted.
            touch = sql.touch_object(self.objects, name, int(time.time()), kind=kind, sync=sync)
            if touch is not None:
                self.project.execute(touch)
        else:
            self.project.execute(sql.insert_values(self.objects, {"name": name, "kind": kind, "sync_name": sync,
                                                                  "created_epoch": int(time.time())}))
        names.add(name)

    def ensure_table(self, relation: Any, kind: str, create_sql: str, columns: list[str],
                     earlier: Sequence[Sequence[str]] = ()) -> bool:
        """A shared table of ours: created (and registered) when missing, refused when someone
        else's. Returns whether it existed (``earlier``: column sets of earlier versions of it,
        which the caller migrates)."""
        if self.adopt(relation, kind, columns, earlier=earlier):
            return True
        with self.project.transaction():
            self.register(relation, kind)
            self.project.execute(create_sql, lists=(relation, True))
        return False

    def create(self, relation: Any, sql: str, kind: str, sync: str) -> None:
        """Create one of our tables (inside the caller's transaction)."""
        if self.check(relation):
            self.drop(relation)
        self.register(relation, kind, sync)
        self.project.execute(sql, lists=(relation, True))

    def drop(self, relation: Any) -> None:
        """Drop a table of ours, if it exists (raises if it exists and is not ours)."""
        if self.check(relation):
            with self.project.transaction():
                self.drop_checked(relation)

    def drop_checked(self, relation: Any) -> None:
        """Drop a table this run already checked is ours, in the caller's transaction (a
        rollback voids the names read, so the table is not forgotten while it still exists)."""
        name = str(relation.identifier).lower()
        self.project.execute(self.project.sql.drop_table(relation), lists=(relation, False))
        self._unlist(name)

    def forget(self, name: str) -> None:
        """A table of ours that is gone (its row in _eb_objects is deleted by the caller)."""
        names = self._known()
        if names is not None:
            names.discard(name)

    def renamed(self, old_relation: Any) -> None:
        """After ``old_relation`` was renamed to a name registered before the rename."""
        self._unlist(str(old_relation.identifier).lower())

    def _unlist(self, name: str) -> None:
        forget = self.project.sql.forget_object(self.objects, name)
        if forget is not None:  # (else the row stays, and the name is still listed)
            self.project.execute(forget)
            self.forget(name)


class StateTables:
    """Relations of one sync, all in the state schema, named after the (unique) sync name."""

    def __init__(self, project: DbtProject, schema: str, sync_name: str) -> None:
        self.sync = sync_name.lower()
        stem = table_stem(sync_name)
        rel = project.state_relation
        self.project = project
        self.schema = schema
        self.owned = Ownership(project, schema)
        self.state = rel(schema, f"_eb_state__{stem}")
        self.plan = rel(schema, f"_eb_plan__{stem}")
        self.acks = rel(schema, f"_eb_acks__{stem}")
        self.next = rel(schema, f"_eb_next__{stem}")
        self.layouts = rel(schema, LAYOUTS)
        self.lock = rel(schema, f"_eb_lock__{stem}")
        self.state_name = project.quote(f"_eb_state__{stem}")
        self.next_name = project.quote(f"_eb_next__{stem}")
        # format 1 (before typed state), migrated on the first run
        self.legacy_state = rel(schema, self.sync)
        self.legacy_plan = rel(schema, f"{self.sync}__plan")
        self.legacy_acks = rel(schema, f"{self.sync}__acks")
        self.legacy_registry = rel(schema, LEGACY_REGISTRY)

    @classmethod
    def for_sync(cls, project: DbtProject, schema: str, sync_name: str) -> StateTables:
        return cls(project, schema, sync_name)


def ensure_schema(project: DbtProject, tables: StateTables) -> None:
    owned = tables.owned
    owned.ensure()
    create = project.cached(f"create:{tables.layouts}", lambda: project.render_macro(
        "history_table_sql", relation=tables.layouts, columns=LAYOUT_COLUMNS))
    owned.ensure_table(tables.layouts, "layouts", create, [c for c, _ in LAYOUT_COLUMNS])
