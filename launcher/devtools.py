"""The launcher's private line to Chromium: the DevTools protocol over two inherited pipes.

Chromium started with ``--remote-debugging-pipe`` reads commands from its file descriptor 3 and
writes answers and events to its descriptor 4, each message one JSON text ended by a NUL byte.
Only the process holding the other ends can speak it: no port is opened, so no other program or
user on the tablet (nor a web page) can reach the browser's controls. When the launcher goes
away, so do its ends of the pipes, and Chromium quits by itself.

``subprocess`` cannot put a pipe on a chosen descriptor number without running Python code in
the child between fork and exec (unsafe next to the launcher's threads), so the browser is
started with :func:`os.posix_spawnp`, whose file actions do it, and :class:`SpawnedProcess` gives
it the small part of ``Popen``'s interface that :class:`launcher.actions.RunningProgram` uses.

Nothing here runs on the screen's thread: the reader is its own thread, and callers of
:meth:`DevToolsPipe.call` are the browser watcher's thread.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["DevToolsError", "DevToolsPipe", "SpawnedProcess", "spawn_with_pipe", "MAX_MESSAGE"]

log = logging.getLogger("klick.launcher.devtools")

#: The largest message taken from the browser; anything longer is dropped whole (a screenshot
#: would be a few MB; the launcher asks for nothing that large).
MAX_MESSAGE = 16 * 1024 * 1024
#: Descriptors in the child: Chromium reads commands on 3 and writes to 4.
CHILD_IN, CHILD_OUT = 3, 4


class DevToolsError(Exception):
    """The browser did not answer, answered with an error, or its pipe is closed."""


class SpawnedProcess:
    """A child started with posix_spawn: ``pid``, ``poll()``, ``wait(timeout)`` and ``returncode``
    as ``subprocess.Popen`` has them; safe to use from several threads."""

    def __init__(self, pid: int, args: tuple[str, ...]) -> None:
        self.pid = pid
        self.args = args
        self.returncode: int | None = None
        self._lock = threading.Lock()
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self._pidfd = None

    def poll(self) -> int | None:
        with self._lock:
            if self.returncode is None:
                try:
                    pid, status = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:  # reaped elsewhere: it has ended, how is not known
                    self.returncode = 0
                else:
                    if pid:
                        self.returncode = os.waitstatus_to_exitcode(status)
                if self.returncode is not None and self._pidfd is not None:
                    os.close(self._pidfd)
                    self._pidfd = None
            return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.005
        while self.poll() is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(list(self.args), timeout or 0)
            fd = self._pidfd
            if fd is not None:
                try:
                    select.select([fd], [], [], 0.5 if left is None else min(left, 0.5))
                    continue
                except (OSError, ValueError):  # closed by another thread's poll: look again
                    continue
            time.sleep(pause if left is None else min(pause, left))
            pause = min(pause * 2, 0.05)
        return self.returncode  # type: ignore[return-value]


def _high(fd: int) -> int:
    """``fd`` moved above the standard descriptors, close-on-exec, so the spawn's dup2 onto 3
    and 4 can never overwrite one of the pipe ends it still has to copy."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


def spawn_with_pipe(argv: tuple[str, ...], *, log_file: Path | None = None) -> tuple[SpawnedProcess, DevToolsPipe]:
    """Start ``argv`` in its own session with the DevTools pipes on its descriptors 3 and 4.

    Raises FileNotFoundError, PermissionError or OSError as ``subprocess.Popen`` would.
    """
    to_child_r, to_child_w = (_high(fd) for fd in os.pipe())
    from_child_r, from_child_w = (_high(fd) for fd in os.pipe())
    actions: list[tuple] = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0)]
    if log_file is not None:
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            actions.append((os.POSIX_SPAWN_OPEN, 1, str(log_file), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
        except OSError:
            actions.append((os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0))
    else:
        actions.append((os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0))
    actions += [
        (os.POSIX_SPAWN_DUP2, 1, 2),
        (os.POSIX_SPAWN_DUP2, to_child_r, CHILD_IN),
        (os.POSIX_SPAWN_DUP2, from_child_w, CHILD_OUT),
    ]
    try:
        pid = os.posix_spawnp(
            argv[0],
            list(argv),
            os.environ,
            file_actions=actions,
            setsid=True,
            setsigmask=(),
            # Python ignores these; a browser must start with the defaults, as Popen gives them.
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM),
        )
    except BaseException:
        for fd in (to_child_r, to_child_w, from_child_r, from_child_w):
            os.close(fd)
        raise
    os.close(to_child_r)
    os.close(from_child_w)
    return SpawnedProcess(pid, tuple(argv)), DevToolsPipe(to_child_w, from_child_r)


class DevToolsPipe:
    """Commands out, answers and events in. Events (and answers nobody waits for) go to the
    ``on_message`` callback, on the reader's thread; ``None`` there means the browser closed its
    end (it ended)."""

    def __init__(self, write_fd: int, read_fd: int) -> None:
        self._w = write_fd
        self._r = read_fd
        # A browser that stops reading (frozen, or busy) must never block the watcher's thread.
        os.set_blocking(self._w, False)
        self._next_id = 0
        #: Guards the ids, the waiting callers, ``_closed`` and who owns the descriptors; never
        #: held through a write, so :meth:`close` (card out, the screen's thread) never waits on
        #: a browser that stopped reading.
        self._lock = threading.Lock()
        #: One message at a time on the command pipe.
        self._write_lock = threading.Lock()
        self._writing = False
        self._waiting: dict[int, list] = {}
        self._closed = False
        self._reader: threading.Thread | None = None
        self.on_message: Callable[[dict | None], None] = lambda _m: None

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self, on_message: Callable[[dict | None], None]) -> None:
        """Start reading; a pipe closed already (the card came out just after the spawn) is left
        closed, and its callers hear "the browser closed"."""
        self.on_message = on_message
        with self._lock:
            # The read end passes to the reader here, under the lock close() takes: it is read
            # and closed by the reader alone, or closed by close() alone, never both.
            fd, self._r = self._r, -1
            if self._closed or fd < 0:
                return
            self._reader = threading.Thread(target=self._read, args=(fd,), name="devtools-reader", daemon=True)
        self._reader.start()

    def _read(self, fd: int) -> None:
        # The reader owns the read end and closes it itself: closing it from another thread
        # while a read waits on it could hand the number to a new file under the read.
        buf = bytearray()
        skipping = False
        try:
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                start = 0
                while True:
                    end = chunk.find(b"\0", start)
                    if end < 0:
                        if not skipping:
                            buf += chunk[start:]
                            if len(buf) > MAX_MESSAGE:
                                log.warning("The browser sent a message over %d bytes; it is left out.", MAX_MESSAGE)
                                buf.clear()
                                skipping = True
                        break
                    if skipping:
                        skipping = False
                    else:
                        buf += chunk[start:end]
                        self._dispatch(bytes(buf))
                    buf.clear()
                    start = end + 1
        finally:
            os.close(fd)
            self._finish()

    def _dispatch(self, raw: bytes) -> None:
        try:
            message = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nested past Python's stack
            log.warning("The browser sent something that is not JSON; it is left out.")
            return
        if not isinstance(message, dict):
            return
        slot = None
        if isinstance(message.get("id"), int) and "method" not in message:
            with self._lock:
                slot = self._waiting.pop(message["id"], None)
        if slot is not None:
            slot.append(message)
            slot[0].set()
            return
        try:
            self.on_message(message)
        except Exception:  # the watcher's trouble must not end the reader
            log.exception("a DevTools message could not be handled")

    def _finish(self) -> None:
        self._release()
        try:
            self.on_message(None)
        except Exception:
            log.exception("the end of the DevTools pipe could not be handled")

    def _release(self) -> None:
        """No more commands; every caller still waiting gets "the browser closed" at once."""
        with self._lock:
            self._closed = True
            waiting, self._waiting = self._waiting, {}
        for slot in waiting.values():
            slot[0].set()

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        """Send one command without waiting; its answer comes to ``on_message`` (with its id)."""
        return self._send(method, params, session, None)

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 5.0) -> dict:
        """Send one command and wait for its result; raise :class:`DevToolsError`."""
        slot: list = [threading.Event()]
        msg_id = self._send(method, params, session, slot)
        if not slot[0].wait(timeout):
            with self._lock:
                self._waiting.pop(msg_id, None)
            raise DevToolsError(f"{method}: no answer within {timeout:.0f} s")
        if len(slot) < 2:
            raise DevToolsError(f"{method}: the browser closed")
        answer = slot[1]
        if "error" in answer:
            error = answer["error"]
            text = error.get("message", error) if isinstance(error, dict) else error
            raise DevToolsError(f"{method}: {text}")
        result = answer.get("result")
        return result if isinstance(result, dict) else {}

    def _send(self, method: str, params: dict | None, session: str | None, slot: list | None) -> int:
        with self._write_lock:
            with self._lock:
                if self._closed:
                    raise DevToolsError(f"{method}: the browser closed")
                self._next_id += 1
                msg_id = self._next_id
                if slot is not None:
                    self._waiting[msg_id] = slot
                self._writing = True
            message: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
            if session:
                message["sessionId"] = session
            data = json.dumps(message, separators=(",", ":")).encode() + b"\0"
            try:
                self._write_all(data)
            except BrokenPipeError:  # the browser has let go of its end: it is ending
                self._release()
                raise DevToolsError(f"{method}: the browser closed") from None
            except OSError as exc:
                with self._lock:
                    self._waiting.pop(msg_id, None)
                raise DevToolsError(f"{method}: {exc.strerror or exc}") from None
            finally:
                with self._lock:
                    self._writing = False
                    fd = self._take_write_end() if self._closed else -1
                _close_quietly(fd)  # close() came during the write and left the end to it
        return msg_id

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + 1.0
        while view:
            if self._closed:  # card out: the message is not wanted any more
                raise BrokenPipeError(errno.EPIPE, "closed")
            try:
                written = os.write(self._w, view)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise OSError(errno.EAGAIN, "the browser is not reading its pipe") from None
                select.select([], [self._w], [], 0.1)
                continue
            view = view[written:]

    def close(self) -> None:
        """Let go of the command end: the browser sees its pipe close and quits; the reader ends
        when the browser's end closes (it closes the read end itself)."""
        self._release()
        with self._lock:
            # A write under way keeps its descriptor: the writer closes it when it stops, which
            # it does at once now that the pipe is closed (never waited for here).
            write_end = -1 if self._writing else self._take_write_end()
            read_end, self._r = self._r, -1  # still here only if no reader was started
        _close_quietly(write_end)
        _close_quietly(read_end)

    def _take_write_end(self) -> int:
        fd, self._w = self._w, -1
        return fd


def _close_quietly(fd: int) -> None:
    if fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass
