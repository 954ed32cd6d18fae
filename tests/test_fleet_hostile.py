"""The fleet attacked: what a compromised tablet, a stranger on the network, a leaked office password
or an unlucky installer can do to the collector, `klick fleet status`, the pusher and the tablets.

The parts without a broker first (quick); then the same attacks on a real Mosquitto with the
shipped ACL and real `klick fleet` processes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import signal
import sqlite3
import subprocess
import time
import unicodedata
from pathlib import Path

import pytest
from fleet_broker import (
    Broker,
    device_home,
    free_port,
    have_mosquitto,
    make_certificates,
    start_collector,
    start_fleet,
    wait_for,
)
from fleet_push_kit import keygen, make_bundle, make_office, push
from test_export import make_device_db
from test_fleet import covered, last_seq

from fleet import envelope, wire
from fleet.collector import handle_message
from fleet.pilot import PilotStore
from fleet.push import answer_for, format_results
from fleet.status import format_lines, summarise
from klick.export import key_check
from klick.usage import FLEET_ACKED, iso

KEY = "a pilot secret for the hostile tests"
T0 = 1772452800.0
AT = "2026-03-05T12:00:00.000Z"
GOOD_ROW = ["d1", 1, "2026-03-02T12:00:00.000Z", "reader_status", None, None, "connected", None]


def rows_json(device: str, rows: list, after: int = 0, upto: int | None = None) -> bytes:
    upto = upto if upto is not None else max((r[1] for r in rows), default=after)
    return json.dumps({"v": 1, "key_check": key_check(KEY), "after": after, "upto": upto, "rows": rows}).encode()


@pytest.fixture
def store(tmp_path):
    s = PilotStore.open(tmp_path / "PILOT.sqlite")
    yield s
    s.close()


def feed(store: PilotStore, topic: str, payload: bytes) -> list:
    store.begin()
    out = handle_message(store, topic, payload, now=1000.0)
    store.commit()
    return out


def _printable(line: str) -> bool:
    return all(c.isprintable() for c in line)


# --- poison for the collector ---------------------------------------------------------------------

LONE_SURROGATE = "\\ud800"  # as JSON writes it: json.loads takes it, SQLite and print() do not


@pytest.mark.parametrize(
    "topic,payload",
    [
        ("klick/d1/rows", rows_json("d1", [["events", 1, [*GOOD_ROW[:7], "USB \ud800"]]])),
        ("klick/d1/withdrawn", b'{"v":1,"at":"' + LONE_SURROGATE.encode() + b'"}'),
        ("klick/d1/state", b'{"v":1,"online":true,"acked":3,"last_error":"' + LONE_SURROGATE.encode() + b'"}'),
        ("klick/d1/rows", b'{"v":1,"' + LONE_SURROGATE.encode() + b'":1}'),
    ],
)
def test_a_message_with_text_no_database_can_hold_is_refused_not_fatal_to_the_collector(store, topic, payload):
    # A lone UTF-16 surrogate escape is valid to json.loads, but SQLite raised on it and ended the
    # collector; since the message was never acknowledged, the broker gave it again on every
    # restart, so one message from one tablet stopped the whole pilot's collection for good.
    assert LONE_SURROGATE.encode() in payload
    assert feed(store, topic, payload) == []
    assert store.rejects() == {"not_json": 1}
    assert store.counts() == {"events": 0, "sessions": 0, "answers": 0}
    assert store.conn.execute("SELECT count(*) FROM fleet_devices WHERE withdrawn_at IS NOT NULL").fetchone()[0] == 0
    # A real pair (an emoji as another JSON writer escapes it) is text, and is taken.
    feed(store, "klick/d1/rows", rows_json("d1", [["events", 1, [*GOOD_ROW[:7], "USB \U0001f600"]]]))
    assert store.counts()["events"] == 1


def test_numbers_json_has_no_room_for_are_refused(store):
    for payload in (
        b'{"v":1,"key_check":"' + key_check(KEY).encode() + b'","after":0,"upto":' + b"9" * 5000 + b',"rows":[]}',
        b'{"v":1,"key_check":"' + key_check(KEY).encode() + b'","after":0,"upto":NaN,"rows":[]}',
        b'{"v":1,"key_check":"' + key_check(KEY).encode() + b'","after":0,"upto":Infinity,"rows":[]}',
        b'{"v":1,"key_check":"' + key_check(KEY).encode() + b'","after":0,"upto":' + str(2**63).encode() + b',"rows":[]}',
    ):
        assert feed(store, "klick/d1/rows", payload) == []
    assert sum(store.rejects().values()) == 4 and store.counts()["events"] == 0


# --- `klick fleet status` and the pusher print what tablets say --------------------------------------

FORGERY = "\x1b[2J\x1b[H\nhbg-02  online since 2026-01-01 00:00  all is well\r\u202e\u200b"


def test_status_shows_what_a_hostile_tablet_says_on_its_own_line_and_never_crashes():
    now = T0
    evil = {
        "v": 1,
        "online": True,
        "at": "0001-01-01T00:00:00.000Z",  # no local clock can show year 1 (or 9999 east of UTC)
        "since": "9999-12-31T23:59:59.999Z",
        "last_card_at": "0001-01-01T00:00:00.000Z",
        "backlog": 10**4000,
        "backlog_oldest_at": "0001-01-01T00:00:00.000Z",
        "reader": {"state": "lost" + FORGERY, "detail": FORGERY * 50},
        "cards_version": FORGERY,
        "app_version": ["not", "a", "string"],
        "last_error": FORGERY * 100,
    }
    applied = {
        "v": 1,
        "cards": {"version": 10**30, "at": "0001-01-01T00:00:00.000Z"},
        "refused": {"cards": {"version": 7, "at": "9999-12-31T23:59:59.999Z", "problems": [FORGERY]}},
    }
    good = {"v": 1, "online": True, "at": iso(now - 60), "since": iso(now - 3600), "reader": {"state": "connected"}}
    statuses = summarise({"hbg-66": {"state": evil, "seen": evil, "applied": applied}, "hbg-02": {"state": good}}, now)
    lines = format_lines(statuses)
    assert len(lines) == 2 and all(_printable(line) for line in lines)
    assert sum(line.startswith("hbg-02") for line in lines) == 1
    evil_line = next(line for line in lines if line.startswith("hbg-66"))
    assert "\u202e" not in evil_line and "\x1b" not in evil_line and len(evil_line) < 2000
    as_json = json.dumps([s.as_dict() for s in statuses], ensure_ascii=False)
    assert all(unicodedata.category(c) not in ("Cc", "Cf") for c in as_json)


def test_the_pusher_prints_a_tablets_answer_on_one_readable_line():
    applied = {"cards": {"version": 5, "at": FORGERY}, "refused": {"questionnaire": {"version": 6, "problems": [FORGERY, 3]}}}
    results = [
        answer_for({**applied, "device": "hbg-66"}, "cards", 5),
        answer_for({**applied, "device": "hbg-66"}, "questionnaire", 6),
    ]
    lines = format_results("cards", [r for r in results if r])
    assert len(lines) == 2 and all(_printable(line) for line in lines)


def test_readable_keeps_words_and_drops_what_drives_a_terminal():
    assert wire.readable("Kortläsaren är  borta\n(USB)") == "Kortläsaren är borta (USB)"
    assert wire.readable("\x1b[31m\u202eröd") == "[31m röd"
    assert wire.readable("") is None and wire.readable(5) is None and wire.readable("\n\t") is None
    assert len(wire.readable("x" * 10_000, 40) or "") == 40


# --- the same on a real broker ---------------------------------------------------------------------

on_a_broker = pytest.mark.skipif(not have_mosquitto(), reason="mosquitto is not installed (make test installs it)")


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop(kill=True)


class As:
    """One MQTT 5 connection as ``user``, under whatever client id the caller picks (as an attacker would)."""

    def __init__(self, broker: Broker, user: str, client_id: str | None = None, password: str | None = None) -> None:
        from fleet.mqtt import Access, make_client

        self.events: queue.Queue = queue.Queue()
        access = Access(broker.host, broker.port, broker.ca_file, user, broker.users[user] if password is None else password)
        self.client = make_client(access, client_id or f"t-{os.urandom(3).hex()}")
        self.client.on_connect = lambda c, u, f, rc, p: self.events.put(("connect", rc))
        self.client.on_publish = lambda c, u, mid, rc, p: self.events.put(("puback", rc))
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.events.put(("suback", rcs))
        self.client.on_message = lambda c, u, m: self.events.put(("message", m.topic, bytes(m.payload)))
        self.client.reconnect_delay_set(60, 60)
        self.client.connect_async(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        self.rc = self.wait("connect")[1]

    def wait(self, kind: str, timeout: float = 10.0) -> tuple:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                event = self.events.get(timeout=0.1)
            except queue.Empty:
                continue
            if event[0] == kind:
                return event
        raise AssertionError(f"no {kind} within {timeout} s")

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> str:
        """ "taken", or the broker's reason for refusing ("Not authorized")."""
        self.client.publish(topic, payload, qos=1, retain=retain)
        rc = self.wait("puback")[1]
        return rc.getName() if rc.is_failure else "taken"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def acked(usage_db: Path) -> int:
    conn = sqlite3.connect(f"file:{usage_db}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (FLEET_ACKED,)).fetchone()
        return int(row[0]) if row else 0
    finally:
        conn.close()


def a_tablet(broker: Broker, tmp_path: Path, name: str) -> Path:
    home = tmp_path / name
    device_home(broker, home, name)
    make_device_db(home / "usage.db", name, days=1)
    return home


@on_a_broker
def test_a_tablet_cannot_take_over_the_collectors_session_or_knock_another_tablet_off(broker, tmp_path):
    # Mosquitto lets any user connect under any client id; the new connection closes the old one,
    # and a clean start throws the session's queue away. With the ids in Klick's source
    # ("klick-collector", "klick-<device>") a tablet emptied the collector's queue of every other
    # tablet's rows, and could keep any tablet off the broker.
    broker.add_devices(["hbg-01"])
    home = a_tablet(broker, tmp_path, "hbg-02")
    pilot = tmp_path / "PILOT.sqlite"
    log = tmp_path / "collector.log"
    collector = start_collector(broker, pilot, log=log)
    wait_for(lambda: "collecting from" in log.read_text(), 30, what="the collector's session")
    stop(collector)  # away: the broker keeps its messages
    fleet = start_fleet(home)
    try:
        target = last_seq(home / "usage.db")
        wait_for(lambda: acked(home / "usage.db") >= target, 30, what="the broker to take every row")
        for client_id in ("klick-collector", "klick-hbg-02"):
            attacker = As(broker, "hbg-01", client_id)
            attacker.close()
        time.sleep(1.0)
        assert "connection to the broker lost" not in (home / "fleet.log").read_text()
    finally:
        stop(fleet)  # the tablet is off now: it cannot send anything again
    collector = start_collector(broker, pilot, log=log)
    try:
        wait_for(lambda: covered(pilot, "hbg-02") >= target, 30, what="the rows the broker kept for the collector")
    finally:
        stop(collector)


@on_a_broker
def test_a_compromised_tablets_poison_never_stops_the_collector_and_status_shows_the_others_truly(broker, tmp_path, klick):
    broker.add_devices(["hbg-66"])
    home = a_tablet(broker, tmp_path, "hbg-02")
    pilot = tmp_path / "PILOT.sqlite"
    log = tmp_path / "collector.log"
    collector = start_collector(broker, pilot, log=log)
    fleet = start_fleet(home)
    try:
        wait_for(lambda: "collecting from" in log.read_text(), 30, what="the collector")
        evil = As(broker, "hbg-66")
        bad_text = b'"\\ud800 \\u001b[2J\\nhbg-02  OFFLINE  PROBLEM: forged"'
        poison = {
            "withdrawn": b'{"v":1,"at":' + bad_text + b"}",
            "state": b'{"v":1,"online":true,"at":"0001-01-01T00:00:00.000Z","since":"9999-12-31T23:59:59.999Z","last_error":'
            + bad_text
            + b"}",
            "seen": b'{"v":1,"online":true,"at":"0001-01-01T00:00:00.000Z","last_error":"\\u001b[2J\\nhbg-02  forged\\u202e"}',
            "applied": b'{"v":1,"refused":{"cards":{"version":1,"at":"2026-01-01T00:00:00.000Z","problems":["\\u001b[2Jforged"]}}}',
        }
        for leaf, payload in poison.items():
            assert evil.publish(f"klick/hbg-66/{leaf}", payload, retain=True) == "taken"
        rows = [["events", 1, ["hbg-66", 1, "2026-03-02T12:00:00.000Z", "reader_status", None, None, "lost", "\ud800"]]]
        assert evil.publish("klick/hbg-66/rows", rows_json("hbg-66", rows)) == "taken"
        evil.close()
        wait_for(lambda: covered(pilot, "hbg-02") >= last_seq(home / "usage.db"), 60, what="the honest tablet's rows")
        assert collector.poll() is None, log.read_text()[-2000:]
        for args in ((), ("--json",)):
            result = klick("fleet", "status", *broker.office_args("office"), *args)
            assert result.returncode == 0, result.stderr
            assert "Traceback" not in result.stderr
        lines = klick("fleet", "status", *broker.office_args("office")).stdout.splitlines()
        assert sorted(line.split()[0] for line in lines) == ["hbg-02", "hbg-66"]
        assert all(_printable(line) for line in lines)
        assert "OFFLINE" not in next(line for line in lines if line.startswith("hbg-02"))
        statuses = json.loads(klick("fleet", "status", *broker.office_args("office"), "--json").stdout)
        assert all(_printable(json.dumps(s, ensure_ascii=False)) for s in statuses)
    finally:
        stop(fleet)
        stop(collector)
    # Started again, the collector is not handed the same poison to die on.
    collector = start_collector(broker, pilot, log=log)
    try:
        time.sleep(2.0)
        assert collector.poll() is None, log.read_text()[-2000:]
    finally:
        stop(collector)
    conn = sqlite3.connect(pilot)
    assert conn.execute("SELECT count(*) FROM events WHERE device = 'hbg-66'").fetchone()[0] == 0
    assert conn.execute("SELECT reason FROM fleet_rejects").fetchall() == [("not_json",)]
    conn.close()


# --- the unlucky installer -------------------------------------------------------------------------


@on_a_broker
def test_why_the_broker_cannot_be_reached_is_said_in_plain_words(broker, tmp_path):
    from fleet.mqtt import Access, why_not_connected

    def access(b: Broker, host: str | None = None, ca=None) -> Access:
        return Access(host or b.host, b.port, ca or b.ca_file, "hbg-01", "pw")

    assert "takes TLS connections" in why_not_connected(access(broker))
    assert "cannot be found" in why_not_connected(access(broker, "no-such-broker.invalid"))
    closed = Access(broker.host, free_port(), broker.ca_file, "hbg-01", "pw")
    assert "nothing answers at" in why_not_connected(closed)
    other_ca, _, _ = make_certificates(tmp_path / "other-ca")
    assert "not signed by the CA in fleet.ca_file" in why_not_connected(access(broker, ca=other_ca))
    # A certificate for another name (the installer typed the broker's address, not its name).
    named = Broker(tmp_path / "named")
    make_certificates(named.folder / "certs", host="10.9.9.9")
    with named:
        assert "not for the name 127.0.0.1" in why_not_connected(access(named))
    # A tablet whose clock is ten years off sees an expired certificate, or one not valid yet.
    for words, valid in (
        ("has expired", (-dt.timedelta(days=3650), -dt.timedelta(days=1))),
        ("is not valid yet", (dt.timedelta(days=3650), dt.timedelta(days=3660))),
    ):
        dated = Broker(tmp_path / words.replace(" ", "-"))
        make_certificates(dated.folder / "certs", valid=valid)
        with dated:
            said = why_not_connected(access(dated))
        assert words in said and "clock" in said, said


@on_a_broker
def test_the_tablet_says_once_why_it_cannot_reach_the_broker_and_takes_a_password_file_from_windows(broker, tmp_path, klick):
    home = a_tablet(broker, tmp_path, "hbg-03")
    text = (home / "klick.yaml").read_text()
    (home / "klick.yaml").write_text(text.replace(f"port: {broker.port}", f"port: {free_port()}"))
    fleet = start_fleet(home)
    try:
        time.sleep(5.0)  # paho tries again after 1, 2 and 4 s
    finally:
        stop(fleet)
    said = [line for line in (home / "fleet.log").read_text().splitlines() if "cannot reach the broker" in line]
    assert len(said) == 1 and "nothing answers at" in said[0]
    # Notepad's byte-order mark and CRLF around the password, and the right port again.
    (home / "klick.yaml").write_text(text)
    (home / "fleet-password").write_bytes(b"\xef\xbb\xbf" + broker.users["hbg-03"].encode() + b"\r\n")
    fleet = start_fleet(home)
    try:
        wait_for(lambda: "klick fleet: connected" in (home / "fleet.log").read_text(), 20, what="the tablet to connect")
    finally:
        stop(fleet)
    # A CA file that is no certificate is a setting to fix (exit 2: systemd waits), said as such.
    (home / "fleet-ca.pem").write_text("ssh-ed25519 AAAA... this is not a certificate\n")
    result = klick("fleet", "--config", str(home / "klick.yaml"), timeout=20)
    assert result.returncode == 2 and "is not a CA certificate" in result.stderr and "disk" not in result.stderr


@on_a_broker
def test_a_second_klick_fleet_on_the_same_tablet_says_so_and_leaves_the_first_alone(broker, tmp_path):
    # Both used the tablet's broker name; the broker closed one as the other connected, once a
    # second, for ever (and both applied every push).
    home = a_tablet(broker, tmp_path, "hbg-04")
    first = start_fleet(home)
    try:
        wait_for(lambda: "klick fleet: connected" in (home / "fleet.log").read_text(), 20, what="the first daemon")
        second = start_fleet(home, log=home / "second.log")
        assert second.wait(timeout=20) == 2
        said = (home / "second.log").read_text()
        assert f"Another klick fleet (process {first.pid}) already reports this tablet" in said and "Traceback" not in said
        time.sleep(1.5)
        assert first.poll() is None and "connection to the broker lost" not in (home / "fleet.log").read_text()
    finally:
        stop(first)
    again = start_fleet(home, log=home / "third.log")  # once the first has stopped, a new one starts
    try:
        wait_for(lambda: "klick fleet: connected" in (home / "third.log").read_text(), 20, what="the next daemon")
    finally:
        stop(again)


# --- pushes -----------------------------------------------------------------------------------------


@on_a_broker
def test_one_tablet_that_claims_the_largest_version_does_not_stop_a_group_push(broker, tmp_path):
    # The pusher picks a version newer than each tablet reports; a tablet reporting the largest
    # version there is (a damaged record, or a compromised tablet) made signing fail with a Python
    # error, and the tablets after it in the group got nothing.
    office = make_office(broker, tmp_path / "office", {"norr": ["hbg-01", "hbg-02", "hbg-03"]})
    assert keygen(office)[0].returncode == 0
    broker.add_devices(["hbg-01", "hbg-02", "hbg-03"])
    rogue = As(broker, "hbg-01")
    claim = {"v": 1, "device": "hbg-01", "cards": {"version": envelope.MAX_VERSION - 1, "at": "2026-01-01T00:00:00.000Z"}}
    assert rogue.publish("klick/hbg-01/applied", json.dumps(claim).encode(), retain=True) == "taken"
    rogue.close()
    result = push(office, "cards", make_bundle(tmp_path / "norr.klick", "Norr", 2), "--group", "norr")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("hbg-01  NOT SENT  card set: the tablet says the version in force is 4611686018427387903")
    assert "delete its record of pushed versions (fleet-applied.json" in lines[0]
    assert [line.split()[:2] for line in lines[1:]] == [["hbg-02", "sent"], ["hbg-03", "sent"]]
    for name in ("hbg-02", "hbg-03"):
        tablet = As(broker, name)
        tablet.client.subscribe(f"klick/{name}/set/cards", qos=1)
        message = tablet.wait("message")
        tablet.close()
        assert envelope.open_envelope(message[2]).device == name


@pytest.mark.parametrize("card_file", [b"", b"\n# nothing\n", b"version: 1\ncards: []\n"])
def test_a_card_set_with_no_cards_is_refused_at_the_office_and_on_the_tablet(tmp_path, card_file):
    # A 0-byte cards.yaml (a failed copy, a full disk at the office) unpacked as a set of no cards:
    # pushed to a group, every resident's cards stopped working at once.
    import zipfile

    from fleet_push_kit import set_files_hash, which_set

    from cards.bundle import BundleError, unpack_bundle
    from fleet.apply import Applier, ApplySettings
    from fleet.push import PushError, card_set
    from fleet.signing import new_key_pair, public_text

    empty = tmp_path / "empty.klick"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("cards.yaml", card_file)
    with pytest.raises(PushError) as office:
        card_set(empty)
    assert "holds no cards" in str(office.value)
    home = tmp_path / "tablet"
    home.mkdir()
    with pytest.raises(BundleError, match="holds no cards"):
        unpack_bundle(empty, home / "cards.yaml")  # `klick cards unpack` from a USB stick: the same rule
    key = new_key_pair()
    applier = Applier(ApplySettings("hbg-01", home, home / "cards.yaml", None, (), public_text(key)))
    good = make_bundle(tmp_path / "good.klick", "Anna", 2)
    assert applier.receive("cards", envelope.seal(key, "cards", "hbg-01", 1, good.read_bytes(), name="g.klick", at=AT)).ok
    before = set_files_hash(home)
    outcome = applier.receive("cards", envelope.seal(key, "cards", "hbg-01", 2, empty.read_bytes(), name="e.klick", at=AT))
    assert outcome is not None and not outcome.ok and "holds no cards" in outcome.problems[0]
    assert set_files_hash(home) == before and which_set(home, {"good": good}) == "good"


# --- the export key ---------------------------------------------------------------------------------


def test_a_tablet_with_another_export_key_is_told_once_and_not_asked_to_resend_for_ever(store, caplog):
    right = [["events", 1, GOOD_ROW]]
    feed(store, "klick/d1/rows", rows_json("d1", right))
    wrong = json.dumps(
        {"v": 1, "key_check": key_check("the installer typed another key"), "after": 0, "upto": 9, "rows": []}
    ).encode()
    with caplog.at_level("WARNING", logger="klick.fleet.collect"):
        for _ in range(3):
            assert feed(store, "klick/d2/rows", wrong) == []
            # Its state says the broker has everything: before, that asked it to send every row
            # again, every 30 s, for ever, each time refused again.
            assert feed(store, "klick/d2/state", b'{"v":1,"online":true,"acked":9}') == []
    told = [r.getMessage() for r in caplog.records if "another export key" in r.getMessage()]
    assert len(told) == 1 and "set pilot.export_key on d2" in told[0]
    assert store.rejects() == {"wrong_key": 3}
    # Set right, its next rows are stored and the hole before them is asked for.
    out = feed(store, "klick/d2/rows", rows_json("d2", [["events", 12, ["d2", 12, *GOOD_ROW[2:]]]], after=11))
    assert [t for t, _ in out] == ["klick/d2/set/resend"] and store.counts()["events"] == 2


def test_the_office_key_decides_which_rows_the_pilot_file_takes_not_the_first_tablet(tmp_path, klick):
    first = PilotStore.open(tmp_path / "PILOT.sqlite", key_check(KEY))
    impostor = json.dumps({"v": 1, "key_check": key_check("not the pilot's key"), "after": 0, "upto": 1, "rows": []})
    feed(first, "klick/d9/rows", impostor.encode())
    feed(first, "klick/d1/rows", rows_json("d1", [["events", 1, GOOD_ROW]]))
    assert first.rejects() == {"wrong_key": 1} and first.counts()["events"] == 1
    first.close()
    # The collector started on a file made with another key says so, in words, before connecting.
    ca, _, _ = make_certificates(tmp_path / "certs")
    (tmp_path / "pw").write_text("pw\n")
    office = tmp_path / "office.yaml"
    office.write_text('pilot:\n  export_key: "another pilot entirely, long enough to be a key"\n')
    args = ("--host", "127.0.0.1", "--port", str(free_port()), "--ca-file", str(ca), "--username", "collector")
    result = klick(
        "fleet",
        "collect",
        "--config",
        str(office),
        *args,
        "--password-file",
        str(tmp_path / "pw"),
        "--out",
        str(tmp_path / "PILOT.sqlite"),
    )
    assert result.returncode == 1 and "another export key" in result.stderr and "Traceback" not in result.stderr


# --- a flood ----------------------------------------------------------------------------------------


def test_one_device_cannot_fill_the_offices_disk(store, caplog):
    # A tablet may send a megabyte a message as fast as the broker takes them (12 MB a second into
    # the pilot file on this machine): past a limit no honest tablet reaches, its new rows are refused.
    store.max_rows_per_device = 10

    def rows(device: str, first: int, n: int, seq0: int = 0) -> bytes:
        made = [["events", seq0 + i, [device, i, *GOOD_ROW[2:]]] for i in range(first, first + n)]
        return rows_json(device, made, after=seq0 + first - 1)

    feed(store, "klick/d1/rows", rows("d1", 1, 3))
    with caplog.at_level("WARNING", logger="klick.fleet.collect"):
        for start in (1, 6, 11, 16):
            assert feed(store, "klick/d66/rows", rows("d66", start, 5)) == []  # refused rows are not asked for again
    held = dict(store.conn.execute("SELECT device, count(*) FROM events GROUP BY device"))
    assert held == {"d1": 3, "d66": 10}
    assert store.rejects() == {"too_many_rows": 2}
    told = [r.getMessage() for r in caplog.records if "more than a tablet uses in years" in r.getMessage()]
    assert len(told) == 1 and told[0].startswith("d66 has sent 10 rows")
    # Rows it holds may still change (a session closed later), and other tablets go on as before.
    changed = [["events", 100, ["d66", 2, *GOOD_ROW[2:6], "lost", None]]]
    feed(store, "klick/d66/rows", rows_json("d66", changed, after=99))
    assert store.conn.execute("SELECT outcome FROM events WHERE device = 'd66' AND src_id = 2").fetchone() == ("lost",)
    feed(store, "klick/d1/rows", rows("d1", 4, 3))
    assert store.counts()["events"] == 16


@on_a_broker
def test_rows_the_broker_drops_past_its_queue_limit_are_asked_for_again_and_arrive(tmp_path):
    # klick.conf bounds the collector's queue in bytes (a flooding tablet must not grow the broker
    # until the machine runs out of memory); what the broker then drops must still arrive.
    broker = Broker(tmp_path / "broker")
    broker.conf.write_text(broker.conf.read_text().replace("max_queued_bytes 1000000000", "max_queued_bytes 300000"))
    assert "max_queued_bytes 300000" in broker.conf.read_text()
    with broker:
        home = a_tablet(broker, tmp_path, "hbg-05")
        conn = sqlite3.connect(home / "usage.db")  # a busy reader: more batches than the broker keeps in flight
        with conn:
            conn.executemany(
                "INSERT INTO events (at, device, kind, outcome) VALUES (?, 'hbg-05', 'reader_status', 'connected')",
                [(iso(T0 + i),) for i in range(15_000)],
            )
        conn.close()
        pilot = tmp_path / "PILOT.sqlite"
        log = tmp_path / "collector.log"
        collector = start_collector(broker, pilot, log=log)
        wait_for(lambda: "collecting from" in log.read_text(), 30, what="the collector's session")
        stop(collector)  # away while the tablet sends more than the queue may hold
        fleet = start_fleet(home)
        try:
            target = last_seq(home / "usage.db")
            wait_for(lambda: acked(home / "usage.db") >= target, 30, what="the broker to take every row")
            collector = start_collector(broker, pilot, log=log)
            wait_for(lambda: covered(pilot, "hbg-05") >= target, 60, what="every row, the dropped ones asked for again")
        finally:
            stop(fleet)
            stop(collector)
        assert "being dropped" in broker.log.read_text()  # the broker did drop some
        assert "asked it to send them again" in log.read_text()


@pytest.mark.parametrize(
    ("fleet", "words"),
    [
        ('  host: "mqtt://mqtt.kommun.se:8883"\n', "must be the broker's name alone"),
        ("  host: mqtt.kommun.se\n  ca_file: /etc/ssl/certs\n", "is a folder; name the broker's CA certificate file"),
    ],
)
def test_fleet_settings_an_installer_gets_wrong_are_said_before_anything_is_tried(klick_home, klick, fleet, words):
    (klick_home / "klick.yaml").write_text(
        f'pilot:\n  device_name: hbg-07\n  export_key: "a pilot key long enough for the tests"\nfleet:\n{fleet}'
    )
    result = klick("fleet", timeout=20)
    assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr, result.stderr


# --- who may read what --------------------------------------------------------------------------------


@on_a_broker
def test_who_may_read_what_by_the_shipped_acl_and_a_revoked_password_is_shut_out_at_once(broker):
    broker.add_devices(["hbg-01", "hbg-02"])
    office = As(broker, "office")
    assert office.publish("klick/hbg-02/set/cards", b"a push for hbg-02", retain=True) == "taken"
    readers = {user: As(broker, user) for user in ("hbg-01", "office", "collector")}
    for reader in readers.values():
        reader.client.subscribe([("#", 1), ("klick/#", 1), ("$SYS/#", 1)])
        reader.wait("suback")
    tablet = As(broker, "hbg-02")
    for leaf in ("rows", "state", "seen", "withdrawn", "applied"):
        assert tablet.publish(f"klick/hbg-02/{leaf}", leaf.encode(), retain=leaf != "rows") == "taken"
    # Another tablet can neither forge nor clear (an empty retained message) any of them.
    other = As(broker, "hbg-01")
    for leaf in ("rows", "state", "seen", "withdrawn", "applied", "set/cards", "set/questionnaire", "set/resend"):
        for payload in (b'{"v":1}', b""):
            assert other.publish(f"klick/hbg-02/{leaf}", payload, retain=True) == "Not authorized", leaf
    other.close()
    time.sleep(1.0)
    got = {}
    for user, reader in readers.items():
        got[user] = set()
        while not reader.events.empty():
            event = reader.events.get()
            if event[0] == "message":
                got[user].add(event[1])
        reader.close()
    assert got["hbg-01"] == set()  # another tablet: nothing at all, not even the broker's $SYS
    assert got["office"] == {f"klick/hbg-02/{leaf}" for leaf in ("state", "seen", "withdrawn", "applied")}  # never rows
    assert got["collector"] == {f"klick/hbg-02/{leaf}" for leaf in ("rows", "state", "seen", "withdrawn")}  # never pushes
    # The office changes a tablet's password (it was stolen): the broker, reloaded, shuts the
    # connection that is open, and the old password no longer gets in.
    old = broker.users["hbg-02"]
    broker.add_device("hbg-02", "a brand new password for hbg-02")
    assert _closed(tablet)
    assert As(broker, "hbg-02", password=old).rc.is_failure
    tablet.close()
    office.close()


def _closed(client: As, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not client.client.is_connected():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB file system of its own (tmpfs), for a tablet whose disk fills up."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small file system here (needs root)")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_a_push_that_finds_the_disk_full_is_taken_once_there_is_room(small_disk, tmp_path):
    # "The disk has only 3 MB free" was remembered as a refusal of the push itself, so the
    # same push was never tried again; only a new push from the office got through.
    from fleet_push_kit import which_set

    from fleet.apply import Applier, ApplySettings
    from fleet.signing import new_key_pair, public_text

    key = new_key_pair()

    def tablet() -> Applier:  # `klick fleet` (re)started
        return Applier(ApplySettings("hbg-01", small_disk, small_disk / "cards.yaml", None, (), public_text(key)))

    def sealed(bundle: Path, version: int) -> bytes:
        return envelope.seal(key, "cards", "hbg-01", version, bundle.read_bytes(), name=bundle.name, at=AT)

    old, new = make_bundle(tmp_path / "old.klick", "Anna", 1), make_bundle(tmp_path / "new.klick", "Bertil", 2)
    assert tablet().receive("cards", sealed(old, 1)).ok
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (12 * 1024 * 1024))  # the launcher's logs, a photo album: the disk is full
    applier = tablet()
    outcome = applier.receive("cards", sealed(new, 2))
    assert outcome is not None and not outcome.ok and "the disk has only" in outcome.problems[0]
    assert which_set(small_disk, {"old": old, "new": new}) == "old"
    filler.unlink()
    assert applier.receive("cards", sealed(new, 2)).ok  # handed over again on the next connection
    assert which_set(small_disk, {"old": old, "new": new}) == "new"
    filler.write_bytes(b"\0" * (12 * 1024 * 1024))
    assert not tablet().receive("cards", sealed(new, 3)).ok
    filler.unlink()
    assert tablet().receive("cards", sealed(new, 3)).ok  # or when klick fleet starts again


def test_a_push_the_tablet_refused_as_older_than_its_own_is_never_reported_applied():
    # The office's clock was once ten years ahead (a push of version 2111...), then set right; the
    # broker lost what the tablet last said, so the next push had today's version. The tablet
    # refused it as a replay and said so, with its newer version in force: --wait said "applied".
    applied = {
        "device": "hbg-01",
        "cards": {"version": 2111390905452, "at": AT},
        "refused": {"cards": {"version": 1796030905000, "problems": ["it is version 1796030905000, older than version ..."]}},
    }
    result = answer_for(applied, "cards", 1796030905000)
    assert result is not None and result.outcome == "refused" and "older than" in result.detail
    # The next push reads the version in force and goes one past it.
    from fleet.push import _versions_of

    assert max(_versions_of(applied)) + 1 == 2111390905453


@on_a_broker
def test_a_tablet_cannot_join_the_collectors_share_group_and_lose_every_other_batch(broker, tmp_path):
    # Collectors sharing the load (--share) subscribe to $share/GROUP/klick/+/rows. Mosquitto lets
    # any user subscribe; a tablet in the group was handed its turn of the rows, which the ACL then
    # did not deliver to it: half of every tablet's rows lost, and shared collectors cannot ask
    # for a stretch again.
    broker.add_devices(["hbg-01"])
    home = a_tablet(broker, tmp_path, "hbg-02")
    conn = sqlite3.connect(home / "usage.db")  # enough rows for many batches
    with conn:
        conn.executemany(
            "INSERT INTO events (at, device, kind, outcome) VALUES (?, 'hbg-02', 'reader_status', 'connected')",
            [(iso(T0 + i),) for i in range(5_000)],
        )
    conn.close()
    pilot, log = tmp_path / "PILOT.sqlite", tmp_path / "collector.log"
    collector = start_collector(broker, pilot, log=log, share="collectors")
    wait_for(lambda: "collecting from" in log.read_text(), 30, what="the collector")
    thief = As(broker, "hbg-01")
    thief.client.subscribe("$share/collectors/klick/+/rows", qos=1)  # the group named on the command line
    thief.wait("suback")
    fleet = start_fleet(home)
    try:
        target = last_seq(home / "usage.db")
        wait_for(lambda: acked(home / "usage.db") >= target, 30, what="the broker to take every row")
        wait_for(lambda: covered(pilot, "hbg-02") >= target, 20, what="every row at the shared collector")
    finally:
        stop(fleet)
        stop(collector)
        thief.close()
