"""The colours a card may have: any ``#RRGGBB``, or a name from a small high-contrast palette.

Names exist because a carer writes "blå", not "#1F4E9C". The palette is chosen so that either
black or white text on it reaches WCAG's 7:1 contrast.
"""

from __future__ import annotations

import re

__all__ = ["PALETTE", "parse_colour", "ColourError"]

PALETTE: dict[str, str] = {
    "blue": "#1F4E9C",
    "green": "#1B6E3A",
    "red": "#B3261E",
    "purple": "#6A2C91",
    "orange": "#F28C28",
    "yellow": "#FFD43B",
    "black": "#111111",
    "white": "#FFFFFF",
}
_SWEDISH = {
    "blå": "blue",
    "grön": "green",
    "röd": "red",
    "lila": "purple",
    "orange": "orange",
    "gul": "yellow",
    "svart": "black",
    "vit": "white",
}
_HEX = re.compile(r"#[0-9A-Fa-f]{6}")


class ColourError(ValueError):
    pass


def parse_colour(text: object) -> str:
    """Return ``#RRGGBB`` (upper case) for a hex colour or a palette name in English or Swedish."""
    if not isinstance(text, str):
        raise ColourError('must be a colour such as "#1F4E9C" or a name such as blue')
    word = text.strip().lower()
    word = _SWEDISH.get(word, word)
    if word in PALETTE:
        return PALETTE[word]
    if _HEX.fullmatch(text.strip()):
        return text.strip().upper()
    names = ", ".join(PALETTE)
    raise ColourError(f'must be a colour written like "#1F4E9C" or one of: {names}; not "{text}"')
