"""The launcher's pure parts: call URLs and browser argv, running and ending a process group,
the album's order, WCAG contrast of every colour pair, text and touch sizes, the catalogs."""

from __future__ import annotations

import ast
import os
import signal
import sys
import time
from pathlib import Path
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cards.colours import PALETTE
from cards.model import Command, PhotoAlbum, SvtPlay, VideoCall, Web
from klick.config import load_config
from launcher import actions, theme
from launcher.i18n import LANGUAGES, Words, catalog_path, compile_mo, parse_po
from launcher.keys import KeyComboError, parse_keys
from launcher.wording import MONTHS, WEEKDAYS

LAUNCHER = Path(__file__).resolve().parent.parent / "launcher"


@pytest.fixture
def cfg():
    from dataclasses import replace

    from klick.config import CallsConfig

    return replace(load_config(), calls=CallsConfig(("https://meet.example.se", "https://teams.microsoft.com")))


# --- actions ----------------------------------------------------------------------------------


def test_jitsi_url_skips_prejoin_and_encodes_the_name():
    url = actions.jitsi_url("https://meet.example.se/", "familjen-andersson", 'Åsa "Mormor" & co')
    base, fragment = url.split("#")
    assert base == "https://meet.example.se/familjen-andersson"
    assert fragment.startswith("config.prejoinConfig.enabled=false&userInfo.displayName=")
    name = fragment.split("userInfo.displayName=")[1]
    assert "&" not in name and " " not in name and '"' not in name
    assert unquote(name) == '"Åsa \\"Mormor\\" & co"'


def test_teams_skype_and_svt_addresses():
    assert actions.teams_url("anna@example.se") == "https://teams.microsoft.com/l/call/0/0?users=anna@example.se"
    assert actions.skype_uri("anna.andersson") == "skype:anna.andersson?call"
    assert actions.svt_url("svt1", "") == "https://www.svtplay.se/kanaler/svt1"
    assert actions.svt_url("", "/rapport") == "https://www.svtplay.se/rapport"


def test_browser_argv_uses_profiles_and_grants_the_camera_only_to_the_call_server_never_by_a_switch(cfg):
    call = actions.plan(VideoCall("jitsi", "https://meet.example.se", "room", "Mamma"), cfg)
    web = actions.plan(Web("https://www.smhi.se"), cfg)
    tv = actions.plan(SvtPlay(channel="svt1"), cfg)
    teams = actions.plan(VideoCall("teams", user="a@b.se"), cfg)
    assert call.argv[: len(cfg.browser.command)] == cfg.browser.command
    assert f"--user-data-dir={cfg.browser.call_profile}" in call.argv
    assert (call.camera_origin, call.jitsi, call.profile) == ("https://meet.example.se", True, cfg.browser.call_profile)
    assert (teams.camera_origin, teams.jitsi) == ("https://teams.microsoft.com", False)
    assert teams.url.startswith("https://teams.microsoft.com/l/call/0/0?users=")
    for other in (web, tv):
        assert f"--user-data-dir={cfg.browser.profile}" in other.argv
        assert other.camera_origin is None and other.profile == cfg.browser.profile
    assert web.url == "https://www.smhi.se"
    for page in (call, web, tv, teams):
        # No switch that answers yes to a prompt; every prompt is answered no; the page comes
        # over the launcher's own pipe, after the grant, never on the command line.
        assert not any(a.startswith(("--use-fake-ui", "--auto-accept-camera")) for a in page.argv)
        assert "--deny-permission-prompts" in page.argv and "--remote-debugging-pipe" in page.argv
        assert page.argv[-1].startswith("data:text/html,") and page.url not in page.argv
        assert f"--window-size={cfg.display.width},{cfg.display.height}" in page.argv
    assert actions.plan(VideoCall("skype", name="anna"), cfg).argv == ("xdg-open", "skype:anna?call")


def test_a_skype_card_calls_the_name_in_its_card_file_line(cfg, tmp_path):
    from cards.registry import load_registry

    (tmp_path / "cards.yaml").write_text(
        """cards:
  - uid: "04A2B3C4D5E681"
    label: Anna
    action: {type: video_call, provider: skype, name: live:anna.andersson_1}
""",
        encoding="utf-8",
    )
    card = load_registry(tmp_path / "cards.yaml").get("04A2B3C4D5E681")
    assert actions.plan(card.action, cfg) == actions.External(("xdg-open", "skype:live:anna.andersson_1?call"), "Skype")


def test_a_call_to_a_server_not_allowed_never_starts_the_browser(cfg):
    from dataclasses import replace

    from klick.config import CallsConfig

    for server in (
        "https://meet.evil.example",
        "https://meet.example.se@evil.example",
        "https://meet.example.se:8443",
        "http://meet.example.se",
    ):
        step = actions.plan(VideoCall("jitsi", server, "room", "Mamma"), cfg)
        assert isinstance(step, actions.Unrunnable) and step.reason == "server_not_allowed", server
    assert actions.plan(VideoCall("jitsi", "https://meet.evil.example/x", "room"), cfg).detail == "https://meet.evil.example"
    # Any spelling of a listed server is that server.
    assert isinstance(actions.plan(VideoCall("jitsi", "https://MEET.example.se:443/", "room"), cfg), actions.BrowserPage)
    nothing = replace(cfg, calls=CallsConfig(()))
    for call in (VideoCall("jitsi", "https://meet.example.se", "room"), VideoCall("teams", user="a@b.se")):
        assert actions.plan(call, nothing) == actions.Unrunnable("server_not_allowed", actions.call_server(call).rstrip("/"))
    # Skype runs its own program (which asks for the camera itself); the list is about the browser.
    assert isinstance(actions.plan(VideoCall("skype", name="anna"), nothing), actions.External)


def test_the_failed_call_says_in_plain_words_why_without_the_word_server():
    from cards.model import Card
    from launcher.wording import failure_words

    card = Card(uid="04A2B3C4D5E680", label="Anna", action=VideoCall("jitsi", "https://meet.evil.example", "room"))
    title, explain = failure_words(Words("sv"), card, "server_not_allowed")
    assert title == "Samtalet med Anna kunde inte starta."
    assert explain == "Surfplattan är inte inställd för det här samtalet. Be din kontaktperson om hjälp."
    assert "server" not in explain.lower()


def test_command_argv_is_data_never_a_shell(cfg):
    step = actions.plan(Command(("echo", "Anna; rm -rf ~", "$(reboot)")), cfg)
    assert step.argv == ("echo", "Anna; rm -rf ~", "$(reboot)")
    source = "\n".join(p.read_text() for p in LAUNCHER.rglob("*.py"))
    assert "shell=True" not in source and "os.system" not in source


def test_album_plan_and_empty_album(cfg, tmp_path):
    assert actions.plan(PhotoAlbum(tmp_path), cfg) == actions.BuiltInAlbum(tmp_path)
    assert actions.plan(PhotoAlbum(None, ""), cfg) == actions.Unrunnable("no_pictures")
    assert actions.album_pictures(tmp_path) == []
    assert actions.album_pictures(tmp_path / "gone") == []


@pytest.mark.parametrize("name", ["a.webp", "b.JPG", "c.png", "d.gif", "e.bmp", "f.jpeg"])
def test_a_folder_carer_mode_offers_is_never_an_empty_album(tmp_path, name):
    from launcher import carer

    folder = tmp_path / "photos" / "Sommaren"
    folder.mkdir(parents=True)
    (folder / name).write_bytes(b"x")
    assert carer.photo_folders(tmp_path / "photos") == [folder]
    assert actions.album_pictures(folder) == [folder / name]


def test_album_newest_first_by_date_in_name_then_mtime(tmp_path):
    for name, age in (
        ("2024-05-01 fest.jpg", 0),
        ("IMG_20250102.png", 0),
        ("katten.png", 10),
        ("hund.png", 4000 * 86400),
        ("notes.txt", 0),
    ):
        p = tmp_path / name
        p.write_bytes(b"x")
        t = time.time() - age
        os.utime(p, (t, t))
    names = [p.name for p in actions.album_pictures(tmp_path)]
    assert names[0] == "katten.png"
    assert names.index("IMG_20250102.png") < names.index("2024-05-01 fest.jpg") < names.index("hund.png")
    assert "notes.txt" not in names


def test_missing_program_is_an_action_error_not_a_crash():
    with pytest.raises(actions.ActionError) as err:
        actions.start_program(("/nonexistent/klick-radio",), "radio")
    assert err.value.reason == "missing"


def test_stop_ends_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    script = (
        f"import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        f"open({str(pidfile)!r}, 'w').write(str(c.pid)); time.sleep(60)"
    )
    prog = actions.start_program((sys.executable, "-c", script), "test")
    deadline = time.monotonic() + 10
    while not pidfile.exists() or not pidfile.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    child = int(pidfile.read_text())
    assert os.getpgid(child) == prog.pid != os.getpgid(0)
    prog.stop(grace=2.0, wait=True)
    assert prog.poll() is not None
    # stop() waits for the leader only; the signal reaches the grandchild at the same moment but
    # its exit is the kernel's to finish, so give it a moment on a busy machine.
    deadline = time.monotonic() + 3
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for a parent (PID 1 in a container may never reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_stop_kills_a_program_that_ignores_sigterm():
    prog = actions.start_program(
        (
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(60)",
        ),
        "stubborn",
    )
    time.sleep(0.3)
    prog.stop(grace=0.5, wait=True)
    assert prog.poll() == -signal.SIGKILL


# --- theme ------------------------------------------------------------------------------------


@pytest.mark.parametrize("where,fg,bg", theme.SCREEN_PAIRS)
def test_every_screen_colour_pair_reaches_7_to_1(where, fg, bg):
    assert theme.contrast(fg, bg) >= 7.0, where


def test_contrast_matches_wcag_reference_values():
    assert theme.contrast("#000000", "#FFFFFF") == pytest.approx(21.0)
    assert theme.contrast("#777777", "#FFFFFF") == pytest.approx(4.48, abs=0.01)


@given(st.from_regex(r"#[0-9A-F]{6}", fullmatch=True))
def test_a_card_label_reaches_7_to_1_on_any_card_colour(colour):
    style = theme.card_text_style(colour)
    assert theme.contrast(style.text, style.band or colour) >= 7.0


def test_palette_colours_mostly_need_no_band():
    bands = [name for name, colour in PALETTE.items() if theme.card_text_style(colour).band]
    assert set(bands) <= {"green", "red"}


def test_nothing_on_the_screens_is_red():
    for name in ("BG", "TEXT", "TEXT_SOFT", "BUTTON_BG", "BUTTON_TEXT", "PANEL", "READY", "WAITING"):
        r, g, b = (int(getattr(theme, name)[i : i + 2], 16) for i in (1, 3, 5))
        assert not (r > 150 and r > g * 1.6 and r > b * 1.6), name


@pytest.mark.parametrize("scale", [1.0, 1.25, 1.5])
@pytest.mark.parametrize("size", [(1280, 800), (1024, 600), (1920, 1080), (800, 1280)])
def test_text_at_least_32_px_and_targets_at_least_16_mm(scale, size):
    s = theme.sizes_for(*size, text_scale=scale, dpi=160)
    assert min(s.text.values()) >= 32 * scale - 0.5
    assert s.touch >= 16 / 25.4 * 160
    assert theme.sizes_for(1280, 800, 1.0, 320).touch >= 16 / 25.4 * 320


# --- keys -------------------------------------------------------------------------------------


def test_quit_keys():
    combo = parse_keys("ctrl+alt+q")
    assert combo.matches("q", ["ctrl", "alt", "numlock"])
    assert not combo.matches("q", ["ctrl"])
    assert not combo.matches("escape", [])
    for bad in ("q", "escape", "ctrl+alt", "hyper+q"):
        with pytest.raises(KeyComboError):
            parse_keys(bad)


# --- words ------------------------------------------------------------------------------------


def _msgids_in_source() -> set[str]:
    ids = set(WEEKDAYS) | set(MONTHS)
    for path in LAUNCHER.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                f = node.func
                if (isinstance(f, ast.Name) and f.id == "w") or (isinstance(f, ast.Attribute) and f.attr == "w"):
                    ids.add(node.args[0].value)
    return ids


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_string_on_screen_is_translated(language):
    entries = parse_po(catalog_path(language).read_text(encoding="utf-8"))
    used = _msgids_in_source()
    assert len(used) > 40
    missing = sorted(m for m in used if not entries.get(m))
    assert missing == []
    unused = sorted(set(entries) - used - {""})
    assert unused == []


def test_swedish_is_swedish_and_fields_survive():
    sv, en = Words("sv"), Words("en")
    assert sv("Put in a card") == "Sätt i ett kort"
    assert (
        sv("This card is not set up yet.") + " " + sv("Ask your contact person for help.")
        == "Det här kortet är inte inställt än. Be din kontaktperson om hjälp."
    )
    assert sv("Calling {name}…", name="Anna") == "Ringer Anna…"
    assert en("Calling {name}…", name="Anna") == "Calling Anna…"
    assert Words("de")("Home") == "Hem"  # an unknown language falls back to Swedish


def test_mo_compiler_round_trips_through_gettext():
    import gettext
    import io

    entries = {"": "Content-Type: text/plain; charset=UTF-8\n", "a": "å", 'q"uote\n': "c\\d"}
    t = gettext.GNUTranslations(io.BytesIO(compile_mo(entries)))
    assert t.gettext("a") == "å" and t.gettext('q"uote\n') == "c\\d" and t.gettext("other") == "other"
    text = 'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n#, fuzzy\nmsgid "x"\nmsgstr "y"\n\nmsgid "long"\nmsgstr "a"\n"b"\n'
    assert parse_po(text) == {"": "Content-Type: text/plain; charset=UTF-8\n", "long": "ab"}


# --- on-screen keyboard -------------------------------------------------------------------------


def test_keyboard_keys_reach_16_mm_and_32_px_at_the_default_size(cfg):
    from launcher.screens.keyboard import layout_shape

    cols, rows = layout_shape()
    s = theme.sizes_for(1280, 800, cfg.text_scale, cfg.display.dpi)
    k = theme.keyboard_size(1280, 800, s, cfg.display.dpi, cols, rows)
    need = theme.mm_to_px(theme.MIN_TOUCH_MM, cfg.display.dpi)
    assert k.fits and min(k.key_w, k.key_h) >= need
    assert k.font_px >= 32 and k.font_px <= min(k.key_w, k.key_h)
    assert k.height <= 800 * theme.KEYBOARD_MAX_SHARE


@pytest.mark.parametrize("size,dpi", [((1024, 600), 160), ((800, 1280), 160), ((1280, 800), 300)])
def test_keyboard_on_a_screen_too_small_says_so_and_keeps_32_px(size, dpi):
    s = theme.sizes_for(*size, 1.0, dpi)
    k = theme.keyboard_size(*size, s, dpi, 11, 5)
    assert not k.fits and k.font_px >= 32 and k.height <= size[1] * theme.KEYBOARD_MAX_SHARE


def test_keyboard_colours_reach_7_to_1():
    assert theme.contrast(theme.KEY_TEXT, theme.KEY_BG) >= 7.0
    assert theme.contrast(theme.KEY_TEXT, theme.KEY_DOWN) >= 7.0


def test_keyboard_layout_has_swedish_letters_and_what_an_address_needs():
    import json

    from launcher.screens.keyboard import LAYOUT_FILE

    layout = json.loads(LAYOUT_FILE.read_text(encoding="utf-8"))
    typed = {key[1] for name, row in layout.items() if name.startswith(("normal_", "shift_")) for key in row}
    assert {"å", "ä", "ö", "Å", "Ä", "Ö", ".", "/", "-", "@"} <= typed
    for mode in ("normal", "shift"):
        for line in range(1, layout["rows"] + 1):
            assert sum(key[3] for key in layout[f"{mode}_{line}"]) == layout["cols"], (mode, line)


# --- carer mode: programming a card on the tablet -----------------------------------------------


def test_web_address_is_made_whole_or_refused():
    from launcher.carer import web_address

    assert web_address(" smhi.se ") == "https://smhi.se"
    assert web_address("www.svt.se/nyheter") == "https://www.svt.se/nyheter"
    assert web_address("http://example.se") == "http://example.se"
    for bad in ("", "inte en adress", "smhi", "ftp://x.se", "javascript:alert(1)", ".se", "x."):
        assert web_address(bad) is None, bad


def test_carer_choices_make_cards_the_registry_accepts(tmp_path):
    from cards.registry import load_registry
    from launcher import carer

    (tmp_path / "cards.yaml").write_text(
        'cards:\n  - uid: "04CA4E4000000001"\n    label: Personal\n    role: carer\n', encoding="utf-8"
    )
    album = tmp_path / "photos" / "Sommaren"
    album.mkdir(parents=True)
    (album / "a.jpg").write_bytes(b"x")
    (tmp_path / "photos" / "Tom").mkdir()
    assert carer.photo_folders(tmp_path / "photos") == [album]
    uids = ["04000000000011", "04000000000012", "04000000000013", "04000000000014"]
    made = [
        carer.card_for(uids[0], "photos", album),
        carer.card_for(uids[1], "svt1"),
        carer.card_for(uids[2], "rapport"),
        carer.card_for(uids[3], "web", "smhi.se"),
    ]
    for card in made:
        carer.program_card(tmp_path / "cards.yaml", card)
    registry = load_registry(tmp_path / "cards.yaml")
    assert [registry.get(u).label for u in uids] == ["Sommaren", "SVT1", "Rapport", "smhi.se"]
    assert registry.get(uids[0]).action.folder == album
    assert (
        actions.svt_url(registry.get(uids[2]).action.channel, registry.get(uids[2]).action.program)
        == "https://www.svtplay.se/rapport"
    )
    assert registry.get("04CA4E4000000001").role == "carer"
    assert (tmp_path / "cards.yaml.bak").exists()
    with pytest.raises(carer.ProgramError) as err:
        carer.program_card(tmp_path / "cards.yaml", carer.card_for(uids[1], "rapport"))
    assert err.value.reason == "known"
    with pytest.raises(carer.ProgramError) as err:
        carer.card_for(uids[0], "web", "inte en adress")
    assert err.value.reason == "address"


def test_a_broken_card_file_is_left_alone(tmp_path):
    from launcher import carer

    broken = "cards:\n  - uid: [\n"
    (tmp_path / "cards.yaml").write_text(broken, encoding="utf-8")
    with pytest.raises(carer.ProgramError) as err:
        carer.program_card(tmp_path / "cards.yaml", carer.card_for("04000000000011", "svt1"))
    assert err.value.reason == "card_file"
    assert (tmp_path / "cards.yaml").read_text(encoding="utf-8") == broken


def test_the_demo_lists_its_own_call_server_so_its_call_card_runs(tmp_path):
    from cards.registry import load_registry
    from launcher.demo import prepare_demo_home

    demo = prepare_demo_home(tmp_path / "demo")
    cfg = load_config(demo.config)
    assert cfg.calls.allowed_servers == ("https://meet.jit.si",)
    calls = [c for c in load_registry(demo.cards).cards if c.action is not None and c.action.type == "video_call"]
    assert calls
    for card in calls:
        step = actions.plan(card.action, cfg)
        assert isinstance(step, actions.BrowserPage) and step.camera_origin == "https://meet.jit.si"


# --- section 2 and 7's words; the tap pause; the questionnaire read again -------------------------


def test_an_svt_card_is_called_by_its_label_and_only_a_card_without_one_by_its_channel():
    from cards.model import Card
    from launcher.wording import status_words

    sv = Words("sv")
    svt1 = Card(uid="01", label="Nyheter", action=SvtPlay(channel="svt1"))
    barn = Card(uid="02", label="", action=SvtPlay(channel="svtbarn"))
    sparet = Card(uid="03", label="På spåret", action=SvtPlay(program="/pa-sparet"))
    assert status_words(sv, svt1, "starting", "slot") == "Startar Nyheter…"
    assert status_words(sv, barn, "starting", "slot") == "Startar SVT Barn…"
    assert status_words(sv, sparet, "starting", "slot") == "Startar På spåret…"
    assert status_words(Words("en"), sparet, "starting", "slot") == "Starting På spåret…"


def test_a_question_names_its_card_or_says_the_card():
    from types import SimpleNamespace

    from klick.questionnaire import Text
    from launcher.wording import question_words

    prompt = SimpleNamespace(text=Text("Hur gick samtalet med {card}?", "How did the call with {card} go?"))
    anna = SimpleNamespace(label="Anna")
    assert question_words(Words("sv"), prompt, anna, "sv") == "Hur gick samtalet med Anna?"
    assert question_words(Words("en"), prompt, anna, "en") == "How did the call with Anna go?"
    assert question_words(Words("sv"), prompt, None, "sv") == "Hur gick samtalet med kortet?"
    plain = SimpleNamespace(text=Text("Hur gick det?", "How did it go?"))
    assert question_words(Words("sv"), plain, None, "sv") == "Hur gick det?"


def test_a_second_tap_within_a_second_counts_for_nothing():
    from launcher.taps import TapGuard

    now = [100.0]
    guard = TapGuard(clock=lambda: now[0])
    assert guard.accept()
    now[0] += 0.3
    assert not guard.accept()  # the same press, twice
    now[0] += 0.6
    assert not guard.accept()  # still within a second of the one that counted
    now[0] += 0.2
    assert guard.accept()


@given(st.lists(st.floats(min_value=0, max_value=3), max_size=30))
def test_taps_that_count_are_always_a_second_apart(gaps):
    from launcher.taps import TAP_PAUSE_S, TapGuard

    now = [0.0]
    guard = TapGuard(clock=lambda: now[0])
    counted = []
    for gap in gaps:
        now[0] += gap
        if guard.accept():
            counted.append(now[0])
    assert all(b - a >= TAP_PAUSE_S for a, b in zip(counted, counted[1:]))


QUESTIONS = """version: 1
questions:
  - id: {qid}
    kind: yes_no
    text: {{sv: "Fråga?", en: "Question?"}}
    triggers:
      - weekday: monday
"""


def test_the_questionnaire_is_read_again_when_it_changes_and_a_broken_one_keeps_the_last_good(tmp_path, caplog):
    import logging

    from klick.atomic import write_atomic
    from launcher.services import QuestionnaireWatch

    path = tmp_path / "questionnaire.yaml"
    watch = QuestionnaireWatch(path)
    assert watch.current is None and not watch.changed()  # none yet: nothing is asked
    write_atomic(path, QUESTIONS.format(qid="first").encode())
    assert watch.changed() and watch.check()
    assert [q.id for q in watch.current.questions] == ["first"]
    assert not watch.changed() and not watch.check()
    with caplog.at_level(logging.INFO, logger="klick.launcher"):
        write_atomic(path, b"version: 1\nquestions:\n  - id: Not An Id\n")
        assert watch.check() is False
        assert watch.check() is False  # the same broken file: no second line
    assert [q.id for q in watch.current.questions] == ["first"]
    lines = [r.getMessage() for r in caplog.records if "questionnaire has a mistake" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0] and "keeps the questions it had" in lines[0]
    write_atomic(path, QUESTIONS.format(qid="second").encode())
    assert watch.check() and [q.id for q in watch.current.questions] == ["second"]
    path.unlink()
    assert watch.check() is False and [q.id for q in watch.current.questions] == ["second"]


@pytest.mark.parametrize("junk", [b"\xff\xfe\x00", b"[" * 5000, b"version: 1\nquestions: 7\n", b"- - - -\n"])
def test_a_questionnaire_of_junk_is_a_problem_not_a_crash(tmp_path, junk):
    from launcher.services import QuestionnaireWatch

    path = tmp_path / "questionnaire.yaml"
    path.write_bytes(junk)
    watch = QuestionnaireWatch(path)
    assert watch.current is None and watch.problem


@pytest.mark.parametrize("player", ["paplay", "aplay"])
def test_the_chime_leaves_no_file_behind(tmp_path, monkeypatch, player):
    """The chime goes to the sound player on its standard input: no klick-chime-*.wav in /tmp per run."""
    import tempfile

    bin_dir, temp = tmp_path / "bin", tmp_path / "tmp"
    bin_dir.mkdir()
    temp.mkdir()
    got = tmp_path / "got"
    fake = bin_dir / player  # records what it was given, as the real player would play it
    fake.write_text(f'#!/bin/sh\nprintf "%s " "$@" > {got}.args\n/bin/cat > {got}.part\n/bin/mv {got}.part {got}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    actions.announce("Anna väntar", "sv", speech=False)
    deadline = time.monotonic() + 20
    while not got.exists():
        assert time.monotonic() < deadline, "the chime never reached the player"
        time.sleep(0.02)
    assert got.read_bytes() == actions.chime_wav()
    assert list(temp.iterdir()) == []


def test_the_programs_log_is_moved_aside_past_its_limit_keeping_one_older_copy(tmp_path):
    tmp_path = tmp_path / "data"
    tmp_path.mkdir()
    log = tmp_path / actions.ACTIONS_LOG
    assert actions.actions_log(tmp_path) == log  # none yet
    log.write_bytes(b"x" * 100)
    assert actions.actions_log(tmp_path) == log and log.stat().st_size == 100
    for fill in (b"a", b"b"):
        log.write_bytes(fill * (actions.ACTIONS_LOG_MAX + 1))
        assert actions.actions_log(tmp_path) == log
        assert not log.exists()
        assert (tmp_path / (actions.ACTIONS_LOG + ".1")).read_bytes()[:1] == fill
    assert sorted(p.name for p in tmp_path.iterdir()) == [actions.ACTIONS_LOG + ".1"]


def test_the_try_later_outcomes_are_listed_once():
    """The four "could not start, try later" outcomes: the browser's list, used by the session and the words."""
    from launcher import browser, session, wording

    assert session.CALL_FAILURES is browser.TRY_LATER and wording.TRY_LATER is browser.TRY_LATER
    assert browser.VERDICTS == (*browser.TRY_LATER, browser.ENDED)
    assert set(browser.TRY_LATER) <= set(session.FAILURE_REASONS)
