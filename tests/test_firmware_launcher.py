"""Issue 7's whole chain: the reference firmware (under CPython, fake board) → a pty → the real
`klick bridge` → the real launcher, offscreen: a card slotted into the fake reader puts its card
screen up, and taking it out brings home back.

The launcher runs in its own process (one Kivy app per process): this file is also the script
that process runs. It waits for the bridge, says "ready", and records each screen it shows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # when run as the launcher's script

from tests.test_firmware import board, pico_reader  # noqa: E402,F401  (fixtures)

ARTIFACTS = REPO / "artifacts" / "screens"
UID = "04A2B3C4D5E680"

pytestmark = pytest.mark.ui


def _launcher(home: Path, out: Path) -> None:
    os.environ.update(
        KLICK_HOME=str(home),
        KIVY_NO_ARGS="1",
        KIVY_NO_CONSOLELOG="1",
        KIVY_NO_FILELOG="1",
        KIVY_HOME=str(home / "kivy"),
        KLICK_LAUNCHER_OFFSCREEN="1",
    )
    os.environ.pop("DISPLAY", None)
    from klick.config import load_config
    from launcher.kivy_setup import configure_kivy

    cfg = load_config(home / "klick.yaml")
    configure_kivy(cfg, offscreen=True)
    from kivy.clock import Clock

    from launcher import session as S
    from launcher.app import LauncherApp

    seen: list[str] = []

    def write() -> None:
        out.write_text(json.dumps({"seen": seen}), encoding="utf-8")

    def probe(app: LauncherApp) -> None:
        deadline = time.monotonic() + 60

        def shown(name: str, *_: object) -> None:
            seen.append(name)
            if name == "card":
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                app.screenshot(ARTIFACTS / "firmware_card.png")
                seen.append("label:" + app.session.screen.card.label)
            write()

        def tick(_dt: float) -> None:
            s = app.session
            if "ready" not in seen and isinstance(s.screen, S.Home) and s.reader == "connected" and s.bridge_connected:
                seen.append("ready")
                write()
            if "card" in seen and seen[-1] == "home" or time.monotonic() > deadline:
                write()
                app.quit()

        app.shown_listeners.append(shown)
        Clock.schedule_interval(tick, 0.05)

    LauncherApp(cfg, probe=probe).run()


def _wait_for(out: Path, word: str, proc: subprocess.Popen, timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.exists():
            seen = json.loads(out.read_text() or "{}").get("seen", [])
            if word in seen:
                return seen
        assert proc.poll() is None or word == "home-again", proc.stderr.read()[-3000:] if proc.stderr else ""
        time.sleep(0.05)
    raise AssertionError(f"the launcher never showed {word!r}; it saw {out.read_text() if out.exists() else 'nothing'}")


def test_a_card_in_the_firmware_reader_shows_its_card_screen(pico_reader, tmp_path):
    board, _socket = pico_reader
    home = Path(os.environ["KLICK_HOME"])
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    (home / "cards.yaml").write_text(
        f'cards:\n  - uid: "{UID}"\n    label: Anna\n    colour: blue\n'
        f"    action:\n      type: command\n      argv: {json.dumps(sleeper)}\n",
        encoding="utf-8",
    )
    out = tmp_path / "seen.json"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.Popen(
        [sys.executable, __file__, str(home), str(out)],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(out, "ready", proc)
        board.insert(UID)
        seen = _wait_for(out, "label:Anna", proc)
        assert seen[seen.index("card") - 1] != "unknown"
        board.remove()
        proc.wait(timeout=60)
        seen = json.loads(out.read_text())["seen"]
        assert seen[-1] == "home" and "card" in seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    _launcher(Path(sys.argv[1]), Path(sys.argv[2]))
