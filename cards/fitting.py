"""The one rule for putting a text in a box: as large as it fits, broken into lines only between words.

A resident reads "Barnbarnen", not "Barnba/rnen": toolkits wrap by breaking a word that is too
wide, and Swedish is full of long compound words ("Kunskapskanalen"). So the size shrinks until
every word fits the width; only then, and only at spaces, does the text take more lines. The
printed card, the carer window's card faces and the launcher's screens all use this one rule,
so a label looks alike wherever it is shown.

Pure: the caller says how wide a text is at a size (``measure``), in the box's own unit (points,
pixels), so hypothesis can drive it with any measure and any text.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Fitted", "Measure", "fit_text", "ELLIPSIS"]

#: ``measure(text, size)``: the width of ``text`` set at font size ``size``, in the box's unit.
Measure = Callable[[str, float], float]
ELLIPSIS = "…"
#: Above this many words the lines are filled greedily rather than evened out (it is quadratic).
_BALANCE_WORDS = 60


@dataclass(frozen=True)
class Fitted:
    """The size to draw at and the lines to draw, top to bottom.

    ``shortened``: even at the smallest size the text did not fit, so it was cut and ends in "…"
    (the caller may say so, or choose a bigger box). It never happens to a text that fits at
    ``min_size``.
    """

    size: float
    lines: tuple[str, ...]
    shortened: bool = False

    @property
    def text(self) -> str:
        """The lines joined with newlines, for a widget that takes one string."""
        return "\n".join(self.lines)


def fit_text(
    text: str,
    width: float,
    height: float,
    measure: Measure,
    *,
    max_size: float,
    min_size: float,
    line_height: float = 1.2,
    max_lines: int | None = None,
    step: float = 1.0,
) -> Fitted:
    """The largest size from ``max_size`` down to ``min_size`` (in ``step``\\ s) at which ``text`` fits.

    Fits means: every line is at most ``width`` wide, the lines together (``size * line_height``
    each) are at most ``height`` tall, and there are at most ``max_lines`` of them. Lines break
    only at spaces, never inside a word: one line is kept while it fits, and when more are
    needed the words are spread so the lines are as even as they can be (a label reads as one
    block, not a long line and a stray word). Runs of spaces and newlines count as one space.

    If nothing fits at ``min_size`` (a word wider than the box even then, or too many lines), the
    text is set at ``min_size`` and cut with "…" so it stays inside the box; ``shortened`` says so.
    """
    if not (min_size > 0 and max_size >= min_size and step > 0 and line_height > 0):
        raise ValueError("fit_text needs 0 < min_size <= max_size, step > 0 and line_height > 0")
    words = text.split()
    if not words:
        return Fitted(max_size, ())
    measured = _Cache(measure)
    sizes = _sizes(max_size, min_size, step)
    # Fitting only gets easier as the size goes down, so the largest size that fits is found by
    # halving (about seven layouts for a range of a hundred sizes).
    lo, hi = 0, len(sizes) - 1
    found: tuple[str, ...] | None = None
    found_at = -1
    while lo <= hi:
        mid = (lo + hi) // 2
        lines = _layout(words, sizes[mid], width, height, measured, line_height, max_lines)
        if lines is not None:
            found, found_at, hi = lines, mid, mid - 1
        else:
            lo = mid + 1
    if found is not None:
        return Fitted(sizes[found_at], found)
    return Fitted(min_size, _shortened(words, min_size, width, height, measured, line_height, max_lines), True)


def _sizes(max_size: float, min_size: float, step: float) -> list[float]:
    count = int(math.floor((max_size - min_size) / step + 1e-9))
    sizes = [max_size - n * step for n in range(count + 1)]
    if sizes[-1] - min_size > 1e-9:
        sizes.append(min_size)
    return sizes


class _Cache:
    """Each text is measured once per size: the caller's measure may be a real font renderer."""

    def __init__(self, measure: Measure) -> None:
        self.measure = measure
        self.widths: dict[tuple[str, float], float] = {}

    def __call__(self, text: str, size: float) -> float:
        key = (text, size)
        width = self.widths.get(key)
        if width is None:
            width = self.widths[key] = float(self.measure(text, size))
        return width


def _line_room(size: float, height: float, line_height: float, max_lines: int | None) -> int:
    room = int(math.floor(height / (size * line_height) + 1e-9))
    return room if max_lines is None else min(room, max_lines)


def _layout(
    words: list[str], size: float, width: float, height: float, measure: _Cache, line_height: float, max_lines: int | None
) -> tuple[str, ...] | None:
    """The lines at this size, or None if the words do not fit the box at it."""
    room = _line_room(size, height, line_height, max_lines)
    if room < 1:
        return None
    if any(measure(word, size) > width for word in words):
        return None  # a word that does not fit alone would have to be broken: never
    greedy = _greedy(words, size, width, measure)
    if len(greedy) > room:
        return None
    if len(greedy) == 1 or len(words) > _BALANCE_WORDS:
        return tuple(greedy)
    return _even(words, len(greedy), size, measure)


def _greedy(words: list[str], size: float, width: float, measure: _Cache) -> list[str]:
    """As many words on each line as fit: the fewest lines there can be at this size."""
    lines: list[str] = []
    current = words[0]
    for word in words[1:]:
        joined = f"{current} {word}"
        if measure(joined, size) <= width:
            current = joined
        else:
            lines.append(current)
            current = word
    lines.append(current)
    return lines


def _even(words: list[str], count: int, size: float, measure: _Cache) -> tuple[str, ...]:
    """``words`` in ``count`` lines with the widest line as narrow as it can be.

    The greedy lines already fit, so the narrowest widest line fits too. Ties go to the split
    with the longer first line, as a reader expects.
    """
    n = len(words)

    def width_of(a: int, b: int) -> float:
        return measure(" ".join(words[a:b]), size)

    # best[k][i]: (widest line, lines) for words[i:] in k lines.
    best: list[dict[int, tuple[float, tuple[str, ...]]]] = [{} for _ in range(count + 1)]
    for i in range(n):
        best[1][i] = (width_of(i, n), (" ".join(words[i:]),))
    for k in range(2, count + 1):
        for i in range(n - k + 1):
            choice: tuple[float, tuple[str, ...]] | None = None
            for j in range(n - k + 1, i, -1):  # longest first line first: ties keep it
                rest = best[k - 1].get(j)
                if rest is None:
                    continue
                widest = max(width_of(i, j), rest[0])
                if choice is None or widest < choice[0] - 1e-9:
                    choice = (widest, (" ".join(words[i:j]), *rest[1]))
            if choice is not None:
                best[k][i] = choice
    return best[count][0][1]


def _shortened(
    words: list[str], size: float, width: float, height: float, measure: _Cache, line_height: float, max_lines: int | None
) -> tuple[str, ...]:
    """The words at ``size``, as many lines as the box holds, cut with "…" where they overflow."""
    room = max(1, _line_room(size, height, line_height, max_lines))
    pieces = [word if measure(word, size) <= width else _cut(word, size, width, measure) for word in words]
    lines = _greedy(pieces, size, width, measure)
    if len(lines) <= room:
        return tuple(lines)
    kept = lines[:room]
    last = kept[-1]
    if measure(last + ELLIPSIS, size) > width:
        last = _cut(last, size, width, measure)
    else:
        last += ELLIPSIS
    return (*kept[:-1], last)


def _cut(text: str, size: float, width: float, measure: _Cache) -> str:
    """The longest start of ``text`` that, with "…" after it, fits ``width`` (at least "…")."""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if measure(text[:mid].rstrip() + ELLIPSIS, size) <= width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + ELLIPSIS
