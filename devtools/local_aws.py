"""A local EventBridge (moto's threaded server) for tests and the demo.

The server, the bus -> rule -> SQS queue routing and the reading back are the package's
own (``dbt-eventbridge sandbox`` serves the same): :mod:`dbt_eventbridge.ops.sandbox`,
whose docstring records what moto does differently from AWS. This module keeps the
names the tests and the demo import.

Command line (demo): ``python -m devtools.local_aws [--port N] [--bus NAME]``
prints ``export`` lines and serves until interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from dbt_eventbridge.ops.sandbox import (
    DEFAULT_REGION,
    DUMMY_ACCESS_KEY,
    DUMMY_SECRET_KEY,
    MATCH_ALL_PATTERN,
    LocalEventBridge,
)

__all__ = ["DEFAULT_REGION", "DUMMY_ACCESS_KEY", "DUMMY_SECRET_KEY", "MATCH_ALL_PATTERN", "LocalEventBridge"]


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.local_aws", description="Serve a local EventBridge until interrupted.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bus", action="append", default=[], help="create this bus with a queue (repeatable)")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with LocalEventBridge(port=args.port) as local:
        for key, value in local.env().items():
            print(f"export {key}={value}")
        for bus in args.bus:
            print(f"# bus {bus} -> queue {local.create_bus_with_queue(bus)}")
        sys.stdout.flush()
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(_main())
