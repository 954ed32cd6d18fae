"""`klick launcher` as an installer meets it: no screen, the demo, a broken card file, no Kivy
loaded by the rest of the CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_klick


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
    log = (demo / "bridge.log").read_text()
    assert "Klick bridge stopped" in log
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with pytest.raises(OSError):
        probe.connect(str(sock))
    probe.close()


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
