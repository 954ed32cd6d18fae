"""The real launcher, headless, on a card file that breaks: at start, while it runs, and after a
restart; a call card whose server is not allowed; carer PIN guesses that survive a restart; an
error that reaches Kivy's loop. A real bridge, a real card file, a real usage database, pixels
under artifacts/screens/.

Like tests/test_launcher_ui.py, this file starts itself as a script (one Kivy app per process),
here twice on the same home: the second run is the restart.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # when run as the launcher's script

from tests.launcher_harness import offscreen_env, run_scenario, said, start_bridge, stop_bridge  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts" / "screens"
ANNA, CARER, FAR_CALL = "04A2B3C4D5E680", "04CA4E4000000001", "04B1C2D3E4F501"
PIN = "2468"
CONTACT = "Eva i hemtjänsten, 042-10 20 30"

GOOD = f"""version: 1
cards:
  - uid: "{ANNA}"
    label: Anna
    colour: blue
    action:
      type: web
      url: https://www.example.se/anna
  - uid: "{FAR_CALL}"
    label: Kalle
    colour: green
    action:
      type: video_call
      provider: jitsi
      server: https://meet.evil.example
      room: kalle
  - uid: "{CARER}"
    label: Personal
    role: carer
"""
BROKEN_AT_START = GOOD.replace("colour: blue", "colour: 2024-13-01")
BROKEN_WHILE_RUNNING = GOOD.replace("label: Anna", "label: 2024-02-30")

pytestmark = pytest.mark.ui


def write_home(home: Path) -> None:
    from klick.pin import hash_pin

    (home / "cards.yaml").write_text(BROKEN_AT_START, encoding="utf-8")
    # The "browser" (the demo's stand-in) notes every address it is asked to open, over the
    # launcher's DevTools pipe, in launcher-actions.log, then waits like a real one.
    browser = [sys.executable, "-m", "launcher.demo_browser"]
    (home / "klick.yaml").write_text(
        f"""reader:
  driver: sim
  grace_ms: 0
locale: sv
help_contact: "{CONTACT}"
browser:
  command: {json.dumps(browser)}
paths:
  socket: {home / "b.sock"}
pilot:
  device_name: test-card-file
  enrolled: true
carer:
  pin_hash: "{hash_pin(PIN)}"
calls:
  allowed_servers: [https://meet.example.se]
""",
        encoding="utf-8",
    )


# --- the driver (runs in the subprocess) -------------------------------------------------------


def _drive(home: Path, out: Path, part: str) -> None:
    offscreen_env(home)
    from klick.config import load_config
    from launcher.kivy_setup import configure_kivy

    cfg = load_config(home / "klick.yaml")
    bridge = start_bridge(home)
    configure_kivy(cfg, offscreen=True)
    from kivy.clock import Clock
    from kivy.uix.label import Label

    from klick.atomic import write_atomic
    from launcher import session as S
    from launcher.app import LauncherApp
    from launcher.screens.widgets import BigButton

    results: dict = {"steps": [], "errors": [], "log": []}

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            results["log"].append([record.levelname, record.getMessage(), record.exc_info is not None])

    klick_log = logging.getLogger("klick")
    klick_log.addHandler(Keep())
    klick_log.setLevel(logging.INFO)

    def texts(app: LauncherApp) -> list[str]:
        return [said(w) for w in app.root_widget.walk(restrict=True) if isinstance(w, Label) and w.text.strip()]

    def press(app: LauncherApp, text: str) -> None:
        found = [w for w in app.root_widget.walk(restrict=True) if isinstance(w, BigButton) and w.words == text]
        assert found, f"no button {text!r} on {texts(app)}"
        found[0].dispatch("on_press")
        found[0].dispatch("on_release")

    def shot(app: LauncherApp, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        app.screenshot(ARTIFACTS / f"{name}.png")

    def first_run(app: LauncherApp):
        session = app.session

        def on(kind: type) -> bool:
            return isinstance(session.screen, kind)

        # 1. Broken at start, never a good set: the calm screen, and the launcher runs on.
        yield lambda: session.bridge_connected and session.reader == "connected"
        yield 0.3
        results["start_screen"] = repr(session.screen)
        results["start_texts"] = texts(app)
        shot(app, "cards_unreadable")
        app.send_to_bridge({"command": "insert", "uid": ANNA})
        yield lambda: session.present == ANNA
        yield 0.2
        results["card_while_unreadable"] = repr(session.screen)
        app.send_to_bridge({"command": "remove"})
        yield lambda: session.present is None
        results["steps"].append("unreadable")

        # 2. The file is fixed: home returns by itself.
        write_atomic(home / "cards.yaml", GOOD)
        yield lambda: on(S.Home) and session.card_file == "ok"
        results["steps"].append("fixed")

        # 3. Broken while running: the last good cards stay in use, home stays home.
        write_atomic(home / "cards.yaml", BROKEN_WHILE_RUNNING)
        yield lambda: session.card_file == "kept"
        yield 0.3
        results["kept_screen"] = repr(session.screen)
        shot(app, "home_card_file_kept")
        app.send_to_bridge({"command": "insert", "uid": ANNA})
        yield lambda: on(S.ShowingCard) and session.screen.phase == "running"
        results["kept_card_label"] = session.screen.card.label
        opened = home / "launcher-actions.log"  # the page is opened over the pipe once the browser is up
        yield lambda: opened.is_file() and "https://www.example.se/anna" in opened.read_text(encoding="utf-8")
        app.send_to_bridge({"command": "remove"})
        yield lambda: on(S.Home)
        results["steps"].append("kept")

        # 4. Carer mode tells the carer.
        app.send_to_bridge({"command": "insert", "uid": CARER})
        yield lambda: on(S.CarerPin)
        for d in PIN:
            press(app, d)
        press(app, "OK")
        yield lambda: on(S.CarerMode)
        yield 0.3
        results["carer_texts"] = texts(app)
        shot(app, "carer_mode_card_file_mistake")
        app.send_to_bridge({"command": "remove"})
        yield lambda: on(S.Home)
        results["steps"].append("carer")

        # 5. A call to a server the installer did not list: the failed screen, never the browser.
        app.send_to_bridge({"command": "insert", "uid": FAR_CALL})
        yield lambda: on(S.ActionFailed)
        yield 0.3
        results["far_call_reason"] = session.screen.reason
        results["far_call_texts"] = texts(app)
        shot(app, "call_server_not_allowed")
        app.send_to_bridge({"command": "remove"})
        yield lambda: on(S.Home)
        results["steps"].append("far_call")

        # 6. An error that reaches Kivy's loop: logged, and the launcher carries on.
        def broken(_dt: float) -> None:
            raise ZeroDivisionError("a bug somewhere")

        Clock.schedule_once(broken, 0)
        yield 0.3
        app.send_to_bridge({"command": "insert", "uid": ANNA})
        yield lambda: on(S.ShowingCard)
        app.send_to_bridge({"command": "remove"})
        yield lambda: on(S.Home)
        results["steps"].append("survived")

        # 7. Three wrong PINs, then the launcher is closed (and started again in the second run).
        app.send_to_bridge({"command": "insert", "uid": CARER})
        yield lambda: on(S.CarerPin)
        for _ in range(3):
            for d in "1111":
                press(app, d)
            press(app, "OK")
            yield lambda: not session.pin_pending
            yield 0.1
        yield lambda: on(S.Home) and session.screen.notice
        app.send_to_bridge({"command": "remove"})
        yield 0.3
        results["steps"].append("wrong_pins")

    def second_run(app: LauncherApp):
        session = app.session
        yield lambda: session.bridge_connected and session.reader == "connected"
        yield 0.3
        results["restart_screen"] = repr(session.screen)
        results["restart_card_file"] = session.card_file
        app.send_to_bridge({"command": "insert", "uid": CARER})
        yield lambda: session.present == CARER
        yield 0.3
        results["restart_carer_screen"] = repr(session.screen)
        results["restart_texts"] = texts(app)
        shot(app, "carer_pin_paused_after_restart")
        app.send_to_bridge({"command": "remove"})
        yield 0.2
        results["steps"].append("restarted")

    def probe(app: LauncherApp) -> None:
        run_scenario(app, (first_run if part == "first" else second_run)(app), results, out, timeout=60)

    try:
        LauncherApp(cfg, probe=probe).run()
    finally:
        stop_bridge(bridge)


# --- the tests (pytest side) ---------------------------------------------------------------------


def _run(home: Path, part: str) -> dict:
    out = home / f"results-{part}.json"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["KLICK_HOME"] = str(home)
    proc = subprocess.run(
        [sys.executable, __file__, str(home), str(out), part], capture_output=True, text=True, timeout=150, env=env, cwd=REPO
    )
    assert out.exists(), f"the launcher run wrote no results (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    results = json.loads(out.read_text())
    results["returncode"] = proc.returncode
    return results


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("card_file_ui")
    write_home(home)
    first = _run(home, "first")
    second = _run(home, "second")
    return {"home": home, "first": first, "second": second}


def test_both_runs_went_through_without_errors(runs):
    assert runs["first"]["errors"] == [] and runs["first"]["returncode"] == 0
    assert runs["first"]["steps"] == ["unreadable", "fixed", "kept", "carer", "far_call", "survived", "wrong_pins"]
    assert runs["second"]["errors"] == [] and runs["second"]["steps"] == ["restarted"]


def test_a_card_file_broken_at_start_shows_the_calm_screen_and_keeps_running(runs):
    first = runs["first"]
    assert first["start_screen"] == "CardsUnreadable()"
    assert "Korten kan inte läsas just nu." in first["start_texts"]
    assert f"Behöver du hjälp? Ring {CONTACT}." in first["start_texts"]
    assert first["card_while_unreadable"] == "CardsUnreadable()"  # a card changes nothing, breaks nothing
    assert (ARTIFACTS / "cards_unreadable.png").stat().st_size > 2000
    mistakes = [m for level, m, tb in first["log"] if "card file has a mistake" in m]
    assert len(mistakes) == 2  # once at start, once for the break while running: not every poll
    assert all(level == "ERROR" and "\n" not in m for level, m, _ in first["log"] if "card file has a mistake" in m)


def test_a_card_file_broken_while_running_keeps_the_last_good_cards(runs):
    first = runs["first"]
    assert "fixed" in first["steps"]  # home came back by itself when the file was fixed
    assert first["kept_screen"] == "Home(notice='')"
    assert first["kept_card_label"] == "Anna"
    assert (Path(runs["home"]) / "cards.yaml.last-good").read_text(encoding="utf-8") == GOOD


def test_carer_mode_says_the_card_file_has_a_mistake(runs):
    assert "Kortfilen har ett fel. Surfplattan använder korten den hade." in runs["first"]["carer_texts"]


def test_a_call_to_a_server_not_allowed_shows_the_failed_screen_and_never_starts_the_browser(runs):
    first, home = runs["first"], Path(runs["home"])
    assert first["far_call_reason"] == "server_not_allowed"
    assert "Surfplattan är inte inställd för det här samtalet. Be din kontaktperson om hjälp." in first["far_call_texts"]
    opened = (home / "launcher-actions.log").read_text(encoding="utf-8")
    assert "https://www.example.se/anna" in opened and "evil" not in opened
    db = sqlite3.connect(home / "usage.db")
    rows = db.execute("SELECT uid, outcome, detail FROM events WHERE kind = 'action_failed'").fetchall()
    assert rows == [(FAR_CALL, "server_not_allowed", "https://meet.evil.example")]
    assert any("not in calls.allowed_servers" in m for _, m, _ in first["log"])


def test_an_error_in_kivys_loop_is_logged_in_one_line_and_the_launcher_carries_on(runs):
    first = runs["first"]
    assert "survived" in first["steps"]
    caught = [(level, tb) for level, m, tb in first["log"] if "ZeroDivisionError: a bug somewhere" in m and "carries on" in m]
    assert caught == [("ERROR", False)]


def test_the_carer_pin_pause_survives_a_restart(runs):
    second = runs["second"]
    assert second["restart_card_file"] == "kept"  # started on the broken file: the last good copy
    assert second["restart_screen"] == "Home(notice='')"
    assert second["restart_carer_screen"] == "Home(notice='carer_paused')"
    assert any("inte rätt kod" in t for t in second["restart_texts"])


if __name__ == "__main__":
    _drive(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
