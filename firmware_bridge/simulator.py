"""A pure-Python stand-in for the reader's firmware, speaking the Klick wire protocol on a pty.

The simulator owns the master end of a pseudo-terminal; the slave end (``sim.path``) looks to
the host exactly like a USB serial reader, so the demo and the tests exercise the real serial
driver, pyserial and all. It can also misbehave on purpose (drop an event, send garbage, go
silent, be unplugged) so the host's recovery is tested against the real thing.

It speaks protocol version 2 (card events kept and resent until acknowledged, like the
reference firmware) unless told ``protocol_version=1``, to stand in for an older reader.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import threading
import time
import tty
from pathlib import Path

from firmware_bridge import protocol as p

__all__ = ["Simulator", "uid_bytes"]

log = logging.getLogger(__name__)


def uid_bytes(uid: bytes | bytearray | str) -> bytes:
    """The card ID as the bytes a serial reader sends; :class:`UidError` says plainly why not.

    Shared by ``klick simulate`` (before it asks the bridge) and the bridge (before the
    simulator sees it), so a bad ID is refused in words at the door, never as a traceback.
    """
    if isinstance(uid, (bytes, bytearray)):
        return bytes(uid)
    from klick.uid import UidError, normalise_uid

    text = normalise_uid(uid)
    if len(text) % 2:
        # Padding with a 0 would quietly turn the card into another one.
        raise UidError(
            f"the card ID {text} has an odd number of digits; a serial reader sends whole bytes, "
            "so it needs an even number of hex digits"
        )
    return bytes.fromhex(text)


class Simulator:
    """Firmware on the far side of a pty. Start with :meth:`start`; :meth:`close` is an unplug.

    ``link``: a path to keep pointed at the slave (like udev's ``/dev/klick-reader``); it is
    re-pointed atomically, so a new simulator on the same link is a replug, and removed again
    by :meth:`close`.
    """

    def __init__(
        self,
        *,
        link: str | os.PathLike | None = None,
        firmware: str = "sim-1.0",
        kind: str = "slot",
        heartbeat_interval: float | None = None,
        card: bytes | str | None = None,
        counter: int = 0,
        protocol_version: int = p.PROTOCOL_VERSION,
    ) -> None:
        self.firmware = firmware
        self.kind = kind
        self.protocol_version = protocol_version
        self.reliable = protocol_version >= 2  # card events kept and resent until acknowledged
        if heartbeat_interval is None:
            heartbeat_interval = p.HEARTBEAT_INTERVAL_V2 if self.reliable else p.HEARTBEAT_INTERVAL
        self.heartbeat_interval = heartbeat_interval
        self.counter = counter & 0xFFFF
        self.card: bytes | None = None if card is None else uid_bytes(card)
        self.received: list[p.Message] = []  # host commands, in arrival order
        self.led = (0, 0, 0)
        self.beeps: list[int] = []
        self.acks_to_skip = 0  # the next N host commands get no ACK (tests resends)
        self.silent = False  # no heartbeats, no answers: firmware hung
        self.decoder = p.Decoder()
        self.bytes_written = 0
        self._drop_events = 0
        self._ring: list[tuple[int, bytes | None, float]] = []  # v2: events not yet acknowledged
        self._rounds = 0
        self._next_resend = 0.0
        self._last_resend = 0.0
        self._seq = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()  # a new event wakes the loop, so its resend is on time
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread: threading.Thread | None = None
        self._received_cond = threading.Condition()
        self.master, self._slave = os.openpty()
        # Raw at once: a cooked slave would echo our own frames back to us before the host
        # opens it, and mangle 0x0A/0x0D.
        tty.setraw(self._slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)
        self.link = Path(link) if link is not None else None
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".tmp")
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass
            os.symlink(self.path, tmp)
            os.replace(tmp, self.link)
        self.closed = False

    # ---- life cycle -----------------------------------------------------------------------

    def start(self) -> Simulator:
        self._send(p.Hello(self.protocol_version, self.firmware, self.kind))
        self._thread = threading.Thread(target=self._run, name="klick-sim-firmware", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Unplug: stop the firmware, take the link away and close both ends of the pty.

        The host sees EIO on the port it holds and ENOENT at the link, as when udev removes
        /dev/klick-reader. The link goes *before* the pty: once the host lets go of it, the
        kernel hands this pty's number to the next program that asks (another test run's
        simulator, a terminal), and a link left behind would lead the host straight into it.
        """
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._unlink()
            for fd in (self.master, self._slave, self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def _unlink(self) -> None:
        """Remove the link if it still leads here; a newer simulator may own it already."""
        if self.link is None:
            return
        try:
            if os.readlink(self.link) == self.path:
                os.unlink(self.link)
        except OSError:
            pass  # gone already, or not a link we made

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- what a resident does ---------------------------------------------------------------

    def insert(self, uid: bytes | str) -> float:
        """Put a card in the slot; return the monotonic time just before its bytes were written."""
        uid_b = uid_bytes(uid)
        with self._lock:
            self.card = uid_b
            self.counter = (self.counter + 1) & 0xFFFF
            return self._event(uid_b)

    def remove(self) -> float:
        """Take the card out; return the monotonic time just before the bytes were written."""
        with self._lock:
            self.card = None
            self.counter = (self.counter + 1) & 0xFFFF
            return self._event(None)

    @property
    def unacknowledged(self) -> int:
        """Card events (v2) the host has not acknowledged yet."""
        with self._lock:
            return len(self._ring)

    # ---- misbehaviour on purpose ------------------------------------------------------------

    def drop_next_events(self, n: int = 1) -> None:
        """The next ``n`` card events change the state and the counter, but their first sending
        never reaches the line (version 1: they are lost; version 2: they are resent)."""
        with self._lock:
            self._drop_events += n

    def inject(self, garbage: bytes) -> None:
        """Write raw bytes, as line noise would."""
        with self._lock:
            self._write(garbage)

    def send(self, msg: p.Message) -> None:
        """Send any message, e.g. a HELLO to act out a firmware restart."""
        with self._lock:
            self._send(msg)

    def wait_received(self, cls: type, count: int = 1, timeout: float = 10.0) -> bool:
        """Wait until the host has sent ``count`` commands of type ``cls`` (for tests)."""
        with self._received_cond:
            return self._received_cond.wait_for(lambda: sum(isinstance(m, cls) for m in self.received) >= count, timeout)

    # ---- the firmware -----------------------------------------------------------------------

    def _event(self, uid: bytes | None) -> float:
        at = time.monotonic()
        if self.reliable:
            self._ring.append((self.counter, uid, at))
            del self._ring[: -p.EVENT_RING]
            self._rounds = p.EVENT_RESEND_ROUNDS
            self._next_resend = at + p.EVENT_RESEND
            try:
                os.write(self._wake_w, b"!")
            except OSError:
                pass  # full (a wake-up is pending) or closed
        if self._drop_events:
            self._drop_events -= 1
            return at
        self._send_event(self.counter, uid, at, at)
        return at

    def _send_event(self, counter: int, uid: bytes | None, at: float, now: float) -> None:
        if not self.reliable:
            self._send(p.CardRemovedMsg(counter) if uid is None else p.CardPresentMsg(counter, uid))
            return
        age = min(0xFFFF, max(0, round((now - at) * 1000)))
        self._send(p.CardOutEvent(counter, age) if uid is None else p.CardInEvent(counter, age, uid))

    def _resend(self, now: float) -> None:
        for counter, uid, at in self._ring:
            self._send_event(counter, uid, at, now)
        self._last_resend = now
        self._next_resend = now + p.EVENT_RESEND
        self._rounds -= 1

    def _event_ack(self, counter: int) -> None:
        before = len(self._ring)
        self._ring = [e for e in self._ring if (counter - e[0]) & 0xFFFF >= 0x8000]
        if not self._ring:
            return
        self._rounds = p.EVENT_RESEND_ROUNDS
        now = time.monotonic()
        if len(self._ring) == before and now - self._last_resend >= p.EVENT_RESEND / 2:
            self._resend(now)  # it acknowledged nothing new: it lacks these

    def _send(self, msg: p.Message) -> None:
        frame = p.encode(msg, self._seq)
        self._seq = (self._seq + 1) & 0x0F
        self._write(frame)

    def _write(self, data: bytes) -> None:
        """Write like a UART: what nobody reads is lost, and the simulator never blocks on it."""
        if self.closed:
            return
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.master, view)
            except BlockingIOError:
                return  # the host is not reading; a real UART would overrun too
            except OSError as exc:
                if exc.errno in (errno.EIO, errno.EBADF):
                    return
                raise
            self.bytes_written += n
            view = view[n:]

    def _status_answer(self) -> p.Message:
        if self.card is None:
            return p.CardRemovedMsg(self.counter)
        return p.CardPresentMsg(self.counter, self.card)

    def _handle(self, seq: int, msg: p.Message) -> None:
        try:
            self._obey(seq, msg)
        finally:
            with self._received_cond:  # after the effect, so a waiting test sees it
                self.received.append(msg)
                self._received_cond.notify_all()

    def _obey(self, seq: int, msg: p.Message) -> None:
        with self._lock:
            if self.silent:
                return
            if isinstance(msg, p.EventAck) and self.reliable:
                self._event_ack(msg.counter)
                return
            if isinstance(msg, (p.Identify, p.Led, p.Beep, p.Status)):
                if self.acks_to_skip:
                    self.acks_to_skip -= 1
                    return  # as if the command was lost on the line: no ACK, no effect
                self._send(p.Ack(seq))
            if isinstance(msg, p.Identify):
                self._send(p.Hello(self.protocol_version, self.firmware, self.kind))
            elif isinstance(msg, p.Status):
                self._send(self._status_answer())
            elif isinstance(msg, p.Led):
                self.led = (msg.r, msg.g, msg.b)
            elif isinstance(msg, p.Beep):
                self.beeps.append(msg.ms)
            else:
                self._send(p.ErrorMsg(1, f"unexpected {type(msg).__name__}"))

    def _run(self) -> None:
        next_beat = time.monotonic() + self.heartbeat_interval
        while not self._stop.is_set():
            due = next_beat
            with self._lock:
                if self._ring and self._rounds > 0:
                    due = min(due, self._next_resend)
            timeout = max(0.0, min(due - time.monotonic(), 0.25))
            try:
                ready, _, _ = select.select([self.master, self._wake_r], [], [], timeout)
            except (OSError, ValueError):
                return
            if self._wake_r in ready:
                try:
                    os.read(self._wake_r, 512)
                except OSError:
                    pass
            if self.master in ready:
                try:
                    data = os.read(self.master, 4096)
                except BlockingIOError:
                    data = b""
                except OSError as exc:
                    if exc.errno == errno.EIO:
                        # Nobody has the slave open (the host closed the port); wait for one.
                        self._stop.wait(0.05)
                        data = b""
                    else:
                        return
                for seq, msg in self.decoder.feed(data):
                    self._handle(seq, msg)
            if time.monotonic() >= next_beat:
                next_beat += self.heartbeat_interval
                if next_beat < time.monotonic():
                    next_beat = time.monotonic() + self.heartbeat_interval
                with self._lock:
                    if not self.silent:
                        self._send(p.Heartbeat(self.counter))
            with self._lock:
                now = time.monotonic()
                if self._ring and self._rounds > 0 and now >= self._next_resend and not self.silent:
                    self._resend(now)
