"""The ``sim`` reader: the firmware simulator on a pty, read by the real serial driver.

So the demo and ``klick simulate`` go through exactly the code a real reader does: pyserial,
framing, CRC, ACKs, heartbeats, reconnects. The bridge's control channel calls :meth:`insert`
and :meth:`remove`; tests and the demo can also :meth:`unplug` and :meth:`replug`.

The slot's content belongs to this object, not to one simulator: a card left in the slot is
still there after a replug, as it would be on a real reader.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

from firmware_bridge.driver import ReaderSink
from firmware_bridge.serial_driver import SerialDriver
from firmware_bridge.simulator import Simulator, uid_bytes
from klick.config import ReaderConfig

__all__ = ["SimDriver"]


class SimDriver:
    def __init__(self, reader: ReaderConfig, sink: ReaderSink) -> None:
        self.reader = reader
        self.sink = sink
        self._lock = threading.Lock()
        #: Stands in for udev's /dev/klick-reader: re-pointed at each new pty on replug. Its
        #: directory exists only while :meth:`run` runs.
        self.link = Path(tempfile.gettempdir()) / "klick-sim-not-running" / "klick-reader"
        self.serial = SerialDriver(reader, sink, device=str(self.link))
        self.sim: Simulator | None = None
        self._card: bytes | None = None
        self._counter = 0

    # ---- control channel ------------------------------------------------------------------

    def check_uid(self, uid: str) -> None:
        """Raise UidError (in plain words) for an ID this reader cannot send, e.g. odd digits."""
        uid_bytes(uid)

    def insert(self, uid: str | bytes) -> float | None:
        """Slot a card; return the monotonic time its bytes went on the line (None if unplugged)."""
        uid_b = uid_bytes(uid)
        with self._lock:
            self._card = uid_b
            if self.sim is None:
                return None
            return self.sim.insert(uid_b)

    def remove(self) -> float | None:
        with self._lock:
            self._card = None
            if self.sim is None:
                return None
            return self.sim.remove()

    def unplug(self) -> None:
        """Pull the reader's cable: the pty closes and the serial driver reports ``lost``."""
        with self._lock:
            sim, self.sim = self.sim, None
            if sim is not None:
                self._counter = sim.counter
                sim.close()  # takes the link away too, as udev would

    def replug(self) -> Simulator:
        """Plug a reader back in: a fresh simulator on a new pty behind the same path."""
        with self._lock:
            if self.sim is not None:
                return self.sim
            self.sim = Simulator(link=self.link, card=self._card, counter=self._counter).start()
            return self.sim

    # ---- Driver -----------------------------------------------------------------------------

    def led(self, r: int, g: int, b: int) -> bool:
        return self.serial.led(r, g, b)

    def beep(self, ms: int) -> bool:
        return self.serial.beep(ms)

    def run(self, stop: threading.Event) -> None:
        with self._lock:
            tmp = Path(tempfile.mkdtemp(prefix="klick-sim-"))
            self.link = tmp / "klick-reader"
            self.serial.device = str(self.link)
        try:
            self.replug()
            self.serial.run(stop)
        finally:
            self.unplug()
            shutil.rmtree(tmp, ignore_errors=True)
