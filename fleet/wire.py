"""What goes over MQTT: topics, message formats, and the checks every incoming message passes.

Pure functions, no network and no disk, so hypothesis can throw any bytes at :func:`decode_rows`.

Topics, with ``D`` the device's name (its broker username, its ``device`` in the data)::

    klick/D/state       tablet  retained  online, versions, reader, backlog; last will: offline
    klick/D/seen        tablet  retained  a copy of the last full state (the will does not touch it)
    klick/D/rows        tablet            a batch of pseudonymised rows, each with its sequence
    klick/D/withdrawn   tablet  retained  consent withdrawn: delete this device's personal rows
    klick/D/set/resend  collector  retained  "send again from sequence N" (a gap was seen)
    klick/D/set/cards   office  retained  a signed card bundle with its version (fleet.envelope)
    klick/D/set/questionnaire  office  retained  a signed questionnaire with its version
    klick/D/applied     tablet  retained  what is in force, the last refusal of each kind (fleet.apply)

A rows message is one JSON object::

    {"v": 1, "key_check": "1a2b3c4d5e6f", "after": 120, "upto": 180,
     "rows": [["events", 121, [<the export's columns, in order>]], ["sessions", 124, [...]], ...]}

``(after, upto]`` is the stretch of the device's sequence the batch covers: every row in it that
may leave the device is in ``rows``. Numbers in the stretch with no row are normal (a row changed
later has a newer number; answers and rows that may not leave are not sent). Batches follow one
another (the next ``after`` is this ``upto``), so the collector can see a stretch it never got.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

from klick.export import TABLES, time_ok
from klick.usage import KINDS

__all__ = [
    "ROOT",
    "WIRE_VERSION",
    "MAX_MESSAGE",
    "BadMessage",
    "Batch",
    "topic",
    "device_of",
    "check_device_name",
    "encode_rows",
    "decode_rows",
    "row_problem",
    "fitted",
    "encode",
    "decode_object",
    "readable",
    "no_constant",
    "mapping",
]

ROOT = "klick"
WIRE_VERSION = 1
#: The largest rows batch, state or resend request the collector reads (the broker's own limit,
#: max_packet_size in klick.conf, is set for pushed card sets: fleet.envelope.MAX_PUSH).
MAX_MESSAGE = 1024 * 1024
MAX_ROWS = 5000
#: Leaves of the topic tree.
STATE, SEEN, ROWS, WITHDRAWN, RESEND = "state", "seen", "rows", "withdrawn", "set/resend"
APPLIED = "applied"
#: The office's push topics, by what they carry.
SET = {"cards": "set/cards", "questionnaire": "set/questionnaire"}
#: Names a device may not have: the users of the office side.
RESERVED = frozenset({"collector", "office", "admin", "group", "groups", "all"})

_DEVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_CARD = re.compile(r"c[0-9a-f]{20}")
_KEY_CHECK = re.compile(r"[0-9a-f]{12}")
#: A JSON escape of a UTF-16 surrogate: most are halves of a pair (an emoji), a lone one is not text.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class BadMessage(ValueError):
    """A message the collector will not store; ``reason`` is one short word for the counters."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def topic(device: str, leaf: str) -> str:
    return f"{ROOT}/{device}/{leaf}"


def device_of(name: str) -> tuple[str, str] | None:
    """``klick/D/leaf`` → (D, leaf); None for any other topic."""
    parts = name.split("/", 2)
    if len(parts) != 3 or parts[0] != ROOT or not _DEVICE.fullmatch(parts[1]):
        return None
    return parts[1], parts[2]


def check_device_name(name: str) -> str | None:
    """None if ``name`` can be a device's name on the broker; else why not, in plain words."""
    if not _DEVICE.fullmatch(name or ""):
        return f"{name!r} cannot be a device name: use 1-64 letters a-z, digits, '-', '_' or '.', starting with a letter or digit"
    if name.lower() in RESERVED:
        return f"{name!r} is the name of an office user on the broker; choose another device name"
    return None


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def decode_object(payload: bytes, limit: int = 64 * 1024) -> dict[str, Any]:
    """A small JSON object (a state, a withdrawal, a resend request), or :class:`BadMessage`."""
    if len(payload) > limit:
        raise BadMessage("too_large", f"{len(payload)} bytes")
    try:
        obj = json.loads(payload.decode("utf-8"), parse_constant=no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadMessage("not_json", str(exc)[:80]) from None
    if _SURROGATE_ESCAPE.search(payload) and not _all_text(obj):
        # json.loads takes "\\ud800" alone, but no file, database or terminal can hold it: SQLite and
        # print() raise on it. Refused here, it never reaches the pilot file or the office's screen.
        raise BadMessage("not_json", "a string in it is not Unicode text (a lone surrogate)")
    if not isinstance(obj, dict) or obj.get("v") != WIRE_VERSION:
        raise BadMessage("foreign", "not a Klick message of this version")
    return obj


def _all_text(obj: Any) -> bool:
    """True when every string (key or value) in a parsed JSON document encodes as UTF-8."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


def readable(value: Any, limit: int = 200) -> str | None:
    """Words a tablet sent, as one line the office may print: None unless it is a non-empty string;
    control characters, line breaks and invisible formatting (bidi overrides, zero-width marks)
    become spaces, so a message can neither forge a line of ``klick fleet status`` nor drive the
    office's terminal."""
    if not isinstance(value, str):
        return None
    text = " ".join("".join(c if c.isprintable() else " " for c in value[: limit * 2]).split())[:limit]
    return text or None


def no_constant(name: str) -> None:
    """``parse_constant`` for json.loads: NaN and Infinity are no numbers JSON allows (nor json.dumps, later)."""
    raise ValueError(f"{name} is not a number JSON allows")


def mapping(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one: for reading what another program wrote."""
    return value if isinstance(value, dict) else {}


# --- rows -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    key_check: str
    after: int
    upto: int
    #: (table, sequence, values in the export's column order)
    rows: tuple[tuple[str, int, tuple], ...]


def encode_rows(batch: Batch) -> bytes:
    return encode(
        {
            "v": WIRE_VERSION,
            "key_check": batch.key_check,
            "after": batch.after,
            "upto": batch.upto,
            "rows": [[t, s, list(v)] for t, s, v in batch.rows],
        }
    )


def decode_rows(payload: bytes, device: str) -> Batch:
    """A rows message from ``device`` (the topic's name), checked value by value; else :class:`BadMessage`.

    The device is authenticated, but its message is still data: every row must name this device,
    every time must be a time (``klick report`` reads them), every value the type its column holds.
    """
    obj = decode_object(payload, MAX_MESSAGE)
    key_check, after, upto, rows = obj.get("key_check"), obj.get("after"), obj.get("upto"), obj.get("rows")
    if not isinstance(key_check, str) or not _KEY_CHECK.fullmatch(key_check):
        raise BadMessage("foreign", "no key check")
    if not (_is_seq(after, zero=True) and _is_seq(upto, zero=True)) or upto < after:
        raise BadMessage("bad_range", f"after={after!r} upto={upto!r}")
    if not isinstance(rows, list) or len(rows) > MAX_ROWS:
        raise BadMessage("bad_rows", "rows must be a list of at most 5000")
    out = []
    for item in rows:
        if not isinstance(item, list) or len(item) != 3:
            raise BadMessage("bad_rows", "a row is [table, sequence, values]")
        table, seq, values = item
        if table not in _CHECKS:
            raise BadMessage("bad_rows", f"unknown table {str(table)[:20]!r}")
        if not _is_seq(seq) or not after < seq <= upto:
            raise BadMessage("bad_rows", f"sequence {seq!r} outside ({after}, {upto}]")
        if not isinstance(values, list) or len(values) != len(_CHECKS[table]):
            raise BadMessage("bad_rows", f"a {table} row has {len(_CHECKS[table])} values")
        problem = row_problem(table, values)
        if problem:
            raise BadMessage("bad_value", problem)
        if values[0] != device:
            raise BadMessage("wrong_device", f"a row of {str(values[0])[:40]!r} on {device}'s topic")
        out.append((table, seq, tuple(values)))
    return Batch(key_check, after, upto, tuple(out))


def row_problem(table: str, values: Any) -> str | None:
    """None if ``values`` is a row of ``table`` as the collector stores it; else which value is wrong.

    The tablet checks each row with this before sending (and that it names the tablet, as
    :func:`decode_rows` does), so a damaged row in usage.db is left out there (and said in its
    state) instead of making the collector refuse a whole batch, which the tablet would send again
    for ever.
    """
    checks = _CHECKS[table]
    if len(values) != len(checks):
        return f"a {table} row has {len(checks)} values"
    for (column, check), value in zip(checks, values):
        if not check(value):
            return f"{table}.{column} = {str(value)[:40]!r}"
    return None


def fitted(batch: Batch, limit: int = MAX_MESSAGE) -> list[tuple[Batch, bytes]]:
    """``batch`` encoded, split into consecutive batches (over the same stretch) each at most ``limit`` bytes.

    The collector refuses a larger message, and the tablet would send it again for ever (500
    written answers can pass 1 MiB). A single row too large alone is left out (its stretch is
    still covered); with the limits of :data:`_CHECKS` no row comes near one.
    """
    payload = encode_rows(batch)
    if len(payload) <= limit:
        return [(batch, payload)]
    if len(batch.rows) <= 1:
        return fitted(Batch(batch.key_check, batch.after, batch.upto, ()), limit)
    half = len(batch.rows) // 2
    middle = batch.rows[half - 1][1]
    first = Batch(batch.key_check, batch.after, middle, batch.rows[:half])
    rest = Batch(batch.key_check, middle, batch.upto, batch.rows[half:])
    return fitted(first, limit) + fitted(rest, limit)


def _is_seq(value: Any, zero: bool = False) -> TypeGuard[int]:
    return type(value) is int and (0 if zero else 1) <= value < 2**62


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _text(limit: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, str) and len(v) <= limit and "\x00" not in v


def _number(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v) and 0 <= v < 10**9


_ID = _is_seq
_CARD_OR_NONE = _optional(lambda v: isinstance(v, str) and bool(_CARD.fullmatch(v)))
_SHORT = _optional(_text(100))
_COLUMN_CHECKS: dict[str, Callable[[Any], bool]] = {
    "device": lambda v: isinstance(v, str) and bool(_DEVICE.fullmatch(v)),
    "src_id": _ID,
    "at": time_ok,
    "kind": lambda v: v in KINDS,
    "card": _CARD_OR_NONE,
    "action_type": _SHORT,
    "outcome": _SHORT,
    "detail": _optional(_text(500)),
    "started_at": time_ok,
    "ended_at": _optional(time_ok),
    "duration_s": _optional(_number),
    "end_reason": _SHORT,
    "question_id": _text(100),
    "trigger": _SHORT,
    "state": _SHORT,
    "created_at": time_ok,
    "shown_at": _optional(time_ok),
    "closed_at": _optional(time_ok),
    "answered_at": _optional(time_ok),
    "value": _optional(_text(200)),
    "text": _optional(_text(2000)),
}
#: Per table, (column, check) in the export's column order: the wire carries exactly those.
_CHECKS: dict[str, tuple[tuple[str, Callable[[Any], bool]], ...]] = {
    name: tuple((c, _COLUMN_CHECKS[c]) for c in t.columns) for name, t in TABLES.items()
}
