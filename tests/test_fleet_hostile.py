"""The fleet attacked: what a compromised tablet, a stranger on the network, a leaked office password
or an unlucky installer can do to the collector, `klick fleet status`, the pusher and the tablets.

The parts without a broker first (quick); then the same attacks on a real Mosquitto with the
shipped ACL and real `klick fleet` processes.
"""

from __future__ import annotations

import json
import unicodedata

import pytest

from fleet import wire
from fleet.collector import handle_message
from fleet.pilot import PilotStore
from fleet.push import answer_for, format_results
from fleet.status import format_lines, summarise
from klick.export import key_check
from klick.usage import iso

KEY = "a pilot secret for the hostile tests"
T0 = 1772452800.0
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
