"""A card file with a mistake never ends the launcher: it keeps the last good cards (also after a
restart, from the copy beside the file), says so once in one plain line, and with no good cards
at all the screen says calmly that the cards cannot be read. Real files on disk, no Kivy;
hypothesis writes documents of any shape as cards.yaml under a running session."""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cards.registry import parse_registry_text
from klick.atomic import write_atomic
from klick.config import CallsConfig, load_config
from klick.events import CardPresent, CardRemoved, ReaderStatus
from launcher import actions
from launcher import session as S
from launcher.i18n import Words
from launcher.services import RegistryWatch, last_good_path
from launcher.wording import failure_words, status_words

ANNA, RADIO = "04A2B3C4D5E680", "04B1C2D3E4F501"
GOOD = f"""version: 1
cards:
  - uid: "{ANNA}"
    label: Anna
    colour: blue
    picture: pictures/anna.png
    action:
      type: video_call
      provider: jitsi
      server: https://meet.example.se
      room: familjen
  - uid: "{RADIO}"
    label: Radio
    action:
      type: command
      argv: [radio]
"""
#: The typos from issue 10, each a card file that killed the launcher.
TYPOS = {
    "label_a_date_that_does_not_exist": GOOD.replace("label: Anna", "label: 2024-02-30"),
    "colour_a_month_13": GOOD.replace("colour: blue", "colour: 2024-13-01"),
    "argv_a_map_with_a_list_key": GOOD.replace("argv: [radio]", "argv: {? [a] : b}"),
}


def write(path: Path, text: str | bytes) -> None:
    write_atomic(path, text)  # a new file each time, as a carer's editor or the carer tool saves


def messages(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("klick") and r.levelno >= logging.WARNING]


@pytest.mark.parametrize("typo", sorted(TYPOS))
def test_a_typo_in_the_card_file_never_kills_the_launcher_it_keeps_the_last_good_cards(tmp_path, caplog, typo):
    cards = tmp_path / "cards.yaml"
    write(cards, GOOD)
    watch = RegistryWatch(cards)
    good = watch.registry
    assert watch.state == "ok" and len(good) == 2
    assert last_good_path(cards).read_text(encoding="utf-8") == GOOD
    assert last_good_path(cards).stat().st_mode & 0o777 == cards.stat().st_mode & 0o666
    caplog.set_level(logging.INFO, logger="klick")
    write(cards, TYPOS[typo])
    assert watch.check() is True  # the state changed; no exception
    assert watch.state == "kept" and watch.registry == good and watch.get(ANNA).label == "Anna"
    assert watch.problem
    assert watch.check() is False  # polled again, nothing new: nothing logged again
    lines = messages(caplog)
    assert len(lines) == 1 and lines[0].levelno == logging.ERROR and lines[0].exc_info is None
    text = lines[0].getMessage()
    assert "\n" not in text and "keeps the 2 cards it had" in text
    assert last_good_path(cards).read_text(encoding="utf-8") == GOOD  # the broken file is never the copy


def test_a_launcher_started_on_a_broken_file_uses_the_last_good_copy_with_its_pictures(tmp_path):
    folder = tmp_path / "cards"
    (folder / "pictures").mkdir(parents=True)
    (folder / "pictures" / "anna.png").write_bytes(b"png")
    cards = folder / "cards.yaml"
    write(cards, GOOD)
    RegistryWatch(cards)  # the launcher that saw the good file once
    write(cards, TYPOS["colour_a_month_13"])
    watch = RegistryWatch(cards)  # a restart on the broken file
    assert watch.state == "kept" and watch.problem
    anna = watch.get(ANNA)
    assert anna.label == "Anna" and anna.picture == (folder / "pictures" / "anna.png").resolve()
    assert watch.registry.path == cards
    write(cards, GOOD.replace("label: Radio", "label: Radion"))
    assert watch.check() and watch.state == "ok" and watch.get(RADIO).label == "Radion"
    assert "Radion" in last_good_path(cards).read_text(encoding="utf-8")
    # Started while the card file was away (moved, half copied), then a broken one: the copy again.
    cards.unlink()
    away = RegistryWatch(cards)
    assert away.state == "ok" and len(away.registry) == 0
    write(cards, TYPOS["label_a_date_that_does_not_exist"])
    assert away.check() and away.state == "kept" and away.get(RADIO).label == "Radion"


def test_with_no_good_cards_ever_the_cards_are_unreadable_until_the_file_is_fixed(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="klick")
    cards = tmp_path / "cards.yaml"
    write(cards, TYPOS["label_a_date_that_does_not_exist"])
    watch = RegistryWatch(cards)
    assert watch.state == "unreadable" and len(watch.registry) == 0 and watch.get(ANNA) is None
    assert not last_good_path(cards).exists()
    assert [r.getMessage().startswith("The card file has a mistake and there are no good cards") for r in messages(caplog)] == [
        True
    ]
    write(last_good_path(cards), b"cards: [\n")  # a damaged copy is no help, and no harm
    assert RegistryWatch(cards).state == "unreadable"
    write(cards, GOOD)
    assert watch.check() and watch.state == "ok" and watch.get(ANNA).label == "Anna"


def test_an_unreadable_or_huge_or_vanished_card_file(tmp_path):
    cards = tmp_path / "cards.yaml"
    watch = RegistryWatch(cards)
    assert watch.state == "ok" and len(watch.registry) == 0  # no file yet: a new device
    write(cards, GOOD)
    assert watch.check() and watch.state == "ok"
    write(cards, b"cards:\n  - label: \xff\xfe\n")
    assert watch.check() and watch.state == "kept" and "UTF-8" in watch.problem
    write(cards, b"#" * 2_000_001)
    assert watch.check() and watch.state == "kept" and "larger than" in watch.problem
    write(cards, GOOD)
    assert watch.check() and watch.state == "ok"
    if os.geteuid() != 0:  # root reads any file
        write(cards, GOOD + "\n")
        cards.chmod(0)
        assert watch.check() and watch.state == "kept" and "cannot be read" in watch.problem
        cards.chmod(0o644)
    cards.unlink()
    assert watch.check() and watch.state == "ok" and len(watch.registry) == 0


def test_a_card_file_the_validator_raises_on_is_a_mistake_not_a_crash(tmp_path, monkeypatch):
    import cards.registry

    cards_file = tmp_path / "cards.yaml"
    write(cards_file, GOOD)
    watch = RegistryWatch(cards_file)

    def explode(*_a, **_k):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(cards.registry, "parse_registry_text", explode)
    write(cards_file, GOOD + "\n")
    assert watch.check() and watch.state == "kept" and "RecursionError" in watch.problem


# --- any document, under a running session ----------------------------------------------------

UIDS = [ANNA, RADIO, "04C7D8E9FA0B12", "0012345678"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=60),
    st.dates(),
    st.datetimes(),
    st.sampled_from(["", "blue", "#12345", "https://meet.example.se", "https://evil.example@x", "04A2B3C4D5E680"]),
)
anything = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12
)


def maybe(value):
    return st.one_of(value, anything)


action = st.fixed_dictionaries(
    {"type": maybe(st.sampled_from(["video_call", "svt_play", "photo_album", "web", "command", "fax"]))},
    optional={
        "provider": maybe(st.sampled_from(["jitsi", "teams", "skype", "zoom"])),
        "server": maybe(st.sampled_from(["https://meet.example.se", "https://meet.evil.example", "meet.example.se"])),
        "room": maybe(st.sampled_from(["familjen", "a b", ""])),
        "user": maybe(st.just("anna@example.se")),
        "name": maybe(st.just("live:anna")),
        "display_name": anything,
        "channel": maybe(st.sampled_from(["svt1", "svt9"])),
        "program": maybe(st.sampled_from(["/rapport", "rapport"])),
        "url": maybe(st.sampled_from(["https://www.smhi.se", "javascript:alert(1)"])),
        "folder": maybe(st.sampled_from(["album", "/nonexistent"])),
        "argv": maybe(st.lists(st.text(max_size=10), max_size=3)),
    },
)
card = st.fixed_dictionaries(
    {"uid": maybe(st.sampled_from(UIDS))},
    optional={
        "label": maybe(st.text(min_size=1, max_size=45)),
        "colour": maybe(st.sampled_from(["blue", "red", "#1F4E9C"])),
        "picture": maybe(st.just("pictures/anna.png")),
        "action": maybe(action),
        "on_remove": maybe(st.sampled_from(["close", "keep"])),
        "enabled": maybe(st.booleans()),
        "role": maybe(st.sampled_from(["resident", "carer"])),
    },
)
card_file = st.fixed_dictionaries(
    {"cards": st.one_of(st.lists(card, max_size=4), anything)}, optional={"version": maybe(st.just(1))}
)


def dumped(doc) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


documents = st.one_of(
    card_file.map(dumped),
    anything.map(dumped),
    st.sampled_from(sorted(TYPOS.values()) + [GOOD, "", "---\n---\n", "a: &x [*x]\n", "cards:\n\t- uid: 1\n", "\x00"]),
    st.text(max_size=200),
    st.binary(max_size=200),
)
events = st.lists(
    st.one_of(
        st.builds(CardPresent, st.sampled_from(UIDS)),
        st.builds(CardRemoved, st.sampled_from(UIDS)),
        st.just(ReaderStatus("connected")),
        st.just("exited"),
    ),
    max_size=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(documents, events), min_size=1, max_size=5))
def test_any_yaml_document_as_the_card_file_never_breaks_a_running_session(rounds):
    cfg = replace(load_config(), calls=CallsConfig(("https://meet.example.se",)))
    words = Words("sv")
    with tempfile.TemporaryDirectory() as tmp:
        cards = Path(tmp) / "cards.yaml"
        write(cards, GOOD)
        watch = RegistryWatch(cards)
        session = S.Session(lookup=watch.get, carer_pin_set=True)
        session.card_file_state(watch.state)
        session.event(ReaderStatus("connected"))
        last_good = watch.registry
        for text, evs in rounds:
            write(cards, text)
            if watch.check():
                session.card_file_state(watch.state)
            # The oracle: the validator itself, on the same text.
            data = text.encode("utf-8") if isinstance(text, str) else text
            try:
                expected, _ = parse_registry_text(data.decode("utf-8"), Path(tmp).resolve(), str(cards))
            except Exception:
                expected = None
            if expected is not None:
                assert watch.state == "ok" and watch.problem is None
                assert watch.registry.cards == expected.cards
                last_good = watch.registry
                assert last_good_path(cards).read_bytes() == data
            else:
                assert watch.problem and watch.registry == last_good
                assert watch.state == ("kept" if len(last_good) else "unreadable")
            started = False
            for ev in evs:
                if ev == "exited":
                    effects = session.action_exited(session.running) if session.running else []
                else:
                    effects = session.event(ev)
                for effect in effects:
                    if isinstance(effect, S.StartAction):  # what the app does with a card that starts
                        started = True
                        c = effect.card
                        status_words(words, c, "starting", session.mode)
                        step = actions.plan(c.action, cfg)
                        if isinstance(step, actions.Unrunnable):
                            failure_words(words, c, step.reason)
                            session.action_failed(c, step.reason, step.detail)
                        else:
                            session.action_started(c)
            if watch.state == "unreadable":  # never home as if all were well, never a new card running
                assert not isinstance(session.screen, S.Home)
                assert not started
            if isinstance(session.screen, S.CardsUnreadable):
                assert watch.state == "unreadable"


def test_dates_times_and_odd_keys_in_every_field_never_break_it(tmp_path):
    """The hand-picked worst: a YAML value of the wrong type in every field of a card."""
    cards = tmp_path / "cards.yaml"
    write(cards, GOOD)
    watch = RegistryWatch(cards)
    odd = [
        "2024-02-30",
        "2024-13-01",
        "{? [a] : b}",
        "12:30:00",
        "2024-01-01T10:00:00",
        "0x1F",
        "~",
        "[1, [2]]",
        ".inf",
        "!!binary aGk=",
    ]
    fields = ["uid", "label", "colour", "picture", "on_remove", "enabled", "role"]
    for value in odd:
        for field in fields:
            text = GOOD.replace(f'  - uid: "{ANNA}"\n', f'  - uid: "{ANNA}"\n    {field}: {value}\n', 1)
            write(cards, text)
            watch.check()
            assert watch.state in ("ok", "kept")
            assert watch.get(RADIO) is not None
        for field in ["server", "room", "type", "provider"]:
            write(cards, GOOD.replace(f"      {field}: ", f"      {field}: {value}\n      x{field}: ", 1))
            watch.check()
            assert watch.state in ("ok", "kept") and watch.get(ANNA) is not None
