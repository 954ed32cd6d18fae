"""What a resident and a carer read, in the real launcher, headless (the launcher review of
2026-11-30): an SVT card by the name the carer gave it, a program that ran and closed spoken of
as closed, whom to turn to when something will not start by itself, "staff" in English, a
put-off question that comes back fresh, and the Home button in tap mode where the words ask for it.

As in tests/test_launcher_layout.py the screens are set straight on the session (the events that
lead to each have their own tests), next to a real `klick bridge` with the simulated reader.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # when run as the launcher's script

from tests.launcher_harness import offscreen_env, run_as_script, run_scenario, said, start_bridge, stop_bridge  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts" / "words"
PA_SPARET, IKVALL, RADIO, ANNA, STAFF = (
    "04AA000000000001",
    "04AA000000000002",
    "04AA000000000003",
    "04AA000000000004",
    "04CA000000000001",
)

pytestmark = pytest.mark.ui


def write_home(home: Path) -> None:
    (home / "cards.yaml").write_text(
        f"""version: 1
cards:
  - uid: "{PA_SPARET}"
    label: På spåret
    colour: green
    action:
      type: svt_play
      program: /pa-sparet
  - uid: "{IKVALL}"
    label: Ikväll 19.30
    colour: red
    action:
      type: svt_play
      program: /video/123/ikvall-19-30
  - uid: "{RADIO}"
    label: Radio
    colour: orange
    action:
      type: command
      argv: ["/nonexistent/klick-no-such-radio"]
  - uid: "{ANNA}"
    label: Anna
    colour: blue
    action:
      type: video_call
      provider: jitsi
      server: https://meet.jit.si
      room: klick-test
  - uid: "{STAFF}"
    label: Personal
    role: carer
""",
        encoding="utf-8",
    )
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    (home / "klick.yaml").write_text(
        f'reader:\n  driver: sim\n  grace_ms: 0\nlocale: sv\nhelp_contact: "Eva i hemtjänsten, 042-10 20 30"\n'
        f"browser:\n  command: {json.dumps(sleeper)}\npaths:\n  socket: {home / 'b.sock'}\n"
        "calls:\n  allowed_servers: [https://meet.jit.si]\n",
        encoding="utf-8",
    )


def _drive(home: Path, out: Path) -> None:
    offscreen_env(home)
    from klick.config import load_config
    from launcher.kivy_setup import configure_kivy

    cfg = load_config(home / "klick.yaml")
    bridge = start_bridge(home)
    configure_kivy(cfg, offscreen=True)
    from kivy.core.window import Window
    from kivy.uix.label import Label

    from klick.feedback import Prompt
    from klick.questionnaire import Text as QText
    from launcher import session as S
    from launcher.app import LauncherApp
    from launcher.screens.keyboard import BigKeyboard
    from launcher.screens.widgets import BigButton

    results: dict = {"steps": [], "errors": [], "said": {}}

    def texts(app: LauncherApp) -> list[str]:
        seen = [said(w) for w in app.root_widget.walk(restrict=True) if isinstance(w, Label) and w.text.strip()]
        return seen + [f"button:{w.words}" for w in app.root_widget.walk(restrict=True) if isinstance(w, BigButton)]

    def keyboard_up() -> bool:
        return any(isinstance(w, BigKeyboard) and w.parent is not None for w in Window.children)

    def scenario(app: LauncherApp):
        session, card = app.session, app.registry.get

        def show(name: str, screen, mode: str = "slot"):
            session.configured_mode = mode
            session.screen = screen
            app.render()
            yield 0.1
            results["said"][name] = texts(app)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            app.screenshot(ARTIFACTS / f"{name}.png")

        yield lambda: isinstance(session.screen, S.Home) and session.reader_ready
        yield from show("pa_sparet_starting", S.ShowingCard(card(PA_SPARET), "running"))
        yield from show("ikvall_starting", S.ShowingCard(card(IKVALL), "running"))
        yield from show("pa_sparet_closed", S.ActionFailed(card(PA_SPARET), "exited"))
        yield from show("call_closed", S.ActionFailed(card(ANNA), "exited"))
        yield from show("radio_missing", S.ActionFailed(card(RADIO), "missing"))
        yield from show("radio_cannot_start", S.ActionFailed(card(RADIO), "cannot_start", ""), mode="tap")
        yield from show("cards_unreadable", S.CardsUnreadable())
        yield from show("thanks", S.Thanks())
        yield from show("not_set_up_tap", S.CarerNotSetUp(card(STAFF)), mode="tap")

        # A free-text question put off ("Not now") and asked again: an empty field, the keyboard up.
        prompt = Prompt(7, "what", "free_text", QText("Vad var svårt?", "What was difficult?"), ())
        yield from show("asked", S.Asking(prompt))
        yield lambda: keyboard_up()
        app.screens["prompt"].entry.text = "Knappen var sv"
        yield from show("put_off", S.Home())
        yield lambda: not keyboard_up()
        yield from show("asked_again", S.Asking(prompt))
        yield 0.3
        results["asked_again_keyboard_up"] = keyboard_up()
        results["asked_again_field"] = app.screens["prompt"].entry.text
        yield from show("home_again", S.Home())

        app.relayout(locale="en")
        yield 0.2
        yield from show("en_not_set_up", S.CarerNotSetUp(card(STAFF)))
        yield from show("en_pin", S.CarerPin(card(STAFF)))
        yield from show("en_carer_mode", S.CarerMode(card(STAFF)))
        yield from show("en_radio_missing", S.ActionFailed(card(RADIO), "missing"))
        yield from show("en_thanks", S.Thanks())
        yield from show("en_home", S.Home())
        results["steps"].append("done")

    def probe(app: LauncherApp) -> None:
        run_scenario(app, scenario(app), results, out, timeout=60)

    try:
        LauncherApp(cfg, probe=probe).run()
    finally:
        stop_bridge(bridge)


# --- the tests (pytest side) ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("words")
    write_home(home)
    return run_as_script(__file__, home, timeout=120)


def test_the_scenario_ran_to_its_end(run):
    assert run["errors"] == [] and run["steps"] == ["done"]


def test_an_svt_card_is_called_by_the_label_the_carer_gave_it_with_its_a_ring_and_dots(run):
    assert "Startar På spåret…" in run["said"]["pa_sparet_starting"]
    assert "Startar Ikväll 19.30…" in run["said"]["ikvall_starting"]


def test_a_program_that_ran_and_closed_is_said_to_have_closed_not_to_have_failed_to_start(run):
    closed = run["said"]["pa_sparet_closed"]
    assert "På spåret stängdes." in closed and not any("gick inte att starta" in t for t in closed)
    assert "Samtalet med Anna är slut." in run["said"]["call_closed"]


def test_what_will_not_start_by_itself_says_whom_to_ask_and_whom_to_call(run):
    for name in ("radio_missing", "radio_cannot_start"):
        seen = run["said"][name]
        assert any("Be din kontaktperson om hjälp." in t for t in seen), seen
        assert "Behöver du hjälp? Ring Eva i hemtjänsten, 042-10 20 30." in seen, seen
        assert not any("program som behövs" in t for t in seen)
    assert "button:Hem" in run["said"]["radio_cannot_start"]  # tap mode still has its way back


def test_the_cards_that_cannot_be_read_tell_the_resident_to_ask_for_help(run):
    seen = run["said"]["cards_unreadable"]
    assert "Listan över korten på surfplattan har ett fel. Be din kontaktperson om hjälp." in seen
    assert not any("Du behöver inte göra något" in t for t in seen)


def test_the_thanks_speaks_of_the_tablet_not_of_klick(run):
    assert "Ditt svar hjälper oss att göra surfplattan bättre." in run["said"]["thanks"]
    assert "Your answer helps us make the tablet better." in run["said"]["en_thanks"]


def test_in_tap_mode_staff_mode_not_set_up_shows_the_home_button_its_words_ask_for(run):
    seen = run["said"]["not_set_up_tap"]
    assert "Tryck på Hem för att gå tillbaka." in seen or any("Hem" in t and "tillbaka" in t for t in seen), seen
    assert "button:Hem" in seen


def test_english_speaks_of_staff_throughout(run):
    english = [t for name, seen in run["said"].items() if name.startswith("en_") for t in seen]
    assert "Staff mode is not set up on this tablet." in english
    assert "Type the staff PIN." in english and "Staff card" in english and "Staff mode" in english
    assert not any("carer" in t.lower() and "klick carer" not in t for t in english), english


def test_a_question_put_off_comes_back_with_an_empty_field_and_the_keyboard_up(run):
    assert run["asked_again_field"] == ""
    assert run["asked_again_keyboard_up"] is True


if __name__ == "__main__":
    _drive(Path(sys.argv[1]), Path(sys.argv[2]))
