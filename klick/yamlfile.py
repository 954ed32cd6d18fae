"""Reading hand-edited YAML safely, keeping the line of every value.

The registry, the config and the questionnaire are edited by people, sometimes in Notepad.
So a problem must name its line, and hostile or broken files must fail fast with a sentence a
carer can act on: a file that is far too big, an alias bomb ("billion laughs"), a tab used for
indentation, a byte that is not UTF-8. PyYAML's composer gives nodes with start marks; we turn
them into plain values ourselves so that the expansion of aliases has a budget.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from klick.problems import FileProblems, Problem

__all__ = [
    "MAX_FILE_BYTES",
    "YamlDoc",
    "read_yaml",
    "line_of",
    "to_python",
]

#: A card set with a hundred cards is ~20 kB. A megabyte is a wrong file or an attack.
MAX_FILE_BYTES = 1_000_000
#: How many nodes a document may expand to, counting each alias use again.
MAX_NODES = 100_000


def line_of(node: yaml.Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None else None


@dataclass
class YamlDoc:
    """A composed YAML document and the problems found while reading and checking it."""

    path: str
    root: yaml.Node | None
    problems: list[Problem] = field(default_factory=list)

    # -- reporting ------------------------------------------------------------------------
    def error(self, node_or_line: yaml.Node | int | None, message: str) -> None:
        self.problems.append(Problem(self.path, self._line(node_or_line), message))

    def warning(self, node_or_line: yaml.Node | int | None, message: str) -> None:
        self.problems.append(Problem(self.path, self._line(node_or_line), message, "warning"))

    @staticmethod
    def _line(node_or_line: yaml.Node | int | None) -> int | None:
        if isinstance(node_or_line, yaml.Node):
            return line_of(node_or_line)
        return node_or_line

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

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
            self.error(node, f"{where} must be a list of 'name: value' settings")
            return {}
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.error(key_node, f"{where} has a key that is not a plain word")
                continue
            key = key_node.value
            if key in out:
                first = line_of(out[key][0])
                self.error(key_node, f"{_join(where, key)} is given twice (first on line {first}); keep one")
                continue
            out[key] = (key_node, value_node)
        return out

    def unknown_keys(
        self, fields: dict[str, tuple[yaml.Node, yaml.Node]], known: Iterator[str] | set[str] | tuple[str, ...], where: str
    ) -> None:
        known = set(known)
        for key, (key_node, _) in fields.items():
            if key not in known:
                hint = _closest(key, known)
                tip = f"; did you mean {hint!r}?" if hint else f"; known settings are: {', '.join(sorted(known))}"
                self.error(key_node, f"{_join(where, key)} is not a setting Klick knows{tip}")

    def value(self, node: yaml.Node) -> Any:
        """The plain Python value of a node (aliases expanded under a budget)."""
        return to_python(node)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _closest(word: str, choices: set[str]) -> str | None:
    import difflib

    hits = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return hits[0] if hits else None


class _BudgetExceeded(Exception):
    pass


_constructor = yaml.constructor.SafeConstructor()


def to_python(node: yaml.Node, budget: list[int] | None = None) -> Any:
    """Turn a node into plain values, refusing documents that expand past :data:`MAX_NODES`."""
    budget = budget if budget is not None else [MAX_NODES]
    budget[0] -= 1
    if budget[0] < 0:
        raise _BudgetExceeded
    if isinstance(node, yaml.ScalarNode):
        return _constructor.construct_object(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return [to_python(item, budget) for item in node.value]
    if isinstance(node, yaml.MappingNode):
        return {to_python(k, budget): to_python(v, budget) for k, v in node.value}
    raise ValueError(f"unexpected YAML node {node!r}")


def _count_expanded(node: yaml.Node, budget: list[int], seen_depth: int = 0) -> None:
    """Walk every node as a full expansion would, so alias bombs are caught before any use."""
    stack = [node]
    while stack:
        current = stack.pop()
        budget[0] -= 1
        if budget[0] < 0:
            raise _BudgetExceeded
        if isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
        elif isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                stack.append(key)
                stack.append(value)


def read_yaml(path: str | Path, *, what: str = "file", max_bytes: int = MAX_FILE_BYTES, display: str | None = None) -> YamlDoc:
    """Read and compose one YAML file. Never raises for a bad file: look at ``doc.problems``.

    ``what`` names the file in messages ("card file", "settings file"); ``display`` is how the
    path is shown (defaults to the path as given).
    """
    shown = display or str(path)
    doc = YamlDoc(shown, None)
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > max_bytes:
            doc.error(
                None,
                f"this {what} is {size / 1_000_000:.1f} MB; a {what} is at most {max_bytes // 1000} kB. Is it the right file?",
            )
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
    if len(data) > max_bytes:
        doc.error(None, f"this {what} is larger than {max_bytes // 1000} kB. Is it the right file?")
        return doc
    return parse_yaml_bytes(data, doc, what)


def parse_yaml_bytes(data: bytes, doc: YamlDoc, what: str = "file") -> YamlDoc:
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
    bad_tab = False
    for number, raw in enumerate(text.splitlines(), start=1):
        indent = raw[: len(raw) - len(raw.lstrip(" \t"))]
        if "\t" in indent:
            doc.error(number, "this line is indented with a tab; YAML needs spaces. Replace the tab with spaces")
            bad_tab = True
    if bad_tab:
        return doc
    try:
        documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or "cannot be read"
        doc.error(line, f"the {what} is not valid YAML here: {problem}" + _yaml_hint(problem))
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
        try:
            _count_expanded(doc.root, [MAX_NODES])
        except _BudgetExceeded:
            doc.error(
                None,
                f"the {what} expands to more than {MAX_NODES:,} entries through aliases ('&' and '*'); it looks like an attack and is refused",
            )
            doc.root = None
    return doc


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
