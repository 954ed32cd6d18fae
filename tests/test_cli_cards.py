"""The `klick cards` commands, run through the real console script."""

import yaml

from cards.registry import load_registry
from tests.conftest import REPO

DEMO = str(REPO / "config" / "demo-cards.yaml")


def test_check_demo_set_exits_0(klick):
    result = klick("cards", "check", DEMO)
    assert result.returncode == 0, result.stderr
    assert "5 cards, all fine" in result.stdout


def test_uid_written_two_ways_exits_1_and_names_both_lines(klick, tmp_path):
    path = tmp_path / "cards.yaml"
    path.write_text(
        "cards:\n  - uid: '04:a2:b3:c4'\n    label: A\n    action: {type: web, url: 'https://a.se'}\n"
        "  - uid: 04A2B3C4\n    label: B\n    action: {type: web, url: 'https://b.se'}\n"
    )
    result = klick("cards", "check", str(path))
    assert result.returncode == 1
    assert "cards.yaml:5:" in result.stderr and "line 2" in result.stderr


def test_add_then_list_shows_the_card_and_yaml_stays_valid(klick, klick_home):
    result = klick(
        "cards",
        "add",
        "04:a2:b3:c4",
        "--label",
        "Anna",
        "--type",
        "video_call",
        "--provider",
        "jitsi",
        "--server",
        "https://meet.example.se",
        "--room",
        "familjen",
        "--display-name",
        "Mamma",
        "--colour",
        "blå",
    )
    assert result.returncode == 0, result.stderr
    result = klick("cards", "add", "0012345678", "--label", "Klocka", "--type", "command", "--", "xclock", "-digital")
    assert result.returncode == 0, result.stderr
    listing = klick("cards", "list")
    assert listing.returncode == 0
    assert "04A2B3C4" in listing.stdout and "Anna" in listing.stdout and "0012345678" in listing.stdout
    data = yaml.safe_load((klick_home / "cards.yaml").read_text())
    assert data["cards"][1]["uid"] == "0012345678"  # a string, even to a plain YAML reader
    assert data["cards"][1]["action"]["argv"] == ["xclock", "-digital"]
    assert klick("cards", "check").returncode == 0


def test_add_refuses_duplicate_unless_replace(klick, klick_home):
    base = ["cards", "add", "04A1", "--type", "web", "--url", "https://a.se"]
    assert klick(*base, "--label", "Ett").returncode == 0
    again = klick(*base, "--label", "Två")
    assert again.returncode == 1 and "already set up" in again.stderr and "--replace" in again.stderr
    assert klick(*base, "--label", "Två", "--replace").returncode == 0
    assert "Två" in klick("cards", "show", "04a1").stdout


def test_bad_input_gets_a_sentence_not_a_traceback(klick, klick_home):
    cases = [
        (["cards", "add", "zz", "--label", "X", "--type", "web", "--url", "https://a.se"], 2, "not a card ID"),
        (["cards", "add", "04A1", "--label", "X", "--type", "web", "--url", "http://a.se"], 1, "https://"),
        (["cards", "add", "04A1", "--label", "X"], 2, "--type"),
        (["cards", "add", "04A1", "--label", "X", "--type", "command"], 2, "after `--`"),
        (["cards", "show", "04A1"], 1, "no card file"),
        (["cards", "remove", "04A1"], 1, "no card file"),
        (["cards", "check", "/nonexistent.yaml"], 1, "does not exist"),
        (["cards", "frobnicate"], 2, "No such command"),
    ]
    for args, code, words in cases:
        result = klick(*args)
        assert result.returncode == code, (args, result.stderr)
        assert words.lower() in (result.stderr + result.stdout).lower(), (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_edit_and_remove(klick, klick_home):
    klick("cards", "add", "04A1", "--label", "Ett", "--type", "web", "--url", "https://a.se")
    assert klick("cards", "edit", "04a1", "--label", "Nytt", "--disable").returncode == 0
    assert "switched off" in klick("cards", "list").stdout
    assert klick("cards", "edit", "04a1", "--url", "https://b.se").returncode == 0
    assert "b.se" in klick("cards", "show", "04A1").stdout
    assert klick("cards", "remove", "04A1").returncode == 0
    assert (klick_home / "cards.yaml.bak").exists()
    assert "No cards yet" in klick("cards", "list").stdout


def test_every_command_has_help(klick):
    for args in (
        ["--help"],
        ["--version"],
        ["config", "--help"],
        ["config", "show", "--help"],
        ["cards", "--help"],
        ["cards", "list", "--help"],
        ["cards", "add", "--help"],
        ["cards", "edit", "--help"],
        ["cards", "remove", "--help"],
        ["cards", "check", "--help"],
        ["cards", "show", "--help"],
    ):
        result = klick(*args)
        assert result.returncode == 0, args
        assert result.stdout.strip()


# --- wrong input and odd disks (attack2) ---------------------------------------------------------


def test_an_option_the_action_does_not_use_is_said_not_silently_dropped(klick, klick_home):
    """`--type web --room r` saved a web card and forgot the room without a word."""
    result = klick("cards", "add", "04B4", "--label", "X", "--type", "web", "--url", "https://a.se", "--room", "r")
    assert result.returncode == 2 and "--room is not used by --type web (it takes --url)" in result.stderr
    assert not (klick_home / "cards.yaml").exists()
    result = klick("cards", "add", "04B4", "--label", "X", "--type", "command", "--url", "https://a.se", "--", "xclock")
    assert result.returncode == 2 and "--url is not used by --type command" in result.stderr


def test_odd_card_ids_and_dashes_get_a_sentence(klick, klick_home):
    import shutil

    shutil.copy(DEMO, klick_home / "cards.yaml")
    for args, code, words in (
        (["cards", "show", ""], 2, "the card ID is empty"),
        (["cards", "show", "０４ＡＡ"], 2, "a card ID is made of the digits 0-9 and the letters A-F"),
        (["cards", "show", "A" * 5000], 2, "at most 40 are expected"),
        (["cards", "show", "--", "-04AA"], 1, "No card with ID 04AA"),
        (["cards", "remove", "04ZZ"], 2, "contains 'Z'"),
        (["cards", "add", "--", "-04AA", "--label", "X"], 2, "Give the card a label"),
        (["cards", "add", "04AB", "--label", "X", "--type", "command", "--"], 2, "needs the program after `--`"),
    ):
        result = klick(*args)
        assert result.returncode == code and words in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr and "could not finish" not in result.stderr


def test_cards_add_waits_for_an_unpack_of_the_same_card_set(klick, klick_home):
    """add, edit and remove read, change and save the file while no unpack changes it."""
    import subprocess
    import sys
    import time

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom pathlib import Path\nfrom cards.registry import card_set_lock\n"
            "with card_set_lock(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(2)\n",
            str(klick_home),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    held_at = time.monotonic()
    result = klick("cards", "add", "04B4", "--label", "X", "--type", "web", "--url", "https://a.se")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - held_at >= 1.5
    assert holder.wait(timeout=30) == 0


def test_cards_edit_reads_the_card_under_the_lock_so_a_change_made_meanwhile_stays(klick, klick_home):
    """An unpack or another carer changes Anna's label while `cards edit` waits: both changes stay."""
    import shutil
    import subprocess
    import sys

    shutil.copy(DEMO, klick_home / "cards.yaml")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import dataclasses, sys, time\nfrom pathlib import Path\n"
            "from cards.registry import card_set_lock, load_registry, save_registry\n"
            "path = Path(sys.argv[1]) / 'cards.yaml'\n"
            "with card_set_lock(path.parent):\n    print('held', flush=True)\n    time.sleep(1.5)\n"
            "    reg = load_registry(path)\n"
            "    card = dataclasses.replace(reg.get('04A2B3C4D5E680'), label='Mormor')\n"
            "    save_registry(reg.with_card(card, replace_existing=True), path)\n",
            str(klick_home),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    result = klick("cards", "edit", "04A2B3C4D5E680", "--colour", "#123456")
    assert result.returncode == 0, result.stderr
    assert holder.wait(timeout=30) == 0
    card = load_registry(klick_home / "cards.yaml").get("04A2B3C4D5E680")
    assert card.label == "Mormor" and "Mormor" in result.stdout
    assert card.colour.lower() == "#123456"


def test_a_backup_that_cannot_be_written_is_named_and_nothing_is_left_behind(klick, klick_home):
    import shutil

    shutil.copy(DEMO, klick_home / "cards.yaml")
    (klick_home / "cards.yaml.bak").mkdir()
    before = (klick_home / "cards.yaml").read_bytes()
    result = klick("cards", "add", "04B4", "--label", "X", "--type", "web", "--url", "https://a.se")
    assert result.returncode == 1 and f"({klick_home / 'cards.yaml.bak'}): Is a directory" in result.stderr, result.stderr
    assert (klick_home / "cards.yaml").read_bytes() == before
    assert sorted(p.name for p in klick_home.iterdir()) == ["cards.yaml", "cards.yaml.bak"]
