"""The bridge never dies of a client (issue 10, items 3 and 4).

Real `klick bridge` processes (with the simulated reader) get poison lines, a connection flood
under a low open-file limit, and a limit lowered under their feet; a well-behaved client that
says it is the launcher must keep getting every card event meanwhile. The harness is the soak
suite's (tests/soak/hostile.py), so `make soak` reports the same things as figures.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import resource
import socket
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge.daemon import Bridge
from firmware_bridge.server import MAX_DEPTH, too_deep
from klick.bridge_client import BridgeClient, iter_events, request
from klick.config import load_config
from klick.events import ReaderStatus

# Measures wall time or CPU: runs alone, after the parallel part of `make test`.
pytestmark = pytest.mark.serial

SOAK = Path(__file__).resolve().parent / "soak" / "hostile.py"


def _load_soak():
    spec = importlib.util.spec_from_file_location("klick_soak_hostile_for_tests", SOAK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hostile = _load_soak()


@pytest.fixture
def folder():
    short = Path(tempfile.mkdtemp(prefix="klick-hostile-", dir="/tmp"))  # AF_UNIX paths are short
    yield short
    for child in short.iterdir():
        child.unlink()
    short.rmdir()


def _reply_to(path: Path, line: bytes) -> dict | None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(path))
        s.sendall(line + b"\n")
        data = b""
        while data.count(b"\n") < 2:
            chunk = s.recv(65536)
            if not chunk:
                return None
            data += chunk
    second = data.splitlines()[1]
    assert second.isascii(), second  # replies are pure ASCII JSON, whatever the client sent
    return json.loads(second)


# --- item 3: poison lines ----------------------------------------------------------------------


def test_a_line_of_4000_brackets_or_a_lone_surrogate_ends_no_bridge(folder):
    bridge = hostile.BridgeProcess(folder)
    launcher = hostile.Launcher(bridge.socket)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(bridge.socket))
            s.sendall(b"[" * 4000 + b"\n")
            s.sendall(b'{"command": "status"}\n')  # the same client is still served after it
            data = b""
            while b'"reply"' not in data:
                chunk = s.recv(65536)
                assert chunk, "the bridge hung up"
                data += chunk
        reply = _reply_to(bridge.socket, b'{"command":"\\ud800"}')
        assert reply == {"reply": "\ud800", "ok": False, "error": "The bridge does not know the command '\\ud800'."}
        assert bridge.alive
        assert launcher.card("04A2B3C4D5E680")
        assert launcher.reconnects == 0
    finally:
        launcher.stop()
        assert bridge.stop() == 0
    log = bridge.log.read_text()
    assert "Traceback" not in log and "could not finish" not in log


def test_no_poison_line_ends_the_bridge_or_its_launcher_client(folder):
    bridge = hostile.BridgeProcess(folder)
    launcher = hostile.Launcher(bridge.socket)
    try:
        for line in hostile.POISON:
            hostile._poison(bridge.socket, line)
            assert bridge.proc.poll() is None, (line[:40], bridge.log.read_text())
        assert bridge.alive
        reply = _reply_to(bridge.socket, b'{"command":"insert","uid":"123"}')
        assert reply["ok"] is False and "odd number of digits" in reply["error"]
        assert launcher.card("0A0B0C0D") and launcher.reconnects == 0
    finally:
        launcher.stop()
        assert bridge.stop() == 0
    assert "Traceback" not in bridge.log.read_text()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(st.characters(min_codepoint=0, max_codepoint=0xFFFF)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=40,
)


def _depth(value) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@given(json_values)
def test_the_nesting_check_counts_only_real_brackets(value):
    text = json.dumps(value).encode()
    assert too_deep(text) == (_depth(value) > MAX_DEPTH)
    assert too_deep(b"[" * (MAX_DEPTH + 1)) and not too_deep(b'"' + b"[" * 4000 + b'"')


@pytest.fixture
def in_process(folder, monkeypatch):
    monkeypatch.setenv("KLICK_HOME", str(folder))
    (folder / "klick.yaml").write_text(f"reader:\n  settle_ms: 0\n  grace_ms: 0\npaths:\n  socket: {folder}/b.sock\n")
    bridge = Bridge(load_config(), driver_factory=_Quiet)
    bridge.open()
    thread = threading.Thread(target=bridge.run, kwargs={"handle_signals": False}, daemon=True)
    thread.start()
    yield bridge, thread
    bridge.stop()
    thread.join(10)


class _Quiet:
    """A driver that reports connected and then waits."""

    def __init__(self, reader, sink) -> None:
        self.sink = sink

    def run(self, stop: threading.Event) -> None:
        self.sink.status("connected", "Quiet reader.", "slot")
        stop.wait()


command_like = st.fixed_dictionaries(
    {"command": st.one_of(st.sampled_from(["status", "insert", "hello", "remove", "fly"]), st.text(max_size=30), json_values)},
    optional={"uid": json_values, "client": json_values},
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        command_like.map(lambda v: json.dumps(v).encode()),
        json_values.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")),
        st.binary(max_size=300),
        st.integers(1, 5000).map(lambda n: b"[" * n),
    )
)
def test_no_client_line_ends_the_bridge(in_process, line):
    bridge, thread = in_process
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(bridge.cfg.paths.socket))
        try:
            s.sendall(line.replace(b"\n", b" ") + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
    assert thread.is_alive()
    assert request(bridge.cfg.paths.socket, {"command": "status"})["ok"] is True


# --- item 4: many clients ----------------------------------------------------------------------


@pytest.mark.slow
def test_1100_connections_under_a_low_file_limit_cost_little_cpu_and_log_and_the_launcher_keeps_its_events(folder):
    s = hostile.hostile_clients(folder, connections=1100, nofile=64, cards=10, window=6.0)
    assert s["alive"] and s["survived_poison"], s["log"][-2000:]
    assert s["cpu"] / s["wall"] < 0.25, (s["cpu"], s["wall"])
    assert s["log_lines"] <= 10, s["log"][-3000:]
    assert s["delivered"] == s["cards"] and s["reconnects"] == 0
    assert "room for 32 clients" in s["log"]  # the cap follows the open-file limit, and says so


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.slow
def test_running_out_of_file_descriptors_pauses_accepting_instead_of_spinning(folder):
    hostile.raise_own_nofile(600)
    bridge = hostile.BridgeProcess(folder)
    launcher = hostile.Launcher(bridge.socket)
    held: list[socket.socket] = []
    try:
        pid = bridge.proc.pid
        _, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        # The limit drops under the bridge's feet: its client cap (64) no longer fits, so
        # accept() itself fails with EMFILE, as it would if something else ate the descriptors.
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (_open_fds(pid) + 4, hard))
        lines_before, cpu_before, started = bridge.log_lines(), bridge.cpu(), time.monotonic()
        held, _refused = hostile.connection_flood(bridge.socket, 500)
        cards = 0
        while time.monotonic() - started < 5.0:
            assert launcher.card(f"0A{cards:06X}"), bridge.log.read_text()[-3000:]
            cards += 1
            time.sleep(0.1)  # a resident's pace, well inside the bridge's 50 lines a second
        wall = time.monotonic() - started
        cpu = bridge.cpu() - cpu_before
        assert cpu / wall < 0.25, (cpu, wall, bridge.log.read_text()[-2000:])
        assert bridge.log_lines() - lines_before <= 10, bridge.log.read_text()[-3000:]
        assert "not accepting for" in bridge.log.read_text()
        assert launcher.reconnects == 0
        # Room again: new clients get in without the bridge being restarted.
        for s in held:
            s.close()
        held = []
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (1024, hard))
        deadline = time.monotonic() + 15
        while not bridge.alive:
            assert time.monotonic() < deadline, "no new client got in after the limit was raised"
            time.sleep(0.2)
    finally:
        for s in held:
            s.close()
        launcher.stop()
        assert bridge.stop() == 0


def test_when_full_the_oldest_silent_client_goes_and_never_the_launcher(folder, monkeypatch):
    monkeypatch.setenv("KLICK_HOME", str(folder))
    (folder / "klick.yaml").write_text(f"reader:\n  settle_ms: 0\n  grace_ms: 0\npaths:\n  socket: {folder}/b.sock\n")
    cfg = load_config()
    cfg = replace(cfg, bridge=replace(cfg.bridge, max_clients=4))
    bridge = Bridge(cfg, driver_factory=_Quiet)
    bridge.open()
    thread = threading.Thread(target=bridge.run, kwargs={"handle_signals": False}, daemon=True)
    thread.start()
    path = cfg.paths.socket

    def until(predicate) -> None:
        deadline = time.monotonic() + 5
        while not predicate():
            assert time.monotonic() < deadline
            time.sleep(0.01)

    def raw() -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(str(path))
        s.recv(65536)  # the greeting
        return s

    def hung_up(s: socket.socket) -> bool:
        s.settimeout(0.5)
        try:
            return s.recv(65536) == b""
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True

    got: queue.SimpleQueue = queue.SimpleQueue()
    launcher = BridgeClient(path, got.put, hello="launcher")
    try:
        launcher.start()
        assert isinstance(got.get(timeout=5), ReaderStatus)
        until(lambda: launcher.kept is True)  # the bridge answered our hello: it keeps us
        talker = raw()
        talker.sendall(b'{"command": "status"}\n')
        talker.recv(65536)
        silent_old, silent_new = raw(), raw()
        until(lambda: bridge.server.client_count == 4)
        newcomer = raw()  # one too many: the oldest client that never said anything goes
        assert hung_up(silent_old) and not hung_up(silent_new) and not hung_up(talker)
        another = raw()  # then the next silent one...
        assert hung_up(silent_new)
        third = raw()
        assert hung_up(newcomer) and not hung_up(talker)
        talker.sendall(b'{"command": "status"}\n')  # ...and of those that spoke, the one idle the longest
        talker.recv(65536)
        another.sendall(b'{"command": "status"}\n')
        another.recv(65536)
        third.sendall(b'{"command": "status"}\n')
        third.recv(65536)
        fourth = raw()
        assert hung_up(talker) and not hung_up(another) and not hung_up(third)
        assert launcher.connected and bridge.server.evicted == 4
        # A client that says hello under another name is not kept.
        reply = _reply_to(path, b'{"command": "hello", "client": "watch"}')
        assert reply == {"reply": "hello", "ok": True, "client": "watch", "kept": False}
        for s in (talker, silent_old, silent_new, newcomer, another, third, fourth):
            s.close()
        events = iter_events(path, timeout=5, hello="watch")
        assert isinstance(next(events), ReaderStatus)  # the greeting is unchanged by a hello
        assert bridge.server.client_count <= 4
        events.close()
    finally:
        launcher.stop()
        bridge.stop()
        thread.join(10)


def test_the_bridge_unit_leaves_room_for_every_client_count_the_settings_allow(tmp_path):
    from firmware_bridge.server import FD_RESERVE
    from klick.config import ConfigError

    unit = (Path(__file__).resolve().parent.parent / "config/systemd/klick-bridge.service").read_text()
    limit = int(next(line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("LimitNOFILE=")))
    settings = tmp_path / "klick.yaml"
    settings.write_text("bridge:\n  max_clients: 1000\n")
    assert load_config(settings).bridge.max_clients == 1000
    settings.write_text("bridge:\n  max_clients: 1001\n")
    with pytest.raises(ConfigError):
        load_config(settings)
    assert limit == 1000 + FD_RESERVE
