"""``questionnaire.yaml``: the pilot's questions, read and checked as strictly as the card file.

Pilot staff edit this file, not programmers; a mistake must name its line and the fix, every
mistake at once, and a file with errors is never used (the device then asks nothing rather than
asking something garbled). File format::

    version: 1
    limits:
      per_day: 3               # at most this many questions a day (follow-ups do not count)
      quiet_hours: "20:00-09:00"
      expire_days: 3           # a question not answered in time is dropped
      snooze_minutes: 120      # "not now" asks again after this long
      between_minutes: 30      # at least this long between two questions (follow-ups excepted)
    questions:
      - id: how_did_it_go
        kind: smiley5          # smiley5 | yes_no | choice | free_text
        text:                  # {card} is the card's name, for a question asked after a card's use
          sv: Hur gick det med {card}?
          en: How did it go with {card}?
        triggers:
          - after_uses: [1, 2, 3]
            per_card: true
      - id: anything_difficult
        kind: yes_no
        text: {sv: Var något svårt?, en: Was anything difficult?}
        triggers:
          - after_uses: [1, 2, 3]
        follow_up:
          when: "yes"
          id: what_was_difficult
          kind: free_text
          text: {sv: Vad var svårt?, en: What was difficult?}

Triggers: ``after_uses`` (N or a list; optional ``action_type`` and ``per_card``),
``days_after_first_use``, ``after_session_minutes`` (optional ``action_type``), ``weekday``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from klick import fields
from klick.problems import FileProblems, Problem
from klick.yamlfile import MISSING, YamlDoc, line_of, read_yaml

__all__ = [
    "KINDS",
    "ACTION_TYPES",
    "WEEKDAYS",
    "Text",
    "Option",
    "Trigger",
    "Question",
    "Limits",
    "Questionnaire",
    "QuestionnaireError",
    "load_questionnaire",
    "check_questionnaire",
]

KINDS = ("smiley5", "yes_no", "choice", "free_text")
#: The action types a card can have (cards/model.py); repeated here because the core may not
#: import cards/. A test keeps the two lists equal.
ACTION_TYPES = ("video_call", "svt_play", "photo_album", "web", "command")
WEEKDAYS = {
    "monday": 0,
    "tuesday": 1,
    "wednesday": 2,
    "thursday": 3,
    "friday": 4,
    "saturday": 5,
    "sunday": 6,
    "måndag": 0,
    "tisdag": 1,
    "onsdag": 2,
    "torsdag": 3,
    "fredag": 4,
    "lördag": 5,
    "söndag": 6,
}
#: Shown in large type on a 10-inch screen to someone with poor sight: short questions only.
MAX_TEXT = 120
MAX_OPTIONS = 4
_ID = re.compile(r"[a-z][a-z0-9_]{0,39}")
_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
_TRIGGER_KEYS = {"after_uses", "days_after_first_use", "after_session_minutes", "weekday"}


class QuestionnaireError(FileProblems):
    """The questionnaire cannot be used; ``problems`` holds every reason with its line."""


@dataclass(frozen=True)
class Text:
    sv: str
    en: str

    def get(self, locale: str) -> str:
        return self.en if locale == "en" else self.sv


@dataclass(frozen=True)
class Option:
    value: str
    label: Text


@dataclass(frozen=True)
class Trigger:
    """One reason to ask. ``kind`` is the key used in the file."""

    kind: str
    uses: tuple[int, ...] = ()
    per_card: bool = False
    action_type: str | None = None
    days: int | None = None
    minutes: float | None = None
    weekday: int | None = None

    def describe(self) -> str:
        """A short, stable name for the export (never holds a card ID)."""
        if self.kind == "after_uses":
            scope = "per_card" if self.per_card else (self.action_type or "any")
            return f"after_uses:{scope}"
        if self.kind == "days_after_first_use":
            return f"days_after_first_use:{self.days}"
        if self.kind == "after_session_minutes":
            return f"after_session_minutes:{self.minutes:g}" + (f":{self.action_type}" if self.action_type else "")
        return f"weekday:{self.weekday}"


SMILEY_OPTIONS = tuple(
    Option(str(i + 1), Text(sv, en))
    for i, (sv, en) in enumerate(
        [
            ("Mycket dåligt", "Very bad"),
            ("Dåligt", "Bad"),
            ("Sådär", "So-so"),
            ("Bra", "Good"),
            ("Mycket bra", "Very good"),
        ]
    )
)
YES_NO_OPTIONS = (Option("yes", Text("Ja", "Yes")), Option("no", Text("Nej", "No")))


@dataclass(frozen=True)
class Question:
    id: str
    kind: str
    text: Text
    options: tuple[Option, ...] = ()
    triggers: tuple[Trigger, ...] = ()
    follow_up: Question | None = None
    #: Answer values that lead to the follow-up question.
    follow_up_when: tuple[str, ...] = ()
    line: int | None = None

    def option_values(self) -> tuple[str, ...]:
        return tuple(o.value for o in self.options)


@dataclass(frozen=True)
class Limits:
    per_day: int = 2
    #: (start, end) in minutes after midnight, local time; the span may cross midnight.
    quiet_hours: tuple[int, int] | None = (20 * 60, 9 * 60)
    expire_days: int = 3
    snooze_minutes: int = 120
    #: Minutes that must pass after a question was shown before the next one (a follow-up, part
    #: of the answer just given, does not wait). Three questions 3 s apart wear a resident out.
    between_minutes: int = 30


@dataclass(frozen=True)
class Questionnaire:
    questions: tuple[Question, ...] = ()
    limits: Limits = Limits()
    path: Path | None = None

    def find(self, question_id: str) -> Question | None:
        for q in self.questions:
            if q.id == question_id:
                return q
            if q.follow_up is not None and q.follow_up.id == question_id:
                return q.follow_up
        return None


# --- reading ------------------------------------------------------------------------------------


def load_questionnaire(path: str | Path) -> Questionnaire:
    """Read and check the file; raise :class:`QuestionnaireError` with every problem."""
    q, problems = check_questionnaire(path)
    if q is None:
        raise QuestionnaireError([p for p in problems if p.severity == "error"] or problems)
    return q


def check_questionnaire(path: str | Path, display: str | None = None) -> tuple[Questionnaire | None, list[Problem]]:
    """The questionnaire (None when any error was found) and every problem, sorted by line."""
    doc = read_yaml(path, what="questionnaire", display=display or str(path))
    if not doc.ok:
        return None, doc.sorted_problems()
    if doc.root is None:
        doc.error(None, "the questionnaire is empty; it needs a 'questions:' list")
        return None, doc.sorted_problems()
    result = _read(doc, Path(path))
    return (result if doc.ok else None), doc.sorted_problems()


def _read(doc: YamlDoc, path: Path) -> Questionnaire:
    root = doc.mapping(doc.root, "the questionnaire")
    doc.unknown_keys(root, {"version", "limits", "questions"}, "")
    if "version" in root:
        node = root["version"][1]
        if not (isinstance(node, yaml.ScalarNode) and node.tag == fields.INT and doc.value(node) == 1):
            doc.error(node, "version must be 1 (the only questionnaire format this Klick reads)")
    limits = _read_limits(doc, root["limits"][1]) if "limits" in root else Limits()
    questions: list[Question] = []
    if "questions" not in root:
        doc.error(doc.root, "the questionnaire needs a 'questions:' list")
    else:
        node = root["questions"][1]
        if not isinstance(node, yaml.SequenceNode):
            doc.error(node, "questions must be a list, each question starting with '- id: ...'")
        else:
            seen: dict[str, int | None] = {}
            for item in node.value:
                for id_node in _id_nodes(item):
                    qid = id_node.value
                    if qid in seen:
                        doc.error(
                            id_node, f"the question id '{qid}' is used twice (first on line {seen[qid]}); each id must be unique"
                        )
                    else:
                        seen[qid] = line_of(id_node)
                q = _read_question(doc, item, top=True)
                if q is not None:
                    questions.append(q)
            if not node.value:
                doc.warning(node, "the questions list is empty; the device will not ask anything")
    return Questionnaire(tuple(questions), limits, path)


def _id_nodes(item: yaml.Node) -> list[yaml.ScalarNode]:
    """The id of a question and of its follow-up, read straight off the nodes, even if invalid."""
    out: list[yaml.ScalarNode] = []
    if not isinstance(item, yaml.MappingNode):
        return out
    for key, value in item.value:
        if isinstance(key, yaml.ScalarNode) and isinstance(value, yaml.ScalarNode) and key.value == "id" and value.value:
            out.append(value)
        elif isinstance(key, yaml.ScalarNode) and key.value == "follow_up":
            out.extend(_id_nodes(value)[:1])
    return out


def _int(doc: YamlDoc, node: yaml.Node, name: str, low: int, high: int) -> int | None:
    try:
        return fields.whole(node, low, high)
    except fields.Wrong as exc:
        doc.error(node, f"{name} must be a whole number from {low} to {high}, not {exc.got}")
        return None


def _read_limits(doc: YamlDoc, node: yaml.Node) -> Limits:
    f = doc.mapping(node, "limits")
    doc.unknown_keys(f, {"per_day", "quiet_hours", "expire_days", "snooze_minutes", "between_minutes"}, "limits")
    base = Limits()
    values: dict[str, Any] = {}
    for key, low, high in (("per_day", 1, 20), ("expire_days", 1, 60), ("snooze_minutes", 5, 1440), ("between_minutes", 0, 1440)):
        if key in f:
            got = _int(doc, f[key][1], f"limits.{key}", low, high)
            if got is not None:
                values[key] = got
    if "quiet_hours" in f:
        qnode = f["quiet_hours"][1]
        if _no_quiet_hours(qnode):
            values["quiet_hours"] = None
        else:
            parsed = _parse_span(qnode.value) if isinstance(qnode, yaml.ScalarNode) and qnode.tag == fields.STR else None
            if parsed is None:
                doc.error(qnode, f'limits.quiet_hours must be two times like "20:00-09:00", not {fields.show(qnode)}')
            else:
                values["quiet_hours"] = parsed
    return Limits(
        per_day=values.get("per_day", base.per_day),
        quiet_hours=values.get("quiet_hours", base.quiet_hours),
        expire_days=values.get("expire_days", base.expire_days),
        snooze_minutes=values.get("snooze_minutes", base.snooze_minutes),
        between_minutes=values.get("between_minutes", base.between_minutes),
    )


def _no_quiet_hours(node: yaml.Node) -> bool:
    """Left empty, "none" or false: the device may ask at any hour."""
    if fields.is_null(node):
        return True
    if isinstance(node, yaml.ScalarNode) and node.tag == fields.STR:
        return str(node.value).strip() in ("", "none")
    if isinstance(node, yaml.ScalarNode) and node.tag == fields.BOOL:
        try:
            return fields.flag(node) is False
        except fields.Wrong:
            return False
    return False


def _parse_span(raw: Any) -> tuple[int, int] | None:
    if not isinstance(raw, str) or raw.count("-") != 1:
        return None
    start, end = (part.strip() for part in raw.split("-"))
    a, b = _CLOCK.fullmatch(start), _CLOCK.fullmatch(end)
    if not a or not b:
        return None
    first = int(a.group(1)) * 60 + int(a.group(2))
    last = int(b.group(1)) * 60 + int(b.group(2))
    return None if first == last else (first, last)


_QUESTION_KEYS = {"id", "kind", "text", "options", "triggers", "follow_up"}


def _read_question(doc: YamlDoc, node: yaml.Node, *, top: bool) -> Question | None:
    where = "question" if top else "follow_up"
    f = doc.mapping(node, where)
    if not f:
        if not isinstance(node, yaml.MappingNode):
            return None
        doc.error(node, f"this {where} is empty; it needs id, kind and text")
        return None
    known = _QUESTION_KEYS if top else {"id", "kind", "text", "options", "when"}
    doc.unknown_keys(f, known, where)
    ok = True

    qid = ""
    if "id" not in f:
        doc.error(node, f"this {where} has no 'id' (a short name like how_did_it_go)")
        ok = False
    else:
        id_node = f["id"][1]
        raw = str(id_node.value) if isinstance(id_node, yaml.ScalarNode) and id_node.tag == fields.STR else None
        if raw is None or not _ID.fullmatch(raw):
            doc.error(
                id_node,
                f"{where} id {fields.show(id_node)} must be a short name of small letters, digits and _ (like how_did_it_go)",
            )
            ok = False
        else:
            qid = raw
    name = f"question '{qid}'" if qid else f"this {where}"

    kind = ""
    if "kind" not in f:
        doc.error(node, f"{name} has no 'kind'; use one of: {', '.join(KINDS)}")
        ok = False
    else:
        got = doc.read(f["kind"][1], lambda node: fields.choice(node, KINDS), f"{name}: kind")
        if got is MISSING:
            ok = False
        else:
            kind = got

    text = _read_text(doc, f["text"][1], f"{name}: text") if "text" in f else None
    if "text" not in f:
        doc.error(node, f"{name} has no 'text' (sv: and en:)")
    if text is None:
        ok = False

    options: tuple[Option, ...] = ()
    if kind == "choice":
        if "options" not in f:
            doc.error(node, f"{name} is a choice and needs 'options' (2 to {MAX_OPTIONS})")
            ok = False
        else:
            read = _read_options(doc, f["options"][1], name)
            ok = ok and read is not None
            options = read or ()
    elif "options" in f and kind:
        doc.error(f["options"][0], f"{name}: only a 'choice' question has options; a {kind} question has its own answers")
        ok = False
    elif kind == "smiley5":
        options = SMILEY_OPTIONS
    elif kind == "yes_no":
        options = YES_NO_OPTIONS

    triggers: tuple[Trigger, ...] = ()
    if top:
        if "triggers" not in f:
            doc.error(node, f"{name} has no 'triggers'; without one it is never asked")
            ok = False
        else:
            read_t = _read_triggers(doc, f["triggers"][1], name)
            ok = ok and read_t is not None
            triggers = read_t or ()

    follow_up: Question | None = None
    when: tuple[str, ...] = ()
    if top and "follow_up" in f:
        fnode = f["follow_up"][1]
        follow_up = _read_question(doc, fnode, top=False)
        ok = ok and follow_up is not None
        fmap = doc.mapping(fnode, "follow_up") if isinstance(fnode, yaml.MappingNode) else {}
        if kind == "free_text":
            doc.error(f["follow_up"][0], f"{name}: a free_text question cannot have a follow-up")
            ok = False
        elif "when" not in fmap:
            doc.error(fnode, f"{name}: the follow_up needs 'when:' (the answer that leads to it, like \"yes\")")
            ok = False
        elif kind:
            when_node = fmap["when"][1]
            items = when_node.value if isinstance(when_node, yaml.SequenceNode) else [when_node]
            allowed = {o.value for o in options}
            words = []
            for item in items:
                word = _answer_word(item)
                if word is None or word not in allowed:
                    doc.error(
                        when_node,
                        f"{name}: follow_up when {fields.show(item)} is not one of its answers ({', '.join(sorted(allowed))})",
                    )
                    ok = False
                else:
                    words.append(word)
            when = tuple(words)
    if top and text is not None and triggers:
        ok = _check_fields(doc, f["text"][1], name, text, triggers, follow_up) and ok
    line = node.start_mark.line + 1
    if not ok or text is None:
        return None
    return Question(qid, kind, text, options, triggers, follow_up, when, line)


_FIELD = re.compile(r"\{([^{}]*)\}")
#: The triggers that come from a card's use, so ``{card}`` has a card to name.
_CARD_TRIGGERS = ("after_uses", "after_session_minutes")


def _check_fields(
    doc: YamlDoc, node: yaml.Node, name: str, text: Text, triggers: tuple[Trigger, ...], follow_up: Question | None
) -> bool:
    """``{card}`` (the card's name) is the only field a question may fill in, and only in a
    question asked after a card's use (its follow-up too): a weekly question has no card."""
    texts = [text.sv, text.en] + ([follow_up.text.sv, follow_up.text.en] if follow_up is not None else [])
    fields_used = {field for t in texts for field in _FIELD.findall(t)}
    wrong = sorted(fields_used - {"card"})
    if wrong:
        doc.error(node, f"{name}: {{{wrong[0]}}} is not something a question can fill in; only {{card}} (the card's name) is")
        return False
    if "card" in fields_used and not all(t.kind in _CARD_TRIGGERS for t in triggers):
        doc.error(
            node,
            f"{name} names {{card}}, so every trigger must be a card's use (after_uses or after_session_minutes)",
        )
        return False
    return True


def _answer_word(node: yaml.Node) -> str | None:
    """An answer as the file names it; None for what cannot be one (a list, a group)."""
    # YAML 1.1 reads an unquoted yes/no as true/false; a pilot writer means the answer.
    if isinstance(node, yaml.ScalarNode) and node.tag == fields.BOOL:
        try:
            return "yes" if fields.flag(node) else "no"
        except fields.Wrong:
            return None
    try:
        return fields.text(node)
    except fields.Wrong:
        return None


def _read_text(doc: YamlDoc, node: yaml.Node, name: str) -> Text | None:
    if isinstance(node, yaml.ScalarNode):
        doc.error(node, f"{name} needs both languages on their own lines: 'sv: ...' and 'en: ...'")
        return None
    f = doc.mapping(node, name)
    doc.unknown_keys(f, {"sv", "en"}, name)
    out: dict[str, str] = {}
    for lang in ("sv", "en"):
        if lang not in f:
            doc.error(node, f"{name} has no '{lang}:' line; every question is written in Swedish and English")
            continue
        lang_node = f[lang][1]
        value = doc.read(lang_node, lambda node: fields.text(node, expected="words"), f"{name}.{lang}")
        if value is MISSING:
            continue
        if not value.strip():
            doc.error(lang_node, f"{name}.{lang} must be words, not {fields.show(lang_node)}")
            continue
        if len(value) > MAX_TEXT:
            doc.error(f[lang][1], f"{name}.{lang} is {len(value)} characters; at most {MAX_TEXT} fit on the screen in large type")
            continue
        out[lang] = value.strip()
    if len(out) != 2:
        return None
    return Text(out["sv"], out["en"])


def _read_options(doc: YamlDoc, node: yaml.Node, name: str) -> tuple[Option, ...] | None:
    if not isinstance(node, yaml.SequenceNode):
        doc.error(node, f"{name}: options must be a list, each starting with '- value: ...'")
        return None
    if not 2 <= len(node.value) <= MAX_OPTIONS:
        doc.error(node, f"{name} has {len(node.value)} options; a choice has 2 to {MAX_OPTIONS}, so each fits on the screen")
        return None
    out: list[Option] = []
    ok = True
    for item in node.value:
        f = doc.mapping(item, "option")
        doc.unknown_keys(f, {"value", "sv", "en"}, "option")
        value = _word(f["value"][1]) if "value" in f else None
        if value is None or not _ID.fullmatch(value):
            doc.error(item, f"{name}: each option needs 'value:', a short name of small letters, digits and _")
            ok = False
            continue
        labels = {}
        for lang in ("sv", "en"):
            if lang not in f:
                doc.error(item, f"{name}: option '{value}' needs a '{lang}:' label")
                ok = False
                continue
            text = doc.read(f[lang][1], fields.text, f"{name}: option '{value}' {lang}")
            if text is MISSING:
                ok = False
            elif not text.strip():
                doc.error(item, f"{name}: option '{value}' needs a '{lang}:' label")
                ok = False
            elif len(text) > 40:
                doc.error(f[lang][1], f"{name}: option label is {len(text)} characters; at most 40 fit on a button")
                ok = False
            else:
                labels[lang] = text.strip()
        if str(value) in {o.value for o in out}:
            doc.error(item, f"{name}: the option value '{value}' is used twice")
            ok = False
        if len(labels) == 2:
            out.append(Option(str(value), Text(labels["sv"], labels["en"])))
    return tuple(out) if ok else None


def _read_triggers(doc: YamlDoc, node: yaml.Node, name: str) -> tuple[Trigger, ...] | None:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        doc.error(
            node,
            f"{name}: triggers must be a list, each starting with '- after_uses: ...' (or days_after_first_use, after_session_minutes, weekday)",
        )
        return None
    out: list[Trigger] = []
    ok = True
    for item in node.value:
        t = _read_trigger(doc, item, name)
        if t is None:
            ok = False
        else:
            out.append(t)
    return tuple(out) if ok else None


def _read_trigger(doc: YamlDoc, node: yaml.Node, name: str) -> Trigger | None:
    f = doc.mapping(node, "trigger")
    if not isinstance(node, yaml.MappingNode):
        return None
    kinds = [k for k in f if k in _TRIGGER_KEYS]
    doc.unknown_keys(f, _TRIGGER_KEYS | {"action_type", "per_card"}, "trigger")
    if len(kinds) != 1:
        doc.error(
            node,
            f"{name}: each trigger has exactly one of after_uses, days_after_first_use, after_session_minutes, weekday"
            + (f" (this one has {', '.join(kinds)})" if kinds else ""),
        )
        return None
    kind = kinds[0]
    vnode = f[kind][1]
    action_type = None
    if "action_type" in f:
        if kind not in ("after_uses", "after_session_minutes"):
            doc.error(f["action_type"][0], f"{name}: action_type only goes with after_uses or after_session_minutes")
            return None
        action_type = doc.read(f["action_type"][1], lambda node: fields.choice(node, ACTION_TYPES), f"{name}: action_type")
        if action_type is MISSING:
            return None
    per_card = False
    if "per_card" in f:
        try:
            got = fields.flag(f["per_card"][1]) if kind == "after_uses" else None
        except fields.Wrong:
            got = None
        if got is None:
            doc.error(f["per_card"][1], f"{name}: per_card is true or false, and only goes with after_uses")
            return None
        per_card = got
        if per_card and action_type:
            doc.error(f["per_card"][0], f"{name}: use per_card or action_type, not both")
            return None
    if kind == "after_uses":
        items = vnode.value if isinstance(vnode, yaml.SequenceNode) else [vnode]
        try:
            uses = [fields.whole(item, 1, 10_000) for item in items]
        except fields.Wrong:
            uses = []
        if not uses:
            doc.error(
                vnode, f"{name}: after_uses must be a whole number from 1 (or a list like [1, 2, 3]), not {fields.show(vnode)}"
            )
            return None
        return Trigger(kind, uses=tuple(sorted(set(uses))), per_card=per_card, action_type=action_type)
    if kind == "days_after_first_use":
        try:
            days = fields.whole(vnode, 0, 3650)
        except fields.Wrong as exc:
            doc.error(vnode, f"{name}: days_after_first_use must be a whole number of days, not {exc.got}")
            return None
        return Trigger(kind, days=days)
    if kind == "after_session_minutes":
        try:
            minutes = fields.number(vnode, 0, 24 * 60, above_low=True)
        except fields.Wrong as exc:
            doc.error(vnode, f"{name}: after_session_minutes must be a number of minutes above 0, not {exc.got}")
            return None
        return Trigger(kind, minutes=minutes, action_type=action_type)
    word = _word(vnode)
    day = WEEKDAYS.get(word.strip().lower()) if word is not None else None
    if day is None:
        doc.error(vnode, f"{name}: weekday must be a day's name like friday (or fredag), not {fields.show(vnode)}")
        return None
    return Trigger(kind, weekday=day)


def _word(node: yaml.Node) -> str | None:
    """A scalar's text (a plain number as written), or None for anything else."""
    try:
        return fields.text(node) if isinstance(node, yaml.ScalarNode) and not fields.is_null(node) else None
    except fields.Wrong:
        return None
