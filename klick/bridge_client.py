"""Listening to the bridge: the one way the launcher, the carer tool and tests get card events.

The bridge may start after its clients, restart under systemd, or be stopped for a while; a
client must simply carry on. :class:`BridgeClient` therefore reconnects by itself, forever, with
a growing pause, and says so through ``on_connection``. :func:`iter_events` is the plain blocking
form for a command line or a test. Lines that are not events (command replies) are skipped;
they are read with :func:`request`.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from klick.events import Event, EventError, decode_event

__all__ = ["BridgeClient", "BridgeUnavailable", "iter_events", "request"]

log = logging.getLogger("klick.bridge_client")

#: Reconnect pauses: start quick (the bridge is usually just restarting), settle at a few seconds.
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 5.0
#: A line longer than this is not from a bridge.
MAX_LINE = 64 * 1024


class BridgeUnavailable(ConnectionError):
    """No bridge answers on the socket. The message is one plain sentence."""


def _connect(path: str | Path, timeout: float | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout if timeout is not None else 5.0)
    try:
        sock.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        sock.close()
        raise BridgeUnavailable(f"The card reader bridge is not running (nothing answers on {path}).") from exc
    except PermissionError as exc:
        sock.close()
        raise BridgeUnavailable(
            f"This user may not talk to the card reader bridge on {path}; ask the installer to add it to the klick group."
        ) from exc
    except OSError as exc:
        sock.close()
        raise BridgeUnavailable(f"Cannot reach the card reader bridge on {path}: {exc.strerror or exc}.") from exc
    sock.settimeout(timeout)
    return sock


def _lines(sock: socket.socket) -> Iterator[bytes]:
    """Complete lines until the bridge closes the connection; socket.timeout passes through."""
    buf = bytearray()
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return
        buf += chunk
        while True:
            end = buf.find(b"\n")
            if end < 0:
                break
            line = bytes(buf[:end])
            del buf[: end + 1]
            yield line
        if len(buf) > MAX_LINE:
            raise EventError("the bridge sent a line that never ends")


def _hello(sock: socket.socket, client: str | None) -> None:
    """Tell the bridge who we are: it keeps a ``launcher`` when it must make room for a new client."""
    if client:
        sock.sendall(json.dumps({"command": "hello", "client": client}).encode() + b"\n")


def iter_events(socket_path: str | Path, timeout: float | None = None, hello: str | None = None) -> Iterator[Event]:
    """Yield events from the bridge, starting with its current state, until it goes away.

    Raises :class:`BridgeUnavailable` if no bridge answers, and :class:`TimeoutError` if
    ``timeout`` seconds pass without a line. Ends quietly when the bridge closes the connection.
    ``hello`` names this client to the bridge (see :class:`BridgeClient`).
    """
    sock = _connect(socket_path, timeout)
    try:
        try:
            _hello(sock, hello)
            for line in _lines(sock):
                try:
                    yield decode_event(line)
                except EventError:
                    continue  # a reply meant for a command, or a newer event kind
        except TimeoutError:
            raise TimeoutError(f"no event from the bridge within {timeout} s") from None
        except (ConnectionResetError, BrokenPipeError):
            return
    finally:
        sock.close()


def request(socket_path: str | Path, command: dict[str, Any], timeout: float = 3.0) -> dict[str, Any]:
    """Send one command and return the bridge's reply object (``{"reply": ..., "ok": ...}``)."""
    sock = _connect(socket_path, timeout)
    try:
        sock.sendall(json.dumps(command).encode() + b"\n")
        deadline = time.monotonic() + timeout
        for line in _lines(sock):
            try:
                body = json.loads(line)
            except ValueError:
                continue
            if isinstance(body, dict) and "reply" in body:
                return body
            sock.settimeout(max(0.01, deadline - time.monotonic()))
        raise BridgeUnavailable("The card reader bridge closed the connection without answering.")
    except TimeoutError:
        raise TimeoutError(f"the card reader bridge did not answer within {timeout} s") from None
    finally:
        sock.close()


class BridgeClient:
    """Events from the bridge on a background thread, reconnecting forever.

    ``on_event(event)`` and ``on_connection(connected: bool)`` are called from that thread; a
    Kivy app hands them on with ``Clock.schedule_once``. After every (re)connect the bridge sends
    its current state first, so a client never has to ask.

    ``hello`` names this client to the bridge after every (re)connect
    (``{"command": "hello", "client": hello}``). The launcher says ``"launcher"``: when the
    bridge is full (``bridge.max_clients``) it lets the longest idle other client go, never the
    launcher; clients that have said nothing at all go first.
    """

    def __init__(
        self,
        socket_path: str | Path,
        on_event: Callable[[Event], None],
        on_connection: Callable[[bool], None] | None = None,
        hello: str | None = None,
    ) -> None:
        self.hello = hello
        #: The bridge's answer to our hello on this connection: True if it keeps us when full
        #: (the launcher), False if not, None until it has answered (or without a hello).
        self.kept: bool | None = None
        self.socket_path = Path(socket_path)
        self.on_event = on_event
        self.on_connection = on_connection
        self.connected = False
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="bridge-client", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        with self._lock:
            if self._sock is not None:
                try:
                    self._sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def send(self, command: dict[str, Any]) -> bool:
        """Send one command line; False when not connected (nothing is queued for later)."""
        data = json.dumps(command).encode() + b"\n"
        with self._lock:
            if self._sock is None:
                return False
            try:
                self._sock.sendall(data)
            except OSError:
                return False
        return True

    def _run(self) -> None:
        pause = BACKOFF_FIRST
        quiet = False
        while not self._stop.is_set():
            try:
                sock = _connect(self.socket_path, None)
            except BridgeUnavailable as exc:
                if not quiet:
                    log.info("%s Trying again.", exc)
                    quiet = True
                if self._stop.wait(pause):
                    return
                pause = min(pause * 2, BACKOFF_MAX)
                continue
            pause, quiet = BACKOFF_FIRST, False
            with self._lock:
                self._sock = sock
            self._set_connected(True)
            try:
                with self._lock:
                    _hello(sock, self.hello)
                for line in _lines(sock):
                    try:
                        event = decode_event(line)
                    except EventError:
                        self._reply(line)
                        continue
                    try:
                        self.on_event(event)
                    except Exception:  # the client's bug must not end its own event stream
                        log.exception("The bridge event handler failed.")
            except (OSError, EventError):
                pass
            finally:
                with self._lock:
                    self._sock = None
                sock.close()
                self.kept = None
                self._set_connected(False)
            if self._stop.wait(BACKOFF_FIRST):
                return

    def _reply(self, line: bytes) -> None:
        """A line that is not an event: note the answer to our hello, skip the rest."""
        try:
            body = json.loads(line)
        except ValueError:
            return
        if isinstance(body, dict) and body.get("reply") == "hello" and body.get("ok") is True:
            self.kept = body.get("kept") is True

    def _set_connected(self, connected: bool) -> None:
        if connected == self.connected:
            return
        self.connected = connected
        if self.on_connection is not None:
            try:
                self.on_connection(connected)
            except Exception:
                log.exception("The bridge connection handler failed.")
