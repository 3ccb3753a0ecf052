"""A local Snowflake for the tests: fakesnow's server (Snowflake's wire protocol over DuckDB).

``python -m devtools.fakesnow_server [--port N]`` serves on 127.0.0.1 until stdin closes or
SIGTERM, and prints ``{"port": N}`` once it accepts connections. Every client (dbt-snowflake,
our CLI, the test) logs in to one shared in-memory database, which lives as long as this
process: one server per test session.

Two fixes on the emulator, kept here rather than in site-packages:
- Snowflake's ``HASH()`` is a signed 64-bit integer; fakesnow hands it to DuckDB's ``hash()``,
  which is unsigned, and values above 2^63 overflow when the server encodes the result. The
  shim shifts it into the signed range, so row hashes stay consistent within the emulator.
- A missing object is reported in Snowflake's words ("does not exist or not authorized"),
  which dbt-snowflake matches on.

What an emulator cannot prove: Snowflake's own planner, its transaction isolation, its limits
(statement size, identifiers), performance, and the behaviour of real warehouses sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from typing import Any


def _signed_hash(node: Any) -> Any:
    import sqlglot
    from sqlglot import exp

    if isinstance(node, exp.Anonymous) and node.name.upper() == "HASH":
        unsigned = node.sql("duckdb")
        return sqlglot.parse_one(f"cast(cast({unsigned} as hugeint) - 9223372036854775808 as bigint)", read="duckdb")
    return node


def _install_shims() -> None:
    import fakesnow.cursor as cursor
    from snowflake.connector.errors import ProgrammingError

    transform = cursor.FakeSnowflakeCursor._transform
    execute = cursor.FakeSnowflakeCursor._execute

    def with_signed_hash(self: Any, expression: Any, params: Any) -> Any:
        return transform(self, expression, params).transform(_signed_hash)

    def with_snowflakes_wording(self: Any, *args: Any, **kwargs: Any) -> Any:
        # A missing object: DuckDB's "Catalog Error: Table with name X does not exist!" in
        # Snowflake's words, which dbt-snowflake matches on ("does not exist or not authorized",
        # e.g. get_columns_in_relation of a table not made yet).
        try:
            return execute(self, *args, **kwargs)
        except ProgrammingError as e:
            if e.errno != 2003 or "does not exist" not in (e.raw_msg or ""):
                raise
            raise ProgrammingError(msg=f"SQL compilation error: Object does not exist or not authorized. ({e.raw_msg})",
                                   errno=2003, sqlstate="42S02") from e

    cursor.FakeSnowflakeCursor._transform = with_signed_hash  # type: ignore[method-assign]
    cursor.FakeSnowflakeCursor._execute = with_snowflakes_wording  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.fakesnow_server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    args = parser.parse_args(argv)
    import fakesnow

    _install_shims()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with fakesnow.server(port=args.port or None) as params:
        print(json.dumps({"port": params["port"]}), flush=True)
        # Nobody reads our stdout after the port: anything printed later (fakesnow, uvicorn)
        # would fill the pipe and stop the server mid-request.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
