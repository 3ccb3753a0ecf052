"""Session-wide real parts: a local EventBridge (moto) and a PostgreSQL server."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from devtools.local_aws import LocalEventBridge  # noqa: E402
from devtools.postgres import PgParams, postgres_for_tests  # noqa: E402

BUSES = ("crm-events", "default")


@pytest.fixture(scope="session")
def local_aws() -> Iterator[LocalEventBridge]:
    with LocalEventBridge() as local:
        local.queues = {bus: local.create_bus_with_queue(bus) for bus in BUSES}  # type: ignore[attr-defined]
        yield local


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgParams]:
    try:
        params, stop = postgres_for_tests(tmp_path_factory.mktemp("pg"))
    except RuntimeError as e:
        if os.environ.get("CI"):
            raise  # on CI the PostgreSQL tests must run, never skip
        pytest.skip(f"no PostgreSQL server: {e}")
    yield params
    stop()
