"""The serial reader driver: a thin I/O shell around protocol.HostSession.

It opens the port exclusively (so a stray ``screen`` cannot steal half the bytes), says
IDENTIFY, and then sleeps in ``select`` until bytes arrive, a resend falls due or the heartbeat
watchdog runs out: it never busy-polls. When the device disappears or goes quiet it reports
``lost`` once, and keeps trying to open the same path with a short backoff (0.2 s doubling to
2 s), so a reader pulled out and pushed back is working again within about two seconds.

pyserial is imported only inside :meth:`SerialDriver._open`, so machines without it still run
every other driver.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections import deque

from firmware_bridge import protocol as p
from firmware_bridge.driver import ReaderSink
from klick.config import ReaderConfig
from klick.uid import UidError, normalise_uid

__all__ = ["SerialDriver", "BACKOFF_START", "BACKOFF_MAX"]

log = logging.getLogger(__name__)

BACKOFF_START = 0.2
BACKOFF_MAX = 2.0
#: A version 2 reader that comes back within this many seconds may still hold the card events
#: of the gap; the new connection fetches them (see protocol.HostSession's ``resume``).
RESUME_WITHIN = 10.0
#: Longest sleep in select, so a set ``stop`` is noticed promptly even on a silent line.
MAX_WAIT = 0.25


class SerialDriver:
    """Reports one serial Klick reader's levels to ``sink`` until ``stop`` is set."""

    def __init__(self, reader: ReaderConfig, sink: ReaderSink, *, device: str | None = None) -> None:
        self.reader = reader
        self.sink = sink
        self.device = device or reader.device or "/dev/klick-reader"
        self.decoder_errors = 0  # garbage frames dropped, over all connections
        self.connections = 0
        self._commands: deque[p.Message] = deque()
        self._wake_r = self._wake_w = -1  # a pipe that exists while run() runs
        self._connected = threading.Event()
        self._last_status: tuple[str, str] | None = None
        self._decoder: p.Decoder | None = None
        self._resume: tuple[int, float] | None = None  # (last event counter applied, when the connection ended)
        self.session: p.HostSession | None = None  # the current connection's, for tests and benchmarks

    # ---- host commands, from any thread -------------------------------------------------------

    def led(self, r: int, g: int, b: int) -> bool:
        """Ask the reader to light its LED; False if no reader is connected. ACK/resend inside."""
        return self._queue(p.Led(r, g, b))

    def beep(self, ms: int) -> bool:
        """Ask the reader to beep for ``ms`` milliseconds; False if no reader is connected."""
        return self._queue(p.Beep(ms))

    def request_status(self) -> bool:
        """Ask the reader what is in the slot now; the answer arrives as seen/gone."""
        return self._queue(p.Status())

    def _queue(self, msg: p.Message) -> bool:
        p.encode_payload(msg)  # a bad field is the caller's mistake: raise FieldError here
        if not self._connected.is_set():
            return False
        self._commands.append(msg)
        self._wake()
        return True

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except OSError:
            pass  # full (it is awake anyway) or already closed (run has ended)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def garbage(self) -> int:
        """Frames or runs of garbage dropped so far, including the current connection."""
        return self.decoder_errors + (self._decoder.errors if self._decoder else 0)

    # ---- the loop ----------------------------------------------------------------------------

    def _status(self, state: str, detail: str) -> None:
        if self._last_status == (state, detail):
            return
        self._last_status = (state, detail)
        log.info("reader %s: %s: %s", self.reader.name, state, detail)
        self.sink.status(state, detail, self.reader.mode)

    def run(self, stop: threading.Event) -> None:
        self._status("searching", f"Looking for the card reader at {self.device}.")
        backoff = BACKOFF_START
        was_connected = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        try:
            while not stop.is_set():
                try:
                    port = self._open()
                except Exception as exc:  # pyserial raises SerialException/OSError/ValueError
                    log.debug("cannot open %s: %s", self.device, exc)
                    if not was_connected:
                        self._status("searching", f"No card reader found at {self.device}. Check that it is plugged in.")
                    stop.wait(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                    continue
                try:
                    detail, up = self._serve(port, stop)
                finally:
                    self._connected.clear()
                    self._commands.clear()
                    try:
                        port.close()
                    except Exception:
                        pass
                if up:
                    was_connected = True
                    backoff = BACKOFF_START  # it was working: the first retry comes quickly
                if detail is not None:
                    self._status("lost", detail)
                    stop.wait(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
        finally:
            self._connected.clear()
            wake_r, wake_w, self._wake_r, self._wake_w = self._wake_r, self._wake_w, -1, -1
            os.close(wake_r)
            os.close(wake_w)

    def _open(self):
        import serial  # only when the serial driver is chosen

        return serial.Serial(self.device, self.reader.baudrate, timeout=0, write_timeout=1.0, exclusive=True)

    def _serve(self, port, stop: threading.Event) -> tuple[str | None, bool]:
        """Talk to one open port until it fails; return (why it was lost or None, was it up)."""
        self.connections += 1
        resume = None
        if self._resume is not None and time.monotonic() - self._resume[1] < RESUME_WITHIN:
            resume = self._resume[0]
        session = self.session = p.HostSession(resume=resume)
        decoder = self._decoder = p.Decoder()
        fd = port.fileno()
        up = False

        def act(actions: list[p.Action]) -> str | None:
            nonlocal up
            for a in actions:
                if isinstance(a, p.Write):
                    port.write(a.frame)
                elif isinstance(a, p.Present):
                    try:
                        uid = normalise_uid(a.uid)
                    except UidError as exc:
                        log.warning("reader %s sent a card ID that is not usable: %s", self.reader.name, exc)
                        continue
                    self.sink.seen(uid, now if a.at is None else min(a.at, now))
                elif isinstance(a, p.Absent):
                    self.sink.gone(now if a.at is None else min(a.at, now))
                elif isinstance(a, p.Up):
                    up = True
                    self._connected.set()
                    h = a.hello
                    self._status(
                        "connected", f"The card reader is connected ({h.kind or 'reader'}, firmware {h.firmware or 'unknown'})."
                    )
                elif isinstance(a, p.Down):
                    return a.detail
                elif isinstance(a, p.Note):
                    log.info("reader %s: %s", self.reader.name, a.text)
            return None

        try:
            now = time.monotonic()
            lost = act(session.start(now))
            while lost is None and not stop.is_set():
                while self._commands:
                    lost = act(session.command(self._commands.popleft(), time.monotonic()))
                if lost is not None:
                    break
                wait = min(max(0.0, session.next_deadline() - time.monotonic()), MAX_WAIT)
                readable, _, _ = select.select([fd, self._wake_r], [], [], wait)
                if self._wake_r in readable:
                    try:
                        os.read(self._wake_r, 512)
                    except BlockingIOError:
                        pass
                data = b""
                if fd in readable:
                    # pyserial raises SerialException when the device reports readiness but
                    # gives no data: that is how an unplugged USB adapter or a closed pty shows.
                    data = port.read(max(1, port.in_waiting))
                now = time.monotonic()
                for _seq, msg in decoder.feed(data):
                    lost = act(session.receive(msg, now))
                    if lost is not None:
                        break
                if lost is None:
                    lost = act(session.tick(time.monotonic()))
            return lost, up
        except Exception as exc:  # the device went away under us
            log.info("reader %s: %s", self.reader.name, exc)
            return "The card reader was unplugged or stopped working.", up
        finally:
            self.decoder_errors += decoder.errors
            self._decoder = None
            if session.version >= 2 and session.window.last is not None:
                self._resume = (session.window.last, time.monotonic())


def list_serial_ports() -> list[tuple[str, str]]:
    """(device, description) for every serial port, for `klick doctor`; empty without pyserial."""
    try:
        from serial.tools import list_ports
    except ImportError:
        return []
    try:
        return sorted((p.device, p.description or "") for p in list_ports.comports())
    except OSError:
        return []
