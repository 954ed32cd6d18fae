import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cards.model import Card, Command, PhotoAlbum, SvtPlay, VideoCall, Web
from cards.registry import (
    Registry,
    check_registry,
    load_registry,
    parse_registry_text,
    save_registry,
)
from klick.atomic import backup_path
from tests.conftest import REPO


def write(tmp_path: Path, text: str, name: str = "cards.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def messages(problems):
    return [(p.line, p.message) for p in problems]


def test_demo_set_is_valid():
    registry, problems = check_registry(REPO / "config" / "demo-cards.yaml")
    assert problems == []
    assert len(registry) == 5
    assert {c.action.type for c in registry.cards} == {"video_call", "svt_play", "photo_album", "web"}
    assert all(c.picture and c.picture.is_file() for c in registry.cards)


def test_lookup_in_any_spelling():
    registry = load_registry(REPO / "config" / "demo-cards.yaml")
    assert registry.get("04:a2:b3:c4:d5:e6:80").label == "Anna"
    assert registry.get(bytes.fromhex("04A2B3C4D5E680")).label == "Anna"
    assert registry.get("not a uid") is None
    assert registry.get("0012345678").label == "Vädret"


def test_duplicate_uid_written_two_ways_names_both_lines(tmp_path):
    path = write(
        tmp_path,
        """
        cards:
          - uid: "04:a2:b3:c4"
            label: Anna
            action: {type: web, url: "https://example.se"}
          - uid: 04A2B3C4
            label: Bertil
            action: {type: web, url: "https://example.se"}
    """,
    )
    registry, problems = check_registry(path)
    assert registry is None
    ((line, message),) = messages(problems)
    assert line == 5
    assert "line 2" in message and "04:a2:b3:c4" in message


def test_decimal_uid_never_becomes_a_number(tmp_path):
    path = write(
        tmp_path,
        """
        cards:
          - uid: 0012345678
            label: Klocka
            action: {type: command, argv: [xclock]}
    """,
    )
    registry = load_registry(path)
    assert registry.cards[0].uid == "0012345678"


def test_every_problem_has_its_line(tmp_path):
    path = write(
        tmp_path,
        """
        cards:
          - uid: 04A1
            label: Ett
            action:
              type: teleport
          - uid: 04A2
            label: Två
            colour: rainbow
            action: {type: web, url: "javascript:alert(1)"}
          - uid: 04A3
            label: Tre
            action:
              type: command
              argv: "rm -rf / ; echo"
          - uid: 04A4
            action: {type: svt_play, channel: svt9}
          - uid: 04A5
            label: Fem
            picture: missing.png
            action: {type: video_call, provider: jitsi, server: "https://meet.example.se"}
          - uid: 04A6
            label: Sex
            actoin: {type: web, url: "https://example.se"}
    """,
    )
    registry, problems = check_registry(path)
    assert registry is None
    got = messages(problems)
    by_line = {line: message for line, message in got}
    assert "teleport" in by_line[5]
    assert "colour" in by_line[8]
    assert "https://" in by_line[9]
    assert "never runs commands through a shell" in by_line[14]
    assert any(line == 15 and "needs a label" in m for line, m in got)
    assert "svt9" in by_line[16]
    assert "missing.png" in by_line[19] and [p for p in problems if p.line == 19][0].severity == "warning"
    assert any(line == 20 and "needs a room" in m for line, m in got)
    assert "did you mean 'action'" in by_line[23]


@pytest.mark.parametrize(
    "data, words",
    [
        (b"cards:\n\t- uid: 04A1\n", "tab"),
        (b"cards:\n  - uid: 04A1\n    label: \xe5\n", "not UTF-8"),
        (b"cards: [\n", "not valid YAML"),
        (b"- just\n- a list\n", "settings"),
    ],
)
def test_broken_files_get_a_plain_sentence(tmp_path, data, words):
    path = tmp_path / "cards.yaml"
    path.write_bytes(data)
    registry, problems = check_registry(path)
    assert registry is None
    assert words in problems[0].message


def test_bom_is_a_warning_not_a_failure(tmp_path):
    path = tmp_path / "cards.yaml"
    path.write_bytes(b"\xef\xbb\xbfcards:\n  - uid: 04A1\n    label: Ett\n    action: {type: web, url: 'https://a.se'}\n")
    registry, problems = check_registry(path)
    assert registry is not None and len(registry) == 1
    assert problems[0].severity == "warning" and "byte-order mark" in problems[0].message


def test_billion_laughs_is_refused_fast(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    path = tmp_path / "cards.yaml"
    path.write_text("\n".join(lines) + "\n")
    registry, problems = check_registry(path)
    assert registry is None and "attack" in problems[0].message


def test_file_over_1_mb_is_refused(tmp_path):
    path = tmp_path / "cards.yaml"
    path.write_bytes(b"# " + b"x" * 1_100_000 + b"\n")
    registry, problems = check_registry(path)
    assert registry is None and "MB" in problems[0].message


def test_save_is_atomic_with_backup_and_reloads(tmp_path):
    path = write(
        tmp_path,
        """
        cards:
          - uid: 04A1
            label: Ett
            action: {type: web, url: "https://a.se"}
    """,
    )
    registry = load_registry(path)
    old_text = path.read_text()
    new = registry.with_card(Card("04A2", "Två", Web("https://b.se")))
    save_registry(new, path)
    assert backup_path(path).read_text() == old_text
    assert [c.uid for c in load_registry(path).cards] == ["04A1", "04A2"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_with_card_refuses_duplicate_unless_replacing():
    registry = Registry((Card("04A1", "Ett", Web("https://a.se")),))
    with pytest.raises(KeyError):
        registry.with_card(Card("04A1", "Annan", Web("https://b.se")))
    assert registry.with_card(Card("04A1", "Annan", Web("https://b.se")), replace_existing=True).get("04a1").label == "Annan"


# --- round trips ---------------------------------------------------------------------------------

labels = (
    st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N", "Zs")), min_size=1, max_size=40)
    .map(str.strip)
    .filter(bool)
)
words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
uids = st.one_of(
    st.binary(min_size=4, max_size=10).map(lambda b: b.hex().upper()), st.text(alphabet="0123456789", min_size=6, max_size=12)
)
actions = st.one_of(
    st.builds(VideoCall, provider=st.just("jitsi"), server=st.just("https://meet.example.se"), room=words, display_name=labels),
    st.builds(VideoCall, provider=st.just("teams"), user=words.map(lambda w: w + "@example.se")),
    st.builds(SvtPlay, channel=st.sampled_from(["svt1", "svt2", "svtbarn"])),
    st.builds(SvtPlay, program=words.map(lambda w: "/" + w)),
    st.builds(Web, url=words.map(lambda w: f"https://{w}.example.se/")),
    st.builds(
        Command,
        argv=st.lists(
            st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=1, max_size=20),
            min_size=1,
            max_size=4,
        ).map(tuple),
    ),
)
cards_st = st.builds(
    Card,
    uid=uids,
    label=labels,
    action=actions,
    colour=st.sampled_from(["#1F4E9C", "#FFD43B", "#000000"]),
    on_remove=st.sampled_from(["close", "keep"]),
    enabled=st.booleans(),
    role=st.just("resident"),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(cards_st, max_size=6, unique_by=lambda c: c.uid))
def test_save_then_load_gives_the_same_cards(tmp_path, cards):
    path = tmp_path / "round.yaml"
    save_registry(Registry(tuple(cards)), path)
    assert load_registry(path).cards == tuple(cards)


def test_round_trip_keeps_pictures_and_album_folders(tmp_path):
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "a.png").write_bytes(b"png")
    (tmp_path / "album").mkdir()
    card = Card("04A1", "Ett", PhotoAlbum(folder=tmp_path / "album"), picture=tmp_path / "pics" / "a.png")
    save_registry(Registry((card,)), tmp_path / "cards.yaml")
    text = (tmp_path / "cards.yaml").read_text()
    assert "picture: pics/a.png" in text and "folder: album" in text
    assert load_registry(tmp_path / "cards.yaml").cards == (card,)


# --- URLs, labels and pictures that look like one thing and are another (issue 10 item 12) -----


def one_card(action: str, label: str = "Anna", extra: str = "") -> str:
    return f'cards:\n  - uid: "04A1"\n    label: "{label}"\n{extra}    action: {action}\n'


@pytest.mark.parametrize(
    "action",
    [
        "{type: web, url: 'https://www.svtplay.se@evil.example/'}",
        "{type: web, url: 'https://user:pw@host.example/'}",
        "{type: web, url: 'https://evil.example\\\\@www.svtplay.se/'}",
        "{type: photo_album, url: 'https://user@photos.example/album'}",
        "{type: video_call, provider: jitsi, server: 'https://user:pw@meet.example.se', room: familjen}",
    ],
)
def test_urls_with_a_user_name_or_password_are_refused(action):
    registry, problems = parse_registry_text(one_card(action), Path("/tmp"))
    assert registry is None
    ((line, message),) = [(p.line, p.message) for p in problems]
    assert line == 4 and ("user name or password" in message or "must be a web address" in message), message


def test_a_web_address_with_an_at_sign_after_the_host_is_fine():
    registry, problems = parse_registry_text(one_card("{type: web, url: 'https://www.smhi.se/@stockholm'}"), Path("/tmp"))
    assert registry is not None and problems == []


@pytest.mark.parametrize(
    "label",
    ["", "   ", "\\u200b", "\\u200b\\u200d\\ufeff", "\\u3164", "\\u2800 \\u00ad", "\\u2060\\u180e", "\\u0301"],
)
def test_labels_that_are_empty_or_only_invisible_characters_are_refused(label):
    registry, problems = parse_registry_text(one_card("{type: web, url: 'https://a.se'}", label), Path("/tmp"))
    assert registry is None
    ((line, message),) = [(p.line, p.message) for p in problems]
    assert line == 3 and message in (
        "label must not be empty",
        "label holds only invisible characters; write a word the resident can read",
    )


def test_a_label_in_any_script_or_with_accents_is_fine():
    for label in ("Åsa", "e\\u0301", "北京", "Ωμέγα", "A\\u200bB"):
        registry, problems = parse_registry_text(one_card("{type: web, url: 'https://a.se'}", label), Path("/tmp"))
        assert registry is not None and problems == [], (label, problems)


@pytest.mark.parametrize(
    "char", ["\\u202a", "\\u202b", "\\u202c", "\\u202d", "\\u202e", "\\u2066", "\\u2067", "\\u2068", "\\u2069"]
)
@pytest.mark.parametrize(
    "where, action",
    [
        ("label", "{type: web, url: 'https://a.se'}"),
        ("display_name", '{type: video_call, provider: jitsi, server: "https://m.se", room: r, display_name: "a{c}b"}'),
        ("user", '{type: video_call, provider: teams, user: "a{c}b@x.se"}'),
        ("argv", '{type: command, argv: [xclock, "-title", "a{c}b"]}'),
        ("url", '{type: web, url: "https://a.se/{c}x"}'),
    ],
)
def test_direction_overrides_are_refused_in_every_text_field(char, where, action):
    label = f"a{char}b" if where == "label" else "Anna"
    text = one_card(action.replace("{c}", char), label)
    registry, problems = parse_registry_text(text, Path("/tmp"))
    assert registry is None
    assert any(p.message.startswith(f"{where} holds a hidden character that turns text around (U+") for p in problems), problems


def test_a_picture_outside_the_card_folder_or_a_link_is_a_warning(tmp_path):
    (tmp_path / "cards").mkdir()
    (tmp_path / "cards" / "pictures").mkdir()
    (tmp_path / "cards" / "pictures" / "anna.png").write_bytes(b"png")
    (tmp_path / "elsewhere.png").write_bytes(b"png")
    (tmp_path / "cards" / "pictures" / "link.png").symlink_to(tmp_path / "cards" / "pictures" / "anna.png")
    text = (
        one_card("{type: web, url: 'https://a.se'}", extra="    picture: pictures/anna.png\n")
        + '  - uid: "04A2"\n    label: B\n    picture: ../elsewhere.png\n    action: {type: web, url: "https://a.se"}\n'
        + f'  - uid: "04A3"\n    label: C\n    picture: {tmp_path / "elsewhere.png"}\n    action: {{type: web, url: "https://a.se"}}\n'
        + '  - uid: "04A4"\n    label: D\n    picture: pictures/link.png\n    action: {type: web, url: "https://a.se"}\n'
    )
    path = tmp_path / "cards" / "cards.yaml"
    path.write_text(text)
    registry, problems = check_registry(path)
    assert registry is not None and len(registry) == 4  # warnings only: the cards still work
    got = {p.line: p.message for p in problems}
    assert all(p.severity == "warning" for p in problems)
    assert sorted(got) == [8, 12, 16]
    assert "outside the card file's folder" in got[8] and "outside the card file's folder" in got[12]
    assert "is a link to another file" in got[16]


def test_card_text_over_1_mb_is_refused_before_parsing(monkeypatch):
    import yaml

    monkeypatch.setattr(yaml, "compose_all", lambda *a, **k: pytest.fail("parsed"))
    text = one_card("{type: web, url: 'https://a.se'}") + "# " + "x" * 2_000_000 + "\n"
    registry, problems = parse_registry_text(text, Path("/tmp"))
    assert registry is None and problems[0].message.startswith("this card file is 2.0 MB; a card file is at most 1 MB")
