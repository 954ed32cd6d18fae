"""Building blocks the screens share: a screen, fitted words, big buttons, drawn pictures.

Every word on a screen is a :class:`Text` (or a :class:`BigButton`, which is one): fitted into
its box by the one fitting rule (:mod:`launcher.fitting`) and drawn from a kept texture
(:mod:`launcher.textures`). A screen's background is the window's clear colour, not a
rectangle over the whole glass: a software GL fills every full-screen rectangle pixel by pixel,
and a card's face must be on the glass in the next frame.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kivy.graphics import Color, Line, Rectangle, SmoothEllipse, SmoothRoundedRectangle, SmoothTriangle
from kivy.properties import ListProperty, NumericProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.floatlayout import FloatLayout
from kivy.uix.label import Label
from kivy.uix.widget import Widget

from launcher import theme
from launcher.fitting import fit
from launcher.textures import text_textures

__all__ = [
    "Screen",
    "Filled",
    "Text",
    "BigButton",
    "same_size",
    "keep_same_size",
    "FaceButton",
    "SlotPicture",
    "InfoSymbol",
    "ReaderDot",
    "place",
]


def _centre(widget: Widget) -> tuple[float, float]:
    """From pos and size, not ``widget.center``: that cached alias can still hold the old value
    while a ``pos`` callback runs, and the drawing would land where the widget used to be."""
    return widget.x + widget.width / 2, widget.y + widget.height / 2


def place(widget: Widget, box: tuple[float, float, float, float], width: float, height: float) -> Widget:
    """Put ``widget`` at ``box`` (x, y, w, h in pixels of a ``width`` x ``height`` screen), kept
    relative so it follows the screen."""
    x, y, w, h = box
    widget.size_hint = (w / width, h / height)
    widget.pos_hint = {"x": x / width, "y": y / height}
    return widget


class Screen(FloatLayout):
    """One screen: the app paints the window in ``bg`` (its clear colour) while it shows."""

    bg = ListProperty(theme.rgba(theme.BG))


class Filled(FloatLayout):
    """A panel painting its own background (a band, a picture's mount, a card's face)."""

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
    """Words as large as their box allows, down to ``min_px``, then on more lines, broken only
    between words (:func:`launcher.fitting.fit`).

    ``words`` is what it says; ``text`` is those words in the lines they are drawn in. The font
    size starts at ``font_size`` (the role's size) and is what the fit chose after each change
    of words or box. Left-aligned words fill the box's width; centred ones are drawn as wide as
    their widest line (a smaller texture), centred in the box.
    """

    words = StringProperty("")

    def __init__(
        self, words: str = "", *, font_size: float, min_px: float | None = None, fit_lines: int | None = None, **kw: Any
    ):
        kw.setdefault("color", theme.rgba(theme.TEXT))
        kw.setdefault("halign", "center")
        kw.setdefault("valign", "middle")
        kw.pop("text", None)
        self.max_px = float(font_size)
        self.min_px = float(theme.MIN_TEXT_PX if min_px is None else min_px)
        self.fit_lines = fit_lines
        self.fitted: Any = None
        super().__init__(font_size=font_size, **kw)
        self.bind(size=self._refit, words=self._refit, bold=self._refit)
        self.words = words

    def say(self, words: str, *, max_px: float | None = None) -> None:
        """Say ``words`` (at most ``max_px`` large, if given: the role's size)."""
        changed = max_px is not None and float(max_px) != self.max_px
        if max_px is not None:
            self.max_px = float(max_px)
        if words != self.words:
            self.words = words
        elif changed:
            self._refit()

    def fit_box(self) -> tuple[float, float]:
        """The room the words have: the whole box."""
        return self.width, self.height

    def _fitted(self, words: str, width: float, height: float) -> Any:
        if not words.strip() or width < 2 or height < 2:
            return None
        return fit(words, width, height, max_px=self.max_px, min_px=self.min_px, bold=self.bold, max_lines=self.fit_lines)

    def _text_size(self, width: float) -> tuple[float | None, None]:
        return (None, None) if self.halign == "center" else (width, None)

    def _refit(self, *_: Any) -> None:
        width, height = self.fit_box()
        fitted = self._fitted(self.words, width, height)
        self.fitted = fitted
        if fitted is None:
            self.text = ""
            return
        self.font_size = fitted.size
        self.text = fitted.text
        self.text_size = self._text_size(width)

    def render_options(self, **changes: Any) -> dict[str, Any]:
        """What the texture is made from (and kept by)."""
        options = {
            "text": self.text,
            "font_size": self.font_size,
            "font_name": self.font_name,
            "bold": self.bold,
            "color": tuple(self.color),
            "halign": self.halign,
            "valign": self.valign,
            "text_size": tuple(self.text_size),
            "line_height": self.line_height,
        }
        options.update(changes)
        return options

    def prepare(self, words: str, width: float, height: float, colour: Any = None) -> None:
        """Render ``words`` as this widget would in a box of ``width`` x ``height``, ahead of
        time, so that showing them later costs no rendering."""
        fitted = self._fitted(words, width, height)
        if fitted is None:
            return
        text_textures.texture(
            self.render_options(
                text=fitted.text,
                font_size=fitted.size,
                color=tuple(colour if colour is not None else self.color),
                text_size=self._text_size(width),
            )
        )

    def texture_update(self, *_: Any) -> None:
        """The kept texture of these words, or a new one made now (never one drawn over)."""
        texture = text_textures.texture(self.render_options()) if self.text.strip() else None
        self.texture = texture
        self.texture_size = list(texture.size) if texture is not None else [0, 0]


class BigButton(ButtonBehavior, Text):
    """A light plate with dark words, at least one touch target wide and high.

    With no width from the layout (``size_hint_x`` None) it is as wide as its words at their
    role's size, but never wider than ``max_width``: there its words shrink to fit, as on any
    screen. ``on_press`` runs on release, once.
    """

    def __init__(
        self,
        text: str,
        on_press: Callable[[], None],
        *,
        font_px: float,
        touch: int,
        max_width: float | None = None,
        min_px: float | None = None,
        **kw: Any,
    ) -> None:
        kw.setdefault("size_hint", (None, None))
        self.touch = touch
        self.max_width = max_width
        self._callback = on_press
        super().__init__(words=text, font_size=font_px, min_px=min_px, color=theme.rgba(theme.BUTTON_TEXT), **kw)
        with self.canvas.before:
            self._plate_colour = Color(*theme.rgba(theme.BUTTON_BG))
            self._plate = SmoothRoundedRectangle(radius=[touch // 5])
        self.bind(pos=self._redraw, size=self._redraw, state=self._pressed, words=self._natural_size)
        self._natural_size()

    @property
    def pad(self) -> int:
        return self.touch // 4

    def _natural_size(self, *_: Any) -> None:
        from launcher.fitting import exact_width, line_factor

        if self.size_hint_x is None:
            natural = exact_width(self.words, int(self.max_px), self.bold) + 2 * self.pad
            limit = self.max_width if self.max_width is not None else natural
            self.width = max(self.touch, min(natural, limit))
        if self.size_hint_y is None:
            self.height = max(self.touch, self.max_px * line_factor(self.bold) + self.pad)

    def fit_box(self) -> tuple[float, float]:
        # The words keep clear of the plate's rounded edge.
        return self.width - 2 * self.pad, self.height - self.pad // 2

    def _text_size(self, width: float) -> tuple[float | None, None]:
        return (None, None)

    def say(self, words: str, *, max_px: float | None = None) -> None:
        super().say(words, max_px=max_px)
        self._natural_size()

    def _redraw(self, *_: Any) -> None:
        self._plate.pos = self.pos
        self._plate.size = self.size

    def _pressed(self, *_: Any) -> None:
        self._plate_colour.a = 0.8 if self.state == "down" else 1.0

    def on_release(self) -> None:
        self._callback()


def same_size(buttons: list[BigButton], role_px: float) -> None:
    """Buttons side by side say their words at one size: the largest the tightest of them allows
    (from ``role_px``), so none looks louder than the others. Call again when they are resized."""
    buttons = [b for b in buttons if b.words.strip()]
    if len(buttons) < 2:
        return
    for button in buttons:
        button.max_px = float(role_px)
        button._refit()
    sizes = [b.fitted.size for b in buttons if b.fitted is not None]
    if sizes and min(sizes) < role_px:
        for button in buttons:
            button.max_px = float(min(sizes))
            button._refit()


def keep_same_size(buttons: list[BigButton], role_px: float) -> None:
    """:func:`same_size` now and after every resize of any of them (once per frame)."""
    from kivy.clock import Clock

    trigger = Clock.create_trigger(lambda _dt: same_size(buttons, role_px), -1)
    for button in buttons:
        button.bind(size=lambda *_: trigger())
    trigger()


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
            SmoothEllipse(pos=(cx - d / 2, cy - d / 2), size=(d, d))
            Color(*theme.rgba(theme.BUTTON_TEXT))
            eye = d * 0.09
            for dx in (-0.18, 0.18):
                SmoothEllipse(pos=(cx + dx * d - eye / 2, cy + d * 0.12 - eye / 2), size=(eye, eye))
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
            SmoothRoundedRectangle(
                pos=(cx - card_w / 2 - 0.1 * u, slot_y - 1.2 * u - 0.1 * u),
                size=(card_w + 0.2 * u, card_h + 0.2 * u),
                radius=[0.35 * u],
            )
            Color(*self.card_colour)
            SmoothRoundedRectangle(pos=(cx - card_w / 2, slot_y - 1.2 * u), size=(card_w, card_h), radius=[0.3 * u])
            Color(*theme.rgba(theme.TEXT))
            SmoothEllipse(pos=(cx - 0.6 * u, slot_y + 0.6 * u), size=(1.2 * u, 1.2 * u))
            # The tablet, seen from behind, and its slot.
            Color(*theme.rgba(theme.PANEL))
            SmoothRoundedRectangle(pos=(tx, ty), size=(tablet_w, tablet_h), radius=[0.5 * u])
            Color(*theme.rgba(theme.TEXT_SOFT))
            Line(rounded_rectangle=(tx, ty, tablet_w, tablet_h, 0.5 * u), width=max(1.5, 0.08 * u))
            Color(*theme.rgba(theme.BG))
            SmoothRoundedRectangle(
                pos=(cx - card_w / 2 - 0.4 * u, slot_y - 0.2 * u), size=(card_w + 0.8 * u, 0.3 * u), radius=[0.15 * u]
            )
            # The arrow: down, into the slot.
            Color(*theme.rgba(theme.READY))
            shaft_w = 0.5 * u
            ax = cx + card_w / 2 + 1.3 * u
            Rectangle(pos=(ax - shaft_w / 2, slot_y + 0.4 * u), size=(shaft_w, 2.6 * u))
            SmoothTriangle(points=[ax - 0.9 * u, slot_y + 0.5 * u, ax + 0.9 * u, slot_y + 0.5 * u, ax, slot_y - 0.6 * u])


class InfoSymbol(Widget):
    """A calm round symbol above a message: a card with a question (unknown), a reader (reader),
    a handset put down (ended), a tick (thanks), or an exclamation in a soft circle (failed).
    Drawn, never red."""

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
            SmoothEllipse(pos=(cx - d / 2, cy - d / 2), size=(d, d))
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
                    SmoothEllipse(pos=(ex - d * 0.08, cy - d * 0.04), size=(d * 0.16, d * 0.1))
            elif self.kind == "thanks":
                # A soft tick: the answer was taken.
                w = max(3.0, d * 0.06)
                Line(
                    points=[cx - d * 0.2, cy, cx - d * 0.05, cy - d * 0.15, cx + d * 0.22, cy + d * 0.16],
                    width=w,
                    cap="round",
                    joint="round",
                )
            else:
                bar = d * 0.09
                Rectangle(pos=(cx - bar / 2, cy - d * 0.05), size=(bar, d * 0.3))
                SmoothEllipse(pos=(cx - bar * 0.65, cy - d * 0.25), size=(bar * 1.3, bar * 1.3))


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
            SmoothEllipse(pos=(cx - d / 2, cy - d / 2), size=(d, d))
