"""What a tablet takes from a card set: one rule, used by `cards unpack`, the carer tool and (later) the fleet."""

from __future__ import annotations

from pathlib import Path

from cards.model import Card, Command, SvtPlay, VideoCall, Web
from cards.policy import policy_problems
from cards.registry import Registry, parse_registry_text

TEXT = (
    "cards:\n"
    '  - uid: "04A1"\n    label: Anna\n    action:\n      type: video_call\n      provider: jitsi\n'
    "      server: https://meet.example.se\n      room: familjen\n"
    '  - uid: "04A2"\n    label: Bertil\n    action:\n      type: video_call\n      provider: jitsi\n'
    "      server: https://evil.example\n      room: familjen\n"
    '  - uid: "04A3"\n    label: Klocka\n    action:\n      type: command\n      argv: [xclock]\n'
    '  - uid: "04A4"\n    label: Rapport\n    action: {type: svt_play, program: /rapport}\n'
)


def test_policy_names_each_refused_card_with_its_label_uid_and_line():
    registry, problems = parse_registry_text(TEXT, Path("/tmp"))
    assert registry is not None and problems == []
    got = policy_problems(registry, ["meet.example.se"], allow_commands=False, file="gift")
    assert [(p.file, p.line) for p in got] == [("gift", 14), ("gift", 20)]
    assert got[0].message.startswith('card "Bertil" (04A2) calls https://evil.example, which is not one of the call servers')
    assert got[1].message.startswith('card "Klocka" (04A3) starts the program xclock on the tablet')
    assert all(p.severity == "error" for p in got)


def test_policy_lets_listed_servers_and_allowed_commands_through():
    registry, _ = parse_registry_text(TEXT, Path("/tmp"))
    assert policy_problems(registry, ["https://meet.example.se", "evil.example:443"], allow_commands=True) == []
    # An empty list: no call server gets the camera.
    assert len(policy_problems(registry, [], allow_commands=True)) == 2


def test_policy_takes_cards_made_in_code_too():
    cards = [
        Card("04B1", "A", VideoCall("jitsi", server="https://meet.example.se:8443", room="r")),
        Card("04B2", "B", VideoCall("teams", user="a@b.se")),
        Card("04B3", "C", Web("https://a.se")),
        Card("04B4", "D", SvtPlay(channel="svt1")),
        Card("04B5", "E", Command(("sh", "-c", "id"))),
    ]
    got = policy_problems(Registry(tuple(cards)), ["https://meet.example.se"], allow_commands=False)
    assert [p.message.split('"')[1] for p in got] == ["A", "E"]  # port 8443 is another origin
    assert got[0].line is None  # no file behind it
