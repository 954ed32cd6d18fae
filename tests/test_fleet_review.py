"""The fleet daemon and collector against what the review of 2026-11-30 found: a damaged record of
pushes or a broker event that ends the daemon, a usage.db replaced under it, rows it can never
deliver, times the wire took and the pilot file refused. Real Mosquitto, real files, real `klick`.
"""

from __future__ import annotations

import datetime
import datetime as dt
import json
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from fleet_broker import Broker, device_home, have_mosquitto, start_fleet, wait_for
from hypothesis import given, settings
from hypothesis import strategies as st
from test_export import make_device_db
from test_fleet import Spy, covered, last_seq, rows_of, start_collector, stop

from fleet import wire
from fleet.apply import STATE_FILE, Applier, ApplySettings
from fleet.collector import handle_message
from fleet.device import Device, settings_from_config
from fleet.mqtt import subscription_refused
from fleet.pilot import PilotStore
from klick.config import load_config
from klick.export import key_check, time_ok, time_sql
from klick.usage import UsageLog, withdraw_consent

needs_broker = pytest.mark.skipif(not have_mosquitto(), reason="mosquitto is not installed (make test installs it)")


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop(kill=True)


# --- 4: data never ends the daemon ----------------------------------------------------------------

DAMAGED_RECORDS = [
    '{"v": 1, "refused": {"cards": "x"}}',
    '{"v": 1, "refused": "x"}',
    '{"v": 1, "refused": {"questionnaire": {"version": "7", "problems": []}}}',
    '{"v": 1, "refused": {"cards": {"version": 3, "problems": "not a list"}}}',
    '{"v": 1, "refused": {"cards": {"version": 3, "problems": [NaN]}}}',
    '{"v": 1, "last": "x"}',
    '{"v": 1, "last": {"kind": "cards", "version": 2, "ok": true, "at": Infinity}}',
    '{"v": 1, "last": {"kind": "elsewhere", "version": 2, "ok": true}}',
    '{"v": 1, "cards": {"version": 2, "name": ["a"]}}',
]


@pytest.mark.parametrize("record", DAMAGED_RECORDS)
def test_a_damaged_record_of_pushes_of_any_shape_is_said_never_raised(tmp_path, record):
    (tmp_path / STATE_FILE).write_text(record)
    applier = Applier(ApplySettings("hbg-01", tmp_path, tmp_path / "cards.yaml", tmp_path / "q.yaml", (), ""))
    assert applier.damaged and "is damaged" in applier.damaged
    message = applier.message()
    assert message is None or wire.encode(message)


@needs_broker
def test_a_damaged_record_of_pushes_does_not_end_the_fleet_daemon(broker, tmp_path):
    home = tmp_path / "hbg-01"
    device_home(broker, home, "hbg-01")
    make_device_db(home / "usage.db", "hbg-01", days=1)
    (home / STATE_FILE).write_text('{"v": 1, "refused": {"cards": "x"}}')
    spy = Spy(broker)
    fleet = start_fleet(home)
    try:
        wait_for(lambda: any(t == "klick/hbg-01/state" and json.loads(p)["online"] for t, p in spy.all()), 30, what="a state")
        time.sleep(0.5)
        assert fleet.poll() is None, (home / "fleet.log").read_text()
    finally:
        stop(fleet)
        spy.close()
    assert "Traceback" not in (home / "fleet.log").read_text()


@needs_broker
def test_trouble_while_handling_what_the_broker_said_does_not_end_the_fleet_daemon(broker, tmp_path, monkeypatch):
    """handle() once ran outside the guard step() has: any exception there ended the daemon."""
    home = tmp_path / "hbg-02"
    monkeypatch.setenv("KLICK_HOME", str(home))
    device_home(broker, home, "hbg-02")
    make_device_db(home / "usage.db", "hbg-02", days=1)
    device = Device(settings_from_config(load_config(home / "klick.yaml")), keepalive=5)

    def broken() -> None:  # what message() did with {"refused": {"cards": "x"}} before the record was checked
        raise AttributeError("'str' object has no attribute 'get'")

    device.applier.message = broken  # type: ignore[method-assign]
    stopped: list[bool] = []

    def stop_when_connected() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (device.connected and device.last_error):
            time.sleep(0.05)
        time.sleep(0.3)
        stopped.append(device.connected)
        device.stop()

    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    stopper = threading.Thread(target=stop_when_connected)
    stopper.start()
    try:
        assert device.run() == 0
    finally:
        device.stop()
        stopper.join()
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])
    assert stopped == [True]
    assert device.last_error and "AttributeError" in device.last_error


# --- 2: a replaced usage.db is read anew ----------------------------------------------------------


@needs_broker
def test_a_usage_db_replaced_under_the_daemon_is_read_anew_and_its_withdrawal_is_published(broker, tmp_path):
    """The launcher moves a damaged usage.db aside; `klick pilot withdraw` deletes a damaged one and
    records the withdrawal in a new file. The daemon must read the new file, not the old one it has open."""
    home = tmp_path / "hbg-03"
    device_home(broker, home, "hbg-03")
    db = home / "usage.db"
    make_device_db(db, "hbg-03", days=1)
    spy = Spy(broker)
    fleet = start_fleet(home)
    seen: list[tuple[str, bytes]] = []
    since = 0

    def heard(what) -> bool:
        seen.extend(spy.all())
        return any(what(t, p) for t, p in seen[since:])

    try:
        wait_for(
            lambda: heard(lambda t, p: t == "klick/hbg-03/state" and json.loads(p).get("acked") == last_seq(db)),
            30,
            what="all sent",
        )
        since = len(seen)
        db.rename(home / "usage.db.moved-aside")  # the open handle still reads this one
        withdraw_consent(db, today=datetime.date(2026, 3, 5))
        log = UsageLog.open(db, device="hbg-03", enrolled=True)
        log.record("reader_status", outcome="lost", detail="unplugged")
        log.close()
        wait_for(lambda: heard(lambda t, p: t == "klick/hbg-03/withdrawn"), 20, what="the withdrawal")
        wait_for(lambda: heard(lambda t, p: t == "klick/hbg-03/rows"), 20, what="the new file's rows")
        wait_for(
            lambda: heard(lambda t, p: t == "klick/hbg-03/state" and json.loads(p).get("consent") == "withdrawn"),
            20,
            what="consent",
        )
    finally:
        stop(fleet)
        spy.close()
    after = seen[since:]
    withdrawn = [json.loads(p) for t, p in after if t == "klick/hbg-03/withdrawn"]
    assert [w["at"] for w in withdrawn] == ["2026-03-05"]
    rows = [r for t, p in after if t == "klick/hbg-03/rows" for r in json.loads(p)["rows"]]
    assert [(table, v[3]) for table, _s, v in rows] == [("events", "reader_status")]
    assert "was replaced; reading the new file" in (home / "fleet.log").read_text()


# --- 3: rows the collector would refuse are never sent for ever ---------------------------------


@needs_broker
def test_rows_written_under_an_earlier_device_name_stay_on_the_tablet_and_the_rest_arrive(broker, tmp_path):
    """Rows from before pilot.device_name was set carry another name; the collector refused each
    batch holding one, the tablet counted it sent, and the collector asked for it again for ever."""
    home = tmp_path / "hbg-04"
    device_home(broker, home, "hbg-04")
    db = home / "usage.db"
    make_device_db(db, "dev-0a1b2c3d", days=1)
    log = UsageLog.open(db, device="hbg-04", enrolled=True)
    log.record("reader_status", outcome="connected")
    log.record("card_present", uid="04A2B3C4D5E680", action_type="video_call")
    log.close()
    pilot = tmp_path / "PILOT.sqlite"
    collector = start_collector(broker, pilot, log=tmp_path / "collector.log")
    spy = Spy(broker)
    fleet = start_fleet(home)
    try:
        wait_for(lambda: covered(pilot, "hbg-04") >= last_seq(db), 30, what="the collector to cover every row")
        states = wait_for(
            lambda: [json.loads(p) for t, p in spy.all() if t == "klick/hbg-04/state" and "earlier device name" in p.decode()],
            20,
            what="the state to say why rows were left",
        )
    finally:
        stop(fleet)
        stop(collector)
        spy.close()
    assert "'dev-0a1b2c3d'" in states[-1]["last_error"]
    assert {r[0] for r in rows_of(pilot, "events")} == {"hbg-04"}
    assert [r[3] for r in rows_of(pilot, "events")] == ["reader_status", "card_present"]
    assert (home / "fleet.log").read_text().count("earlier device name") == 1
    assert "wrong_device" not in (tmp_path / "collector.log").read_text()


def _written_answers(db: Path, device: str, count: int, text: str) -> None:
    """``count`` answered questions with written answers, as the launcher stores them."""
    conn = sqlite3.connect(db)
    with conn:
        for i in range(count):
            at = f"2026-03-02T12:{i // 60 % 60:02d}:{i % 60:02d}.000Z"
            pid = conn.execute(
                "INSERT INTO prompts (device, question_id, trigger, state, created_at, expires_at, shown_at, closed_at)"
                " VALUES (?, 'anything_difficult', 'after_uses:per_card', 'answered', ?, ?, ?, ?)",
                (device, at, "2026-03-09T12:00:00.000Z", at, at),
            ).lastrowid
            conn.execute(
                "INSERT INTO answers (prompt_id, device, question_id, value, text, at) VALUES (?, ?, 'anything_difficult', 'yes', ?, ?)",
                (pid, device, text, at),
            )
    conn.close()


@needs_broker
def test_a_batch_larger_than_the_collector_takes_is_split_and_arrives(broker, tmp_path):
    """500 written answers of 2000 characters are 3 MB: over wire.MAX_MESSAGE, refused, sent again for ever."""
    home = tmp_path / "hbg-05"
    device_home(broker, home, "hbg-05", include_free_text=True)
    db = home / "usage.db"
    make_device_db(db, "hbg-05", days=1)
    # This tablet opts in to free text, so only the test's own answers carry any: `make soak`
    # searches every test message for the demo's free text to prove a default tablet never sends it.
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE answers SET text = NULL")
    text = "Ljudet € " * 222 + "sl"  # 2000 characters, 2444 bytes in UTF-8
    assert len(text) == 2000
    _written_answers(db, "hbg-05", 500, text)
    pilot = tmp_path / "PILOT.sqlite"
    collector = start_collector(broker, pilot, log=tmp_path / "collector.log")
    fleet = start_fleet(home)
    try:
        wait_for(lambda: covered(pilot, "hbg-05") >= last_seq(db), 40, what="the collector to cover every row")
    finally:
        stop(fleet)
        stop(collector)
    answers = rows_of(pilot, "answers")
    assert sum(1 for r in answers if text in r) == 500
    assert "too_large" not in (tmp_path / "collector.log").read_text()


def test_a_split_batch_covers_the_same_stretch_with_the_same_rows_each_part_small_enough():
    rows = tuple(
        ("events", seq, ("hbg-01", seq, "2026-03-02T12:00:00.000Z", "reader_status", None, None, "lost", "x" * 400))
        for seq in range(3, 903, 3)
    )
    batch = wire.Batch("0123456789ab", 2, 905, rows)
    parts = wire.fitted(batch, limit=20_000)
    assert len(parts) > 1
    assert parts[0][0].after == 2 and parts[-1][0].upto == 905
    assert all(a[0].upto == b[0].after for a, b in zip(parts, parts[1:]))
    assert all(len(p) <= 20_000 and wire.decode_rows(p, "hbg-01") == part for part, p in parts)
    assert tuple(r for part, _ in parts for r in part.rows) == rows


# --- 5: one rule for a time -----------------------------------------------------------------------

KEY = "a pilot secret for the review's tests"
_SQL = sqlite3.connect(":memory:")


def _sql_time_ok(value: object) -> bool:
    return bool(_SQL.execute(f"SELECT {time_sql('?1')}", (value,)).fetchone()[0])


_times = st.one_of(
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)).map(
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"
    ),
    st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z", fullmatch=True),
    st.text(max_size=30),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.none(),
)


@settings(max_examples=400, deadline=None)
@given(_times)
def test_a_time_is_one_rule_in_python_and_in_sql(value):
    assert time_ok(value) == _sql_time_ok(value)
    if time_ok(value):
        assert 1970 <= int(value[:4]) < 2200


def test_the_time_rule_takes_what_klick_writes_and_nothing_else():
    assert time_ok("1970-01-01T00:00:00.000Z") and time_ok("2199-12-31T23:59:59.999Z")
    for bad in ("1969-12-31T23:59:59.999Z", "2200-01-01T00:00:00.000Z", "1900-01-01T00:00:00.000Z", "2026-02-30T12:00:00.000Z"):
        assert not time_ok(bad) and not _sql_time_ok(bad)
    assert not time_ok("２０２６-03-02T12:00:00.000Z")  # digits, but not ones Klick writes


def test_a_time_before_1970_from_one_tablet_never_stops_the_collected_pilot_file_merging(tmp_path, klick):
    """The wire once took 1900-01-01 (no lower bound); merge then refused the whole collected file."""
    store = PilotStore.open(tmp_path / "PILOT.sqlite", key_check(KEY))

    def feed(device: str, at: str) -> None:
        row = [device, 1, at, "reader_status", None, None, "connected", None]
        payload = json.dumps({"v": 1, "key_check": key_check(KEY), "after": 0, "upto": 1, "rows": [["events", 1, row]]})
        store.begin()
        handle_message(store, f"klick/{device}/rows", payload.encode(), now=1000.0)
        store.commit()

    feed("d9", "1900-01-01T00:00:00.000Z")
    feed("d8", "2250-01-01T00:00:00.000Z")
    feed("d1", "2026-03-02T12:00:00.000Z")
    assert store.rejects() == {"bad_value": 2} and store.counts()["events"] == 1
    store.close()
    result = klick("export", "merge", str(tmp_path / "PILOT.sqlite"), "--out", str(tmp_path / "merged.sqlite"))
    assert result.returncode == 0, result.stderr
    assert rows_of(tmp_path / "merged.sqlite", "events")[0][:3] == ("d1", 1, "2026-03-02T12:00:00.000Z")


# --- 11: a subscription the broker refuses is said -------------------------------------------------


def test_a_subscription_the_broker_refuses_is_said_with_the_user_to_take():
    """A broker that says so (EMQX; Mosquitto's ACL file grants every subscription and sends nothing)
    answers a subscription its ACL denies with a failing reason code, which status and push ignored."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode

    granted, denied = ReasonCode(PacketTypes.SUBACK, "Granted QoS 1"), ReasonCode(PacketTypes.SUBACK, "Not authorized")
    topics = ["klick/+/state", "klick/+/applied"]
    assert subscription_refused("office", topics, [granted, granted]) is None
    words = subscription_refused("collector", topics, [granted, denied])
    assert words and "'collector' may not read klick/+/applied (Not authorized)" in words and "use the office user" in words


@needs_broker
def test_status_as_a_broker_user_who_may_not_read_the_states_says_it_may_be_the_user(broker, tmp_path, klick):
    home = tmp_path / "hbg-06"
    device_home(broker, home, "hbg-06")
    make_device_db(home / "usage.db", "hbg-06", days=1)
    fleet = start_fleet(home)
    try:
        wait_for(lambda: "connected" in (home / "fleet.log").read_text(), 20, what="the tablet")
        result = klick("fleet", "status", *broker.office_args("hbg-06"))  # a tablet's user reads no states
    finally:
        stop(fleet)
    assert "this broker user may not read their states (use the office user)" in result.stdout
    assert "Traceback" not in result.stderr


# --- 10: collect --out follows the --out rules and never changes a file it refuses -----------------


def test_collect_out_never_makes_folders_nor_changes_a_file_it_refuses(tmp_path, klick):
    from fleet_broker import free_port, make_certificates

    ca, _, _ = make_certificates(tmp_path / "certs")
    (tmp_path / "pw").write_text("pw\n")
    office = ("--host", "127.0.0.1", "--port", str(free_port()), "--ca-file", str(ca), "--username", "collector")
    office += ("--password-file", str(tmp_path / "pw"))

    result = klick("fleet", "collect", *office, "--out", str(tmp_path / "typo" / "PILOT.sqlite"))
    assert result.returncode == 2 and "does not exist; make it first" in result.stderr
    assert not (tmp_path / "typo").exists()

    foreign = tmp_path / "budget.sqlite"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE money (amount INTEGER)")
    conn.execute("INSERT INTO money VALUES (42)")
    conn.commit()
    conn.close()
    before = foreign.read_bytes()
    result = klick("fleet", "collect", *office, "--out", str(foreign))
    assert result.returncode == 1 and "is not a pilot file written by 'klick fleet collect'" in result.stderr
    assert foreign.read_bytes() == before  # still in its own journal mode: the WAL pragma was never run
    assert not Path(f"{foreign}-wal").exists()

    result = klick("fleet", "collect", *office, "--out", str(ca))
    assert result.returncode == 2 and "is the broker's CA certificate" in result.stderr
    assert "Traceback" not in result.stderr


# --- 20: what a rolled-back message set is not believed -----------------------------------------------


def _batch(device: str, seq: int, key: str = KEY) -> bytes:
    row = [device, seq, "2026-03-02T12:00:00.000Z", "reader_status", None, None, "connected", None]
    return json.dumps(
        {"v": 1, "key_check": key_check(key), "after": seq - 1, "upto": seq, "rows": [["events", seq, row]]}
    ).encode()


def test_the_key_and_devices_of_a_rolled_back_message_are_written_by_the_next_one(tmp_path):
    """PilotStore.apply set key_check and devices in memory before a savepoint or transaction that
    was rolled back; the file's meta then never got them."""
    store = PilotStore.open(tmp_path / "PILOT.sqlite")
    store.begin()
    handle_message(store, "klick/d1/rows", _batch("d1", 1), now=1000.0)
    store.rollback()  # as the collector does when the disk is full
    store.begin()
    handle_message(store, "klick/d2/rows", _batch("d2", 1), now=1000.0)
    store.commit()
    store.close()
    conn = sqlite3.connect(tmp_path / "PILOT.sqlite")
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    conn.close()
    assert meta["key_check"] == key_check(KEY) and meta["devices"] == "d2"


# --- 14: one check for a device name and a time, on the wire and in a push ----------------------------


@pytest.mark.parametrize(("device", "at"), [("office", "2026-03-05T12:00:00.000Z"), ("hbg-01", "1900-01-01T00:00:00.000Z")])
def test_a_push_for_an_office_users_name_or_with_a_time_no_tablet_writes_is_refused(device, at):
    from fleet import envelope
    from fleet.signing import new_key_pair

    key = new_key_pair()
    with pytest.raises(envelope.BadPush, match="wrong (device|at)"):
        envelope.seal(key, "cards", device, 1, b"body", name="set.klick", at=at)  # the office's side
    good = envelope.seal(key, "cards", "hbg-01", 1, b"body", name="set.klick", at="2026-03-05T12:00:00.000Z")
    forged = good.replace(b'"device":"hbg-01"', f'"device":"{device}"'.encode()).replace(b"2026-03-05T12:00:00.000Z", at.encode())
    with pytest.raises(envelope.BadPush, match="wrong (device|at)"):
        envelope.open_envelope(forged)  # the tablet's side
