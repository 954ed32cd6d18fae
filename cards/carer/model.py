"""The card editor without a screen: the form a carer fills in, and what is wrong with it, per field.

A form is checked by writing the card file it would make and reading that back with the very
code ``klick cards check`` uses (:func:`cards.registry.parse_registry_text`), so the editor can
never accept a card the launcher would refuse, nor refuse one it would take. Each problem comes
back with a line; the line is mapped to the form field whose value sits on it, so the message
can stand next to that field. No Kivy here: hypothesis drives this module directly.
"""

from __future__ import annotations

import re
import shlex
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from dataclasses import fields as dc_fields
from pathlib import Path
from typing import Any

import yaml

from cards.carer.words import problem_words, words
from cards.colours import PALETTE
from cards.describe import describe_action
from cards.model import Card, Command, PhotoAlbum, SvtPlay, VideoCall, Web
from cards.policy import policy_problems
from cards.registry import Registry, parse_registry_text, real_path, registry_to_yaml

__all__ = [
    "KINDS",
    "KIND_TYPES",
    "SWATCHES",
    "CHANNELS",
    "PROVIDER_CHOICES",
    "provider_choices",
    "with_https",
    "CardForm",
    "Checked",
    "Face",
    "new_form",
    "form_from_card",
    "visible_fields",
    "form_to_dict",
    "check_form",
    "face_of",
]

#: What the carer picks, in the order the screen offers it, and the action each one makes.
KINDS = ("call", "svt", "photos", "web", "command")
KIND_TYPES = {"call": "video_call", "svt": "svt_play", "photos": "photo_album", "web": "web", "command": "command"}
_TYPE_KINDS = {v: k for k, v in KIND_TYPES.items()}
#: The colour swatches: the palette minus white (a white card vanishes on a white table).
SWATCHES = tuple(name for name in PALETTE if name != "white")
CHANNELS = ("svt1", "svt2", "svtbarn", "kunskapskanalen", "svt24")
PROVIDER_CHOICES = ("jitsi", "teams", "skype")
#: Skype closed in 2025: a new card is never offered it; a card that has it keeps it, shown as closed.
_RETIRED_PROVIDERS = ("skype",)
#: A web address typed without its start: a host name with a dot, perhaps a port and a path.
_BARE_ADDRESS = re.compile(r"(?:[\w-]+\.)+[^\W\d_]{2,}(?::\d{1,5})?(?:[/?#]\S*)?")
#: Where a problem about a whole action (not one of its keys) is shown.
_KIND_MAIN_FIELD = {"call": "provider", "svt": "channel", "photos": "folder", "web": "url", "command": "argv"}
#: Card-file key → form field, inside ``action:``; photo albums have a url of their own.
_ACTION_KEY_FIELD = {
    "provider": "provider",
    "server": "server",
    "room": "room",
    "display_name": "display_name",
    "user": "user",
    "name": "skype_name",
    "channel": "channel",
    "program": "program",
    "folder": "folder",
    "url": "url",
    "argv": "argv",
}


@dataclass(frozen=True)
class CardForm:
    """What the carer has typed and chosen so far; every value is text, as the fields hold it."""

    uid: str
    kind: str | None = None
    label: str = ""
    colour: str = PALETTE["blue"]
    picture: str = ""
    provider: str = "jitsi"
    server: str = ""
    room: str = ""
    display_name: str = ""
    user: str = ""
    skype_name: str = ""
    channel: str = ""
    program: str = ""
    folder: str = ""
    album_url: str = ""
    url: str = ""
    argv: str = ""
    #: Kept from the card being edited; the editor does not offer them but must not lose them.
    on_remove: str = "close"
    enabled: bool = True
    role: str = "resident"
    is_new: bool = True

    def set(self, name: str, value: Any) -> CardForm:
        if name not in _FIELD_NAMES:
            raise KeyError(name)
        return replace(self, **{name: value})


_FIELD_NAMES = {f.name for f in dc_fields(CardForm)}


@dataclass(frozen=True)
class Checked:
    """The outcome of checking a form: the card (when it may be saved) and messages per field.

    Field ``"uid"`` holds problems about the card as a whole; ``"kind"`` a missing choice.
    """

    card: Card | None
    errors: dict[str, list[str]] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)
    text: str = ""

    @property
    def ok(self) -> bool:
        return self.card is not None and not self.errors


@dataclass(frozen=True)
class Face:
    """What a card face shows: the live preview and the list draw the same thing."""

    label: str
    colour: str
    picture: Path | None
    words: str


def new_form(uid: str) -> CardForm:
    return CardForm(uid=uid)


def form_from_card(card: Card, base: Path) -> CardForm:
    """The form that edits ``card``; paths are shown relative to the card file when inside it."""
    form = CardForm(
        uid=card.uid,
        label=card.label,
        colour=card.colour,
        picture=_show_path(card.picture, base),
        on_remove=card.on_remove,
        enabled=card.enabled,
        role=card.role,
        is_new=False,
    )
    action = card.action
    if action is None:
        return form
    form = replace(form, kind=_TYPE_KINDS[action.type])
    if isinstance(action, VideoCall):
        return replace(
            form,
            provider=action.provider,
            server=action.server,
            room=action.room,
            display_name=action.display_name,
            user=action.user,
            skype_name=action.name,
        )
    if isinstance(action, SvtPlay):
        return replace(form, channel=action.channel, program=action.program)
    if isinstance(action, PhotoAlbum):
        return replace(form, folder=_show_path(action.folder, base), album_url=action.url)
    if isinstance(action, Web):
        return replace(form, url=action.url)
    if isinstance(action, Command):
        return replace(form, argv=shlex.join(action.argv))
    return form


def _show_path(path: Path | None, base: Path) -> str:
    if path is None:
        return ""
    try:
        return str(real_path(Path(path)).relative_to(real_path(base)))
    except ValueError:
        return str(path)


def provider_choices(form: CardForm) -> tuple[str, ...]:
    """The call services to offer: never a closed one, unless this card already has it."""
    return tuple(p for p in PROVIDER_CHOICES if p not in _RETIRED_PROVIDERS or p == form.provider)


def with_https(text: str) -> str:
    """``sverigesradio.se`` becomes ``https://sverigesradio.se``: carers rarely type the start.

    Only a bare host name (with a dot) is completed; anything else (``http://…``, words with
    spaces) is left for the check to explain.
    """
    stripped = text.strip()
    return "https://" + stripped if _BARE_ADDRESS.fullmatch(stripped) else text


def visible_fields(form: CardForm) -> tuple[str, ...]:
    """The action fields the screen shows for this form, in order; nothing the choice does not need."""
    if form.kind == "call":
        return {
            "jitsi": ("provider", "server", "room", "display_name"),
            "teams": ("provider", "user"),
            "skype": ("provider", "skype_name"),
        }.get(form.provider, ("provider",))
    return {"svt": ("channel", "program"), "photos": ("folder", "album_url"), "web": ("url",), "command": ("argv",)}.get(
        form.kind or "", ()
    )


def form_to_dict(form: CardForm) -> tuple[dict[str, Any], dict[str, str]]:
    """The card as the file would hold it, and problems found before the file check (per field).

    Every field the choice needs is written, even when empty, so "must not be empty" lands on
    that field's own line rather than on the card as a whole.
    """
    early: dict[str, str] = {}
    out: dict[str, Any] = {"uid": form.uid, "label": form.label, "colour": form.colour}
    if form.picture.strip():
        out["picture"] = form.picture.strip()
    if form.kind is not None:
        action: dict[str, Any] = {"type": KIND_TYPES[form.kind]}
        if form.kind == "call":
            action["provider"] = form.provider
            for name in visible_fields(form)[1:]:
                value = getattr(form, name)
                action["name" if name == "skype_name" else name] = with_https(value) if name == "server" else value
        elif form.kind == "svt":
            for name in ("channel", "program"):
                if getattr(form, name).strip():
                    action[name] = getattr(form, name)
        elif form.kind == "photos":
            action["folder"] = form.folder
            if form.album_url.strip():
                action["url"] = with_https(form.album_url)
        elif form.kind == "web":
            action["url"] = with_https(form.url)
        elif form.kind == "command":
            try:
                action["argv"] = shlex.split(form.argv)
            except ValueError:
                early["argv"] = "quote_unpaired"
                action["argv"] = [form.argv]
        out["action"] = action
    if form.on_remove != "close":
        out["on_remove"] = form.on_remove
    if not form.enabled:
        out["enabled"] = False
    if form.role != "resident":
        out["role"] = form.role
    return out, early


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]  # libyaml's emitter when there
    """Every text in quotes, so a UID like 0012345678 or a label like "yes" stays text."""


_Dumper.add_representer(str, lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s, style='"'))


def card_file_text(form: CardForm, registry: Registry, base: Path, whole_file: bool = True) -> tuple[str, int]:
    """The whole card file with this form's card last (in place of its old self); and its first line.

    The other cards are written exactly as a save would write them, so a clash with one of them
    (the same UID) is found as the file check would find it. Without ``whole_file`` only this
    card is written: every check but the clash, fast enough to run on each keystroke.
    """
    card_dict, _ = form_to_dict(form)
    # A new card is added beside every card there is (so a UID already in use is refused, as in
    # the file); an edited card takes its own old place.
    if not whole_file:
        head = _head_text(_NO_CARDS, base, None)
    else:
        head = _head_text(registry, base, None if form.is_new else form.uid)
    chunk = yaml.dump([card_dict], Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=10_000)
    return head + chunk, head.count("\n") + 1


_NO_CARDS = Registry(())
#: The last head written: (the registry, the folder, the UID left out, the text). A carer checks
#: the same card set again and again while typing and saving; writing its other cards anew each
#: time would be most of the check. The registry is frozen, so its text cannot go stale.
_last_head: tuple[weakref.ref[Registry], Path, str | None, str] | None = None


def _head_text(registry: Registry, base: Path, without: str | None) -> str:
    """The card file text of ``registry`` without the card ``without``, open for one more card."""
    global _last_head
    last = _last_head
    if last is not None and last[0]() is registry and last[1] == base and last[2] == without:
        return last[3]
    others = registry if without is None else Registry(tuple(c for c in registry.cards if c.uid != without))
    head = registry_to_yaml(others, base)
    if head.rstrip().endswith("cards: []"):
        head = head.rstrip()[: -len("[]")].rstrip() + "\n"
    _last_head = (weakref.ref(registry), base, without, head)
    return head


def check_form(
    form: CardForm,
    registry: Registry,
    base: Path,
    locale: str = "sv",
    *,
    whole_file: bool = True,
    allowed_servers: Iterable[str] | None = None,
) -> Checked:
    """Check the form exactly as ``klick cards check`` would check the file it makes.

    ``whole_file=False`` checks the card alone (not whether its UID is taken): for live feedback
    while typing; a save always checks the whole file. With ``allowed_servers`` (the settings'
    ``calls.allowed_servers``) a call to any other server is refused at the server field, by the
    same rule a bundle is unpacked by (:func:`cards.policy.policy_problems`); command cards stay
    the carer's choice.
    """
    errors: dict[str, list[str]] = {}
    warnings: dict[str, list[str]] = {}
    if form.kind is None and form.role != "carer":
        errors["kind"] = [words("choose_kind_first", locale)]
    _, early = form_to_dict(form)
    for name, key in early.items():
        errors.setdefault(name, []).append(words(key, locale))
    text, first = card_file_text(form, registry, base, whole_file)
    checked, problems = parse_registry_text(text, base, "cards.yaml")
    if checked is not None and allowed_servers is not None:
        mine = checked.get(form.uid)
        problems = [*problems, *policy_problems([mine] if mine else [], allowed_servers, True, file="cards.yaml")]
    lines = _line_fields("\n".join(text.split("\n")[first - 1 :]), first, form)
    for problem in problems:
        if problem.line is None or problem.line < first:
            if problem.severity == "error":
                errors.setdefault("uid", []).append(problem_words(problem.message, locale))
            continue
        name = lines.get(problem.line, "uid")
        if name == "kind" and "kind" in errors:
            continue  # "this card has no action": already said, in the carer's words
        target = errors if problem.severity == "error" else warnings
        message = problem_words(problem.message, locale)
        if message not in target.get(name, []):
            target.setdefault(name, []).append(message)
    card = None
    if checked is not None and not errors:
        card = checked.get(form.uid)
    return Checked(card, errors, warnings, text)


def _line_fields(chunk: str, first: int, form: CardForm) -> dict[int, str]:
    """Line number (1-based) → the form field whose value is written on it, for the last card.

    ``chunk`` is the card's own lines (a one-item list, as :func:`card_file_text` writes it),
    which start on line ``first`` of the file; only they are read again, not the whole file.
    """
    root = yaml.compose(chunk, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    out: dict[int, str] = {}
    if not isinstance(root, yaml.SequenceNode) or not root.value:
        return out
    card = root.value[-1]
    offset = first  # the chunk's line 0 is the file's line ``first``

    def mark(key: yaml.Node, value: yaml.Node, name: str) -> None:
        last = value.end_mark.line if value.end_mark.column > 0 else value.end_mark.line - 1
        for line in range(key.start_mark.line, max(last, key.start_mark.line) + 1):
            out[line + offset] = name

    for key, value in card.value:
        if key.value == "action":
            main = _KIND_MAIN_FIELD.get(form.kind or "", "kind")
            for akey, avalue in value.value:
                if akey.value == "type":
                    mark(akey, avalue, main)
                    continue
                name = _ACTION_KEY_FIELD.get(akey.value, main)
                if name == "url" and form.kind == "photos":
                    name = "album_url"
                mark(akey, avalue, name)
            out[value.start_mark.line + offset] = main
        else:
            mark(key, value, {"colour": "colour", "label": "label", "picture": "picture"}.get(key.value, "uid"))
    # The card's first line: problems about the card as a whole, which without a choice of
    # what it does can only be that it does nothing yet.
    out[card.start_mark.line + offset] = "kind" if form.kind is None and form.role != "carer" else "uid"
    return out


def face_of(form: CardForm, base: Path, locale: str = "sv") -> Face:
    """The card face for the live preview, drawn from what is typed even before it is valid."""
    picture = None
    if form.picture.strip():
        p = Path(form.picture.strip()).expanduser()
        p = p if p.is_absolute() else base / p
        try:
            picture = p if p.is_file() else None
        except OSError:  # typed text the disk cannot look up (far too long): no picture yet
            picture = None
    return Face(form.label.strip(), form.colour, picture, _words_for(form, locale))


def _words_for(form: CardForm, locale: str) -> str:
    if form.role == "carer":
        return "Öppnar kontaktpersonens läge" if locale == "sv" else "Opens carer mode"
    label = form.label.strip()
    if form.kind == "call":
        action: Any = VideoCall(
            form.provider,
            server=form.server,
            room=form.room,
            display_name=form.display_name,
            user=form.user,
            name=form.skype_name,
        )
        if not (label or form.display_name or form.user or form.skype_name):
            return "Ringer någon med videosamtal" if locale == "sv" else "Video call to someone"
    elif form.kind == "svt":
        if not (form.channel or form.program.strip("/ ")):
            return "Visar SVT Play" if locale == "sv" else "Shows SVT Play"
        action = SvtPlay(channel=form.channel, program=form.program if not form.channel else "")
    elif form.kind == "photos":
        action = PhotoAlbum()
    elif form.kind == "web":
        action = Web(form.url.strip() or "…")
    elif form.kind == "command":
        try:
            argv = shlex.split(form.argv)
        except ValueError:
            argv = [form.argv]
        action = Command(tuple(argv) or ("…",))
    else:
        return ""
    return describe_action(action, label, locale)
