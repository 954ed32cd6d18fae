"""The real launcher, headless: a real bridge, real events, real pixels, a real usage database.

One Kivy app per process: the module starts this same file as a script in a subprocess, which
runs the launcher offscreen (SDL draws into memory) next to a real `klick bridge` with the
simulated reader, drives it through every screen, saves a PNG of each under
artifacts/screens/, and writes what it saw to a JSON file. The tests below read that file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # when run as the launcher's script

from tests.launcher_harness import offscreen_env, run_as_script, run_scenario, said, start_bridge, stop_bridge  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts" / "screens"
ANNA, RAPPORT, ALBUM = "04A2B3C4D5E680", "04B1C2D3E4F501", "04D3E4F5061728"
MISSING_PROGRAM_CARD, UNKNOWN = "04E0E1E2E3E4E5", "04FFFFFFFFFF01"

pytestmark = pytest.mark.ui


def write_home(home: Path) -> Path:
    """Settings, cards and questionnaire for the run; the browser is a harmless long sleep."""
    demo = (REPO / "config" / "demo-cards.yaml").read_text(encoding="utf-8")
    cards = demo.replace("picture: demo/", f"picture: {REPO}/config/demo/").replace(
        "folder: demo/", f"folder: {REPO}/config/demo/"
    )
    cards += f"""
  - uid: "{MISSING_PROGRAM_CARD}"
    label: Radio
    colour: orange
    action:
      type: command
      argv: ["/nonexistent/klick-no-such-radio", "--play"]
"""
    (home / "cards.yaml").write_text(cards, encoding="utf-8")
    (home / "questionnaire.yaml").write_text(
        """version: 1
limits:
  per_day: 10
  quiet_hours: none
questions:
  - id: how_did_it_go
    kind: smiley5
    text:
      sv: Hur gick det?
      en: How did that go?
    triggers:
      - after_uses: 1
""",
        encoding="utf-8",
    )
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    (home / "klick.yaml").write_text(
        f"""reader:
  driver: sim
  grace_ms: 0
locale: sv
help_contact: "Eva i hemtjänsten, 042-10 20 30"
browser:
  command: {json.dumps(sleeper)}
paths:
  socket: {home / "b.sock"}
pilot:
  device_name: test-ui
  enrolled: true
calls:
  allowed_servers: [https://meet.jit.si]
""",
        encoding="utf-8",
    )
    return home / "klick.yaml"


# --- the driver (runs in the subprocess) -------------------------------------------------------


def _drive(home: Path, out: Path) -> None:
    offscreen_env(home)
    from klick.config import load_config
    from launcher.kivy_setup import configure_kivy

    cfg = load_config(home / "klick.yaml")
    bridge = start_bridge(home)
    configure_kivy(cfg, offscreen=True)
    from kivy.uix.label import Label

    from launcher import session as S
    from launcher import theme
    from launcher.app import LauncherApp
    from launcher.screens.widgets import BigButton, FaceButton

    results: dict = {"steps": [], "screens": {}, "errors": []}
    shown: list[str] = []
    touch_min = theme.mm_to_px(theme.MIN_TOUCH_MM, cfg.display.dpi)

    def measure(app: LauncherApp, name: str) -> None:
        fonts, targets = [], []
        for widget in app.root_widget.walk(restrict=True):
            if isinstance(widget, Label) and widget.text.strip() and widget.opacity > 0:
                fonts.append([said(widget)[:40], float(widget.font_size)])
            if isinstance(widget, (BigButton, FaceButton)):
                targets.append([getattr(widget, "text", "face"), float(widget.width), float(widget.height)])
        results["screens"][name] = {"fonts": fonts, "targets": targets, "touch_min": touch_min}

    def shot(app: LauncherApp, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        app.screenshot(ARTIFACTS / f"{name}.png")
        measure(app, name)

    def scenario(app: LauncherApp):
        session = app.session

        def on(kind: type) -> bool:
            return isinstance(session.screen, kind)

        yield lambda: on(S.Home) and session.reader == "connected" and session.bridge_connected
        yield lambda: app.client.kept is not None
        results["kept_by_the_bridge"] = app.client.kept
        yield 0.3
        shot(app, "home")
        results["steps"].append("home")

        app.send_to_bridge({"command": "insert", "uid": ANNA})
        first_frame: dict = {}

        def grab(name: str, screen: object, _t: object) -> None:
            if name == "card" and "done" not in first_frame:
                first_frame["done"] = True
                shot(app, "card")  # the first frame after the event, before the call starts

        app.shown_listeners.append(grab)
        yield lambda: on(S.ShowingCard) and session.screen.phase == "running" and app.program is not None
        app.shown_listeners.remove(grab)
        results["card_first_frame"] = "done" in first_frame
        page = app.program.page  # the browser starts beside the screen; its page comes over the pipe
        results["call_argv"], results["call_url"], results["call_camera"] = page.argv, page.url, page.camera_origin
        yield lambda: app.program.pid is not None
        pid = app.program.pid
        results["steps"].append("card")
        app.send_to_bridge({"command": "remove"})
        yield lambda: on(S.Home)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                break
            yield 0.1
        else:
            results["errors"].append("the call's process group was still there 5 s after the card came out")
        results["steps"].append("removed")

        # A red card: neither black nor white reaches 7:1 on it, so its words sit on a dark band.
        app.send_to_bridge({"command": "insert", "uid": RAPPORT})
        yield lambda: on(S.ShowingCard) and session.screen.phase == "running"
        yield 0.2
        shot(app, "card_on_band")
        app.send_to_bridge({"command": "remove"})
        yield lambda: on(S.Home)

        app.send_to_bridge({"command": "insert", "uid": MISSING_PROGRAM_CARD})
        yield lambda: on(S.ActionFailed)
        yield 0.2
        results["failed_reason"] = session.screen.reason
        shot(app, "action_failed")
        app.send_to_bridge({"command": "remove"})
        yield lambda: on(S.Home)
        results["steps"].append("failed")

        app.send_to_bridge({"command": "insert", "uid": UNKNOWN})
        yield lambda: on(S.UnknownCard)
        yield 0.2
        shot(app, "unknown_card")
        app.send_to_bridge({"command": "remove"})
        yield lambda: on(S.Home)
        results["steps"].append("unknown")

        app.send_to_bridge({"command": "insert", "uid": ALBUM})
        yield lambda: on(S.ShowingCard) and app.album_card is not None
        yield 0.5
        album = app.screens["album"]
        results["album_order"] = [Path(p).name for p in album.pictures]
        shot(app, "photo_album")
        album.toggle_pause()
        yield 0.2
        results["album_paused"] = album.paused
        shot(app, "photo_album_paused")
        app.send_to_bridge({"command": "remove"})
        yield lambda: on(S.Home)
        results["album_running_after_removal"] = album.running
        results["steps"].append("album")

        app.send_to_bridge({"command": "unplug"})
        yield lambda: on(S.ReaderLost)
        yield 0.2
        shot(app, "reader_lost")
        app.send_to_bridge({"command": "replug"})
        yield lambda: on(S.Home) and session.reader == "connected"
        results["steps"].append("reader")

        yield 0.2
        results["prompt_asked"] = app.ask_for_prompt()
        if results["prompt_asked"]:
            yield lambda: on(S.Asking)
            yield 0.3
            shot(app, "prompt")
            faces = [w for w in app.root_widget.walk(restrict=True) if isinstance(w, FaceButton)]
            happy = [f for f in faces if f.value == 5][0]
            happy.dispatch("on_press")
            happy.dispatch("on_release")
            yield lambda: on(S.Home)
            results["steps"].append("prompt")

        # Demo keys drive the simulated reader through the bridge; Escape does nothing.
        from kivy.core.window import Window

        Window.dispatch("on_key_down", 49, 0, "1", [])
        yield lambda: on(S.ShowingCard) and session.screen.card.uid == ANNA
        Window.dispatch("on_key_down", 27, 0, None, [])
        Window.dispatch("on_key_down", 48, 0, "0", [])
        yield lambda: on(S.Home)
        results["steps"].append("demo_keys")
        results["shown"] = shown
        out.write_text(json.dumps(results, default=str), encoding="utf-8")
        results["quit_by_keys"] = True
        Window.dispatch("on_key_down", ord("q"), 0, "q", ["ctrl", "alt"])
        yield 30  # the app stops; this step never ends

    def probe(app: LauncherApp) -> None:
        app.shown_listeners.append(lambda name, *_: shown.append(name))
        run_scenario(app, scenario(app), results, out, on_finish=lambda: results.update(quit_by_keys=False))

    try:
        LauncherApp(cfg, probe=probe, demo_uids=(ANNA, RAPPORT)).run()
    finally:
        stop_bridge(bridge)


# --- the tests (pytest side) ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("ui")
    write_home(home)
    results = run_as_script(__file__, home, timeout=120)
    results["home"] = str(home)
    return results


def test_run_had_no_errors(run):
    assert run["errors"] == []


def test_the_launcher_introduces_itself_so_a_full_bridge_never_lets_it_go(run):
    assert run["kept_by_the_bridge"] is True


def test_demo_keys_drive_the_reader_escape_is_ignored_and_quit_keys_close(run):
    assert "demo_keys" in run["steps"]
    assert run["returncode"] == 0  # closed by ctrl+alt+q; the results were written just before


def test_card_screen_is_the_first_frame_then_the_call_starts(run):
    assert run["card_first_frame"]
    argv = run["call_argv"]
    assert "--use-fake-ui-for-media-stream" not in argv and "--remote-debugging-pipe" in argv
    assert run["call_url"].startswith("https://meet.jit.si/klick-demo-familjen-andersson#config.prejoinConfig.enabled=false")
    assert run["call_camera"] == "https://meet.jit.si"
    assert "removed" in run["steps"]


def test_failed_and_unknown_and_reader_lost_screens(run):
    assert run["failed_reason"] == "missing"
    for step in ("failed", "unknown", "reader"):
        assert step in run["steps"]


def test_album_newest_first_pausable_and_ends_with_the_card(run):
    assert run["album_order"] == ["2026-08-stranden.png", "2026-06-midsommar.png", "2026-01-snogubbe.png"]
    assert run["album_paused"] is True
    assert run["album_running_after_removal"] is False


def test_prompt_answered_and_stored_in_the_usage_database(run):
    assert run["prompt_asked"] is True
    assert "prompt" in run["steps"]
    db = sqlite3.connect(Path(run["home"]) / "usage.db")
    rows = db.execute("SELECT question_id, value FROM answers").fetchall()
    assert rows == [("how_did_it_go", "5")]


def test_usage_log_holds_the_card_events(run):
    db = sqlite3.connect(Path(run["home"]) / "usage.db")
    kinds = [k for (k,) in db.execute("SELECT kind FROM events ORDER BY id")]
    for kind in (
        "card_present",
        "action_started",
        "action_ended",
        "card_removed",
        "unknown_card",
        "action_failed",
        "reader_status",
        "prompt_shown",
        "prompt_answered",
    ):
        assert kind in kinds, kind


@pytest.mark.parametrize("name", ["home", "card", "unknown_card", "reader_lost", "action_failed", "prompt", "photo_album"])
def test_every_screen_saved_with_big_text_and_big_targets(run, name):
    assert (ARTIFACTS / f"{name}.png").stat().st_size > 2000
    screen = run["screens"][name]
    for text, size in screen["fonts"]:
        assert size >= 32, f"{name}: {text!r} is {size} px"
    for text, width, height in screen["targets"]:
        assert min(width, height) >= screen["touch_min"], f"{name}: {text!r} is {width}x{height} px"


if __name__ == "__main__":
    _drive(Path(sys.argv[1]), Path(sys.argv[2]))
