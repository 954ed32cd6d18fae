"""Commands to a running `klick bridge` with the simulated reader, as a test sends them."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path


def wait_for(predicate, timeout: float, what: str):
    """The predicate's first true value, polled every 50 ms; AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def send(sock_path: Path, command: dict, s: socket.socket | None = None) -> None:
    """Send one command and wait for its reply (a client that hangs up at once may be dropped
    before its command is read)."""
    if s is None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(str(sock_path))
            return send(sock_path, command, s)
    s.sendall(json.dumps(command).encode() + b"\n")
    for line in s.makefile("rb"):
        if json.loads(line).get("reply") == command["command"]:
            return
    raise AssertionError(f"the bridge did not answer {command}")


def wait_for_the_reader(sock_path: Path, timeout: float = 20) -> None:
    """Until the bridge says its reader is connected (a card put in before that is not seen, as
    with a real reader)."""
    wait_for(lambda: sock_path.exists(), timeout, "the bridge's socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock_path))
        for line in s.makefile("rb"):
            event = json.loads(line)
            if event.get("event") == "reader_status" and event.get("state") == "connected":
                return
    raise AssertionError("the bridge closed before its reader was connected")


def insert_when_the_reader_is_up(sock_path: Path, uid: str, timeout: float = 20) -> None:
    wait_for_the_reader(sock_path, timeout)
    send(sock_path, {"command": "insert", "uid": uid})


def bridges_of(config: Path) -> list[int]:
    """Every living `klick bridge` process started with these settings."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and b"bridge" in cmdline and str(config.resolve()).encode() in cmdline:
            found.append(int(entry))
    return found
