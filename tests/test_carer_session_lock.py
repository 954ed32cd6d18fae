"""The carer window's save, remove and undo take the card set's lock, as `klick cards` and unpack do."""

import subprocess
import sys
from pathlib import Path

import pytest

from cards.carer.model import CardForm
from cards.carer.session import EditorSession, SessionBusy
from cards.carer.words import words
from cards.model import Card, Web
from cards.registry import Registry, load_registry, save_registry


def _hold_lock(folder: Path, seconds: float) -> subprocess.Popen:
    """A second process holding the card set's lock (as an unpack does) for ``seconds``."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom pathlib import Path\nfrom cards.registry import card_set_lock\n"
            "with card_set_lock(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(float(sys.argv[2]))\n",
            str(folder),
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


def _form(label: str = "Bo") -> CardForm:
    return CardForm(uid="04B2", kind="web", label=label, url="https://b.se")


@pytest.fixture
def card_file(tmp_path) -> Path:
    path = tmp_path / "cards" / "cards.yaml"
    save_registry(Registry((Card("04A1", "Anna", Web("https://a.se")),)), path)
    return path


def test_the_carer_window_does_not_change_cards_another_program_is_changing(card_file):
    session = EditorSession(card_file, lock_wait=0.3)
    before = card_file.read_bytes()
    holder = _hold_lock(card_file.parent, 3)
    try:
        for change in (lambda: session.save(_form(), "sv"), lambda: session.remove("04A1")):
            with pytest.raises(SessionBusy):
                change()
            assert card_file.read_bytes() == before
    finally:
        holder.kill()
        holder.wait()
    assert session.save(_form(), "sv").ok
    assert [c.uid for c in load_registry(card_file).cards] == ["04A1", "04B2"]
    busy = words("card_set_busy", "sv")
    assert "Traceback" not in busy and "Error" not in busy and "program" in busy


def test_the_carer_window_saves_onto_the_card_file_as_it_is_now_not_as_it_was_opened(card_file):
    """An unpack or `klick cards add` meanwhile: the window's save keeps that card, and undo the window's own step."""
    session = EditorSession(card_file)
    registry = load_registry(card_file)
    save_registry(registry.with_card(Card("04C3", "Cilla", Web("https://c.se"))), card_file)
    session.save(_form(), "sv")
    assert [c.uid for c in load_registry(card_file).cards] == ["04A1", "04C3", "04B2"]
    assert session.undo()
    assert [c.uid for c in load_registry(card_file).cards] == ["04A1", "04C3"]


def test_an_undo_refused_while_the_cards_are_busy_can_be_pressed_again(card_file):
    session = EditorSession(card_file, lock_wait=0.3)
    session.save(_form(), "sv")
    holder = _hold_lock(card_file.parent, 3)
    try:
        with pytest.raises(SessionBusy):
            session.undo()
    finally:
        holder.kill()
        holder.wait()
    assert session.can_undo and session.undo()
    assert [c.uid for c in load_registry(card_file).cards] == ["04A1"]
