"""SQL on the warehouse through dbt's adapter: the connection, transactions, statements, listings.

Split from project.py (which parses the project and opens the adapter) so that each stays
readable; :class:`DbtProject` is one object with both. Every statement dbt-eventbridge runs
goes through :meth:`AdapterSession.execute` (or ``stream`` for large results), which turns
any driver error into one of ours, classified transient or terminal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from dbt_eventbridge.errors import EventBridgeSyncError, WarehouseError, WarehouseUnavailableError
from dbt_eventbridge.warehouse.driver_errors import BusyError, warehouse_error
from dbt_eventbridge.warehouse.engines.base import DDL, Engine
from dbt_eventbridge.warehouse.nodes import ModelNode

PACKAGE = "dbt_eventbridge"


class AdapterSession:
    """The SQL half of :class:`~dbt_eventbridge.warehouse.project.DbtProject`."""

    adapter: Any
    config: Any
    _listings: dict[str, set[str]]
    _schemas: set[str]  # create_schema done (with the rollback count then)
    _model_listings: dict[tuple[str, str], list[Any]]  # the relations of the models' schemas
    _in_transaction: bool
    rollbacks: int  # how many of our transactions rolled back: caches of what they wrote are void

    @property
    def engine(self) -> Engine:
        raise NotImplementedError

    def run_macro(self, name: str, kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError

    @contextlib.contextmanager
    def connection(self, name: str = "dbt_eventbridge", wait_seconds: int = 0) -> Iterator[None]:
        """The warehouse connection. An embedded database held by another process (DuckDB lets
        one process write a file) is waited for up to ``wait_seconds`` (lock_wait_seconds)."""
        import time

        deadline = time.monotonic() + wait_seconds
        while True:
            opened = False
            try:
                with self.adapter.connection_named(name):
                    self._open(name)
                    opened = True
                    yield
                return
            except BusyError:
                if opened or time.monotonic() >= deadline:
                    raise
                self.adapter.cleanup_connections()
                time.sleep(1)

    def _open(self, name: str) -> None:
        try:
            self.execute("select 1")
        except WarehouseError as e:
            holder = self.engine.lock_holder(e.message)
            if holder is not None:
                raise BusyError(
                    f"another run is syncing right now: the warehouse file is held by another process ({holder}); "
                    "DuckDB lets one process write a database file, so this run published nothing",
                    fix="Wait for it to finish (a `dbt` command holds the file too); lock_wait_seconds makes this "
                        "run wait instead") from None
            cls = WarehouseUnavailableError if isinstance(e, WarehouseUnavailableError) else WarehouseError
            raise cls(f"could not connect to the warehouse (target '{self.config.target_name}'): "
                      f"{e.message.split(': ', 1)[-1]}",
                      fix="Check profiles.yml (a relative DuckDB path is relative to the current "
                          "folder); `dbt debug` shows the connection details") from None

    def setup_session(self, memory_limit: str = "") -> None:
        """The session settings our SQL relies on (UTC, exact floats; DuckDB's memory limit)."""
        setup = self.render_macro("session_setup", memory_limit=memory_limit)
        for stmt in (s for s in setup.split(";") if s.strip()):
            self.execute(stmt)

    # -- SQL ---------------------------------------------------------------------------------
    def call(self, macro: str, **kwargs: Any) -> Any:
        """Run one of our package's macros (dispatched per adapter) and return its value."""
        try:
            return self.run_macro(macro, kwargs)
        except EventBridgeSyncError:
            raise  # ours already (a package without this macro): its fix says what to do
        except Exception as e:  # noqa: BLE001 - dbt and its drivers raise many kinds; each becomes ours, classified
            raise self._error(f"the warehouse failed in {macro}", e) from None

    def render_macro(self, macro: str, **kwargs: Any) -> str:
        """Render a macro to SQL text without running it."""
        return str(self.call(macro, **kwargs)).strip()

    def execute(self, sql: str, fetch: bool = False, params: Any = None, *,
                lists: tuple[Any, bool] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement (with DB-API ``params`` if given); outside :meth:`transaction` it
        is committed on its own.

        On the connection's own cursor, not dbt's ``adapter.execute``: that fires query events
        and builds an agate table for every statement, which cost a no-change sync of 6 models
        1.4 s of its 6.9 s of CPU (integration_project). So our statements are not in
        logs/dbt.log. (psycopg2 opens a transaction implicitly, so a statement that is not
        committed explicitly would be rolled back when the connection closes.)

        ``lists``: (relation, exists after) for a CREATE or DROP of exactly that table, which
        then updates the listing of its schema instead of voiding every listing (a no-change
        sync listed its schema 5 times, about 9 ms each on DuckDB, most of it dbt's macro).
        """
        return self._statement(sql, fetch, params, lists)[1]

    def records(self, sql: str) -> list[dict[str, Any]]:
        """A select on our own tables as {column name: value} rows (names as the driver reports
        them, lower-cased: an engine that upper-cases unquoted names gives the same keys)."""
        names, rows = self._statement(sql, True, None)
        return [dict(zip(names, r)) for r in rows]

    def _statement(self, sql: str, fetch: bool, params: Any, lists: tuple[Any, bool] | None = None
                   ) -> tuple[list[str], list[tuple[Any, ...]]]:
        if not self._in_transaction:
            with self.transaction():
                return self._statement(sql, fetch, params, lists)
        if lists is None and DDL.match(sql):  # over-matching only costs a listing
            self._listings.clear()
        try:
            out = self.engine.run(self.adapter, sql, fetch, params)
        except Exception as e:  # noqa: BLE001 - dbt and its drivers raise many kinds; each becomes ours, classified
            self._listings.clear()  # a failed DDL statement may have done part of its work
            raise self._error("a statement failed in the warehouse", e) from None
        if lists is not None:
            relation, present = lists
            listed = self._listings.get(str(relation.without_identifier()).lower())
            if listed is not None:
                (listed.add if present else listed.discard)(str(relation.identifier).lower())
        return out

    def table_names(self, schema_relation: Any) -> set[str]:
        """The lower-cased table names of one schema, listed once until a statement of ours
        changes tables (any DDL through :meth:`execute`), a transaction rolls back, or
        :meth:`forget_tables` (taking a sync's lock: other processes may have made tables).

        Not adapter.get_relation: dbt's relation cache is filled when the adapter opens and
        does not see the tables we create or drop with SQL. Measured on DuckDB: a listing
        costs about 36 ms of dbt macro rendering and events, and a sync asked about 14 times
        (0.5 s of its 1.3 s).
        """
        key = str(schema_relation).lower()
        if key not in self._listings:
            try:
                with self.transaction():
                    self._listings[key] = self.engine.list_tables(self.adapter, schema_relation)
            except WarehouseError:
                raise
            except Exception as e:  # noqa: BLE001 - dbt and its drivers raise many kinds; each becomes ours, classified
                raise self._error(f"could not list the tables of {schema_relation}", e) from None
        return self._listings[key]

    def create_schema(self, schema_relation: Any) -> None:
        """The schema, created if missing (dbt's create_schema macro of the engine); once per
        process, unless a transaction rolled back since."""
        made = f"schema:{str(schema_relation).lower()}:{self.rollbacks}"
        if made in self._schemas:
            return
        try:
            with self.transaction():
                self.adapter.create_schema(schema_relation)
        except WarehouseError:
            raise
        except Exception as e:  # noqa: BLE001 - any driver error becomes ours with the schema named
            raise self._error(f"could not create the schema {schema_relation}", e) from None
        finally:
            self.forget_tables()
        self._schemas.add(made)

    def forget_tables(self) -> None:
        self._listings.clear()

    def stream(self, sql: str, batch_size: int) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
        """Yield (column names, rows) batches; the result is never loaded whole."""
        if self.engine.streams_outside_transaction and not self._in_transaction:
            yield from self._stream(sql, batch_size)
            return
        with self.transaction():
            yield from self._stream(sql, batch_size)

    def _stream(self, sql: str, batch_size: int) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
        try:
            yield from self.engine.stream(self.adapter, sql, batch_size)
        except WarehouseError:
            raise
        except Exception as e:  # noqa: BLE001 - any driver error becomes ours, classified
            raise self._error("reading changes from the warehouse failed", e) from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        if self._in_transaction:
            yield
            return
        conns = self.adapter.connections
        try:
            if conns.get_thread_connection().transaction_open:
                # dbt's own macros (get_relation, get_columns_in_relation) leave a
                # transaction open; close it so ours starts clean.
                conns.commit()
            self.engine.begin(self.adapter)
        except Exception as e:  # noqa: BLE001 - dbt and its drivers raise many kinds; each becomes ours, classified
            raise self._error("the warehouse refused to start a transaction", e) from None
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self._rolled_back()
            raise
        self._in_transaction = False
        if not conns.get_thread_connection().transaction_open:
            return  # some of dbt's own macros (create_schema) commit by themselves
        try:
            self.engine.commit(self.adapter)
        except Exception as e:  # noqa: BLE001 - dbt and its drivers raise many kinds; each becomes ours, classified
            self._rolled_back()  # a failed COMMIT ends the transaction: the next one must start clean
            raise self._error("committing to the warehouse failed", e) from None

    def _rolled_back(self) -> None:
        self._in_transaction = False
        self._listings.clear()  # a listing read inside it may show tables rolled back
        self.rollbacks += 1
        try:
            self.engine.rollback(self.adapter)
        except Exception:  # noqa: BLE001 - the connection may be gone; the error being raised says why
            pass

    def columns(self, node: ModelNode) -> list[tuple[str, str]] | None:
        """(name, data type) of the built relation, or None when it does not exist."""
        try:
            relation = self._built_relation(node)
            if relation is None:
                return None
        except Exception as e:  # noqa: BLE001 - dbt and its drivers raise many kinds; each becomes ours, classified
            raise self._error(f"reading the columns of {node.relation_name} failed", e) from None
        return self.relation_columns(relation)

    def _built_relation(self, node: ModelNode) -> Any:
        """The node's relation as the warehouse lists it, or None.

        Each schema is listed once per process (dbt's get_relation lists the schema on every
        call: 9 ms a sync on DuckDB). The models are built before a run and only read by it,
        so a listing stays true for the run (a relation missing from it is listed again, in
        case it was built since). Matched as dbt's get_relation matches: in the node's own
        database and schema (a listing may hold others: PostgreSQL's lists `schemaname ilike`),
        the exact name, else the one name that differs only by case."""
        key = (str(node.database), str(node.schema))
        found = self._model_listings.get(key)
        fresh = found is None
        while True:
            if found is None:
                found = self._model_listings[key] = _in_schema(self._relations_of(node), node)
            alias = str(node.alias)
            exact = [r for r in found if str(r.identifier) == alias]
            folded = [r for r in found if str(r.identifier).lower() == alias.lower()]
            if exact or len(folded) == 1 or fresh:
                return exact[0] if exact else folded[0] if len(folded) == 1 else None
            found, fresh = None, True  # not in a listing made earlier: built since? listed again

    def _relations_of(self, node: ModelNode) -> list[Any]:
        """The relations of the node's schema: the engine's own query where it has one (dbt's
        listing renders a macro and builds an agate table: 10 ms, and agate's import 0.15 s)."""
        schema = self.adapter.Relation.create(database=node.database, schema=node.schema)
        with self.transaction():
            names = self.engine.relation_names(self.adapter, schema)
        if names is None:
            return list(self.adapter.list_relations(node.database, node.schema))
        return [self.adapter.Relation.create(database=node.database, schema=node.schema, identifier=n)
                for n in names]

    def relation_columns(self, relation: Any) -> list[tuple[str, str]]:
        """(name, type) of a relation's columns, typed the same way from run to run (a macro per adapter)."""
        try:
            with self.transaction():
                sql = self.render_macro("relation_columns_sql", relation=relation)
                found = self.execute(sql, fetch=True) if sql else self.run_macro("relation_columns",
                                                                                 {"relation": relation})
                return [(str(n), str(t)) for n, t in found]
        except WarehouseError:
            raise
        except Exception as e:  # noqa: BLE001 - dbt and its drivers raise many kinds; each becomes ours, classified
            raise self._error(f"reading the columns of {relation} failed", e) from None

    def _error(self, what: str, e: BaseException) -> WarehouseError:
        return warehouse_error(what, e, fix=self.engine.memory_fix(e))

    def out_of_memory(self, e: BaseException) -> bool:
        return self.engine.memory_fix(e) is not None

    def out_of_memory_error(self, e: BaseException) -> WarehouseError | None:
        """An engine's out-of-memory error that escaped a statement wrapper (e.g. while streaming)."""
        fix = self.engine.memory_fix(e)
        if fix is None:
            return None
        return WarehouseError(f"the warehouse ran out of memory: {str(e).strip().splitlines()[-1][:300]}", fix=fix)


def _in_schema(relations: list[Any], node: ModelNode) -> list[Any]:
    """The relations of the node's own database and schema: spelled exactly as the node has
    them where any is, else the same names in another case (an unquoted name the warehouse
    folded)."""
    def same(a: Any, b: Any, fold: bool) -> bool:
        if a is None or b is None:
            return True
        return str(a).lower() == str(b).lower() if fold else str(a) == str(b)

    for fold in (False, True):
        found = [r for r in relations if same(r.schema, node.schema, fold) and same(r.database, node.database, fold)]
        if found:
            return found
    return []
