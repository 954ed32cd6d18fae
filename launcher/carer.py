"""Programming a card on the tablet itself, without a computer: the pure part of carer mode.

A carer at the tablet has a card in one hand and no keyboard: so only the simplest actions
(photos from a folder, SVT1 live, Rapport, one web page), big buttons and at most one text field.
Everything a carer needs more (video calls, colours, pictures) is in ``klick carer`` on a
computer. The card is written through :mod:`cards.registry` (checked, atomic, old file kept as
``.bak``), so a save from the tablet can never leave a card file the launcher refuses; the
launcher's file watch picks the new card up, and :func:`program_card` returns the registry as
read back so the app can use it at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cards.colours import PALETTE
from cards.model import Card, PhotoAlbum, SvtPlay, Web
from launcher.actions import PICTURE_SUFFIXES

__all__ = [
    "CHOICES",
    "PICTURE_SUFFIXES",
    "ProgramError",
    "photo_root",
    "photo_folders",
    "web_address",
    "card_for",
    "program_card",
    "MAX_FOLDERS",
]

#: What a carer can choose on the tablet, in the order of the buttons.
CHOICES = ("photos", "svt1", "rapport", "web")
#: A distinct palette colour for each choice, so cards programmed here tell apart at a glance.
_COLOURS = {"photos": PALETTE["orange"], "svt1": PALETTE["blue"], "rapport": PALETTE["yellow"], "web": PALETTE["purple"]}
#: Folder buttons that fit on one screen at 16 mm each.
MAX_FOLDERS = 6


class ProgramError(Exception):
    """Why a card could not be programmed: ``reason`` is known, address, card_file or busy
    (another change to the card set took too long)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail


def photo_root(cfg: Any) -> Path:
    """Where a carer puts photo folders for the tablet (one folder per album)."""
    return Path(cfg.paths.home) / "photos"


def _has_pictures(folder: Path) -> bool:
    try:
        return any(p.suffix.lower() in PICTURE_SUFFIXES and p.is_file() for p in folder.iterdir())
    except OSError:
        return False


def photo_folders(root: Path, cards: Iterable[Card] = (), limit: int = MAX_FOLDERS) -> list[Path]:
    """Folders a new album card can show: those under ``root`` and those other album cards use.

    Only folders that hold pictures: an empty one would make a card that shows nothing.
    """
    found: list[Path] = []
    try:
        found += sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name.lower())
    except OSError:
        pass
    for card in cards:
        folder = getattr(card.action, "folder", None) if card.action is not None else None
        if folder is not None:
            found.append(Path(folder))
    seen: set[Path] = set()
    out: list[Path] = []
    for folder in found:
        key = folder.resolve()
        if key in seen or not _has_pictures(folder):
            continue
        seen.add(key)
        out.append(folder)
    return out[:limit]


def web_address(text: str) -> str | None:
    """The address a carer typed, made whole (``smhi.se`` → ``https://smhi.se``); None if it is
    not one. A tablet keyboard makes "https://" tedious, so it is added when missing."""
    text = (text or "").strip()
    if not text or any(ch.isspace() for ch in text):
        return None
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or "." not in host or host.startswith(".") or host.endswith("."):
        return None
    return text


def _web_label(url: str) -> str:
    host = urlsplit(url).hostname or url
    return host[4:] if host.startswith("www.") else host


def card_for(uid: str, choice: str, value: str | Path | None = None) -> Card:
    """The card a carer's choice makes. ``value`` is the folder (photos) or address (web).

    Raises :class:`ProgramError` ("address") for text that is not a web address.
    """
    colour = _COLOURS[choice]
    if choice == "photos":
        folder = Path(str(value))
        return Card(uid=uid, label=folder.name or "Foton", action=PhotoAlbum(folder=folder), colour=colour)
    if choice == "svt1":
        return Card(uid=uid, label="SVT1", action=SvtPlay(channel="svt1"), colour=colour)
    if choice == "rapport":
        return Card(uid=uid, label="Rapport", action=SvtPlay(program="/rapport"), colour=colour)
    if choice == "web":
        url = web_address(str(value or ""))
        if url is None:
            raise ProgramError("address", str(value or ""))
        return Card(uid=uid, label=_web_label(url), action=Web(url), colour=colour)
    raise ValueError(f"unknown choice {choice!r}")


#: How long a save waits for another change to the card set (a fleet push being unpacked).
CARD_SET_WAIT_S = 10.0


def program_card(path: Path, card: Card) -> Any:
    """Add ``card`` to the card file at ``path``; returns the registry as saved and read back.

    Never replaces a card: if the UID was set up meanwhile (on a computer), that card stays.
    Holds the card set's lock from reading to saving, as `klick cards add` and an unpack do: a
    card set pushed in between is never overwritten with the older cards. Slow (a lock, a
    parse, a save with its backup): never on the screen's thread.
    """
    from cards.registry import CardSetBusy, RegistryError, change_card_set

    def add(registry: Any) -> Any:
        if card.uid in registry:
            raise ProgramError("known", card.uid)
        return registry.with_card(card)

    try:
        return change_card_set(path, add, wait=CARD_SET_WAIT_S)
    except CardSetBusy as exc:
        raise ProgramError("busy", str(exc)) from None
    except RegistryError as exc:
        raise ProgramError("card_file", "; ".join(str(p) for p in exc.problems[:3])) from None
    except ProgramError:
        raise
    except Exception as exc:  # OSError (a full or read-only disk, the folder gone), or the validator on odd data
        raise ProgramError("card_file", f"{type(exc).__name__}: {exc}") from None
