"""The questionnaire engine on a fake clock and a real SQLite file, and the file's validation."""

from __future__ import annotations

import datetime as dt
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from klick.feedback import Feedback, PromptError
from klick.prompting import Candidate, choose, in_quiet_hours
from klick.questionnaire import (
    ACTION_TYPES,
    QuestionnaireError,
    check_questionnaire,
    load_questionnaire,
)
from klick.usage import UsageLog

MONDAY_NOON = 1772452800.0  # 2026-03-02 12:00 UTC, a Monday
HOUR, DAY = 3600.0, 86400.0
UTC = dt.UTC
SHIPPED = Path(__file__).resolve().parent.parent / "config" / "questionnaire.yaml"


class Clock:
    def __init__(self, t: float = MONDAY_NOON):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("KLICK_HOME", str(tmp_path))


def write_q(folder: Path, body: str) -> Path:
    path = folder / "questionnaire.yaml"
    path.write_text(textwrap.dedent(body))
    return path


SIMPLE = """
    version: 1
    limits: {per_day: 2, quiet_hours: "20:00-09:00", expire_days: 3, snooze_minutes: 60}
    questions:
      - id: how
        kind: smiley5
        text: {sv: "Hur gick det?", en: "How did that go?"}
        triggers:
          - after_uses: [1, 2, 3]
            per_card: true
"""


def engine(folder: Path, body: str = SIMPLE, clock: Clock | None = None, enrolled: bool = True):
    clock = clock or Clock()
    log = UsageLog.open(folder / "usage.db", device="hbg-01", enrolled=enrolled, retention_days=365, now=clock)
    fb = Feedback(log, load_questionnaire(write_q(folder, body)), now=clock, tz=UTC)
    return log, fb, clock


def use(log: UsageLog, clock: Clock, uid: str, action_type: str = "web", minutes: float = 1.0) -> None:
    log.record("card_present", uid=uid, action_type=action_type)
    log.record("action_started", uid=uid, action_type=action_type)
    clock.t += minutes * 60
    log.record("action_ended", uid=uid, action_type=action_type)
    log.record("card_removed", uid=uid)
    assert log.flush()  # the writer thread has stored them: the engine reads them from the file


def states(log: UsageLog) -> list[tuple[str, str]]:
    return log.conn.execute("SELECT question_id, state FROM prompts ORDER BY id").fetchall()


# --- the shipped questionnaire ----------------------------------------------------------------


def test_shipped_questionnaire_is_valid():
    q, problems = check_questionnaire(SHIPPED)
    assert q is not None and problems == []
    how = q.find("how_did_it_go")
    assert how.kind == "smiley5" and how.text.sv == "Hur gick det med {card}?" and how.text.en == "How did it go with {card}?"
    difficult = q.find("anything_difficult")
    assert difficult.kind == "yes_no" and difficult.follow_up.kind == "free_text"
    assert difficult.follow_up_when == ("yes",)


def test_action_types_match_the_card_model():
    from cards.model import ACTION_TYPES as CARD_TYPES

    assert set(ACTION_TYPES) == set(CARD_TYPES)


def test_first_use_asks_both_questions_then_the_follow_up(tmp_path):
    clock = Clock()
    log = UsageLog.open(tmp_path / "usage.db", device="hbg-01", enrolled=True, retention_days=365, now=clock)
    fb = Feedback(log, load_questionnaire(SHIPPED), now=clock, tz=UTC)
    assert fb.next_prompt(False) is None
    use(log, clock, "04A2", "video_call", minutes=2)
    assert fb.next_prompt(True) is None  # never while an action runs

    p = fb.next_prompt(False)
    assert (p.question_id, p.kind, p.text.get("sv"), p.text.get("en")) == (
        "how_did_it_go",
        "smiley5",
        "Hur gick det med {card}?",
        "How did it go with {card}?",
    )
    assert (p.uid, p.action_type) == ("04A2", "video_call")  # the card it asks about
    assert [o.value for o in p.options] == ["1", "2", "3", "4", "5"]
    fb.shown(p.id)
    assert fb.answer(p.id, 4) is None

    assert fb.next_prompt(False) is None  # the next question waits limits.between_minutes (30)
    clock.t += 30 * 60
    p = fb.next_prompt(False)
    assert p.question_id == "anything_difficult" and p.follow_up.id == "what_was_difficult"
    assert [o.label.sv for o in p.options] == ["Ja", "Nej"]
    fb.shown(p.id)
    follow = fb.answer(p.id, "yes")
    assert follow is not None and follow.kind == "free_text" and follow.is_follow_up and follow.uid == "04A2"
    assert fb.next_prompt(False) == follow  # a follow-up belongs to the answer: it does not wait
    fb.shown(follow.id)
    assert fb.answer(follow.id, "Knappen var svår att hitta") is None
    assert fb.next_prompt(False) is None

    answers = log.conn.execute("SELECT question_id, value, text FROM answers ORDER BY id").fetchall()
    assert answers == [
        ("how_did_it_go", "4", None),
        ("anything_difficult", "yes", None),
        ("what_was_difficult", None, "Knappen var svår att hitta"),
    ]
    assert log.flush()
    kinds = [r[0] for r in log.conn.execute("SELECT kind FROM events WHERE kind LIKE 'prompt_%' ORDER BY id")]
    assert kinds == ["prompt_shown", "prompt_answered"] * 3
    log.close()


def test_uses_after_the_listed_ones_ask_nothing(tmp_path):
    log, fb, clock = engine(tmp_path, SIMPLE.replace("per_day: 2", "per_day: 20"))
    for _ in range(5):
        use(log, clock, "04A2")
    fb.next_prompt(False)
    assert [s for s in states(log)] == [("how", "queued")] * 3  # uses 1, 2 and 3 of the card
    use(log, clock, "04B3")
    fb.next_prompt(False)
    assert len(states(log)) == 4  # a different card counts on its own
    log.close()


def test_daily_limit(tmp_path):
    log, fb, clock = engine(tmp_path)
    for uid in ("01", "02", "03", "04", "05"):
        use(log, clock, uid)
    shown = []
    for _ in range(5):
        p = fb.next_prompt(False)
        if p is None:
            break
        fb.shown(p.id)
        fb.answer(p.id, 3)
        shown.append(p.id)
        clock.t += 30 * 60  # limits.between_minutes
    assert len(shown) == 2  # per_day: 2
    clock.t += 5 * HOUR  # 17:00, same day
    assert fb.next_prompt(False) is None
    clock.t += 17 * HOUR  # next day, 10:00
    p = fb.next_prompt(False)
    assert p is not None and p.id not in shown
    log.close()


def test_a_shown_unanswered_prompt_comes_back_without_counting_twice(tmp_path):
    log, fb, clock = engine(tmp_path)
    for uid in ("01", "02", "03"):
        use(log, clock, uid)
    first = fb.next_prompt(False)
    fb.shown(first.id)
    # The resident walked away; the home screen asks again later: the same prompt.
    clock.t += HOUR
    again = fb.next_prompt(False)
    assert again.id == first.id
    fb.shown(again.id)
    fb.answer(again.id, 5)
    clock.t += 30 * 60  # limits.between_minutes
    second = fb.next_prompt(False)
    assert second is not None and second.id != first.id
    fb.shown(second.id)
    fb.answer(second.id, 5)
    clock.t += 30 * 60
    assert fb.next_prompt(False) is None
    log.close()


def test_quiet_hours(tmp_path):
    log, fb, clock = engine(tmp_path)
    clock.t = MONDAY_NOON + 9 * HOUR  # 21:00
    use(log, clock, "04A2")
    assert fb.next_prompt(False) is None
    clock.t = MONDAY_NOON + 20 * HOUR + 59 * 60  # 08:59 next morning
    assert fb.next_prompt(False) is None
    clock.t += 60  # 09:00
    assert fb.next_prompt(False) is not None
    log.close()


def test_expiry(tmp_path):
    log, fb, clock = engine(tmp_path)
    use(log, clock, "04A2")
    assert fb.next_prompt(True) is None  # queued, but an action runs
    assert states(log) == [("how", "queued")]
    clock.t += 3 * DAY  # expire_days: 3 after the use
    assert fb.next_prompt(False) is None
    assert states(log) == [("how", "expired")]
    log.close()


def test_snooze_and_dismiss(tmp_path):
    log, fb, clock = engine(tmp_path)
    use(log, clock, "04A2")
    p = fb.next_prompt(False)
    fb.shown(p.id)
    fb.snooze(p.id)
    assert fb.next_prompt(False) is None
    clock.t += 59 * 60
    assert fb.next_prompt(False) is None
    clock.t += 60  # snooze_minutes: 60
    again = fb.next_prompt(False)
    assert again is not None and again.id == p.id
    fb.dismiss(p.id)
    clock.t += HOUR
    assert fb.next_prompt(False) is None
    assert states(log) == [("how", "dismissed")]
    with pytest.raises(PromptError, match="already dismissed"):
        fb.answer(p.id, 3)
    assert log.flush()
    outcomes = [r[0] for r in log.conn.execute("SELECT outcome FROM events WHERE kind='prompt_dismissed' ORDER BY id")]
    assert outcomes == ["snoozed", "dismissed"]
    log.close()


def test_bad_answers_are_refused(tmp_path):
    log, fb, clock = engine(tmp_path)
    use(log, clock, "04A2")
    p = fb.next_prompt(False)
    with pytest.raises(PromptError):
        fb.answer(p.id, 6)
    with pytest.raises(PromptError):
        fb.answer(p.id, "yes")
    with pytest.raises(PromptError, match="no prompt"):
        fb.answer(9999, 1)
    log.close()


TIMED = """
    version: 1
    limits: {per_day: 5, quiet_hours: none, expire_days: 2}
    questions:
      - id: call
        kind: yes_no
        text: {sv: "Hördes allt?", en: "Could you hear everything?"}
        triggers:
          - after_session_minutes: 5
            action_type: video_call
      - id: week
        kind: smiley5
        text: {sv: "En vecka", en: "One week"}
        triggers:
          - days_after_first_use: 7
      - id: sunday
        kind: yes_no
        text: {sv: "Söndag?", en: "Sunday?"}
        triggers:
          - weekday: söndag
      - id: tv
        kind: choice
        text: {sv: "Vad såg du?", en: "What did you watch?"}
        options:
          - {value: news, sv: Nyheter, en: News}
          - {value: other, sv: Annat, en: Something else}
        triggers:
          - after_uses: 2
            action_type: svt_play
"""


def test_session_length_trigger(tmp_path):
    log, fb, clock = engine(tmp_path, TIMED)
    use(log, clock, "04A2", "video_call", minutes=4)
    use(log, clock, "04A2", "web", minutes=10)
    fb.next_prompt(False)
    assert states(log) == []
    use(log, clock, "04A2", "video_call", minutes=6)
    log.record("card_present", uid="04A2", action_type="video_call")  # a session still open asks nothing yet
    assert log.flush()
    clock.t += 3600
    p = fb.next_prompt(False)
    assert p.question_id == "call" and states(log) == [("call", "queued")]
    log.close()


def test_action_type_use_count(tmp_path):
    log, fb, clock = engine(tmp_path, TIMED)
    use(log, clock, "01", "svt_play")
    use(log, clock, "02", "web")
    assert fb.next_prompt(False) is None
    use(log, clock, "03", "svt_play")
    p = fb.next_prompt(False)
    assert p.question_id == "tv" and [o.label.en for o in p.options] == ["News", "Something else"]
    log.close()


def test_days_after_first_use_and_weekday(tmp_path):
    log, fb, clock = engine(tmp_path, TIMED)
    use(log, clock, "04A2", "web")
    fb.next_prompt(False)
    assert states(log) == []
    clock.t = MONDAY_NOON + 6 * DAY  # Sunday
    p = fb.next_prompt(False)
    assert p.question_id == "sunday"
    fb.shown(p.id)
    fb.answer(p.id, True)
    clock.t += HOUR
    assert fb.next_prompt(False) is None  # once per Sunday
    clock.t = MONDAY_NOON + 7 * DAY  # a week after the first use, a Monday
    assert fb.next_prompt(False).question_id == "week"
    clock.t = MONDAY_NOON + 13 * DAY  # the next Sunday
    fb.next_prompt(False)
    assert [q for q, _ in states(log)].count("week") == 1  # only once
    assert [q for q, _ in states(log)].count("sunday") == 2  # next Sunday again
    log.close()


def test_restart_neither_loses_nor_repeats(tmp_path):
    log, fb, clock = engine(tmp_path)
    use(log, clock, "04A2")
    assert fb.next_prompt(False) is not None
    log.close()
    log = UsageLog.open(tmp_path / "usage.db", device="hbg-01", enrolled=True, retention_days=365, now=clock)
    fb = Feedback(log, load_questionnaire(tmp_path / "questionnaire.yaml"), now=clock, tz=UTC)
    assert fb.next_prompt(False) is not None
    assert states(log) == [("how", "queued")]
    log.close()


def test_old_uses_are_not_asked_about(tmp_path):
    clock = Clock(MONDAY_NOON - 30 * DAY)
    log = UsageLog.open(tmp_path / "usage.db", device="hbg-01", enrolled=True, retention_days=365, now=clock)
    use(log, clock, "04A2")
    clock.t = MONDAY_NOON
    fb = Feedback(log, load_questionnaire(write_q(tmp_path, SIMPLE)), now=clock, tz=UTC)
    assert fb.next_prompt(False) is None
    use(log, clock, "04A2")  # the card's second use, counted after the first
    assert fb.next_prompt(False) is not None
    log.close()


def test_not_enrolled_asks_nothing(tmp_path):
    log, fb, clock = engine(tmp_path, enrolled=False)
    use(log, clock, "04A2")
    assert fb.next_prompt(False) is None
    log.close()


def test_from_config(tmp_path):
    from klick.config import load_config

    (tmp_path / "klick.yaml").write_text("pilot:\n  enrolled: true\n")
    cfg = load_config()
    log = UsageLog.from_config(cfg)
    fb = Feedback.from_config(cfg, log)
    assert fb.questionnaire.find("how_did_it_go") is not None
    log.close()


# --- the rules, hammered -----------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["use", "idle", "idle_running", "wait"]),
            st.sampled_from(["01", "02", "03", "04", "05", "06"]),
            st.floats(min_value=60, max_value=20 * HOUR),
            st.sampled_from(["answer", "snooze", "dismiss", "ignore"]),
        ),
        max_size=40,
    )
)
def test_limits_hold_for_any_day(script):
    with tempfile.TemporaryDirectory() as folder:
        log, fb, clock = engine(Path(folder), SIMPLE.replace("per_day: 2", "per_day: 2"))
        shown_by_day: dict[str, set[int]] = {}
        for step, uid, gap, reaction in script:
            if step == "use":
                use(log, clock, uid)
            elif step == "wait":
                clock.t += gap
            else:
                running = step == "idle_running"
                p = fb.next_prompt(running)
                if p is None:
                    continue
                assert not running
                local = dt.datetime.fromtimestamp(clock.t, UTC)
                assert not in_quiet_hours(local.hour * 60 + local.minute, (20 * 60, 9 * 60))
                fb.shown(p.id)
                if not p.is_follow_up:
                    shown_by_day.setdefault(local.date().isoformat(), set()).add(p.id)
                if reaction == "answer":
                    fb.answer(p.id, 3)
                elif reaction == "snooze":
                    fb.snooze(p.id)
                elif reaction == "dismiss":
                    fb.dismiss(p.id)
            clock.t += 30
        for day, ids in shown_by_day.items():
            assert len(ids) <= 2, day
        log.close()


@given(st.integers(0, 1439), st.integers(0, 1439), st.integers(0, 1439))
def test_quiet_hours_cross_midnight(minute, start, end):
    if start == end:
        return
    inside = in_quiet_hours(minute, (start, end))
    if start < end:
        assert inside == (start <= minute < end)
    else:
        assert inside == (not (end <= minute < start))


def test_choose_prefers_follow_ups_and_ignores_limit_for_them():
    a = Candidate(1, "queued", 0.0, 100.0)
    f = Candidate(2, "queued", 5.0, 100.0, is_follow_up=True)
    kw = dict(now=10.0, quiet=None, minute_of_day=600, day_start=0.0)
    assert choose([a, f], action_running=False, shown_today=9, per_day=2, **kw) == f
    assert choose([a], action_running=False, shown_today=2, per_day=2, **kw) is None
    assert choose([a, f], action_running=True, shown_today=0, per_day=2, **kw) is None


# --- the file, checked -------------------------------------------------------------------------

BAD = """\
version: 2
limits:
  per_day: 0
  quiet_hours: "late"
  colour: blue
questions:
  - id: How Are You
    kind: smiley5
    text: {sv: "Hur mår du?"}
    triggers:
      - after_uses: 0
  - id: pick
    kind: choice
    text: {sv: "Välj", en: "Pick"}
    options:
      - {value: a, sv: A, en: A}
    triggers:
      - weekday: someday
  - id: pick
    kind: yes_no
    text: {sv: "Ja?", en: "Yes?"}
    triggers:
      - after_session_minutes: 5
        action_type: teleport
    follow_up:
      when: maybe
      id: why
      kind: free_text
      text: {sv: "Varför?", en: "Why?"}
  - id: nothing
    kind: essay
    text: {sv: "X", en: "X"}
"""


def test_every_problem_is_reported_with_its_line(tmp_path):
    path = tmp_path / "questionnaire.yaml"
    path.write_text(BAD)
    q, problems = check_questionnaire(path)
    assert q is None
    lines = {p.line for p in problems}
    text = "\n".join(str(p) for p in problems)
    for line in (1, 3, 4, 5, 7, 9, 11, 16, 18, 19, 24, 26, 30, 31):
        assert line in lines, f"no problem on line {line}:\n{text}"
    assert all(str(p).startswith(f"{path}:") for p in problems)
    assert "per_day must be a whole number from 1 to 20" in text
    assert "used twice" in text and "teleport" in text and "essay" in text
    with pytest.raises(QuestionnaireError):
        load_questionnaire(path)


def test_missing_and_broken_files(tmp_path):
    q, problems = check_questionnaire(tmp_path / "none.yaml")
    assert q is None and "does not exist" in problems[0].message
    path = tmp_path / "q.yaml"
    path.write_text("questions:\n\t- id: x\n")
    q, problems = check_questionnaire(path)
    assert q is None and problems[0].line == 2 and "tab" in problems[0].message
    path.write_text("")
    q, problems = check_questionnaire(path)
    assert q is None and "empty" in problems[0].message


LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


@pytest.mark.serial  # measures wall time
def test_questionnaire_does_not_wait_on_a_locked_database(tmp_path):
    import subprocess
    import sys
    import time

    log, fb, clock = engine(tmp_path)
    use(log, clock, "04A2")
    first = fb.next_prompt(False)
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(tmp_path / "usage.db")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert locker.stdout.readline().strip() == "locked"
        started = time.monotonic()
        assert fb.next_prompt(False) is None  # no question now rather than a frozen screen
        fb.shown(first.id)  # not stored, no error
        assert fb.answer(first.id, 4) is None  # not stored: asked again later
        assert time.monotonic() - started < 2.0  # was: 5 s for each call
    finally:
        locker.stdin.write("go\n")
        locker.stdin.flush()
        locker.wait(10)
    assert fb.next_prompt(False) == first
    fb.shown(first.id)
    assert fb.answer(first.id, 4) is None
    assert log.conn.execute("SELECT value FROM answers").fetchall() == [("4",)]
    log.close()


def test_direction_overrides_are_refused_in_question_text(tmp_path):
    path = tmp_path / "questionnaire.yaml"
    path.write_text(
        'questions:\n  - id: q\n    kind: yes_no\n    text: {sv: "Hur \\u202egick det?", en: ok}\n'
        "    triggers: [{after_uses: 1}]\n"
    )
    q, problems = check_questionnaire(path)
    assert q is None
    assert [(p.line, p.message) for p in problems] == [
        (4, "question 'q': text.sv holds a hidden character that turns text around (U+202E); retype it")
    ]


# --- at most one question in a while (limits.between_minutes) ----------------------------------


def test_the_next_question_waits_between_minutes_after_the_last_one_shown(tmp_path):
    log, fb, clock = engine(tmp_path)
    assert fb.questionnaire.limits.between_minutes == 30  # the default
    for uid in ("01", "02"):
        use(log, clock, uid)
    first = fb.next_prompt(False)
    fb.shown(first.id)
    fb.answer(first.id, 4)
    clock.t += 3  # three seconds later the home screen is idle again
    assert fb.next_prompt(False) is None
    clock.t += 29 * 60
    assert fb.next_prompt(False) is None
    clock.t += 60
    second = fb.next_prompt(False)
    assert second is not None and second.id != first.id
    log.close()


def test_choose_waits_between_questions_but_never_for_a_follow_up():
    kw = dict(quiet=None, minute_of_day=600, day_start=0.0, shown_today=0, per_day=5, action_running=False)
    a = Candidate(1, "queued", 0.0, 10_000.0)
    f = Candidate(2, "queued", 0.0, 10_000.0, is_follow_up=True)
    assert choose([a], now=1000.0, last_shown_at=990.0, between_s=1800, **kw) is None
    assert choose([a, f], now=1000.0, last_shown_at=990.0, between_s=1800, **kw) == f
    assert choose([a], now=2800.0, last_shown_at=990.0, between_s=1800, **kw) == a
    assert choose([a], now=1000.0, last_shown_at=990.0, between_s=0, **kw) == a


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ("{between_minutes: -1}", "limits.between_minutes must be a whole number from 0 to 1440"),
        ("{between_minutes: soon}", "limits.between_minutes must be a whole number from 0 to 1440"),
        ("{between_minutes: 1441}", "limits.between_minutes must be a whole number from 0 to 1440"),
    ],
)
def test_between_minutes_is_checked(tmp_path, limits, message):
    body = SIMPLE.replace(
        'limits: {per_day: 2, quiet_hours: "20:00-09:00", expire_days: 3, snooze_minutes: 60}', f"limits: {limits}"
    )
    q, problems = check_questionnaire(write_q(tmp_path, body))
    assert q is None and any(message in p.message for p in problems), problems


def test_a_question_may_name_its_card_when_a_cards_use_asks_it(tmp_path):
    body = SIMPLE.replace(
        'text: {sv: "Hur gick det?", en: "How did that go?"}', 'text: {sv: "Hur gick det med {card}?", en: "How did {card} go?"}'
    )
    q, problems = check_questionnaire(write_q(tmp_path, body))
    assert q is not None and problems == [] and q.find("how").text.sv == "Hur gick det med {card}?"


@pytest.mark.parametrize(
    ("text", "trigger", "message"),
    [
        ("Hur gick det med {card}?", "weekday: sunday", "names {card}, so every trigger must be a card's use"),
        ("Hur gick det med {card}?", "days_after_first_use: 7", "names {card}, so every trigger must be a card's use"),
        ("Hur mår {name}?", "after_uses: 1", "{name} is not something a question can fill in; only {card}"),
        ("Hur gick det med {}?", "after_uses: 1", "{} is not something a question can fill in"),
    ],
)
def test_a_question_naming_what_it_cannot_fill_in_is_refused_with_its_line(tmp_path, text, trigger, message):
    body = f"""
    version: 1
    questions:
      - id: how
        kind: smiley5
        text: {{sv: "{text}", en: "How?"}}
        triggers:
          - {trigger}
    """
    q, problems = check_questionnaire(write_q(tmp_path, body))
    assert q is None
    found = [p for p in problems if message in p.message]
    assert found and found[0].line == 6, problems
