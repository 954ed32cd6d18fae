"""The launcher's links to the rest of Klick: usage log, questionnaire, card registry.

Each is opened so that a problem with it (a corrupt database, a questionnaire with a mistake,
a card file a carer broke) is logged for the installer and the screen keeps working: without
a log, without questions, or with the cards it last read successfully.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

__all__ = ["open_usage", "open_feedback", "RegistryWatch", "recent_unknown"]

log = logging.getLogger("klick.launcher")


def open_usage(cfg: Any) -> Any | None:
    from klick.usage import UsageDbError, UsageLog

    try:
        return UsageLog.from_config(cfg)
    except UsageDbError as exc:
        log.error("Usage is not recorded: %s", exc)
        return None


def open_feedback(cfg: Any, usage: Any | None) -> Any | None:
    if usage is None:
        return None
    try:
        from klick.feedback import Feedback
    except ImportError:
        return None
    try:
        return Feedback.from_config(cfg, usage)
    except Exception as exc:  # QuestionnaireError and I/O: no questions today, the screen still works
        log.error("No questions are asked: %s", exc)
        return None


def recent_unknown(usage: Any | None, limit: int = 5) -> list[tuple[str, float]]:
    """(uid, when) of the newest unknown cards in the usage log, newest first, each UID once.

    So the carer screen also lists cards put in before a restart. Without consent the log keeps
    no card events, and this is empty; the session's own memory still holds this run's cards.
    """
    if usage is None:
        return []
    from klick.usage import from_iso

    try:
        with usage.lock:
            rows = usage.conn.execute(
                "SELECT uid, at FROM events WHERE kind = 'unknown_card' AND uid IS NOT NULL ORDER BY id DESC LIMIT 200"
            ).fetchall()
    except Exception as exc:  # sqlite3.Error and a closed log: the list is a help, not a must
        log.warning("Unknown cards could not be read from the usage log: %s", exc)
        return []
    seen: dict[str, float] = {}
    for uid, at in rows:
        if uid not in seen:
            try:
                seen[uid] = from_iso(at)
            except ValueError:
                continue
        if len(seen) >= limit:
            break
    return list(seen.items())


class RegistryWatch:
    """The card file, re-read when a carer saves it; a broken save keeps the last good cards."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        from cards.registry import Registry

        self.registry = Registry((), self.path)
        self.problem: str | None = None
        self.check()

    def _current_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def check(self) -> bool:
        """Re-read the file if it changed; True when the cards changed."""
        from cards.registry import RegistryError, load_registry

        stamp = self._current_stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            self.registry = load_registry(self.path, missing_ok=True)
            self.problem = None
            return True
        except RegistryError as exc:
            self.problem = "; ".join(str(p) for p in exc.problems[:3])
            log.error("The card file has problems; the launcher keeps the cards it knew: %s", self.problem)
        except OSError as exc:
            self.problem = str(exc)
            log.error("The card file cannot be read; the launcher keeps the cards it knew: %s", exc)
        return False

    def get(self, uid: str) -> Any:
        return self.registry.get(uid)
