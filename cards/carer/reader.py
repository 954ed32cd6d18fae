"""Where the carer tool hears a card: always from the bridge, which alone opens a reader.

On the tablet the bridge already runs (systemd) and owns the reader. On a carer's own computer
with a USB reader there is usually none, so the tool starts `klick bridge` for its session, with
the settings' reader (:mod:`klick.bridge_child`), and stops it when the window closes; killed,
its bridge stops too. Either way the tool is one more client on the socket and gets the same two
things: "card UID is on the reader" and "the reader is ready / searching / lost".

Nothing here blocks the window: looking for a bridge and starting one happen on a background
thread, and callbacks come from background threads; the GUI hands them to its own loop. Every
failure reaches the window as plain words through ``on_status``, never as a Python error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from cards.carer.words import bridge_words, reader_words, words
from klick.bridge_child import BridgeChild, BridgeStartError, bridge_answers, start_bridge
from klick.bridge_client import BridgeClient
from klick.config import Config
from klick.events import CardPresent, CardRemoved, Event, ReaderStatus

__all__ = ["CardSource"]

log = logging.getLogger("klick.carer.reader")

OnCard = Callable[[str], None]
OnStatus = Callable[[str, str, str], None]  # (via "bridge", state, detail)

#: A bridge this window started that stops by itself is started again, this many times at most.
MAX_RESTARTS = 3
RESTART_PAUSE_S = 1.0


class CardSource:
    """Card UIDs from the bridge on the settings' socket; one is started if none answers."""

    def __init__(self, cfg: Config, on_card: OnCard, on_status: OnStatus) -> None:
        self.cfg = cfg
        self.on_card = on_card
        self.on_status = on_status
        #: The card on the reader now, if any: a card put down before "program" was pressed counts.
        self.present: str | None = None
        #: "bridge" once connected to one (ours or one already running); the tool has no other way.
        self.via: str | None = None
        self._client: BridgeClient | None = None
        self._own: BridgeChild | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def bridge_pid(self) -> int | None:
        """The process id of the bridge this window started, while it runs; None if it uses another."""
        own = self._own
        return own.pid if own is not None and own.running() else None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="carer-bridge", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and end the bridge this window started, if any (the window is closing)."""
        self._stop.set()
        with self._lock:
            client, self._client = self._client, None
            own, self._own = self._own, None
        if client is not None:
            client.stop()
        if own is not None:
            own.stop()
        if self._thread is not None:
            self._thread.join(10.0)
            self._thread = None

    def _t(self, key: str, **fields: object) -> str:
        return words(key, self.cfg.locale, **fields)

    # ---- the session's bridge ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._supervise()
        except Exception:  # a bug here must reach the window as words, not as a Python error
            log.exception("The card reader connection failed.")
            self.on_status("bridge", "lost", self._t("bridge_failed", reason=""))

    def _supervise(self) -> None:
        socket_path = self.cfg.paths.socket
        restarts = 0
        while not self._stop.is_set():
            own = None
            if not bridge_answers(socket_path):
                self.on_status("bridge", "starting", self._t("bridge_starting" if restarts == 0 else "bridge_again"))
                try:
                    own = start_bridge(self.cfg, cancelled=self._stop)
                except BridgeStartError as exc:
                    if not bridge_answers(socket_path):  # not another bridge that won the race to the socket
                        log.warning("The card reader bridge did not start: %s", exc.reason)
                        why = bridge_words(exc.code, exc.where, exc.reason, self.cfg.locale)
                        self.on_status("bridge", "lost", self._t("bridge_failed", reason=why))
                        return
                if own is None and self._stop.is_set():
                    return  # the window closed while the bridge was starting; start_bridge ended it
                with self._lock:
                    if self._stop.is_set():
                        if own is not None:
                            own.stop()
                        return
                    self._own = own
            self._listen()
            if own is None:
                return  # a bridge that is not ours (systemd's): the client follows it by itself
            while own.running() and not self._stop.wait(0.2):
                pass
            if self._stop.is_set():
                return
            # Our bridge ended by itself (a crash): start it again, a few times.
            log.warning("The card reader bridge this window started stopped: %s", own.last_words() or "no reason given")
            restarts += 1
            if restarts > MAX_RESTARTS:
                self.on_status("bridge", "lost", self._t("bridge_failed", reason=own.last_words()))
                return
            if self._stop.wait(RESTART_PAUSE_S):
                return

    def _listen(self) -> None:
        with self._lock:
            if self._client is not None or self._stop.is_set():
                return
            self.via = "bridge"
            self._client = BridgeClient(self.cfg.paths.socket, self._on_event, self._on_connection, hello="carer")
            self._client.start()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, CardPresent):
            self._seen(event.uid)
        elif isinstance(event, CardRemoved):
            self.present = None
        elif isinstance(event, ReaderStatus):
            self.on_status("bridge", event.state, reader_words(event.detail, self.cfg.locale))

    def _on_connection(self, connected: bool) -> None:
        if not connected and not self._stop.is_set():
            self.present = None
            self.on_status("bridge", "lost", self._t("bridge_gone"))

    def _seen(self, uid: str) -> None:
        if uid == self.present:
            return
        self.present = uid
        self.on_card(uid)
