"""The launcher's links to the rest of Klick: usage log, questionnaire, card registry.

Each is opened so that a problem with it (a corrupt database, a questionnaire with a mistake,
a card file a carer broke) is logged for the installer and the screen keeps working: without
a log, without questions, or with the cards it last read successfully.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from klick.yamlfile import MAX_FILE_BYTES as MAX_CARD_FILE_BYTES

__all__ = [
    "open_usage",
    "open_feedback",
    "QuestionnaireWatch",
    "RegistryWatch",
    "recent_unknown",
    "last_good_path",
]

log = logging.getLogger("klick.launcher")


def open_usage(cfg: Any) -> Any | None:
    from klick.usage import UsageDbError, UsageLog

    try:
        return UsageLog.from_config(cfg)
    except UsageDbError as exc:
        log.error("Usage is not recorded: %s", exc)
        return None


def open_feedback(usage: Any | None, questionnaire: QuestionnaireWatch) -> Any | None:
    """The questionnaire engine on the usage log with the watch's current questions; None (no
    questions, the screen still works) without a log or a good questionnaire."""
    if usage is None or questionnaire.current is None:
        return None
    from klick.feedback import Feedback

    return Feedback(usage, questionnaire.current, raise_busy=True)  # the launcher retries (launcher.feedback_thread)


class QuestionnaireWatch:
    """``questionnaire.yaml``, re-read when it changes: `klick fleet` pushes a new one (swapped
    in whole), pilot staff edit it. A broken one keeps the last good questions, with one plain log
    line per change of the file; a launcher that starts on a broken one asks nothing.

    :meth:`changed` is a cheap stat for the screen's thread; :meth:`check` reads and checks the
    file (beside the screen) and never raises.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        #: The questions in use (a :class:`klick.questionnaire.Questionnaire`), or None.
        self.current: Any = None
        #: Why the file on disk is not the one in use, in plain words, or None.
        self.problem: str | None = None
        self._stamp: object = _NEVER
        self._lock = threading.Lock()
        self.check()

    def changed(self) -> bool:
        return file_stamp(self.path) != self._stamp

    def check(self) -> bool:
        """Re-read the file if it changed; True when the questions in use changed."""
        from klick.questionnaire import load_questionnaire

        with self._lock:
            stamp = file_stamp(self.path)
            if stamp == self._stamp:
                return False
            self._stamp = stamp
            if stamp is None:
                if self.current is not None:
                    log.error("The questionnaire %s is gone; the launcher keeps asking the questions it had.", self.path)
                else:
                    log.info("No questions are asked: there is no questionnaire at %s.", self.path)
                return False
            try:
                questionnaire = load_questionnaire(self.path)
            except Exception as exc:  # QuestionnaireError, I/O, anything a file may cause: keep what works
                self.problem = _one_line(str(exc))
                if self.current is not None:
                    log.error("The questionnaire has a mistake; the launcher keeps the questions it had: %s", self.problem)
                else:
                    log.error("No questions are asked: %s", self.problem)
                return False
            changed = questionnaire != self.current
            self.current, self.problem = questionnaire, None
            if changed and stamp is not None and self._seen_before:
                log.info("The questionnaire %s was read again: %d questions.", self.path, len(questionnaire.questions))
            self._seen_before = True
            return changed

    _seen_before = False


def recent_unknown(usage: Any | None, limit: int = 5) -> list[tuple[str, float]]:
    """(uid, when) of the newest unknown cards in the usage log, newest first, each UID once.

    So the carer screen also lists cards put in before a restart. Without consent the log keeps
    no card events, and this is empty; the session's own memory still holds this run's cards.
    """
    if usage is None or not usage.enrolled:
        return []  # without consent (or after a withdrawal not yet purged) no card is remembered
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


#: What the launcher has after reading the card file: ``ok`` (the file is good), ``kept`` (the
#: file has a mistake; the last good cards are in use) or ``unreadable`` (it has a mistake and no
#: good cards were ever seen: the screen says the cards cannot be read).


_NEVER = object()


def file_stamp(path: Path) -> tuple[int, int, int] | None:
    """What tells a replaced or edited file from the one read before (None: no file); a cheap stat."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def last_good_path(path: Path) -> Path:
    """Where the last card file the launcher could use is kept: ``cards.yaml.last-good``."""
    return path.with_name(path.name + ".last-good")


class RegistryWatch:
    """The card file, re-read when a carer saves it; a broken save keeps the last good cards.

    Whatever the file holds, and whatever the validator raises on it, :meth:`check` never
    raises. Every file the launcher could use is copied beside it (``cards.yaml.last-good``), so
    a launcher that starts on a broken file still has the cards it last knew; pictures and album
    folders in that copy are found from the card file's own folder, as in the original. A
    problem is logged once per change of the file, in one line.
    """

    def __init__(self, path: Path) -> None:
        from cards.registry import Registry

        self.path = Path(path)
        self.last_good = last_good_path(self.path)
        self.registry = Registry((), self.path)
        #: The plain-words reason the file is not in use, or None.
        self.problem: str | None = None
        self.state = "ok"
        #: Whether this run has ever had a good card set (from the file or the last-good copy).
        self.has_good = False
        self._stamp: object = _NEVER
        self._good_bytes: bytes | None = None
        self._lock = threading.Lock()
        self.check()

    def changed(self) -> bool:
        """The file looks different from when it was last read (a cheap stat, for the UI thread)."""
        return file_stamp(self.path) != self._stamp

    def check(self) -> bool:
        """Re-read the file if it changed; True when the cards or the state changed."""
        with self._lock:
            stamp = file_stamp(self.path)
            if stamp == self._stamp:
                return False
            self._stamp = stamp
            before = (self.registry, self.state, self.problem)
            try:
                self._read(stamp is None)
            except Exception as exc:  # the last line: nothing in a card file may end the launcher
                self._broken(f"{type(exc).__name__}: {exc}")
            return (self.registry, self.state, self.problem) != before

    def _read(self, missing: bool) -> None:
        from cards.registry import Registry

        if missing and not self.path.exists():
            # No card file yet (a new device): no cards, and nothing wrong.
            self._use(Registry((), self.path), None)
            return
        try:
            data = _read_limited(self.path)
        except OSError as exc:
            self._broken(f"it cannot be read ({exc.strerror or exc})")
            return
        registry, problem = self._parse(data)
        if registry is None:
            self._broken(problem)
        else:
            self._use(registry, data)

    def _parse(self, data: bytes | None) -> tuple[Any, str]:
        """(registry, "") or (None, why); the base folder is always the card file's own."""
        from cards.registry import Registry, parse_registry_text
        from klick.problems import errors_in

        if data is None:
            return None, f"it is larger than {MAX_CARD_FILE_BYTES // 1000} kB"
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            return None, f"line {line} has a character that is not UTF-8 text"
        try:
            registry, problems = parse_registry_text(text, self.path.resolve().parent, str(self.path))
        except Exception as exc:  # a validator that raises in place of a message: still a mistake
            return None, f"it could not be checked ({type(exc).__name__}: {exc})"
        if registry is None:
            errors = errors_in(problems) or problems
            shown = "; ".join(str(p) for p in errors[:3])
            more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
            return None, (shown or "it has a mistake") + more
        return Registry(registry.cards, self.path, registry.warnings), ""

    def _use(self, registry: Any, data: bytes | None) -> None:
        self.registry, self.problem, self.state, self.has_good = registry, None, "ok", True
        if data is not None:
            self._keep_copy(data)

    def _keep_copy(self, data: bytes) -> None:
        """Write the last-good copy, only when it differs (an SD card wears with every write)."""
        if self._good_bytes is None:
            self._good_bytes = _read_limited_quietly(self.last_good)
        if data == self._good_bytes:
            return
        from klick.atomic import write_atomic

        try:
            # Readable by whoever may read the card file itself, and nobody else.
            write_atomic(self.last_good, data, mode=self.path.stat().st_mode & 0o666)
            self._good_bytes = data
        except OSError as exc:
            log.warning("The last good card file could not be kept at %s: %s", self.last_good, exc.strerror or exc)

    def _broken(self, why: str) -> None:
        self.problem = why
        if not len(self.registry):  # nothing to keep (a start, or a card file that was missing)
            copy = _read_limited_quietly(self.last_good)
            if copy is not None:
                registry, copy_problem = self._parse(copy)
                if registry is not None:
                    self.registry, self.has_good, self._good_bytes = registry, True, copy
                else:
                    log.warning("The last good card file %s cannot be used either: %s", self.last_good, _one_line(copy_problem))
        if self.has_good and len(self.registry):
            self.state = "kept"
            log.error(
                "The card file has a mistake; the launcher keeps the %d cards it had: %s", len(self.registry), _one_line(why)
            )
        else:
            self.state = "unreadable"
            log.error("The card file has a mistake and there are no good cards to use: %s", _one_line(why))

    def get(self, uid: str) -> Any:
        return self.registry.get(uid)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:500]


def _read_limited(path: Path) -> bytes | None:
    """The file's bytes, or None when it is larger than a card file may be; OSError passes."""
    with open(path, "rb") as fh:
        data = fh.read(MAX_CARD_FILE_BYTES + 1)
    return None if len(data) > MAX_CARD_FILE_BYTES else data


def _read_limited_quietly(path: Path) -> bytes | None:
    try:
        return _read_limited(path)
    except OSError:
        return None
