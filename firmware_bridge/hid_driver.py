"""The ``hid`` reader: a keyboard-style USB RFID reader, read through evdev.

Such a reader "types" the card number and Enter. Left alone, those keystrokes would land in
whatever has the focus (a browser's address bar, a shell). So the driver grabs the device
exclusively: the ID reaches the bridge and nothing else. It decodes key codes, not characters
(see keycodes.py), so the ID does not depend on the keyboard layout.

These readers say "a card was here" but never "it was lifted", so the driver reports taps and
the reader's mode is always ``tap``. ``reader.device`` is the device path (best a stable
``/dev/input/by-id/...-event-kbd`` link); left empty, the driver takes the first input device
whose name looks like a card reader, and never an ordinary keyboard.
evdev is imported only inside :meth:`HidDriver.run`.
"""

from __future__ import annotations

import logging
import re
import select
import threading
import time

from firmware_bridge.driver import ReaderSink
from firmware_bridge.keycodes import KeyDecoder
from klick.config import ReaderConfig
from klick.uid import UidError, normalise_uid

__all__ = ["HidDriver", "looks_like_reader"]

log = logging.getLogger(__name__)

BACKOFF_START, BACKOFF_MAX = 0.5, 5.0
#: Longest sleep in select, so a set ``stop`` is noticed promptly.
MAX_WAIT = 0.5
#: Names keyboard-style readers give themselves (Sycreader, "RFID Reader", "USB ID Card Reader", ...).
_READER_NAME = re.compile(r"rfid|card ?reader|id ?card|125 ?k|sycreader|prox|nfc|reader", re.I)
EV_KEY, KEY_ENTER, KEY_1 = 1, 28, 2


def looks_like_reader(name: str, keys: set[int]) -> bool:
    """A device we may grab without asking: named like a reader, and able to type an ID."""
    return bool(_READER_NAME.search(name)) and KEY_ENTER in keys and KEY_1 in keys


class HidDriver:
    def __init__(self, reader: ReaderConfig, sink: ReaderSink) -> None:
        self.reader = reader
        self.sink = sink
        self._last_status: tuple[str, str] | None = None

    def run(self, stop: threading.Event) -> None:
        import evdev  # only when the hid driver is chosen

        backoff = BACKOFF_START
        was_connected = False
        while not stop.is_set():
            device = self._open(evdev)
            if device is None:
                where = self.reader.device or "any input device named like a card reader"
                self._status(
                    "lost" if was_connected else "searching",
                    f"No keyboard-style card reader found ({where}). Check that it is plugged in.",
                )
                stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            try:
                device.grab()
            except OSError as exc:
                device.close()
                self._status("lost", f"The card reader {device.path} is in use by another program ({exc.strerror}).")
                stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            was_connected = True
            backoff = BACKOFF_START
            self._status("connected", f"The card reader is connected ({device.name}, tap mode).")
            try:
                self._serve(evdev, device, stop)
            except OSError as exc:
                log.debug("card reader %s failed: %s", device.path, exc)
                self._status("lost", "The card reader was unplugged or stopped working.")
            finally:
                try:
                    device.ungrab()
                except OSError:
                    pass
                device.close()

    def _open(self, evdev):
        if self.reader.device:
            try:
                return evdev.InputDevice(self.reader.device)
            except OSError as exc:
                log.debug("cannot open %s: %s", self.reader.device, exc)
                return None
        for path in evdev.list_devices():
            try:
                device = evdev.InputDevice(path)
            except OSError:
                continue
            keys = set(device.capabilities().get(EV_KEY, []))
            if looks_like_reader(device.name, keys):
                return device
            device.close()
        return None

    def _serve(self, evdev, device, stop: threading.Event) -> None:
        decoder = KeyDecoder()
        while not stop.is_set():
            readable, _, _ = select.select([device.fd], [], [], MAX_WAIT)
            if not readable:
                continue
            for event in device.read():
                if event.type != EV_KEY:
                    continue
                rejected = decoder.rejected
                uid = decoder.feed(event.code, event.value, event.timestamp())
                if decoder.rejected != rejected:
                    log.warning("The card reader typed something that is not a card ID; ignored it.")
                if uid is None:
                    continue
                try:
                    self.sink.tapped(normalise_uid(uid), time.monotonic())
                except UidError as exc:
                    log.warning("The card reader sent a card ID that is not usable: %s.", exc)

    def _status(self, state: str, detail: str) -> None:
        if self._last_status == (state, detail):
            return
        self._last_status = (state, detail)
        self.sink.status(state, detail, "tap")


def input_devices() -> list[tuple[str, str]]:
    """(path, name) of every input device, for `klick doctor`; raises ImportError without evdev."""
    import evdev

    out = []
    for path in evdev.list_devices():
        try:
            dev = evdev.InputDevice(path)
        except OSError:
            continue
        try:
            out.append((path, dev.name or ""))
        finally:
            dev.close()
    return out
