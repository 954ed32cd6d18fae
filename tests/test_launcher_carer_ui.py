"""Carer mode on the real launcher, headless: a real bridge, a real card file, real pixels.

Like tests/test_launcher_ui.py, this file starts itself as a script in a subprocess (one Kivy app
per process). The run: an unknown card goes in and out; the carer card opens the PIN pad; the
right PIN opens the carer screen, which lists that unknown card; the carer programs it as a web
page by typing the address on the on-screen keyboard; the card file on disk has the card; the
carer card out returns home; the new card in shows its card screen at once. Then a free-text
question with the keyboard, and three wrong PINs. Screens go to artifacts/screens/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # when run as the launcher's script

import yaml

from tests.launcher_harness import offscreen_env, run_as_script, run_scenario, said, start_bridge, stop_bridge  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts" / "screens"
ANNA, CARER, NEW, PUSHED = "04A2B3C4D5E680", "04CA4E4000000001", "04E1E2E3E4E5E6", "04F0F0F0F0F0F0"
PIN = "2468"

pytestmark = pytest.mark.ui


def write_home(home: Path) -> Path:
    from klick.pin import hash_pin

    (home / "cards.yaml").write_text(
        f"""cards:
  - uid: "{ANNA}"
    label: Anna
    colour: blue
    action:
      type: web
      url: https://www.example.se/anna
  - uid: "{CARER}"
    label: Personal
    role: carer
""",
        encoding="utf-8",
    )
    (home / "questionnaire.yaml").write_text(
        """version: 1
limits:
  per_day: 10
  quiet_hours: none
questions:
  - id: anything_else
    kind: free_text
    text:
      sv: Vill du berätta något mer?
      en: Anything else you want to tell us?
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
browser:
  command: {json.dumps(sleeper)}
paths:
  socket: {home / "b.sock"}
pilot:
  device_name: test-carer-ui
  enrolled: false
carer:
  pin_hash: "{hash_pin(PIN)}"
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
    from kivy.core.window import Window
    from kivy.uix.label import Label

    from launcher import session as S
    from launcher import theme
    from launcher.app import LauncherApp
    from launcher.screens.keyboard import BigKeyboard
    from launcher.screens.widgets import BigButton

    results: dict = {"steps": [], "screens": {}, "errors": []}
    touch_min = theme.mm_to_px(theme.MIN_TOUCH_MM, cfg.display.dpi)

    def texts(app: LauncherApp) -> list[str]:
        return [said(w) for w in app.root_widget.walk(restrict=True) if isinstance(w, Label) and w.text.strip()]

    def button(app: LauncherApp, text: str) -> BigButton:
        found = [w for w in app.root_widget.walk(restrict=True) if isinstance(w, BigButton) and w.words == text]
        assert found, f"no button {text!r} on {texts(app)}"
        return found[0]

    def press(app: LauncherApp, text: str) -> None:
        b = button(app, text)
        b.dispatch("on_press")
        b.dispatch("on_release")

    def keyboard() -> BigKeyboard | None:
        return next((w for w in Window.children if isinstance(w, BigKeyboard)), None)

    def measure(app: LauncherApp, name: str) -> None:
        fonts, targets, keys = [], [], {}
        for widget in app.root_widget.walk(restrict=True):
            if isinstance(widget, Label) and widget.text.strip() and widget.opacity > 0:
                fonts.append([said(widget)[:40], float(widget.font_size)])
            if isinstance(widget, BigButton):
                targets.append([said(widget), float(widget.width), float(widget.height)])
        kb = keyboard()
        if kb is not None:
            # The colours actually drawn: the plates' Color instructions and each key's label colour.
            from kivy.graphics import Color, RoundedRectangle

            colours, last = set(), None
            for instruction in kb.background_key_layer.children:
                if isinstance(instruction, Color):
                    last = tuple(round(c * 255) for c in instruction.rgba[:3])
                elif isinstance(instruction, RoundedRectangle):
                    colours.add(last)
            label_colours = {tuple(round(c * 255) for c in w.color[:3]) for w in kb.children if isinstance(w, Label)}
            sizes = [size for line in range(1, 6) for _pos, size in kb.layout_geometry[f"LINE_{line}"]]
            keys = {
                "plates": sorted(colours),
                "labels": sorted(label_colours),
                "fonts": sorted({float(w.font_size) for w in kb.children if isinstance(w, Label)}),
                "min_key": [min(s[0] for s in sizes), min(s[1] for s in sizes)],
                "height": float(kb.height),
                "width": float(kb.width),
                "scale": float(kb.scale),
                "count": len(sizes),
            }
        results["screens"][name] = {"fonts": fonts, "targets": targets, "touch_min": touch_min, "keyboard": keys}

    def shot(app: LauncherApp, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        app.screenshot(ARTIFACTS / f"{name}.png")
        measure(app, name)

    def type_pin(app: LauncherApp, digits: str) -> None:
        for d in digits:
            press(app, d)

    def scenario(app: LauncherApp):
        session = app.session

        def on(kind: type) -> bool:
            return isinstance(session.screen, kind)

        yield lambda: on(S.Home) and session.reader == "connected" and session.bridge_connected
        results["steps"].append("home")

        app.send_to_bridge({"command": "insert", "uid": NEW})
        yield lambda: on(S.UnknownCard)
        app.send_to_bridge({"command": "remove"})
        yield lambda: on(S.Home)
        results["steps"].append("unknown")

        app.send_to_bridge({"command": "insert", "uid": CARER})
        yield lambda: on(S.CarerPin)
        yield 0.2
        type_pin(app, "24")
        yield 0.2
        shot(app, "carer_pin")
        results["pin_dots"] = app.screens["pin"].dots.text
        type_pin(app, "68")
        press(app, "OK")
        # The answer comes back through Kivy's clock, so until this step yields the pad waits.
        results["checking_texts"] = texts(app)
        type_pin(app, "1")  # pressed while the PIN is checked: ignored
        results["dots_while_checking"] = app.screens["pin"].dots.text
        yield lambda: on(S.CarerMode)
        yield 0.2
        shot(app, "carer_mode")
        results["carer_texts"] = texts(app)
        results["steps"].append("carer_mode")

        press(app, "Programmera det senaste okända kortet")
        yield 0.1
        results["choices"] = [w.words for w in app.root_widget.walk(restrict=True) if isinstance(w, BigButton)]
        press(app, "En webbsida")
        yield lambda: keyboard() is not None and keyboard().parent is not None
        yield 0.3
        entry = app.screens["carer"].entry
        entry.insert_text("inte en adress")
        press(app, "Spara")
        yield 0.3
        results["bad_address_texts"] = texts(app)
        entry = app.screens["carer"].entry
        yield lambda: keyboard() is not None and keyboard().parent is not None
        # Type the address on the on-screen keyboard itself, key by key.
        kb = keyboard()
        for ch in "smhi.se":
            kb.dispatch("on_textinput", ch)
        yield 0.2
        results["typed"] = entry.text
        shot(app, "carer_web_address")
        # A fleet push is unpacking the card set (it holds the lock) when "Spara" is pressed:
        # the save waits for it beside the screen, "Sparar…" meanwhile, and keeps its card.
        from cards.registry import card_set_lock
        from klick.atomic import write_atomic

        cards_file = Path(app.cfg.paths.registry)
        push = card_set_lock(cards_file.resolve().parent)
        push.__enter__()
        press(app, "Spara")
        yield 0.3
        results["saving_while_pushed"] = [app.screens["carer"].page, texts(app)]
        pushed = cards_file.read_text(encoding="utf-8") + (
            f'  - uid: "{PUSHED}"\n    label: Pushad\n    action:\n      type: web\n      url: https://www.example.se/p\n'
        )
        write_atomic(cards_file, pushed.encode("utf-8"))
        push.__exit__(None, None, None)
        yield lambda: app.screens["carer"].page == "saved"
        yield 0.2
        shot(app, "carer_saved")
        results["saved_texts"] = texts(app)
        results["card_in_registry_at_once"] = app.registry.get(NEW) is not None
        results["pushed_in_registry"] = app.registry.get(PUSHED) is not None
        results["steps"].append("programmed")

        app.send_to_bridge({"command": "remove"})
        yield lambda: on(S.Home)
        results["steps"].append("carer_out")

        app.send_to_bridge({"command": "insert", "uid": NEW})
        yield lambda: on(S.ShowingCard) and session.screen.card.uid == NEW
        yield 0.2
        results["new_card_label"] = session.screen.card.label
        shot(app, "carer_programmed_card")
        app.send_to_bridge({"command": "remove"})
        yield lambda: on(S.Home)
        results["steps"].append("new_card")

        # A free-text question: the keyboard docks under the question and the field. This device
        # has no consent (so no questionnaire runs); the question is handed to the session directly.
        from types import SimpleNamespace

        question = SimpleNamespace(
            id=1, kind="free_text", options=(), text={"sv": "Vill du berätta något mer om hur det gick?", "en": "Anything else?"}
        )
        yield 0.2
        app._apply_and_render(session.prompt_due(question))
        results["prompt_asked"] = on(S.Asking)
        if results["prompt_asked"]:
            yield 0.2
            app.screens["prompt"].entry.focus = True
            yield lambda: keyboard() is not None and keyboard().parent is not None
            yield 0.3
            shot(app, "free_text_keyboard")
            press(app, "Hoppa över")
            yield lambda: on(S.Home)
            results["steps"].append("free_text")

        # Three wrong PINs: home, a calm notice, and the pad stays shut.
        app.send_to_bridge({"command": "insert", "uid": CARER})
        yield lambda: on(S.CarerPin)
        for n in range(3):
            type_pin(app, "1111")
            press(app, "OK")
            yield lambda: not session.pin_pending
            yield 0.1
            if n == 0:
                results["wrong_once_texts"] = texts(app)
        yield lambda: on(S.Home)
        yield 0.2
        results["locked_screen"] = repr(session.screen)
        results["locked_texts"] = texts(app)
        shot(app, "carer_pin_paused")
        app.send_to_bridge({"command": "remove"})
        yield 0.3
        app.send_to_bridge({"command": "insert", "uid": CARER})
        yield 0.6
        results["reopened_during_pause"] = repr(session.screen)
        app.send_to_bridge({"command": "remove"})
        yield 0.2
        results["steps"].append("wrong_pin")

    def probe(app: LauncherApp) -> None:
        run_scenario(app, scenario(app), results, out)

    try:
        LauncherApp(cfg, probe=probe).run()
    finally:
        stop_bridge(bridge)


# --- the tests (pytest side) ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("carer_ui")
    write_home(home)
    results = run_as_script(__file__, home, timeout=120)
    results["home"] = str(home)
    return results


def test_run_had_no_errors(run):
    assert run["errors"] == []
    assert run["steps"] == ["home", "unknown", "carer_mode", "programmed", "carer_out", "new_card", "free_text", "wrong_pin"]


def test_pin_is_masked_and_the_carer_screen_lists_the_unknown_card(run):
    assert run["pin_dots"] == "• •"
    assert not any("24" in t for t in run["carer_texts"] if "Kort" not in t)
    assert any(NEW in t for t in run["carer_texts"])
    assert "Programmera det senaste okända kortet" in run["carer_texts"]


def test_programming_offers_the_simple_choices_and_refuses_a_non_address(run):
    for choice in ("Visa foton", "SVT1 direkt", "Rapport (nyheter)", "En webbsida"):
        assert choice in run["choices"]
    assert any("ser inte ut som en webbadress" in t for t in run["bad_address_texts"])
    assert run["typed"] == "smhi.se"


def test_programmed_card_is_in_the_card_file_and_klick_cards_list(run):
    home = Path(run["home"])
    data = yaml.safe_load((home / "cards.yaml").read_text(encoding="utf-8"))
    new = [c for c in data["cards"] if c["uid"] == NEW]
    assert new == [
        {"uid": NEW, "label": "smhi.se", "colour": "#6A2C91", "action": {"type": "web", "url": "https://smhi.se"}}
    ] or (len(new) == 1 and new[0]["action"] == {"type": "web", "url": "https://smhi.se"} and new[0]["label"] == "smhi.se")
    assert [c["uid"] for c in data["cards"]][:2] == [ANNA, CARER]  # the others untouched
    assert (home / "cards.yaml.bak").exists()
    env = {**os.environ, "KLICK_HOME": str(home)}
    listed = subprocess.run(
        [sys.executable, "-c", "from klick.cli import main; main()", "cards", "list", "--config", str(home / "klick.yaml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert NEW in listed.stdout and "smhi.se" in listed.stdout


def test_a_card_saved_while_a_push_changes_the_cards_waits_says_saving_and_keeps_the_pushed_card(run):
    page, seen = run["saving_while_pushed"]
    assert page == "saving" and "Sparar…" in seen  # the screen drew on while the save waited
    data = yaml.safe_load((Path(run["home"]) / "cards.yaml").read_text(encoding="utf-8"))
    assert {ANNA, CARER, PUSHED, NEW} <= {c["uid"] for c in data["cards"]}
    assert run["pushed_in_registry"] is True and run["card_in_registry_at_once"] is True


def test_the_new_card_works_at_once_after_the_carer_card_is_out(run):
    assert run["card_in_registry_at_once"] is True
    assert "carer_out" in run["steps"]
    assert run["new_card_label"] == "smhi.se"


def test_the_pin_is_checked_beside_the_screen_which_says_so_and_ignores_keys_meanwhile(run):
    assert "Kontrollerar…" in run["checking_texts"]
    assert run["dots_while_checking"] == ""


def test_three_wrong_pins_go_home_with_a_calm_notice_and_the_pad_stays_shut(run):
    assert any("2 försök kvar" in t for t in run["wrong_once_texts"])
    assert run["locked_screen"] == "Home(notice='carer_paused')"
    assert any("inte rätt kod" in t for t in run["locked_texts"])
    assert run["reopened_during_pause"] == "Home(notice='carer_paused')"


@pytest.mark.parametrize(
    "name", ["carer_pin", "carer_mode", "carer_web_address", "carer_saved", "free_text_keyboard", "carer_pin_paused"]
)
def test_carer_screens_saved_with_big_text_and_big_targets(run, name):
    assert (ARTIFACTS / f"{name}.png").stat().st_size > 2000
    screen = run["screens"][name]
    for text, size in screen["fonts"]:
        assert size >= 32, f"{name}: {text!r} is {size} px"
    for text, width, height in screen["targets"]:
        assert min(width, height) >= screen["touch_min"], f"{name}: {text!r} is {width}x{height} px"


@pytest.mark.parametrize("name", ["carer_web_address", "free_text_keyboard"])
def test_on_screen_keyboard_keys_are_16_mm_with_32_px_letters_at_7_to_1(run, name):
    from launcher import theme

    kb = run["screens"][name]["keyboard"]
    assert kb["count"] == 45 and kb["scale"] == 1.0
    assert min(kb["min_key"]) >= run["screens"][name]["touch_min"], kb["min_key"]
    assert min(kb["fonts"]) >= 32
    hexes = lambda rgb: "#{:02X}{:02X}{:02X}".format(*tuple(rgb))  # noqa: E731
    assert len(kb["labels"]) == 1 and len(kb["plates"]) == 1
    assert theme.contrast(hexes(kb["labels"][0]), hexes(kb["plates"][0])) >= 7.0
    assert theme.contrast(theme.KEY_TEXT, theme.KEY_DOWN) >= 7.0  # a pressed key


if __name__ == "__main__":
    _drive(Path(sys.argv[1]), Path(sys.argv[2]))
