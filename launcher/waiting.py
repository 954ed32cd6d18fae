""" "Anna väntar på dig": is someone in a call card's room while the tablet is idle at home?

Most calls to a resident are started by the family. A self-hosted Jitsi server with the
room-size endpoint of jitsi-meet's prosody plugin ``mod_muc_size``
(``resources/prosody-plugins/mod_muc_size.lua``) answers ``GET /room-size?room=ROOM&domain=DOMAIN``
with ``{"participants": N}`` (N without Jitsi's hidden focus), 404 when the room does not exist
(nobody is there), and 400 to a request without a query. Klick asks that once per server first
(``GET /room-size``): 400 shows the endpoint is there; 404 says nothing yet (a proxy that adds
``domain`` to every request turns the 400 into a 404), so the rooms are asked and their answers
decide; a page (Jitsi's own room page for an unknown path) or a refusal shows there is no
endpoint, and that server is then never asked again (one log line). A server that does not
answer, or fails, is asked less and less often.

The answers are read by pure functions (:func:`read_probe`, :func:`read_room`,
:class:`ServerState`); the asking happens on one thread per server, so a slow or failing server
delays nothing: not the screen, not the other servers. Only while home is idle.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from cards.model import VideoCall
from klick.calls import CallServerError, call_origin, server_allowed

__all__ = [
    "Room",
    "Answer",
    "ServerState",
    "backend_room_name",
    "waiting_rooms",
    "probe_url",
    "room_size_url",
    "read_probe",
    "read_room",
    "WaitingWatch",
    "REQUEST_TIMEOUT_S",
    "MAX_BACKOFF_S",
]

log = logging.getLogger("klick.launcher.waiting")

#: One request may take this long; a server slower than that counts as not answering.
REQUEST_TIMEOUT_S = 5.0
#: A failing server is asked at most this seldom.
MAX_BACKOFF_S = 600.0
MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class Room:
    """A call card's room as the server's endpoint names it."""

    uid: str
    origin: str
    room: str
    domain: str


def backend_room_name(room: str) -> str:
    """The room's name as Jitsi Meet gives it to the server (``getBackendSafeRoomName`` in
    jitsi-meet's ``react/features/base/util/uri.ts``): decoded, NFKC, lower case, then encoded as
    ``encodeURIComponent`` does, and lower case again."""
    name = unquote(room)
    name = unicodedata.normalize("NFKC", name).lower()
    return quote(name, safe="-_.!~*'()").lower()


def waiting_rooms(cards: Iterable[Any], allowed: Iterable[str]) -> tuple[Room, ...]:
    """The rooms to ask about: switched-on resident cards that call a Jitsi room on an allowed
    server, in card-file order, each (server, room) once."""
    allowed = tuple(allowed)
    out: list[Room] = []
    seen: set[tuple[str, str]] = set()
    for card in cards:
        action = getattr(card, "action", None)
        if not getattr(card, "enabled", False) or getattr(card, "role", "") != "resident":
            continue
        if not isinstance(action, VideoCall) or action.provider != "jitsi":
            continue
        if not action.room or not server_allowed(action.server, allowed):
            continue
        try:
            origin = call_origin(action.server)
        except CallServerError:
            continue
        room = backend_room_name(action.room)
        if not room or (origin, room) in seen:
            continue
        seen.add((origin, room))
        out.append(Room(card.uid, origin, room, urlsplit(origin).hostname or ""))
    return tuple(out)


def probe_url(origin: str) -> str:
    return f"{origin}/room-size"


def room_size_url(room: Room) -> str:
    # The room is already encoded as the server knows it; mod_muc_size takes the value as it is.
    return f"{room.origin}/room-size?room={room.room}&domain={quote(room.domain, safe='')}"


@dataclass(frozen=True)
class Answer:
    """What one answer says: ``count`` (people in the room; 0 from the probe means "the endpoint
    is here"), ``absent`` (no such room: nobody), ``maybe`` (the probe's 404: the rooms' answers
    will tell), ``no_endpoint`` or ``trouble`` (try later)."""

    kind: str
    count: int = 0
    detail: str = ""


def _participants(content_type: str, body: bytes) -> int | None:
    if "json" not in content_type.lower() and not body.lstrip().startswith(b"{"):
        return None
    try:
        data = json.loads(body[:MAX_BODY])
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested past Python's stack
        return None
    if not isinstance(data, dict):
        return None
    n = data.get("participants")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        return None
    return min(n, 100_000)


def read_probe(status: int | None, content_type: str = "", body: bytes = b"") -> Answer:
    """The answer to ``GET /room-size`` without a query. ``status`` None: no answer at all."""
    if status is None or status >= 500 or status == 429:
        return Answer("trouble", detail=f"HTTP {status}" if status else "no answer")
    if status == 400:
        return Answer("count", 0)
    if status == 200 and _participants(content_type, body) is not None:
        return Answer("count", 0)
    if status == 404:
        return Answer("maybe")
    return Answer("no_endpoint", detail=f"HTTP {status}" + (" with a page" if status == 200 else ""))


def read_room(status: int | None, content_type: str = "", body: bytes = b"") -> Answer:
    """The answer to ``GET /room-size?room=...&domain=...``."""
    if status is None or status >= 500 or status == 429:
        return Answer("trouble", detail=f"HTTP {status}" if status else "no answer")
    if status == 404:
        return Answer("absent")
    if status == 200:
        n = _participants(content_type, body)
        if n is not None:
            return Answer("count", n)
        return Answer("no_endpoint", detail="HTTP 200 with a page, not a room size")
    return Answer("no_endpoint", detail=f"HTTP {status}")


@dataclass
class ServerState:
    """One server: ``unknown`` (not probed yet), ``maybe`` (probed; its rooms will tell), ``on``
    or ``off`` (never asked again); how many times in a row it failed, and when it may be asked
    next."""

    origin: str
    poll_s: float
    state: str = "unknown"
    failures: int = 0
    next_at: float = 0.0

    def due(self, now: float) -> bool:
        return self.state != "off" and now >= self.next_at

    def after(self, answer: Answer, now: float) -> str | None:
        """Take one answer in; return a line for the log when something changed, else None."""
        if answer.kind == "trouble":
            self.failures += 1
            self.next_at = now + min(self.poll_s * 2 ** min(self.failures, 20), MAX_BACKOFF_S)
            if self.failures == 1:
                return f"Waiting indicator: {self.origin} does not answer ({answer.detail}); asking less often until it does."
            return None
        note = None
        if self.failures:
            note = f"Waiting indicator: {self.origin} answers again."
        self.failures = 0
        self.next_at = now + self.poll_s
        if answer.kind == "no_endpoint":
            self.state = "off"
            return (
                f"Waiting indicator: {self.origin} has no room-size endpoint (Jitsi's mod_muc_size; "
                f"GET /room-size answered {answer.detail}); it is not asked again."
            )
        if answer.kind == "count":
            self.state = "on"
        elif answer.kind == "maybe" or self.state == "unknown":
            self.state = "maybe"
        return note


def fetch(url: str, timeout: float = REQUEST_TIMEOUT_S) -> tuple[int | None, str, bytes]:
    """(status, content type, start of the body); status None when nothing came back."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": "Klick", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read(MAX_BODY)
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read(MAX_BODY)
        except OSError:
            body = b""
        return exc.code, exc.headers.get("Content-Type", "") if exc.headers else "", body
    except (OSError, ValueError):  # URLError, timeouts, TLS, a reset: no answer
        return None, "", b""


@dataclass
class _Server:
    state: ServerState
    rooms: tuple[Room, ...] = ()
    occupied: frozenset[str] = frozenset()
    thread: threading.Thread | None = None
    wake: threading.Event = field(default_factory=threading.Event)
    gone: bool = False


class WaitingWatch:
    """Asks every server with call rooms, one thread each, while :meth:`set_active` says home is
    idle. ``on_change(uids)`` gets the cards whose rooms have someone in them, in card-file order,
    after every round of answers (from a worker thread: the app hands it to the screen's thread).
    """

    def __init__(
        self,
        poll_s: float,
        on_change: Callable[[tuple[str, ...]], None],
        *,
        fetcher: Callable[[str], tuple[int | None, str, bytes]] = fetch,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.poll_s = float(poll_s)
        self.on_change = on_change
        self.fetcher = fetcher
        self.clock = clock
        self._lock = threading.Lock()
        self._servers: dict[str, _Server] = {}
        self._order: tuple[str, ...] = ()
        self._active = False
        self._stopped = False
        self._quiet: dict[str, float] = {}

    @property
    def enabled(self) -> bool:
        return self.poll_s > 0

    def set_rooms(self, rooms: Iterable[Room]) -> None:
        """The call cards changed (a new card file): ask about these rooms from now on."""
        if not self.enabled:
            return
        rooms = tuple(rooms)
        by_origin: dict[str, list[Room]] = {}
        for room in rooms:
            by_origin.setdefault(room.origin, []).append(room)
        with self._lock:
            self._order = tuple(room.uid for room in rooms)
            for origin, server in list(self._servers.items()):
                if origin not in by_origin:
                    server.gone = True
                    server.wake.set()
                    del self._servers[origin]
            for origin, mine in by_origin.items():
                known = self._servers.get(origin)
                if known is None:
                    server = self._servers[origin] = _Server(ServerState(origin, self.poll_s))
                    server.thread = threading.Thread(target=self._ask, args=(server,), name="waiting", daemon=True)
                    server.rooms = tuple(mine)
                    if not self._stopped:
                        server.thread.start()
                else:
                    known.rooms = tuple(mine)
                    known.occupied = known.occupied & {room.uid for room in mine}

    def set_active(self, active: bool) -> None:
        """Home is idle (ask now, and then every ``poll_s``) or not (ask nothing)."""
        with self._lock:
            was, self._active = self._active, active
            servers = list(self._servers.values())
            if active and not was:
                for server in servers:
                    server.occupied = frozenset()
                    if server.state.state != "off" and server.state.failures == 0:
                        server.state.next_at = 0.0  # a fresh answer for the home screen now
        if active and not was:
            for server in servers:
                server.wake.set()

    def quiet(self, uid: str, seconds: float) -> None:
        """Do not report ``uid``'s room for a while: the resident's own call has just ended there,
        and the server may count the tablet itself until it notices it left."""
        with self._lock:
            self._quiet[uid] = self.clock() + seconds

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            servers = list(self._servers.values())
        for server in servers:
            server.gone = True
            server.wake.set()

    def occupied(self) -> tuple[str, ...]:
        with self._lock:
            now = self.clock()
            found = set().union(*(s.occupied for s in self._servers.values())) if self._servers else set()
            found = {uid for uid in found if self._quiet.get(uid, 0.0) <= now}
            return tuple(uid for uid in self._order if uid in found)

    # -- one server's thread ------------------------------------------------------------------
    def _ask(self, server: _Server) -> None:
        while True:
            with self._lock:
                if server.gone or self._stopped:
                    return
                active, state = self._active, server.state
                wait = max(0.0, state.next_at - self.clock()) if active else None
            if state.state == "off":
                return
            if wait is None or wait > 0:
                server.wake.wait(wait)
                server.wake.clear()
                continue
            try:
                self._round(server)
            except Exception:  # whatever a server sends, the thread goes on
                log.exception("Waiting indicator: asking %s failed", server.state.origin)
                with self._lock:
                    server.state.next_at = self.clock() + self.poll_s

    def _round(self, server: _Server) -> None:
        state = server.state
        if state.state == "unknown":
            answer = read_probe(*self.fetcher(probe_url(state.origin)))
            with self._lock:
                note = state.after(answer, self.clock())
            if note:
                log.info(note)
            if state.state not in ("on", "maybe"):
                return
        with self._lock:
            rooms = server.rooms
        occupied: set[str] = set()
        counted = False
        for room in rooms:
            answer = read_room(*self.fetcher(room_size_url(room)))
            if answer.kind in ("trouble", "no_endpoint"):
                with self._lock:
                    note = state.after(answer, self.clock())
                    server.occupied = frozenset()
                if note:
                    log.info(note)
                self._report()
                return
            counted = counted or answer.kind == "count"
            if answer.kind == "count" and answer.count > 0:
                occupied.add(room.uid)
        with self._lock:
            note = state.after(Answer("count" if counted else "absent"), self.clock())
            if not self._active:
                return  # the answer came after home was left: it is stale already
            server.occupied = frozenset(occupied)
        if note:
            log.info(note)
        self._report()

    def _report(self) -> None:
        try:
            self.on_change(self.occupied())
        except Exception:
            log.exception("Waiting indicator: the answer could not be handed on")
