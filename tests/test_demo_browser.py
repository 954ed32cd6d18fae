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


def test_the_demo_opens_the_real_chromium_and_as_root_only_without_its_sandbox(tmp_path, monkeypatch, caplog):
    import logging
    import os

    from klick.config import DEFAULT_BROWSER, shipped_config_dir

    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "chromium").write_text("#!/bin/sh\n")
    (folder / "chromium").chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with caplog.at_level(logging.WARNING, logger="klick.launcher.demo"):
        as_root = load_config(prepare_demo_home(tmp_path / "root").config).browser.command
    assert as_root == ("chromium", *DEFAULT_BROWSER[1:], "--no-sandbox")
    assert [r.message for r in caplog.records if "--no-sandbox" in r.message]  # said, once, in plain words
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert load_config(prepare_demo_home(tmp_path / "user").config).browser.command == ("chromium", *DEFAULT_BROWSER[1:])
    # Never on the appliance: neither the default nor any shipped setting turns the sandbox off.
    assert "--no-sandbox" not in DEFAULT_BROWSER
    for shipped in ("klick.yaml", "appliance/klick.yaml"):
        assert "no-sandbox" not in (shipped_config_dir() / shipped).read_text()


def test_the_stand_in_answers_the_launchers_devtools_pipe(tmp_path):
    from launcher.browser import BrowserRun
    from launcher.demo_browser import answer

    assert answer({"id": 3, "method": "Page.navigate", "params": {"url": "https://x.se/"}})[0]["id"] == 3
    assert answer({"id": 4, "method": "Unknown.thing", "sessionId": "s"}) == [{"id": 4, "result": {}, "sessionId": "s"}]
    from launcher.actions import BrowserPage

    got: list = []
    page = BrowserPage(
        (sys.executable, "-m", "launcher.demo_browser", "--remote-debugging-pipe"), "https://x.se/", tmp_path / "p"
    )
    run = BrowserRun(page, load_timeout=10, on_verdict=got.append, log_file=tmp_path / "log").start()
    try:
        import time

        deadline = time.monotonic() + 10
        while "a tablet would open https://x.se/" not in ((tmp_path / "log").read_text() if (tmp_path / "log").exists() else ""):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert run.version == "Klick demo stand-in" and got == [] and run.poll() is None
    finally:
        run.stop(wait=True)
    assert run.poll() is not None
