"""The carer window's footer in one language: why its own bridge did not start (a reason code from
klick.bridge_child, said in the window's words) and what the reader's driver says, for the cases a
carer meets; the bridge's own sentence only for anything else. Real `klick bridge` processes, real
sockets, real drivers looking for readers that are not there."""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import pytest

from cards.carer.words import WORDS, bridge_words, reader_words
from klick.bridge_child import START_PROBLEMS, BridgeStartError, start_bridge
from klick.bridge_client import iter_events
from klick.config import load_config
from klick.events import ReaderStatus
from tests.bridge_commands import bridges_of


@pytest.fixture
def short(klick_home):
    """A short folder for the socket (AF_UNIX paths are limited to 107 bytes)."""
    folder = Path(f"/tmp/klick-words-{os.getpid()}-{time.monotonic_ns() % 10**9}")
    folder.mkdir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _settings(klick_home: Path, socket_path: str | Path, reader: str = "driver: sim") -> None:
    (klick_home / "klick.yaml").write_text(f"reader:\n  {reader}\npaths:\n  socket: {socket_path}\n")


def _failure(cfg, **kw) -> BridgeStartError:
    with pytest.raises(BridgeStartError) as failed:
        child = start_bridge(cfg, **kw)
        if child is not None:
            child.stop()
    assert cfg.source is not None and not bridges_of(Path(cfg.source)), "a bridge that failed to start is left running"
    return failed.value


def test_every_reason_code_has_words_in_both_languages():
    for code in START_PROBLEMS:
        sv, en = WORDS[f"why_{code}"]
        assert sv and en and sv != en, code
        assert bridge_words(code, "/run/klick/bridge.sock", "The bridge's sentence.", "sv") != "The bridge's sentence."
    # Any other reason: the bridge's own sentence, rather than nothing.
    assert bridge_words(None, "", "The card reader bridge stopped as it started (exit status 3).", "sv") == (
        "The card reader bridge stopped as it started (exit status 3)."
    )
    assert bridge_words("not-a-code", "", "Its sentence.", "en") == "Its sentence."


def test_a_socket_folder_that_is_a_file_is_a_socket_problem(short, klick_home):
    (short / "a-file").write_text("not a folder")
    _settings(klick_home, short / "a-file" / "b.sock")
    failed = _failure(load_config())
    assert (failed.code, failed.where) == ("socket", str(short / "a-file" / "b.sock"))
    assert "Not a directory" in failed.reason  # the bridge's own sentence stays, for the log
    said = bridge_words(failed.code, failed.where, failed.reason, "sv")
    assert said.startswith("Den kan inte öppna läsarens anslutning i /tmp/") and "Not a directory" not in said


def test_a_file_in_the_sockets_place_is_a_socket_problem(short, klick_home):
    (short / "b.sock").write_text("a file where the socket goes")
    _settings(klick_home, short / "b.sock")
    failed = _failure(load_config())
    assert failed.code == "socket" and "exists and is not a socket" in failed.reason


def test_a_socket_path_too_long_is_a_socket_problem(short, klick_home):
    _settings(klick_home, f"/tmp/{'x' * 120}/b.sock")
    assert _failure(load_config()).code == "socket"


def test_another_bridge_that_holds_the_socket_but_does_not_answer(short, klick_home):
    path = short / "b.sock"
    _settings(klick_home, path)
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    holder.bind(str(path))
    holder.listen(8)  # accepts connections, never answers
    try:
        failed = _failure(load_config())
    finally:
        holder.close()
    assert (failed.code, failed.where) == ("already_running", str(path))
    assert "already running" in failed.reason
    assert bridge_words(failed.code, failed.where, failed.reason, "sv").startswith("En annan Klick-brygga har redan läsaren")


def test_settings_that_broke_after_the_window_read_them(short, klick_home):
    _settings(klick_home, short / "b.sock")
    cfg = load_config()
    (klick_home / "klick.yaml").write_text("reader: [this is\n")
    failed = _failure(cfg)
    assert (failed.code, failed.where) == ("settings", str(klick_home / "klick.yaml"))
    assert bridge_words(failed.code, failed.where, failed.reason, "en") == (
        f"The settings file {klick_home / 'klick.yaml'} has mistakes. Ask whoever installed Klick to fix it."
    )


def test_a_bridge_that_does_not_answer_in_time(short, klick_home):
    _settings(klick_home, short / "b.sock")
    failed = _failure(load_config(), timeout=0.0)
    assert failed.code == "timeout"
    assert bridge_words(failed.code, failed.where, failed.reason, "sv") == (
        "Den svarade inte i tid. Stäng fönstret och öppna det igen."
    )


def _searching_detail(klick_home: Path, short: Path, reader: str) -> str:
    """What a real bridge's driver says while the reader is not there."""
    _settings(klick_home, short / "b.sock", reader)
    child = start_bridge(load_config())
    assert child is not None
    try:
        deadline = time.monotonic() + 20
        for event in iter_events(short / "b.sock", hello="words-test"):
            if isinstance(event, ReaderStatus) and event.detail.startswith("No "):
                return event.detail
            assert time.monotonic() < deadline, "no 'not found' from the driver"
    finally:
        child.stop()
    raise AssertionError("the bridge went away")


@pytest.mark.parametrize(
    "reader, swedish",
    [
        (
            "driver: serial\n  device: /dev/klick-no-such-reader",
            "Ingen kortläsare hittades på /dev/klick-no-such-reader. Kontrollera att den sitter i.",
        ),
        (
            "driver: hid\n  device: /dev/input/klick-no-such-reader",
            "Ingen kortläsare hittades på /dev/input/klick-no-such-reader. Kontrollera att den sitter i.",
        ),
        ("driver: nfc\n  device: 'usb:ffff:fffe'", "Ingen kortläsare hittades på usb:ffff:fffe. Kontrollera att den sitter i."),
    ],
    ids=["serial", "hid", "nfc"],
)
def test_a_reader_that_is_not_there_is_said_in_swedish(short, klick_home, reader, swedish):
    detail = _searching_detail(klick_home, short, reader)
    assert reader_words(detail, "sv") == swedish
    assert reader_words(detail, "en") == detail


def test_reader_words_keep_any_other_sentence_and_the_rest_of_the_drivers_words():
    assert reader_words("The reader stopped answering (no heartbeat for 3 s).", "sv") == (
        "The reader stopped answering (no heartbeat for 3 s)."
    )
    assert reader_words("The NFC reader was unplugged or stopped working.", "sv") == "Kortläsaren drogs ur eller slutade fungera."
    assert reader_words("The card reader /dev/input/event3 is in use by another program (Device or resource busy).", "sv") == (
        "Kortläsaren /dev/input/event3 används av ett annat program."
    )
    assert reader_words(
        "No keyboard-style card reader found (any input device named like a card reader). Check that it is plugged in.", "sv"
    ) == ("Ingen kortläsare hittades. Kontrollera att den sitter i.")
    assert reader_words("The reader program failed; trying again shortly.", "sv").startswith("Läsarprogrammet")
    assert reader_words("", "sv") == ""
