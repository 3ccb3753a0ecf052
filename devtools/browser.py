"""A headless Chromium for tests that look at rendered pages (the HTML run report).

Like ``devtools.postgres``, CI and fresh machines may have no browser, so this
module finds one, installs Debian's ``chromium`` with apt-get as a last resort
(root only), and takes screenshots with it.

Command line::

    python -m devtools.browser find                      # prints the path, installs if needed
    python -m devtools.browser shot PAGE.html OUT.png    # screenshot at 1200x1600
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from devtools.postgres import _is_root, apt_install

CANDIDATES = ("chromium", "chromium-browser", "chromium-headless-shell", "google-chrome")
APT_PACKAGE = "chromium"
SCREENSHOT_TIMEOUT = 60.0


def find_chromium() -> str | None:
    """Path of a Chromium-like browser on PATH or in /usr/bin, or None."""
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    # PATH may be trimmed (sudo, CI runners), while apt always installs to /usr/bin.
    for name in CANDIDATES:
        path = Path("/usr/bin") / name
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


def ensure_chromium(install: bool = True) -> str:
    """A browser path, installing Debian's chromium when missing and allowed (root + apt-get)."""
    path = find_chromium()
    if path is None and install and _is_root() and shutil.which("apt-get"):
        apt_install(APT_PACKAGE)
        path = find_chromium()
    if path is None:
        raise RuntimeError(
            f"No headless browser found (looked for {', '.join(CANDIDATES)} on PATH and in /usr/bin), "
            "and it can only be installed automatically as root with apt-get. Install one "
            "(Debian: `apt-get install --no-install-recommends chromium`)."
        )
    return path


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    # Chromium forks zygote, GPU and renderer processes; killing only the parent
    # would leave them running after a timeout.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def screenshot(html_path: str | Path, png_path: str | Path, width: int = 1200, height: int = 1600,
               *, timeout: float = SCREENSHOT_TIMEOUT, browser: str | None = None) -> None:
    """Render ``html_path`` in headless Chromium and save a ``width`` x ``height`` PNG."""
    html = Path(html_path).resolve()
    png = Path(png_path).resolve()
    if not html.is_file():
        raise FileNotFoundError(html)
    exe = browser or ensure_chromium()
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)  # so a stale file can't pass for a fresh screenshot
    with tempfile.TemporaryDirectory(prefix="dbt-eventbridge-chromium-") as profile:
        cmd = [
            exe,
            "--headless",
            "--disable-gpu",
            "--hide-scrollbars",
            # Containers often have a tiny /dev/shm, where Chromium's renderer crashes.
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--force-device-scale-factor=1",
            # Without it, under load, the screenshot is sometimes taken before the last
            # resize is painted, leaving a white band at the bottom (seen on Chromium 156).
            "--run-all-compositor-stages-before-draw",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={png}",
        ]
        if _is_root():
            cmd.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
        cmd.append(html.as_uri())
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True, env={**os.environ, "HOME": profile})
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise RuntimeError(f"{shlex.join(cmd)} did not finish within {timeout:.0f}s") from None
        if proc.returncode != 0 or not png.is_file() or png.stat().st_size == 0:
            raise RuntimeError(
                f"{shlex.join(cmd)} failed (exit code {proc.returncode}, screenshot "
                f"{'written' if png.is_file() else 'missing'}):\n"
                f"{err.decode(errors='replace')[-4000:]}{out.decode(errors='replace')[-1000:]}"
            )


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.browser", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("find")
    shot = sub.add_parser("shot")
    shot.add_argument("html", type=Path)
    shot.add_argument("png", type=Path)
    shot.add_argument("--width", type=int, default=1200)
    shot.add_argument("--height", type=int, default=1600)
    args = parser.parse_args(argv)
    if args.action == "find":
        print(ensure_chromium())
    else:
        screenshot(args.html, args.png, args.width, args.height)
        print(args.png)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
