"""The dbt-version lane: our DuckDB integration tests on every dbt-core minor we support.

``python -m devtools.dbt_versions [--only 1.12 ...] [--install-only] [-- PYTEST ARGS]`` makes one
venv per version (by default every version but the one ``constraints.txt`` pins, on which
``make test`` runs the whole suite) under ``build/dbt-<minor>/`` (kept between runs; remade when its pins change),
installs dbt-core and dbt-duckdb at the pins below with the versions' own constraint files
(``constraints/dbt-<minor>.txt``), this checkout (editable) and the test tools, then runs the
tests marked ``dbt_versions`` (tests/conftest.py) with that venv's Python: the sync story,
the CLI and the crash test (SIGKILL at every crash point) on DuckDB. ``make test`` runs it
after the main suite.

dbt-core 1.12 requires ``dbt-core-experimental-parser``, whose source package downloads a
binary from GitHub while it builds: it cannot be installed where only the package registries
are reachable (this machine, CI). dbt-core 1.12 imports it only under ``--use-v2-parser``, so
here 1.12 is installed with ``--no-deps`` and then every one of its requirements but that
one. Users install dbt-core 1.12 the ordinary way.

``--freeze`` rewrites a version's constraint file from what its venv resolved (after
changing a pin below).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build"
CONSTRAINTS = REPO / "constraints"
PIP_CACHE = BUILD / "pip-cache"
TOOLS = ["moto[server]", "cbor2", "pytest", "pytest-xdist"]
UNINSTALLABLE = {"dbt-core-experimental-parser"}  # see the module's doc


@dataclass(frozen=True)
class Version:
    minor: str
    core: str
    duckdb: str
    no_deps: bool = False  # install dbt-core without its requirements, then those but UNINSTALLABLE

    @property
    def venv(self) -> Path:
        return BUILD / f"dbt-{self.minor}"

    @property
    def constraints(self) -> Path:
        return CONSTRAINTS / f"dbt-{self.minor}.txt"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


# The latest patch of each minor on 2026-12-07; dbt-duckdb has no 1.12 (1.11.1 declares dbt-core>=1.8).
VERSIONS = (
    Version("1.9", "1.9.11", "1.9.6"),
    Version("1.10", "1.10.23", "1.10.1"),
    Version("1.11", "1.11.16", "1.11.1"),
    Version("1.12", "1.12.6", "1.11.1", no_deps=True),
)


def _pip(v: Version, *args: str, constrained: bool = True) -> None:
    cmd = [str(v.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
           "--cache-dir", str(PIP_CACHE)]
    if constrained:
        cmd += ["-c", str(v.constraints if v.constraints.exists() else _seed(v))]
    subprocess.run([*cmd, *args], check=True, cwd=REPO)


def _seed(v: Version) -> Path:
    """Before a version has its constraint file: the main pins, less dbt's own packages and
    sqlparse (each dbt minor caps it differently)."""
    seed = v.venv / "seed-constraints.txt"
    lines = (REPO / "constraints.txt").read_text().splitlines()
    seed.write_text("\n".join(line for line in lines if not line.startswith(("dbt-", "sqlparse"))) + "\n")
    return seed


def _requirements(v: Version, dist: str, skip: set[str]) -> list[str]:
    """The requirements of an installed distribution, for this interpreter and without extras,
    less the names in skip (read in the venv: its markers are its own)."""
    code = (
        "import json, sys\n"
        "from importlib.metadata import requires\n"
        "from pip._vendor.packaging.requirements import Requirement\n"
        "out = []\n"
        "for text in requires(sys.argv[1]) or []:\n"
        "    r = Requirement(text)\n"
        "    if r.marker is None or r.marker.evaluate({'extra': ''}):\n"
        "        out.append(text.split(';')[0].strip())\n"
        "print(json.dumps(out))\n"
    )
    out = subprocess.run([str(v.python), "-c", code, dist], check=True, capture_output=True, text=True).stdout
    names = {s.lower() for s in skip}
    return [r for r in json.loads(out) if _name(r) not in names]


def _name(requirement: str) -> str:
    for i, c in enumerate(requirement):
        if not (c.isalnum() or c in "-_."):
            return requirement[:i].lower().replace("_", "-")
    return requirement.lower().replace("_", "-")


def _stamp(v: Version) -> str:
    pins = v.constraints.read_text() if v.constraints.exists() else ""
    with (REPO / "pyproject.toml").open("rb") as f:
        ours = tomllib.load(f)["project"]["dependencies"]
    return json.dumps([v.core, v.duckdb, v.no_deps, TOOLS, pins, ours])


def install(v: Version) -> None:
    stamp = v.venv / ".installed"
    if stamp.exists() and stamp.read_text() == _stamp(v):
        return
    started = time.monotonic()
    if v.venv.exists():
        shutil.rmtree(v.venv)
    subprocess.run([sys.executable, "-m", "venv", str(v.venv)], check=True)
    if v.no_deps:
        _pip(v, "--no-deps", f"dbt-core=={v.core}", f"dbt-duckdb=={v.duckdb}", "-e", str(REPO))
        wanted = set(UNINSTALLABLE) | {"dbt-core", "dbt-duckdb", "dbt-eventbridge"}
        needs = [*_requirements(v, "dbt-core", wanted), *_requirements(v, "dbt-duckdb", wanted),
                 *_requirements(v, "dbt-eventbridge", wanted)]
        _pip(v, *needs, *TOOLS)
    else:
        _pip(v, f"dbt-core=={v.core}", f"dbt-duckdb=={v.duckdb}", "-e", str(REPO), *TOOLS)
    stamp.write_text(_stamp(v))
    print(f"dbt {v.core}: installed in {v.venv.relative_to(REPO)} ({time.monotonic() - started:.0f} s)", flush=True)


def freeze(v: Version) -> None:
    out = subprocess.run([str(v.python), "-m", "pip", "freeze", "--exclude-editable", "--disable-pip-version-check"],
                         check=True, capture_output=True, text=True).stdout
    CONSTRAINTS.mkdir(exist_ok=True)
    lines = sorted(line for line in out.splitlines() if line and not line.startswith("-e "))
    v.constraints.write_text(f"# dbt {v.core} lane (devtools/dbt_versions.py --freeze): what its venv resolved\n"
                             + "\n".join(lines) + "\n")
    (v.venv / ".installed").write_text(_stamp(v))  # the venv is what the new file pins
    print(f"wrote {v.constraints.relative_to(REPO)}")


def test(v: Version, pytest_args: list[str]) -> int:
    version = subprocess.run([str(v.python), "-c", "from dbt.version import __version__; print(__version__)"],
                             check=True, capture_output=True, text=True).stdout.strip()
    if version != v.core:
        raise SystemExit(f"{v.venv} has dbt-core {version}, not {v.core}: remove it and run again")
    started = time.monotonic()
    print(f"== dbt-core {version}, dbt-duckdb {v.duckdb}", flush=True)
    env = {**os.environ, "EB_DBT_VERSION_LANE": v.minor}
    rc = subprocess.run([str(v.python), "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider", "-n", "2",
                         "--dist", "load", "-m", "dbt_versions", *pytest_args, "tests/integration"],
                        cwd=REPO, env=env).returncode
    print(f"== dbt-core {version}: rc {rc} in {time.monotonic() - started:.0f} s", flush=True)
    return rc


def _pinned_core() -> str:
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.startswith("dbt-core=="):
            return line.split("==", 1)[1].strip()
    raise SystemExit("constraints.txt pins no dbt-core")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.dbt_versions", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=[v.minor for v in VERSIONS], help="a minor (repeatable)")
    parser.add_argument("--install-only", action="store_true")
    parser.add_argument("--freeze", action="store_true", help="write constraints/dbt-<minor>.txt from the venv")
    parser.add_argument("pytest_args", nargs="*", help="after --: more pytest arguments")
    args = parser.parse_args(argv)
    pinned = _pinned_core()
    chosen = [v for v in VERSIONS if (v.minor in args.only if args.only else v.core != pinned)]
    if not args.only:
        print(f"dbt-core {pinned}, pinned in constraints.txt, runs the whole suite in .venv: the lane "
              f"runs on {', '.join(v.core for v in chosen)}", flush=True)
    failed = []
    for v in chosen:
        install(v)
        if args.freeze:
            freeze(v)
        if not (args.install_only or args.freeze) and test(v, args.pytest_args) != 0:
            failed.append(v.core)
    if failed:
        print(f"the dbt-version lane failed on dbt-core {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
