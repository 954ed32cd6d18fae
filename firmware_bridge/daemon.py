"""The bridge daemon: one reader driver, one place-and-lift machine, one event socket.

The driver owns the hardware and runs in its own thread, because hardware calls block and a
driver may hang or crash. It only ever reports levels through a queue; the main thread owns all
state (the place-and-lift machine, the reader status, the clients) and sleeps in one
``selectors`` call until a client speaks, the driver reports, or the next settle/grace deadline
falls due. A driver that crashes is logged, reported as lost, and started again after a pause:
a resident never has to restart anything.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from firmware_bridge.driver import make_driver
from firmware_bridge.placelift import PlaceLift
from firmware_bridge.server import EventServer, Quiet
from klick.config import Config
from klick.events import CardPresent, CardRemoved, Event, ReaderStatus, encode_event
from klick.uid import UidError, normalise_uid

__all__ = ["Bridge", "QueueSink", "describe_event", "setup_logging", "DRIVER_COMMANDS"]

log = logging.getLogger("klick.bridge")

#: Client commands passed to the driver when it has a method of that name (the simulator does).
DRIVER_COMMANDS = ("insert", "remove", "unplug", "replug")
#: Pause before restarting a driver that failed, doubling up to the maximum.
RESTART_PAUSE, RESTART_PAUSE_MAX = 1.0, 30.0


def setup_logging(level: int = logging.INFO, driver_level: int = logging.WARNING) -> None:
    """Plain lines on stderr: journald adds the time and the unit name itself.

    The drivers' own chatter stays at warnings unless asked for (``-v``), and nfcpy's entirely
    (its retries log at ERROR; see nfc_driver.quiet_nfcpy): the bridge already logs every status
    change and card event in one line each.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(driver_level)
    logging.getLogger("klick").setLevel(level)


def describe_event(event: Event) -> str:
    """One plain line per event, shared by the bridge log and ``klick watch``."""
    if isinstance(event, CardPresent):
        return f"card in   {event.uid}  ({event.reader})"
    if isinstance(event, CardRemoved):
        return f"card out  {event.uid}  ({event.reader})"
    mode = "  [tap mode]" if event.mode == "tap" else ""
    detail = f": {event.detail}" if event.detail else ""
    return f"reader {event.state}{detail}  ({event.reader}){mode}"


class QueueSink:
    """The driver thread's side of the bridge: every report becomes a queue item and a wake-up."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self.items: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._wake = wake

    def seen(self, uid: str, at: float) -> None:
        self._put(("seen", uid, at))

    def gone(self, at: float) -> None:
        self._put(("gone", at))

    def tapped(self, uid: str, at: float) -> None:
        self._put(("tapped", uid, at))

    def status(self, state: str, detail: str, mode: str = "slot") -> None:
        self._put(("status", state, detail, mode))

    def _put(self, item: tuple[Any, ...]) -> None:
        self.items.put(item)
        self._wake()


class Bridge:
    """Run with :meth:`run` (blocks until :meth:`stop` or SIGTERM/SIGINT)."""

    def __init__(self, cfg: Config, driver_factory: Callable[..., Any] = make_driver) -> None:
        self.cfg = cfg
        self.reader = cfg.reader.name
        self._driver_factory = driver_factory
        self.machine = PlaceLift(self.reader, cfg.reader.settle_ms, cfg.reader.grace_ms)
        self.status = ReaderStatus("searching", self.reader, "Looking for the reader.", self._mode("slot"))
        self._present: CardPresent | None = None
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.sink = QueueSink(self.wake)
        self.driver: Any = None
        self.server = EventServer(cfg.paths.socket, self._greeting, self._command, cfg.bridge.max_clients)
        self._thread: threading.Thread | None = None
        self._quiet = Quiet()

    # --- life cycle --------------------------------------------------------------------------

    def open(self) -> None:
        """Claim the socket; raises BridgeAlreadyRunning / SocketPathError / OSError."""
        self.server.open()
        self.server.watch(self._wake_r, self._drain_wake)

    def run(self, handle_signals: bool = True) -> None:
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._on_signal)
        log.info(
            "Klick bridge listening on %s (reader %r, driver %s).", self.cfg.paths.socket, self.reader, self.cfg.reader.driver
        )
        self._thread = threading.Thread(target=self._drive, name="reader-driver", daemon=True)
        self._thread.start()
        try:
            while not self._stop.is_set():
                try:
                    self.server.poll(self._timeout())
                    self._handle_reports()
                    self._emit(self.machine.tick(time.monotonic()))
                except Exception as exc:  # no data may end the daemon; a pause keeps a repeating fault from spinning
                    log.debug("The bridge's main loop failed.", exc_info=True)
                    self._quiet.warn("loop", f"The bridge hit an error and carries on ({type(exc).__name__}: {exc}).")
                    self._stop.wait(0.1)
        finally:
            self._stop.set()
            self._thread.join(timeout=5.0)
            if self._thread.is_alive():
                log.warning("The reader driver did not stop within 5 seconds; leaving it behind.")
            self.server.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
            log.info("Klick bridge stopped.")

    def stop(self) -> None:
        self._stop.set()
        self.wake()

    def wake(self) -> None:
        try:
            os.write(self._wake_w, b"!")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (a wake-up is already pending) or closed (shutting down)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        log.info("Stopping on %s.", signal.Signals(signum).name)
        self.stop()

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _timeout(self) -> float | None:
        due = self.machine.next_deadline()
        if due is None:
            return None
        return max(0.0, due - time.monotonic())

    # --- the driver thread -------------------------------------------------------------------

    def _drive(self) -> None:
        pause = RESTART_PAUSE
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.driver = self._driver_factory(self.cfg.reader, self.sink)
                self.driver.run(self._stop)
                if self._stop.is_set():
                    return
                log.warning("The reader driver stopped by itself; starting it again in %g s.", pause)
            except Exception as exc:
                log.error(
                    "The reader driver failed (%s: %s); starting it again in %g s.", type(exc).__name__, exc, pause, exc_info=True
                )
                self.sink.status("lost", "The reader program failed; trying again shortly.")
            if time.monotonic() - started > 60:
                pause = RESTART_PAUSE
            if self._stop.wait(pause):
                return
            pause = min(pause * 2, RESTART_PAUSE_MAX)

    # --- the main thread: reports in, events out ---------------------------------------------

    def _handle_reports(self) -> None:
        while True:
            try:
                item = self.sink.items.get_nowait()
            except queue.Empty:
                return
            kind = item[0]
            if kind == "seen":
                self._emit(self.machine.observe(item[1], item[2], time.monotonic()))
            elif kind == "gone":
                self._emit(self.machine.observe(None, item[1], time.monotonic()))
            elif kind == "tapped":
                self._emit(self.machine.tapped(item[1], item[2]))
            elif kind == "status":
                self._set_status(item[1], item[2], item[3])

    def _set_status(self, state: str, detail: str, mode: str) -> None:
        new = ReaderStatus(state, self.reader, detail, self._mode(mode))  # type: ignore[arg-type]
        if (new.state, new.detail, new.mode) != (self.status.state, self.status.detail, self.status.mode):
            self.status = new
            self._emit([new])
        if state == "lost":
            # A reader that is gone cannot vouch for the card: the grace time runs from now, so
            # a reader back within it (with the same card) changes nothing for the resident.
            self._emit(self.machine.observe(None, time.monotonic()))

    def _mode(self, driver_mode: str) -> str:
        return "tap" if driver_mode == "tap" else self.cfg.reader.mode

    def _emit(self, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, CardPresent):
                self._present = event
            elif isinstance(event, CardRemoved):
                self._present = None
            log.info(describe_event(event))
            self.server.broadcast(encode_event(event))

    def _greeting(self) -> list[bytes]:
        lines = [encode_event(self.status)]
        if self._present is not None:
            lines.append(encode_event(self._present))
        return lines

    def _command(self, body: dict[str, Any]) -> dict[str, Any] | None:
        name = body["command"]
        reply: dict[str, Any] = {"reply": name, "ok": False}
        if name == "status":
            reply.update(ok=True, state=self.status.state, present=self._present.uid if self._present else None)
            return reply
        if name not in DRIVER_COMMANDS:
            reply["error"] = f"The bridge does not know the command {name!r}."
            return reply
        action = getattr(self.driver, name, None)
        if action is None:
            reply["error"] = (
                f"The reader uses the {self.cfg.reader.driver} driver, which cannot {name} cards; "
                "only the simulated reader (driver: sim) can."
            )
            return reply
        if name == "insert":
            try:
                raw = body.get("uid")
                uid = normalise_uid(raw if isinstance(raw, str) else "")
            except UidError as exc:
                reply["error"] = f"That is not a card ID: {exc}."
                return reply
            try:
                check = getattr(self.driver, "check_uid", None)
                if check is not None:
                    check(uid)  # e.g. the simulator sends whole bytes: an even number of digits
                action(uid)
            except UidError as exc:
                reply["error"] = f"The reader cannot use that card ID: {exc}."
                return reply
            reply["uid"] = uid
        else:
            action()
        reply["ok"] = True
        return reply


def with_driver(cfg: Config, driver: str | None) -> Config:
    """The settings with the reader driver overridden (``klick bridge --driver sim``)."""
    if not driver:
        return cfg
    return replace(cfg, reader=replace(cfg.reader, driver=driver))
