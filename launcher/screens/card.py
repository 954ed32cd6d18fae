"""A card's face: its colour, picture and label, and what is happening ("Calling Anna…").

The label and the status line each have their own box (the status line's is never entered by
the label, however long the name), and both fit themselves into it. A card without a picture
gives its words the whole width. Lying down, the picture stands left of the words; upright, above.

Drawn in the next frame: :meth:`CardScreen.prepare` renders a card's words and asks for its
picture ahead of time (the app calls it for the cards in the file while home is idle), and a
card put in again shows the very same textures (:mod:`launcher.textures`).
"""

from __future__ import annotations

from typing import Any

from kivy.uix.image import Image

from launcher import theme
from launcher.screens.layout import Box, Frame
from launcher.screens.widgets import BigButton, Filled, Screen, Text, place
from launcher.textures import picture_textures
from launcher.wording import status_words


def card_boxes(f: Frame, has_picture: bool) -> dict[str, Box]:
    """The picture's, the band's, the label's and the status line's boxes on a card's face."""
    W, H, m = f.width, f.height, f.margin
    top = H - m
    bottom = f.bar + m / 4
    picture: Box
    band: Box
    if f.portrait:
        split = bottom + (top - bottom) * 0.45
        picture = (0.12 * W, split + m / 2, 0.76 * W, top - split - m / 2)
        band = (m, bottom, W - 2 * m, split - bottom) if has_picture else (m, bottom, W - 2 * m, top - bottom)
    else:
        picture = (0.05 * W, bottom, 0.40 * W, top - bottom)
        band = (0.49 * W, bottom, 0.48 * W, top - bottom) if has_picture else (0.05 * W, bottom, 0.90 * W, top - bottom)
    bx, by, bw, bh = band
    inner = m / 2
    label_h = (bh - 2 * inner) * 0.56
    status_h = (bh - 2 * inner) * 0.40
    label = (bx + inner, by + bh - inner - label_h, bw - 2 * inner, label_h)
    status = (bx + inner, by + inner, bw - 2 * inner, status_h)
    return {"picture": picture, "band": band, "label": label, "status": status}


def has_picture(card: Any) -> bool:
    try:
        return card.picture is not None and card.picture.is_file()
    except OSError:
        return False


class CardScreen(Screen):
    def __init__(self, ctx: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.ctx = ctx
        s, f = ctx.sizes, Frame.of(ctx)
        self.f = f
        self.frame = Filled(size_hint=(None, None), opacity=0)
        self.frame.bg = theme.rgba(theme.WHITE)
        self.picture = Image(fit_mode="contain", opacity=0)
        self.band = Filled()
        self.label = Text(font_size=s.px("card_label"), bold=True)
        self.status = Text(font_size=s.px("title"))
        self.home = BigButton(
            ctx.w("Home"),
            ctx.on_home,
            font_px=s.px("button"),
            touch=s.touch,
            max_width=0.4 * f.width,
            pos_hint={"right": 0.97, "y": f.button_y / f.height},
        )
        for child in (self.frame, self.picture, self.band, self.label, self.status):
            self.add_widget(child)
        self._place(True)
        # A white mount hugging the picture as drawn, whatever its shape.
        self.picture.bind(norm_image_size=self._mount, pos=self._mount, size=self._mount)
        picture_textures.listen(self._picture_ready)
        self._card: Any = None
        self._with_picture: bool | None = None
        self._has_home = False

    def _place(self, with_picture: bool) -> None:
        if with_picture == getattr(self, "_with_picture", None):
            return
        self._with_picture = with_picture
        f = self.f
        boxes = card_boxes(f, with_picture)
        for name in ("picture", "band", "label", "status"):
            place(getattr(self, name), boxes[name], f.width, f.height)

    def picture_px(self) -> int:
        _x, _y, w, h = card_boxes(self.f, True)["picture"]
        return int(max(w, h))

    def _mount(self, *_: Any) -> None:
        w, h = self.picture.norm_image_size
        pad = self.ctx.sizes.margin / 2
        self.frame.size = (w + 2 * pad, h + 2 * pad)
        self.frame.pos = (
            self.picture.x + (self.picture.width - w) / 2 - pad,
            self.picture.y + (self.picture.height - h) / 2 - pad,
        )

    # -- ahead of time -------------------------------------------------------------------------
    def prepare(self, card: Any, mode: str = "slot") -> None:
        """Render ``card``'s words as this screen would show them, and ask for its picture."""
        boxes = card_boxes(self.f, has_picture(card))
        style = theme.card_text_style(card.colour)
        colour = theme.rgba(style.text)
        self.label.prepare(card.label, boxes["label"][2], boxes["label"][3], colour)
        words = status_words(self.ctx.w, card, "starting", mode)
        self.status.prepare(words, boxes["status"][2], boxes["status"][3], colour)
        if has_picture(card):
            picture_textures.request(card.picture, self.picture_px())

    # -- showing -------------------------------------------------------------------------------
    def update(self, session: Any) -> None:
        screen = session.screen
        card = screen.card
        if card is not self._card:
            self._card = card
            self.bg = theme.rgba(card.colour)
            style = theme.card_text_style(card.colour)
            self.label.color = self.status.color = theme.rgba(style.text)
            self.band.opacity = 1 if style.band else 0
            if style.band:
                self.band.bg = theme.rgba(style.band)
            with_picture = has_picture(card)
            self._place(with_picture)
            self._show_picture(picture_textures.texture(card.picture, self.picture_px()) if with_picture else None)
            self.label.say(card.label)
        self.status.say(status_words(self.ctx.w, card, screen.phase, session.mode))
        want_home = session.shows_home_button
        if want_home != self._has_home:
            self._has_home = want_home
            (self.add_widget if want_home else self.remove_widget)(self.home)

    def _show_picture(self, texture: Any) -> None:
        self.picture.texture = texture
        self.picture.opacity = self.frame.opacity = 1 if texture is not None else 0

    def _picture_ready(self, path: Any, px: int) -> None:
        card = self._card
        if card is not None and has_picture(card) and card.picture == path and px == self.picture_px():
            self._show_picture(picture_textures.texture(path, px))
