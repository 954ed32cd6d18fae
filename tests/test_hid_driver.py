"""The keyboard-style reader: key codes to IDs (pure), and the evdev driver where uinput exists."""

from __future__ import annotations

import os
import queue
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge.hid_driver import HidDriver, looks_like_reader
from firmware_bridge.keycodes import KEY_CHARS, KeyDecoder
from klick.config import ReaderConfig

DOWN, UP, REPEAT = 1, 0, 2
ENTER, KPENTER, LSHIFT, RSHIFT = 28, 96, 42, 54
CODE_OF = {ch: code for code, ch in KEY_CHARS.items() if code < 71}  # top-row digits and letters
KEYPAD = {"7": 71, "8": 72, "9": 73, "4": 75, "5": 76, "6": 77, "1": 79, "2": 80, "3": 81, "0": 82}


def typed(
    text: str, codes: dict[str, int] = CODE_OF, shift: bool = False, enter: int = ENTER, start: float = 0.0, step: float = 0.004
) -> list[tuple[int, int, float]]:
    """The events a reader sends for ``text`` + Enter: down/up for each key, 4 ms apart."""
    events, t = [], start
    for ch in text:
        keys = [LSHIFT, codes[ch]] if shift else [codes[ch]]
        for code in keys:
            events.append((code, DOWN, t))
        for code in reversed(keys):
            events.append((code, UP, t + step / 2))
        t += step
    events += [(enter, DOWN, t), (enter, UP, t + step / 2)]
    return events


def decode(events) -> list[str]:
    decoder = KeyDecoder()
    return [uid for code, value, at in events if (uid := decoder.feed(code, value, at)) is not None]


# --- recorded sequences ------------------------------------------------------------------------


def test_a_ten_digit_id_with_leading_zeros():
    assert decode(typed("0012345678")) == ["0012345678"]


def test_a_recorded_sycreader_burst():
    # Written out as a 125 kHz EM4100 keyboard reader sends it, one key event every 8 ms:
    # (code, value, seconds) for "0004567890" and Enter.
    recorded = [
        (11, 1, 0.000),
        (11, 0, 0.008),
        (11, 1, 0.016),
        (11, 0, 0.024),
        (11, 1, 0.032),
        (11, 0, 0.040),
        (5, 1, 0.048),
        (5, 0, 0.056),
        (6, 1, 0.064),
        (6, 0, 0.072),
        (7, 1, 0.080),
        (7, 0, 0.088),
        (8, 1, 0.096),
        (8, 0, 0.104),
        (9, 1, 0.112),
        (9, 0, 0.120),
        (10, 1, 0.128),
        (10, 0, 0.136),
        (11, 1, 0.144),
        (11, 0, 0.152),
        (28, 1, 0.160),
        (28, 0, 0.168),
    ]
    assert decode(recorded) == ["0004567890"]


def test_shift_is_ignored_so_a_french_layout_reader_gives_the_same_id():
    # On AZERTY a reader must hold Shift to get digits from the top row; the codes are the same.
    assert decode(typed("0012345678", shift=True)) == ["0012345678"]


def test_keypad_digits_and_keypad_enter():
    assert decode(typed("9876543210", codes=KEYPAD, enter=KPENTER)) == ["9876543210"]


def test_hex_ids():
    assert decode(typed("04A2B3C4D5E6F0")) == ["04A2B3C4D5E6F0"]


def test_auto_repeat_adds_nothing():
    events = [(2, DOWN, 0.0), (2, REPEAT, 0.3), (2, REPEAT, 0.33), (2, UP, 0.34), (ENTER, DOWN, 0.35)]
    assert decode(events) == ["1"]


def test_a_stray_key_spoils_that_id_only():
    decoder = KeyDecoder()
    bad = typed("12")[:-2] + [(34, DOWN, 0.01), (34, UP, 0.011), (ENTER, DOWN, 0.02), (ENTER, UP, 0.021)]  # KEY_G
    assert [u for c, v, t in bad if (u := decoder.feed(c, v, t))] == []
    assert decoder.rejected == 1
    assert [u for c, v, t in typed("0042", start=0.1) if (u := decoder.feed(c, v, t))] == ["0042"]


def test_a_half_typed_id_goes_stale_after_a_pause():
    events = typed("123")[:-2] + typed("0099", start=2.0)
    assert decode(events) == ["0099"]


def test_enter_alone_is_nothing():
    assert decode([(ENTER, DOWN, 0.0), (ENTER, UP, 0.01)]) == []


def test_a_key_stuck_down_forever_is_not_an_id():
    events = [(2, DOWN, i * 0.01) for i in range(100)] + [(ENTER, DOWN, 1.0)]
    assert decode(events) == []


@given(st.lists(st.text("0123456789ABCDEF", min_size=1, max_size=40), max_size=10), st.booleans())
def test_any_sequence_of_ids_decodes_to_itself(ids, shift):
    events, t = [], 0.0
    for uid in ids:
        events += typed(uid, shift=shift, start=t)
        t = events[-1][2] + 0.05
    assert decode(events) == ids


@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 2), st.floats(0, 10)), max_size=200))
def test_random_key_events_never_raise(events):
    decoder = KeyDecoder()
    for code, value, at in sorted(events, key=lambda e: e[2]):
        uid = decoder.feed(code, value, at)
        assert uid is None or (0 < len(uid) <= 40 and set(uid) <= set("0123456789ABCDEF"))


def test_only_devices_named_like_readers_are_taken():
    assert looks_like_reader("Sycreader RFID Technology Co., Ltd SYC ID&IC USB Reader", {28, 2, 11})
    assert looks_like_reader("HID 08ff:0009 RFID Reader", {28, 2})
    assert not looks_like_reader("AT Translated Set 2 keyboard", {28, 2, 11})
    assert not looks_like_reader("RFID Reader", {115, 114})  # a "reader" with no digit keys


# --- the driver --------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.items: queue.SimpleQueue = queue.SimpleQueue()

    def seen(self, uid, at):
        self.items.put(("seen", uid))

    def gone(self, at):
        self.items.put(("gone",))

    def tapped(self, uid, at):
        self.items.put(("tapped", uid))

    def status(self, state, detail, mode="slot"):
        self.items.put(("status", state, mode))


def running(device: str) -> tuple[Recorder, threading.Event, threading.Thread]:
    sink = Recorder()
    stop = threading.Event()
    driver = HidDriver(ReaderConfig(driver="hid", device=device, mode="slot"), sink)
    thread = threading.Thread(target=driver.run, args=(stop,), daemon=True)
    thread.start()
    return sink, stop, thread


def test_a_missing_device_is_reported_as_searching_in_tap_mode(tmp_path):
    pytest.importorskip("evdev")
    sink, stop, thread = running(str(tmp_path / "event99"))
    try:
        assert sink.items.get(timeout=5) == ("status", "searching", "tap")
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


@pytest.mark.skipif(not os.access("/dev/uinput", os.W_OK), reason="no writable /dev/uinput on this machine")
def test_a_uinput_reader_types_an_id_and_the_driver_grabs_it():
    evdev = pytest.importorskip("evdev")
    keys = list(KEY_CHARS) + [ENTER, LSHIFT]
    with evdev.UInput({evdev.ecodes.EV_KEY: keys}, name="Klick Test RFID Reader") as ui:
        time.sleep(0.3)  # udev creates the node
        sink, stop, thread = running(ui.device.path)
        try:
            assert sink.items.get(timeout=5) == ("status", "connected", "tap")
            for code, value, _ in typed("0012345678"):
                ui.write(evdev.ecodes.EV_KEY, code, value)
                ui.syn()
            assert sink.items.get(timeout=5) == ("tapped", "0012345678")
        finally:
            stop.set()
            thread.join(5)
