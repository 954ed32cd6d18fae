"""The fleet's parts without a broker: usage.db's sequence, retention of unsent rows, what the outbox
reads, the collector's pilot file (duplicates, versions, holes, withdrawal), hostile messages, status.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import sqlite_utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet import wire
from fleet.collector import handle_message
from fleet.outbox import Outbox
from fleet.pilot import RESEND_AFTER_S, PilotStore
from fleet.status import format_lines, summarise
from klick.export import card_hasher, key_check
from klick.usage import FLEET_ACKED, FLEET_MAX_BACKLOG_DAYS, SCHEMA_VERSION, UsageLog, iso

KEY = "a pilot secret for the store tests"
T0 = 1772452800.0
DAY = 86_400.0
UID = "04A2B3C4D5E680"


def seqs(db: Path, table: str) -> dict[int, int]:
    conn = sqlite3.connect(db)
    try:
        return dict(conn.execute(f"SELECT id, seq FROM {table}"))
    finally:
        conn.close()


def open_log(path: Path, clock=None, **kw) -> UsageLog:
    """A usage log whose every record is on disk when the call returns: these tests read the file
    right after each write (the launcher's records are queued for a writer thread)."""
    t = clock or [T0]
    log = UsageLog.open(
        path, device="hbg-1", enrolled=kw.pop("enrolled", True), retention_days=kw.pop("days", 30), now=lambda: t[0]
    )
    queued = log.record

    def record(*args, **kwargs) -> bool:
        kept = queued(*args, **kwargs)
        assert log.flush(10)
        return kept

    log.record = record  # type: ignore[method-assign]
    assert log.flush(10)
    return log


# --- the sequence in usage.db --------------------------------------------------------------------


def test_every_row_written_or_changed_gets_the_next_sequence_number(tmp_path):
    db = tmp_path / "usage.db"
    log = open_log(db)
    assert SCHEMA_VERSION >= 2
    log.record("card_present", uid=UID, action_type="web")
    first = seqs(db, "sessions")
    (session,) = first
    log.record("card_removed", uid=UID)  # closes the session: an update
    events, sessions = seqs(db, "events"), seqs(db, "sessions")
    assert sorted(events.values()) == sorted(set(events.values()))
    assert sessions[session] > first[session] > 0
    assert sessions[session] > max(events.values()) - 1  # the close came with the second event
    prompt = log.conn.execute(
        "INSERT INTO prompts(device, question_id, trigger, state, created_at, expires_at) VALUES ('hbg-1','q','t','queued','x','y')"
    ).lastrowid
    before = seqs(db, "prompts")[prompt]
    log.conn.execute(
        "INSERT INTO answers(prompt_id, device, question_id, value, at) VALUES (?, 'hbg-1', 'q', '5', 'x')", (prompt,)
    )
    (answer,) = seqs(db, "answers").values()
    assert seqs(db, "prompts")[prompt] > before and answer > before  # an answer sends its prompt again
    all_seqs = [s for t in ("events", "sessions", "prompts", "answers") for s in seqs(db, t).values()]
    assert len(all_seqs) == len(set(all_seqs))
    assert log.conn.execute("SELECT last FROM row_seq").fetchone()[0] == max(all_seqs)
    log.close()


def test_a_version_1_database_is_numbered_when_migrated(tmp_path):
    db = tmp_path / "usage.db"
    conn = sqlite3.connect(db, isolation_level=None)
    from klick.usage_file import _MIGRATIONS

    _MIGRATIONS[1](sqlite_utils.Database(conn))
    conn.execute("INSERT INTO meta VALUES ('kind', 'klick-usage')")
    for i in range(5):
        conn.execute("INSERT INTO events(at, device, kind) VALUES (?, 'hbg-1', 'reader_status')", (iso(T0 + i),))
    conn.execute("INSERT INTO sessions(device, uid, started_at) VALUES ('hbg-1', 'X', ?)", (iso(T0),))
    conn.execute("PRAGMA user_version=1")
    conn.close()
    log = open_log(db)
    ev, se = seqs(db, "events"), seqs(db, "sessions")
    assert list(ev.values()) == sorted(ev.values()) and None not in ev.values()
    assert se[1] > max(ev.values())
    log.record("reader_status", outcome="connected")
    assert max(seqs(db, "events").values()) > se[1]
    log.close()


def test_retention_keeps_rows_the_broker_has_not_acknowledged_until_max_backlog_days(tmp_path):
    db = tmp_path / "usage.db"
    clock = [T0]
    log = open_log(db, clock, days=365)
    for day in range(100):
        clock[0] = T0 + day * DAY
        log.record("reader_status", outcome="connected")
    log.retention_days = 30
    events = seqs(db, "events")
    ids = sorted(events)  # a new file numbers its rows from the clock, not from 1
    # The fleet acknowledged the first 20 days; it keeps unsent rows at most 60 days.
    acked = events[ids[19]]
    log.conn.execute("INSERT INTO meta VALUES (?, ?), (?, ?)", (FLEET_ACKED, str(acked), FLEET_MAX_BACKLOG_DAYS, "60"))
    clock[0] = T0 + 100 * DAY
    log.prune()
    left = sorted(seqs(db, "events"))
    # Days 0-19 sent and past retention: gone. Days 20-39 unsent but older than 60 days: gone.
    # Days 40-69 unsent, past retention, within the backlog limit: kept. 70-99 within retention.
    assert left == ids[40:]
    log.conn.execute("UPDATE meta SET value = ? WHERE key = ?", (str(events[ids[79]]), FLEET_ACKED))
    log.prune()
    assert sorted(seqs(db, "events")) == ids[70:]  # plain retention again
    log.conn.execute("DELETE FROM meta WHERE key LIKE 'fleet:%'")
    log.close()


def test_without_the_fleet_retention_is_unchanged(tmp_path):
    db = tmp_path / "usage.db"
    clock = [T0]
    log = open_log(db, clock, days=30)
    for day in range(40):
        clock[0] = T0 + day * DAY
        log.record("reader_status", outcome="connected")
    log.prune()
    assert len(seqs(db, "events")) == 31
    log.close()


# --- the outbox ----------------------------------------------------------------------------------


def make_outbox(db: Path, **kw) -> Outbox:
    return Outbox(db, card_hasher(KEY), enrolled=kw.get("enrolled", True), free_text=kw.get("free_text", False))


def test_batches_cover_the_sequence_without_a_hole_and_follow_one_another(tmp_path):
    db = tmp_path / "usage.db"
    log = open_log(db)
    for i in range(25):
        log.record("card_present", uid=f"04{i:06X}", action_type="web")
    box = make_outbox(db)
    after, got = 0, []
    while (batch := box.read_batch(after, key_check(KEY), limit=7)) is not None:
        assert batch.after == after and batch.upto >= after
        assert all(after < s <= batch.upto for _, s, _ in batch.rows)
        got += batch.rows
        after = batch.upto
    assert after == log.conn.execute("SELECT last FROM row_seq").fetchone()[0]
    assert sum(1 for t, _, _ in got if t == "events") == 25
    # Sessions come as their newest version only (each was closed by the next card).
    assert sum(1 for t, _, _ in got if t == "sessions") == 25
    assert all(v[4] is None or v[4].startswith("c") for t, _, v in got if t == "events")
    box.close()
    log.close()


@pytest.mark.parametrize("consent", ["not_enrolled", "withdrawn"])
def test_without_consent_only_reader_health_leaves(tmp_path, consent):
    db = tmp_path / "usage.db"
    log = open_log(db)
    log.record("card_present", uid=UID, action_type="web")
    log.record("reader_status", outcome="lost", detail="unplugged")
    log.record("card_removed", uid=UID)
    if consent == "withdrawn":
        log.conn.execute("INSERT INTO meta VALUES ('withdrawn_on', '2026-03-04')")
    box = make_outbox(db, enrolled=consent != "not_enrolled")
    assert box.consent() == consent
    batch = box.read_batch(0, key_check(KEY))
    assert [(t, v[3]) for t, _, v in batch.rows] == [("events", "reader_status")]
    assert batch.upto == log.conn.execute("SELECT last FROM row_seq").fetchone()[0]
    assert box.health(0).last_card_at is None
    box.close()
    log.close()


@pytest.mark.serial  # measures wall time
def test_the_fleet_never_waits_long_for_the_launcher(tmp_path):
    db = tmp_path / "usage.db"
    log = open_log(db)
    log.record("reader_status", outcome="connected")
    box = make_outbox(db)
    box.open()
    held = threading.Event()
    release = threading.Event()

    def launcher_holds_the_lock():
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        release.wait(5)
        conn.execute("COMMIT")
        conn.close()

    t = threading.Thread(target=launcher_holds_the_lock)
    t.start()
    held.wait(5)
    started = time.monotonic()
    assert box.set_acked(1, 90) is False  # busy: try later, never wait long
    assert time.monotonic() - started < 1.0
    assert box.read_batch(0, key_check(KEY)) is not None  # reading never waits (WAL)
    release.set()
    t.join()
    assert box.set_acked(1, 90) is True and box.acked() == 1
    box.close()
    log.close()


def test_the_outbox_waits_for_a_usage_db_that_is_not_there_or_not_klicks(tmp_path):
    from fleet.outbox import NotReady

    box = make_outbox(tmp_path / "usage.db")
    with pytest.raises(NotReady, match="does not exist"):
        box.open()
    assert not (tmp_path / "usage.db").exists()  # never made here
    (tmp_path / "usage.db").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(NotReady):
        box.open()


# --- the collector's pilot file --------------------------------------------------------------------


def rows_message(device: str, after: int, upto: int, rows: list) -> bytes:
    return wire.encode_rows(wire.Batch(key_check(KEY), after, upto, tuple(rows)))


def event(device: str, src_id: int, kind: str = "reader_status", at: float = T0) -> tuple:
    return (device, src_id, iso(at), kind, None, None, "connected", None)


def session(device: str, src_id: int, ended: str | None) -> tuple:
    return (device, src_id, "c" + "0" * 20, "web", iso(T0), ended, 1.5 if ended else None, "removed" if ended else None)


@pytest.fixture
def store(tmp_path):
    s = PilotStore.open(tmp_path / "PILOT.sqlite")
    yield s
    s.close()


def feed(store: PilotStore, topic: str, payload: bytes, now: float = 1000.0) -> list:
    store.begin()
    out = handle_message(store, topic, payload, now=now)
    store.commit()
    return out


def test_a_row_delivered_twice_is_stored_once_and_a_newer_version_replaces_an_older(store):
    open_ = rows_message("d1", 0, 2, [("events", 1, event("d1", 1)), ("sessions", 2, session("d1", 1, None))])
    closed = rows_message("d1", 2, 5, [("sessions", 5, session("d1", 1, iso(T0 + 9)))])
    for payload in (open_, open_, closed, open_, closed):
        feed(store, "klick/d1/rows", payload)
    assert store.counts() == {"events": 1, "sessions": 1, "answers": 0}
    ended = store.conn.execute("SELECT ended_at FROM sessions").fetchone()[0]
    assert ended == iso(T0 + 9)  # the old version delivered late did not win
    assert store.rejects() == {}


def test_a_hole_in_a_devices_sequence_is_asked_for_and_the_request_cleared_when_filled(store):
    feed(store, "klick/d1/rows", rows_message("d1", 0, 10, [("events", 3, event("d1", 1))]))
    out = feed(store, "klick/d1/rows", rows_message("d1", 20, 30, [("events", 25, event("d1", 3))]))
    assert [t for t, _ in out] == ["klick/d1/set/resend"] and json.loads(out[0][1])["from"] == 10
    assert feed(store, "klick/d1/rows", rows_message("d1", 20, 30, [])) == []  # asked already
    # The device sends everything again from the hole on (what came after it, too).
    assert feed(store, "klick/d1/rows", rows_message("d1", 10, 20, [("events", 15, event("d1", 2))])) == []
    out = feed(store, "klick/d1/rows", rows_message("d1", 20, 30, [("events", 25, event("d1", 3))]))
    assert out == [("klick/d1/set/resend", b"")]  # filled: the retained request is cleared
    # A state saying the broker acknowledged more than we hold shows a lost last batch.
    out = feed(store, "klick/d1/state", wire.encode({"v": 1, "online": True, "acked": 40}))
    assert json.loads(out[0][1])["from"] == 30


def test_a_hole_that_does_not_fill_is_asked_for_again_without_waiting_to_hear_from_the_device(store):
    """Rows the broker dropped again while the device resent them: the device has sent all it has
    and is quiet for minutes, so the collector asks again on its own once RESEND_AFTER_S passed."""
    feed(store, "klick/d1/rows", rows_message("d1", 0, 10, [("events", 3, event("d1", 1))]), now=1000.0)
    out = feed(store, "klick/d1/rows", rows_message("d1", 20, 30, [("events", 25, event("d1", 3))]), now=1000.0)
    assert json.loads(out[0][1])["from"] == 10
    assert store.overdue(now=1000.0 + RESEND_AFTER_S - 1) == []  # asked a moment ago
    assert store.overdue(now=1000.0 + RESEND_AFTER_S + 1) == [("d1", 10)]
    assert store.overdue(now=1000.0 + RESEND_AFTER_S + 2) == []  # asked again just now
    # The hole begins to fill: nothing is overdue until it stops filling for RESEND_AFTER_S.
    feed(store, "klick/d1/rows", rows_message("d1", 10, 15, [("events", 12, event("d1", 2))]), now=1100.0)
    assert store.overdue(now=1100.0 + RESEND_AFTER_S - 1) == []
    assert store.overdue(now=1100.0 + RESEND_AFTER_S + 1) == [("d1", 15)]
    feed(store, "klick/d1/rows", rows_message("d1", 15, 30, [("events", 25, event("d1", 3))]), now=1200.0)
    assert store.overdue(now=9999.0) == []  # filled


def test_a_withdrawal_deletes_the_devices_personal_rows_and_refuses_later_ones(store):
    rows = [("events", 1, event("d1", 1)), ("events", 2, event("d1", 2, "card_present")), ("sessions", 3, session("d1", 1, None))]
    feed(store, "klick/d1/rows", rows_message("d1", 0, 3, rows))
    feed(store, "klick/d2/rows", rows_message("d2", 0, 3, [("sessions", 3, session("d2", 1, None))]))
    feed(store, "klick/d1/withdrawn", wire.encode({"v": 1, "at": "2026-03-05"}))
    assert store.conn.execute("SELECT device, kind FROM events").fetchall() == [("d1", "reader_status")]
    assert store.conn.execute("SELECT device FROM sessions").fetchall() == [("d2",)]
    feed(store, "klick/d1/rows", rows_message("d1", 0, 9, [*rows, ("events", 9, event("d1", 9))]))
    assert store.counts()["sessions"] == 1 and store.counts()["events"] == 2
    assert store.rejects() == {"after_withdrawal": 1}


@pytest.mark.parametrize(
    "topic,payload,reason",
    [
        ("klick/d1/rows", b"\xff\xfe", "not_json"),
        ("klick/d1/rows", b"[1,2]", "foreign"),
        (
            "klick/d1/rows",
            b'{"v":1,"key_check":"1a2b3c4d5e6f","after":0,"upto":1,"rows":[["events",1,["d2",1,"2026-03-02T12:00:00.000Z","reader_status",null,null,null,null]]]}',
            "wrong_device",
        ),
        (
            "klick/d1/rows",
            b'{"v":1,"key_check":"1a2b3c4d5e6f","after":0,"upto":1,"rows":[["events",1,["d1",1,"2026-13-02T12:00:00.000Z","reader_status",null,null,null,null]]]}',
            "bad_value",
        ),
        (
            "klick/d1/rows",
            b'{"v":1,"key_check":"1a2b3c4d5e6f","after":0,"upto":1,"rows":[["events",1,["d1",1,"2026-03-02T12:00:00.000Z","reader_status","04A2B3C4",null,null,null]]]}',
            "bad_value",
        ),
        ("klick/d1/rows", b'{"v":1,"key_check":"1a2b3c4d5e6f","after":5,"upto":1,"rows":[]}', "bad_range"),
        ("klick/d1/rows", b'{"v":1,"key_check":"1a2b3c4d5e6f","after":0,"upto":1,"rows":[["sqlite_master",1,[]]]}', "bad_rows"),
        ("klick/d1/rows", b"[" * 100_000, "not_json"),
        ("klick/d1/rows", b" " * (wire.MAX_MESSAGE + 1), "too_large"),
        ("klick/d1/rows", b'{"v":1,"key_check":"1a2b3c4d5e6f","after":0,"upto":1e999,"rows":[]}', "bad_range"),
        ("klick/../rows", b"{}", "foreign_topic"),
        ("klick/d1/other", b"{}", "foreign_topic"),
    ],
)
def test_malformed_oversized_and_foreign_messages_are_counted_never_stored(store, topic, payload, reason):
    assert feed(store, topic, payload) == []
    assert store.rejects() == {reason: 1}
    assert store.counts() == {"events": 0, "sessions": 0, "answers": 0}


def test_rows_hashed_with_another_export_key_are_refused(store):
    feed(store, "klick/d1/rows", rows_message("d1", 0, 1, [("events", 1, event("d1", 1))]))
    other = wire.encode_rows(wire.Batch(key_check("another key entirely"), 0, 1, (("events", 1, event("d2", 1)),)))
    feed(store, "klick/d2/rows", other)
    assert store.rejects() == {"wrong_key": 1} and store.counts()["events"] == 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    topic=st.one_of(
        st.sampled_from(["klick/d1/rows", "klick/d1/state", "klick/d1/withdrawn", "klick/d1/set/resend"]), st.text(max_size=40)
    ),
    payload=st.one_of(
        st.binary(max_size=2000),
        st.recursive(
            st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30)),
            lambda inner: st.one_of(st.lists(inner, max_size=8), st.dictionaries(st.text(max_size=10), inner, max_size=8)),
            max_leaves=40,
        ).map(lambda o: json.dumps(o).encode()),
        st.builds(
            lambda after, n, vals: json.dumps(
                {"v": 1, "key_check": key_check(KEY), "after": after, "upto": after + n, "rows": [["events", after + 1, vals]]}
            ).encode(),
            st.integers(0, 100),
            st.integers(0, 5),
            st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=30), st.just("d1")), max_size=9),
        ),
    ),
)
def test_any_bytes_as_a_message_never_crash_the_collector(store, topic, payload):
    store.begin()
    handle_message(store, topic, payload)
    store.commit()
    # Whatever was stored is something klick report can read: times parse, kinds are known.
    for (at,) in store.conn.execute("SELECT at FROM events"):
        time.strptime(at[:19], "%Y-%m-%dT%H:%M:%S")


def test_a_file_that_is_not_a_collectors_pilot_is_refused(tmp_path):
    from klick.export import ExportError

    (tmp_path / "x.sqlite").write_bytes(b"garbage" * 1000)
    with pytest.raises(ExportError):
        PilotStore.open(tmp_path / "x.sqlite")
    conn = sqlite3.connect(tmp_path / "y.sqlite")
    conn.execute("CREATE TABLE t (a)")
    conn.commit()
    conn.close()
    with pytest.raises(ExportError, match="not a pilot file"):
        PilotStore.open(tmp_path / "y.sqlite")


# --- status ----------------------------------------------------------------------------------------


def test_status_puts_problems_first_and_says_them_plainly():
    now = T0 + 10 * DAY
    full = {"v": 1, "online": True, "at": iso(now - 60), "since": iso(now - 3600), "reader": {"state": "connected"}, "backlog": 0}
    retained = {
        "ok-1": {"state": full, "seen": full},
        "gone-2": {"state": {"v": 1, "online": False, "session": "x"}, "seen": {**full, "at": iso(now - 3 * DAY)}},
        "lost-3": {"state": {**full, "reader": {"state": "lost", "detail": "USB"}}},
        "slow-4": {"state": {**full, "backlog": 900, "backlog_oldest_at": iso(now - 5 * 3600)}},
        "fresh-5": {"state": {**full, "online": False, "at": iso(now - 600), "since": iso(now - 600)}},
    }
    statuses = summarise(retained, now)
    assert [s.device for s in statuses] == ["gone-2", "lost-3", "slow-4", "fresh-5", "ok-1"]
    assert statuses[0].problems == ["offline for 3 days"] and statuses[0].since == iso(now - 3 * DAY)
    assert statuses[1].problems == ["reader lost (USB)"]
    assert statuses[2].problems[0].startswith("backlog growing: 900 rows")
    assert statuses[3].problems == [] and not statuses[3].online
    lines = format_lines(statuses)
    assert "OFFLINE" in lines[0] and "PROBLEM: offline for 3 days" in lines[0]
    assert "PROBLEM" not in lines[-1]
    garbled = summarise({"x": {"state": {"garbled": True}}, "y": {"state": {"v": 1, "online": "yes", "at": 5}}}, now)
    assert all(s.problems for s in garbled)


def test_a_damaged_row_in_usage_db_is_left_out_and_said_not_sent_to_be_refused(tmp_path):
    db = tmp_path / "usage.db"
    log = open_log(db)
    log.record("card_present", uid=UID, action_type="web")
    # Damage: bytes where a card ID belongs, a time that is not one, an unknown kind.
    log.conn.execute("INSERT INTO events(at, device, kind, uid) VALUES (?, 'hbg-1', 'card_present', x'0001')", (iso(T0),))
    log.conn.execute("INSERT INTO events(at, device, kind) VALUES ('yesterday', 'hbg-1', 'card_present')")
    log.conn.execute("INSERT INTO events(at, device, kind) VALUES (?, 'hbg-1', 'rm -rf')", (iso(T0),))
    log.record("card_removed", uid=UID)
    box = make_outbox(db)
    batch = box.read_batch(0, key_check(KEY))
    assert [v[3] for t, _, v in batch.rows if t == "events"] == ["card_present", "card_removed"]
    assert box.skipped == 3 and "not sent" in box.last_skipped
    # What is sent is accepted whole by the collector.
    store = PilotStore.open(tmp_path / "P.sqlite")
    store.begin()
    handle_message(store, "klick/hbg-1/rows", wire.encode_rows(batch))
    store.commit()
    assert store.rejects() == {} and store.counts()["events"] == 2
    store.close()
    box.close()
    log.close()
