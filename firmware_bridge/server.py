"""The bridge's event socket: newline-delimited JSON to any number of local clients.

Like gpsd, the bridge writes one JSON object per line to every client of a Unix socket. The
reader must never wait for a client: every socket is non-blocking, each client has a bounded
output buffer, and a client that cannot keep up (or sends a flood) is dropped with a log line.
One thread, one ``selectors`` loop; the daemon owns the loop and calls :meth:`EventServer.poll`.

No client can end the bridge: whatever one client's bytes make go wrong closes that client at
most. Lines are capped in size and JSON nesting before they are parsed, and replies are pure
ASCII JSON, so any text a client sends can be echoed. The number of clients is capped
(``bridge.max_clients``, and the open-file limit); when full, the oldest idle client goes,
never one that said it is the launcher. Running out of file descriptors pauses accepting for
a moment instead of spinning, and all of this is logged at most once a minute per kind.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import resource
import selectors
import socket
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "EventServer",
    "BridgeAlreadyRunning",
    "SocketPathError",
    "MAX_OUTPUT",
    "MAX_LINE",
    "MAX_DEPTH",
    "FD_RESERVE",
    "HELLO_ROLES",
    "too_deep",
    "client_room",
    "Quiet",
]

log = logging.getLogger("klick.bridge")

#: A client further behind than this is not reading; it is dropped, never waited for.
MAX_OUTPUT = 256 * 1024
#: No command is longer than this; a longer line is a flood, not a mistake.
MAX_LINE = 4096
#: Input lines per second a client may send on average (with a burst allowance).
LINE_RATE, LINE_BURST = 50.0, 200.0
#: Deepest JSON nesting a client line may have: commands are flat objects. Checked before
#: parsing, because json.loads recurses once per level (4,000 ``[`` hit the recursion limit).
MAX_DEPTH = 8
#: File descriptors kept for the bridge itself (the reader's port, libusb, pipes, logging):
#: clients only get what the open-file limit leaves beyond these.
FD_RESERVE = 32
#: After running out of file descriptors, accepting pauses this long, doubling while it lasts.
ACCEPT_PAUSE, ACCEPT_PAUSE_MAX = 0.1, 5.0
#: New connections taken per poll, so a connection flood cannot starve the reader's events.
ACCEPT_BATCH = 32
#: A client that says ``{"command": "hello", "client": "launcher"}`` is never the one evicted
#: to make room; at most this many at once may claim it (a launcher restarting overlaps itself).
MAX_KEPT = 2
HELLO_ROLES = ("launcher",)
#: Lines about misbehaving clients or running out of room: one of each kind per this many seconds.
QUIET_FOR = 60.0

_CLIENT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,32}")


class BridgeAlreadyRunning(RuntimeError):
    """Another bridge answers on the socket path."""


class SocketPathError(RuntimeError):
    """The socket path is taken by something that is not a socket."""


def too_deep(line: bytes, limit: int = MAX_DEPTH) -> bool:
    """Does this JSON text nest arrays/objects deeper than ``limit``? (Brackets in strings don't count.)"""
    if line.count(b"[") + line.count(b"{") <= limit:
        return False
    depth = 0
    in_string = escaped = False
    for byte in line:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False


def client_room(max_clients: int) -> tuple[int, int]:
    """(clients that fit, the soft open-file limit): ``max_clients``, less if the limit is tight."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return max_clients, soft
    return max(1, min(max_clients, soft - FD_RESERVE)), soft


class Quiet:
    """Warnings of one kind at most once per ``every`` seconds, saying how many were held back."""

    def __init__(self, every: float = QUIET_FOR) -> None:
        self.every = every
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warn(self, kind: str, text: str) -> None:
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.every:
            self._held[kind] = self._held.get(kind, 0) + 1
            return
        self._last[kind] = now
        held = self._held.pop(kind, 0)
        if held:
            text += f" ({held} more like this since the last such line.)"
        log.warning(text)


class _Client:
    __slots__ = ("sock", "number", "role", "kept", "since", "heard", "out", "inbuf", "tokens", "refill_at", "writing")

    def __init__(self, sock: socket.socket, number: int) -> None:
        self.sock = sock
        self.number = number
        self.role: str | None = None  # what the client called itself in its hello
        self.kept = False  # a launcher: never evicted to make room
        self.since = time.monotonic()
        self.heard: float | None = None  # when it last sent a line; None: never
        self.out = bytearray()
        self.inbuf = bytearray()
        self.tokens = LINE_BURST
        self.refill_at = self.since
        self.writing = False

    @property
    def name(self) -> str:
        return f"client {self.number}" + (f" ({self.role})" if self.role else "")


class EventServer:
    """A Unix socket that greets each new client, broadcasts lines and reads JSON commands.

    ``greeting()`` returns the lines a new client gets first (the current state);
    ``on_command(dict)`` handles one well-formed command and returns the reply object for that
    client, or None for no reply. ``hello`` is the server's own command: a client names itself
    (``{"command": "hello", "client": "launcher"}``), and a launcher is kept when room is needed.
    """

    def __init__(
        self,
        path: Path,
        greeting: Callable[[], list[bytes]],
        on_command: Callable[[dict[str, Any]], dict[str, Any] | None],
        max_clients: int = 64,
    ) -> None:
        self.path = Path(path)
        self._greeting = greeting
        self._on_command = on_command
        self.max_clients = max(1, max_clients)
        self._sel = selectors.DefaultSelector()
        self._clients: dict[int, _Client] = {}
        self._listener: socket.socket | None = None
        self._serial = 0
        self._quiet = Quiet()
        self._accepting = False
        self._resume_at: float | None = None  # accepting paused (out of file descriptors) until then
        self._pause = ACCEPT_PAUSE
        self.evicted = 0  # clients dropped to make room for a newer one
        self.paused = 0  # times accepting was paused for want of file descriptors

    # --- life cycle --------------------------------------------------------------------------

    def open(self) -> None:
        """Bind the socket (mode 0660), replacing a stale file but never a running bridge."""
        self._clear_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o117)  # no moment in which the socket is world-accessible
        try:
            listener.bind(str(self.path))
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o660)
        listener.listen(16)
        listener.setblocking(False)
        self._listener = listener
        room, soft = client_room(self.max_clients)
        if room < self.max_clients:
            log.warning(
                "The open-file limit (%d) leaves room for %d clients, not bridge.max_clients (%d); "
                "raise LimitNOFILE in the bridge's systemd unit to allow more.",
                soft,
                room,
                self.max_clients,
            )
        self.max_clients = room
        self._listen(True)

    def _listen(self, on: bool) -> None:
        if self._listener is None or on == self._accepting:
            return
        if on:
            self._sel.register(self._listener, selectors.EVENT_READ, self._accept)
        else:
            self._sel.unregister(self._listener)
        self._accepting = on

    def _clear_path(self) -> None:
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise SocketPathError(f"{self.path} exists and is not a socket; move it away or choose another paths.socket.")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(str(self.path))
        except (ConnectionRefusedError, FileNotFoundError):
            log.info("Removing the socket a previous bridge left behind at %s.", self.path)
            self.path.unlink(missing_ok=True)
            return
        except OSError as exc:
            if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                self.path.unlink(missing_ok=True)
                return
            raise
        finally:
            probe.close()
        raise BridgeAlreadyRunning(f"Another Klick bridge is already running on {self.path}; not starting a second one.")

    def watch(self, fd: int, callback: Callable[[], None]) -> None:
        """Also wake :meth:`poll` when ``fd`` is readable (the daemon's wake-up pipe)."""
        self._sel.register(fd, selectors.EVENT_READ, callback)

    def close(self) -> None:
        for client in list(self._clients.values()):
            self._drop(client, None)
        if self._listener is not None:
            self._listen(False)
            self._listener.close()
            self._listener = None
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        self._sel.close()

    @property
    def client_count(self) -> int:
        return len(self._clients)

    # --- the loop ----------------------------------------------------------------------------

    def poll(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` seconds (None: until something happens) and handle it.

        Nothing a client sends can make this raise: an error while serving one client closes
        that client, and the bridge carries on with the others.
        """
        if self._resume_at is not None:
            left = max(0.0, self._resume_at - time.monotonic())
            timeout = left if timeout is None else min(timeout, left)
        for key, mask in self._sel.select(timeout):
            data = key.data
            if isinstance(data, _Client):
                try:
                    self._service(data, mask)
                except Exception as exc:
                    log.debug("Serving %s failed.", data.name, exc_info=True)
                    self._quiet.warn(
                        "error",
                        f"{data.name} sent something the bridge could not handle ({type(exc).__name__}); disconnected it.",
                    )
                    self._drop(data, None)
            else:
                try:
                    data()
                except Exception:
                    log.exception("The bridge's event loop hit an error; carrying on.")
        if self._resume_at is not None and time.monotonic() >= self._resume_at:
            self._resume_at = None
            self._listen(True)

    def broadcast(self, line: bytes) -> None:
        for client in list(self._clients.values()):
            self._send(client, line)

    # --- clients -----------------------------------------------------------------------------

    def _accept(self) -> None:
        assert self._listener is not None
        for _ in range(ACCEPT_BATCH):
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno == errno.ECONNABORTED:
                    continue
                self._out_of_room(exc)
                return
            self._pause = ACCEPT_PAUSE
            try:
                self._add(sock)
            except Exception as exc:  # e.g. the selector refuses it: that connection only
                self._quiet.warn("add", f"Could not take a new client ({type(exc).__name__}: {exc}).")
                self._forget(sock)

    def _forget(self, sock: socket.socket) -> None:
        client = next((c for c in self._clients.values() if c.sock is sock), None)
        if client is not None:
            self._drop(client, None)
        else:
            sock.close()

    def _out_of_room(self, exc: OSError) -> None:
        """accept() failed (EMFILE, ENFILE, ...): stop listening for a moment instead of spinning.

        The listener is readable as long as connections wait, so retrying at once would spin. If
        an idle client can go, it goes, so that the next try finds a free descriptor.
        """
        self.paused += 1
        pause = self._pause
        self._pause = min(self._pause * 2, ACCEPT_PAUSE_MAX)
        self._listen(False)
        self._resume_at = time.monotonic() + pause
        victim = self._victim(None)
        if victim is not None:
            self._evict(victim)
        self._quiet.warn(
            "room",
            f"Could not take a new client ({exc.strerror or exc}); not accepting for {pause:g} s. "
            f"{len(self._clients)} clients are connected.",
        )

    def _add(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._serial += 1
        client = _Client(sock, self._serial)
        self._clients[sock.fileno()] = client
        self._sel.register(sock, selectors.EVENT_READ, client)
        log.debug("%s connected.", client.name)
        if len(self._clients) > self.max_clients:
            victim = self._victim(client)
            if victim is None:
                self._quiet.warn("full", f"The bridge already has {self.max_clients} clients it keeps; turned a new one away.")
                self._drop(client, None)
                return
            self._evict(victim)
        for line in self._greeting():
            self._send(client, line)

    def _victim(self, newcomer: _Client | None) -> _Client | None:
        """The client to let go when full: silent ones first, then the longest idle; never a launcher."""
        idle = [c for c in self._clients.values() if not c.kept and c is not newcomer]
        if not idle:
            return None
        return min(idle, key=lambda c: (c.heard is not None, c.since if c.heard is None else c.heard))

    def _evict(self, client: _Client) -> None:
        self.evicted += 1
        self._quiet.warn(
            "full",
            f"The bridge is full ({self.max_clients} clients); disconnected {client.name}, "
            "idle the longest, to make room for a new one.",
        )
        self._drop(client, None)

    def _service(self, client: _Client, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self._flush(client)
        if mask & selectors.EVENT_READ and self._clients.get(client.sock.fileno()) is client:
            self._read(client)

    def _send(self, client: _Client, line: bytes) -> None:
        if len(client.out) + len(line) > MAX_OUTPUT:
            self._drop(client, f"{client.name} is not reading its events; disconnected it.", "slow")
            return
        client.out += line
        if not client.writing:
            self._flush(client)

    def _flush(self, client: _Client) -> None:
        try:
            while client.out:
                sent = client.sock.send(client.out)
                del client.out[:sent]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._drop(client, None)
            return
        want = bool(client.out)
        if want != client.writing:
            client.writing = want
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want else 0)
            self._sel.modify(client.sock, events, client)

    def _read(self, client: _Client) -> None:
        try:
            data = client.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(client, None)
            return
        client.inbuf += data
        while True:
            end = client.inbuf.find(b"\n")
            if end < 0:
                break
            line = bytes(client.inbuf[:end])
            del client.inbuf[: end + 1]
            if not self._spend(client):
                self._drop(client, f"{client.name} sent more than {LINE_RATE:.0f} lines a second; disconnected it.", "flood")
                return
            self._line(client, line)
            if self._clients.get(client.sock.fileno()) is not client:
                return
        if len(client.inbuf) > MAX_LINE:
            self._drop(client, f"{client.name} sent a line longer than {MAX_LINE} bytes; disconnected it.", "long")

    def _spend(self, client: _Client) -> bool:
        now = time.monotonic()
        client.tokens = min(LINE_BURST, client.tokens + (now - client.refill_at) * LINE_RATE)
        client.refill_at = now
        client.tokens -= 1
        return client.tokens >= 0

    def _line(self, client: _Client, line: bytes) -> None:
        if not line.strip():
            return
        client.heard = time.monotonic()
        if len(line) > MAX_LINE:
            self._drop(client, f"{client.name} sent a line longer than {MAX_LINE} bytes; disconnected it.", "long")
            return
        body = None
        if not too_deep(line):
            try:
                body = json.loads(line)
            except (ValueError, UnicodeDecodeError, RecursionError):
                body = None
        if not isinstance(body, dict) or not isinstance(body.get("command"), str):
            self._quiet.warn("bad", f"Ignored a line from {client.name} that is not a command: {line[:120]!r}")
            return
        if body["command"] == "hello":
            self._reply(client, self._hello(client, body))
            return
        try:
            reply = self._on_command(body)
        except Exception:  # a command must never take the bridge down
            log.exception("A command from %s failed.", client.name)
            reply = {"reply": body["command"], "ok": False, "error": "The bridge could not do that; see its log."}
        if reply is not None:
            self._reply(client, reply)

    def _hello(self, client: _Client, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("client")
        if not isinstance(name, str) or not _CLIENT_NAME.fullmatch(name):
            return {
                "reply": "hello",
                "ok": False,
                "error": 'A hello names the client in one short word, e.g. {"command": "hello", "client": "launcher"}.',
            }
        client.role = name
        if name in HELLO_ROLES and not client.kept:
            client.kept = sum(c.kept for c in self._clients.values()) < MAX_KEPT
        elif name not in HELLO_ROLES:
            client.kept = False
        return {"reply": "hello", "ok": True, "client": name, "kept": client.kept}

    def _reply(self, client: _Client, reply: dict[str, Any]) -> None:
        """Replies are ASCII JSON, so whatever text a client sent (a lone surrogate, say) can be echoed."""
        try:
            data = json.dumps(reply, ensure_ascii=True, separators=(",", ":")).encode("ascii")
        except (TypeError, ValueError):
            log.exception("A reply to %s could not be written as JSON.", client.name)
            data = json.dumps({"reply": "error", "ok": False, "error": "The bridge could not do that; see its log."}).encode()
        self._send(client, data + b"\n")

    def _drop(self, client: _Client, why: str | None, kind: str = "") -> None:
        if self._clients.get(client.sock.fileno()) is not client:
            return
        del self._clients[client.sock.fileno()]
        if why:
            self._quiet.warn(kind or why, why)
        else:
            log.debug("%s disconnected.", client.name)
        try:
            self._sel.unregister(client.sock)
        except (KeyError, ValueError):
            pass
        client.sock.close()
