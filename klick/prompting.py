"""When to ask: the questionnaire's scheduling rules as pure functions.

No clock, no database: the caller passes the time and the rows, so hypothesis and plain tests can
check every rule (daily limit, quiet hours, never during an action, expiry, snooze) directly.
:mod:`klick.feedback` does the reading and writing around these.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from klick.questionnaire import Question, Trigger

__all__ = [
    "Occasion",
    "Candidate",
    "OPEN_STATES",
    "FOLLOW_UP_SECONDS",
    "count_keys",
    "uses_occasions",
    "session_occasions",
    "time_occasions",
    "in_quiet_hours",
    "is_due",
    "choose",
]

#: States in which a prompt may still be put on the screen.
OPEN_STATES = ("queued", "shown", "snoozed")
#: A follow-up belongs to the answer just given; an hour later the moment has passed.
FOLLOW_UP_SECONDS = 3600.0
DAY = 86_400.0


@dataclass(frozen=True)
class Occasion:
    """A reason to queue one question now."""

    question_id: str
    trigger: str
    uid: str | None = None
    action_type: str | None = None
    #: For time-based triggers: fires once per key (e.g. once per Sunday).
    key: str | None = None


def count_keys(uid: str | None, action_type: str | None) -> list[str]:
    """The use counters one use adds to: all uses, this action type's, this card's."""
    keys = ["uses:any"]
    if action_type:
        keys.append(f"uses:type:{action_type}")
    if uid:
        keys.append(f"uses:card:{uid}")
    return keys


def _uses_for(t: Trigger, counts: Mapping[str, int], uid: str | None, action_type: str | None) -> int | None:
    if t.per_card:
        return counts.get(f"uses:card:{uid}") if uid else None
    if t.action_type:
        return counts.get(f"uses:type:{t.action_type}") if action_type == t.action_type else None
    return counts.get("uses:any")


def uses_occasions(
    questions: Iterable[Question], counts: Mapping[str, int], uid: str | None, action_type: str | None
) -> list[Occasion]:
    """Occasions from one use, given the counters *after* counting it (so the 1st use sees 1)."""
    out: list[Occasion] = []
    for q in questions:
        for t in q.triggers:
            if t.kind != "after_uses":
                continue
            n = _uses_for(t, counts, uid, action_type)
            if n is not None and n in t.uses:
                out.append(Occasion(q.id, t.describe(), uid, action_type))
                break
    return out


def session_occasions(
    questions: Iterable[Question], uid: str | None, action_type: str | None, duration_s: float | None
) -> list[Occasion]:
    out: list[Occasion] = []
    if duration_s is None:
        return out
    for q in questions:
        for t in q.triggers:
            if t.kind != "after_session_minutes" or t.minutes is None:
                continue
            if t.action_type and t.action_type != action_type:
                continue
            if duration_s >= t.minutes * 60:
                out.append(Occasion(q.id, t.describe(), uid, action_type))
                break
    return out


def time_occasions(questions: Iterable[Question], first_use_at: float | None, now: float, local: _dt.datetime) -> list[Occasion]:
    """Occasions from the calendar; each carries a key so it fires once (per day for weekdays)."""
    out: list[Occasion] = []
    for q in questions:
        for t in q.triggers:
            if t.kind == "days_after_first_use" and first_use_at is not None and t.days is not None:
                if now >= first_use_at + t.days * DAY:
                    out.append(Occasion(q.id, t.describe(), key=f"days:{t.days}"))
            elif t.kind == "weekday" and local.weekday() == t.weekday:
                out.append(Occasion(q.id, t.describe(), key=f"weekday:{local.date().isoformat()}"))
    return out


def in_quiet_hours(minute_of_day: int, quiet: tuple[int, int] | None) -> bool:
    """Whether a local time (minutes after midnight) falls in the span; spans may cross midnight."""
    if quiet is None:
        return False
    start, end = quiet
    if start < end:
        return start <= minute_of_day < end
    return minute_of_day >= start or minute_of_day < end


@dataclass(frozen=True)
class Candidate:
    """A prompt row as the scheduler sees it (times in epoch seconds)."""

    id: int
    state: str
    created_at: float
    expires_at: float
    is_follow_up: bool = False
    shown_at: float | None = None
    snoozed_until: float | None = None


def is_due(c: Candidate, now: float) -> bool:
    if c.state not in OPEN_STATES or now >= c.expires_at:
        return False
    return c.state != "snoozed" or (c.snoozed_until is not None and now >= c.snoozed_until)


def choose(
    candidates: Iterable[Candidate],
    *,
    now: float,
    action_running: bool,
    quiet: tuple[int, int] | None,
    minute_of_day: int,
    day_start: float,
    shown_today: int,
    per_day: int,
    last_shown_at: float | None = None,
    between_s: float = 0.0,
) -> Candidate | None:
    """The prompt to put on the home screen now, or None.

    Never while an action runs, never in quiet hours. A follow-up comes first and does not count
    against the daily limit (it is part of the answer just given). Any other question waits
    ``between_s`` after the last one was shown (``last_shown_at``). A prompt already shown today
    and not yet answered may come back without counting twice; otherwise at most ``per_day``
    different prompts are shown a day. Oldest first.
    """
    if action_running or in_quiet_hours(minute_of_day, quiet):
        return None
    due = sorted((c for c in candidates if is_due(c, now)), key=lambda c: (c.created_at, c.id))
    for c in due:
        if c.is_follow_up:
            return c
    if last_shown_at is not None and now - last_shown_at < between_s:
        return None
    for c in due:
        if c.shown_at is not None and c.shown_at >= day_start:
            return c
    if shown_today >= per_day:
        return None
    return due[0] if due else None
