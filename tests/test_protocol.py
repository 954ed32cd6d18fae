"""The Klick wire protocol as pure code: framing, the streaming decoder, the host's bookkeeping."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import protocol as p

u8 = st.integers(0, 255)
u16 = st.integers(0, 0xFFFF)
ascii_text = st.text(st.characters(min_codepoint=0, max_codepoint=127), max_size=20)

messages = st.one_of(
    st.builds(p.Hello, u8, ascii_text, ascii_text),
    st.builds(p.CardPresentMsg, u16, st.binary(min_size=1, max_size=p.MAX_UID_BYTES)),
    st.builds(p.CardRemovedMsg, u16),
    st.builds(p.Heartbeat, u16),
    st.builds(p.Ack, st.integers(0, 15)),
    st.builds(p.ErrorMsg, u8, ascii_text),
    st.builds(p.CardInEvent, u16, u16, st.binary(min_size=1, max_size=p.MAX_UID_BYTES)),
    st.builds(p.CardOutEvent, u16, u16),
    st.builds(p.EventAck, u16),
    st.just(p.Identify()),
    st.builds(p.Led, u8, u8, u8),
    st.builds(p.Beep, u16),
    st.just(p.Status()),
)
framed = st.tuples(st.integers(0, 15), messages)


def test_crc_is_ccitt_false():
    assert p.crc16_ccitt(b"123456789") == 0x29B1


@given(st.binary(max_size=64), u16)
def test_the_host_crc_is_binascii_crc_hqx(data, start):
    """Issue 16: the host's CRC is the C one binascii already has, not a hand-written table."""
    import binascii

    assert "crc_hqx" in p.crc16_ccitt.__code__.co_names
    assert p.crc16_ccitt(data, start) == binascii.crc_hqx(data, start)
    assert p.crc16_ccitt(memoryview(bytearray(data))) == binascii.crc_hqx(data, 0xFFFF)


def test_example_frame_from_protocol_md():
    frame = p.encode(p.CardPresentMsg(7, bytes.fromhex("04A2B3C4D5E680")), 3)
    assert frame.hex(" ") == "10 13 02 00 07 07 04 a2 b3 c4 d5 e6 80 6d 98 7e"
    assert p.Decoder().feed(frame) == [(3, p.CardPresentMsg(7, bytes.fromhex("04A2B3C4D5E680")))]


def test_frame_layout():
    frame = p.encode(p.Beep(300), 0x1F)
    assert frame[0] == len(frame) == 8
    assert frame[1] == 0x1F  # 0x10 | (0x1F & 0x0F)
    assert frame[2:5] == bytes([0x83, 0x01, 0x2C])
    assert int.from_bytes(frame[5:7], "big") == p.crc16_ccitt(frame[:5])
    assert frame[-1] == p.SYNC


@pytest.mark.parametrize(
    "msg",
    [
        p.Led(256, 0, 0),
        p.Beep(70000),
        p.Ack(16),
        p.CardPresentMsg(1, b""),
        p.CardPresentMsg(1, b"x" * 21),
        p.Hello(1, "å", "slot"),
        p.CardRemovedMsg(-1),
        p.Hello(1, "x" * 40, "y" * 40),
    ],
)
def test_encode_refuses_what_cannot_be_sent(msg):
    with pytest.raises(p.FieldError):
        p.encode(msg, 0)


@given(framed)
def test_round_trip(item):
    seq, msg = item
    frame = p.encode(msg, seq)
    assert p.MIN_FRAME <= len(frame) <= p.MAX_FRAME
    d = p.Decoder()
    assert d.feed(frame) == [(seq, msg)]
    assert d.errors == 0


@given(st.lists(framed, max_size=10), st.data())
def test_any_split_of_the_stream_decodes_the_same(items, data):
    stream = b"".join(p.encode(m, s) for s, m in items)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    d = p.Decoder()
    out = []
    prev = 0
    for cut in cuts + [len(stream)]:
        out += d.feed(stream[prev:cut])
        prev = cut
    assert out == items
    assert d.errors == 0


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=200), max_size=10))
def test_random_bytes_never_raise_and_memory_stays_bounded(chunks):
    d = p.Decoder()
    for chunk in chunks:
        for seq, _msg in d.feed(chunk):
            assert 0 <= seq <= 15
        assert len(d._buf) < p.MAX_FRAME


noise_then_sync = st.binary(max_size=80).map(lambda b: b + bytes([p.SYNC]))


@settings(max_examples=300)
@given(st.lists(st.tuples(noise_then_sync, framed), max_size=8), st.integers(1, 70))
def test_frames_after_noise_ending_in_sync_are_all_decoded_in_order(pairs, chunk):
    """The decoder's promise: a frame that follows a 0x7E is decoded.

    Noise may contain anything, 0x7E included, as long as it ends with 0x7E (on a real line,
    the end of the previous frame). The one exception is noise that happens to start a
    candidate frame which passes the SEQ marker (1/16), lands a 0x7E exactly where its LEN says
    (~1/256) and matches the CRC (1/65536): about one in 3*10**8 per candidate, so the test
    asserts the promise flatly rather than hiding behind ``assume``.
    """
    stream = b"".join(noise + p.encode(m, s) for noise, (s, m) in pairs)
    d = p.Decoder()
    out = []
    for i in range(0, len(stream), chunk):
        out += d.feed(stream[i : i + chunk])
    expected = [item for _, item in pairs]
    assert out == expected
    assert d.frames == len(expected)


@given(st.binary(max_size=80).filter(lambda b: p.SYNC not in b), st.lists(framed, min_size=2, max_size=6))
def test_noise_without_sync_costs_at_most_the_next_frame(noise, items):
    stream = noise + b"".join(p.encode(m, s) for s, m in items)
    out = p.Decoder().feed(stream)
    assert out in (items, items[1:])


def test_garbage_is_counted_and_a_good_frame_after_it_survives():
    d = p.Decoder()
    good = p.encode(p.Heartbeat(5), 1)
    assert d.feed(b"\x00\x01\x02 line noise \x7e" + good) == [(1, p.Heartbeat(5))]
    assert d.errors >= 1


@pytest.mark.parametrize(
    "mangle",
    [
        lambda f: bytes([5]) + f[1:],  # length below 6
        lambda f: bytes([65]) + f[1:],  # length above 64
        lambda f: f[:1] + bytes([0x20 | (f[1] & 0x0F)]) + f[2:],  # bad SEQ marker
        lambda f: f[:-2] + bytes([f[-2] ^ 1]) + f[-1:],  # bad CRC
        lambda f: f[:-1] + b"\x7d" + b"\x7e",  # no sync where LEN says
    ],
    ids=["short", "long", "marker", "crc", "sync"],
)
def test_each_kind_of_bad_frame_is_dropped_and_counted(mangle):
    d = p.Decoder()
    bad = mangle(p.encode(p.CardRemovedMsg(9), 2))
    after = p.encode(p.Heartbeat(9), 3)
    assert d.feed(bad + after) == [(3, p.Heartbeat(9))]
    assert d.errors >= 1


def test_unknown_message_with_valid_crc_is_skipped_whole():
    head = bytes([8, 0x10, 0x42, 0x7E, 0x7E])  # unknown id, with sync bytes inside
    frame = head + p.crc16_ccitt(head).to_bytes(2, "big") + b"\x7e"
    d = p.Decoder()
    assert d.feed(frame + p.encode(p.Heartbeat(1), 0)) == [(0, p.Heartbeat(1))]
    assert d.errors == 1 and d.unknown == 1


def test_malformed_fields_are_skipped():
    for payload in (
        bytes([0x02, 0, 1, 5, 1]),
        bytes([0x05, 0x20]),
        bytes([0x01, 1, 3, 0x41]),
        bytes([0x01, 1, 1, 0xC3, 0]),
        bytes([0x84, 0]),
    ):
        head = bytes([len(payload) + 5, 0x10]) + payload
        frame = head + p.crc16_ccitt(head).to_bytes(2, "big") + b"\x7e"
        d = p.Decoder()
        assert d.feed(frame) == []
        assert d.unknown == 1


# ---- host-side bookkeeping ------------------------------------------------------------------


def test_tracker_resends_three_times_then_gives_up():
    t = p.CommandTracker()
    frame, _ = t.submit(p.Led(1, 2, 3), now=0.0)
    assert t.poll(0.05) == ([], [])
    times = [0.11, 0.22, 0.33]
    for now in times:
        resend, failed = t.poll(now)
        assert resend == [frame] and failed == []
    resend, failed = t.poll(0.44)
    assert resend == [] and [f.msg for f in failed] == [p.Led(1, 2, 3)]
    assert len(t) == 0


def test_tracker_ack_stops_resends_and_seq_cycles():
    t = p.CommandTracker()
    seqs = []
    for i in range(20):
        frame, dropped = t.submit(p.Beep(i), now=float(i))
        assert dropped == []
        seqs.append(frame[1] & 0x0F)
        assert t.ack(seqs[-1]).msg == p.Beep(i)
    assert seqs == [i & 0x0F for i in range(20)]
    assert t.poll(100.0) == ([], [])


@given(st.lists(st.tuples(st.sampled_from(["submit", "ack", "poll"]), st.integers(0, 15)), max_size=60))
def test_tracker_never_waits_for_more_than_eight(ops):
    t = p.CommandTracker()
    now = 0.0
    for op, n in ops:
        now += 0.03
        if op == "submit":
            t.submit(p.Beep(n), now)
        elif op == "ack":
            t.ack(n)
        else:
            t.poll(now)
        assert len(t) <= t.MAX_WAITING


def test_counter_watch():
    c = p.CounterWatch()
    assert not c.event(5)  # first sight sets the baseline
    assert not c.event(6)
    assert not c.heartbeat(6)
    assert c.heartbeat(7)  # an event the host never saw
    assert c.event(9)
    assert not c.event(9)  # a STATUS answer repeats the counter
    c.truth(0xFFFF)
    assert not c.event(0)  # wraps


def test_watchdog():
    w = p.Watchdog(3.0, now=10.0)
    assert not w.expired(12.9)
    assert w.expired(13.0)
    w.kick(13.0)
    assert w.deadline() == 16.0


def _writes(actions):
    return [p.Decoder().feed(a.frame)[0][1] for a in actions if isinstance(a, p.Write)]


def _levels(actions):
    return [a for a in actions if isinstance(a, (p.Present, p.Absent, p.Up, p.Down))]


def test_session_handshake_then_status():
    s = p.HostSession()
    assert _writes(s.start(0.0)) == [p.Identify()]
    acts = s.receive(p.Hello(1, "2.1", "slot"), 0.01)
    assert _levels(acts) == []  # connected once the host knows what is in the slot
    assert _writes(acts) == [p.Status()]
    assert _levels(s.receive(p.CardPresentMsg(4, b"\x04\xa2"), 0.02)) == [p.Up(p.Hello(1, "2.1", "slot")), p.Present(b"\x04\xa2")]
    assert _levels(s.receive(p.CardRemovedMsg(5), 0.5)) == [p.Absent()]
    assert _writes(s.receive(p.Heartbeat(5), 1.0)) == []


def test_session_counter_gap_asks_status_and_takes_the_answer():
    s = p.HostSession()
    s.start(0.0)
    s.receive(p.Hello(1, "", ""), 0.0)
    s.receive(p.CardRemovedMsg(1), 0.0)  # the STATUS answer
    acts = s.receive(p.Heartbeat(3), 1.0)  # two events never arrived
    assert _writes(acts) == [p.Status()]
    assert _writes(s.receive(p.Heartbeat(3), 1.05)) == []  # one question at a time
    assert _levels(s.receive(p.CardPresentMsg(3, b"\x01"), 1.1)) == [p.Present(b"\x01")]
    assert _writes(s.receive(p.Heartbeat(3), 2.0)) == []


def test_session_gap_on_an_event_applies_it_and_asks():
    s = p.HostSession()
    s.start(0.0)
    s.receive(p.Hello(1, "", ""), 0.0)
    s.receive(p.CardRemovedMsg(1), 0.0)
    acts = s.receive(p.CardPresentMsg(4, b"\x02"), 0.5)
    assert _levels(acts) == [p.Present(b"\x02")]
    assert _writes(acts) == [p.Status()]


def test_session_command_without_ack_ends_the_session():
    s = p.HostSession()
    s.start(0.0)
    s.receive(p.Hello(1, "", ""), 0.0)
    s.receive(p.Ack(1), 0.0)
    s.receive(p.CardRemovedMsg(0), 0.0)
    assert _writes(s.command(p.Led(0, 255, 0), 0.0)) == [p.Led(0, 255, 0)]
    resent = []
    now = 0.0
    for _ in range(3):
        now += 0.11
        resent += _writes(s.tick(now))
    assert resent == [p.Led(0, 255, 0)] * 3
    assert _levels(s.tick(now + 0.11)) == [p.Down(p.NOT_ANSWERING)]


def test_session_silence_for_three_seconds_is_lost():
    s = p.HostSession()
    s.start(0.0)
    s.receive(p.Hello(1, "", ""), 0.1)
    s.receive(p.Ack(1), 0.1)
    s.receive(p.CardRemovedMsg(0), 0.1)
    assert s.tick(3.0) == []
    assert s.next_deadline() == pytest.approx(3.1)
    assert _levels(s.tick(3.1)) == [p.Down(p.STOPPED)]


def test_session_handshake_waits_for_a_late_hello():
    s = p.HostSession()
    s.start(0.0)
    for now in (0.1, 0.2, 0.3, 0.4, 1.0):
        assert not _levels(s.tick(now))  # IDENTIFY unanswered is not fatal yet
    assert _writes(s.receive(p.Hello(1, "", ""), 1.5)) == [p.Status()]
    assert _levels(s.receive(p.CardRemovedMsg(0), 1.6)) == [p.Up(p.Hello(1, "", "")), p.Absent()]
    s2 = p.HostSession()
    s2.start(0.0)
    assert _levels(s2.tick(3.0)) == [p.Down(p.NOT_ANSWERING)]


def test_session_wrong_protocol_version_is_lost_with_a_plain_reason():
    s = p.HostSession()
    s.start(0.0)
    (down,) = _levels(s.receive(p.Hello(3, "9.0", "slot"), 0.1))
    assert isinstance(down, p.Down) and "version 3" in down.detail and "versions 1, 2" in down.detail


def test_session_firmware_restart_re_asks_status():
    s = p.HostSession()
    s.start(0.0)
    s.receive(p.Hello(1, "", ""), 0.0)
    s.receive(p.CardPresentMsg(40, b"\x01"), 0.0)
    acts = s.receive(p.Hello(1, "", ""), 5.0)
    assert _writes(acts) == [p.Status()] and not _levels(acts)
    assert _levels(s.receive(p.CardRemovedMsg(0), 5.1)) == [p.Absent()]


@settings(max_examples=200)
@given(st.lists(st.tuples(st.floats(0, 1.5), messages), max_size=40))
def test_session_never_raises_and_always_has_a_deadline(steps):
    s = p.HostSession()
    now = 0.0
    s.start(now)
    for dt, msg in steps:
        now += dt
        for a in s.receive(msg, now) + s.tick(now):
            assert isinstance(a, (p.Write, p.Present, p.Absent, p.Up, p.Down, p.Note))
        if s.state != "down":
            assert s.next_deadline() > now  # tick() did everything that was due


def test_every_example_frame_in_protocol_md_decodes():
    """PROTOCOL.md is the contract; its example frames must be real frames."""
    import re
    from pathlib import Path

    text = (Path(p.__file__).parent / "PROTOCOL.md").read_text()
    frames = re.findall(r"`((?:[0-9A-F]{2} ){5,}7E)`", text)
    assert len(frames) >= 10
    for hexes in frames:
        d = p.Decoder()
        assert len(d.feed(bytes.fromhex(hexes))) == 1, hexes
        assert d.errors == 0


# --- version 2: card events kept and resent by the reader until acknowledged -----------------


def _ready_v2(counter: int = 0, resume: int | None = None) -> p.HostSession:
    """A v2 session past its handshake, whose STATUS answer said: slot empty at ``counter``."""
    s = p.HostSession(resume=resume)
    s.start(0.0)
    s.receive(p.Hello(2, "2.0", "slot"), 0.0)
    s.receive(p.Ack(1), 0.0)
    s.receive(p.CardRemovedMsg(counter), 0.0)
    return s


def _acks(actions) -> list[int]:
    return [m.counter for m in _writes(actions) if isinstance(m, p.EventAck)]


def test_v2_status_answer_is_the_truth_and_acknowledged():
    s = p.HostSession()
    s.start(0.0)
    acts = s.receive(p.Hello(2, "2.0", "slot"), 0.0)
    assert s.version == 2 and _writes(acts) == [p.Status()]
    s.receive(p.Ack(1), 0.01)
    acts = s.receive(p.CardPresentMsg(41, b"\x0a"), 0.02)
    assert _levels(acts) == [p.Up(p.Hello(2, "2.0", "slot")), p.Present(b"\x0a")] and _acks(acts) == [41]
    assert s.window.last == 41


def test_v2_events_are_acknowledged_applied_in_order_and_each_only_once():
    s = _ready_v2(7)
    acts = s.receive(p.CardInEvent(8, 0, b"\x01"), 1.0)
    assert _levels(acts) == [p.Present(b"\x01", 1.0)] and _acks(acts) == [8]
    again = s.receive(p.CardInEvent(8, 120, b"\x01"), 1.12)  # our ACK was lost: the reader resends
    assert _levels(again) == [] and _acks(again) == [8]
    acts = s.receive(p.CardOutEvent(9, 0), 2.0)
    assert _levels(acts) == [p.Absent(2.0)] and _acks(acts) == [9]
    assert s.receive(p.Heartbeat(9), 2.2) == []


def test_v2_a_brief_insertion_whose_frames_were_lost_counts_when_resent_at_the_time_it_happened():
    s = _ready_v2(0)
    # Card in at 1.0, out at 1.3: the first sending of "in" was garbled, "out" got through.
    acts = s.receive(p.CardOutEvent(2, 0), 1.3)
    assert _levels(acts) == [] and _acks(acts) == [0]  # held; "I still have only 0": resend
    acts = s.receive(p.CardInEvent(1, 350, b"\x0b"), 1.35) + s.receive(p.CardOutEvent(2, 50), 1.35)
    assert _levels(acts) == [p.Present(b"\x0b", pytest.approx(1.0)), p.Absent(pytest.approx(1.3))]
    assert _acks(acts)[-1] == 2 and not s.window.gap_open()


def test_v2_a_heartbeat_ahead_asks_for_the_missing_events_and_a_silent_gap_is_given_up():
    s = _ready_v2(5)
    acts = s.receive(p.Heartbeat(7), 1.0)  # both events of a brief insertion lost
    assert _acks(acts) == [5] and s.window.gap_open()
    assert _acks(s.receive(p.Heartbeat(7), 1.25)) == [5]  # asked again at each beat
    assert s.next_deadline() <= 1.0 + p.GAP_TIMEOUT
    acts = s.tick(1.0 + p.GAP_TIMEOUT)  # never resent (pushed out of the reader's eight)
    assert _writes(acts) == [p.Status()]
    assert _levels(s.receive(p.CardRemovedMsg(7), 3.1)) == [p.Absent()]
    assert s.window.last == 7 and s.window.lost == 1


def test_v2_a_counter_that_goes_back_is_resynchronised_never_turned_into_a_phantom_card():
    s = _ready_v2(0)
    s.receive(p.CardInEvent(1, 0, b"\x0c"), 1.0)
    s.receive(p.CardOutEvent(2, 0), 2.0)
    s.receive(p.CardInEvent(3, 0, b"\x0d"), 3.0)
    # The reader restarts; its HELLO is lost. Its counter starts again at 0; it resends old-
    # looking events (1, 2) that are in fact new ones, and beats with counter 2.
    for msg in (p.CardInEvent(1, 0, b"\x0e"), p.CardOutEvent(2, 0)):
        assert _levels(s.receive(msg, 4.0)) == []  # 1 and 2 look like repeats: nothing applied
    acts = s.receive(p.Heartbeat(2), 4.1)  # behind what the host has: the reader restarted
    assert _writes(acts) == [p.Status()] and _levels(acts) == []
    assert _levels(s.receive(p.CardInEvent(3, 0, b"\x0f"), 4.15)) == []  # no truth yet: nothing applied
    acts = s.receive(p.CardRemovedMsg(2), 4.2)  # the truth: the slot is empty
    assert _levels(acts) == [p.Absent()] and _acks(acts) == [2]
    far = _ready_v2(100)
    assert _writes(far.receive(p.CardInEvent(60000, 0, b"\x01"), 1.0)) == [p.Status()]  # far off: resync too


def test_v2_resume_fetches_the_events_of_a_short_outage_from_the_reader():
    s = _ready_v2(resume=10, counter=12)  # the STATUS answer: two events since the old connection
    assert s.window.last == 10 and s.window.gap_open()
    acts = s.receive(p.CardInEvent(11, 900, b"\x05"), 1.0) + s.receive(p.CardOutEvent(12, 600), 1.0)
    up = p.Up(p.Hello(2, "2.0", "slot"))  # connected once the host knows the slot: here, from the events
    assert _levels(acts) == [up, p.Present(b"\x05", pytest.approx(0.1)), p.Absent(pytest.approx(0.4))]
    restarted = _ready_v2(resume=10, counter=0)  # counter behind the hint: a restarted reader
    assert restarted.window.last == 0 and not restarted.window.gap_open()


def test_a_status_answer_lost_after_its_ack_is_asked_again():
    for version in (1, 2):
        s = p.HostSession()
        s.start(0.0)
        s.receive(p.Hello(version, "", ""), 0.0)
        s.receive(p.Ack(1), 0.01)  # the ACK came, the answer did not
        assert _writes(s.tick(0.2)) == []
        assert _writes(s.tick(0.01 + p.STATUS_ANSWER_WAIT)) == [p.Status()]


def test_v2_a_status_that_runs_out_of_resends_is_asked_again_and_only_three_seconds_without_any_ack_end_it():
    s = _ready_v2(0)
    assert _writes(s.command(p.Led(1, 2, 3), 1.0)) == [p.Led(1, 2, 3)]
    acts = [a for t in (1.11, 1.22, 1.33, 1.44) for a in s.tick(t)]
    assert not [a for a in acts if isinstance(a, p.Down)]  # an LED lost on a noisy line: a note
    assert any(isinstance(a, p.Note) and "Led" in a.text for a in acts)
    s.command(p.Status(), 2.0)
    now, downs, asked = 2.0, [], 0
    while not downs and now < 10:
        now += 0.05
        acts = s.tick(now) + s.receive(p.Heartbeat(0), now)  # alive, but nothing acknowledged
        asked += sum(isinstance(m, p.Status) for m in _writes(acts))
        downs = [a for a in acts if isinstance(a, p.Down)]
    assert downs == [p.Down(p.NOT_ANSWERING)] and asked > 4
    assert now == pytest.approx(2.0 + p.HEARTBEAT_TIMEOUT, abs=0.06)


@settings(max_examples=300)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 7), st.booleans()), max_size=80))
def test_v2_whatever_the_line_loses_or_repeats_the_host_applies_the_readers_events_in_order_once(steps):
    """A model reader: it keeps its last eight unacknowledged events and sends any of them, any
    number of times; each EVENT_ACK reaches it or not. The host must apply a prefix of the
    reader's events, in order, each once, and nothing else."""
    s = _ready_v2(0)
    produced: list[tuple[int, p.Action]] = []
    acked = 0
    applied: list = []
    now = 1.0
    for new_event, pick, ack_arrives in steps:
        now += 0.01
        if new_event:
            n = len(produced) + 1
            produced.append((n, p.Present(bytes([n % 256]), now) if n % 2 else p.Absent(now)))
        ring = [e for e in produced if e[0] > acked][-p.EVENT_RING :]
        if not ring:
            continue
        counter, level = ring[pick % len(ring)]
        age = round((now - level.at) * 1000)
        msg = p.CardInEvent(counter, age, level.uid) if isinstance(level, p.Present) else p.CardOutEvent(counter, age)
        acts = s.receive(msg, now)
        applied += [a for a in acts if isinstance(a, (p.Present, p.Absent))]
        if ack_arrives and _acks(acts):
            acked = max(acked, _acks(acts)[-1])
    expected = [level for _, level in produced[: len(applied)]]
    assert [type(a) for a in applied] == [type(e) for e in expected]
    assert [getattr(a, "uid", None) for a in applied] == [getattr(e, "uid", None) for e in expected]
    assert all(a.at == pytest.approx(e.at, abs=0.002) for a, e in zip(applied, expected))
