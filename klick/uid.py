"""The one place a card UID is normalised.

Readers report the same card in many spellings: nfcpy gives bytes, a serial reader gives bytes,
a carer types ``04:a2:b3:c4`` or ``04 A2 B3 C4``, a keyboard-style reader types ``0012345678``.
Every driver and the registry call :func:`normalise_uid`, so that one card is one key everywhere.

The rule: upper-case hex digits with no separators. Decimal IDs from keyboard readers are a
subset of that alphabet and so pass through unchanged, as strings; leading zeros are part of
the ID and are never lost to an integer conversion.
"""

from __future__ import annotations

import re

__all__ = ["UidError", "normalise_uid", "MAX_UID_CHARS"]

#: A 10-byte ISO 14443 UID is 20 hex digits; FeliCa IDm is 16; keyboard readers type up to ~20
#: decimal digits. Anything much longer is not a card ID but a pasted paragraph.
MAX_UID_CHARS = 40

_SEPARATORS = re.compile(r"[\s:\-\.]+")
_HEX = re.compile(r"[0-9A-F]+")


class UidError(ValueError):
    """A text that cannot be a card ID. The message is meant for a carer's eyes."""


def normalise_uid(raw: str | bytes | bytearray) -> str:
    """Return the canonical spelling of a card ID, or raise :class:`UidError`.

    Bytes (from nfcpy, the serial protocol) become upper-case hex. Text loses its separators
    (colons, spaces, dashes, dots) and an optional ``0x`` prefix, and is upper-cased.
    """
    if isinstance(raw, (bytes, bytearray)):
        if not raw:
            raise UidError("the card sent an empty ID")
        if len(raw) * 2 > MAX_UID_CHARS:
            raise UidError(f"the card ID is {len(raw)} bytes long; at most {MAX_UID_CHARS // 2} are expected")
        return bytes(raw).hex().upper()
    if not isinstance(raw, str):
        raise UidError(f"a card ID must be text, not {type(raw).__name__}")
    text = _SEPARATORS.sub("", raw).upper()
    if text.startswith("0X"):
        text = text[2:]
    if not text:
        raise UidError("the card ID is empty")
    if len(text) > MAX_UID_CHARS:
        raise UidError(f"the card ID is {len(text)} characters long; at most {MAX_UID_CHARS} are expected")
    if not _HEX.fullmatch(text):
        bad = next(ch for ch in text if ch not in "0123456789ABCDEF")
        raise UidError(f"the card ID {raw.strip()!r} contains {bad!r}; a card ID is made of the digits 0-9 and the letters A-F")
    return text
