"""Withdrawing consent (issue 10, item 14): `klick pilot withdraw` on a real usage database.

The rows must be gone from the file itself (raw bytes, a fresh connection), not only from exports,
and a launcher running at the same time must not write a card event again.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from klick.cli import cli
from klick.feedback import Feedback
from klick.questionnaire import load_questionnaire
from klick.usage import UsageLog, consent_holds
from tests.conftest import KLICK, REPO
from tests.test_export import ANNA, NEWS, make_device_db

FREE_TEXT = "Ljudet var för svagt".encode()
TODAY = dt.datetime.now(dt.UTC).date()


@pytest.fixture
def home(klick_home):
    (klick_home / "klick.yaml").write_text("pilot:\n  enrolled: true\n  device_name: hbg-07\n")
    make_device_db(klick_home / "usage.db", "hbg-07")
    return klick_home


def raw(path: Path) -> bytes:
    """Everything SQLite keeps of the database on disk: the file and its WAL."""
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def table_counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        out = {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("sessions", "prompts", "answers", "feedback_state")
        }
        out["card_events"] = conn.execute("SELECT count(*) FROM events WHERE kind != 'reader_status'").fetchone()[0]
        out["reader_events"] = conn.execute("SELECT count(*) FROM events WHERE kind = 'reader_status'").fetchone()[0]
        out["withdrawn_on"] = conn.execute("SELECT value FROM meta WHERE key = 'withdrawn_on'").fetchone()
        return out
    finally:
        conn.close()


def withdraw(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [KLICK, "pilot", "withdraw", *args], capture_output=True, text=True, env=env or os.environ.copy(), timeout=60
    )


def test_withdraw_deletes_every_personal_row_from_the_file_itself(home):
    db = home / "usage.db"
    before = table_counts(db)
    assert before["card_events"] and before["sessions"] and before["answers"] and before["prompts"] and before["feedback_state"]
    assert ANNA.encode() in raw(db) and FREE_TEXT in raw(db)  # the check below is not vacuous

    result = withdraw("--yes")
    assert result.returncode == 0, result.stderr
    assert "also set pilot.enrolled: false in klick.yaml" in result.stdout.lower()
    assert f"Consent withdrawn on {TODAY.isoformat()}" in result.stdout

    after = table_counts(db)
    assert {k: after[k] for k in ("card_events", "sessions", "prompts", "answers", "feedback_state")} == dict.fromkeys(
        ("card_events", "sessions", "prompts", "answers", "feedback_state"), 0
    )
    assert after["reader_events"] == before["reader_events"]  # reader health stays
    assert after["withdrawn_on"] == (TODAY.isoformat(),)  # only the date
    data = raw(db)
    for secret in (ANNA.encode(), NEWS.encode(), FREE_TEXT, b"meet.example.se", b"video_call", b"how_did_it_go"):
        assert secret not in data, secret
    # ...and so not in an export either.
    (home / "klick.yaml").write_text('pilot:\n  enrolled: true\n  export_key: "the pilot secret 2026"\n')
    out = CliRunner().invoke(cli, ["export", "usage", "--format", "csv"])
    assert out.exit_code == 0 and {line.split(",")[3] for line in out.stdout.splitlines()[1:]} == {"reader_status"}


def test_withdraw_asks_first_and_deletes_nothing_without_a_yes(home):
    before = table_counts(home / "usage.db")
    result = CliRunner().invoke(cli, ["pilot", "withdraw"], input="n\n")
    assert result.exit_code == 1 and "Nothing was deleted." in result.stderr
    result = CliRunner().invoke(cli, ["pilot", "withdraw"], input="")  # no terminal, no answer
    assert result.exit_code == 1 and "Nothing was deleted." in result.stderr
    assert table_counts(home / "usage.db") == before
    result = CliRunner().invoke(cli, ["pilot", "withdraw", "--config", str(home / "klick.yaml")], input="y\n")
    assert result.exit_code == 0, result.stderr
    assert table_counts(home / "usage.db")["card_events"] == 0


def test_withdraw_while_the_launcher_runs_leaves_it_no_card_rows_to_write(home):
    db = home / "usage.db"
    launcher = UsageLog.open(db, device="hbg-07", enrolled=True, retention_days=365)
    fb = Feedback(launcher, load_questionnaire(REPO / "config" / "questionnaire.yaml"), tz=dt.UTC)
    launcher.record("card_present", uid=ANNA, action_type="video_call")
    launcher.record("action_started", uid=ANNA, action_type="video_call")
    assert launcher.flush()

    result = withdraw("--yes")
    assert result.returncode == 0, result.stderr

    # The launcher has not heard of it yet: what it queues now is checked inside the writer's
    # transaction and never written.
    launcher.record("card_removed", uid=ANNA)
    launcher.record("card_present", uid=NEWS, action_type="svt_play")
    launcher.record("action_started", uid=NEWS, action_type="svt_play")
    launcher.record("reader_status", outcome="connected")
    assert launcher.flush()
    assert fb.next_prompt(False) is None
    assert not launcher.enrolled and launcher.withdrawn_on == TODAY
    assert launcher.record("card_present", uid=ANNA) is False  # from now on refused at once
    after = table_counts(db)
    assert after["card_events"] == after["sessions"] == after["prompts"] == after["answers"] == after["feedback_state"] == 0
    launcher.close()
    data = raw(db)
    assert ANNA.encode() not in data and NEWS.encode() not in data and FREE_TEXT not in data


def test_a_withdrawal_outlasts_enrolled_true_until_a_later_consent_date(home):
    db = home / "usage.db"
    assert withdraw("--yes").returncode == 0
    for consent in (None, TODAY - dt.timedelta(days=30), TODAY):
        log = UsageLog.open(db, device="hbg-07", enrolled=True, consent_date=consent)
        assert not log.enrolled
        assert log.record("card_present", uid=ANNA) is False
        assert log.flush()
        log.close()
        assert table_counts(db)["card_events"] == 0
    # Consent given again, on a day after the withdrawal: the log records again.
    tomorrow = dt.datetime.combine(TODAY + dt.timedelta(days=1), dt.time(12), dt.UTC).timestamp()
    log = UsageLog.open(db, device="hbg-07", enrolled=True, consent_date=TODAY + dt.timedelta(days=1), now=lambda: tomorrow)
    assert log.enrolled and log.record("card_present", uid=ANNA)
    assert log.flush()
    log.close()
    assert table_counts(db)["card_events"] == 1


def test_opening_without_consent_deletes_the_personal_rows_left_there(home):
    db = home / "usage.db"
    assert ANNA.encode() in raw(db)
    log = UsageLog.open(db, device="hbg-07", enrolled=False)  # the launcher, after enrolled: false
    assert log.flush(30)
    after = table_counts(db)
    assert after["card_events"] == after["sessions"] == after["answers"] == after["prompts"] == 0
    assert after["reader_events"] > 0 and after["withdrawn_on"] == (TODAY.isoformat(),)
    log.close()
    assert ANNA.encode() not in raw(db) and FREE_TEXT not in raw(db)


def test_withdraw_on_a_device_without_a_log_records_the_date(klick_home):
    (klick_home / "klick.yaml").write_text("pilot:\n  enrolled: false\n")
    result = withdraw("--yes")
    assert result.returncode == 0, result.stderr
    assert "already says pilot.enrolled: false" in result.stdout
    assert table_counts(klick_home / "usage.db")["withdrawn_on"] == (TODAY.isoformat(),)


def test_withdraw_refuses_a_foreign_file_and_leaves_it(klick_home):
    (klick_home / "klick.yaml").write_text("pilot:\n  enrolled: true\n")
    junk = klick_home / "usage.db"
    junk.write_text("a shopping list\n" * 50)
    result = withdraw("--yes")
    assert result.returncode == 1 and "not a Klick usage database" in result.stderr and "Traceback" not in result.stderr
    assert junk.read_text() == "a shopping list\n" * 50


def test_withdraw_deletes_damaged_copies_too(home):
    db = home / "usage.db"
    copy = home / "usage.db.damaged-20260101T000000Z"
    copy.write_bytes(raw(db))  # a copy moved aside earlier holds personal rows as well
    result = withdraw("--yes")
    assert result.returncode == 0 and "damaged copies" in result.stdout
    assert not copy.exists()


def test_consent_rule():
    d = dt.date(2026, 5, 1)
    assert consent_holds(True, None, None) and not consent_holds(False, d, None)
    assert not consent_holds(True, None, d) and not consent_holds(True, d, d)
    assert consent_holds(True, d + dt.timedelta(days=1), d, today=d + dt.timedelta(days=1))
    assert not consent_holds(True, d + dt.timedelta(days=9), d, today=d + dt.timedelta(days=1))  # a date in the future
