"""One typed-field layer for the files people edit: the settings, the card file, the questionnaire.

YAML guesses types. ``label: 2024-02-30`` is a date (here not even a real one, so PyYAML's own
constructor raises), ``enrolled: yes`` is a boolean, ``help_contact: 0701234567`` an octal
number, ``argv: {? [a] : b}`` a map with a list for a key. Values like these once reached code
that expected text and ended in an exception with no line. So a field is read from its YAML
*node*, never from what PyYAML would build: the node's tag says what YAML made of it, and a field
asks for the kind of value it needs. Anything else is a :class:`Wrong` that the file's reader
turns into a problem on the node's line. Nothing here raises anything but :class:`Wrong`.

One rule for text: a plain number written where text is wanted (``room: 4711``, ``help_contact:
0701234567``) is the text as written, digits and leading zeros kept; dates, times, true/false,
empty values, lists and groups are not text, and the message says to put the value in quotes.
"""

from __future__ import annotations

import datetime as _dt
import re
import unicodedata
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import yaml

__all__ = [
    "Wrong",
    "MAX_NODES",
    "BudgetExceeded",
    "show",
    "plain",
    "is_null",
    "text",
    "whole",
    "number",
    "flag",
    "choice",
    "words",
    "date",
    "visible",
    "hidden_character",
    "BIDI_CONTROLS",
    "web_address",
]

_YAML = "tag:yaml.org,2002:"
STR, NULL, BOOL, INT, FLOAT, TIMESTAMP = (_YAML + t for t in ("str", "null", "bool", "int", "float", "timestamp"))
#: How many nodes a document may expand to, counting each alias use again.
MAX_NODES = 100_000
#: Characters that reorder the text around them (Trojan Source): never in a value Klick shows or runs.
BIDI_CONTROLS = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
#: Unicode's control characters (category Cc), the direction controls above, and lone surrogates
#: (half of a character: YAML's "\ud800" escape makes one, and no file, screen or database takes it).
_HIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_ODD_HOST = re.compile(r"[\s\\]")
#: Letters that draw as nothing although Unicode calls them letters or symbols.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


class Wrong(ValueError):
    """A value is not what its field needs.

    ``str()`` is the rest of a sentence that starts with the field's name ("must be text, not
    a list"); ``expected`` and ``got`` are its parts, for a reader that words it its own way.
    """

    def __init__(
        self, message: str, *, expected: str = "", got: str = "", kind: str = "type", at: yaml.Node | None = None
    ) -> None:
        super().__init__(message)
        self.expected = expected
        self.got = got
        self.kind = kind
        #: The node the problem is on when it is inside the field's value (one item of a list).
        self.at = at


class BudgetExceeded(Exception):
    """A document expands (through aliases) to more than :data:`MAX_NODES` values."""


# --- what YAML made of a node -----------------------------------------------------------------


def is_null(node: yaml.Node | None) -> bool:
    return node is None or (isinstance(node, yaml.ScalarNode) and node.tag == NULL)


def _plain_style(node: yaml.ScalarNode) -> bool:
    return not node.style  # None from PyYAML's composer, "" from libyaml's


def show(node: yaml.Node) -> str:
    """A value as a message quotes it back: "slto", 12, true, empty, the date 2024-02-30, a list."""
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.MappingNode):
        return "a group of settings"
    if not isinstance(node, yaml.ScalarNode):
        return "a value Klick cannot read"
    raw = str(node.value)
    if node.tag == STR:
        return f'"{raw}"'
    if node.tag == NULL:
        return "empty"
    if node.tag == TIMESTAMP:
        return f"the date and time {raw}" if len(raw.strip()) > 10 else f"the date {raw}"
    if node.tag == BOOL:
        try:
            value = _scalar(node)
        except Exception:  # !!bool maybe: shown as written, below
            value = None
        if isinstance(value, bool):
            return "true" if value else "false"
    if node.tag in (BOOL, INT, FLOAT):
        return raw
    tag = f"!!{node.tag[len(_YAML) :]}" if node.tag.startswith(_YAML) else node.tag
    return f"a value marked {tag}"


def _scalar(node: yaml.ScalarNode) -> Any:
    """What PyYAML builds from a scalar; an exception when it cannot (a 30th of February).

    A fresh constructor each time: a constructor remembers every node it built and, after one
    fails (``!!bool maybe``), calls that node "recursive" for ever; one shared by every file read
    in a long-running launcher would also keep every node alive and be shared between threads.
    """
    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


def plain(node: yaml.Node, budget: list[int] | None = None) -> Any:
    """The node as plain Python values, for checks that look at a whole structure. Never raises
    but :class:`BudgetExceeded`: a scalar PyYAML cannot build stays its text, and a key that
    cannot be a key (a list, a group) becomes its description."""
    budget = budget if budget is not None else [MAX_NODES]
    budget[0] -= 1
    if budget[0] < 0:
        raise BudgetExceeded
    if isinstance(node, yaml.ScalarNode):
        try:
            return _scalar(node)
        except Exception:  # PyYAML raises several kinds for an unbuildable scalar; the text stands in
            return str(node.value)
    if isinstance(node, yaml.SequenceNode):
        return [plain(item, budget) for item in node.value]
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key, value in node.value:
            k = plain(key, budget)
            try:
                hash(k)
            except TypeError:
                k = show(key)
            out[k] = plain(value, budget)
        return out
    return None


# --- text ---------------------------------------------------------------------------------------


def hidden_character(value: str) -> str | None:
    """The reason a text must be retyped, or None: a control character or a direction override."""
    found = _HIDDEN.search(value)
    if found is None:
        return None
    ch = found.group()
    if ch in BIDI_CONTROLS:
        return f"holds a hidden character that turns text around (U+{ord(ch):04X}); retype it"
    if "\ud800" <= ch <= "\udfff":
        return f"holds half of a character (U+{ord(ch):04X}, written as an escape); retype it"
    return "holds an invisible control character; retype it"


def visible(value: str) -> bool:
    """Whether a text has anything a reader can see, after Unicode normalisation (NFC)."""
    for ch in unicodedata.normalize("NFC", value):
        if ch.isspace() or ch in _BLANK_LETTERS:
            continue
        category = unicodedata.category(ch)
        if category in ("Cf", "Cc", "Zs", "Zl", "Zp", "Mn", "Me"):
            continue  # format characters (zero-width space, joiners), lone marks, spaces
        return True
    return False


def text(node: yaml.Node, *, expected: str = "text") -> str:
    """A text value ("" for an empty one); a plain number stands for its digits as written."""
    if isinstance(node, yaml.ScalarNode):
        if node.tag == STR:
            value = str(node.value)
        elif node.tag == NULL:
            return ""
        elif node.tag in (INT, FLOAT) and _plain_style(node):
            value = str(node.value)
        else:
            got = show(node)
            raise Wrong(f"must be {expected}, not {got}; put it in quotes", expected=expected, got=got)
    else:
        got = show(node)
        raise Wrong(f"must be {expected}, not {got}", expected=expected, got=got)
    reason = hidden_character(value)
    if reason:
        raise Wrong(reason, expected=expected, got=show(node), kind="hidden")
    return value


def words(node: yaml.Node) -> tuple[str, ...]:
    """A list of non-empty texts (a command line), never one string a shell would split."""
    if isinstance(node, yaml.ScalarNode) and node.tag == STR:
        raise Wrong("must be a list of words, not one string", expected="a list of words", got=show(node), kind="string")
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise Wrong(f"must be a list of words, not {show(node)}", expected="a list of words", got=show(node))
    out = []
    for item in node.value:
        try:
            word = text(item)
        except Wrong as exc:
            if exc.kind == "hidden":
                exc.at = item
                raise
            raise Wrong(
                f"must be a list of words, not {show(node)}", expected="a list of words", got=show(item), at=item
            ) from None
        if not word:
            raise Wrong("must be a list of words, with no empty one", expected="a list of words", got="empty", at=item)
        out.append(word)
    return tuple(out)


# --- numbers, switches, words from a list, dates ------------------------------------------------


def whole(node: yaml.Node, low: int, high: int) -> int:
    """A whole number from ``low`` to ``high``."""
    value: Any = None
    if isinstance(node, yaml.ScalarNode) and node.tag == INT:
        try:
            value = _scalar(node)
        except Exception:  # an int PyYAML cannot build is as wrong as no int
            value = None
    got = show(node)
    expected = f"a whole number from {low} to {high}"
    if not isinstance(value, int) or isinstance(value, bool):
        raise Wrong(f"must be a whole number, not {got}", expected=expected, got=got)
    if not low <= value <= high:
        raise Wrong(f"must be between {low} and {high}, not {got}", expected=expected, got=got, kind="range")
    return value


def number(node: yaml.Node, low: float, high: float, *, above_low: bool = False) -> float:
    """A number (whole or not) from ``low`` (or just above it) to ``high``."""
    value: Any = None
    if isinstance(node, yaml.ScalarNode) and node.tag in (INT, FLOAT):
        try:
            value = _scalar(node)
        except Exception:  # as above
            value = None
    got = show(node)
    span = f"{'above' if above_low else 'from'} {low:g} up to {high:g}"
    expected = f"a number {span}"
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
        raise Wrong(f"must be a number, not {got}", expected=expected, got=got)
    if not (low < value if above_low else low <= value) or not value <= high:
        raise Wrong(f"must be {span}, not {got}", expected=expected, got=got, kind="range")
    return float(value)


def flag(node: yaml.Node) -> bool:
    """true or false (YAML 1.1 also reads yes/no and on/off as these)."""
    if isinstance(node, yaml.ScalarNode) and node.tag == BOOL:
        try:
            value = _scalar(node)
        except Exception:  # cannot happen for a resolved bool, but a tag can be forced with !!bool
            value = None
        if isinstance(value, bool):
            return value
    got = show(node)
    raise Wrong(f"must be true or false, not {got}", expected="true or false", got=got)


def choice(node: yaml.Node, options: Iterable[str], *, listed: str | None = None) -> str:
    """One word out of ``options``; ``listed`` is how the message lists them (default "one of a, b")."""
    options = tuple(options)
    if isinstance(node, yaml.ScalarNode) and node.tag == STR and node.value in options:
        return str(node.value)
    expected = listed or f"one of {', '.join(options)}"
    got = show(node)
    raise Wrong(f"must be {expected}, not {got}", expected=expected, got=got)


def date(node: yaml.Node) -> _dt.date | None:
    """A day written like 2026-11-23; None when left empty."""
    got = show(node)
    wrong = Wrong(f"must be a date written like 2026-11-23, not {got}", expected="a date written like 2026-11-23", got=got)
    if not isinstance(node, yaml.ScalarNode):
        raise wrong
    if node.tag == NULL or (node.tag == STR and not str(node.value).strip()):
        return None
    if node.tag == TIMESTAMP:
        try:
            value = _scalar(node)
        except Exception:  # 2026-02-30: a date-shaped text that is no day
            raise Wrong(
                f"must be a real day written like 2026-11-23; there is no {node.value}",
                expected="a date written like 2026-11-23",
                got=got,
            ) from None
        return value.date() if isinstance(value, _dt.datetime) else value
    if node.tag == STR:
        try:
            return _dt.date.fromisoformat(str(node.value).strip())
        except ValueError:
            raise wrong from None
    raise wrong


# --- web addresses ------------------------------------------------------------------------------


def web_address(value: str, schemes: tuple[str, ...] = ("https",)) -> str | None:
    """Why ``value`` is not a web address a card may open, in words after the field's name; None
    when it is one. User names and passwords are refused: ``https://www.svtplay.se@evil.example/``
    opens evil.example, whatever it looks like."""
    try:
        parts = urlsplit(value)
        host = parts.hostname
        has_login = parts.username is not None or parts.password is not None or "@" in parts.netloc
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return f'must be a web address starting with {schemes[0]}://, not "{value}"'
    odd_host = _ODD_HOST.search(parts.netloc) is not None  # a browser reads "\\" as "/"
    if parts.scheme not in schemes or not parts.netloc or not host or odd_host:
        return f'must be a web address starting with {schemes[0]}://, not "{value}"'
    if has_login:
        return f"must not hold a user name or password (the part before '@' in \"{parts.netloc}\"); the address would open {host}"
    return None
