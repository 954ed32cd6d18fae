"""What every reader driver promises the bridge, and how the configured one is chosen.

A driver owns one piece of hardware and reports *levels*, not events: "the field holds this
card now", "the field is empty now". Turning levels into place/lift events (settle, grace,
resume) is the job of the one state machine per reader, so every kind of reader behaves alike.

A driver never raises for hardware trouble. It reports ``status("lost", ...)`` in plain words,
waits, and tries again until ``stop`` is set: a reader knocked loose must come back by itself.
"""

from __future__ import annotations

import importlib
import threading
from typing import Protocol

from klick.config import ReaderConfig

__all__ = ["ReaderSink", "Driver", "make_driver", "DRIVERS"]


class ReaderSink(Protocol):
    def seen(self, uid: str, at: float) -> None:
        """The field holds card ``uid`` (already normalised) from monotonic time ``at`` on."""

    def gone(self, at: float) -> None:
        """The field is empty from monotonic time ``at`` on."""

    def tapped(self, uid: str, at: float) -> None:
        """A reader that cannot sense removal (keyboard-style) saw ``uid`` once."""

    def status(self, state: str, detail: str, mode: str = "slot") -> None:
        """The reader is connected, searching or lost; ``detail`` is a plain sentence."""


class Driver(Protocol):
    def __init__(self, reader: ReaderConfig, sink: ReaderSink) -> None: ...

    def run(self, stop: threading.Event) -> None:
        """Block, reporting to the sink, until ``stop`` is set. Reconnects on its own."""


#: driver name → "module:class". The module is imported only when that driver is chosen, so a
#: machine without nfcpy, pyserial or evdev still runs every other driver.
DRIVERS = {
    "sim": "firmware_bridge.sim_driver:SimDriver",
    "serial": "firmware_bridge.serial_driver:SerialDriver",
    "nfc": "firmware_bridge.nfc_driver:NfcDriver",
    "hid": "firmware_bridge.hid_driver:HidDriver",
}


def make_driver(reader: ReaderConfig, sink: ReaderSink) -> Driver:
    module_name, cls_name = DRIVERS[reader.driver].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(reader, sink)
