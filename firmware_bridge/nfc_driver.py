"""The ``nfc`` reader: a USB (or serial, or simulated UDP) NFC reader through nfcpy.

nfcpy cannot tell us "the card was lifted"; it can only tell us whether a tag still answers.
So the driver senses for ISO 14443-A (NTAG, MIFARE) and FeliCa targets, reports the card it
finds, then asks the tag every :data:`PRESENCE_INTERVAL` whether it is still there; the first
time it does not answer, the field is reported empty. Brief drop-outs of a cheap tag are the
place-and-lift machine's business (grace time), not the driver's.

``reader.device`` is nfcpy's path: ``usb`` (the first reader found), ``usb:054c:06c3``,
``tty:USB0:pn532``, or ``udp:127.0.0.1:PORT`` for nfcpy's own simulated radio (the tests).
A reader that cannot be opened, or vanishes, is reported and searched for again with backoff.
nfcpy is imported only inside :meth:`NfcDriver.run`.
"""

from __future__ import annotations

import logging
import threading
import time

from firmware_bridge.driver import ReaderSink
from klick.config import ReaderConfig
from klick.uid import UidError, normalise_uid

__all__ = ["NfcDriver", "PRESENCE_INTERVAL", "SENSE_INTERVAL"]

log = logging.getLogger(__name__)

#: How often a tag on the reader is asked whether it is still there.
PRESENCE_INTERVAL = 0.15
#: Pause between sense rounds when the field is empty (each round also waits for answers).
SENSE_INTERVAL = 0.1
BACKOFF_START, BACKOFF_MAX = 0.5, 5.0
#: ISO 14443-A at 106 kbit/s (NTAG, MIFARE Ultralight/Classic/DESFire) and FeliCa at 212.
TARGETS = ("106A", "212F")


class NfcDriver:
    def __init__(self, reader: ReaderConfig, sink: ReaderSink) -> None:
        self.reader = reader
        self.sink = sink
        self.device = reader.device or "usb"
        self._level: str | None = None
        self._last_status: tuple[str, str] | None = None

    def run(self, stop: threading.Event) -> None:
        import nfc  # only when the nfc driver is chosen
        import nfc.clf

        quiet_nfcpy()
        backoff = BACKOFF_START
        was_connected = False
        while not stop.is_set():
            try:
                clf = nfc.ContactlessFrontend(self.device)
            except (OSError, ValueError) as exc:
                log.debug("cannot open %s: %s", self.device, exc)
                state = "lost" if was_connected else "searching"
                self._status(state, f"No NFC reader found at {self.device}. Check that it is plugged in.")
                stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            was_connected = True
            backoff = BACKOFF_START
            self._status("connected", f"The NFC reader is connected ({clf.device}).")
            try:
                self._serve(nfc, clf, stop)
            except OSError as exc:
                log.debug("NFC reader failed: %s", exc)
                self._level = None
                self._status("lost", "The NFC reader was unplugged or stopped working.")
                stop.wait(backoff)
            finally:
                try:
                    clf.close()
                except Exception:  # a vanished USB device may fail to close; it is gone anyway
                    pass

    def _serve(self, nfc, clf, stop: threading.Event) -> None:
        targets = [nfc.clf.RemoteTarget(brty) for brty in TARGETS]
        while not stop.is_set():
            target = clf.sense(*targets, iterations=1, interval=SENSE_INTERVAL)
            if target is None:
                self._report(None)
                stop.wait(SENSE_INTERVAL)
                continue
            tag = nfc.tag.activate(clf, target)
            uid = self._uid(tag, target)
            if uid is None:
                continue
            self._report(uid)
            while not stop.is_set() and self._still_there(nfc, clf, tag, target):
                stop.wait(PRESENCE_INTERVAL)
            self._report(None)

    @staticmethod
    def _uid(tag, target) -> str | None:
        """The tag's identifier; a target nfcpy cannot activate still has its anticollision ID."""
        raw = (
            tag.identifier
            if tag is not None
            else (target.sdd_res if target.sdd_res else (target.sensf_res[1:9] if target.sensf_res else None))
        )
        if not raw:
            return None
        try:
            return normalise_uid(bytes(raw))
        except UidError as exc:
            log.warning("The NFC reader saw a card whose ID is not usable: %s.", exc)
            return None

    @staticmethod
    def _still_there(nfc, clf, tag, target) -> bool:
        if tag is not None:
            return bool(tag.is_present)
        # Not a tag type nfcpy speaks to: look for the same target again.
        again = nfc.clf.RemoteTarget(target.brty)
        if target.sdd_res:
            again.sel_req = target.sdd_res
        elif target.sensf_res:
            again.sensf_req = bytearray.fromhex("00FFFF0000")
        found = clf.sense(again, iterations=1, interval=SENSE_INTERVAL)
        return found is not None and (
            found.sdd_res == target.sdd_res if target.sdd_res else found.sensf_res[1:9] == target.sensf_res[1:9]
        )

    def _report(self, uid: str | None) -> None:
        if uid == self._level:
            return
        self._level = uid
        now = time.monotonic()
        if uid is None:
            self.sink.gone(now)
        else:
            self.sink.seen(uid, now)

    def _status(self, state: str, detail: str) -> None:
        if self._last_status == (state, detail):
            return
        self._last_status = (state, detail)
        self.sink.status(state, detail, self.reader.mode)


def quiet_nfcpy() -> None:
    """Keep nfcpy's own chatter at the bridge's driver level.

    Importing nfcpy sets its logger to INFO, so every retry with no reader would log "searching
    for reader" and "no reader available" (at ERROR) even though the driver already reports the
    same thing once, in plain words. Its lines are driver chatter: shown with ``klick bridge
    -v`` (driver loggers at INFO), otherwise only if nfcpy calls something CRITICAL.
    """
    verbose = log.isEnabledFor(logging.INFO)
    logging.getLogger("nfc").setLevel(logging.NOTSET if verbose else logging.CRITICAL)


def nfcpy_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("nfc") is not None


def probe(path: str) -> tuple[bool, str]:
    """Open and close the NFC reader at ``path`` once, for `klick doctor`: (found, plain detail)."""
    import errno

    import nfc

    try:
        clf = nfc.ContactlessFrontend(path)
    except OSError as exc:
        if exc.errno == errno.EACCES:
            return False, "this user may not open it (see Permissions)"
        if exc.errno == errno.EBUSY:
            return False, "another program (perhaps the bridge) has it open"
        return False, "nothing answered there"
    except Exception as exc:  # nfcpy raises its own kinds for a malformed path
        return False, f"nfcpy could not use it ({exc})"
    try:
        return True, str(clf)
    finally:
        clf.close()
