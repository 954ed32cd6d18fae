"""The one fitting rule (:func:`cards.fitting.fit_text`), measured in the launcher's own font.

Every text on the launcher's screens is as large as its box allows, from its role's size (the
title's, the card label's) down to a floor, and only then takes more lines, broken between words
and never inside one ("Barnbarnen", not "Barnbar/nen"). "…" only when even the floor cannot hold
a word, so a text never leaves its box.

Measuring: Kivy opens one font object per size it is asked about and never lets one go, so the
search measures at one reference size and scales (widths grow with the size, give or take a
pixel of hinting per letter); the size found is then checked with the real font at that size,
and a step smaller is taken if hinting made a line too wide. So a screen costs a few font
objects, not one for every size the search tried. Import only after Kivy is configured.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

from kivy.core.text import Label as CoreLabel

from cards.fitting import Fitted, fit_text

__all__ = ["fit", "measure", "line_factor", "exact_width", "Fitted", "REF_PX", "FIT_STEP"]

#: The size the search measures at; widths at other sizes are scaled from it.
REF_PX = 100
#: Sizes are tried in steps of this many pixels (fewer font objects, no visible difference).
FIT_STEP = 2.0
#: Scaled widths are taken this much wider, so the exact check rarely has to step down.
_SLACK = 1.015
_WIDTHS_KEPT = 4000
_FITS_KEPT = 2000

_ref: dict[bool, CoreLabel] = {}
_exact: dict[tuple[bool, int], CoreLabel] = {}
_widths: OrderedDict[tuple[str, bool], float] = OrderedDict()
_line: dict[bool, float] = {}
_fits: OrderedDict[tuple[Any, ...], Fitted] = OrderedDict()


def _ref_width(text: str, bold: bool) -> float:
    key = (text, bold)
    width = _widths.get(key)
    if width is None:
        label = _ref.get(bold)
        if label is None:
            label = _ref[bold] = CoreLabel(font_size=REF_PX, bold=bold)
        width = float(label.get_extents(text)[0])
        _widths[key] = width
        if len(_widths) > _WIDTHS_KEPT:
            _widths.popitem(last=False)
    return width


def measure(bold: bool):
    """``measure(text, size)`` in pixels, as :func:`cards.fitting.fit_text` asks for it."""

    def width(text: str, size: float) -> float:
        return _ref_width(text, bold) * size / REF_PX * _SLACK

    return width


def exact_width(text: str, size: int, bold: bool) -> int:
    """The width Kivy will draw ``text`` at ``size``: the real font at that size."""
    label = _exact.get((bold, size))
    if label is None:
        label = _exact[(bold, size)] = CoreLabel(font_size=size, bold=bold)
    return int(label.get_extents(text)[0])


def line_factor(bold: bool) -> float:
    """How tall one line is, as a multiple of the font size (Kivy draws lines this far apart)."""
    if bold not in _line:
        _line[bold] = CoreLabel(font_size=REF_PX, bold=bold).get_extents("ÅÄÖgjy")[1] / REF_PX
    return _line[bold]


def fit(
    text: str, width: float, height: float, *, max_px: float, min_px: float, bold: bool = False, max_lines: int | None = None
) -> Fitted:
    """``text`` fitted into ``width`` x ``height`` pixels, at a whole-pixel size.

    Remembered (a screen asks again on every resize and every card), so a repeat costs nothing.
    """
    max_px, min_px = max(1, math.floor(max_px)), max(1, math.floor(min_px))
    min_px = min(min_px, max_px)
    key = (text, round(width), round(height), max_px, min_px, bold, max_lines)
    found = _fits.get(key)
    if found is not None:
        _fits.move_to_end(key)
        return found
    found = _fit(text, width, height, max_px, min_px, bold, max_lines)
    _fits[key] = found
    if len(_fits) > _FITS_KEPT:
        _fits.popitem(last=False)
    return found


def _fit(text: str, width: float, height: float, max_px: int, min_px: int, bold: bool, max_lines: int | None) -> Fitted:
    # A line is as tall as the font's line skip, plus a pixel Kivy may round up.
    line_height = line_factor(bold) + 1.0 / max(min_px, 1)
    top = max_px
    while True:
        fitted = fit_text(
            text,
            width,
            height,
            measure(bold),
            max_size=top,
            min_size=min_px,
            line_height=line_height,
            max_lines=max_lines,
            step=FIT_STEP,
        )
        size = int(fitted.size)
        if all(exact_width(line, size, bold) <= width for line in fitted.lines):
            return Fitted(size, fitted.lines, fitted.shortened)
        if size > min_px and not fitted.shortened:
            top = size - 1  # hinting made a line a little wider than scaled: one step smaller
            continue
        return _shorten_exact(fitted, width, bold)


def _shorten_exact(fitted: Fitted, width: float, bold: bool) -> Fitted:
    """At the floor, lines the scaled measure let through but the real font does not: cut them."""
    size = int(fitted.size)
    lines = []
    for line in fitted.lines:
        while line and exact_width(line, size, bold) > width:
            line = line[:-2].rstrip() + "…" if len(line) > 1 else ""
        lines.append(line)
    return Fitted(size, tuple(lines), True)
