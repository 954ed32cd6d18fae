"""`klick carer` driven headless: a real Kivy window (SDL offscreen), a real `klick bridge` with the
simulated reader, clicks and keys through Kivy's own test helpers.

One Kivy app per process: this file is also the driver. pytest starts it as a subprocess
(``python tests/test_carer_gui.py HOME OUT LOCALE``); the driver clicks through a scenario,
records what it saw after each step in a JSON file, and saves screenshots under
``artifacts/carer/``. The tests below then check the record, the card file on disk, and
``klick cards list`` through the real entry point.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts" / "carer"
KLICK = [sys.executable, "-c", "from klick.cli import main; main()"]
ANNA = "04A2B3C4D5E680"
NEW = "04C0FFEE0001"
WEB = "04C0FFEE0002"

# =============================================================================================
# The driver (runs in its own process, with the window)
# =============================================================================================


def drive(home: Path, out: Path, locale: str) -> None:
    os.environ.pop("DISPLAY", None)
    os.environ.pop("WAYLAND_DISPLAY", None)
    os.environ["SDL_VIDEODRIVER"] = "offscreen"  # what SDL picks without a display, said out loud
    os.environ["KIVY_NO_ARGS"] = "1"
    os.environ["KIVY_NO_CONSOLELOG"] = "1"
    os.environ["KIVY_NO_FILELOG"] = "1"
    os.environ["KIVY_HOME"] = str(home / "kivy-home")
    os.environ["KLICK_HOME"] = str(home)
    sys.path.insert(0, str(REPO))

    from dataclasses import replace

    from cards.carer.session import EditorSession
    from klick.config import load_config

    cfg = replace(load_config(), locale=locale)
    session = EditorSession(cfg.paths.registry)
    from cards.carer.app import CarerApp  # Kivy loads here, with the carer window's settings

    # isort: split
    from kivy.clock import Clock
    from kivy.core.window import Window
    from kivy.tests.common import UnitTestTouch

    app = CarerApp(cfg, session)
    record: dict = {"steps": [], "errors": []}
    registry_file = cfg.paths.registry
    shots = ARTIFACTS
    shots.mkdir(parents=True, exist_ok=True)

    def note(name: str, **extra) -> None:
        entry = {
            "step": name,
            "page": app.page,
            "message": app.message.text,
            "status": app.status.text,
            "file": registry_file.read_text("utf-8") if registry_file.exists() else None,
            **extra,
        }
        record["steps"].append(entry)

    def shot(name: str) -> None:
        made = Path(Window.screenshot(name=str(shots / f"{locale}-{name}.png")))
        made.replace(shots / f"{locale}-{name}.png")

    def tap(widget) -> None:
        x, y = widget.to_window(*widget.center)
        touch = UnitTestTouch(x, y)
        touch.touch_down()
        touch.touch_up()

    def key(code: int, char: str | None = None, modifiers=()) -> None:
        Window.dispatch("on_key_down", code, 0, char, list(modifiers))
        Window.dispatch("on_key_up", code, 0)

    def type_text(text: str) -> None:
        for ch in text:
            Window.dispatch("on_textinput", ch)

    def klick(*args: str) -> None:
        done = subprocess.run([*KLICK, *args], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr

    def until(predicate, what: str, timeout: float = 15.0):
        return ("until", predicate, what, time.monotonic() + timeout)

    def fill(name: str, text: str):
        """Click into a field, select what is there, and type over it, as a carer would."""
        box = app.w[f"input_{name}"]
        app.w["scroll"].scroll_to(box, animate=False)
        yield 0.1
        tap(box)
        yield 0.05
        key(97, "a", ["ctrl"])  # Ctrl+A
        key(8)  # Backspace
        type_text(text)
        yield 0.05
        assert box.text == text, (name, box.text)

    def click(name: str):
        widget = app.w[name]
        scroll = app.w.get("scroll")
        if scroll is not None and widget.parent is not None and _inside(widget, scroll):
            scroll.scroll_to(widget, animate=False)
            yield 0.1
        tap(widget)
        yield 0.1

    def click_widget(widget):
        tap(widget)
        yield 0.1

    def field_messages() -> dict:
        return {name: f.message.text for name, f in app.fields.items() if f.message.text}

    def scenario():
        yield until(lambda: app.page == "list" and app.source.via == "bridge", "list, through the bridge")
        yield until(lambda: "bryggan" in app.status.text, "the bridge's reader status")
        yield 0.3
        note("start", cards=sorted(k for k in app.w if k.startswith("card_")))
        shot("1-list")

        # Program a new card: the reader gives its number.
        yield from click("new_card")
        yield until(lambda: app.page == "wait", "wait page")
        shot("2-wait")
        klick("simulate", "insert", NEW)
        yield until(lambda: app.page == "kind", "the new card's UID from the bridge")
        note("kind", uid=app.form.uid, choices=sorted(k for k in app.w if k.startswith("kind_")))
        shot("3-kind")

        # "Ring någon": only the call fields; a mistake in two of them.
        yield from click("kind_call")
        yield until(lambda: app.page == "edit", "edit page")
        note("call fields", fields=list(app.fields))
        yield from fill("label", "Mormor")
        yield from fill("server", "http://meet.example.se")
        yield from fill("room", "familjen berg")
        yield from click("swatch_green")
        yield from click("save")
        note("invalid save", fields_shown=field_messages(), general=app.general.text)
        shot("4-errors")

        # Fix them; the preview follows; Ctrl+S saves.
        yield from fill("server", "https://meet.example.se")
        yield from fill("room", "familjen-berg")
        yield 0.1
        note(
            "fixed",
            fields_shown=field_messages(),
            preview_label=app.preview.face.label,
            preview_colour=app.preview.face.colour,
            preview_words=app.preview_words.text,
        )
        shot("5-form")
        key(115, "s", ["ctrl"])
        yield until(lambda: app.page == "list", "back to the list after saving")
        yield 0.2
        note("saved", cards=sorted(k for k in app.w if k.startswith("card_")))
        shot("6-saved")

        # One step of undo, with the button.
        yield from click("undo")
        yield 0.2
        note("undone", cards=sorted(k for k in app.w if k.startswith("card_")), undo_disabled=app.w["undo"].disabled)

        # Take the card out; a second card becomes a web page card (Ctrl+N, keyboard only for text).
        klick("simulate", "remove")
        yield until(lambda: app.source.present is None, "the card taken off the reader")
        key(110, "n", ["ctrl"])
        yield until(lambda: app.page == "wait", "wait page by Ctrl+N")
        yield 0.5
        klick("simulate", "insert", WEB)
        yield until(lambda: app.page == "kind", "the second card")
        yield from click("kind_web")
        yield until(lambda: app.page == "edit", "edit page (web)")
        note("web fields", fields=list(app.fields))
        yield from fill("label", "Vädret i Lund")
        yield from fill("url", "https://www.smhi.se/")
        yield from click("swatch_yellow")
        yield from click("choose_picture")
        yield until(lambda: getattr(app, "popup", None) is not None and app.popup.parent is not None, "file chooser")
        app.chooser.path = str(home / "pictures")
        yield 0.5
        shot("8-chooser")
        app.chooser.selection = [str(home / "pictures" / "anna.png")]
        yield from click_widget(app.popup.content.children[0].children[-1])  # "Välj"
        yield until(lambda: app.popup.parent is None, "chooser closed")
        note("picture chosen", picture=app.form.picture, preview_picture=str(app.preview.face.picture))
        yield from click("save")
        yield until(lambda: app.page == "list", "saved web card")
        yield 0.2
        note("web saved", cards=sorted(k for k in app.w if k.startswith("card_")))

        # A card that is already set up opens its own page.
        klick("simulate", "remove")
        yield until(lambda: app.source.present is None, "the card taken off the reader")
        yield from click("new_card")
        yield until(lambda: app.page == "wait", "wait page again")
        yield 0.5
        klick("simulate", "insert", ANNA)
        yield until(lambda: app.page == "edit", "the known card's own page")
        note(
            "known card", uid=app.form.uid, label=app.w["input_label"].text, is_new=app.form.is_new, has_delete="delete" in app.w
        )
        shot("7-known")
        key(27)
        yield until(lambda: app.page == "list", "Escape goes back")
        note("escape")
        klick("simulate", "remove")

    steps = scenario()
    state = {"waiting": None, "resume_at": 0.0}

    def step(_dt):
        try:
            while True:
                if state["waiting"] is not None:
                    _, predicate, what, deadline = state["waiting"]
                    if not predicate():
                        if time.monotonic() > deadline:
                            raise AssertionError(f"timed out waiting for: {what} (page {app.page})")
                        return
                    state["waiting"] = None
                if time.monotonic() < state["resume_at"]:
                    return
                item = next(steps)
                if isinstance(item, tuple):
                    state["waiting"] = item
                else:
                    state["resume_at"] = time.monotonic() + item
                    return
        except StopIteration:
            finish()
        except Exception as exc:  # recorded for pytest to show, then the window closes
            import traceback

            record["errors"].append("".join(traceback.format_exception(exc)))
            finish()

    def finish():
        event.cancel()
        out.write_text(json.dumps(record, indent=1))
        app.stop()

    event = Clock.schedule_interval(step, 0.03)
    try:
        app.run()
    except Exception:  # Kivy's logger is quiet here (KIVY_NO_CONSOLELOG): put it in the record
        import traceback

        record["errors"].append(traceback.format_exc())
        out.write_text(json.dumps(record, indent=1))
    session.close()


def _inside(widget, ancestor) -> bool:
    node = widget.parent
    while node is not None and node is not node.parent:
        if node is ancestor:
            return True
        node = node.parent
    return False


def drive_english(home: Path, out: Path) -> None:
    """The same window in English: the list, the choice, and messages next to their fields."""
    os.environ.pop("DISPLAY", None)
    os.environ["KIVY_NO_ARGS"] = "1"
    os.environ["KIVY_NO_CONSOLELOG"] = "1"
    os.environ["KIVY_NO_FILELOG"] = "1"
    os.environ["KIVY_HOME"] = str(home / "kivy-home")
    os.environ["KLICK_HOME"] = str(home)
    sys.path.insert(0, str(REPO))
    from dataclasses import replace

    from cards.carer.model import new_form
    from cards.carer.session import EditorSession
    from klick.config import load_config

    cfg = replace(load_config(), locale="en")
    session = EditorSession(cfg.paths.registry)
    from cards.carer.app import CarerApp  # Kivy loads here, with the carer window's settings

    # isort: split
    from kivy.clock import Clock
    from kivy.core.window import Window

    app = CarerApp(cfg, session, card_source=False)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    record = {}

    def shot(name):
        Path(Window.screenshot(name=str(ARTIFACTS / f"en-{name}.png"))).replace(ARTIFACTS / f"en-{name}.png")

    def run(_dt):
        try:
            record["list_buttons"] = [app.w["new_card"].text, app.w["undo"].text]
            shot("1-list")
            app.form = new_form(NEW)
            app.show_kinds()
            record["kinds"] = [app.w[f"kind_{k}"].text for k in ("call", "svt", "photos", "web", "command")]
            Clock.schedule_once(lambda _: second(), 0.3)
        except Exception as exc:
            record["error"] = repr(exc)
            finish()

    def second():
        try:
            shot("2-kind")
            app.choose_kind("svt")
            app.w["input_program"].text = "rapport"  # as typed: the field tells the form
            app.w["input_label"].text = "x" * 45
            app.save()
            record["messages"] = {n: f.message.text for n, f in app.fields.items() if f.message.text}
            record["message"] = app.message.text
            Clock.schedule_once(lambda _: (shot("3-errors"), finish()), 0.3)
        except Exception as exc:
            record["error"] = repr(exc)
            finish()

    def finish():
        out.write_text(json.dumps(record, indent=1))
        app.stop()

    Clock.schedule_once(run, 0.5)
    try:
        app.run()
    except Exception as exc:
        record["error"] = repr(exc)
        out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    if sys.argv[3] == "en":
        drive_english(Path(sys.argv[1]), Path(sys.argv[2]))
    else:
        drive(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
    sys.exit(0)


# =============================================================================================
# The tests (pytest side)
# =============================================================================================

import pytest  # noqa: E402
import yaml  # noqa: E402


def _env(home: Path) -> dict:
    env = dict(os.environ)
    env["KLICK_HOME"] = str(home)
    env.pop("DISPLAY", None)
    env["KIVY_NO_ARGS"] = "1"
    env["KIVY_NO_CONSOLELOG"] = "1"
    env["KIVY_HOME"] = str(home / "kivy-home")
    return env


def _make_home(root: Path) -> tuple[Path, Path]:
    home = root / "home"
    (home / "pictures").mkdir(parents=True)
    shutil.copy(REPO / "config" / "demo" / "pictures" / "anna.png", home / "pictures" / "anna.png")
    short = Path(f"/tmp/klick-carer-{os.getpid()}-{int(time.monotonic() * 1000) % 100000}")
    short.mkdir()
    (home / "klick.yaml").write_text(
        f"reader:\n  driver: sim\n  settle_ms: 60\n  grace_ms: 200\npaths:\n  socket: {short / 'bridge.sock'}\n"
    )
    (home / "cards.yaml").write_text(
        "# The family's cards (a comment the carer wrote; undo must bring it back)\n"
        "version: 1\ncards:\n"
        f'  - uid: "{ANNA}"\n    label: Anna\n    colour: blue\n    picture: pictures/anna.png\n'
        "    action:\n      type: video_call\n      provider: jitsi\n      server: https://meet.jit.si\n"
        "      room: klick-demo-familjen\n      display_name: Mamma\n"
    )
    return home, short


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Start the bridge (sim reader), run the Swedish scenario and the English pass, once."""
    home, short = _make_home(tmp_path_factory.mktemp("carer"))
    env = _env(home)
    original = (home / "cards.yaml").read_text()
    bridge_log = home / "bridge.log"
    bridge = subprocess.Popen([*KLICK, "bridge"], env=env, stdout=subprocess.DEVNULL, stderr=bridge_log.open("wb"))
    try:
        from klick.bridge_client import BridgeUnavailable, request

        deadline = time.monotonic() + 20
        while True:
            try:
                request(short / "bridge.sock", {"command": "status"}, timeout=2)
                break
            except (BridgeUnavailable, TimeoutError):
                assert bridge.poll() is None, bridge_log.read_text()
                assert time.monotonic() < deadline, "the bridge did not start"
                time.sleep(0.05)
        out = home / "record.json"
        done = subprocess.run(
            [sys.executable, __file__, str(home), str(out), "sv"], env=env, capture_output=True, text=True, timeout=120
        )
        assert out.exists(), f"the driver wrote no record:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        record = json.loads(out.read_text())
        assert not record["errors"], record["errors"][0]
        en_out = home / "record-en.json"
        done = subprocess.run(
            [sys.executable, __file__, str(home), str(en_out), "en"], env=env, capture_output=True, text=True, timeout=60
        )
        assert en_out.exists(), done.stderr[-3000:]
        yield {
            "home": home,
            "env": env,
            "original": original,
            "steps": {s["step"]: s for s in record["steps"]},
            "en": json.loads(en_out.read_text()),
        }
    finally:
        if bridge.poll() is None:
            bridge.send_signal(signal.SIGTERM)
            try:
                bridge.wait(10)
            except subprocess.TimeoutExpired:
                bridge.kill()
                bridge.wait()
        shutil.rmtree(short, ignore_errors=True)


def _cards(text: str) -> dict:
    return {c["uid"]: c for c in yaml.safe_load(text)["cards"]}


def test_the_list_shows_the_cards_and_the_reader_comes_through_the_bridge(run):
    start = run["steps"]["start"]
    assert start["cards"] == [f"card_{ANNA}"]
    assert "bryggan" in start["status"]


def test_a_new_card_gets_its_uid_from_the_bridge_and_offers_the_five_choices(run):
    kind = run["steps"]["kind"]
    assert kind["uid"] == NEW
    assert kind["choices"] == ["kind_call", "kind_command", "kind_photos", "kind_svt", "kind_web"]


def test_each_choice_shows_only_the_fields_it_needs(run):
    assert run["steps"]["call fields"]["fields"] == ["label", "provider", "server", "room", "display_name", "colour", "picture"]
    assert run["steps"]["web fields"]["fields"] == ["label", "url", "colour", "picture"]


def test_mistakes_are_shown_next_to_their_fields_and_nothing_is_saved(run):
    bad = run["steps"]["invalid save"]
    assert bad["page"] == "edit"
    assert set(bad["fields_shown"]) == {"server", "room"}
    assert "https://" in bad["fields_shown"]["server"]
    assert "mellanslag" in bad["fields_shown"]["room"]
    assert "inte sparat" in bad["message"]
    assert bad["file"] == run["original"]


def test_the_preview_follows_the_form(run):
    fixed = run["steps"]["fixed"]
    assert fixed["fields_shown"] == {}, "fixed fields must lose their messages"
    assert fixed["preview_label"] == "Mormor" and fixed["preview_colour"] == "#1B6E3A"
    assert fixed["preview_words"] == "Ringer Mormor med videosamtal"


def test_saving_writes_the_card_file_and_undo_restores_it_byte_for_byte(run):
    saved = run["steps"]["saved"]
    cards = _cards(saved["file"])
    assert cards[NEW]["label"] == "Mormor" and cards[NEW]["colour"] == "#1B6E3A"
    assert cards[NEW]["action"] == {
        "type": "video_call",
        "provider": "jitsi",
        "server": "https://meet.example.se",
        "room": "familjen-berg",
    }
    assert cards[ANNA]["label"] == "Anna"
    assert sorted(saved["cards"]) == sorted([f"card_{ANNA}", f"card_{NEW}"])
    assert "Sparat: Mormor" in saved["message"]
    undone = run["steps"]["undone"]
    assert undone["file"] == run["original"]
    assert undone["cards"] == [f"card_{ANNA}"] and undone["undo_disabled"]
    assert "Ångrat" in undone["message"]


def test_a_picture_is_chosen_with_the_file_chooser_and_saved_relative(run):
    chosen = run["steps"]["picture chosen"]
    picture = str(run["home"] / "pictures" / "anna.png")
    assert chosen["picture"] == picture and chosen["preview_picture"] == picture
    assert _cards(run["steps"]["web saved"]["file"])[WEB]["picture"] == "pictures/anna.png"


def test_a_known_card_opens_its_own_page_and_escape_goes_back(run):
    known = run["steps"]["known card"]
    assert known["uid"] == ANNA and known["label"] == "Anna"
    assert not known["is_new"] and known["has_delete"]
    assert run["steps"]["escape"]["page"] == "list"


def test_the_programmed_card_appears_in_klick_cards_list(run):
    home = run["home"]
    final = _cards((home / "cards.yaml").read_text())
    assert final[WEB]["action"] == {"type": "web", "url": "https://www.smhi.se/"}
    assert NEW not in final  # undone
    listing = subprocess.run([*KLICK, "cards", "list"], env=run["env"], capture_output=True, text=True, timeout=30)
    assert listing.returncode == 0, listing.stderr
    assert WEB in listing.stdout and "Vädret i Lund" in listing.stdout and "www.smhi.se" in listing.stdout
    check = subprocess.run([*KLICK, "cards", "check"], env=run["env"], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr


def test_english_words_and_messages(run):
    en = run["en"]
    assert "error" not in en, en.get("error")
    assert en["list_buttons"] == ["Program a new card", "Undo"]
    assert en["kinds"] == ["Call someone", "Watch SVT", "Show photos", "Open a web page", "Advanced: start a program"]
    assert "SVT Play address" in en["messages"]["program"]
    assert "45 letters" in en["messages"]["label"]
    assert "not saved" in en["message"]


def test_screenshots_have_real_pixels(run):
    from PIL import Image

    for name in ("sv-1-list", "sv-3-kind", "sv-4-errors", "sv-5-form", "en-3-errors"):
        image = Image.open(ARTIFACTS / f"{name}.png").convert("RGB")
        assert image.size == (1280, 820), name
        colours = image.getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 50, f"{name} looks blank"
