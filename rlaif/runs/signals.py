"""Stopping gracefully on SIGINT (Ctrl-C), SIGTERM or SIGHUP: the first signal only asks the loop
to stop once the work in flight is done and kept (a training step, saved as a checkpoint; a
judging job's batch of answers, written); a second one stops at once (`KeyboardInterrupt`).
PPO's trainer, DPO's callbacks and the judge workbench share this. Signals reach only the main
thread, so elsewhere (a notebook's helper thread) nothing changes.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class TrainingStopped(KeyboardInterrupt):
    """Training stopped on a signal after a finished step, which was saved."""


class GracefulStop:
    """While active, the first SIGINT/SIGTERM/SIGHUP sets `requested` (the signal's name) and says
    `doing`; a second one raises KeyboardInterrupt."""

    def __init__(self, doing: str = "stopping after this step") -> None:
        self.requested: str | None = None
        self.doing = doing
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.requested is not None:
            raise KeyboardInterrupt(f"{self.requested}, then {name}: stopped at once")
        self.requested = name
        _say(f"\n{name}: {self.doing} (send it again to stop at once)\n")

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def _say(text: str) -> None:
    """Write to stderr without Python's buffered writer (a handler may run mid-write)."""
    try:
        os.write(sys.stderr.fileno(), text.encode())
    except (OSError, ValueError, AttributeError):  # stderr replaced by one without a descriptor
        pass
