"""A bridge started for one session (klick.bridge_child, and the carer tool's CardSource over it):
it serves the settings' reader, ends with the program that started it however that program ends,
leaves nothing behind when the window closes while it starts, and says in plain words why it
could not start. Real `klick bridge` processes, the simulated reader, real sockets."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from klick.bridge_child import BridgeStartError, bridge_answers, start_bridge
from klick.bridge_client import iter_events, request
from klick.config import load_config
from klick.events import CardPresent
from tests.bridge_commands import bridges_of

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def short(klick_home):
    """A short folder for the socket (AF_UNIX paths are limited to 107 bytes) and settings that use it."""
    folder = Path(f"/tmp/klick-child-{os.getpid()}-{time.monotonic_ns() % 10**9}")
    folder.mkdir()
    (klick_home / "klick.yaml").write_text(f"reader:\n  driver: sim\npaths:\n  socket: {folder / 'b.sock'}\n")
    yield folder
    for pid in bridges_of(klick_home / "klick.yaml"):
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(folder, ignore_errors=True)


def _gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def test_the_bridge_serves_the_settings_reader_and_stop_ends_it(short, klick_home):
    cfg = load_config()
    child = start_bridge(cfg)
    assert child is not None and child.running()
    try:
        _until(lambda: request(cfg.paths.socket, {"command": "status"})["state"] == "connected", "the simulated reader ready")
        assert request(cfg.paths.socket, {"command": "insert", "uid": "04C0FFEE01"})["ok"]
        events = iter_events(cfg.paths.socket, timeout=5)
        assert any(isinstance(e, CardPresent) and e.uid == "04C0FFEE01" for e, _ in zip(events, range(5)))
    finally:
        child.stop()
    assert not child.running() and child.proc.returncode == 0  # stopped cleanly, by its stdin closing
    assert not (short / "b.sock").exists()
    assert not bridges_of(klick_home / "klick.yaml")
    child.stop()  # twice is fine


def test_the_bridge_ends_when_the_program_that_started_it_is_killed(short, klick_home):
    """SIGKILL gives the program no chance to clean up: the kernel closing its pipe is what ends the bridge."""
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys, time
                from klick.bridge_child import start_bridge
                from klick.config import load_config
                child = start_bridge(load_config())
                print(child.pid, flush=True)
                time.sleep(600)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert bridge_answers(short / "b.sock")
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert _gone(pid), "the bridge outlived the program that started it"
        assert not (short / "b.sock").exists(), "the bridge did not stop cleanly (its socket is left)"
    finally:
        parent.kill()
        parent.wait()


def test_closing_while_the_bridge_starts_leaves_no_bridge(short, klick_home):
    cfg = load_config()
    for delay in (0.0, 0.05, 0.2):
        cancelled = threading.Event()
        timer = threading.Timer(delay, cancelled.set)
        timer.start()
        try:
            child = start_bridge(cfg, cancelled=cancelled)
        finally:
            timer.cancel()
        if child is not None:  # it answered before the cancel came: the caller stops it
            child.stop()
        time.sleep(0.1)
        assert not bridges_of(klick_home / "klick.yaml"), f"a bridge was left behind (cancelled after {delay} s)"
        assert not bridge_answers(cfg.paths.socket)


@pytest.mark.parametrize(
    "socket",
    ["{folder}/a-file/b.sock", "/tmp/{long}/b.sock"],
    ids=["socket folder is a file", "socket path too long"],
)
def test_a_bridge_that_cannot_start_says_why_in_plain_words(short, klick_home, socket):
    (short / "a-file").write_text("not a folder")
    path = socket.format(folder=short, long="x" * 120)
    (klick_home / "klick.yaml").write_text(f"reader:\n  driver: sim\npaths:\n  socket: {path}\n")
    with pytest.raises(BridgeStartError) as failed:
        start_bridge(load_config())
    reason = failed.value.reason
    assert reason.startswith("Something went wrong on the disk"), reason
    assert "Traceback" not in reason and "Error" not in reason
    assert (failed.value.code, failed.value.where) == ("socket", path)  # for the window to say in its own words
    assert not bridges_of(klick_home / "klick.yaml")


def test_a_bridge_that_never_answers_is_stopped_after_the_timeout(short, klick_home):
    """Settings the bridge reads differently from the tool (here: another socket) must not leave it running."""
    from dataclasses import replace

    cfg = load_config()
    elsewhere = replace(cfg, paths=replace(cfg.paths, socket=short / "other.sock"))
    with pytest.raises(BridgeStartError, match="did not answer on .*other.sock within 3 seconds") as failed:
        start_bridge(elsewhere, timeout=3)
    assert failed.value.code == "timeout"
    assert not bridges_of(klick_home / "klick.yaml")
    assert not (short / "b.sock").exists()


# ---- the carer tool's card source over it -------------------------------------------------------


def _source(cfg):
    from cards.carer.reader import CardSource

    states: list[tuple[str, str, str]] = []
    seen: list[str] = []
    return CardSource(cfg, seen.append, lambda *s: states.append(s)), states, seen


def _until(predicate, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_the_carer_tool_uses_a_running_bridge_and_never_stops_it(short, klick_home):
    """A bridge that is not the tool's own (systemd's on a tablet) is used, and left running."""
    cfg = load_config()
    other = start_bridge(cfg)
    assert other is not None
    try:
        source, states, seen = _source(cfg)
        source.start()
        try:
            _until(lambda: ("bridge", "connected") in [s[:2] for s in states], "connected to the running bridge")
            assert source.bridge_pid is None  # it started none
            assert not any(s[1] == "starting" for s in states)
            request(cfg.paths.socket, {"command": "insert", "uid": "04C0FFEE02"})
            _until(lambda: seen == ["04C0FFEE02"], "the card through the running bridge")
        finally:
            source.stop()
        assert other.running() and bridge_answers(cfg.paths.socket)
    finally:
        other.stop()


def test_the_carer_tools_own_bridge_is_started_again_when_it_dies(short, klick_home):
    cfg = load_config()
    source, states, seen = _source(cfg)
    source.start()
    try:
        _until(lambda: source.bridge_pid is not None and ("bridge", "connected") in [s[:2] for s in states], "own bridge")
        first = source.bridge_pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        _until(lambda: source.bridge_pid not in (None, first), "a new bridge after the first died")
        _until(lambda: bridge_answers(cfg.paths.socket), "the new bridge answers")
        _until(lambda: states[-1][:2] == ("bridge", "connected"), "connected again")
        request(cfg.paths.socket, {"command": "insert", "uid": "04C0FFEE03"})
        _until(lambda: "04C0FFEE03" in seen, "a card through the new bridge")
        assert any("starting it again" in s[2] or "startas igen" in s[2] for s in states), states
    finally:
        source.stop()
    assert not bridges_of(klick_home / "klick.yaml")


def test_the_carer_tool_says_in_plain_words_when_its_bridge_cannot_start(short, klick_home):
    (short / "a-file").write_text("not a folder")
    (klick_home / "klick.yaml").write_text(
        f"locale: en\nreader:\n  driver: sim\npaths:\n  socket: {short / 'a-file' / 'b.sock'}\n"
    )
    cfg = load_config()
    source, states, _ = _source(cfg)
    source.start()
    try:
        _until(lambda: any(s[1] == "lost" for s in states), "the failure reported")
    finally:
        source.stop()
    via, state, detail = states[-1]
    assert (via, state) == ("bridge", "lost")
    assert detail == (
        "The Klick bridge did not start, so the reader cannot be used. It cannot open the reader's connection at "
        f"{short / 'a-file' / 'b.sock'}. Ask whoever installed Klick to change paths.socket in the settings."
    )


def test_a_bridge_told_to_wait_on_a_stdin_that_never_closes_refuses_in_plain_words(short, klick_home):
    """`--until-stdin-closes` with a file (here /dev/null) as stdin: nothing could ever end the bridge."""
    done = subprocess.run(
        [sys.executable, "-c", "from klick.cli import main; main()", "bridge", "--until-stdin-closes"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "--until-stdin-closes needs stdin to be a pipe from the program that starts the bridge; a file never closes.\n"
    )
    assert not (short / "b.sock").exists()


def test_a_bridge_whose_starter_closed_the_pipe_already_stops_at_once(short, klick_home):
    read_end, write_end = os.pipe()
    os.close(write_end)
    try:
        done = subprocess.run(
            [sys.executable, "-c", "from klick.cli import main; main()", "bridge", "--until-stdin-closes"],
            stdin=read_end,
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        os.close(read_end)
    assert done.returncode == 0, done.stderr
    assert "the program that started this bridge has ended" in done.stderr
    assert not (short / "b.sock").exists()


def test_only_the_bridges_plain_sentence_is_a_reason_never_a_python_error():
    from klick.bridge_child import _plain

    assert _plain(["INFO Klick bridge listening on /x.", "Something went wrong on the disk: No space left."]) == (
        "Something went wrong on the disk: No space left."
    )
    assert _plain(["INFO Starting.", "WARNING The reader is busy."]) == "The reader is busy."
    assert _plain(["Traceback (most recent call last):", '  File "x.py", line 1', "KeyError: 'reader'"]) == ""
    assert _plain([]) == "" and _plain(["", "   "]) == ""
