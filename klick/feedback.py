"""The questionnaire engine: queues the pilot's questions and hands the launcher the next one.

The launcher only records what happens (:meth:`klick.usage.UsageLog.record`) and, when it is idle
on the home screen, asks :meth:`Feedback.next_prompt`. Triggers are evaluated here from the usage
log itself (new ``action_started`` events, ended sessions, the calendar), with cursors and use
counters kept in the same database, so a restart neither loses a due question nor asks one twice.
Prompts live in the ``prompts`` table with their state: queued, shown, answered, snoozed,
dismissed, expired. The scheduling rules themselves are pure (:mod:`klick.prompting`).

A questionnaire is asked only on an enrolled device (recorded consent), and nothing is written
after a withdrawal: each write transaction asks :meth:`klick.usage.UsageLog.consent_in` first.

No call may hold the usage log's connection long (others share it): it gives up on SQLite's lock
after :data:`klick.usage.UI_BUSY_S`, and a database error is logged and ends the call softly (no
question now, or an answer not stored). A caller that retries (the launcher, which makes these
calls on a thread of its own) asks with ``raise_busy`` to hear of a held lock instead, so an answer
is stored later rather than lost.
"""

from __future__ import annotations

import datetime as _dt
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, overload

from klick.prompting import (
    DAY,
    FOLLOW_UP_SECONDS,
    OPEN_STATES,
    Candidate,
    Occasion,
    choose,
    count_keys,
    session_occasions,
    time_occasions,
    uses_occasions,
)
from klick.questionnaire import Option, Question, Questionnaire, Text, load_questionnaire
from klick.usage import UsageLog, from_iso, iso
from klick.usage_file import is_busy

__all__ = ["Prompt", "Feedback", "PromptError"]

log = logging.getLogger(__name__)

#: At most this many new events are looked at per call, so one call stays short on the UI thread.
SCAN_LIMIT = 2000


class PromptError(ValueError):
    """The launcher named a prompt that does not exist or is closed, or gave an impossible answer."""


@dataclass(frozen=True)
class Prompt:
    """One question to put on the screen.

    ``options`` are the buttons (empty for free_text). When the answer's value is in
    ``follow_up_when``, :meth:`Feedback.answer` returns the follow-up prompt to show next.
    """

    id: int
    question_id: str
    kind: str
    text: Text
    options: tuple[Option, ...] = ()
    follow_up: Question | None = None
    follow_up_when: tuple[str, ...] = ()
    is_follow_up: bool = False
    #: The card whose use asked the question (for its ``{card}`` and picture), if one did.
    uid: str | None = None
    action_type: str | None = None


class Feedback:
    def __init__(
        self,
        usage: UsageLog,
        questionnaire: Questionnaire,
        *,
        now: Callable[[], float] = time.time,
        tz: _dt.tzinfo | None = None,
        raise_busy: bool = False,
    ):
        self.usage = usage
        #: A write that met another program's lock raises its sqlite3.OperationalError (nothing of
        #: it stored, so it can be made again) instead of being logged and dropped.
        self.raise_busy = raise_busy
        self.questionnaire = questionnaire
        self.now = now
        #: Quiet hours and the daily limit are in local time; None means the system's zone.
        self.tz = tz

    @classmethod
    def from_config(cls, cfg: Any, usage: UsageLog, *, now: Callable[[], float] = time.time) -> Feedback:
        """Raises :class:`klick.questionnaire.QuestionnaireError` when the file has problems."""
        return cls(usage, load_questionnaire(cfg.paths.questionnaire), now=now)

    # -- the launcher's calls -----------------------------------------------------------------
    def next_prompt(self, action_running: bool) -> Prompt | None:
        """The question to show now, idle on the home screen; None when nothing is due or allowed."""
        if not self.usage.enrolled or not self.questionnaire.questions:
            return None
        now = self.now()
        try:
            with self.usage.lock:
                if not self._evaluate(now):
                    return None
                row = self._choose(now, action_running)
        except sqlite3.Error as exc:
            log.warning("questionnaire not evaluated: %s", exc)
            return None
        return row

    def shown(self, prompt_id: int) -> None:
        """The prompt is on the screen now (it counts toward today's limit)."""
        row = self._open_row(prompt_id)
        now = self.now()
        if self._update("UPDATE prompts SET state='shown', shown_at=? WHERE id=?", (iso(now), prompt_id), "shown"):
            self.usage.record("prompt_shown", detail=row["question_id"], at=now)

    def answer(self, prompt_id: int, value: Any, text: str | None = None) -> Prompt | None:
        """Store the answer; returns the follow-up prompt to show next, if the answer calls for one.

        smiley5 takes 1-5, yes_no "yes"/"no" (or True/False), choice an option's value; free_text
        takes the words as ``value`` or ``text``.
        """
        row = self._open_row(prompt_id)
        question = self.questionnaire.find(row["question_id"])
        if question is None:
            raise PromptError(f"prompt {prompt_id} asks {row['question_id']!r}, which is no longer in the questionnaire")
        stored_value, stored_text = _check_answer(question, value, text)
        now = self.now()
        try:
            follow = self._store_answer(prompt_id, row, question, stored_value, stored_text, now)
        except sqlite3.Error as exc:
            if self.raise_busy and is_busy(exc):
                raise
            log.warning("questionnaire answer not stored: %s", exc)
            return None
        if follow is not False:
            self.usage.record("prompt_answered", outcome=stored_value or "text", detail=question.id, at=now)
        return follow or None

    def _store_answer(
        self,
        prompt_id: int,
        row: dict[str, Any],
        question: Question,
        stored_value: str | None,
        stored_text: str | None,
        now: float,
    ) -> Prompt | None | Literal[False]:
        """The answer and its follow-up in one transaction; False when consent no longer holds."""
        follow: Prompt | None = None
        with self.usage.lock:
            conn = self.usage.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                if not self.usage.consent_in(conn):
                    conn.execute("ROLLBACK")
                    return False
                conn.execute(
                    "INSERT INTO answers(prompt_id, device, question_id, value, text, at) VALUES (?,?,?,?,?,?)",
                    (prompt_id, self.usage.device, question.id, stored_value, stored_text, iso(now)),
                )
                conn.execute(
                    "UPDATE prompts SET state='answered', closed_at=?, shown_at=coalesce(shown_at, ?) WHERE id=?",
                    (iso(now), iso(now), prompt_id),
                )
                if question.follow_up is not None and stored_value in question.follow_up_when:
                    new_id = conn.execute(
                        "INSERT INTO prompts(device, question_id, parent_id, trigger, uid, action_type, state, created_at, expires_at)"
                        " VALUES (?,?,?,?,?,?,?,?,?)",
                        (
                            self.usage.device,
                            question.follow_up.id,
                            prompt_id,
                            "follow_up",
                            row["uid"],
                            row["action_type"],
                            "queued",
                            iso(now),
                            iso(now + FOLLOW_UP_SECONDS),
                        ),
                    ).lastrowid
                    assert new_id is not None  # an INSERT that returned always sets lastrowid
                    follow = _prompt(new_id, question.follow_up, True, row["uid"], row["action_type"])
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return follow

    def snooze(self, prompt_id: int) -> None:
        """ "Not now": ask again after the questionnaire's snooze time (if it has not expired)."""
        row = self._open_row(prompt_id)
        now = self.now()
        until = now + self.questionnaire.limits.snooze_minutes * 60
        if self._update("UPDATE prompts SET state='snoozed', snoozed_until=? WHERE id=?", (iso(until), prompt_id), "snooze"):
            self.usage.record("prompt_dismissed", outcome="snoozed", detail=row["question_id"], at=now)

    def dismiss(self, prompt_id: int) -> None:
        """The resident does not want to answer this one: it is closed and never asked again."""
        row = self._open_row(prompt_id)
        now = self.now()
        if self._update("UPDATE prompts SET state='dismissed', closed_at=? WHERE id=?", (iso(now), prompt_id), "dismiss"):
            self.usage.record("prompt_dismissed", outcome="dismissed", detail=row["question_id"], at=now)

    def _update(self, sql: str, args: tuple, what: str) -> bool:
        """One prompt's state change; False (logged) when the database cannot take it now."""
        try:
            with self.usage.lock:
                self.usage.conn.execute(sql, args)
        except sqlite3.Error as exc:
            if self.raise_busy and is_busy(exc):
                raise
            log.warning("questionnaire %s not stored: %s", what, exc)
            return False
        return True

    # -- evaluation ---------------------------------------------------------------------------
    def _local(self, now: float) -> _dt.datetime:
        if self.tz is not None:
            return _dt.datetime.fromtimestamp(now, self.tz)
        return _dt.datetime.fromtimestamp(now).astimezone()

    def _evaluate(self, now: float) -> bool:
        """Turn new uses, ended sessions and the calendar into queued prompts; expire old ones.

        False when consent no longer holds (withdrawn while the launcher runs): nothing written.
        """
        conn = self.usage.conn
        questions = self.questionnaire.questions
        expire_s = self.questionnaire.limits.expire_days * DAY
        state = _State(conn)
        occasions: list[tuple[Occasion, float]] = []

        cursor = int(state.get("cursor:events", "0"))
        for eid, at, uid, action_type in conn.execute(
            "SELECT id, at, uid, action_type FROM events WHERE kind='action_started' AND id > ? ORDER BY id LIMIT ?",
            (cursor, SCAN_LIMIT),
        ).fetchall():
            when = from_iso(at)
            if state.get("first_use") is None:
                state.set("first_use", at, keep=True)
            keys = count_keys(uid, action_type)
            counts = {k: int(state.get(k, "0")) + 1 for k in keys}
            for k, v in counts.items():
                state.set(k, str(v), keep=not k.startswith("uses:card:"), at=now)
            for occ in uses_occasions(questions, counts, uid, action_type):
                occasions.append((occ, when))
            cursor = eid
        state.set("cursor:events", str(cursor), keep=True)

        cursor = int(state.get("cursor:sessions", "0"))
        for sid, uid, action_type, ended_at, duration in conn.execute(
            "SELECT id, uid, action_type, ended_at, duration_s FROM sessions WHERE id > ? ORDER BY id LIMIT ?",
            (cursor, SCAN_LIMIT),
        ).fetchall():
            if ended_at is None:
                break
            for occ in session_occasions(questions, uid, action_type, duration):
                occasions.append((occ, from_iso(ended_at)))
            cursor = sid
        state.set("cursor:sessions", str(cursor), keep=True)

        first = state.get("first_use")
        for occ in time_occasions(questions, from_iso(first) if first else None, now, self._local(now)):
            fired = f"fired:{occ.question_id}:{occ.key}"
            if state.get(fired) is None:
                state.set(fired, "1", keep=bool(occ.key and occ.key.startswith("days:")), at=now)
                occasions.append((occ, now))

        conn.execute("BEGIN IMMEDIATE")
        try:
            if not self.usage.consent_in(conn):
                conn.execute("ROLLBACK")
                return False
            state.flush()
            for occ, when in occasions:
                if when + expire_s <= now:
                    continue  # a use long ago (e.g. before this questionnaire) is not asked about now
                conn.execute(
                    "INSERT INTO prompts(device, question_id, trigger, uid, action_type, state, created_at, expires_at)"
                    " VALUES (?,?,?,?,?,?,?,?)",
                    (
                        self.usage.device,
                        occ.question_id,
                        occ.trigger,
                        occ.uid,
                        occ.action_type,
                        "queued",
                        iso(now),
                        iso(when + expire_s),
                    ),
                )
            known = [q.id for q in questions] + [q.follow_up.id for q in questions if q.follow_up]
            marks = ",".join("?" * len(known))
            conn.execute(
                f"UPDATE prompts SET state='expired', closed_at=? WHERE state IN ('queued','shown','snoozed')"
                f" AND (expires_at <= ? OR question_id NOT IN ({marks}))",
                (iso(now), iso(now), *known),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return True

    def _choose(self, now: float, action_running: bool) -> Prompt | None:
        conn = self.usage.conn
        local = self._local(now)
        day_start = local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        shown_today = conn.execute(
            "SELECT count(*) FROM prompts WHERE parent_id IS NULL AND shown_at >= ?", (iso(day_start),)
        ).fetchone()[0]
        last_shown = conn.execute("SELECT max(shown_at) FROM prompts WHERE parent_id IS NULL").fetchone()[0]
        rows = conn.execute(
            "SELECT id, state, created_at, expires_at, parent_id, shown_at, snoozed_until, question_id, uid, action_type"
            " FROM prompts WHERE state IN ('queued','shown','snoozed')"
        ).fetchall()
        names = {r[0]: r[7] for r in rows}
        cards = {r[0]: (r[8], r[9]) for r in rows}
        cands = [
            Candidate(
                r[0],
                r[1],
                from_iso(r[2]),
                from_iso(r[3]),
                r[4] is not None,
                from_iso(r[5]) if r[5] else None,
                from_iso(r[6]) if r[6] else None,
            )
            for r in rows
        ]
        limits = self.questionnaire.limits
        picked = choose(
            cands,
            now=now,
            action_running=action_running,
            quiet=limits.quiet_hours,
            minute_of_day=local.hour * 60 + local.minute,
            day_start=day_start,
            shown_today=shown_today,
            per_day=limits.per_day,
            last_shown_at=from_iso(last_shown) if last_shown else None,
            between_s=limits.between_minutes * 60,
        )
        if picked is None:
            return None
        question = self.questionnaire.find(names[picked.id])
        if question is None:
            return None
        return _prompt(picked.id, question, picked.is_follow_up, *cards[picked.id])

    def _open_row(self, prompt_id: int) -> dict[str, Any]:
        try:
            with self.usage.lock:
                row = self.usage.conn.execute(
                    "SELECT question_id, state, uid, action_type FROM prompts WHERE id=?", (prompt_id,)
                ).fetchone()
        except sqlite3.Error as exc:
            raise PromptError(f"prompt {prompt_id} cannot be read now ({exc})") from None
        if row is None:
            raise PromptError(f"there is no prompt {prompt_id}")
        if row[1] not in OPEN_STATES:
            raise PromptError(f"prompt {prompt_id} is already {row[1]}")
        return {"question_id": row[0], "state": row[1], "uid": row[2], "action_type": row[3]}


def _prompt(prompt_id: int, q: Question, is_follow_up: bool, uid: str | None = None, action_type: str | None = None) -> Prompt:
    return Prompt(prompt_id, q.id, q.kind, q.text, q.options, q.follow_up, q.follow_up_when, is_follow_up, uid, action_type)


def _check_answer(q: Question, value: Any, text: str | None) -> tuple[str | None, str | None]:
    if q.kind == "free_text":
        words = text if text is not None else value
        if not isinstance(words, str) or not words.strip():
            raise PromptError(f"question {q.id!r} wants words as its answer")
        return None, words.strip()[:2000]
    if q.kind == "yes_no" and isinstance(value, bool):
        value = "yes" if value else "no"
    if q.kind == "smiley5" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or value not in q.option_values():
        raise PromptError(f"{value!r} is not an answer to {q.id!r}; expected one of {', '.join(q.option_values())}")
    return value, (text.strip()[:2000] if isinstance(text, str) and text.strip() else None)


class _State:
    """The engine's cursors and counters (``feedback_state``), read through and written in one go.

    Rows marked ``keep`` hold no personal data and outlive retention (a first-use date, a
    count of all uses); per-card counters carry a time, so retention deletes them.
    """

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.cache: dict[str, str | None] = {}
        self.dirty: dict[str, tuple[str, str | None]] = {}

    @overload
    def get(self, key: str, default: str) -> str: ...
    @overload
    def get(self, key: str, default: None = None) -> str | None: ...
    def get(self, key: str, default: str | None = None) -> str | None:
        if key not in self.cache:
            row = self.conn.execute("SELECT value FROM feedback_state WHERE key=?", (key,)).fetchone()
            self.cache[key] = row[0] if row else None
        value = self.cache[key]
        return default if value is None else value

    def set(self, key: str, value: str, *, keep: bool = False, at: float | None = None) -> None:
        if self.get(key) == value:
            return
        self.cache[key] = value
        self.dirty[key] = (value, None if keep else iso(at if at is not None else time.time()))

    def flush(self) -> None:
        for key, (value, updated) in self.dirty.items():
            self.conn.execute(
                "INSERT INTO feedback_state(key, value, updated_at) VALUES (?,?,?)"
                " ON CONFLICT(key) DO UPDATE SET value=excluded.value, updated_at=excluded.updated_at",
                (key, value, updated),
            )
        self.dirty.clear()
