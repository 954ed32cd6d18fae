"""Building blocks the screens share: a filled background, big buttons, drawn pictures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kivy.graphics import Color, Ellipse, Line, Rectangle, RoundedRectangle, Triangle
from kivy.properties import ListProperty, NumericProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.floatlayout import FloatLayout
from kivy.uix.label import Label
from kivy.uix.widget import Widget

from launcher import theme

__all__ = ["Filled", "Text", "BigButton", "FaceButton", "SlotPicture", "InfoSymbol", "ReaderDot"]


def _centre(widget: Widget) -> tuple[float, float]:
    """From pos and size, not ``widget.center``: that cached alias can still hold the old value
    while a ``pos`` callback runs, and the drawing would land where the widget used to be."""
    return widget.x + widget.width / 2, widget.y + widget.height / 2


class Filled(FloatLayout):
    """A layout painting its own background, so a screenshot of it is what the glass shows."""

    bg = ListProperty(theme.rgba(theme.BG))

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        with self.canvas.before:
            self._bg_colour = Color(*self.bg)
            self._bg_rect = Rectangle(pos=self.pos, size=self.size)
        self.bind(pos=self._redraw_bg, size=self._redraw_bg, bg=self._redraw_bg)

    def _redraw_bg(self, *_: Any) -> None:
        self._bg_colour.rgba = self.bg
        self._bg_rect.pos = self.pos
        self._bg_rect.size = self.size


class Text(Label):
    """A label that wraps inside its width and keeps its font size in pixels."""

    def __init__(self, **kw: Any) -> None:
        kw.setdefault("color", theme.rgba(theme.TEXT))
        kw.setdefault("halign", "center")
        kw.setdefault("valign", "middle")
        super().__init__(**kw)
        self.bind(size=self._wrap)

    def _wrap(self, *_: Any) -> None:
        self.text_size = (self.width, None)


class BigButton(ButtonBehavior, Label):
    """A light plate with dark words, at least one touch target wide and high."""

    def __init__(self, text: str, on_press: Callable[[], None], *, font_px: int, touch: int, **kw: Any) -> None:
        kw.setdefault("size_hint", (None, None))
        super().__init__(
            text=text, font_size=font_px, color=theme.rgba(theme.BUTTON_TEXT), halign="center", valign="middle", **kw
        )
        self.touch = touch
        self._callback = on_press
        with self.canvas.before:
            self._plate_colour = Color(*theme.rgba(theme.BUTTON_BG))
            self._plate = RoundedRectangle(radius=[touch // 5])
        self.bind(pos=self._redraw, size=self._redraw, texture_size=self._fit, state=self._pressed)
        self._fit()

    def _fit(self, *_: Any) -> None:
        if self.size_hint_x is None:
            self.width = max(self.touch, self.texture_size[0] + self.touch // 2)
        if self.size_hint_y is None:
            self.height = max(self.touch, self.texture_size[1] + self.touch // 3)

    def _redraw(self, *_: Any) -> None:
        self._plate.pos = self.pos
        self._plate.size = self.size

    def _pressed(self, *_: Any) -> None:
        self._plate_colour.a = 0.8 if self.state == "down" else 1.0

    def on_release(self) -> None:
        self._callback()


def mouth_points(cx: float, cy: float, width: float, value: int, steps: int = 24) -> list[float]:
    """A smile for 5, a flat line for 3, a frown for 1: a parabola through the mouth's ends."""
    curve = (value - 3) / 2 * width * 0.35
    points: list[float] = []
    for i in range(steps + 1):
        t = -1 + 2 * i / steps
        points += [cx + t * width / 2, cy - curve * (1 - t * t) + curve * 0.5]
    return points


class FaceButton(ButtonBehavior, Widget):
    """One of five drawn faces, from very unhappy (1) to very happy (5). No text to read."""

    value = NumericProperty(3)

    def __init__(self, value: int, on_press: Callable[[int], None], **kw: Any) -> None:
        super().__init__(**kw)
        self.value = value
        self._callback = on_press
        self.bind(pos=self._draw, size=self._draw, state=self._draw)

    def _draw(self, *_: Any) -> None:
        self.canvas.clear()
        d = min(self.width, self.height)
        cx, cy = _centre(self)
        with self.canvas:
            Color(*theme.rgba(theme.BUTTON_BG, 0.8 if self.state == "down" else 1.0))
            Ellipse(pos=(cx - d / 2, cy - d / 2), size=(d, d))
            Color(*theme.rgba(theme.BUTTON_TEXT))
            eye = d * 0.09
            for dx in (-0.18, 0.18):
                Ellipse(pos=(cx + dx * d - eye / 2, cy + d * 0.12 - eye / 2), size=(eye, eye))
            Line(
                points=mouth_points(cx, cy - d * 0.18, d * 0.5, self.value), width=max(2.0, d * 0.035), cap="round", joint="round"
            )

    def on_release(self) -> None:
        self._callback(self.value)


class SlotPicture(Widget):
    """A card going into the slot on the top edge of the tablet, with an arrow showing the way."""

    card_colour = ListProperty(theme.rgba("#1F4E9C"))

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.bind(pos=self._draw, size=self._draw)

    def _draw(self, *_: Any) -> None:
        self.canvas.clear()
        w, h = self.size
        x0, y0 = self.pos
        u = min(w / 10, h / 10)
        cx = x0 + w / 2
        tablet_w, tablet_h = 8 * u, 4.2 * u
        tx, ty = cx - tablet_w / 2, y0 + 0.2 * u
        slot_y = ty + tablet_h
        card_w, card_h = 3.4 * u, 3.4 * u
        with self.canvas:
            # The card, half in the slot (drawn first: the tablet's edge covers its lower part).
            Color(*theme.rgba(theme.TEXT))
            RoundedRectangle(
                pos=(cx - card_w / 2 - 0.1 * u, slot_y - 1.2 * u - 0.1 * u),
                size=(card_w + 0.2 * u, card_h + 0.2 * u),
                radius=[0.35 * u],
            )
            Color(*self.card_colour)
            RoundedRectangle(pos=(cx - card_w / 2, slot_y - 1.2 * u), size=(card_w, card_h), radius=[0.3 * u])
            Color(*theme.rgba(theme.TEXT))
            Ellipse(pos=(cx - 0.6 * u, slot_y + 0.6 * u), size=(1.2 * u, 1.2 * u))
            # The tablet, seen from behind, and its slot.
            Color(*theme.rgba(theme.PANEL))
            RoundedRectangle(pos=(tx, ty), size=(tablet_w, tablet_h), radius=[0.5 * u])
            Color(*theme.rgba(theme.TEXT_SOFT))
            Line(rounded_rectangle=(tx, ty, tablet_w, tablet_h, 0.5 * u), width=max(1.5, 0.08 * u))
            Color(*theme.rgba(theme.BG))
            RoundedRectangle(
                pos=(cx - card_w / 2 - 0.4 * u, slot_y - 0.2 * u), size=(card_w + 0.8 * u, 0.3 * u), radius=[0.15 * u]
            )
            # The arrow: down, into the slot.
            Color(*theme.rgba(theme.READY))
            shaft_w = 0.5 * u
            ax = cx + card_w / 2 + 1.3 * u
            Rectangle(pos=(ax - shaft_w / 2, slot_y + 0.4 * u), size=(shaft_w, 2.6 * u))
            Triangle(points=[ax - 0.9 * u, slot_y + 0.5 * u, ax + 0.9 * u, slot_y + 0.5 * u, ax, slot_y - 0.6 * u])


class InfoSymbol(Widget):
    """A calm round symbol above a message: a card with a question (unknown), a plug (reader),
    a handset put down (ended), or an exclamation in a soft circle (failed). Drawn, never red."""

    def __init__(self, kind: str = "info", **kw: Any) -> None:
        super().__init__(**kw)
        self.kind = kind
        self.bind(pos=self._draw, size=self._draw)

    def set_kind(self, kind: str) -> None:
        self.kind = kind
        self._draw()

    def _draw(self, *_: Any) -> None:
        self.canvas.clear()
        d = min(self.width, self.height)
        cx, cy = _centre(self)
        with self.canvas:
            Color(*theme.rgba(theme.PANEL))
            Ellipse(pos=(cx - d / 2, cy - d / 2), size=(d, d))
            Color(*theme.rgba(theme.TEXT))
            if self.kind == "unknown":
                # A blank card.
                cw, ch = d * 0.42, d * 0.52
                Line(rounded_rectangle=(cx - cw / 2, cy - ch / 2, cw, ch, d * 0.05), width=max(2.0, d * 0.03))
                Line(points=[cx - cw * 0.3, cy + ch * 0.2, cx + cw * 0.3, cy + ch * 0.2], width=max(2.0, d * 0.025))
                Line(points=[cx - cw * 0.3, cy, cx + cw * 0.1, cy], width=max(2.0, d * 0.025))
            elif self.kind == "reader":
                # A reader (a box) and a soft "waiting" arc.
                bw, bh = d * 0.46, d * 0.26
                Line(rounded_rectangle=(cx - bw / 2, cy - bh / 2 - d * 0.08, bw, bh, d * 0.04), width=max(2.0, d * 0.03))
                Line(circle=(cx, cy - d * 0.02, d * 0.28, -50, 50), width=max(2.0, d * 0.03), cap="round")
            elif self.kind == "ended":
                # A telephone handset put down: an arc with an earpiece and a mouthpiece.
                w = max(2.0, d * 0.05)
                Line(circle=(cx, cy - d * 0.12, d * 0.26, -62, 62), width=w, cap="round")
                for side in (-1, 1):
                    ex = cx + side * d * 0.24
                    Ellipse(pos=(ex - d * 0.08, cy - d * 0.04), size=(d * 0.16, d * 0.1))
            else:
                bar = d * 0.09
                Rectangle(pos=(cx - bar / 2, cy - d * 0.05), size=(bar, d * 0.3))
                Ellipse(pos=(cx - bar * 0.65, cy - d * 0.25), size=(bar * 1.3, bar * 1.3))


class ReaderDot(Widget):
    """The home screen's small reader indicator: a calm dot, green when ready, grey-blue when not."""

    ready = NumericProperty(0)

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.bind(pos=self._draw, size=self._draw, ready=self._draw)

    def _draw(self, *_: Any) -> None:
        self.canvas.clear()
        d = min(self.width, self.height) * 0.6
        with self.canvas:
            Color(*theme.rgba(theme.READY if self.ready else theme.WAITING))
            cx, cy = _centre(self)
            Ellipse(pos=(cx - d / 2, cy - d / 2), size=(d, d))
