"""A `klick bridge` started for one program's session, and ended with it.

Only the bridge ever opens a reader. A program that needs card events where no bridge runs (the
carer window on a carer's own computer) starts `klick bridge` as its child, with the settings'
reader and socket, and then talks to it over the socket like every other client. The child runs
with ``--until-stdin-closes`` and its stdin is a pipe only this process holds: however this
process ends (the window closed, a crash, SIGKILL), the kernel closes the pipe and the bridge
stops, letting go of the reader.

The bridge's own log lines go to this process's log (``klick.bridge_child``); when it cannot
start, :class:`BridgeStartError` says why in plain words, never as a Python error: the bridge's
own sentence (English, as in a terminal), and for the cases a carer meets a reason code, so the
window can say it in its own language. The code comes from what this process can see for itself
after the bridge stopped (a bridge answering on the socket, settings that no longer load, a socket
path that cannot be used), not from reading the bridge's English.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from klick.bridge_client import BridgeUnavailable, request
from klick.config import Config, ConfigError, load_config

__all__ = ["BridgeChild", "BridgeStartError", "START_PROBLEMS", "bridge_answers", "start_bridge"]

log = logging.getLogger("klick.bridge_child")

#: How long a starting bridge may take to answer on its socket (nfcpy's USB probe is the slowest).
START_TIMEOUT_S = 15.0
#: How many of the bridge's last log lines are kept to say why it stopped.
KEPT_LINES = 20
#: The longest path a Unix socket may have (sun_path is 108 bytes with its closing NUL).
MAX_SOCKET_PATH = 107

#: Why a bridge did not start, as :attr:`BridgeStartError.code`: its socket cannot be made where
#: paths.socket says; another bridge holds that socket; the settings file does not load; it did
#: not answer in time; it could not be run at all. Any other reason has no code (None).
START_PROBLEMS = ("socket", "already_running", "settings", "timeout", "cannot_run")


class BridgeStartError(Exception):
    """The bridge did not start.

    ``reason`` is plain words: the bridge's own sentence, or ours. ``code`` is one of
    :data:`START_PROBLEMS`, or None when it is none of those; ``where`` is the path it concerns
    (the socket, or the settings file), "" when none.
    """

    def __init__(self, reason: str, code: str | None = None, where: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.where = where


def bridge_answers(socket_path: str | Path, timeout: float = 1.0) -> bool:
    """True when a bridge answers a status request on ``socket_path``."""
    try:
        return bool(request(socket_path, {"command": "status"}, timeout=timeout).get("reply"))
    except (BridgeUnavailable, TimeoutError, OSError, ValueError):
        return False


class BridgeChild:
    """A running `klick bridge` child; :meth:`stop` ends it (and waits until it has)."""

    def __init__(self, proc: subprocess.Popen[bytes], socket_path: Path, lines: collections.deque[str]) -> None:
        self.proc = proc
        self.socket_path = socket_path
        self._lines = lines
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def last_words(self) -> str:
        """The bridge's last plain sentence, or "" when it said nothing plain (see :func:`_plain`)."""
        return _plain(list(self._lines))

    def stop(self, grace: float = 5.0) -> None:
        """Close the bridge's stdin (it stops by itself), then SIGTERM, then SIGKILL if it must.

        The bridge waits up to 5 s for a reader driver stuck in hardware, hence ``grace``. Safe
        to call twice and from two threads.
        """
        with self._lock:
            proc = self.proc
            if proc.stdin is not None and not proc.stdin.closed:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
            try:
                proc.wait(grace)
                return
            except subprocess.TimeoutExpired:
                log.warning("The card reader bridge (pid %d) did not stop within %.0f s; ending it.", proc.pid, grace)
            proc.terminate()
            try:
                proc.wait(2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _bridge_argv(cfg: Config) -> list[str]:
    """`klick bridge` for these settings: the same settings file (hence reader and socket)."""
    argv = [sys.executable, "-c", "from klick.cli import main; main()", "bridge", "--until-stdin-closes"]
    if cfg.source is not None:
        argv += ["--config", str(Path(cfg.source).resolve())]
    return argv


def _plain(lines: list[str]) -> str:
    """The bridge's last sentence, if it is plain words; "" for a Python error or silence.

    The bridge's own failures are one sentence on stderr (``klick.cli.common.fail``); its log
    lines start with their level. A traceback is a bug and is never shown as a reason.
    """
    if any(line.startswith("Traceback") for line in lines):
        return ""
    for line in reversed(lines):
        text = line.strip()
        for level in ("INFO ", "WARNING ", "ERROR ", "CRITICAL ", "DEBUG "):
            if text.startswith(level):
                text = text[len(level) :]
                break
        if text:
            return text
    return ""


def _read_lines(stream: IO[bytes], lines: collections.deque[str]) -> None:
    """Keep and log the bridge's stderr until it closes (the bridge has ended)."""
    try:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                lines.append(line)
                log.info("bridge: %s", line)
    except (OSError, ValueError):
        pass
    finally:
        stream.close()


def start_bridge(
    cfg: Config,
    *,
    timeout: float = START_TIMEOUT_S,
    cancelled: threading.Event | None = None,
) -> BridgeChild | None:
    """Start `klick bridge` for ``cfg`` and return once it answers on ``cfg.paths.socket``.

    Returns None when ``cancelled`` is set before it answers (the window was closed while the
    bridge was starting); the child is then stopped already. Raises :class:`BridgeStartError`
    when it cannot start, stops at once or does not answer within ``timeout`` seconds (and is
    stopped).
    """
    socket_path = Path(cfg.paths.socket)
    lines: collections.deque[str] = collections.deque(maxlen=KEPT_LINES)
    try:
        proc = subprocess.Popen(
            _bridge_argv(cfg),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # the terminal's Ctrl+C goes to the window; the window ends the bridge
        )
    except OSError as exc:
        raise BridgeStartError(f"Klick cannot start its card reader bridge: {exc.strerror or exc}.", "cannot_run") from None
    assert proc.stderr is not None  # stderr=PIPE above
    threading.Thread(target=_read_lines, args=(proc.stderr, lines), name="bridge-child-log", daemon=True).start()
    child = BridgeChild(proc, socket_path, lines)
    log.info("Started the card reader bridge (pid %d) for this session, on %s.", proc.pid, socket_path)
    deadline = time.monotonic() + timeout
    while True:
        if cancelled is not None and cancelled.is_set():
            child.stop()
            return None
        if not child.running():
            proc.wait()
            _wait_for_lines(proc)
            reason = child.last_words() or f"The card reader bridge stopped as it started (exit status {proc.returncode})."
            code, where = why_it_stopped(cfg)
            raise BridgeStartError(reason, code, where)
        if bridge_answers(socket_path, timeout=0.5):
            return child
        if time.monotonic() > deadline:
            child.stop()
            raise BridgeStartError(
                f"The card reader bridge did not answer on {socket_path} within {timeout:.0f} seconds.",
                "timeout",
                str(socket_path),
            )
        if cancelled is not None:
            cancelled.wait(0.05)
        else:
            time.sleep(0.05)


def _wait_for_lines(proc: subprocess.Popen[bytes]) -> None:
    """Give the log thread a moment to read the last lines of a bridge that has ended."""
    end = time.monotonic() + 1.0
    while proc.stderr is not None and not proc.stderr.closed and time.monotonic() < end:
        time.sleep(0.01)


def why_it_stopped(cfg: Config) -> tuple[str | None, str]:
    """(code, path) for a bridge that stopped as it started, from what can be seen now; (None, "")."""
    socket_path = Path(cfg.paths.socket)
    if bridge_answers(socket_path, timeout=0.5) or _someone_listens(socket_path):
        return "already_running", str(socket_path)
    if cfg.source is not None:
        try:
            load_config(cfg.source)
        except ConfigError:
            return "settings", str(cfg.source)
    if socket_unusable(socket_path):
        return "socket", str(socket_path)
    return None, ""


def _someone_listens(path: Path) -> bool:
    """A program accepts connections on the socket ``path`` (a bridge that does not answer, say)."""
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            return False
    except OSError:
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def socket_unusable(path: Path) -> bool:
    """True when no socket can be made at ``path``: too long, a file already in its place, or a
    folder on the way that is a file or that this user may not write."""
    if len(os.fsencode(str(path))) > MAX_SOCKET_PATH:
        return True
    try:
        return not stat.S_ISSOCK(os.lstat(path).st_mode)
    except FileNotFoundError:
        pass
    except OSError:  # a file where a folder on the way should be
        return True
    folder = path.parent
    while True:
        try:
            mode = os.stat(folder).st_mode
        except FileNotFoundError:
            if folder == folder.parent:
                return True
            folder = folder.parent  # the bridge makes the missing folders: the nearest one that exists decides
            continue
        except OSError:
            return True
        return not stat.S_ISDIR(mode) or not os.access(folder, os.W_OK | os.X_OK)
