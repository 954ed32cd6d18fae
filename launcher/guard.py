"""The launcher's last line of defence: an error that reaches Kivy's loop is logged, never fatal.

Every path from data to the screen is meant to handle its own problems (a broken card file, a
picture that will not load, a questionnaire with a mistake). Should one slip through anyway, Kivy
hands it to its ExceptionManager, which by default stops the app and leaves the resident with a
dead screen until systemd restarts it, on the same data, into the same error. This handler lets
the loop go on and logs one line per kind of error (again at most once a minute), with the
traceback only at debug level (``klick launcher -v``). Stopping on purpose (Ctrl+C, SystemExit)
still stops.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kivy.base import ExceptionHandler, ExceptionManager

__all__ = ["KeepRunning", "install", "REPEAT_S"]

log = logging.getLogger("klick.launcher")

#: The same error is logged again after this many seconds, not on every frame.
REPEAT_S = 60.0
_KEPT = 200


class KeepRunning(ExceptionHandler):
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._last: dict[str, float] = {}
        self.caught = 0

    def handle_exception(self, inst: BaseException) -> int:
        if not isinstance(inst, Exception):  # KeyboardInterrupt, SystemExit: a wanted stop
            return ExceptionManager.RAISE
        self.caught += 1
        key = f"{type(inst).__name__}: {' '.join(str(inst).split())}"[:300]
        now = self.clock()
        last = self._last.get(key)
        if last is None or now - last >= REPEAT_S:
            if len(self._last) >= _KEPT:
                self._last.clear()
            self._last[key] = now
            log.error("Something went wrong; the launcher carries on: %s", key)
            log.debug("The error in full:", exc_info=inst)
        return ExceptionManager.PASS


def install() -> KeepRunning:
    """Add the handler once per process (the app may be built more than once in a test)."""
    for handler in ExceptionManager.handlers:
        if isinstance(handler, KeepRunning):
            return handler
    handler = KeepRunning()
    ExceptionManager.add_handler(handler)
    return handler
