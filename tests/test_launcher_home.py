"""An honest home (issue 11, section 3), in the real launcher, headless.

The launcher starts with no bridge to hear a card: after a few seconds home says "Kortläsaren
startar…" in full (with the reader-lost words and whom to call) instead of "Sätt i ett kort";
the bridge comes up and home is back by itself. Then the window is given another size (a
compositor's output, a tablet turned on its side): every screen is built again for it. And the
SVT1 card says its label ("Startar SVT1…").
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # when run as the launcher's script

from tests.launcher_harness import offscreen_env, run_as_script, run_scenario, said, start_bridge, stop_bridge  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts" / "home"
SVT1, RAPPORT = "04C7D8E9FA0B12", "04B1C2D3E4F501"

pytestmark = pytest.mark.ui


def write_home(home: Path) -> None:
    demo = (REPO / "config" / "demo-cards.yaml").read_text(encoding="utf-8")
    cards = demo.replace("picture: demo/", f"picture: {REPO}/config/demo/").replace(
        "folder: demo/", f"folder: {REPO}/config/demo/"
    )
    (home / "cards.yaml").write_text(cards, encoding="utf-8")
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    (home / "klick.yaml").write_text(
        f'reader:\n  driver: sim\n  grace_ms: 0\nlocale: sv\nhelp_contact: "Eva i hemtjänsten, 042-10 20 30"\n'
        f"browser:\n  command: {json.dumps(sleeper)}\npaths:\n  socket: {home / 'b.sock'}\n",
        encoding="utf-8",
    )


def _drive(home: Path, out: Path) -> None:
    offscreen_env(home)
    from klick.config import load_config
    from launcher.kivy_setup import configure_kivy

    cfg = load_config(home / "klick.yaml")
    configure_kivy(cfg, offscreen=True)
    from kivy.core.window import Window
    from kivy.uix.label import Label

    from launcher import session as S
    from launcher.app import LauncherApp
    from tests.layout_check import layout_problems

    results: dict = {"steps": [], "errors": []}
    bridge: dict = {}

    def texts(app: LauncherApp) -> list[str]:
        return [said(w) for w in app.root_widget.walk(restrict=True) if isinstance(w, Label) and w.text.strip()]

    def shot(app: LauncherApp, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        app.screenshot(ARTIFACTS / f"{name}.png")

    def scenario(app: LauncherApp):
        session = app.session
        started = time.monotonic()
        yield 0.5
        results["first_screen"] = repr(session.screen)  # home, while a bridge may still come
        yield lambda: isinstance(session.screen, S.ReaderStarting)
        results["starting_after"] = time.monotonic() - started
        yield 0.3
        results["starting_texts"] = texts(app)
        shot(app, "reader_starting")
        bridge["proc"] = start_bridge(home)
        came = time.monotonic()
        yield lambda: isinstance(session.screen, S.Home) and session.reader_ready
        results["home_after_bridge"] = time.monotonic() - came
        yield 0.3
        results["home_texts"] = texts(app)
        results["steps"].append("honest_home")

        # The window is given another size: every screen is built again for it.
        Window.size = (800, 1280)
        yield lambda: tuple(app.screen_size) == (800, 1280)
        yield 0.4
        results["upright_home_problems"] = layout_problems(Window, size=(800, 1280))
        shot(app, "home_upright")
        app.send_to_bridge({"command": "insert", "uid": SVT1})
        yield lambda: isinstance(session.screen, S.ShowingCard) and session.screen.phase == "running"
        yield 0.3
        results["svt1_texts"] = texts(app)
        results["upright_card_problems"] = layout_problems(Window, size=(800, 1280))
        shot(app, "svt1_upright")
        app.send_to_bridge({"command": "remove"})
        yield lambda: isinstance(session.screen, S.Home)
        app.send_to_bridge({"command": "insert", "uid": RAPPORT})
        yield lambda: isinstance(session.screen, S.ShowingCard) and session.screen.phase == "running"
        yield 0.2
        results["rapport_texts"] = texts(app)
        # The card file changes during the programme (a fleet push): its faces wait for home,
        # and nothing looks every frame meanwhile.
        app._prepare_faces()
        yield 0.3
        results["faces_waiting_during_card"] = len(app._to_prepare)
        results["faces_polled_during_card"] = app._prepare_event is not None
        app.send_to_bridge({"command": "remove"})
        yield lambda: isinstance(session.screen, S.Home)
        yield lambda: not app._to_prepare  # home is back: the faces are made after all
        results["steps"].append("resized")

    def probe(app: LauncherApp) -> None:
        run_scenario(app, scenario(app), results, out, timeout=40)

    try:
        LauncherApp(cfg, probe=probe).run()
    finally:
        if "proc" in bridge:
            stop_bridge(bridge["proc"])


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("home")
    write_home(home)
    return run_as_script(__file__, home, timeout=90)


def test_the_scenario_ran_to_its_end(run):
    assert run["errors"] == [] and run["steps"] == ["honest_home", "resized"]


def test_without_a_bridge_home_says_the_reader_is_starting_and_whom_to_call(run):
    from launcher.session import BRIDGE_GRACE_S

    assert run["first_screen"].startswith("Home(")
    assert BRIDGE_GRACE_S - 0.5 <= run["starting_after"] <= BRIDGE_GRACE_S + 2
    said = run["starting_texts"]
    assert "Kortläsaren startar…" in said
    assert "Den brukar komma tillbaka av sig själv. Du behöver inte göra något." in said
    assert "Behöver du hjälp? Ring Eva i hemtjänsten, 042-10 20 30." in said
    assert "Sätt i ett kort" not in said


def test_home_comes_back_by_itself_when_the_reader_is_ready(run):
    assert run["home_after_bridge"] < 10
    assert "Sätt i ett kort" in run["home_texts"] and "Kortläsaren är redo" in run["home_texts"]


def test_a_new_window_size_builds_every_screen_again_for_it(run):
    assert run["upright_home_problems"] == []
    assert run["upright_card_problems"] == []


def test_faces_ahead_of_time_wait_for_home_without_looking_every_frame_during_a_card(run):
    assert run["faces_waiting_during_card"] > 0
    assert run["faces_polled_during_card"] is False


def test_an_svt_card_names_itself_by_its_label(run):
    assert "Startar SVT1…" in run["svt1_texts"]
    assert "Startar Rapport…" in run["rapport_texts"]


if __name__ == "__main__":
    _drive(Path(sys.argv[1]), Path(sys.argv[2]))
