"""Typed card events, and their one-line JSON form on the bridge socket.

The bridge speaks newline-delimited JSON, like gpsd, so that any client (the launcher, the
carer tool, ``klick watch``, a test with ``socat``) can read it. Inside Python the events are
dataclasses, never bare strings, so a typo in an event name is an error at the source.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "CardPresent",
    "CardRemoved",
    "ReaderStatus",
    "Event",
    "EventError",
    "READER_STATES",
    "encode_event",
    "decode_event",
]

#: connected: the reader answers. searching: the bridge is looking for it (start-up, replug).
#: lost: it was there and stopped answering.
READER_STATES = ("connected", "searching", "lost")


@dataclass(frozen=True)
class CardPresent:
    uid: str
    reader: str = "reader"
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class CardRemoved:
    uid: str
    reader: str = "reader"
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class ReaderStatus:
    state: Literal["connected", "searching", "lost"]
    reader: str = "reader"
    detail: str = ""
    #: "slot" or "tap": a reader that can only say "present" (keyboard-style) forces tap mode.
    mode: str = "slot"
    at: float = field(default_factory=time.time)


Event = CardPresent | CardRemoved | ReaderStatus

_NAMES = {CardPresent: "card_present", CardRemoved: "card_removed", ReaderStatus: "reader_status"}
_TYPES = {name: cls for cls, name in _NAMES.items()}


class EventError(ValueError):
    """A line on the socket that is not a Klick event."""


def encode_event(event: Event) -> bytes:
    """One JSON object and a newline: the socket's unit."""
    body = {"event": _NAMES[type(event)]}
    body.update(event.__dict__)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def decode_event(line: bytes | str) -> Event:
    """Parse one line from the socket; raise :class:`EventError` for anything else."""
    try:
        body = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventError(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise EventError("not a JSON object")
    cls = _TYPES.get(body.pop("event", None))
    if cls is None:
        raise EventError("no known 'event' name")
    try:
        event = cls(**body)
    except TypeError as exc:
        raise EventError(f"wrong fields: {exc}") from None
    if isinstance(event, ReaderStatus) and event.state not in READER_STATES:
        raise EventError(f"unknown reader state {event.state!r}")
    if not isinstance(event.at, (int, float)) or isinstance(event.at, bool):
        raise EventError("'at' must be a number of seconds")
    return event
