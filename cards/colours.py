"""Klick's colours in one place: the card palette, the screens' palette, and WCAG's contrast arithmetic.

The launcher, the carer window and printed cards all draw a card's colour with a label on it, on
the same calm screen colours, and all must reach WCAG's enhanced contrast (7:1) for residents who
see poorly. So the colours and the arithmetic live here, below all three (the launcher imports the
card tools, never the other way round), and not in the core: the bridge and the fleet draw nothing.

Card colours have names because a carer writes "blå", not "#1F4E9C". The palette is chosen so that
either black or white text on it reaches 7:1. Nothing on a screen is red: red reads as "alarm" and
the launcher never alarms anyone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "PALETTE",
    "parse_colour",
    "ColourError",
    "BG",
    "TEXT",
    "TEXT_SOFT",
    "BUTTON_BG",
    "BUTTON_TEXT",
    "PANEL",
    "READY",
    "WAITING",
    "ALBUM_BG",
    "ALBUM_TEXT",
    "BAND_DARK",
    "BAND_LIGHT",
    "BLACK",
    "WHITE",
    "KEY_BG",
    "KEY_DOWN",
    "KEY_TEXT",
    "KEYBOARD_BG",
    "SCREEN_PAIRS",
    "luminance",
    "contrast",
    "text_colour_for",
    "rgba",
    "CardTextStyle",
    "card_text_style",
]

# --- the cards' colours -------------------------------------------------------------------------

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


# --- the screens' colours (the launcher and the carer window) -----------------------------------

#: Deep, calm navy with warm white text: high contrast without the glare of a white screen.
BG = "#102A43"
TEXT = "#FFFDF7"
TEXT_SOFT = "#D9E2EC"
#: Buttons are light plates on the dark screen, so they look like something to press.
BUTTON_BG = "#FFF4D6"
BUTTON_TEXT = "#102A43"
#: The drawn tablet in the home picture, and the frame of message symbols.
PANEL = "#334E68"
#: Reader indicator dots: a calm green when ready, a quiet grey-blue while waiting. Never red.
READY = "#8BD3A0"
WAITING = "#9FB3C8"
ALBUM_BG = "#000000"
ALBUM_TEXT = "#FFFFFF"
#: Bands behind a card's label when neither black nor white text reaches 7:1 on its colour.
BAND_DARK = "#111111"
BAND_LIGHT = "#FFFFFF"
BLACK = "#111111"
WHITE = "#FFFFFF"
#: The on-screen keyboard: light keys like every button, on the panel colour; a pressed key warms.
KEY_BG = BUTTON_BG
KEY_DOWN = "#F7D58B"
KEY_TEXT = BUTTON_TEXT
KEYBOARD_BG = PANEL

#: (where, foreground, background) for every text drawn on a fixed background.
SCREEN_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("text on screen", TEXT, BG),
    ("soft text on screen", TEXT_SOFT, BG),
    ("button label", BUTTON_TEXT, BUTTON_BG),
    ("album text", ALBUM_TEXT, ALBUM_BG),
    ("label on dark band", WHITE, BAND_DARK),
    ("label on light band", BLACK, BAND_LIGHT),
    ("text on drawn panel", TEXT, PANEL),
    ("keyboard key", KEY_TEXT, KEY_BG),
    ("keyboard key pressed", KEY_TEXT, KEY_DOWN),
)


# --- WCAG's arithmetic --------------------------------------------------------------------------


def _channel(c: float) -> float:
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def _rgb(hex_colour: str) -> tuple[float, float, float]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16) / 255, int(h[2:4], 16) / 255, int(h[4:6], 16) / 255


def luminance(hex_colour: str) -> float:
    """WCAG 2.x relative luminance."""
    r, g, b = (_channel(c) for c in _rgb(hex_colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fg: str, bg: str) -> float:
    """WCAG contrast ratio, from 1 to 21."""
    a, b = luminance(fg), luminance(bg)
    hi, lo = max(a, b), min(a, b)
    return (hi + 0.05) / (lo + 0.05)


def text_colour_for(background: str, black: str = BLACK, white: str = WHITE) -> str:
    """``black`` or ``white``, whichever contrasts more with ``background`` (black when they tie).

    The screens' black is a soft near-black; printed faces pass pure black, the darkest ink.
    """
    return black if contrast(black, background) >= contrast(white, background) else white


def rgba(hex_colour: str, alpha: float = 1.0) -> tuple[float, float, float, float]:
    """Kivy's colour form."""
    return (*_rgb(hex_colour), alpha)


@dataclass(frozen=True)
class CardTextStyle:
    """How to write on a card's colour: the text colour, and a band behind it if one is needed."""

    text: str
    band: str | None


def card_text_style(card_colour: str, minimum: float = 7.0) -> CardTextStyle:
    """Black or white, whichever reads better; a band when even that is under ``minimum``.

    Mid-tone colours (a strong red, a mid green) reach only about 5:1 with either; a carer picks
    card colours for recognition, not for contrast, so the screen adapts instead of refusing.
    """
    text = text_colour_for(card_colour)
    if contrast(text, card_colour) >= minimum:
        return CardTextStyle(text, None)
    # White text on a near-black band: 18.9:1 whatever the card's colour.
    return CardTextStyle(WHITE, BAND_DARK)
