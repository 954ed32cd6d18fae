"""The one typed-field layer under the settings, the card file and the questionnaire.

Whatever YAML makes of a value (a date, a 30th of February, a time, a number, true/false, null,
a list, a group, a group with a list for a key, a tag), each validator answers with a result or
with problems on lines, never with an exception.
"""

from __future__ import annotations

import datetime
import tempfile
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cards.registry import check_registry, parse_registry_text
from klick import fields
from klick.config import ConfigError, load_config
from klick.questionnaire import check_questionnaire

#: Values YAML reads as something other than text, or cannot build at all, or that are not plain.
HOSTILE_SCALARS = [
    "2024-02-30",  # a date PyYAML's constructor raises on
    "2024-13-01",
    "2026-11-23",
    "2026-11-23 10:00:00",
    "12:30",  # YAML 1.1: the number 750
    "0701234567",  # YAML 1.1: an octal number
    "0o17",
    "1e3",
    ".inf",
    ".nan",
    "-5",
    "yes",
    "off",
    "true",
    "~",
    "null",
    "''",
    '"\\u202eevil"',
    '"\\x07"',
    '"\\u200b"',
    "!foo x",
    "!!binary aGVsbG8=",
    "!!set {a}",
    "!!str 12",
    "!!bool maybe",  # a tag PyYAML cannot build: once broke the shared constructor for good
    "!!int abc",
    "[]",
    "{}",
    "[a, [b]]",
    "{a: b}",
    "{? [a] : b}",
    "{? {a: b} : c}",
    "&anchor [1, 2]",
    "*anchor",
]
KEYS = [
    # the card file
    "version",
    "cards",
    "uid",
    "label",
    "colour",
    "color",
    "picture",
    "action",
    "type",
    "provider",
    "server",
    "room",
    "display_name",
    "user",
    "name",
    "channel",
    "program",
    "folder",
    "url",
    "argv",
    "on_remove",
    "enabled",
    "role",
    # the settings
    "reader",
    "mode",
    "settle_ms",
    "locale",
    "text_size",
    "speech",
    "help_contact",
    "display",
    "fullscreen",
    "browser",
    "command",
    "pilot",
    "consent_date",
    "export_key",
    "calls",
    "allowed_servers",
    "paths",
    "registry",
    # the questionnaire
    "limits",
    "per_day",
    "quiet_hours",
    "questions",
    "id",
    "kind",
    "text",
    "sv",
    "en",
    "triggers",
    "after_uses",
    "per_card",
    "action_type",
    "weekday",
    "days_after_first_use",
    "after_session_minutes",
    "follow_up",
    "when",
    "options",
    "value",
]
FRIENDLY_SCALARS = ["04A2B3C4", "Anna", "web", "video_call", "jitsi", "https://a.se", "svt1", "slot", "1", "smiley5", "friday"]


class Block:
    """A YAML value, written out in block style so that each value has a line of its own."""

    def __init__(self, kind: str, items):
        self.kind, self.items = kind, items

    def __repr__(self) -> str:
        return f"<YAML {self.write()!r}>"

    def write(self, indent: int = 0) -> str:
        pad = " " * indent
        if self.kind == "scalar":
            return f"{pad}{self.items}\n"
        if not self.items:
            return f"{pad}{'{}' if self.kind == 'map' else '[]'}\n"
        out = []
        for item in self.items:
            key, value = item if self.kind == "map" else ("-", item)
            head = f"{pad}{key}:" if self.kind == "map" else f"{pad}-"
            if value.kind == "scalar":
                out.append(f"{head} {value.items}\n")
            else:
                out.append(f"{head}\n{value.write(indent + 2)}")
        return "".join(out)


scalars = st.sampled_from(HOSTILE_SCALARS + FRIENDLY_SCALARS).map(lambda s: Block("scalar", s))
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda items: Block("list", items)),
        st.lists(st.tuples(st.sampled_from(KEYS), inner), max_size=5).map(lambda items: Block("map", items)),
    ),
    max_leaves=25,
)


def all_three(text: str) -> list[tuple[str, object, list]]:
    """Feed ``text`` to the three validators as a file; (which, result, problems) for each."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "file.yaml"
        path.write_text(text, encoding="utf-8")
        registry, problems = check_registry(path)
        out.append(("card file", registry, problems))
        questionnaire, problems = check_questionnaire(path)
        out.append(("questionnaire", questionnaire, problems))
        try:
            config, problems = load_config(path, env={"KLICK_HOME": tmp}), []
        except ConfigError as exc:
            config, problems = None, exc.problems
        out.append(("settings", config, problems))
    return out


def assert_result_or_problems_with_lines(text: str) -> None:
    for which, result, problems in all_three(text):
        errors = [p for p in problems if p.severity == "error"]
        if result is None:
            assert errors, (which, text)
        else:
            assert not errors, (which, text, errors)
        for problem in problems:
            assert problem.line is not None and 1 <= problem.line <= text.count("\n") + 1, (which, str(problem), text)
            assert problem.message and "Traceback" not in problem.message


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_yaml_documents_of_any_shape_give_a_result_or_problems_with_lines_never_an_exception(doc):
    text = doc.write()
    try:
        yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        pass  # not YAML at all (an undefined alias): still a problem with a line, below
    assert_result_or_problems_with_lines(text)


CARD = textwrap.dedent(
    """\
    version: 1
    cards:
      - uid: "04A2B3C4"
        label: Anna
        colour: blue
        on_remove: close
        enabled: true
        action:
          type: video_call
          provider: jitsi
          server: https://meet.example.se
          room: familjen
          display_name: Mamma
      - uid: "04A2B3C5"
        label: Klocka
        action:
          type: command
          argv:
            - xclock
      - uid: "04A2B3C6"
        label: Rapport
        action:
          type: svt_play
          program: /rapport
      - uid: "04A2B3C7"
        label: Webb
        action:
          type: web
          url: https://www.smhi.se/vader
    """
)
#: Every line of CARD that holds one value, and the value as written there.
VALUE_LINES = {
    number: line
    for number, line in enumerate(CARD.splitlines(), start=1)
    if ": " in line and not line.strip().startswith("- uid") and "version" not in line
}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(VALUE_LINES)), st.sampled_from(HOSTILE_SCALARS[:-1]))
def test_a_wrong_typed_value_in_a_card_file_is_a_problem_on_its_own_line(number, value):
    lines = CARD.splitlines()
    key = lines[number - 1].split(":")[0]
    lines[number - 1] = f"{key}: {value}"
    text = "\n".join(lines) + "\n"
    registry, problems = parse_registry_text(text, Path("/nonexistent"))
    for problem in problems:
        assert problem.line is not None, str(problem)
    if registry is None:
        # On the value's own line; an empty value may instead be "needs a ..." on its card or action.
        starts = [n for n, line in enumerate(lines, start=1) if line.strip().startswith("- uid")]
        first = max(n for n in starts if n <= number)
        last = min([n for n in starts if n > number] + [len(lines) + 1]) - 1
        near = range(first, last + 1) if value in ("~", "null", "''") else (number,)
        assert any(p.line in near and p.severity == "error" for p in problems), (key, value, problems)
    else:
        # Accepted: only text (a number written plainly counts as its digits), or an empty value
        # where the field may be left out; never a date, true/false, a list, a group or a tag.
        node = yaml.compose(f"a: {value}", Loader=yaml.SafeLoader).value[0][1]
        assert isinstance(node, yaml.ScalarNode), (key, value)
        wanted = (fields.BOOL,) if key.strip() == "enabled" else (fields.STR, fields.INT, fields.FLOAT, fields.NULL)
        assert node.tag in wanted, (key, value)


@pytest.mark.parametrize(
    "value, words",
    [
        ("2024-02-30", "not the date 2024-02-30; put it in quotes"),
        ("2026-11-23 10:00:00", "not the date and time"),
        ("yes", "not true; put it in quotes"),
        ("[Anna]", "not a list"),
        ("{? [a] : b}", "not a group of settings"),
        ("!!binary aGVsbG8=", "not a value marked !!binary"),
    ],
)
def test_label_that_yaml_reads_as_something_else_names_its_line(value, words, tmp_path):
    path = tmp_path / "cards.yaml"
    path.write_text(f"cards:\n  - uid: 04A1\n    label: {value}\n    action: {{type: web, url: 'https://a.se'}}\n")
    registry, problems = check_registry(path)
    assert registry is None
    ((line, message),) = [(p.line, p.message) for p in problems]
    assert line == 3 and message.startswith("label must be text") and words in message


def test_a_number_where_text_is_wanted_is_the_text_as_written(tmp_path):
    path = tmp_path / "cards.yaml"
    path.write_text(
        "cards:\n  - uid: 04A1\n    label: 0701234567\n"
        "    action: {type: video_call, provider: jitsi, server: https://meet.example.se, room: 0012}\n"
    )
    registry, problems = check_registry(path)
    assert problems == [] and registry.cards[0].label == "0701234567" and registry.cards[0].action.room == "0012"


def test_cards_check_names_the_line_of_every_wrong_typed_value(klick, tmp_path):
    path = tmp_path / "cards.yaml"
    path.write_text(
        "cards:\n"
        "  - uid: 04A1\n    label: 2024-02-30\n    action: {type: web, url: 'https://a.se'}\n"
        "  - uid: 04A2\n    label: B\n    colour: 2024-13-01\n    action: {type: web, url: 'https://a.se'}\n"
        "  - uid: 04A3\n    label: C\n    action:\n      type: command\n      argv: {? [a] : b}\n"
    )
    result = klick("cards", "check", str(path))
    assert result.returncode == 1, result.stderr
    assert "could not finish" not in result.stderr and "Traceback" not in result.stderr
    for line in (3, 7, 13):
        assert f"cards.yaml:{line}:" in result.stderr, result.stderr
    assert "3 problems to fix" in result.stderr


def test_settings_with_wrong_typed_values_name_each_line(tmp_path):
    path = tmp_path / "klick.yaml"
    path.write_text(
        "reader:\n  settle_ms: 2024-02-30\n  mode: [slot]\nhelp_contact: 0701234567\npilot:\n"
        "  consent_date: 2024-02-30\nlocale: {? [a] : b}\nspeech: 12:30\ntext_size: ~\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={"KLICK_HOME": str(tmp_path)})
    got = {p.line: p.message for p in caught.value.problems}
    assert sorted(got) == [2, 3, 6, 7, 8, 9]
    assert got[2] == "reader.settle_ms must be a whole number, not the date 2024-02-30"
    assert got[6] == "pilot.consent_date must be a real day written like 2026-11-23; there is no 2024-02-30"
    assert got[8] == "speech must be true or false, not 12:30"
    path.write_text("help_contact: 0701234567\n")
    assert load_config(path, env={"KLICK_HOME": str(tmp_path)}).help_contact == "0701234567"  # not the octal 117782903


def test_questionnaire_with_wrong_typed_values_names_each_line(tmp_path):
    path = tmp_path / "questionnaire.yaml"
    path.write_text(
        "limits:\n  per_day: 2024-02-30\nquestions:\n  - id: q\n    kind: yes_no\n"
        "    text: {sv: 2024-02-30, en: ok}\n    triggers:\n      - after_uses: {? [a] : b}\n"
        "    follow_up:\n      when: {? [a] : b}\n      id: f\n      kind: free_text\n      text: {sv: a, en: b}\n"
    )
    q, problems = check_questionnaire(path)
    assert q is None
    got = {p.line: p.message for p in problems}
    assert sorted(got) == [2, 6, 8, 10]
    assert got[2] == "limits.per_day must be a whole number from 1 to 20, not the date 2024-02-30"  # not "empty"
    assert got[6] == "question 'q': text.sv must be words, not the date 2024-02-30; put it in quotes"


@settings(max_examples=200, deadline=None)
@given(documents)
def test_libyaml_and_the_pure_composer_give_the_same_lines(doc):
    if not hasattr(yaml, "CSafeLoader"):
        pytest.skip("PyYAML without libyaml")
    text = doc.write()
    try:
        pure = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return
    fast = yaml.compose(text, Loader=yaml.CSafeLoader)

    def marks(node, seen=None):
        seen = seen if seen is not None else set()
        if node is None or id(node) in seen:
            return []
        seen.add(id(node))
        out = [(type(node).__name__, node.tag, node.start_mark.line, node.start_mark.column, node.end_mark.line)]
        if isinstance(node, yaml.SequenceNode):
            for item in node.value:
                out += marks(item, seen)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                out += marks(key, seen) + marks(value, seen)
        return out

    assert marks(pure) == marks(fast)


def test_a_file_nested_past_any_real_file_is_refused_with_a_sentence(tmp_path):
    path = tmp_path / "cards.yaml"
    path.write_text("cards: " + "[" * 900 + "]" * 900 + "\n")
    registry, problems = check_registry(path)
    assert registry is None and "nested too deeply" in problems[0].message


def test_a_link_loop_or_an_overlong_picture_path_is_a_warning_not_a_crash(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    path = tmp_path / "cards.yaml"
    path.write_text(
        f"cards:\n  - uid: 04A1\n    label: A\n    picture: {tmp_path / 'a'}\n    action: {{type: web, url: 'https://a.se'}}\n"
        f"  - uid: 04A2\n    label: B\n    picture: {'x' * 400}.png\n    action: {{type: photo_album, folder: {'y' * 400}}}\n"
    )
    registry, problems = check_registry(path)
    assert registry is not None and len(registry) == 2
    assert [p.line for p in problems] == [4, 8, 9] and all(p.severity == "warning" for p in problems)


def test_a_fifo_is_not_read_as_a_card_file(tmp_path):
    import os

    path = tmp_path / "cards.yaml"
    os.mkfifo(path)
    registry, problems = check_registry(path)  # opening a FIFO would wait for a writer for ever
    assert registry is None and "not a plain file" in problems[0].message


def test_show_quotes_values_back_plainly():
    def node(text):
        return yaml.compose(f"a: {text}", Loader=yaml.SafeLoader).value[0][1]

    assert fields.show(node("slto")) == '"slto"'
    assert fields.show(node("2024-02-30")) == "the date 2024-02-30"
    assert fields.show(node("12:30")) == "12:30"
    assert fields.show(node("yes")) == "true"
    assert fields.show(node("~")) == "empty"
    assert fields.show(node("[a]")) == "a list"
    assert fields.show(node("{a: b}")) == "a group of settings"
    assert fields.show(node("!foo x")) == "a value marked !foo"


def _node(text: str) -> yaml.Node:
    return yaml.compose(f"a: {text}", Loader=yaml.SafeLoader).value[0][1]


@pytest.mark.parametrize(
    "check, good, bad",
    [
        (
            fields.text,
            {"Anna": "Anna", "0012": "0012", "12:30": "12:30", "~": ""},
            ["2024-02-30", "yes", "[a]", "{a: b}", "!foo x"],
        ),
        (lambda n: fields.whole(n, 0, 10), {"7": 7, "0x0a": 10}, ["11", "-1", "1.5", "yes", "'7'", "2024-02-30", "[7]", "~"]),
        (lambda n: fields.number(n, 0, 10, above_low=True), {"0.5": 0.5, "10": 10.0}, ["0", ".nan", ".inf", "true", "'1'"]),
        (fields.flag, {"true": True, "no": False}, ["1", "'true'", "~", "[true]"]),
        (lambda n: fields.choice(n, ("slot", "tap")), {"slot": "slot"}, ["Slot", "[slot]", "~", "1"]),
        (
            fields.words,
            {"[xclock, -digital, 5]": ("xclock", "-digital", "5")},
            ["xclock", "[]", "[a, ~]", "[a, [b]]", "{? [a] : b}"],
        ),
        (
            fields.date,
            {
                "2026-11-23": datetime.date(2026, 11, 23),
                "'2026-11-23'": datetime.date(2026, 11, 23),
                "~": None,
            },
            ["2024-02-30", "23/11/2026", "12", "[2026-11-23]"],
        ),
    ],
)
def test_each_kind_of_field_takes_its_own_kind_and_refuses_every_other(check, good, bad):
    for text, value in good.items():
        assert check(_node(text)) == value, text
    for text in bad:
        with pytest.raises(fields.Wrong) as caught:
            check(_node(text))
        assert str(caught.value).startswith("must ") or "holds" in str(caught.value), text


def test_web_addresses_with_a_login_or_an_odd_host_are_not_web_addresses():
    assert fields.web_address("https://www.smhi.se/vader?x=@y") is None
    assert "evil.example" in fields.web_address("https://www.svtplay.se@evil.example/")
    assert "user name or password" in fields.web_address("https://user:pw@host/")
    for odd in (
        "http://a.se",
        "https://",
        "https://a .se/",
        "https://a.se\\@b.se/",
        "https://a.se:99999/",
        "javascript:alert(1)",
    ):
        assert fields.web_address(odd).startswith("must be a web address starting with https://"), odd


# --- what an attacker or an unlucky editor wrote (attack2) ---------------------------------------


def test_a_bool_tag_on_a_word_is_a_problem_on_its_line_in_every_file_not_a_python_error(klick, tmp_path):
    cards = tmp_path / "cards.yaml"
    cards.write_text(
        'cards:\n  - uid: 04A1\n    label: A\n    enabled: !!bool "maybe"\n    action: {type: web, url: "https://a.se"}\n'
    )
    result = klick("cards", "check", str(cards))
    assert result.returncode == 1 and "cards.yaml:4: enabled must be true or false, not maybe" in result.stderr, result.stderr
    settings = tmp_path / "klick.yaml"
    settings.write_text('pilot:\n  enrolled: !!bool "maybe"\n')
    result = klick("config", "check", "--config", str(settings))
    assert result.returncode == 2 and "klick.yaml:2: pilot.enrolled must be true or false" in result.stderr, result.stderr
    assert "could not finish" not in result.stderr


def test_reading_a_file_keeps_none_of_its_yaml_nodes_alive(tmp_path):
    """A long-running launcher reads cards.yaml at every save: no node may outlive its reading."""
    import gc
    import weakref

    from klick.yamlfile import read_yaml

    path = tmp_path / "cards.yaml"
    path.write_text("version: 1\ncards: []\n")
    doc = read_yaml(path)
    leaf = weakref.ref(doc.root.value[0][1])
    assert fields.plain(doc.root) == {"version": 1, "cards": []}
    check_registry(path)
    del doc
    gc.collect()
    assert leaf() is None


@pytest.mark.parametrize("field", ["label", "picture", "url", "argv"])
def test_an_escape_for_half_a_character_is_refused_where_it_is_written(field, klick, tmp_path):
    """'\\udcff' passed the check, then `cards add`, `cards show` and saving failed with a Python error."""
    values = {"label": "A", "picture": "a.png", "url": "https://a.se"}
    values[field] = '"x\\udcff"'
    action = '{type: command, argv: ["x\\udcff"]}' if field == "argv" else f"{{type: web, url: {values['url']}}}"
    path = tmp_path / "cards.yaml"
    path.write_text(
        f"cards:\n  - uid: 04A1\n    label: {values['label']}\n    picture: {values['picture']}\n    action: {action}\n"
    )
    result = klick("cards", "check", str(path))
    assert result.returncode == 1 and "holds half of a character (U+DCFF" in result.stderr, result.stderr
    assert f"cards.yaml:{5 if field in ('url', 'argv') else 3 if field == 'label' else 4}:" in result.stderr


@pytest.mark.parametrize("text", ["- a\n- b\n", "hello\n", "!!python/object/apply:os.system [id]\n"])
def test_a_file_that_is_not_name_value_lines_says_so_in_a_sentence(text, tmp_path):
    path = tmp_path / "cards.yaml"
    path.write_text(text)
    registry, problems = check_registry(path)
    assert registry is None and [str(p) for p in problems] == [f"{path}:1: the file must be a list of 'name: value' settings"]


def test_a_yaml_merge_key_is_named_as_what_it_is(tmp_path):
    path = tmp_path / "cards.yaml"
    path.write_text(
        'cards:\n  - &c\n    uid: "04AA"\n    label: A\n    action: {type: web, url: "https://a.se"}\n  - <<: *c\n    uid: "04AB"\n'
    )
    registry, problems = check_registry(path)
    assert registry is None
    assert "cards.yaml:6: card.<<: Klick does not read YAML's '<<' (merge keys); write each setting out" in [
        str(p).replace(str(tmp_path) + "/", "") for p in problems
    ]
