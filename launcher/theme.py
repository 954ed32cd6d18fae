"""Colours and sizes of every screen, in one place, so a test can check them from the source.

The residents are over 70 and many see poorly: every text/background pair used on a screen
must reach WCAG's enhanced contrast (7:1), every text must be at least 32 px on a 1280x800
screen at the default text size, and every touch target at least 16 mm wide at the screen's
real DPI. Nothing is red: red reads as "alarm" and the launcher never alarms anyone.

The colours and the contrast arithmetic are :mod:`cards.colours`, shared with the carer window
and printed cards; they are named here too, so a screen needs only this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cards.colours import (
    ALBUM_BG,
    ALBUM_TEXT,
    BAND_DARK,
    BAND_LIGHT,
    BG,
    BLACK,
    BUTTON_BG,
    BUTTON_TEXT,
    KEY_BG,
    KEY_DOWN,
    KEY_TEXT,
    KEYBOARD_BG,
    PANEL,
    READY,
    SCREEN_PAIRS,
    TEXT,
    TEXT_SOFT,
    WAITING,
    WHITE,
    CardTextStyle,
    card_text_style,
    contrast,
    luminance,
    rgba,
)

__all__ = [
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
    "SCREEN_PAIRS",
    "contrast",
    "luminance",
    "rgba",
    "card_text_style",
    "CardTextStyle",
    "Sizes",
    "sizes_for",
    "MIN_TEXT_PX",
    "MIN_TOUCH_MM",
    "mm_to_px",
    "KEY_BG",
    "KEY_DOWN",
    "KEY_TEXT",
    "KEYBOARD_BG",
    "KeyboardSize",
    "keyboard_size",
    "BLACK",
    "WHITE",
]

MIN_TEXT_PX = 32
MIN_TOUCH_MM = 16.0
#: Font sizes in px at 1280x800 and text size "normal"; all at or above MIN_TEXT_PX.
BASE_TEXT_PX = {
    "clock": 200,
    "date": 60,
    "title": 64,
    "card_label": 104,
    "body": 46,
    "button": 48,
    "small": 34,
}


def mm_to_px(mm: float, dpi: int) -> int:
    return math.ceil(mm / 25.4 * dpi)


@dataclass(frozen=True)
class Sizes:
    """Pixel sizes for one screen: fonts by role, the smallest touch target, margins."""

    text: dict
    touch: int
    margin: int

    def px(self, role: str) -> int:
        return self.text[role]


def sizes_for(width: int, height: int, text_scale: float, dpi: int) -> Sizes:
    """Fonts grow with the text-size setting and with the screen; never below 32 px x scale.

    A smaller screen than 1280x800 shrinks the layout, but not the text below the floor: better
    a label that wraps than one a resident cannot read. A tablet turned on its side (800x1280)
    is the same glass: its words are as large as the other way round, and each screen's
    upright layout gives them the room (what does not fit its box shrinks, :mod:`launcher.fitting`).
    """
    fit = min(max(width, height) / 1280, min(width, height) / 800)
    floor = MIN_TEXT_PX * text_scale
    text = {role: max(round(px * text_scale * fit), math.ceil(floor)) for role, px in BASE_TEXT_PX.items()}
    touch = max(mm_to_px(MIN_TOUCH_MM, dpi), round(120 * fit))
    return Sizes(text=text, touch=touch, margin=round(40 * fit))


#: Share of the screen the on-screen keyboard may cover at most: above it must stay room for
#: the question (or the carer's title) and the one text field with its buttons.
KEYBOARD_MAX_SHARE = 0.70
#: Pixels between two keys (half on each side), and between the keys and the keyboard's edge.
KEY_GAP = 6
KEYBOARD_EDGE = 10


@dataclass(frozen=True)
class KeyboardSize:
    """The docked on-screen keyboard: its height, its keys' size and letters, and whether the
    keys reach the 16 mm touch target (``fits``); if not, they are as large as the screen allows."""

    height: int
    key_w: int
    key_h: int
    font_px: int
    fits: bool


def keyboard_size(width: int, height: int, sizes: Sizes, dpi: int, cols: int, rows: int) -> KeyboardSize:
    """Keys at least 16 mm at ``dpi`` in both directions when the screen allows; letters as big
    as body text but never over 60% of a key, and never under the 32 px floor.

    Mirrors Kivy's VKeyboard arithmetic (relative unit, whole pixels, margin per key side), so
    the key sizes here are the ones drawn.
    """
    need = mm_to_px(MIN_TOUCH_MM, dpi)
    wanted = rows * (need + KEY_GAP + 1) + 2 * KEYBOARD_EDGE
    kb_height = min(wanted, math.floor(height * KEYBOARD_MAX_SHARE))
    key_w = int((width - 2 * KEYBOARD_EDGE) / cols - KEY_GAP)
    key_h = int((kb_height - 2 * KEYBOARD_EDGE) / rows - KEY_GAP)
    font = max(min(sizes.px("body"), int(min(key_w, key_h) * 0.6)), MIN_TEXT_PX)
    return KeyboardSize(height=kb_height, key_w=key_w, key_h=key_h, font_px=font, fits=min(key_w, key_h) >= need)
