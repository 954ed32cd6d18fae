"""Turning a keyboard-style RFID reader's key presses into a card ID, whatever the keyboard layout.

These readers pretend to be a USB keyboard and "type" the card number followed by Enter. The
characters they type depend on the host's keyboard layout (on a French layout the top-row keys
are not digits), but the Linux key *codes* do not: KEY_1 is 2 on every layout. So this decoder
reads key codes from its own table and ignores Shift, and an ID is the same card on every
tablet. Pure: feed it (code, value, time) tuples as evdev reports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["KeyDecoder", "KEY_CHARS", "TERMINATORS", "MODIFIERS", "KEY_DOWN", "KEY_UP", "KEY_REPEAT"]

KEY_UP, KEY_DOWN, KEY_REPEAT = 0, 1, 2

#: Linux input key codes (linux/input-event-codes.h) → the character they stand for in an ID.
KEY_CHARS: dict[int, str] = {
    # top row: KEY_1 = 2 ... KEY_9 = 10, KEY_0 = 11
    2: "1",
    3: "2",
    4: "3",
    5: "4",
    6: "5",
    7: "6",
    8: "7",
    9: "8",
    10: "9",
    11: "0",
    # keypad: KEY_KP7 = 71 ... KEY_KP0 = 82
    71: "7",
    72: "8",
    73: "9",
    75: "4",
    76: "5",
    77: "6",
    79: "1",
    80: "2",
    81: "3",
    82: "0",
    # hex letters: KEY_A = 30, KEY_B = 48, KEY_C = 46, KEY_D = 32, KEY_E = 18, KEY_F = 33
    30: "A",
    48: "B",
    46: "C",
    32: "D",
    18: "E",
    33: "F",
}
#: KEY_ENTER, KEY_KPENTER, KEY_TAB: the reader's "end of ID".
TERMINATORS = frozenset({28, 96, 15})
#: Shift, Ctrl, Alt, Meta, Caps/Num Lock: carry no part of an ID.
MODIFIERS = frozenset({42, 54, 29, 97, 56, 100, 125, 126, 58, 69})
#: Longest plausible ID (klick.uid.MAX_UID_CHARS); anything longer is a stuck key or a person.
MAX_CHARS = 40
#: A reader types an ID in a burst; a pause longer than this means the half-typed ID is stale.
MAX_GAP = 0.5


@dataclass
class KeyDecoder:
    """Collects key-down events into IDs. ``feed`` returns a finished ID or None."""

    max_gap: float = MAX_GAP
    chars: list[str] = field(default_factory=list)
    last: float | None = None
    #: The current ID held a key that is no part of an ID: it is dropped at its Enter.
    spoiled: bool = False
    #: IDs thrown away (stray keys, too long, stale): for the log, never for the resident.
    rejected: int = 0

    def feed(self, code: int, value: int, at: float) -> str | None:
        if value != KEY_DOWN:  # key up, and auto-repeat of a held key, add nothing
            return None
        if self.last is not None and at - self.last > self.max_gap and (self.chars or self.spoiled):
            self._reset(rejected=True)
        self.last = at
        if code in MODIFIERS:
            return None
        if code in TERMINATORS:
            uid = "".join(self.chars)
            good = bool(uid) and not self.spoiled
            self._reset(rejected=not good and (bool(uid) or self.spoiled))
            return uid if good else None
        char = KEY_CHARS.get(code)
        if char is None:
            self.spoiled = True
            return None
        self.chars.append(char)
        if len(self.chars) > MAX_CHARS:
            self.chars.clear()
            self.spoiled = True
        return None

    def _reset(self, rejected: bool) -> None:
        if rejected:
            self.rejected += 1
        self.chars.clear()
        self.spoiled = False
