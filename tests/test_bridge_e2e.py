"""`klick bridge` as a real process: pty, serial driver, socket, CLI, signals.

The reader is the firmware simulator on a real pseudo-terminal behind a symlink (as udev's
/dev/klick-reader would be), so the bytes go through pyserial, the wire protocol, the
place-and-lift machine and the socket exactly as on the appliance.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from firmware_bridge.simulator import Simulator
from klick.bridge_client import BridgeUnavailable, iter_events, request
from klick.events import CardPresent, CardRemoved, ReaderStatus

#: The CLI as the installed entry point runs it, from whichever interpreter runs the tests.
KLICK = [sys.executable, "-c", "from klick.cli import main; main()"]


@pytest.fixture
def home(tmp_path, monkeypatch):
    short = Path(f"/tmp/klick-e2e-{os.getpid()}-{id(tmp_path) % 100000}")
    short.mkdir()
    monkeypatch.setenv("KLICK_HOME", str(tmp_path))
    (tmp_path / "klick.yaml").write_text(
        "reader:\n  driver: serial\n  device: {dev}\n  settle_ms: 80\n  grace_ms: 300\npaths:\n  socket: {sock}\n".format(
            dev=short / "klick-reader", sock=short / "bridge.sock"
        )
    )
    yield tmp_path
    for child in short.iterdir():
        child.unlink()
    short.rmdir()


class Bridge:
    def __init__(self, home: Path, *args: str) -> None:
        self.home = home
        self.socket = Path(f"/tmp/klick-e2e-{os.getpid()}-{id(home) % 100000}") / "bridge.sock"
        self.log = home / "bridge.log"
        self.proc = subprocess.Popen(
            [*KLICK, "bridge", *args], stdout=subprocess.DEVNULL, stderr=self.log.open("wb"), env=dict(os.environ)
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                request(self.socket, {"command": "status"}, timeout=2)
                return
            except (BridgeUnavailable, TimeoutError):
                assert self.proc.poll() is None, f"the bridge exited: {self.log.read_text()}"
                assert time.monotonic() < deadline, "the bridge did not start"
                time.sleep(0.05)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(10)


@pytest.fixture
def running(home):
    bridges: list[Bridge] = []

    def start(*args: str) -> Bridge:
        bridges.append(Bridge(home, *args))
        return bridges[-1]

    yield start
    for b in bridges:
        if b.proc.poll() is None:
            b.proc.kill()
            b.proc.wait()


def wait_for(events, cls, **fields):
    for event in events:
        if isinstance(event, cls) and all(getattr(event, k) == v for k, v in fields.items()):
            return event
    raise AssertionError(f"stream ended before {cls.__name__} {fields}")


def klick(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([*KLICK, *args], capture_output=True, text=True, timeout=timeout)


def test_card_in_and_out_then_unplug_and_a_new_reader_without_restart(home, running):
    link = Path(f"/tmp/klick-e2e-{os.getpid()}-{id(home) % 100000}") / "klick-reader"
    sim = Simulator(link=link).start()
    bridge = running()
    try:
        events = iter_events(bridge.socket, timeout=10)
        wait_for(events, ReaderStatus, state="connected")
        sim.insert("04A2B3C4D5E680")
        present = wait_for(events, CardPresent)
        assert present.uid == "04A2B3C4D5E680" and present.reader == "reader"
        sim.remove()
        assert wait_for(events, CardRemoved).uid == "04A2B3C4D5E680"

        sim.insert("0A0B0C0D")
        wait_for(events, CardPresent, uid="0A0B0C0D")
        sim.close()  # the cable is pulled: the pty closes
        lost = wait_for(events, ReaderStatus, state="lost")
        assert lost.detail
        assert wait_for(events, CardRemoved).uid == "0A0B0C0D"  # after the grace time

        sim = Simulator(link=link).start()  # plugged back in: a new pty behind the same path
        wait_for(events, ReaderStatus, state="connected")
        sim.insert("11223344")
        wait_for(events, CardPresent, uid="11223344")
        assert bridge.proc.poll() is None  # the same process all along
    finally:
        sim.close()
    assert bridge.stop() == 0
    assert not bridge.socket.exists()
    log = bridge.log.read_text()
    assert "card in   04A2B3C4D5E680" in log and "Traceback" not in log


def test_sim_driver_through_the_cli(home, running):
    bridge = running("--driver", "sim")
    watch = subprocess.Popen([*KLICK, "watch"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        events = iter_events(bridge.socket, timeout=10)
        wait_for(events, ReaderStatus, state="connected")

        done = klick("simulate", "insert", "04:a2:b3:c4")
        assert done.returncode == 0, done.stderr
        assert "04A2B3C4" in done.stdout
        wait_for(events, CardPresent, uid="04A2B3C4")

        bad = klick("simulate", "insert", "hello")
        assert bad.returncode == 2 and "not a card ID" in bad.stderr and "Traceback" not in bad.stderr

        assert klick("simulate", "remove").returncode == 0
        wait_for(events, CardRemoved, uid="04A2B3C4")

        assert klick("simulate", "unplug").returncode == 0
        wait_for(events, ReaderStatus, state="lost")
        assert klick("simulate", "replug").returncode == 0
        wait_for(events, ReaderStatus, state="connected")

        again = klick("bridge", "--driver", "sim")
        assert again.returncode == 1 and "already running" in again.stderr
    finally:
        time.sleep(0.3)
        watch.send_signal(signal.SIGINT)
        out, _ = watch.communicate(timeout=10)
    lines = out.splitlines()
    assert any(line.endswith("card in   04A2B3C4  (reader)") for line in lines), out
    assert any("card out  04A2B3C4" in line for line in lines), out
    assert all(line[:2].isdigit() and line[2] == ":" for line in lines), out
    assert bridge.stop() == 0
    assert not bridge.socket.exists()


def test_watch_json_and_the_not_running_messages(home, running):
    nothing = klick("watch")
    assert nothing.returncode == 1
    assert nothing.stderr.strip().startswith("The card reader bridge is not running")
    sim_off = klick("simulate", "remove")
    assert sim_off.returncode == 1 and "klick bridge --driver sim" in sim_off.stderr

    bridge = running()  # the serial driver, no reader plugged in
    wrong = klick("simulate", "insert", "04A2")
    assert wrong.returncode == 1 and "only the simulated reader" in wrong.stderr
    watch = subprocess.Popen([*KLICK, "watch", "--json"], stdout=subprocess.PIPE, text=True)
    first = json.loads(watch.stdout.readline())
    assert first["event"] == "reader_status" and first["state"] == "searching"
    bridge.stop()
    out, _ = watch.communicate(timeout=10)
    assert watch.returncode == 1


def test_simulate_insert_with_an_odd_number_of_digits_is_refused_in_plain_words(home, running):
    bridge = running("--driver", "sim")
    events = iter_events(bridge.socket, timeout=10)
    wait_for(events, ReaderStatus, state="connected")

    odd = klick("simulate", "insert", "123")
    assert odd.returncode == 2, odd.stderr
    assert "odd number of digits" in odd.stderr and "whole bytes" in odd.stderr
    assert "see its log" not in odd.stderr and "Traceback" not in odd.stderr

    # A client that skips the CLI's check is told the same by the bridge itself.
    reply = request(bridge.socket, {"command": "insert", "uid": "123"})
    assert reply["ok"] is False and "odd number of digits" in reply["error"], reply
    assert request(bridge.socket, {"command": "status"})["present"] is None

    assert klick("simulate", "insert", "0123").returncode == 0
    wait_for(events, CardPresent, uid="0123")
    assert bridge.stop() == 0
    log = bridge.log.read_text()
    assert "Traceback" not in log and "failed" not in log, log
