"""Where the carer tool hears a card: the bridge if one runs, else the configured reader itself.

On the tablet the bridge owns the reader, so the tool must ask the bridge; on a carer's own
computer with a USB reader there is usually no bridge, so the tool opens the reader through the
same driver the bridge would use. Either way the tool gets the same two things: "card UID is on
the reader" and "the reader is ready / searching / lost". Callbacks come from a background
thread; the GUI hands them to its own loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from klick.config import Config

__all__ = ["CardSource"]

log = logging.getLogger("klick.carer.reader")

OnCard = Callable[[str], None]
OnStatus = Callable[[str, str, str], None]  # (via "bridge"|"direct", state, detail)


class CardSource:
    """Card UIDs from the bridge socket or, when no bridge answers, from the reader directly."""

    def __init__(self, cfg: Config, on_card: OnCard, on_status: OnStatus) -> None:
        self.cfg = cfg
        self.on_card = on_card
        self.on_status = on_status
        #: The card on the reader now, if any: a card put down before "program" was pressed counts.
        self.present: str | None = None
        self.via: str | None = None
        self._client: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._bridge_answers(self.cfg.paths.socket):
            self._start_bridge()
        else:
            self._start_direct()

    def stop(self) -> None:
        self._stop.set()
        if self._client is not None:
            self._client.stop()
            self._client = None
        if self._thread is not None:
            self._thread.join(3.0)
            self._thread = None

    # ---- through the bridge ----------------------------------------------------------------

    @staticmethod
    def _bridge_answers(socket_path: Path) -> bool:
        from klick.bridge_client import BridgeUnavailable, request

        try:
            return bool(request(socket_path, {"command": "status"}, timeout=1.0).get("reply"))
        except (BridgeUnavailable, TimeoutError, OSError):
            return False

    def _start_bridge(self) -> None:
        from klick.bridge_client import BridgeClient

        self.via = "bridge"
        self._client = BridgeClient(self.cfg.paths.socket, self._on_event, self._on_connection, hello="carer")
        self._client.start()

    def _on_event(self, event) -> None:
        from klick.events import CardPresent, CardRemoved, ReaderStatus

        if isinstance(event, CardPresent):
            self._seen(event.uid)
        elif isinstance(event, CardRemoved):
            self.present = None
        elif isinstance(event, ReaderStatus):
            self.on_status("bridge", event.state, event.detail)

    def _on_connection(self, connected: bool) -> None:
        if not connected:
            self.present = None
            self.on_status("bridge", "lost", "The Klick bridge stopped; waiting for it to come back.")

    # ---- the reader itself ------------------------------------------------------------------

    def _start_direct(self) -> None:
        self.via = "direct"
        self._thread = threading.Thread(target=self._run_direct, name="carer-reader", daemon=True)
        self._thread.start()

    def _run_direct(self) -> None:
        from firmware_bridge.driver import make_driver

        try:
            driver = make_driver(self.cfg.reader, _Sink(self))
        except Exception as exc:  # a driver whose library is missing must not stop the editor
            self.on_status("direct", "lost", f'The reader driver "{self.cfg.reader.driver}" cannot start: {exc}')
            return
        try:
            driver.run(self._stop)
        except Exception as exc:
            log.exception("The reader driver stopped.")
            self.on_status("direct", "lost", f"The reader stopped: {exc}")

    def _seen(self, uid: str) -> None:
        if uid == self.present:
            return
        self.present = uid
        self.on_card(uid)


class _Sink:
    """The driver's levels, reduced to "a card arrived": the editor needs no settle or grace."""

    def __init__(self, source: CardSource) -> None:
        self.source = source

    def seen(self, uid: str, at: float) -> None:
        self.source._seen(uid)

    def gone(self, at: float) -> None:
        self.source.present = None

    def tapped(self, uid: str, at: float) -> None:
        # A keyboard-style reader cannot tell removal; each tap counts again.
        self.source.present = None
        self.source._seen(uid)

    def status(self, state: str, detail: str, mode: str = "slot") -> None:
        self.source.on_status("direct", state, detail)
