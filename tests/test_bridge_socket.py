"""The bridge's event socket and driver supervision, over real Unix sockets in a temp folder.

The reader here is a small scripted driver (the test says what the field holds), so these
tests are about the socket: greeting, many clients, slow and rude clients, restarts.
The real serial path through a pty is in test_bridge_e2e.py.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import stat
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from firmware_bridge import daemon as daemon_mod
from firmware_bridge.daemon import Bridge
from firmware_bridge.server import BridgeAlreadyRunning, SocketPathError
from klick.bridge_client import BridgeClient, BridgeUnavailable, iter_events, request
from klick.config import load_config
from klick.events import CardPresent, CardRemoved, ReaderStatus, decode_event


class ScriptedDriver:
    """A driver whose field the test controls; ``crash`` makes run() raise like a buggy driver."""

    def __init__(self, reader, sink, script: Script) -> None:
        self.sink = sink
        self.script = script

    def run(self, stop: threading.Event) -> None:
        self.script.runs += 1
        self.sink.status("connected", "Scripted reader ready.", self.script.mode)
        while not stop.is_set():
            try:
                step = self.script.steps.get(timeout=0.05)
            except queue.Empty:
                continue
            if step == "crash":
                raise RuntimeError("the scripted driver broke")
            kind, *args = step
            getattr(self.sink, kind)(*args)


class Script:
    def __init__(self, mode: str = "slot") -> None:
        self.steps: queue.SimpleQueue = queue.SimpleQueue()
        self.runs = 0
        self.mode = mode

    def factory(self, reader, sink):
        return ScriptedDriver(reader, sink, self)

    def seen(self, uid: str) -> None:
        self.steps.put(("seen", uid, time.monotonic()))

    def gone(self) -> None:
        self.steps.put(("gone", time.monotonic()))


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("KLICK_HOME", str(tmp_path))
    # AF_UNIX paths are limited to ~107 bytes; pytest's tmp paths can be long.
    short = Path(f"/tmp/klick-test-{os.getpid()}-{id(tmp_path) % 100000}")
    short.mkdir()
    (tmp_path / "klick.yaml").write_text(f"reader:\n  settle_ms: 0\n  grace_ms: 0\npaths:\n  socket: {short}/b.sock\n")
    yield tmp_path
    for child in short.iterdir():
        child.unlink()
    short.rmdir()


class Running:
    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.path = bridge.cfg.paths.socket
        self.thread = threading.Thread(target=bridge.run, kwargs={"handle_signals": False}, daemon=True)

    def __enter__(self) -> Running:
        self.bridge.open()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bridge.stop()
        self.thread.join(10)
        assert not self.thread.is_alive()


def start(script: Script, **reader) -> Running:
    cfg = load_config()
    if reader:
        cfg = replace(cfg, reader=replace(cfg.reader, **reader))
    return Running(Bridge(cfg, driver_factory=script.factory))


def until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def next_of(events, cls, **fields):
    for event in events:
        if isinstance(event, cls) and all(getattr(event, k) == v for k, v in fields.items()):
            return event
    raise AssertionError(f"stream ended before {cls.__name__} {fields}")


def raw_client(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(str(path))
    return sock


class Lines:
    """Lines from a raw socket, keeping what arrived beyond the current line."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buf = sock, b""

    def __next__(self) -> bytes:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise StopIteration
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def __iter__(self):
        return self


# --- greeting and events -----------------------------------------------------------------------


def test_a_new_client_gets_the_state_first_then_the_events(home):
    script = Script()
    with start(script) as run:
        events = iter_events(run.path, timeout=5)
        next_of(events, ReaderStatus, state="connected")
        script.seen("04a2b3c4")
        assert next_of(events, CardPresent).uid == "04a2b3c4"
        # A client arriving now is told the reader status, then the card lying on it.
        late = iter_events(run.path, timeout=5)
        first, second = next(late), next(late)
        assert isinstance(first, ReaderStatus) and first.state == "connected"
        assert isinstance(second, CardPresent) and second.uid == "04a2b3c4"
        script.gone()
        assert next_of(events, CardRemoved).uid == "04a2b3c4"
        assert next_of(late, CardRemoved).uid == "04a2b3c4"


def test_the_socket_is_group_readable_only_and_removed_on_stop(home):
    with start(Script()) as run:
        mode = os.stat(run.path).st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o660
    assert not run.path.exists()


def test_a_stale_socket_file_is_replaced(home):
    cfg = load_config()
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(cfg.paths.socket))
    dead.close()  # the file stays, nobody answers: what a killed bridge leaves behind
    with start(Script()) as run:
        assert isinstance(next(iter_events(run.path, timeout=5)), ReaderStatus)


def test_a_second_bridge_refuses_to_start(home):
    with start(Script()) as run:
        second = Bridge(load_config(), driver_factory=Script().factory)
        with pytest.raises(BridgeAlreadyRunning, match="already running"):
            second.open()
        assert isinstance(next(iter_events(run.path, timeout=5)), ReaderStatus)


def test_a_path_that_is_not_a_socket_is_left_alone(home):
    cfg = load_config()
    cfg.paths.socket.write_text("precious")
    with pytest.raises(SocketPathError, match="not a socket"):
        Bridge(cfg, driver_factory=Script().factory).open()
    assert cfg.paths.socket.read_text() == "precious"


def test_a_tap_reader_reports_tap_mode_and_present_then_removed(home):
    script = Script(mode="tap")
    with start(script, settle_ms=80, grace_ms=1200) as run:
        events = iter_events(run.path, timeout=5)
        assert next_of(events, ReaderStatus, state="connected").mode == "tap"
        script.steps.put(("tapped", "0012345678", time.monotonic()))
        present = next_of(events, CardPresent)
        removed = next(events)
        assert present.uid == removed.uid == "0012345678"
        assert isinstance(removed, CardRemoved)


# --- rude and slow clients ---------------------------------------------------------------------


def test_a_slow_client_is_dropped_and_never_blocks_a_fast_one(home):
    script = Script()
    with start(script) as run:
        slow = raw_client(run.path)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        fast = iter_events(run.path, timeout=10)
        next_of(fast, ReaderStatus)
        until(lambda: run.bridge.server.client_count == 2)
        got: list = []
        reader = threading.Thread(target=lambda: got.extend(next(fast) for _ in range(8000)), daemon=True)
        reader.start()
        # Far more than the slow client's socket buffers and the bridge's per-client limit hold,
        # in bursts of 200 cards a fast reader keeps up with.
        for i in range(4000):
            script.seen(f"{i:08X}")
            if i % 200 == 199:
                until(lambda i=i: len(got) >= 2 * i - 2)
        script.gone()
        reader.join(30)
        assert [e.uid for e in got if isinstance(e, CardPresent)] == [f"{i:08X}" for i in range(4000)]
        until(lambda: run.bridge.server.client_count == 1)
        slow.close()


def test_malformed_client_input_is_ignored_and_the_client_kept(home):
    with start(Script()) as run:
        sock = raw_client(run.path)
        lines = Lines(sock)
        next(lines)
        sock.sendall(b'hello\n{not json\n[1,2]\n{"no": "command"}\n\xff\xfe\n\n')
        sock.sendall(b'{"command": "status"}\n')
        replies = []
        while not replies:
            body = json.loads(next(lines))
            if "reply" in body:
                replies.append(body)
            else:
                assert body["event"] == "reader_status"  # the driver may report "connected" meanwhile
        assert replies[0]["reply"] == "status" and replies[0]["ok"] is True
        assert replies[0]["present"] is None
        sock.close()


def test_insert_to_a_reader_that_cannot_is_answered_with_an_error(home):
    with start(Script()) as run:
        reply = request(run.path, {"command": "insert", "uid": "04A2"})
        assert reply["ok"] is False and "only the simulated reader" in reply["error"]
        reply = request(run.path, {"command": "fly"})
        assert reply["ok"] is False and "does not know" in reply["error"]


def test_a_flooding_client_is_cut_off(home):
    with start(Script()) as run:
        sock = raw_client(run.path)
        next(Lines(sock))
        try:
            sock.sendall(b'{"command": "status"}\n' * 2000)
        except (BrokenPipeError, ConnectionResetError):
            pass
        until(lambda: run.bridge.server.client_count == 0)
        # The bridge itself carries on.
        assert request(run.path, {"command": "status"})["ok"] is True


def test_a_line_that_never_ends_is_cut_off(home):
    with start(Script()) as run:
        sock = raw_client(run.path)
        next(Lines(sock))
        try:
            sock.sendall(b"x" * 10000)
        except (BrokenPipeError, ConnectionResetError):
            pass
        until(lambda: run.bridge.server.client_count == 0)


# --- driver supervision ------------------------------------------------------------------------


def test_a_crashing_driver_is_reported_lost_and_restarted(home, monkeypatch):
    monkeypatch.setattr(daemon_mod, "RESTART_PAUSE", 0.05)
    script = Script()
    with start(script) as run:
        events = iter_events(run.path, timeout=5)
        next_of(events, ReaderStatus, state="connected")
        script.seen("A1")
        next_of(events, CardPresent, uid="A1")
        script.steps.put("crash")
        lost = next_of(events, ReaderStatus, state="lost")
        assert "failed" in lost.detail
        # The bridge cannot vouch for the card any more: it ends after the grace time (0 here).
        assert next_of(events, CardRemoved).uid == "A1"
        next_of(events, ReaderStatus, state="connected")
        assert script.runs == 2


# --- the client library ------------------------------------------------------------------------


def test_iter_events_says_plainly_when_no_bridge_runs(home):
    with pytest.raises(BridgeUnavailable, match="not running"):
        next(iter_events(load_config().paths.socket))


def test_bridge_client_reconnects_by_itself(home):
    got: queue.SimpleQueue = queue.SimpleQueue()
    links: queue.SimpleQueue = queue.SimpleQueue()
    client = BridgeClient(load_config().paths.socket, got.put, links.put)
    client.start()
    try:
        assert client.send({"command": "status"}) is False  # no bridge yet
        script = Script()
        with start(script):
            assert links.get(timeout=5) is True
            assert isinstance(got.get(timeout=5), ReaderStatus)
            until(lambda: client.send({"command": "status"}))
            script.seen("B2")
            assert next_of(iter(lambda: got.get(timeout=5), None), CardPresent).uid == "B2"
        assert links.get(timeout=5) is False
        with start(Script()):
            assert links.get(timeout=5) is True
            assert isinstance(got.get(timeout=5), ReaderStatus)
    finally:
        client.stop()


def test_decode_of_what_the_bridge_sends_round_trips(home):
    with start(Script()) as run:
        sock = raw_client(run.path)
        assert isinstance(decode_event(next(Lines(sock))), ReaderStatus)
        sock.close()
