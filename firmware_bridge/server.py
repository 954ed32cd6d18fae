"""The bridge's event socket: newline-delimited JSON to any number of local clients.

Like gpsd, the bridge writes one JSON object per line to every client of a Unix socket. The
reader must never wait for a client: every socket is non-blocking, each client has a bounded
output buffer, and a client that cannot keep up (or sends a flood) is dropped with a log line.
One thread, one ``selectors`` loop; the daemon owns the loop and calls :meth:`EventServer.poll`.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import selectors
import socket
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["EventServer", "BridgeAlreadyRunning", "SocketPathError", "MAX_OUTPUT", "MAX_LINE"]

log = logging.getLogger("klick.bridge")

#: A client further behind than this is not reading; it is dropped, never waited for.
MAX_OUTPUT = 256 * 1024
#: No command is longer than this; a longer line is a flood, not a mistake.
MAX_LINE = 4096
#: Input lines per second a client may send on average (with a burst allowance).
LINE_RATE, LINE_BURST = 50.0, 200.0
#: Malformed lines logged per client before the log goes quiet about it.
MAX_LOGGED_BAD = 5


class BridgeAlreadyRunning(RuntimeError):
    """Another bridge answers on the socket path."""


class SocketPathError(RuntimeError):
    """The socket path is taken by something that is not a socket."""


class _Client:
    __slots__ = ("sock", "name", "out", "inbuf", "tokens", "refill_at", "bad", "writing")

    def __init__(self, sock: socket.socket, name: str) -> None:
        self.sock = sock
        self.name = name
        self.out = bytearray()
        self.inbuf = bytearray()
        self.tokens = LINE_BURST
        self.refill_at = time.monotonic()
        self.bad = 0
        self.writing = False


class EventServer:
    """A Unix socket that greets each new client, broadcasts lines and reads JSON commands.

    ``greeting()`` returns the lines a new client gets first (the current state);
    ``on_command(dict)`` handles one well-formed command and returns the reply object for that
    client, or None for no reply.
    """

    def __init__(
        self,
        path: Path,
        greeting: Callable[[], list[bytes]],
        on_command: Callable[[dict[str, Any]], dict[str, Any] | None],
    ) -> None:
        self.path = Path(path)
        self._greeting = greeting
        self._on_command = on_command
        self._sel = selectors.DefaultSelector()
        self._clients: dict[int, _Client] = {}
        self._listener: socket.socket | None = None
        self._serial = 0

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
        self._sel.register(listener, selectors.EVENT_READ, self._accept)

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
            self._sel.unregister(self._listener)
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
        """Wait up to ``timeout`` seconds (None: until something happens) and handle it."""
        for key, mask in self._sel.select(timeout):
            if isinstance(key.data, _Client):
                self._service(key.data, mask)
            else:
                key.data()

    def broadcast(self, line: bytes) -> None:
        for client in list(self._clients.values()):
            self._send(client, line)

    # --- clients -----------------------------------------------------------------------------

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of file descriptors: keep serving the others
                log.warning("Could not accept a client: %s.", exc.strerror or exc)
                return
            sock.setblocking(False)
            self._serial += 1
            client = _Client(sock, f"client {self._serial}")
            self._clients[sock.fileno()] = client
            self._sel.register(sock, selectors.EVENT_READ, client)
            log.debug("%s connected.", client.name)
            for line in self._greeting():
                self._send(client, line)

    def _service(self, client: _Client, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self._flush(client)
        if mask & selectors.EVENT_READ and self._clients.get(client.sock.fileno()) is client:
            self._read(client)

    def _send(self, client: _Client, line: bytes) -> None:
        if len(client.out) + len(line) > MAX_OUTPUT:
            self._drop(client, f"{client.name} is not reading its events; disconnected it.")
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
                self._drop(client, f"{client.name} sent more than {LINE_RATE:.0f} lines a second; disconnected it.")
                return
            self._line(client, line)
            if self._clients.get(client.sock.fileno()) is not client:
                return
        if len(client.inbuf) > MAX_LINE:
            self._drop(client, f"{client.name} sent a line longer than {MAX_LINE} bytes; disconnected it.")

    def _spend(self, client: _Client) -> bool:
        now = time.monotonic()
        client.tokens = min(LINE_BURST, client.tokens + (now - client.refill_at) * LINE_RATE)
        client.refill_at = now
        client.tokens -= 1
        return client.tokens >= 0

    def _line(self, client: _Client, line: bytes) -> None:
        if not line.strip():
            return
        if len(line) > MAX_LINE:
            self._drop(client, f"{client.name} sent a line longer than {MAX_LINE} bytes; disconnected it.")
            return
        try:
            body = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("command"), str):
            client.bad += 1
            if client.bad <= MAX_LOGGED_BAD:
                log.warning("Ignored a line from %s that is not a command: %r", client.name, line[:120])
            if client.bad == MAX_LOGGED_BAD:
                log.warning("Further bad lines from %s are ignored without a log line.", client.name)
            return
        try:
            reply = self._on_command(body)
        except Exception:  # a command must never take the bridge down
            log.exception("A command from %s failed.", client.name)
            reply = {"reply": body["command"], "ok": False, "error": "The bridge could not do that; see its log."}
        if reply is not None:
            self._send(client, json.dumps(reply, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")

    def _drop(self, client: _Client, why: str | None) -> None:
        if self._clients.get(client.sock.fileno()) is not client:
            return
        del self._clients[client.sock.fileno()]
        if why:
            log.warning(why)
        else:
            log.debug("%s disconnected.", client.name)
        try:
            self._sel.unregister(client.sock)
        except (KeyError, ValueError):
            pass
        client.sock.close()
