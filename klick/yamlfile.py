"""Reading hand-edited YAML safely, keeping the line of every value.

The registry, the config and the questionnaire are edited by people, sometimes in Notepad.
So a problem must name its line, and hostile or broken files must fail fast with a sentence a
carer can act on: a file that is far too big, an alias bomb ("billion laughs"), a tab used for
indentation, a byte that is not UTF-8. PyYAML's composer gives nodes with start marks; the
values are read from those nodes by :mod:`klick.fields`, never built by PyYAML first, so a value
of the wrong type is a problem on its line and the expansion of aliases has a budget.
"""

from __future__ import annotations

import datetime as _dt
import re
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from klick import fields
from klick.problems import FileProblems, Problem

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_DEPTH",
    "YamlDoc",
    "read_yaml",
    "parse_yaml_bytes",
    "size_problem",
    "line_of",
    "show_value",
]

#: A card set with a hundred cards is ~20 kB. A megabyte is a wrong file or an attack.
MAX_FILE_BYTES = 1_000_000
#: A real file is nested five or six levels deep; past this it is a wrong file or an attack.
MAX_DEPTH = 64
#: libyaml's composer (C) when PyYAML was built with it: the same nodes and line marks, ten
#: times faster. Its error messages are worded differently, so a file it refuses is read again
#: by the pure-Python composer, whose words Klick's hints know.
_TAB_INDENT = re.compile(r"^[ \t]*\t", re.MULTILINE)
_FAST_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


_MERGE = "tag:yaml.org,2002:merge"

#: What :meth:`YamlDoc.read` gives for a value it reported as wrong.
MISSING: Any = object()


def line_of(node: yaml.Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None else None


@dataclass
class YamlDoc:
    """A composed YAML document and the problems found while reading and checking it."""

    path: str
    root: yaml.Node | None
    problems: list[Problem] = field(default_factory=list)
    #: How many of ``problems`` are errors: a reader compares it before and after one part.
    errors: int = 0

    # -- reporting ------------------------------------------------------------------------
    def error(self, node_or_line: yaml.Node | int | None, message: str) -> None:
        self.problems.append(Problem(self.path, self._line(node_or_line), message))
        self.errors += 1

    def warning(self, node_or_line: yaml.Node | int | None, message: str) -> None:
        self.problems.append(Problem(self.path, self._line(node_or_line), message, "warning"))

    @staticmethod
    def _line(node_or_line: yaml.Node | int | None) -> int | None:
        if isinstance(node_or_line, yaml.Node):
            return line_of(node_or_line)
        return node_or_line

    @property
    def ok(self) -> bool:
        return self.errors == 0

    def raise_if_errors(self, cls: type[FileProblems] = FileProblems) -> None:
        if not self.ok:
            raise cls(self.sorted_problems())

    def sorted_problems(self) -> list[Problem]:
        return sorted(self.problems, key=lambda p: p.line or 0)

    # -- walking --------------------------------------------------------------------------
    def mapping(self, node: yaml.Node | None, where: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """The keys of a mapping node with their key and value nodes; duplicates reported.

        An empty value (``reader:`` with nothing under it) is an empty mapping, not an error.
        """
        if node is None or _is_null(node):
            return {}
        if not isinstance(node, yaml.MappingNode):
            self.error(node, f"{where or 'the file'} must be a list of 'name: value' settings")
            return {}
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.error(key_node, f"{where or 'the file'} has a key that is not a plain word")
                continue
            if key_node.tag == _MERGE:
                self.error(
                    key_node, f"{_join(where, '<<')}: Klick does not read YAML's '<<' (merge keys); write each setting out"
                )
                continue
            key = key_node.value
            if key in out:
                first = line_of(out[key][0])
                self.error(key_node, f"{_join(where, key)} is given twice (first on line {first}); keep one")
                continue
            out[key] = (key_node, value_node)
        return out

    def unknown_keys(self, fields: dict[str, tuple[yaml.Node, yaml.Node]], known: Iterable[str], where: str) -> None:
        known = known if isinstance(known, (set, frozenset)) else set(known)
        for key, (key_node, _) in fields.items():
            if key not in known:
                hint = _closest(key, known)
                tip = f"; did you mean {hint!r}?" if hint else f"; known settings are: {', '.join(sorted(known))}"
                self.error(key_node, f"{_join(where, key)} is not a setting Klick knows{tip}")

    def value(self, node: yaml.Node) -> Any:
        """The plain Python value of a node (aliases expanded under a budget); never raises."""
        return fields.plain(node)

    def read(self, node: yaml.Node, check: Callable[[yaml.Node], Any], name: str) -> Any:
        """``check(node)``, or :data:`MISSING` with "<name> <what is wrong>" on the node's line."""
        try:
            return check(node)
        except fields.Wrong as exc:
            self.error(exc.at or node, f"{name} {exc}")
            return MISSING


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _is_null(node: yaml.Node) -> bool:
    return fields.is_null(node)


def _closest(word: str, choices: Iterable[str]) -> str | None:
    import difflib

    hits = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return hits[0] if hits else None


def _check_expansion(node: yaml.Node) -> str | None:
    """Walk every node as a full expansion would, so alias bombs and absurd nesting are refused
    before any use; the reason in words, or None."""
    budget = fields.MAX_NODES
    stack: list[tuple[yaml.Node, int]] = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        budget -= 1
        if budget < 0:
            return "expands"
        if depth > MAX_DEPTH:
            return "deep"
        if isinstance(current, yaml.SequenceNode):
            stack.extend((item, depth + 1) for item in current.value)
        elif isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
    return None


def size_problem(size: int, what: str, max_bytes: int = MAX_FILE_BYTES) -> str | None:
    """The one size rule for a file people edit, checked before a byte of it is parsed."""
    if size <= max_bytes:
        return None
    limit = f"{max_bytes / 1_000_000:g} MB" if max_bytes >= 1_000_000 else f"{max_bytes // 1000} kB"
    shown = f"{size / 1_000_000:.1f} MB" if round(size / 1_000_000, 1) > max_bytes / 1_000_000 else f"{size:,} bytes"
    return f"this {what} is {shown}; a {what} is at most {limit}. Is it the right file?"


def read_yaml(path: str | Path, *, what: str = "file", max_bytes: int = MAX_FILE_BYTES, display: str | None = None) -> YamlDoc:
    """Read and compose one YAML file. Never raises for a bad file: look at ``doc.problems``.

    ``what`` names the file in messages ("card file", "settings file"); ``display`` is how the
    path is shown (defaults to the path as given).
    """
    shown = display or str(path)
    doc = YamlDoc(shown, None)
    p = Path(path)
    try:
        info = p.stat()
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError
        if not stat.S_ISREG(info.st_mode):
            doc.error(None, f"this is not a plain file, so it cannot be a {what}")
            return doc
        too_big = size_problem(info.st_size, what, max_bytes)
        if too_big:
            doc.error(None, too_big)
            return doc
        with open(p, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        doc.error(None, f"the {what} does not exist")
        return doc
    except IsADirectoryError:
        doc.error(None, f"this is a folder, not a {what}")
        return doc
    except OSError as exc:
        doc.error(None, f"the {what} cannot be read ({exc.strerror or exc})")
        return doc
    return parse_yaml_bytes(data, doc, what, max_bytes=max_bytes)


def parse_yaml_bytes(data: bytes, doc: YamlDoc, what: str = "file", *, max_bytes: int = MAX_FILE_BYTES) -> YamlDoc:
    """Compose ``data`` into ``doc``: the one way Klick reads a file's bytes, wherever they came
    from (a file, a bundle, the carer tool), so the size limit holds before any parsing."""
    too_big = size_problem(len(data), what, max_bytes)
    if too_big:
        doc.error(None, too_big)
        return doc
    if data.startswith(b"\xef\xbb\xbf"):
        doc.warning(
            1, "the file starts with an invisible byte-order mark (BOM); Klick ignores it, and saving from Klick removes it"
        )
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        doc.error(
            line, f"this line has a character that is not UTF-8 text (byte 0x{data[exc.start]:02X}); save the file as UTF-8"
        )
        return doc
    if _TAB_INDENT.search(text):
        for number, raw in enumerate(text.splitlines(), start=1):
            indent = raw[: len(raw) - len(raw.lstrip(" \t"))]
            if "\t" in indent:
                doc.error(number, "this line is indented with a tab; YAML needs spaces. Replace the tab with spaces")
        if not doc.ok:
            return doc
    try:
        documents = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "cannot be read"
        doc.error(mark.line + 1 if mark else None, f"the {what} is not valid YAML here: {problem}" + _yaml_hint(problem))
        return doc
    except yaml.reader.ReaderError as exc:
        doc.error(
            text[: max(0, exc.position)].count("\n") + 1,
            f"this line has a character a {what} may not hold (#x{exc.character:04x}); retype the line",
        )
        return doc
    except yaml.YAMLError as exc:
        doc.error(None, f"the {what} is not valid YAML: {exc}")
        return doc
    except RecursionError:
        doc.error(None, f"the {what} is nested too deeply to be a real {what}")
        return doc
    if len(documents) > 1:
        doc.error(line_of(documents[1]), f"the {what} holds more than one YAML document ('---'); keep one")
        return doc
    doc.root = documents[0] if documents else None
    if doc.root is not None:
        why = _check_expansion(doc.root)
        if why == "expands":
            doc.error(
                None,
                f"the {what} expands to more than {fields.MAX_NODES:,} entries through aliases ('&' and '*'); it looks like an attack and is refused",
            )
            doc.root = None
        elif why == "deep":
            doc.error(None, f"the {what} is nested too deeply to be a real {what}")
            doc.root = None
    return doc


def _compose(text: str) -> list[yaml.Node]:
    """Every document in ``text``, by libyaml when it can; PyYAML's own words when it cannot."""
    if _FAST_LOADER is not yaml.SafeLoader:
        try:
            return list(yaml.compose_all(text, Loader=_FAST_LOADER))
        except yaml.YAMLError:
            pass  # read again below, for the error in the words Klick's hints know
    return list(yaml.compose_all(text, Loader=yaml.SafeLoader))


def show_value(value: Any) -> str:
    """A value as a message quotes it back: "slto", 12, true, empty, a list."""
    if value is None:
        return "empty"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return "a list" if isinstance(value, list) else "a group of settings"
    return str(value)


def _yaml_hint(problem: str) -> str:
    if "mapping values are not allowed" in problem:
        return " (is a ':' missing a space after it, or is the line indented wrongly?)"
    if "could not find expected ':'" in problem:
        return " (a 'name: value' line is missing its ':')"
    if "found character" in problem:
        return " (put the value in quotes)"
    return ""


def parse_date(text: Any) -> _dt.date:
    """A date from YAML (already a date) or from text in ISO form 2026-11-23."""
    if isinstance(text, _dt.datetime):
        return text.date()
    if isinstance(text, _dt.date):
        return text
    return _dt.date.fromisoformat(str(text).strip())
