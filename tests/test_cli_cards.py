"""The `klick cards` commands, run through the real console script."""

import yaml

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
