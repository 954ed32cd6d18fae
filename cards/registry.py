"""The card registry: ``cards.yaml`` read, checked, looked up and saved.

Every problem is reported with its line, all at once, so a carer fixes the file in one go.
A registry with errors is never used: the launcher keeps what it last knew to be good.
Saving is atomic and keeps the previous file as ``cards.yaml.bak``.

File format::

    version: 1
    cards:
      - uid: "04A2B3C4D5E680"
        label: Anna
        colour: blue
        picture: pictures/anna.png
        action:
          type: video_call
          provider: jitsi
          server: https://meet.example.se
          room: familjen-andersson
          display_name: Mamma
        on_remove: close
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from cards.colours import ColourError, parse_colour
from cards.model import (
    ACTION_TYPES,
    PROVIDERS,
    SVT_CHANNELS,
    Action,
    Card,
    Command,
    PhotoAlbum,
    SvtPlay,
    VideoCall,
    Web,
)
from klick import fields
from klick.atomic import write_atomic
from klick.problems import FileProblems, Problem
from klick.uid import UidError, normalise_uid
from klick.yamlfile import MISSING, YamlDoc, line_of, parse_yaml_bytes, read_yaml

__all__ = [
    "Registry",
    "RegistryError",
    "load_registry",
    "check_registry",
    "save_registry",
    "registry_to_yaml",
    "parse_registry_text",
    "ALLOWED_URL_SCHEMES",
    "CardSetBusy",
    "card_set_lock",
    "card_file_lock",
    "change_card_set",
]

#: Only encrypted web pages; a card never opens file:, javascript: or plain http: addresses.
ALLOWED_URL_SCHEMES = ("https",)
MAX_LABEL = 40
_CARD_KEYS = frozenset({"uid", "label", "colour", "color", "picture", "action", "on_remove", "enabled", "role"})
_ACTION_FIELDS = {
    "video_call": {"provider", "server", "room", "display_name", "user", "name"},
    "svt_play": {"channel", "program"},
    "photo_album": {"folder", "url"},
    "web": {"url"},
    "command": {"argv"},
}
_ROOM = re.compile(r"[A-Za-z0-9._\-]{1,100}")
_PROGRAM = re.compile(r"/[a-z0-9\-/]{1,100}")


class RegistryError(FileProblems):
    """The card file cannot be used; ``problems`` holds every reason with its line."""


class CardSetBusy(Exception):
    """Another program is changing the card set in this folder right now."""


#: How long a change waits for another one to the same card set (a 100 MB bundle on a slow SD card).
LOCK_WAIT_S = 60.0


@contextmanager
def card_set_lock(folder: Path, wait: float = LOCK_WAIT_S) -> Iterator[None]:
    """One change at a time to the card set in ``folder`` (unpacking a bundle, `klick cards add`).

    Two unpacks at once each removed the other's new pictures as "no longer used", leaving a card
    file whose pictures were gone. The lock is flock(2) on the folder itself: nothing to leave
    behind, and the kernel lets go when a holder is killed. Raises :class:`CardSetBusy` after
    ``wait`` seconds.
    """
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise CardSetBusy(
                        f"Another program is changing the cards in {folder} right now (unpacking a bundle, perhaps); "
                        "try again when it is done."
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # lets go of the lock


@contextmanager
def card_file_lock(path: str | Path, wait: float = LOCK_WAIT_S) -> Iterator[None]:
    """:func:`card_set_lock` on the folder of the card file ``path`` (a link's target's folder)."""
    folder = real_path(Path(path)).parent
    folder.mkdir(parents=True, exist_ok=True)
    with card_set_lock(folder, wait):
        yield


def change_card_set(
    path: str | Path, change: Callable[[Registry], Registry], *, wait: float = LOCK_WAIT_S, missing_ok: bool = True
) -> Registry:
    """Read the card file, ``change`` it, save it: all three while no other program changes the set.

    A change made from a registry read earlier could write back pictures an unpack has pruned
    since, or undo another carer's card. Raises :class:`CardSetBusy`, :class:`RegistryError`, and
    whatever ``change`` raises (nothing is saved then). Returns the registry as saved.
    """
    with card_file_lock(path, wait):
        return save_registry(change(load_registry(path, missing_ok=missing_ok)), path)


@dataclass(frozen=True)
class Registry:
    """A checked card set. Lookup by UID is a dict access."""

    cards: tuple[Card, ...] = ()
    path: Path | None = None
    warnings: tuple[Problem, ...] = ()
    _by_uid: dict[str, Card] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_uid.clear()
        self._by_uid.update((card.uid, card) for card in self.cards)

    def get(self, uid: str | bytes) -> Card | None:
        """The card with this UID in any spelling, or None (also for text that is not a UID)."""
        try:
            return self._by_uid.get(normalise_uid(uid))
        except UidError:
            return None

    def __contains__(self, uid: object) -> bool:
        return isinstance(uid, (str, bytes)) and self.get(uid) is not None

    def __len__(self) -> int:
        return len(self.cards)

    def with_card(self, card: Card, *, replace_existing: bool = False) -> Registry:
        """A new registry with ``card`` added (or put in place of the card with its UID)."""
        if card.uid in self._by_uid and not replace_existing:
            raise KeyError(card.uid)
        cards = [card if c.uid == card.uid else c for c in self.cards]
        if card.uid not in self._by_uid:
            cards.append(card)
        return Registry(tuple(cards), self.path, self.warnings)

    def without(self, uid: str) -> Registry:
        key = normalise_uid(uid)
        if key not in self._by_uid:
            raise KeyError(key)
        return Registry(tuple(c for c in self.cards if c.uid != key), self.path, self.warnings)


# --- reading ------------------------------------------------------------------------------------


def load_registry(path: str | Path, *, missing_ok: bool = False) -> Registry:
    """Read and check a card file; raise :class:`RegistryError` listing every error.

    With ``missing_ok`` a file that does not exist yet is an empty registry (a new device).
    """
    p = Path(path)
    if missing_ok and not p.exists():
        return Registry((), p)
    registry, problems = check_registry(p)
    if registry is None:
        raise RegistryError(problems)
    return registry


def check_registry(path: str | Path, display: str | None = None) -> tuple[Registry | None, list[Problem]]:
    """Every problem in a card file; the registry too when there are only warnings."""
    p = Path(path)
    doc = read_yaml(p, what="card file", display=display or str(path))
    return _from_doc(doc, real_path(p).parent, p)


def parse_registry_text(text: str, base: Path, name: str = "cards.yaml") -> tuple[Registry | None, list[Problem]]:
    """Check card-file text that is not (yet) on disk, e.g. before a save or from a bundle."""
    doc = parse_yaml_bytes(text.encode("utf-8"), YamlDoc(name, None), "card file")
    return _from_doc(doc, base, None)


def _from_doc(doc: YamlDoc, base: Path, path: Path | None) -> tuple[Registry | None, list[Problem]]:
    cards: list[Card] = []
    if doc.ok:
        cards = _read_cards(doc, base)
    problems = doc.sorted_problems()
    if not doc.ok:
        return None, problems
    registry = Registry(tuple(cards), path, tuple(p for p in problems if p.severity == "warning"))
    return registry, problems


def _read_cards(doc: YamlDoc, base: Path) -> list[Card]:
    if doc.root is None:
        return []
    top = doc.mapping(doc.root, "")
    if not top and not doc.ok:
        return []
    doc.unknown_keys(top, {"version", "cards"}, "")
    if "version" in top:
        node = top["version"][1]
        if not (isinstance(node, yaml.ScalarNode) and node.tag == fields.INT and doc.value(node) == 1):
            doc.error(
                node,
                f"version {node.value if isinstance(node, yaml.ScalarNode) else fields.show(node)} is not one this Klick knows (it reads version 1); update Klick",
            )
    if "cards" not in top:
        if isinstance(doc.root, yaml.MappingNode):
            doc.error(doc.root, "the card file has no 'cards:' list")
        return []
    seq = top["cards"][1]
    if fields.is_null(seq):
        return []
    if not isinstance(seq, yaml.SequenceNode):
        doc.error(seq, "'cards:' must be a list, each card starting with '- uid:'")
        return []
    cards: list[Card] = []
    first_seen: dict[str, tuple[int | None, str]] = {}
    for item in seq.value:
        card = _read_card(doc, item, base)
        if card is None:
            continue
        if card.uid in first_seen:
            line, spelled = first_seen[card.uid]
            doc.error(
                card.line,
                f"card {card.uid} is already set up on line {line} (written there as "
                f'"{spelled}"); one card can do only one thing — remove one of them',
            )
            continue
        first_seen[card.uid] = (card.line, _raw_uid(item))
        cards.append(card)
    return cards


def _raw_uid(item: yaml.Node) -> str:
    for key, value in item.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "uid" and isinstance(value, yaml.ScalarNode):
            return str(value.value)
    return ""


def _errors(doc: YamlDoc) -> int:
    return doc.errors


def _read_card(doc: YamlDoc, node: yaml.Node, base: Path) -> Card | None:
    if not isinstance(node, yaml.MappingNode):
        doc.error(node, "each card must be a group of settings starting with '- uid:'")
        return None
    errors_before = _errors(doc)
    f = doc.mapping(node, "card")
    doc.unknown_keys(f, _CARD_KEYS, "card")
    line = line_of(node)
    lines: dict[str, int] = {}

    uid = ""
    if "uid" not in f:
        doc.error(node, "this card has no uid (the card's ID, as `klick watch` shows it)")
    else:
        uid_node = f["uid"][1]
        if not isinstance(uid_node, yaml.ScalarNode) or fields.is_null(uid_node):
            doc.error(uid_node, 'uid must be the card\'s ID, such as "04A2B3C4"')
        else:
            try:
                # The raw scalar text: YAML must never turn 0012345678 into the number 12345678.
                uid = normalise_uid(str(uid_node.value))
            except UidError as exc:
                doc.error(uid_node, f"uid: {exc}")

    label = _text_field(doc, f, "label", required=True, where="card", at=node)
    if label and len(label) > MAX_LABEL:
        doc.error(f["label"][1], f"label is {len(label)} letters long; keep it to {MAX_LABEL} so it fits on the card")
    elif label and not fields.visible(label):
        doc.error(f["label"][1], "label holds only invisible characters; write a word the resident can read")

    colour = "#1F4E9C"
    colour_key = "colour" if "colour" in f else "color" if "color" in f else None
    if colour_key:
        colour = _colour_field(doc, f[colour_key][1]) or colour

    picture = None
    if "picture" in f:
        text = _text_field(doc, f, "picture", where="card")
        if text:
            picture = _resolve(base, text)
            _picture_warnings(doc, f["picture"][1], base, text, picture)

    on_remove = _choice_field(doc, f, "on_remove", ("close", "keep"), "close")
    role = _choice_field(doc, f, "role", ("resident", "carer"), "resident")
    enabled = True
    if "enabled" in f:
        value = doc.read(f["enabled"][1], fields.flag, "enabled")
        if value is not MISSING:
            enabled = value

    action = None
    if "action" in f:
        action = _read_action(doc, f["action"][1], base, lines)
    elif role != "carer":
        doc.error(node, "this card has no action: say what it should do (video_call, svt_play, photo_album, web or command)")

    if _errors(doc) > errors_before:
        return None
    return Card(
        uid=uid,
        label=label,
        action=action,
        colour=colour,
        picture=picture,
        on_remove=on_remove,
        enabled=enabled,
        role=role,
        line=line,
        lines=lines,
    )


def _colour_field(doc: YamlDoc, node: yaml.Node) -> str | None:
    if isinstance(node, yaml.ScalarNode) and node.tag == fields.STR:
        try:
            return parse_colour(str(node.value))
        except ColourError as exc:
            doc.error(node, f"colour {exc}")
            return None
    hint = "; put it in quotes, for a '#' without quotes starts a comment" if fields.is_null(node) else ""
    doc.error(node, f'colour must be a colour such as "#1F4E9C" or a name such as blue, not {fields.show(node)}{hint}')
    return None


def _picture_warnings(doc: YamlDoc, node: yaml.Node, base: Path, text: str, picture: Path) -> None:
    """A picture that is missing, a link, or outside the card file's folder: the card still works,
    but a copy or a bundle of the folder will not carry it, and a link can point anywhere."""
    if not _is(picture, "file"):
        doc.warning(node, f"the picture {text} does not exist; the card shows its colour and label only")
        return
    given = Path(os.path.expanduser(text))
    given = given if given.is_absolute() else base / given
    if _is(given, "link"):
        doc.warning(node, f"the picture {text} is a link to another file; put the picture itself beside the card file")
        return
    try:
        real_path(picture).relative_to(real_path(base))
    except ValueError:
        doc.warning(
            node,
            f"the picture {text} is outside the card file's folder; keep pictures beside the card file, "
            "where a copy of the folder takes them along",
        )


def _read_action(doc: YamlDoc, node: yaml.Node, base: Path, lines: dict[str, int]) -> Action | None:
    f = doc.mapping(node, "action")
    if not isinstance(node, yaml.MappingNode):
        return None
    lines["action"] = line_of(node) or 0
    if "type" not in f:
        doc.error(node, f"action has no type; use one of: {', '.join(ACTION_TYPES)}")
        return None
    type_node = f["type"][1]
    kind = str(type_node.value) if isinstance(type_node, yaml.ScalarNode) and type_node.tag == fields.STR else ""
    if kind not in ACTION_TYPES:
        shown = f'"{kind}"' if kind else fields.show(type_node)
        doc.error(type_node, f"{shown} is not an action Klick knows; use one of: {', '.join(ACTION_TYPES)}")
        return None
    fields_ = dict(f)
    del fields_["type"]
    doc.unknown_keys(fields_, _ACTION_FIELDS[kind], f"action ({kind})")
    where = f"action ({kind})"
    for key, (_, value_node) in fields_.items():
        lines[f"action.{key}"] = line_of(value_node) or 0

    if kind == "video_call":
        provider = _choice_field(doc, f, "provider", PROVIDERS, None, where, at=node)
        if provider is None:
            return None
        if provider == "jitsi":
            server = _url_field(doc, f, "server", where, required=True, at=node)
            room = _text_field(doc, f, "room", required=True, where=where, at=node)
            if room and not _ROOM.fullmatch(room):
                doc.error(f["room"][1], "room may hold only letters a-z, digits, '.', '_' and '-' (no spaces or å, ä, ö)")
            name = _text_field(doc, f, "display_name", where=where)
            return VideoCall(provider, server=server, room=room, display_name=name)
        if provider == "teams":
            return VideoCall(provider, user=_text_field(doc, f, "user", required=True, where=where, at=node))
        return VideoCall(provider, name=_text_field(doc, f, "name", required=True, where=where, at=node))

    if kind == "svt_play":
        before = _errors(doc)
        channel = _text_field(doc, f, "channel", where=where)
        program = _text_field(doc, f, "program", where=where)
        if _errors(doc) > before:
            pass  # already said at the field itself
        elif bool(channel) == bool(program):
            doc.error(node, "svt_play needs either a channel (such as svt1) or a program (such as /rapport), not both")
        elif channel and channel not in SVT_CHANNELS:
            doc.error(f["channel"][1], f'channel must be one of {", ".join(SVT_CHANNELS)}, not "{channel}"')
        elif program and not _PROGRAM.fullmatch(program):
            doc.error(f["program"][1], "program must be the part of the SVT Play address after svtplay.se, such as /rapport")
        return SvtPlay(channel=channel, program=program)

    if kind == "photo_album":
        before = _errors(doc)
        folder_text = _text_field(doc, f, "folder", where=where)
        url = _url_field(doc, f, "url", where) if "url" in f else ""
        if _errors(doc) > before:
            return None
        if not folder_text and not url:
            doc.error(node, "photo_album needs a folder with the photos (or a url as a fallback)")
            return None
        folder = _resolve(base, folder_text) if folder_text else None
        if folder is not None and not _is(folder, "dir"):
            doc.warning(f["folder"][1], f"the photo folder {folder_text} does not exist yet")
        return PhotoAlbum(folder=folder, url=url)

    if kind == "web":
        return Web(_url_field(doc, f, "url", where, required=True, at=node))

    # command: an argv list, never a shell string.
    if "argv" not in f:
        doc.error(node, "command needs argv: the program and its arguments as a list")
        return None
    argv_node = f["argv"][1]
    try:
        argv = fields.words(argv_node)
    except fields.Wrong as exc:
        if exc.kind == "string":
            doc.error(
                argv_node,
                "argv must be a list (one word per line starting with '- '), not one string: "
                "Klick never runs commands through a shell",
            )
        elif exc.kind == "hidden":
            doc.error(exc.at or argv_node, f"argv {exc}")
        else:
            doc.error(exc.at or argv_node, "argv must be a list of words, the first one the program")
        return None
    return Command(argv)


def _text_field(
    doc: YamlDoc, f: dict, key: str, *, required: bool = False, where: str = "card", at: yaml.Node | None = None
) -> str:
    """A text field of ``f`` (stripped); "" when missing. ``at``: the group it belongs in, whose
    line a missing required field is reported on when the group is empty."""
    if key not in f:
        if required:
            first_node = next(iter(f.values()))[0] if f else at
            doc.error(first_node, f"{where} needs a {key}")
        return ""
    node = f[key][1]
    value = doc.read(node, fields.text, key)
    if value is MISSING:
        return ""
    value = value.strip()
    if not value and required:
        doc.error(node, f"{key} must not be empty")
    return value


def _choice_field(
    doc: YamlDoc, f: dict, key: str, options: Iterable[str], default: Any, where: str = "card", at: yaml.Node | None = None
) -> Any:
    options = tuple(options)
    if key not in f:
        if default is None:
            doc.error(next(iter(f.values()))[0] if f else at, f"{where} needs {key}: one of {', '.join(options)}")
        return default
    value = doc.read(f[key][1], lambda node: fields.choice(node, options), key)
    return default if value is MISSING else value


def _url_field(doc: YamlDoc, f: dict, key: str, where: str, required: bool = False, at: yaml.Node | None = None) -> str:
    text = _text_field(doc, f, key, required=required, where=where, at=at)
    if not text:
        return ""
    wrong = fields.web_address(text, ALLOWED_URL_SCHEMES)
    if wrong:
        doc.error(f[key][1], f"{key} {wrong}")
        return ""
    return text


def _resolve(base: Path, text: str) -> Path:
    p = Path(os.path.expanduser(text))
    return p if p.is_absolute() else real_path(base / p)


def real_path(path: Path) -> Path:
    """``path`` with its links followed; as written (made absolute) when that fails, as it does
    for a loop of links or a name longer than the disk allows: a card file may name anything."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


def _is(path: Path, kind: str) -> bool:
    """Whether ``path`` is a file, a folder or a link; False, not an exception, for a path the
    disk cannot even look up (too long, a loop, no permission)."""
    try:
        if kind == "link":
            return path.is_symlink()
        return path.is_dir() if kind == "dir" else path.is_file()
    except (OSError, RuntimeError):
        return False


# --- writing ------------------------------------------------------------------------------------


class _Quoted(str):
    """A UID is always written in quotes, so no YAML reader anywhere can take it for a number."""


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]  # libyaml's emitter when there
    pass


# str(text): libyaml's emitter takes only an exact str, not a subclass.
_Dumper.add_representer(_Quoted, lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", str(text), style='"'))


def registry_to_yaml(registry: Registry, base: Path) -> str:
    """The card file text for ``registry``; paths are written relative to ``base`` when inside it."""
    cards = [_card_to_dict(card, base) for card in registry.cards]
    body = yaml.dump(
        {"version": 1, "cards": cards}, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100
    )
    header = (
        "# Klick card set. Written by the carer tool; `klick cards check` checks it.\n"
        "# Each card: uid, label, colour, picture, action, on_remove (close|keep).\n"
    )
    return header + body


def _card_to_dict(card: Card, base: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"uid": _Quoted(card.uid), "label": card.label, "colour": card.colour}
    if card.picture is not None:
        out["picture"] = _relative(card.picture, base)
    if card.action is not None:
        out["action"] = _action_to_dict(card.action, base)
    if card.on_remove != "close":
        out["on_remove"] = card.on_remove
    if not card.enabled:
        out["enabled"] = False
    if card.role != "resident":
        out["role"] = card.role
    return out


def _action_to_dict(action: Action, base: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"type": action.type}
    if isinstance(action, Command):
        out["argv"] = list(action.argv)
    elif isinstance(action, PhotoAlbum):
        if action.folder is not None:
            out["folder"] = _relative(action.folder, base)
        if action.url:
            out["url"] = action.url
    else:
        for key, value in action.__dict__.items():
            if value:
                out[key] = value
    return out


def _relative(path: Path, base: Path) -> str:
    try:
        return str(real_path(Path(path)).relative_to(real_path(base)))
    except ValueError:
        return str(path)


def save_registry(registry: Registry, path: str | Path | None = None) -> Registry:
    """Write atomically, keeping the old file as ``.bak``; returns the registry as read back.

    The text is checked before it replaces anything, so a save can never leave a card file the
    launcher refuses.
    """
    given = path or registry.path
    if given is None:
        raise ValueError("save_registry needs a path: the registry was not read from a file")
    target = Path(given)
    base = real_path(target).parent
    text = registry_to_yaml(registry, base)
    checked, problems = parse_registry_text(text, base, target.name)
    if checked is None:
        raise RegistryError(problems)
    write_atomic(target, text, backup=True)
    return replace(checked, path=target)
