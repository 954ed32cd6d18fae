"""Every screen of the launcher, laid out at every text size, in both languages, with short and
long card labels, at the sizes tablets have: no text leaves its box or the window, no two texts
overlap, and no word is broken or cut (issue 11, section 1; issue 15's four sizes).

One Kivy app in one process lays itself out again for each combination: the window is created at
1920x1280 (an offscreen window cannot grow later) and then given each tablet's size; the text
size and the language change through :meth:`launcher.app.LauncherApp.relayout`, as a compositor's
resize does. The screens are set straight on the session (the layout is what is tested here; the
events that lead to each screen have their own tests), next to a real `klick bridge` with the
simulated reader. Each combination is checked from the widgets' rendered textures
(tests/layout_check.py) one frame after it was set; PNGs go to artifacts/layout/.

Labels: 1, 12, 28 and 40 letters, with long Swedish compound words ("Barnbarnsbarnens
midsommarfirande i Ydre"). Every screen is checked at every size; PNGs are kept of every screen
at 1280x800 and of home and the card screens at every size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # when run as the launcher's script

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts" / "layout"
SIZES = [(1280, 800), (1024, 600), (1920, 1200), (800, 1280)]
TEXT_SIZES = ["normal", "large", "larger"]
LOCALES = ["sv", "en"]
#: 1, 12, 28 and 40 letters (and spaces), the longest a card label may be.
LABELS = {
    1: "Å",
    12: "Sommarstugan",
    28: "Morfar Karl-Gustaf Andersson",
    40: "Barnbarnsbarnens midsommarfirande i Ydre",
}
KINDS = ["video_call", "svt_channel", "svt_program", "photo_album", "web", "command"]
COLOURS = {"video_call": "blue", "svt_channel": "green", "svt_program": "red", "photo_album": "purple", "web": "yellow"}
CARER, UNKNOWN = "04CA4E4000000001", "04FFFFFFFFFF01"
PIN = "2468"

pytestmark = [pytest.mark.ui, pytest.mark.slow]


def uid_for(kind: str, length: int, picture: bool = True) -> str:
    return f"04{KINDS.index(kind):02X}{length:02X}{0 if picture else 1:02X}00000{0:01X}"


def card_yaml(kind: str, length: int, picture: bool = True) -> str:
    actions = {
        "video_call": "      type: video_call\n      provider: jitsi\n      server: https://meet.jit.si\n      room: klick-test\n",
        "svt_channel": "      type: svt_play\n      channel: svt1\n",
        "svt_program": "      type: svt_play\n      program: /rapport\n",
        "photo_album": f"      type: photo_album\n      folder: {REPO}/config/demo/album\n",
        "web": "      type: web\n      url: https://www.smhi.se/vader\n",
        "command": '      type: command\n      argv: ["/nonexistent/klick-radio"]\n',
    }
    text = (
        f'  - uid: "{uid_for(kind, length, picture)}"\n    label: {LABELS[length]}\n    colour: {COLOURS.get(kind, "orange")}\n'
    )
    if picture:
        text += f"    picture: {REPO}/config/demo/pictures/anna.png\n"
    return text + "    action:\n" + actions[kind]


def write_home(home: Path) -> None:
    from klick.pin import hash_pin

    cards = "version: 1\ncards:\n"
    for kind in KINDS:
        for length in LABELS:
            cards += card_yaml(kind, length)
    for length in LABELS:
        cards += card_yaml("web", length, picture=False)
    cards += f'  - uid: "{CARER}"\n    label: Personal\n    role: carer\n'
    (home / "cards.yaml").write_text(cards, encoding="utf-8")
    (home / "photos" / "Sommaren 2026 hos mormor").mkdir(parents=True)
    (home / "photos" / "Sommaren 2026 hos mormor" / "a.png").write_bytes((REPO / "config/demo/pictures/anna.png").read_bytes())
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    (home / "klick.yaml").write_text(
        f'reader:\n  driver: sim\n  grace_ms: 0\nlocale: sv\nhelp_contact: "Eva i hemtjänsten, 042-10 20 30"\n'
        f"display:\n  width: 1920\n  height: 1280\n"
        f"browser:\n  command: {json.dumps(sleeper)}\npaths:\n  socket: {home / 'b.sock'}\n"
        f'pilot:\n  device_name: test-layout\n  enrolled: true\ncarer:\n  pin_hash: "{hash_pin(PIN)}"\n'
        "calls:\n  allowed_servers: [https://meet.jit.si]\n",
        encoding="utf-8",
    )


# --- the driver (runs in the subprocess) -------------------------------------------------------


def cases(app) -> list[tuple[str, int | None, object]]:
    """(name, label length or None, set-up) for every screen; a set-up puts it on the session
    and returns how many frames it needs before it is checked."""
    from klick.feedback import Prompt
    from klick.questionnaire import SMILEY_OPTIONS, YES_NO_OPTIONS, Option
    from klick.questionnaire import Text as QText
    from launcher import session as S

    session = app.session
    card = app.registry.get

    def show(screen, *, mode: str = "slot", frames: int = 1):
        def setup() -> int:
            session.configured_mode = mode
            session.reader, session.bridge_connected = "connected", True
            session.unready_since = None
            session.screen = screen() if callable(screen) else screen
            app.render()
            return frames

        return setup

    def prompt(kind: str, sv: str, en: str, options=(), uid: str | None = None):
        return Prompt(hash((kind, sv, uid)) & 0xFFFFFF, "q", kind, QText(sv, en), tuple(options), uid=uid)

    choices = [
        Option("both", QText("Ja, både ljud och bild fungerade bra", "Yes, both sound and picture worked")),
        Option("see", QText("Bara bilden", "Only the picture")),
        Option("hear", QText("Bara ljudet", "Only the sound")),
        Option("neither", QText("Nej, inget av dem fungerade", "No, neither of them worked")),
    ]

    def home_notice() -> int:
        session.pin = S.PinThrottle(3, session.clock() + 600)
        session.notice_until = session.clock() + 60
        return show(S.Home("carer_paused"))()

    def home_searching() -> int:
        frames = show(S.Home())()
        session.reader = "searching"
        session.unready_since = session.steady()  # searching just now: home stays (for 10 s)
        app.render()
        return frames

    def carer_page(page: str, **info):
        def setup() -> int:
            frames = show(S.CarerMode(card(CARER)))()
            session.remember_unknown(UNKNOWN, time.time())
            app.render()
            if page != "menu":
                carer = app.screens["carer"]
                carer.card_uid = UNKNOWN
                carer.show(page, **info)
            return frames + (3 if page == "web" else 0)

        return setup

    def album() -> int:
        album_card = card(uid_for("photo_album", 12))
        screen = app.screens["album"]
        from launcher.actions import album_pictures

        screen.begin(album_pictures(album_card.action.folder), album_card.action.folder)
        app.album_card = album_card
        frames = show(S.ShowingCard(album_card, "running", present=False), mode="tap")()
        if not screen.paused:
            screen.toggle_pause()
        return frames + 1

    out: list[tuple[str, int | None, object]] = [
        ("home", None, show(S.Home())),
        ("home_pin_notice", None, home_notice),
        ("home_reader_searching", None, home_searching),
        ("reader_starting", None, show(S.ReaderStarting())),
        ("reader_lost", None, show(S.ReaderLost("the reader was unplugged"))),
        ("unknown_card", None, show(S.UnknownCard(UNKNOWN))),
        ("unknown_card_tap", None, show(S.UnknownCard(UNKNOWN), mode="tap")),
        ("switched_off", None, show(S.UnknownCard(UNKNOWN, "disabled"))),
        ("cards_unreadable", None, show(S.CardsUnreadable())),
        ("carer_not_set_up", None, show(S.CarerNotSetUp(card(CARER)))),
        (
            "prompt_smiley5",
            None,
            show(
                S.Asking(prompt("smiley5", "Hur tycker du om Klick hittills?", "How do you like Klick so far?", SMILEY_OPTIONS))
            ),
        ),
        (
            "prompt_yes_no",
            None,
            show(
                S.Asking(
                    prompt(
                        "yes_no",
                        "Har du pratat med någon du tycker om den här veckan?",
                        "Have you talked with someone you care about this week?",
                        YES_NO_OPTIONS,
                    )
                )
            ),
        ),
        (
            "prompt_choice",
            None,
            show(
                S.Asking(
                    prompt(
                        "choice",
                        "Kunde du se och höra bra under samtalet?",
                        "Could you see and hear well during the call?",
                        choices,
                    )
                )
            ),
        ),
        (
            "prompt_free_text",
            None,
            show(
                S.Asking(
                    prompt(
                        "free_text",
                        "Vad var svårt? Berätta gärna med egna ord.",
                        "What was difficult? Tell us in your own words.",
                    )
                ),
                frames=4,
            ),
        ),
        ("thanks", None, show(S.Thanks())),
        ("pin", None, show(S.CarerPin(card(CARER), failures=1))),
        ("pin_checking", None, show(S.CarerPin(card(CARER), failures=0, checking=True))),
        ("carer_menu", None, carer_page("menu")),
        ("carer_choose", None, carer_page("choose")),
        ("carer_photos", None, carer_page("photos")),
        ("carer_web", None, carer_page("web")),
        ("carer_problem", None, carer_page("problem", reason="card_file")),
        ("carer_saving", None, carer_page("saving")),
        ("carer_busy", None, carer_page("problem", reason="busy")),
        ("album_paused", None, album),
    ]
    for length in LABELS:
        for kind in KINDS:
            c = card(uid_for(kind, length))
            out.append((f"card_{kind}", length, show(S.ShowingCard(c, "running"))))
        c = card(uid_for("web", length, picture=False))
        out.append(("card_no_picture", length, show(S.ShowingCard(c, "running"))))
        out.append(("card_finished_tap", length, show(S.ShowingCard(card(uid_for("web", length)), "finished"), mode="tap")))
        call = card(uid_for("video_call", length))
        out.append(("call_failed", length, show(S.ActionFailed(call, "conference_failed"))))
        out.append(("call_ended", length, show(S.CallEnded(call))))
        out.append(("action_failed", length, show(S.ActionFailed(card(uid_for("command", length)), "missing"))))
        out.append(("someone_waiting", length, show(S.Home(waiting=call))))
        out.append(
            (
                "prompt_about_card",
                length,
                show(
                    S.Asking(
                        prompt(
                            "smiley5",
                            "Hur gick samtalet med {card}?",
                            "How did the call with {card} go?",
                            SMILEY_OPTIONS,
                            uid=call.uid,
                        )
                    )
                ),
            )
        )
        out.append(("carer_saved", length, carer_saved(app, card(uid_for("svt_program", length)))))
    return out


def carer_saved(app, card):
    from launcher import session as S

    def setup() -> int:
        app.session.reader, app.session.bridge_connected = "connected", True
        app.session.configured_mode = "slot"
        app.session.screen = S.CarerMode(app.registry.get(CARER))
        app.render()
        app.screens["carer"].show("saved", card=card)
        return 1

    return setup


#: The combinations with the smallest words for their text size get a PNG at the end, to be
#: looked at (an 80-year-old reads the smallest words on a screen last).
WORST_KEPT = 12
SCALES = {"normal": 1.0, "large": 1.25, "larger": 1.5}


def worst_first(c: dict) -> tuple:
    return (c["smallest_px"] / SCALES[c["text_size"]], c["shrink"])


def keep_png(name: str, size: tuple[int, int], text_size: str, locale: str) -> bool:
    """Every screen at 1280x800 at ``larger`` (both languages) and at ``normal`` (Swedish); home and
    the call card's screen at every size and text size. (Saving every combination's PNG would
    take a minute longer; the layout of every combination is checked all the same.)"""
    if size == (1280, 800):
        return text_size == "larger" or (text_size == "normal" and locale == "sv")
    return locale == "sv" and name in ("home", "card_video_call")


def png_path(key: dict) -> Path:
    label = f"-{key['label']}" if key["label"] is not None else ""
    return ARTIFACTS / f"{key['screen']}{label}-{key['text_size']}-{key['locale']}-{key['size'][0]}x{key['size'][1]}.png"


def _drive(home: Path, out: Path) -> None:
    from tests.launcher_harness import offscreen_env, start_bridge, stop_bridge

    offscreen_env(home)
    from klick.config import load_config
    from launcher.kivy_setup import configure_kivy

    cfg = load_config(home / "klick.yaml")
    bridge = start_bridge(home)
    configure_kivy(cfg, offscreen=True)
    from kivy.clock import Clock
    from kivy.core.window import Window

    from launcher.app import LauncherApp
    from tests.layout_check import layout_problems, texts_on_show

    results: dict = {"checked": [], "errors": [], "started": time.monotonic()}

    def check(app: LauncherApp, key: dict) -> None:
        name, size = key["screen"], tuple(key["size"])
        if key.get("reshoot"):
            app.screenshot(png_path(key))
            key["entry"]["png"] = str(png_path(key).relative_to(REPO))
            return
        problems = layout_problems(Window, size=size)
        texts, _ = texts_on_show(Window)
        shortened = [n for n, _r, widget in texts if getattr(getattr(widget, "fitted", None), "shortened", False)]
        # How far the words had to shrink from their role's size (1 = not at all).
        shrink = [
            round(widget.font_size / widget.max_px, 3)
            for _n, _r, widget in texts
            if getattr(widget, "max_px", 0) and widget.font_size
        ]
        smallest = min((widget.font_size for _n, _r, widget in texts if hasattr(widget, "max_px")), default=0)
        png = None
        if keep_png(name, size, key["text_size"], key["locale"]):
            app.screenshot(png_path(key))
            png = str(png_path(key).relative_to(REPO))
        results["checked"].append(
            {
                **key,
                "problems": problems,
                "shortened": shortened,
                "shrink": min(shrink, default=1.0),
                "smallest_px": smallest,
                "png": png,
            }
        )

    def probe(app: LauncherApp) -> None:
        plan = []
        for size in SIZES:
            for text_size in TEXT_SIZES:
                for locale in LOCALES:
                    plan.append((size, text_size, locale))
        state: dict = {"plan": plan, "cases": [], "pending": None, "wait": 0, "reshoot": None}

        def ready() -> bool:
            s = app.session
            return s.bridge_connected and s.reader == "connected"

        def step(_dt: float) -> None:
            try:
                if state["wait"] > 0:
                    state["wait"] -= 1
                    return
                if state["pending"] is not None:
                    check(app, state["pending"])
                    state["pending"] = None
                if not state["cases"]:
                    if not state["plan"]:
                        if state["reshoot"] is None:
                            # The most shrunk combinations, laid out again for a PNG to look at.
                            unseen = [c for c in results["checked"] if not c["png"]]
                            worst = sorted(unseen, key=worst_first)[:WORST_KEPT]
                            state["reshoot"] = worst
                            state["plan"] = [(tuple(c["size"]), c["text_size"], c["locale"], c) for c in worst]
                        if not state["plan"]:
                            finish()
                            return
                    combo = state["plan"].pop(0)
                    size, text_size, locale = combo[:3]
                    Window.size = size
                    app.relayout(text_size=text_size, locale=locale)
                    state["combo"] = (size, text_size, locale)
                    state["cases"] = cases(app)
                    if len(combo) == 4:  # a PNG of one combination only
                        entry = combo[3]
                        state["cases"] = [c for c in state["cases"] if (c[0], c[1]) == (entry["screen"], entry["label"])]
                        state["entry"] = entry
                    else:
                        state["entry"] = None
                    state["wait"] = 2
                    return
                name, label, setup = state["cases"].pop(0)
                size, text_size, locale = state["combo"]
                state["wait"] = setup() - 1
                state["pending"] = {"screen": name, "label": label, "size": list(size), "text_size": text_size, "locale": locale}
                if state["entry"] is not None:
                    state["pending"].update(reshoot=True, entry=state["entry"])
            except Exception:
                import traceback

                results["errors"].append(traceback.format_exc())
                finish()

        def finish() -> None:
            state["event"].cancel()
            results["seconds"] = time.monotonic() - results.pop("started")
            out.write_text(json.dumps(results), encoding="utf-8")
            app.quit()

        def begin(_dt: float) -> None:
            if not ready():
                Clock.schedule_once(begin, 0.05)
                return
            results["started"] = time.monotonic()
            state["event"] = Clock.schedule_interval(step, 0)

        Clock.schedule_once(begin, 0.3)

    try:
        LauncherApp(cfg, probe=probe).run()
    finally:
        stop_bridge(bridge)


# --- the tests ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("layout")
    write_home(home)
    out = home / "results.json"
    env = {key: v for key, v in os.environ.items() if key not in ("DISPLAY", "WAYLAND_DISPLAY")}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, __file__, str(home), str(out)],
        capture_output=True,
        text=True,
        timeout=500,
        env=dict(env, KLICK_HOME=str(home)),
        cwd=REPO,
    )
    assert out.exists(), f"the layout run wrote no results (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    results = json.loads(out.read_text())
    results["wall"] = time.monotonic() - started
    worst = sorted(results["checked"], key=worst_first)[:WORST_KEPT]
    print(
        f"\nlayout: {len(results['checked'])} combinations in {results.get('seconds', 0):.0f} s "
        f"({results['wall']:.0f} s with start-up); the smallest words for their text size:"
    )
    for c in worst:
        print(f"  {c['smallest_px']} px: {c['screen']} label {c['label']} {c['text_size']} {c['locale']} {c['size']}: {c['png']}")
    return results


def test_every_screen_at_every_text_size_language_label_and_tablet_size_was_laid_out(layout):
    assert layout["errors"] == []
    combos = {(c["screen"], c["label"], c["text_size"], c["locale"], tuple(c["size"])) for c in layout["checked"]}
    screens = {c["screen"] for c in layout["checked"]}
    assert {"home", "reader_starting", "prompt_free_text", "thanks", "album_paused", "someone_waiting", "call_ended"} <= screens
    for size in SIZES:
        for text_size in TEXT_SIZES:
            for locale in LOCALES:
                for length in LABELS:
                    assert ("card_video_call", length, text_size, locale, size) in combos


def test_no_text_leaves_its_box_or_the_window_and_no_two_texts_overlap(layout):
    problems = {
        f"{c['screen']} label={c['label']} {c['text_size']} {c['locale']} {c['size'][0]}x{c['size'][1]}": c["problems"]
        for c in layout["checked"]
        if c["problems"]
    }
    assert problems == {}


def test_no_word_is_broken_or_cut(layout):
    """Words shrink, then wrap between words: none needed "…" (the fitting rule's last resort)."""
    cut = {
        f"{c['screen']} label={c['label']} {c['text_size']} {c['locale']} {c['size'][0]}x{c['size'][1]}": c["shortened"]
        for c in layout["checked"]
        if c["shortened"]
    }
    assert cut == {}


def test_no_text_below_32_px(layout):
    small = [(c["screen"], c["smallest_px"]) for c in layout["checked"] if c["smallest_px"] and c["smallest_px"] < 32]
    assert small == []


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_home_fills_the_window_at_the_sizes_tablets_have(layout, size):
    """From home's pixels: the whole window is the launcher's, nothing is cut at an edge, the slot
    picture stands where home's layout puts it and the clock is as large as the size calls for."""
    from PIL import Image

    from tests.test_kiosk import home_problems

    with Image.open(ARTIFACTS / f"home-normal-sv-{size[0]}x{size[1]}.png") as img:
        assert home_problems(img.convert("RGB"), size) == []


def test_the_card_screen_with_a_40_letter_label_at_larger_is_kept_as_png_in_both_languages(layout):
    for locale in LOCALES:
        png = REPO / "artifacts" / "layout" / f"card_video_call-40-larger-{locale}-1280x800.png"
        assert png.is_file() and png.stat().st_size > 10_000


if __name__ == "__main__":
    _drive(Path(sys.argv[1]), Path(sys.argv[2]))
