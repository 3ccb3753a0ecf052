"""Redshift: PostgreSQL's protocol with its own driver, transactions sent as SQL, reads in pages.

dbt-redshift connects with redshift_connector in autocommit mode, and skips BEGIN and COMMIT
altogether when its ``redshift_skip_autocommit_transaction_statements`` flag is set: our
transactions send their own BEGIN and COMMIT on the connection's cursor, so the server is
really in one (Redshift's DDL is transactional, as PostgreSQL's).

redshift_connector reads a whole result into memory at ``execute`` and takes no named
cursor (psycopg2's server-side cursor), so a large result is read with SQL cursors:
DECLARE ... CURSOR FOR, then FETCH FORWARD n, inside the transaction of the read.

Rendered and checked offline only (tests/unit/test_engines.py, tests/golden/redshift.sql):
no Redshift cluster is reachable from CI.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from dbt_eventbridge.warehouse.engines.base import Rows, SqlTransactions, _names


class RedshiftEngine(SqlTransactions):
    def __init__(self) -> None:
        # Redshift reads a backslash in a string literal as an escape character.
        super().__init__("redshift", backslash_escapes=True)

    def stream(self, adapter: Any, sql: str, batch_size: int) -> Iterator[tuple[list[str], Rows]]:
        cursor = adapter.connections.get_thread_connection().handle.cursor()
        name = f"eb_{uuid.uuid4().hex[:12]}"
        cursor.execute(f"declare {name} cursor for {sql}")
        try:
            while True:
                cursor.execute(f"fetch forward {int(batch_size)} from {name}")
                rows = cursor.fetchall()
                if not rows:
                    break
                yield _names(cursor.description), [tuple(r) for r in rows]
        finally:
            try:
                cursor.execute(f"close {name}")
            except Exception:  # noqa: BLE001 - a failed read aborted the transaction; its error is the one raised
                pass
