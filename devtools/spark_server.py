"""A local Spark for the tests: Spark's Thrift JDBC/ODBC server (HiveServer2's protocol), from
the PySpark wheel, which ships the server's jar.

``python -m devtools.spark_server --dir DIR [--port N]`` starts the server on 127.0.0.1 with
its warehouse (parquet files) and metastore (embedded Derby) under DIR, prints ``{"port": N}``
once it accepts connections, and stops it when stdin closes or on SIGTERM.

Why a server rather than dbt-spark's ``method: session``: a session is a JVM inside each
process (6 s to start and 6 s for its first statement, measured 2026-12-01), and the embedded
metastore lets one JVM at a time open it, so two processes (dbt and our CLI, or two runs of
the CLI racing for a lock) could not share the warehouse. Over Thrift, every process is a
client of one Spark, as on a real cluster (dbt-spark ``method: thrift``).

What it cannot prove: Databricks (Delta tables, Unity Catalog, its SQL warehouses), a
cluster's own concurrency, and performance at a cluster's scale.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

STARTUP_SECONDS = 180


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def spark_submit() -> str:
    import pyspark

    return str(Path(pyspark.__file__).parent / "bin" / "spark-submit")


def command(directory: Path, port: int) -> list[str]:
    warehouse = directory / "warehouse"
    return [
        spark_submit(), "--class", "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2",
        "--name", "dbt-eventbridge-tests", "--master", "local[2]",
        "--driver-memory", "2g",
        "--conf", f"spark.sql.warehouse.dir={warehouse}",
        "--conf", f"spark.hadoop.javax.jdo.option.ConnectionURL=jdbc:derby:;databaseName={directory / 'metastore_db'};"
                  "create=true",
        "--conf", "spark.sql.shuffle.partitions=4",
        "--conf", "spark.ui.enabled=false",
        "--conf", "spark.driver.bindAddress=127.0.0.1",
        "--conf", "spark.driver.host=127.0.0.1",
        "--conf", f"spark.driver.extraJavaOptions=-Dderby.system.home={directory}",
        "--hiveconf", f"hive.server2.thrift.port={port}",
        "--hiveconf", "hive.server2.thrift.bind.host=127.0.0.1",
        "--hiveconf", "hive.server2.enable.doAs=false",
        "spark-internal",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.spark_server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, required=True, help="the warehouse, the metastore and the log")
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    args = parser.parse_args(argv)
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        # As for PostgreSQL (devtools/postgres.py): installed with apt-get as root (CI), never otherwise.
        from devtools.postgres import apt_install

        apt_install("openjdk-17-jre-headless")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        print("Spark needs Java 17 and it can only be installed automatically as root with apt-get "
              "(Debian: apt-get install openjdk-17-jre-headless).", file=sys.stderr)
        return 1
    directory: Path = args.dir.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    port = args.port or _free_port()
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    env.pop("SPARK_HOME", None)
    log = open(directory / "thriftserver.log", "wb")  # noqa: SIM115 - open as long as the server
    server = subprocess.Popen(command(directory, port), cwd=directory, env=env, stdin=subprocess.DEVNULL,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    deadline = time.monotonic() + STARTUP_SECONDS
    while not _listening(port):
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            tail = (directory / "thriftserver.log").read_text(errors="replace")[-3000:]
            print(f"the Spark Thrift server did not start; its log ends:\n{tail}", file=sys.stderr)
            return 1
        time.sleep(0.5)
    print(json.dumps({"port": port}), flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
