"""Named crash points, for the crash-safety suite.

``DBT_EVENTBRIDGE_CRASH_AT=publish.journaled:3`` makes the process kill itself with
SIGKILL the 3rd time it reaches that point, the way an OOM killer or a cancelled CI
job would. Unset (always, outside the tests) every check is one attribute lookup.
"""

from __future__ import annotations

import os
import signal


class CrashPoints:
    def __init__(self, spec: str | None) -> None:
        self.name: str | None = None
        self.nth = 1
        self.seen = 0
        if spec:
            name, _, nth = spec.partition(":")
            self.name = name.strip()
            self.nth = int(nth) if nth.strip() else 1

    @classmethod
    def from_env(cls) -> CrashPoints:
        return cls(os.environ.get("DBT_EVENTBRIDGE_CRASH_AT"))

    def reach(self, name: str) -> None:
        if self.name is None or name != self.name:
            return
        self.seen += 1
        if self.seen == self.nth:
            os.kill(os.getpid(), signal.SIGKILL)
