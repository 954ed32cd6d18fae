"""Where things go on a screen: boxes in pixels, one set upright (portrait) and one lying down.

Every text gets a box of its own that no other text enters, and fits itself into it
(:class:`launcher.screens.widgets.Text`). The bottom strip (:attr:`Frame.bar`) is kept for the
buttons a screen may show (Home, Not now), so words never run under them. Screens are built
again when the window's size or the text size changes, so a box is computed once per build.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Frame", "Box"]

#: x, y (from the bottom left), width, height, in pixels.
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Frame:
    width: float
    height: float
    margin: int
    touch: int

    @classmethod
    def of(cls, ctx: Any) -> Frame:
        width, height = ctx.screen_size
        return cls(float(width), float(height), ctx.sizes.margin, ctx.sizes.touch)

    @property
    def portrait(self) -> bool:
        return self.height > self.width

    @property
    def bar(self) -> float:
        """The bottom strip's height: one button with a margin under and over it."""
        return self.touch + self.margin

    @property
    def button_y(self) -> float:
        """Where a button in the bottom strip stands."""
        return self.margin / 2

    def rows(self, bottom: float, top: float, shares: list[float], gap: float = 0) -> list[Box]:
        """Full-width boxes (within the margins) from ``top`` down, each its share of the space."""
        m = self.margin
        total = sum(shares)
        room = top - bottom - gap * (len(shares) - 1)
        boxes: list[Box] = []
        y = top
        for share in shares:
            h = room * share / total
            y -= h
            boxes.append((m, y, self.width - 2 * m, h))
            y -= gap
        return boxes
