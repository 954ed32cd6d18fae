"""The questionnaire's database calls, made one after another on a thread of their own.

Each answer is a transaction with ``synchronous=FULL`` (an fsync on the SD card) that may also wait
for the usage log's writer or another program's lock: none of that may hold up the screen. One
thread keeps the calls in the order the resident made them (shown before answered), so nothing is
written twice or out of turn; a call that meets a held lock is made again after a pause, so an
answer given meanwhile is stored once the lock is let go. No Kivy here: the result is handed back
through ``hand_back``, which the launcher points at its screen's thread.
"""

from __future__ import annotations

import functools
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from klick.usage_file import is_busy

__all__ = ["FeedbackThread", "RETRY_PAUSE_S", "GIVE_UP_S"]

log = logging.getLogger("klick.launcher")

#: The pause before a call that met another program's lock on usage.db is made again.
RETRY_PAUSE_S = 0.5
#: A call whose lock is held this long is given up (logged): a stuck program must not keep the
#: resident's later answers waiting for ever.
GIVE_UP_S = 600.0


class FeedbackThread:
    def __init__(self, hand_back: Callable[[Callable[[], None]], None]) -> None:
        #: Called from this thread with a function to run on the screen's thread.
        self._hand_back = hand_back
        self._jobs: queue.SimpleQueue[tuple[Any, str, tuple, Callable[[Any], None] | None]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="klick-questions", daemon=True)
        self._thread.start()

    def call(self, feedback: Any, name: str, *args: Any, then: Callable[[Any], None] | None = None) -> None:
        """``feedback.name(*args)`` after the calls before it; its result (None after an error)
        goes to ``then`` on the screen's thread. Never waits."""
        self._jobs.put((feedback, name, args, then))

    def _run(self) -> None:
        while True:
            feedback, name, args, then = self._jobs.get()
            result = self._make(feedback, name, args)
            if then is not None:
                self._hand_back(functools.partial(then, result))

    @staticmethod
    def _make(feedback: Any, name: str, args: tuple) -> Any:
        began = time.monotonic()
        while True:
            try:
                return getattr(feedback, name)(*args)
            except sqlite3.Error as exc:
                if not is_busy(exc) or time.monotonic() - began >= GIVE_UP_S:
                    log.warning("questionnaire %s not stored: %s", name, exc)
                    return None
            except Exception as exc:  # a closed or vanished prompt: the screen goes on
                log.warning("questionnaire %s failed: %s", name, exc)
                return None
            time.sleep(RETRY_PAUSE_S)
