"""The carer editor without a window: forms, checks mapped to fields, saving, undo, bundles, the reader.

Checks go through the registry's own parser, so these tests also pin down that the editor and
`klick cards check` can never disagree.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cards.carer.model import (
    KINDS,
    SWATCHES,
    CardForm,
    check_form,
    face_of,
    form_from_card,
    form_to_dict,
    new_form,
    visible_fields,
)
from cards.carer.session import EditorSession, SessionError
from cards.carer.words import WORDS, problem_words, words
from cards.colours import PALETTE, contrast
from cards.registry import Registry, check_registry, load_registry

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "config" / "demo-cards.yaml"
EMPTY = Registry(())


@pytest.fixture
def demo(tmp_path) -> Path:
    """The demo card set, copied with its pictures and album, in a folder of its own."""
    shutil.copytree(REPO / "config" / "demo", tmp_path / "demo")
    shutil.copy(DEMO, tmp_path / "cards.yaml")
    return tmp_path / "cards.yaml"


def call(uid="04AA01", **kw) -> CardForm:
    base = dict(kind="call", label="Mormor", server="https://meet.example.se", room="familjen")
    base.update(kw)
    return replace(new_form(uid), **base)


# ---- forms ----------------------------------------------------------------------------------


def test_every_demo_card_round_trips_through_its_form():
    registry = load_registry(DEMO)
    base = DEMO.resolve().parent
    for card in registry.cards:
        form = form_from_card(card, base)
        assert not form.is_new
        checked = check_form(form, registry, base)
        assert checked.ok, (card.label, checked.errors)
        assert checked.card == card


def test_each_choice_shows_only_the_fields_it_needs():
    assert visible_fields(call()) == ("provider", "server", "room", "display_name")
    assert visible_fields(call(provider="teams")) == ("provider", "user")
    assert visible_fields(call(provider="skype")) == ("provider", "skype_name")
    assert visible_fields(new_form("04").set("kind", "svt")) == ("channel", "program")
    assert visible_fields(new_form("04").set("kind", "photos")) == ("folder", "album_url")
    assert visible_fields(new_form("04").set("kind", "web")) == ("url",)
    assert visible_fields(new_form("04").set("kind", "command")) == ("argv",)
    assert visible_fields(new_form("04")) == ()
    assert set(KINDS) == {"call", "svt", "photos", "web", "command"}


def test_a_teams_call_keeps_no_jitsi_leftovers():
    form = call(provider="teams", user="anna@example.se")
    card_dict, _ = form_to_dict(form)
    assert card_dict["action"] == {"type": "video_call", "provider": "teams", "user": "anna@example.se"}
    checked = check_form(form, EMPTY, Path("/tmp"))
    assert checked.ok and checked.card.action.user == "anna@example.se" and checked.card.action.server == ""


def test_command_text_is_split_like_a_shell_without_running_one():
    checked = check_form(
        replace(new_form("04AB"), kind="command", label="Klocka", argv="xclock -title 'Min klocka'"), EMPTY, Path("/tmp")
    )
    assert checked.card.action.argv == ("xclock", "-title", "Min klocka")
    bad = check_form(replace(new_form("04AB"), kind="command", label="Klocka", argv="xclock 'oj"), EMPTY, Path("/tmp"))
    assert bad.errors == {"argv": ["Ett citattecken saknar sin partner."]}


@pytest.mark.parametrize(
    "changes, field, words_in_message",
    [
        ({"label": ""}, "label", "Fyll i"),
        ({"label": "x" * 41}, "label", "41 tecken"),
        ({"server": "http://meet.example.se"}, "server", "https://"),
        ({"server": ""}, "server", "Fyll i"),
        ({"room": "familj en"}, "room", "mellanslag"),
        ({"room": "släkten"}, "room", "å, ä, ö"),
        ({"room": ""}, "room", "Fyll i"),
        ({"provider": "teams", "user": ""}, "user", "Fyll i"),
        ({"provider": "skype", "skype_name": ""}, "skype_name", "Fyll i"),
        ({"kind": "svt"}, "channel", "kanal"),
        ({"kind": "svt", "channel": "svt1", "program": "/rapport"}, "channel", "inte båda"),
        ({"kind": "svt", "program": "rapport"}, "program", "/rapport"),
        ({"kind": "photos"}, "folder", "mappen med fotona"),
        ({"kind": "photos", "folder": "bilder", "album_url": "ftp://x"}, "album_url", "https://"),
        ({"kind": "web", "url": "javascript:alert(1)"}, "url", "https://"),
        ({"kind": "web", "url": ""}, "url", "Fyll i"),
        ({"kind": "command", "argv": ""}, "argv", "programmet"),
        ({"kind": None}, "kind", "Välj vad kortet ska göra"),
        ({"label": "Ann\x07a"}, "label", "osynligt"),
    ],
)
def test_each_problem_is_shown_next_to_its_own_field(changes, field, words_in_message):
    checked = check_form(call(**changes), EMPTY, Path("/tmp"))
    assert not checked.ok and checked.card is None
    assert list(checked.errors) == [field], checked.errors
    assert words_in_message in " ".join(checked.errors[field])


def test_warnings_stand_next_to_their_field_and_do_not_stop_a_save(tmp_path):
    form = call(picture="pictures/none.png")
    checked = check_form(form, EMPTY, tmp_path)
    assert checked.ok
    assert "finns inte" in checked.warnings["picture"][0]
    photos = check_form(replace(new_form("04CD"), kind="photos", label="Foton", folder="album"), EMPTY, tmp_path)
    assert photos.ok and "finns inte ännu" in photos.warnings["folder"][0]


def test_a_new_card_with_a_uid_already_set_up_is_refused_as_the_file_check_would():
    registry = load_registry(DEMO)
    anna = registry.cards[0]
    checked = check_form(call(uid=anna.uid), registry, DEMO.resolve().parent)
    assert not checked.ok and "redan programmerat" in checked.errors["uid"][0]
    # The same text through `klick cards check`'s own function says the same.
    (Path("/tmp") / f"dup-{os.getpid()}.yaml").write_text(checked.text)
    try:
        registry2, problems = check_registry(Path("/tmp") / f"dup-{os.getpid()}.yaml")
        assert registry2 is None and any("already set up" in p.message for p in problems)
    finally:
        (Path("/tmp") / f"dup-{os.getpid()}.yaml").unlink()


def test_english_messages_stay_english():
    checked = check_form(call(room="a b"), EMPTY, Path("/tmp"), "en")
    assert checked.errors["room"][0].startswith("Room may hold only letters")


labels = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labels)
def test_any_label_is_either_saved_as_typed_or_refused_at_the_label(label):
    checked = check_form(call(label=label), EMPTY, Path("/tmp"))
    assert set(checked.errors) <= {"label"}
    if checked.ok:
        assert checked.card.label == label.strip()
        # What the editor accepts, `klick cards check` accepts: the file text reads back the same.
        data = yaml.safe_load(checked.text)
        assert data["cards"][-1]["label"] == label


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["url", "server", "room", "display_name"]), labels)
def test_any_text_in_one_field_is_reported_at_that_field_only(field, text):
    form = call(kind="web", url="https://example.se") if field == "url" else call()
    checked = check_form(form.set(field, text), EMPTY, Path("/tmp"))
    assert set(checked.errors) <= {field}, checked.errors
    for messages in checked.errors.values():
        assert all(m and "\n" not in m[:1] for m in messages)


# ---- the face ----------------------------------------------------------------------------


def test_the_face_follows_the_form(demo):
    base = demo.parent
    form = call(label="Mormor", colour=PALETTE["green"], picture="demo/pictures/anna.png")
    face = face_of(form, base)
    assert face.label == "Mormor" and face.colour == "#1B6E3A"
    assert face.picture == base / "demo" / "pictures" / "anna.png"
    assert face.words == "Ringer Mormor med videosamtal"
    assert face_of(form, base, "en").words == "Video call to Mormor"
    assert face_of(form.set("picture", "nowhere.png"), base).picture is None
    assert face_of(new_form("04").set("kind", "svt").set("channel", "svt1"), base).words == "Visar SVT1 direkt på SVT Play"
    assert (
        face_of(new_form("04").set("kind", "web").set("url", "https://www.smhi.se/x"), base).words
        == "Öppnar webbsidan www.smhi.se"
    )


def test_swatches_are_the_high_contrast_palette_and_readable():
    assert set(SWATCHES) <= set(PALETTE) and "white" not in SWATCHES
    for name in SWATCHES:  # every swatch stands out from the window's navy background or has a frame
        assert contrast(PALETTE[name], "#102A43") > 1.2 or name == "black"


# ---- saving and undo -------------------------------------------------------------------------


def test_save_then_undo_restores_the_file_byte_for_byte(demo):
    before = demo.read_bytes()
    session = EditorSession(demo)
    assert not session.can_undo and session.undo() is False
    checked = session.save(call(uid="04EE01", label="Mormor"))
    assert checked.ok
    after = demo.read_bytes()
    assert b"04EE01" in after and load_registry(demo).get("04ee01").label == "Mormor"
    assert (demo.parent / "cards.yaml.bak").read_bytes() == before
    assert session.can_undo
    assert session.undo() is True
    assert demo.read_bytes() == before  # comments and all
    assert session.registry.get("04EE01") is None
    assert session.undo() is False, "one step of undo, not more"


def test_an_invalid_form_changes_nothing(demo):
    before = demo.read_bytes()
    session = EditorSession(demo)
    checked = session.save(call(room="ä ö"))
    assert not checked.ok and "room" in checked.errors
    assert demo.read_bytes() == before and not session.can_undo


def test_editing_and_removing_a_card_and_undoing_each(demo):
    session = EditorSession(demo)
    anna = session.registry.get("04A2B3C4D5E680")
    form = form_from_card(anna, session.base).set("label", "Anna B")
    assert session.save(form).ok
    assert load_registry(demo).get(anna.uid).label == "Anna B"
    assert len(load_registry(demo)) == 5
    session.undo()
    assert load_registry(demo).get(anna.uid).label == "Anna"
    session.remove(anna.uid)
    assert load_registry(demo).get(anna.uid) is None
    session.undo()
    assert load_registry(demo).get(anna.uid) == anna


def test_first_card_on_a_new_device_and_undo_of_it(tmp_path):
    path = tmp_path / "cards.yaml"
    session = EditorSession(path)
    assert len(session.registry) == 0
    assert session.save(call()).ok and path.exists()
    assert session.undo() and not path.exists()


def test_a_broken_card_file_is_refused_with_its_line(tmp_path):
    path = tmp_path / "cards.yaml"
    path.write_text("version: 1\ncards:\n  - uid: zz\n    label: X\n")
    with pytest.raises(SessionError, match=r"cards.yaml:3"):
        EditorSession(path)


def test_a_bundle_is_edited_and_saved_back(demo, tmp_path):
    bundle_mod = pytest.importorskip("cards.bundle")
    bundle = tmp_path / "mamma.klick"
    bundle_mod.pack_bundle(load_registry(demo), demo, bundle)
    session = EditorSession(bundle=bundle)
    try:
        assert len(session.registry) == 5
        assert session.save(call(uid="04EE02", label="Morfar", picture=str(demo.parent / "demo/pictures/anna.png"))).ok
    finally:
        session.close()
    target = tmp_path / "tablet" / "cards.yaml"
    target.parent.mkdir()
    servers = ["https://meet.jit.si", "https://meet.example.se"]
    bundle_mod.unpack_bundle(bundle, target, allowed_servers=servers)
    unpacked = load_registry(target)
    morfar = unpacked.get("04EE02")
    assert morfar.label == "Morfar" and morfar.picture.is_file() and len(unpacked) == 6
    # Undo packs the bundle back as it was.
    session = EditorSession(bundle=bundle)
    try:
        session.save(call(uid="04EE03", label="Moster"))
        assert session.undo()
    finally:
        session.close()
    again = tmp_path / "again" / "cards.yaml"
    again.parent.mkdir()
    bundle_mod.unpack_bundle(bundle, again, allowed_servers=servers)
    assert load_registry(again).get("04EE03") is None and load_registry(again).get("04EE02") is not None


# ---- words --------------------------------------------------------------------------------------


def test_every_word_is_in_both_languages_with_the_same_blanks():
    for key, (sv, en) in WORDS.items():
        assert sv.strip() and en.strip(), key
        assert set(re.findall(r"{(\w+)}", sv)) == set(re.findall(r"{(\w+)}", en)), key
    assert words("new_card") == "Programmera ett nytt kort" and words("new_card", "en") == "Program a new card"
    assert words("place_card") == "Lägg kortet på läsaren"


def test_an_unknown_registry_message_is_shown_as_it_is():
    assert problem_words("something new went wrong") == "Something new went wrong"


# ---- the reader, and no Kivy outside the window --------------------------------------------------


def test_without_a_bridge_the_carer_tool_starts_one_for_the_configured_reader_and_ends_it(tmp_path):
    """Only the bridge opens a reader: with none running, the tool starts `klick bridge` on the
    settings' reader (here a serial reader on a pseudo-terminal), listens to it like any client,
    and ends it when it stops."""
    from cards.carer.reader import CardSource
    from firmware_bridge.simulator import Simulator
    from klick.bridge_child import bridge_answers
    from klick.config import load_config

    short = Path(f"/tmp/klick-carer-direct-{os.getpid()}")
    short.mkdir(exist_ok=True)
    try:
        (tmp_path / "klick-home" / "klick.yaml").write_text(
            f"reader:\n  driver: serial\n  device: {short / 'reader'}\npaths:\n  socket: {short / 'own.sock'}\n"
        )
        cfg = load_config()
        seen: list[str] = []
        states: list[str] = []
        got = threading.Event()
        source = CardSource(cfg, lambda uid: (seen.append(uid), got.set()), lambda via, s, d: states.append(f"{via}:{s}"))
        with Simulator(link=short / "reader") as sim:
            source.start()
            try:
                deadline = time.monotonic() + 20
                while "bridge:connected" not in states and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert source.via == "bridge" and "bridge:connected" in states, states
                pid = source.bridge_pid
                assert pid is not None and _cmdline(pid).count("bridge") >= 1
                sim.insert("04C0FFEE42")
                assert got.wait(10), states
            finally:
                source.stop()
        assert seen == ["04C0FFEE42"]
        assert states[0] == "bridge:starting"
        assert not _alive(pid), "the bridge the carer tool started is still running"
        assert not bridge_answers(short / "own.sock") and not (short / "own.sock").exists()
    finally:
        shutil.rmtree(short, ignore_errors=True)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_the_editor_logic_never_loads_kivy():
    code = (
        "import sys, cards.carer.model, cards.carer.session, cards.carer.reader, cards.carer.words, "
        "klick.cli.carer_cmd, klick.pin; assert 'kivy' not in sys.modules, 'kivy was loaded'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr


# ---- the command line (without opening a window) -------------------------------------------------


def test_klick_carer_refuses_a_broken_card_file_in_plain_words(klick, klick_home):
    (klick_home / "cards.yaml").write_text(
        'version: 1\ncards:\n  - uid: "04A1"\n    label: X\n    action: {type: web, url: http://x}\n'
    )
    result = klick("carer")
    assert result.returncode == 1
    assert "cards.yaml:5" in result.stderr and "https://" in result.stderr and "klick cards check" in result.stderr
    assert "Traceback" not in result.stderr


def test_klick_carer_help_names_the_pin_and_bundles(klick):
    result = klick("carer", "--help")
    assert result.returncode == 0 and "pin" in result.stdout and ".klick" in result.stdout
    assert klick("carer", "pin", "--help").returncode == 0


def test_the_live_check_of_one_card_agrees_with_the_whole_file_check_but_for_the_clash():
    registry = load_registry(DEMO)
    base = DEMO.resolve().parent
    for form in (call(), call(room="a b"), call(label=""), call(kind="web", url="http://x")):
        whole = check_form(form, registry, base)
        alone = check_form(form, registry, base, whole_file=False)
        assert whole.errors == alone.errors and whole.warnings == alone.warnings
    clash = call(uid=registry.cards[0].uid)
    assert "uid" in check_form(clash, registry, base).errors
    assert check_form(clash, registry, base, whole_file=False).ok


# ---- the call-server allow list on save (issue 10 item 8) ------------------------------------------


def test_a_call_to_an_unlisted_server_is_refused_at_the_server_field(demo):
    allowed = ["https://meet.example.se"]
    refused = check_form(call(server="https://evil.example"), EMPTY, demo.parent, allowed_servers=allowed)
    assert not refused.ok and list(refused.errors) == ["server"]
    assert "inte godkänd för samtal" in refused.errors["server"][0] and "calls.allowed_servers" in refused.errors["server"][0]
    english = check_form(call(server="https://evil.example"), EMPTY, demo.parent, "en", allowed_servers=allowed)
    assert english.errors["server"][0].startswith('Card "Mormor" (04AA01) calls https://evil.example, which is not one')
    assert check_form(call(server="https://MEET.example.se/"), EMPTY, demo.parent, allowed_servers=allowed).ok
    # Without a list (no settings) the form is checked as the file alone.
    assert check_form(call(server="https://evil.example"), EMPTY, demo.parent).ok

    before = demo.read_bytes()
    session = EditorSession(demo, allowed_servers=allowed)
    saved = session.save(call(server="https://evil.example"))
    assert not saved.ok and "server" in saved.errors
    assert demo.read_bytes() == before and not session.can_undo
    assert session.save(call(server="https://meet.example.se")).ok


def test_a_bundle_opened_for_editing_is_not_held_to_the_tablets_list(demo, tmp_path):
    from cards.bundle import pack_bundle

    bundle = tmp_path / "mamma.klick"
    pack_bundle(load_registry(demo), demo, bundle)  # its Anna calls meet.jit.si, listed nowhere here
    session = EditorSession(bundle=bundle, allowed_servers=[])
    try:
        assert len(session.registry) == 5
    finally:
        session.close()


def test_the_carer_sees_the_new_refusals_in_swedish():
    for message, swedish in [
        ("label holds only invisible characters; write a word the resident can read", "osynliga tecken"),
        ("label holds a hidden character that turns text around (U+202E); retype it", "vänder på texten"),
        ("url must not hold a user name or password (the part before '@' in \"a@b\"); the address would open b", "lösenord"),
        ("label must be text, not a list", "Skriv text här."),
        ("the picture /x.png is outside the card file's folder; keep pictures beside the card file", "utanför kortens mapp"),
        ("the picture p.png is a link to another file; put the picture itself beside the card file", "länk"),
    ]:
        assert swedish in problem_words(message), message
