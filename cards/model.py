"""What a card is and what it can do, as typed, frozen records.

The registry file is the carer's; these records are what the rest of Klick sees after the file
has been checked, so nothing downstream has to wonder whether a field is there or of the right
type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

__all__ = [
    "VideoCall",
    "SvtPlay",
    "PhotoAlbum",
    "Web",
    "Command",
    "Action",
    "Card",
    "ACTION_TYPES",
    "PROVIDERS",
    "SVT_CHANNELS",
]

PROVIDERS = ("jitsi", "teams", "skype")
SVT_CHANNELS = ("svt1", "svt2", "svtbarn", "kunskapskanalen", "svt24")


@dataclass(frozen=True)
class VideoCall:
    type: ClassVar[str] = "video_call"
    provider: str
    server: str = ""
    room: str = ""
    display_name: str = ""
    user: str = ""
    name: str = ""


@dataclass(frozen=True)
class SvtPlay:
    type: ClassVar[str] = "svt_play"
    channel: str = ""
    program: str = ""


@dataclass(frozen=True)
class PhotoAlbum:
    type: ClassVar[str] = "photo_album"
    folder: Path | None = None
    url: str = ""


@dataclass(frozen=True)
class Web:
    type: ClassVar[str] = "web"
    url: str


@dataclass(frozen=True)
class Command:
    type: ClassVar[str] = "command"
    argv: tuple[str, ...]


Action = VideoCall | SvtPlay | PhotoAlbum | Web | Command
ACTION_TYPES: dict[str, type] = {cls.type: cls for cls in (VideoCall, SvtPlay, PhotoAlbum, Web, Command)}


@dataclass(frozen=True)
class Card:
    uid: str
    label: str
    action: Action | None
    colour: str = "#1F4E9C"
    picture: Path | None = None
    on_remove: str = "close"
    enabled: bool = True
    role: str = "resident"
    #: The line the card starts on in its file; for messages only, not part of the card.
    line: int | None = field(default=None, compare=False, repr=False)
    #: The line of each action value ("action", "action.server", "action.argv"), so a check made
    #: after reading (the call-server allow list) can still name the line it is about.
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)
