"""The demo without a browser installed still shows each card while it is in."""

import signal
import subprocess
import sys

from klick.config import load_config
from launcher.demo import prepare_demo_home


def test_demo_uses_the_stand_in_browser_when_none_is_installed(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    demo = prepare_demo_home(tmp_path / "demo")
    cfg = load_config(demo.config)
    assert cfg.browser.command == (sys.executable, "-m", "launcher.demo_browser")


def test_stand_in_stays_open_says_the_address_and_ends_on_sigterm():
    proc = subprocess.Popen(
        [sys.executable, "-m", "launcher.demo_browser", "--kiosk", "https://www.svtplay.se/rapport"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert "https://www.svtplay.se/rapport" in proc.stdout.readline()
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
