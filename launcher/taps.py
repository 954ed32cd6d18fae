"""Stiff fingers press twice: a tap too soon after the last one that counted counts for nothing.

Pure (the clock is injectable), so the rule is tested without a screen; the question screen
sends every answer, "Not now", "Skip" and "Send" through one :class:`TapGuard` that the app owns.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["TapGuard", "TAP_PAUSE_S"]

#: A tap this soon after the last one that counted is taken as the same press, twice.
TAP_PAUSE_S = 1.0


class TapGuard:
    """Lets a tap through only when the last one it let through is :data:`TAP_PAUSE_S` ago."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, pause: float = TAP_PAUSE_S) -> None:
        self.clock = clock
        self.pause = pause
        self._last: float | None = None

    def accept(self) -> bool:
        now = self.clock()
        if self._last is not None and now - self._last < self.pause:
            return False
        self._last = now
        return True
