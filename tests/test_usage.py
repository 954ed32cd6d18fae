"""The usage log on a real SQLite file: sessions, consent, retention, schema, killed writers."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from klick.usage import (
    KINDS,
    SCHEMA_VERSION,
    UsageDbError,
    UsageLog,
    device_pseudonym,
    from_iso,
    iso,
)

T0 = 1_780_000_000.0  # a fixed instant in 2026


class Clock:
    def __init__(self, t: float = T0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("KLICK_HOME", str(tmp_path))


def open_log(path, clock=None, enrolled=True, retention_days=30):
    return UsageLog.open(path, device="hbg-07", enrolled=enrolled, retention_days=retention_days, now=clock or Clock())


def test_new_database_is_wal_and_versioned(tmp_path):
    log = open_log(tmp_path / "usage.db")
    assert log.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert log.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert log.record("card_present", uid="04:a2:b3", action_type="web") is True
    log.close()
    # A second connection sees the row: it was committed, not held in a transaction.
    other = sqlite3.connect(tmp_path / "usage.db")
    assert other.execute("SELECT uid, device, kind FROM events").fetchall() == [("04A2B3", "hbg-07", "card_present")]


def test_each_record_is_committed_by_the_writer_without_a_close(tmp_path):
    log = open_log(tmp_path / "usage.db")
    log.record("reader_status", outcome="connected")
    assert log.flush()
    other = sqlite3.connect(tmp_path / "usage.db")
    assert other.execute("SELECT count(*) FROM events").fetchone()[0] == 1
    log.close()


def test_session_from_place_and_lift(tmp_path):
    clock = Clock()
    log = open_log(tmp_path / "usage.db", clock)
    log.record("card_present", uid="04A2")
    clock.t += 2
    log.record("action_started", uid="04A2", action_type="video_call")
    clock.t += 600
    log.record("card_removed", uid="04A2")
    assert log.flush()
    rows = log.conn.execute("SELECT uid, action_type, duration_s, end_reason FROM sessions").fetchall()
    assert rows == [("04A2", "video_call", 602.0, "removed")]
    log.close()


def test_not_enrolled_stores_reader_health_only(tmp_path):
    log = open_log(tmp_path / "usage.db", enrolled=False)
    assert log.record("card_present", uid="04A2") is False
    assert log.record("action_started", uid="04A2", action_type="web") is False
    assert log.record("prompt_shown") is False
    assert log.record("reader_status", outcome="lost", detail="unplugged") is True
    assert log.flush()
    assert log.conn.execute("SELECT kind FROM events").fetchall() == [("reader_status",)]
    assert log.count("sessions") == 0
    log.close()


def test_unknown_kind_is_a_programming_error(tmp_path):
    log = open_log(tmp_path / "usage.db")
    with pytest.raises(ValueError, match="unknown usage event kind"):
        log.record("card_lifted")
    log.close()


def test_long_detail_is_cut(tmp_path):
    log = open_log(tmp_path / "usage.db")
    log.record("action_failed", detail="x" * 5000)
    assert log.flush()
    assert len(log.conn.execute("SELECT detail FROM events").fetchone()[0]) == 500
    log.close()


# --- sessions from random event sequences ---------------------------------------------------

UIDS = ["04A2", "04B3", "0012345678"]
event = st.one_of(
    st.tuples(st.just("card_present"), st.sampled_from(UIDS), st.sampled_from([None, "web", "video_call"])),
    st.tuples(st.just("card_removed"), st.sampled_from(UIDS), st.none()),
    st.tuples(st.just("action_started"), st.sampled_from(UIDS + [None]), st.sampled_from(["web", "svt_play"])),
    st.tuples(st.just("reader_status"), st.none(), st.sampled_from(["lost", "connected", "searching"])),
    st.tuples(st.just("unknown_card"), st.sampled_from(UIDS), st.none()),
)
steps = st.lists(st.tuples(event, st.floats(min_value=0, max_value=5000, allow_nan=False)), max_size=40)


def expected_sessions(seq):
    """An independent reading of the rules: what a tester would compute by hand."""
    out = []  # [uid, type, start, end, reason]
    current = None
    t = T0
    for (kind, a, b), gap in seq:
        t += gap
        if kind == "card_present":
            if current and current[0] == a:
                if current[1] is None and b:
                    current[1] = b
                continue
            if current:
                current[3], current[4] = t, "next_card"
            current = [a, b, t, None, None]
            out.append(current)
        elif kind == "card_removed" and current and current[0] == a:
            current[3], current[4] = t, "removed"
            current = None
        elif kind == "reader_status" and b == "lost" and current:
            current[3], current[4] = t, "reader_lost"
            current = None
        elif kind == "action_started" and current and current[1] is None and (a is None or a == current[0]):
            current[1] = b
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_sessions_match_the_rules_for_any_sequence(seq):
    with tempfile.TemporaryDirectory() as folder:
        clock = Clock()
        log = open_log(Path(folder) / "usage.db", clock)
        for (kind, a, b), gap in seq:
            clock.t += gap
            if kind in ("card_present", "card_removed", "unknown_card"):
                log.record(kind, uid=a, action_type=b)
            elif kind == "action_started":
                log.record(kind, uid=a, action_type=b)
            else:
                log.record(kind, outcome=b)
        assert log.flush()
        rows = log.conn.execute(
            "SELECT uid, action_type, started_at, ended_at, duration_s, end_reason FROM sessions ORDER BY id"
        ).fetchall()
        want = expected_sessions(seq)
        assert len(rows) == len(want)
        for row, (uid, kind, start, end, reason) in zip(rows, want):
            assert row[0] == uid and row[1] == kind and row[5] == reason
            assert row[2] == iso(start)
            if end is None:
                assert row[3] is None and row[4] is None
            else:
                assert row[3] == iso(end)
                assert row[4] == pytest.approx(end - start) and row[4] >= 0
        # Sessions never overlap, and at most one is open.
        assert sum(1 for r in rows if r[3] is None) <= 1
        for earlier, later in zip(rows, rows[1:]):
            assert earlier[3] is not None and earlier[3] <= later[2]
        log.close()
        # A restart ends the open session at the last event, so durations stay honest.
        log = open_log(Path(folder) / "usage.db", clock)
        assert log.flush()
        assert log.conn.execute("SELECT count(*) FROM sessions WHERE ended_at IS NULL").fetchone()[0] == 0
        if want and want[-1][3] is None:
            last = log.conn.execute("SELECT end_reason, ended_at FROM sessions ORDER BY id DESC LIMIT 1").fetchone()
            assert last[0] == "restart"
            assert last[1] == log.conn.execute("SELECT max(at) FROM events").fetchone()[0]
        log.close()


def test_record_many_builds_the_same_sessions(tmp_path):
    clock = Clock()
    log = open_log(tmp_path / "a.db", clock)
    seq = [
        ("card_present", "04A2", "web", None, None, T0),
        ("card_removed", "04A2", None, None, None, T0 + 30),
        ("card_present", "04B3", None, None, None, T0 + 40),
        ("card_present", "04A2", None, None, None, T0 + 50),
    ]
    assert log.record_many(seq, batch=2) == 4
    rows = log.conn.execute("SELECT uid, duration_s, end_reason FROM sessions ORDER BY id").fetchall()
    assert rows == [("04A2", 30.0, "removed"), ("04B3", 10.0, "next_card"), ("04A2", None, None)]
    log.close()


# --- retention ---------------------------------------------------------------------------------


def test_retention_deletes_old_rows_at_open_and_daily(tmp_path):
    path = tmp_path / "usage.db"
    clock = Clock()
    log = open_log(path, clock, retention_days=30)
    log.record("card_present", uid="DEADBEEF01", detail="first")
    clock.t += 10
    log.record("card_removed", uid="DEADBEEF01")
    clock.t += 20 * 86400
    log.record("card_present", uid="0BADF00D02")
    clock.t += 5
    log.record("card_removed", uid="0BADF00D02")
    log.close()

    # Reopened 31 days after the first card: the first card's rows are gone, the later ones stay.
    clock.t = T0 + 31 * 86400
    log = open_log(path, clock, retention_days=30)
    assert log.flush()  # the start-up pruning is done by the writer thread
    uids = {r[0] for r in log.conn.execute("SELECT uid FROM events")}
    assert uids == {"0BADF00D02"}
    assert [r[0] for r in log.conn.execute("SELECT uid FROM sessions")] == ["0BADF00D02"]

    # Running on: the daily prune deletes without a restart.
    clock.t += 30 * 86400
    log.record("reader_status", outcome="connected")
    assert log.flush()
    assert log.conn.execute("SELECT count(*) FROM events WHERE kind != 'reader_status'").fetchone()[0] == 0
    assert log.count("sessions") == 0
    log.close()
    # Deleted, not hidden: the raw bytes of the file no longer hold the old card IDs.
    raw = path.read_bytes()
    assert b"DEADBEEF01" not in raw and b"0BADF00D02" not in raw


def test_open_session_survives_pruning(tmp_path):
    clock = Clock()
    log = open_log(tmp_path / "usage.db", clock, retention_days=1)
    log.record("card_present", uid="04A2")
    assert log.flush()
    clock.t += 3 * 86400
    log.prune()
    assert log.count("sessions") == 1
    log.record("card_removed", uid="04A2")
    assert log.flush()
    assert log.conn.execute("SELECT duration_s FROM sessions").fetchone()[0] == pytest.approx(3 * 86400)
    log.close()


# --- schema and foreign files --------------------------------------------------------------------


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "usage.db"
    open_log(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(UsageDbError, match="newer Klick"):
        open_log(path)
    assert path.read_bytes() == before


def test_foreign_files_are_refused(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is a shopping list, not a database\n" * 200)
    with pytest.raises(UsageDbError, match="not a Klick usage database"):
        open_log(junk)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE recipes(name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(UsageDbError, match="not a Klick usage database"):
        open_log(other)
    conn = sqlite3.connect(other)
    conn.execute("PRAGMA user_version=1")
    conn.close()
    with pytest.raises(UsageDbError, match="not a Klick usage database"):
        open_log(other)


def test_empty_sqlite_file_is_migrated_forward(tmp_path):
    path = tmp_path / "usage.db"
    sqlite3.connect(path).close()
    log = open_log(path)
    assert log.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert log.conn.execute("SELECT value FROM meta WHERE key='kind'").fetchone()[0] == "klick-usage"
    log.close()


# --- device pseudonym ---------------------------------------------------------------------------


def test_device_pseudonym(tmp_path):
    assert device_pseudonym("hbg-07") == "hbg-07"
    mid = tmp_path / "machine-id"
    mid.write_text("0123456789abcdef0123456789abcdef\n")
    name = device_pseudonym("", mid)
    assert name.startswith("dev-") and "0123456789abcdef" not in name
    assert name == device_pseudonym("  ", mid)
    mid.write_text("fedcba9876543210fedcba9876543210\n")
    assert device_pseudonym("", mid) != name
    fallback = device_pseudonym("", tmp_path / "missing")
    assert fallback.startswith("dev-") and len(fallback) == 16


def test_from_config(tmp_path):
    (tmp_path / "klick.yaml").write_text("pilot:\n  enrolled: true\n  device_name: hbg-12\n  retention_days: 90\n")
    from klick.config import load_config

    cfg = load_config()
    log = UsageLog.from_config(cfg)
    assert log.path == tmp_path / "usage.db" and log.device == "hbg-12" and log.enrolled
    assert log.retention_days == 90
    log.close()


# --- a writer killed mid-write ------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys, time
    from klick.usage import UsageLog
    log = UsageLog.open(sys.argv[1], device="kill", enrolled=True, retention_days=365)
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        uid = "04A2%04X" % (n % 7)
        log.record("card_present", uid=uid, action_type="web", detail="x" * (n % 300))
        log.record("action_started", uid=uid, action_type="web")
        log.record("card_removed", uid=uid)
""")


def test_sigkilled_writer_leaves_a_sound_database(tmp_path):
    path = tmp_path / "usage.db"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    seen = 0
    for round_ in range(6):
        proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, env=env)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(0.05 + 0.04 * round_)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        count = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        conn.close()
        assert count >= seen  # committed rows are never lost
        seen = count
    assert seen > 0
    log = open_log(path)  # and Klick opens it again, with no session left open
    assert log.flush()
    assert log.conn.execute("SELECT count(*) FROM sessions WHERE ended_at IS NULL").fetchone()[0] == 0
    log.close()


def test_iso_round_trip():
    assert from_iso(iso(T0 + 0.25)) == pytest.approx(T0 + 0.25)
    assert iso(T0).endswith("Z") and len(iso(T0)) == 24


# --- the log never delays or stops the screen (issue 10, item 2) ---------------------------------

PAGE = 4096


def filled_log(path, events=4000):
    """A log of a few hundred pages with a session left open, as a launcher cut by a power loss leaves it."""
    log = open_log(path, Clock(T0), retention_days=3650)
    rows = [
        ("card_present" if i % 2 else "card_removed", f"04A2{i % 50:04X}", "web", None, "x" * 60, T0 + i) for i in range(events)
    ]
    log.record_many(rows)
    log.record_many([("card_present", "04A2B3", "web", None, None, T0 + events + 1)])
    log.close()
    return path


def passes_quick_check(path) -> bool:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA quick_check").fetchall() == [("ok",)]
    except sqlite3.DatabaseError:
        return False
    finally:
        conn.close()


def test_a_damaged_database_is_moved_aside_and_a_new_one_started(tmp_path, caplog):
    path = filled_log(tmp_path / "usage.db")
    pages = path.stat().st_size // PAGE
    assert pages > 20
    noise = random.Random(7)
    with open(path, "r+b") as fh:  # what a failing SD card does: a few pages in the middle are garbage
        for n in (pages // 2, pages // 2 + 1, pages // 2 + 2):
            fh.seek(n * PAGE)
            fh.write(noise.randbytes(PAGE))
    assert not passes_quick_check(path)  # the damage is real

    caplog.set_level("INFO", logger="klick.usage")
    log = open_log(path)  # returns at once: quick_check reads the whole file, on the writer thread
    assert log.record("card_present", uid="04A2", action_type="web")
    assert log.flush()
    aside = [p for p in tmp_path.glob("usage.db.damaged-*") if not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1 and not passes_quick_check(aside[0])  # kept as it was, for whoever wants its rows
    lines = [r for r in caplog.records if "moved aside" in r.getMessage()]
    assert len(lines) == 1 and aside[0].name in lines[0].getMessage()
    # The new log works, starts empty, and holds the event recorded while the check ran.
    assert log.count("events") == 1
    assert log.conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    log.close()


def test_a_blank_first_page_is_damage_not_a_foreign_file(tmp_path):
    path = filled_log(tmp_path / "usage.db", events=200)
    with open(path, "r+b") as fh:
        fh.write(b"\x00" * PAGE)
    log = open_log(path)
    assert len([p for p in tmp_path.glob("usage.db.damaged-*") if not p.name.endswith(("-wal", "-shm"))]) == 1
    log.close()


LOCKER = textwrap.dedent("""
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute(sys.argv[2])
    print("locked", flush=True)
    sys.stdin.readline()
    conn.execute("ROLLBACK")
""")


class Locker:
    """Another process holding SQLite's write lock on the file until released."""

    def __init__(self, path, statement="BEGIN IMMEDIATE"):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(path), statement], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("go\n")
            self.proc.stdin.flush()
            self.proc.wait(10)


def count_rows(path, sql="SELECT count(*) FROM events"):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


@pytest.mark.serial  # measures wall time
def test_a_lock_held_by_another_process_never_makes_open_or_record_wait(tmp_path):
    path = filled_log(tmp_path / "usage.db", events=100)  # with a session cut by a crash to close at start
    before = count_rows(path)
    locker = Locker(path)
    try:
        started = time.monotonic()
        log = open_log(path, retention_days=3650)
        assert time.monotonic() - started < 1.0  # was: sqlite3.OperationalError after 5 s
        slowest = 0.0
        for i in range(20):
            t = time.monotonic()
            assert log.record("card_present" if i % 2 else "card_removed", uid="04B3", action_type="web") is True
            slowest = max(slowest, time.monotonic() - t)
        assert slowest < 0.1  # was: 5 s per card
        assert not log.flush(0.3) and count_rows(path) == before  # the rows wait in memory
    finally:
        locker.release()
    assert log.flush(10)
    assert count_rows(path) == before + 20
    assert count_rows(path, "SELECT count(*) FROM sessions WHERE ended_at IS NULL") <= 1
    assert count_rows(path, "SELECT count(*) FROM sessions WHERE end_reason = 'restart'") == 1  # the start-up work was done
    log.close()


def test_a_new_database_locked_by_another_process_still_opens(tmp_path):
    path = tmp_path / "usage.db"
    sqlite3.connect(path).close()
    locker = Locker(path, "BEGIN EXCLUSIVE")  # a rollback-journal file: even reading waits
    try:
        log = open_log(path)
        assert log.record("reader_status", outcome="connected")
        assert log.get_state("pin") is None  # fails softly
    finally:
        locker.release()
    assert log.flush(10) and count_rows(path) == 1
    log.close()


def test_a_full_queue_drops_and_counts_rather_than_waits(tmp_path, caplog):
    from klick.usage import BATCH_MAX, QUEUE_MAX

    path = tmp_path / "usage.db"
    open_log(path).close()
    caplog.set_level("INFO", logger="klick.usage")
    locker = Locker(path)
    try:
        log = open_log(path)
        n = QUEUE_MAX + BATCH_MAX + 200
        kept = sum(log.record("reader_status", outcome="connected") for _ in range(n))
        assert log.dropped == n - kept and log.dropped >= 200
        behind = [r for r in caplog.records if "dropped" in r.getMessage()]
        assert len(behind) == 1  # one line, not one per drop
    finally:
        locker.release()
    assert log.flush(10)
    assert count_rows(path) == kept
    counted = [r.getMessage() for r in caplog.records if "were dropped" in r.getMessage()]
    assert counted == [f"{n - kept} usage events were dropped while the database was busy (the queue holds {QUEUE_MAX})."]
    log.close()


def test_a_newer_or_foreign_file_is_refused_without_being_changed(tmp_path):
    newer = tmp_path / "newer.db"
    conn = sqlite3.connect(newer)  # a rollback-journal file, as SQLite makes by default
    conn.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO meta VALUES ('kind', 'klick-usage')")
    conn.execute("CREATE TABLE events(id INTEGER PRIMARY KEY, at TEXT)")
    conn.commit()
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE recipes(name TEXT)")
    conn.commit()
    conn.close()
    for path, words in ((newer, "newer Klick"), (foreign, "not a Klick usage database")):
        before = path.read_bytes()
        with pytest.raises(UsageDbError, match=words):
            open_log(path)
        assert path.read_bytes() == before  # was: switched to WAL before the refusal
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(path.name)) == [path.name]


@pytest.mark.serial  # measures wall time
def test_state_is_kept_across_restarts_and_never_waits(tmp_path):
    path = tmp_path / "usage.db"
    log = open_log(path)
    assert log.get_state("pin_failures") is None
    assert log.set_state("pin_failures", "3") and log.get_state("pin_failures") == "3"  # at once, from memory
    assert log.flush()
    log.close()
    log = open_log(path)
    assert log.get_state("pin_failures") == "3"
    locker = Locker(path)
    try:
        started = time.monotonic()
        assert log.set_state("pin_failures", "4")
        assert log.set_state("pin_pause_until", "1780000300")
        assert log.get_state("pin_failures") == "4"
        assert time.monotonic() - started < 0.5
    finally:
        locker.release()
    assert log.set_state("pin_pause_until", None) and log.get_state("pin_pause_until") is None
    log.close()
    log = open_log(path)
    assert log.get_state("pin_failures") == "4" and log.get_state("pin_pause_until") is None
    log.close()
    assert not log.set_state("x", "1") and log.get_state("x") is None  # closed: not stored, no error


# --- hostile input: odd text, any damage -------------------------------------------------------

odd_text = st.one_of(
    st.none(),
    st.text(max_size=50),
    st.text(st.characters(codec=None, categories=("Cs", "Co", "Cc", "Zs", "So")), max_size=20),  # lone surrogates too
    st.just("x" * 100_000),
    st.integers(),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(sorted(KINDS)), odd_text, odd_text, odd_text, odd_text), min_size=1, max_size=12))
def test_any_text_is_stored_and_never_stops_the_writer(tmp_path_factory, events):
    path = tmp_path_factory.mktemp("odd") / "usage.db"
    log = open_log(path)
    for kind, uid, action_type, outcome, detail in events:
        assert log.record(kind, uid=uid, action_type=action_type, outcome=outcome, detail=detail)
    assert log.set_state("odd", "\ud800 state")
    assert log.flush()
    assert log.dropped == 0 and log.count("events") == len(events)
    assert log.record("reader_status", outcome="connected") and log.flush() and log.count("events") == len(events) + 1
    log.close()


@pytest.fixture(scope="module")
def sound_db(tmp_path_factory) -> str:
    """The path of a sound log (a path, so hypothesis does not print half a megabyte on a failure)."""
    return str(filled_log(tmp_path_factory.mktemp("sound") / "usage.db", events=600))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 200_000), st.binary(min_size=1, max_size=5000)), min_size=1, max_size=4))
def test_any_damage_to_the_file_is_refused_or_moved_aside_never_an_exception(tmp_path_factory, sound_db, patches):
    folder = tmp_path_factory.mktemp("damage")
    path = folder / "usage.db"
    data = bytearray(Path(sound_db).read_bytes())
    for offset, chunk in patches:
        offset %= len(data)
        data[offset : offset + len(chunk)] = chunk[: len(data) - offset]
    path.write_bytes(bytes(data))
    try:
        log = open_log(path)
    except UsageDbError:
        assert path.read_bytes() == bytes(data)  # refused: left exactly as it was
        return
    assert log.record("reader_status", outcome="connected")
    log.flush(10)  # a page damaged past quick_check's reach may still fail the write: logged, not raised
    log.close()
