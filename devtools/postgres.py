"""A throwaway PostgreSQL server for tests, the demo and the Makefile.

CI and fresh machines may have no PostgreSQL at all, and the project must
install what it needs itself, so this module finds the server binaries, installs
them with apt-get as a last resort (root only), and runs a private cluster on a
free 127.0.0.1 port. If the standard ``PG*`` variables point at an existing
server (``PGHOST`` set) that server is used instead and nothing is started.

Command line (for Makefiles)::

    python -m devtools.postgres run  [--base-dir DIR] -- CMD ...   # start, run CMD with PG* set, stop
    python -m devtools.postgres start [--base-dir DIR]             # prints `export PG...` lines
    python -m devtools.postgres stop  [--base-dir DIR]
"""

from __future__ import annotations

import argparse
import atexit
import getpass
import glob
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

DEFAULT_DBNAME = "dbt_eventbridge_test"
SUPERUSER = "postgres"
# Used only when running as root and the distro's `postgres` account is missing.
FALLBACK_OS_USER = "dbt_eventbridge_pg"
STATE_FILE = "postgres.json"
# Unix socket paths are limited to ~107 bytes; stay well below.
_MAX_SOCKET_PATH = 100
_REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres", "psql")


@dataclass(frozen=True)
class PgParams:
    """How to reach a server; the same shape whether we started it or not."""

    host: str
    port: int
    user: str
    password: str | None
    dbname: str

    def env(self) -> dict[str, str]:
        # PGPASSWORD is always present (empty means "none" to libpq) so that
        # dbt profiles using env_var('PGPASSWORD') resolve without a default.
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password or "",
            "PGDATABASE": self.dbname,
        }

    def connect_kwargs(self) -> dict[str, str | int]:
        """Keyword arguments for ``psycopg2.connect``."""
        kwargs: dict[str, str | int] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "dbname": self.dbname,
        }
        if self.password:
            kwargs["password"] = self.password
        return kwargs


def from_environment(environ: dict[str, str] | None = None) -> PgParams | None:
    """Params of an external server named by ``PG*`` vars, or None if PGHOST is unset.

    Missing PGUSER/PGDATABASE fall back to libpq's own defaults (OS user name).
    """
    env = os.environ if environ is None else environ
    host = env.get("PGHOST", "").strip()
    if not host:
        return None
    user = env.get("PGUSER") or getpass.getuser()
    return PgParams(
        host=host,
        port=int(env.get("PGPORT") or 5432),
        user=user,
        password=env.get("PGPASSWORD") or None,
        dbname=env.get("PGDATABASE") or user,
    )


# --------------------------------------------------------------------------- binaries


def _has_server(bindir: Path) -> bool:
    return all((bindir / name).is_file() for name in _REQUIRED_BINARIES)


def find_bindir() -> Path | None:
    """Directory holding initdb/pg_ctl/postgres/psql, newest version first."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        # On Debian libpq-dev's pg_config names the server bindir even when the
        # server package is absent, hence the _has_server check below.
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(Path(out.stdout.strip()))

    def version_key(path: str) -> tuple[int, ...]:
        parts = Path(path).parent.name.split(".")
        return tuple(int(p) for p in parts if p.isdigit())

    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version_key, reverse=True):
        candidates.append(Path(d))
    initdb = shutil.which("initdb")
    if initdb:
        # /usr/local/bin/initdb is often a symlink into the real bindir.
        candidates.append(Path(initdb).resolve().parent)
        candidates.append(Path(initdb).parent)
    for c in candidates:
        if _has_server(c):
            return c
    return None


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _apt_install_postgres() -> None:
    """Install the distro's server; note Debian's package may also start its own 5432 cluster."""
    apt_install("postgresql")


def apt_install(*packages: str) -> None:
    """apt-get install, non-interactive, as root only (as on CI); nothing otherwise."""
    apt = shutil.which("apt-get")
    if not (apt and _is_root()):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in ([apt, "update"], [apt, "install", "-y", "--no-install-recommends", *packages]):
        res = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd)} failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")


def find_or_install_bindir(install: bool = True) -> Path:
    bindir = find_bindir()
    if bindir is None and install and _is_root() and shutil.which("apt-get"):
        _apt_install_postgres()
        bindir = find_bindir()
    if bindir is None:
        raise RuntimeError(
            "No PostgreSQL server binaries (initdb, pg_ctl, postgres, psql) found via "
            "pg_config, /usr/lib/postgresql/*/bin or PATH. Install them "
            "(Debian: `apt-get install postgresql`), or point the tests at an existing "
            "server by setting PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE."
        )
    return bindir


# --------------------------------------------------------------------------- helpers


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS considers free right now (racy, so callers retry on bind errors)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _clean_env() -> dict[str, str]:
    # Inherited PGDATA/PGPORT/... would silently redirect initdb, pg_ctl and psql.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _ensure_os_user() -> str:
    """The unprivileged account to run the server as when we are root."""
    for name in (SUPERUSER, FALLBACK_OS_USER):
        if subprocess.run(["id", "-u", name], capture_output=True).returncode == 0:
            return name
    useradd = shutil.which("useradd")
    if not useradd:
        raise RuntimeError("Running as root without a `postgres` user and without useradd to create one.")
    subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", FALLBACK_OS_USER],
        check=True, capture_output=True,
    )
    return FALLBACK_OS_USER


def _as_user(cmd: Sequence[str], os_user: str | None) -> list[str]:
    if os_user is None:
        return list(cmd)
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", os_user, "--", *cmd]
    su = shutil.which("su")
    if su:
        return [su, "-s", "/bin/sh", os_user, "-c", shlex.join(cmd)]
    raise RuntimeError("Running as root needs runuser or su to drop privileges for PostgreSQL.")


def _chown_tree(path: Path, os_user: str) -> None:
    shutil.chown(path, os_user, None)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            shutil.chown(os.path.join(root, name), os_user, None)


def _usable_by(path: Path, os_user: str | None) -> bool:
    if os_user is None:
        return os.access(path, os.W_OK | os.X_OK)
    # Ancestors such as /tmp/pytest-of-root (mode 0700) block other users.
    cmd = _as_user(["test", "-w", str(path), "-a", "-x", str(path)], os_user)
    return subprocess.run(cmd, cwd="/", capture_output=True).returncode == 0


# --------------------------------------------------------------------------- server


@dataclass
class PostgresServer:
    """A private cluster started by us; stop() it (or use ``with``) when done."""

    host: str
    port: int
    user: str
    password: str | None
    dbname: str
    bindir: Path
    runtime_dir: Path
    os_user: str | None = None
    # True when runtime_dir is a temp dir we made outside base_dir; removed on stop.
    owns_runtime_dir: bool = False
    base_dir: Path | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.runtime_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.runtime_dir / "socket"

    @property
    def log_file(self) -> Path:
        return self.runtime_dir / "postgres.log"

    @property
    def params(self) -> PgParams:
        return PgParams(self.host, self.port, self.user, self.password, self.dbname)

    def env(self) -> dict[str, str]:
        return self.params.env()

    # -- lifecycle

    @classmethod
    def start(cls, base_dir: Path, *, dbname: str = DEFAULT_DBNAME, install: bool = True) -> PostgresServer:
        """Start (or re-attach to a running) cluster kept under ``base_dir``."""
        base_dir = Path(base_dir).resolve()
        base_dir.mkdir(parents=True, exist_ok=True)
        running = cls.attach(base_dir)
        if running is not None:
            running._create_database(dbname)
            running.dbname = dbname
            return running

        bindir = find_or_install_bindir(install=install)
        os_user = _ensure_os_user() if _is_root() else None
        runtime_dir, owns = cls._pick_runtime_dir(base_dir, os_user)
        server = cls(
            host="127.0.0.1", port=0, user=SUPERUSER, password=None, dbname=dbname,
            bindir=bindir, runtime_dir=runtime_dir, os_user=os_user,
            owns_runtime_dir=owns, base_dir=base_dir,
        )
        server._initdb()
        server._start_on_free_port()
        server._write_state()
        try:
            server._create_database(dbname)
        except Exception:
            server.stop()
            raise
        return server

    @staticmethod
    def _pick_runtime_dir(base_dir: Path, os_user: str | None) -> tuple[Path, bool]:
        candidate = base_dir / "pg"
        candidate.mkdir(exist_ok=True)
        if os_user is not None:
            _chown_tree(candidate, os_user)
        socket_path = candidate / "socket" / ".s.PGSQL.65535"
        if len(str(socket_path)) <= _MAX_SOCKET_PATH and _usable_by(candidate, os_user):
            return candidate, False
        # Fallback: a short, world-traversable path under the system temp dir.
        shutil.rmtree(candidate, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix="dbt-eb-pg-"))
        if os_user is not None:
            _chown_tree(tmp, os_user)
        return tmp, True

    def _run(self, cmd: Sequence[str], *, as_server_user: bool = True, check: bool = True) -> subprocess.CompletedProcess[str]:
        full = _as_user(cmd, self.os_user) if as_server_user else list(cmd)
        # cwd matters: pg_ctl fails if the dropped-privilege user cannot read the cwd (e.g. /root).
        res = subprocess.run(
            full, cwd=self.runtime_dir, env=_clean_env(), stdin=subprocess.DEVNULL,
            capture_output=True, text=True,
        )
        if check and res.returncode != 0:
            raise RuntimeError(
                f"{shlex.join(full)} exited {res.returncode}:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}{self._log_tail()}"
            )
        return res

    def _log_tail(self) -> str:
        try:
            return "\n--- postgres log ---\n" + self.log_file.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def _initdb(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.socket_dir.mkdir(exist_ok=True)
        if self.os_user:
            shutil.chown(self.socket_dir, self.os_user, None)
        self._run([
            str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
            "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
        ])
        with open(self.data_dir / "postgresql.conf", "a") as f:
            f.write("\ninclude_if_exists = 'dbt_eventbridge.conf'\n")

    def _write_conf(self) -> None:
        # Durability is pointless for a throwaway test cluster; speed is not.
        conf = self.data_dir / "dbt_eventbridge.conf"
        conf.write_text(
            "listen_addresses = '127.0.0.1'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = '{self.socket_dir}'\n"
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
        )
        if self.os_user:
            shutil.chown(conf, self.os_user, None)

    def _start_on_free_port(self, attempts: int = 3) -> None:
        for attempt in range(attempts):
            self.port = free_port(self.host)
            self._write_conf()
            res = self._run([
                str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
                "-w", "-t", "60", "start",
            ], check=False)
            if res.returncode == 0:
                return
            log = self._log_tail()
            if ("could not bind" in log or "already in use" in log) and attempt + 1 < attempts:
                continue
            raise RuntimeError(f"pg_ctl start failed:\n{res.stdout}\n{res.stderr}{log}")

    def _psql(self, sql: str, dbname: str = "postgres") -> str:
        res = self._run([
            str(self.bindir / "psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
            "-h", self.host, "-p", str(self.port), "-U", self.user, "-d", dbname, "-c", sql,
        ], as_server_user=False)
        return res.stdout.strip()

    def _create_database(self, dbname: str) -> None:
        quoted = dbname.replace("'", "''")
        if self._psql(f"select 1 from pg_database where datname = '{quoted}'") != "1":
            ident = dbname.replace('"', '""')
            self._psql(f'create database "{ident}"')

    def is_running(self) -> bool:
        if not self.data_dir.exists():
            return False
        res = self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "status"], check=False)
        return res.returncode == 0

    def stop(self) -> None:
        """Fast shutdown; idempotent. Temp runtime dirs outside base_dir are removed."""
        if self._stopped:
            return
        self._stopped = True
        if self.data_dir.exists():
            self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"], check=False)
        if self.base_dir is not None:
            (self.base_dir / STATE_FILE).unlink(missing_ok=True)
        if self.owns_runtime_dir:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- state, so a Makefile can `start` and `stop` in separate processes

    def _write_state(self) -> None:
        if self.base_dir is None:
            return
        state = {
            "host": self.host, "port": self.port, "user": self.user, "password": self.password,
            "dbname": self.dbname, "bindir": str(self.bindir), "runtime_dir": str(self.runtime_dir),
            "os_user": self.os_user, "owns_runtime_dir": self.owns_runtime_dir,
        }
        (self.base_dir / STATE_FILE).write_text(json.dumps(state, indent=2))

    @classmethod
    def attach(cls, base_dir: Path) -> PostgresServer | None:
        """The server recorded in ``base_dir`` if it is still running, else None."""
        base_dir = Path(base_dir).resolve()
        try:
            state = json.loads((base_dir / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None
        server = cls(
            host=state["host"], port=int(state["port"]), user=state["user"],
            password=state["password"], dbname=state["dbname"], bindir=Path(state["bindir"]),
            runtime_dir=Path(state["runtime_dir"]), os_user=state["os_user"],
            owns_runtime_dir=bool(state["owns_runtime_dir"]), base_dir=base_dir,
        )
        return server if server.is_running() else None


# --------------------------------------------------------------------------- entry points


def _check_reachable(params: PgParams, timeout: float = 5.0) -> None:
    host = params.host.split(",")[0]
    if host.startswith("/"):
        sock = Path(host) / f".s.PGSQL.{params.port}"
        if not sock.exists():
            raise RuntimeError(f"PGHOST={params.host} is set but there is no socket at {sock}.")
        return
    try:
        socket.create_connection((host, params.port), timeout=timeout).close()
    except OSError as e:
        raise RuntimeError(
            f"PGHOST={params.host} PGPORT={params.port} is set but nothing accepts connections there ({e}). "
            "Start that server, or unset PGHOST to let the tests start their own."
        ) from e


def postgres_for_tests(base_dir: Path, *, dbname: str = DEFAULT_DBNAME) -> tuple[PgParams, Callable[[], None]]:
    """(params, stop) for tests: the PGHOST server if set, else a private one.

    ``stop`` is a no-op for an external server. A private server is also
    stopped at interpreter exit in case the caller never gets to call ``stop``.
    """
    external = from_environment()
    if external is not None:
        _check_reachable(external)
        return external, lambda: None
    try:
        server = PostgresServer.start(Path(base_dir), dbname=dbname)
    except RuntimeError as e:
        raise RuntimeError(
            f"Could not start a local PostgreSQL for the tests: {e}\n"
            "Either install the server (Debian: `apt-get install postgresql`) or set "
            "PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE to an existing server."
        ) from e
    atexit.register(server.stop)
    return server.params, server.stop


def _main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Split at `--` ourselves: argparse.REMAINDER would swallow options after the action.
    cmd: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, cmd = argv[:i], argv[i + 1:]
    parser = argparse.ArgumentParser(prog="python -m devtools.postgres", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop", "run"])
    parser.add_argument("--base-dir", type=Path, default=Path(".pgtest"))
    parser.add_argument("--dbname", default=DEFAULT_DBNAME)
    args = parser.parse_args(argv)

    if args.action == "start":
        params = from_environment() or PostgresServer.start(args.base_dir, dbname=args.dbname).params
        for k, v in params.env().items():
            print(f"export {k}={shlex.quote(v)}")
        return 0
    if args.action == "stop":
        server = PostgresServer.attach(args.base_dir)
        if server is not None:
            server.stop()
        return 0
    if not cmd:
        parser.error("run needs a command after --")
    params, stop = postgres_for_tests(args.base_dir, dbname=args.dbname)
    try:
        return subprocess.run(cmd, env={**os.environ, **params.env()}).returncode
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(_main())
