"""`klick launcher` as an installer meets it: no screen, the demo, a broken card file, no Kivy
loaded by the rest of the CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import KLICK, run_klick

# Measures wall time or CPU: runs alone, after the parallel part of `make test`.
pytestmark = pytest.mark.serial


def _env(tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "KLICK_LAUNCHER_OFFSCREEN")}
    env.update(KIVY_NO_ARGS="1", KIVY_NO_CONSOLELOG="1", KIVY_HOME=str(tmp_path / "kivy"), **extra)
    return env


def test_without_a_display_it_says_so_in_one_line_and_exits_2(tmp_path):
    result = run_klick("launcher", env=_env(tmp_path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "DISPLAY" in lines[0]
    assert "Traceback" not in result.stderr


def test_under_a_compositor_without_xwayland_it_says_so_in_one_line_and_exits_2(tmp_path):
    # cage sets WAYLAND_DISPLAY and DISPLAY; Kivy's SDL can only draw through XWayland there.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = _env(tmp_path, WAYLAND_DISPLAY="wayland-0", DISPLAY=":0", PATH=str(bin_dir))
    result = run_klick("launcher", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "XWayland" in lines[0] and "apt-get install xwayland" in lines[0]


def test_the_cli_never_loads_kivy():
    code = "import sys, klick.cli.launcher_cmd, klick.cli; assert not any(m.startswith('kivy') for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.ui
def test_demo_starts_a_bridge_shows_home_and_stops_the_bridge(tmp_path):
    demo = tmp_path / "demo"
    shot = tmp_path / "home.png"
    result = run_klick(
        "launcher", "--demo", "--offscreen", "--screenshot", str(shot), env=_env(tmp_path, KLICK_DEMO_HOME=str(demo))
    )
    assert result.returncode == 0, result.stderr
    assert shot.stat().st_size > 2000
    config = (demo / "klick.yaml").read_text()
    assert "driver: sim" in config and "demo-cards.yaml" in config
    sock = demo / "bridge.sock"
    assert "Started the card reader bridge" in result.stderr  # its own lines go to the launcher's log
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with pytest.raises(OSError):
        probe.connect(str(sock))
    probe.close()


def _bridge_under(pid: int) -> list:
    from tests.proctree import descendants

    return [p for p in descendants(pid) if _cmdline(p.pid).count(b"bridge") and b"--until-stdin-closes" in _cmdline(p.pid)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@pytest.mark.ui
def test_the_demo_bridge_ends_when_the_launcher_is_killed(tmp_path):
    """The demo's bridge is started the way the carer window's is (klick.bridge_child): a pipe
    only the launcher holds; SIGKILL closes it, and the bridge lets go of the reader and its socket."""
    demo = tmp_path / "demo"
    proc = subprocess.Popen(
        [KLICK, "launcher", "--demo", "--offscreen"],
        env=_env(tmp_path, KLICK_DEMO_HOME=str(demo)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        bridges: list = []
        while time.monotonic() < deadline and not bridges:
            bridges = _bridge_under(proc.pid)
            time.sleep(0.1)
        assert bridges, "the demo started no bridge"
        time.sleep(1.0)  # the launcher is up and connected
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        deadline = time.monotonic() + 10
        from tests.proctree import still_running

        while time.monotonic() < deadline and still_running({b.pid for b in bridges}, set()):
            time.sleep(0.1)
        assert still_running({b.pid for b in bridges}, set()) == []
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with pytest.raises(OSError):
            probe.connect(str(demo / "bridge.sock"))
        probe.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.ui
def test_locale_en_shows_the_launcher_in_english(tmp_path, klick_home):
    shot = tmp_path / "home.png"
    result = run_klick("launcher", "--offscreen", "--locale", "en", "--screenshot", str(shot), env=_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "in English" in result.stderr
    refused = run_klick("launcher", "--offscreen", "--locale", "de", env=_env(tmp_path))
    assert refused.returncode == 2 and "'de' is not one of 'sv', 'en'" in refused.stderr


@pytest.mark.ui
def test_a_broken_card_file_still_gives_a_home_screen(tmp_path, klick_home):
    (klick_home / "cards.yaml").write_text("version: 1\ncards:\n  - uid: nonsense\n", encoding="utf-8")
    shot = tmp_path / "home.png"
    result = run_klick("launcher", "--offscreen", "--screenshot", str(shot), env=_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert shot.stat().st_size > 2000
    assert "card file has a mistake" in result.stderr and "cards.yaml:3" in result.stderr


@pytest.mark.ui
def test_a_card_file_typo_the_validator_raises_on_does_not_stop_klick_launcher(tmp_path, klick_home):
    (klick_home / "cards.yaml").write_text(
        'version: 1\ncards:\n  - uid: "04A2B3C4D5E680"\n    label: Anna\n    colour: 2024-13-01\n'
        "    action: {type: web, url: https://www.smhi.se}\n",
        encoding="utf-8",
    )
    shot = tmp_path / "home.png"
    result = run_klick("launcher", "--offscreen", "--screenshot", str(shot), env=_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert shot.stat().st_size > 2000
    lines = [line for line in result.stderr.splitlines() if "card file" in line]
    assert len(lines) == 1 and "no good cards to use" in lines[0]  # one plain line, without -v
    assert "Traceback" not in result.stderr


# --- stopping: systemctl stop sends SIGTERM, Ctrl+C sends SIGINT ---------------------------------

SLEEPER_UID = "04A2B3C4D5E680"
#: A program with helpers of its own; the stubborn one (and its helpers) ignore SIGTERM.
OBEDIENT = "sleep 300 & sleep 300 & wait"
STUBBORN = "trap '' TERM; sleep 300 & sleep 300 & wait"


def _home_with_a_running_card(home: Path, script: str) -> None:
    (home / "klick.yaml").write_text(
        f"reader:\n  driver: sim\n  grace_ms: 0\nlocale: sv\npaths:\n  socket: {home / 'b.sock'}\n"
        "pilot:\n  device_name: test-stop\n  enrolled: true\n",
        encoding="utf-8",
    )
    (home / "cards.yaml").write_text(
        f'version: 1\ncards:\n  - uid: "{SLEEPER_UID}"\n    label: Radio\n    colour: blue\n'
        f"    action:\n      type: command\n      argv: {json.dumps(['sh', '-c', script])}\n",
        encoding="utf-8",
    )


def _logged(db_path: Path, kind: str) -> bool:
    db = sqlite3.connect(db_path)
    try:
        return db.execute("SELECT count(*) FROM events WHERE kind = ?", (kind,)).fetchone()[0] > 0
    finally:
        db.close()


@pytest.mark.ui
@pytest.mark.parametrize(
    "sig,script,card_out_first",
    [(signal.SIGTERM, STUBBORN, False), (signal.SIGINT, OBEDIENT, False), (signal.SIGTERM, STUBBORN, True)],
    ids=["sigterm-stubborn-program", "sigint", "sigterm-while-the-card-out-stop-waits"],
)
def test_a_stop_signal_ends_the_launcher_and_the_running_cards_whole_tree_within_2_s(
    tmp_path, klick_home, sig, script, card_out_first
):
    from tests.bridge_commands import insert_when_the_reader_is_up, send, wait_for
    from tests.launcher_harness import start_bridge, stop_bridge
    from tests.proctree import descendants, still_running

    _home_with_a_running_card(klick_home, script)
    bridge = start_bridge(klick_home)
    launcher = None
    try:
        insert_when_the_reader_is_up(klick_home / "b.sock", SLEEPER_UID)
        env = _env(tmp_path, KLICK_HOME=str(klick_home), KLICK_LAUNCHER_OFFSCREEN="1")
        launcher = subprocess.Popen([KLICK, "launcher"], env=env, stderr=subprocess.PIPE, text=True)
        # The card's program runs: sh and its two sleeps, in a process group of their own.
        try:
            tree = wait_for(
                lambda: (d := descendants(launcher.pid)) and sum(p.name == "sleep" for p in d) == 2 and d,
                30,
                "the card's program",
            )
        except AssertionError:
            launcher.kill()
            raise AssertionError(f"the card's program did not start:\n{launcher.communicate()[1]}") from None
        pids, groups = {p.pid for p in tree}, {p.pgid for p in tree}
        assert launcher.pid not in groups  # the program's own group, so the launcher can end all of it
        if card_out_first:
            # Card out: the stop runs on a helper thread that waits 3 s before SIGKILL; the
            # launcher must not exit and leave that half done.
            send(klick_home / "b.sock", {"command": "remove"})
            wait_for(lambda: _logged(klick_home / "usage.db", "action_ended"), 10, "the launcher to see the card go")

        started = time.monotonic()
        launcher.send_signal(sig)
        code = launcher.wait(10)
        took = time.monotonic() - started
        stderr = launcher.stderr.read()
    finally:
        if launcher is not None and launcher.poll() is None:
            launcher.kill()
        stop_bridge(bridge)

    assert code == 0, stderr
    assert took < 2.0, f"the launcher took {took:.2f} s to stop"
    assert still_running(pids, groups) == []
    assert f"Stopping on {signal.Signals(sig).name}." in stderr and "Traceback" not in stderr
    # The usage log was finished and closed: the card's end is in it, and no WAL is left over.
    db = sqlite3.connect(klick_home / "usage.db")
    ends = db.execute("SELECT outcome FROM events WHERE kind = 'action_ended'").fetchall()
    db.close()
    assert len(ends) == 1 and (ends[0][0] == "launcher_stopped") != card_out_first
    assert not (klick_home / "usage.db-wal").exists()


def _catches(pid: int, sig: int) -> bool:
    """Whether the process has its own handler for ``sig`` (SigCgt in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)
    return bool(caught >> (sig - 1) & 1)


@pytest.mark.ui
def test_stop_signals_while_it_is_still_starting_are_kept_and_end_it_cleanly(tmp_path, klick_home):
    from tests.bridge_commands import wait_for

    (klick_home / "klick.yaml").write_text(f"reader:\n  driver: sim\npaths:\n  socket: {klick_home / 'b.sock'}\n")
    env = _env(tmp_path, KLICK_HOME=str(klick_home), KLICK_LAUNCHER_OFFSCREEN="1")
    launcher = subprocess.Popen([KLICK, "launcher"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: _catches(launcher.pid, signal.SIGTERM), 20, "the launcher to catch SIGTERM")
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGTERM):  # an impatient stop, mid start-up
            launcher.send_signal(sig)
        code = launcher.wait(30)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    stderr = launcher.stderr.read()
    assert code == 0, stderr
    # Both were pending together; the kernel hands over the lower-numbered SIGINT first.
    assert stderr.count("Stopping on SIG") == 1 and "Traceback" not in stderr
