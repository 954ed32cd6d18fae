"""Home while someone waits in a call card's room: that card's face, large, and "Anna väntar på
dig. Sätt i Annas kort." One message, nothing to press: putting the card in starts the call.

The card is drawn as it looks in the hand (its colour, its picture on a white mount, its name);
lying down it stands left of the words, upright above them.
"""

from __future__ import annotations

from typing import Any

from kivy.uix.image import Image

from launcher import theme
from launcher.screens.card import has_picture
from launcher.screens.layout import Frame
from launcher.screens.widgets import Filled, Screen, Text, place
from launcher.textures import picture_textures
from launcher.wording import waiting_words


class WaitingScreen(Screen):
    def __init__(self, ctx: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.ctx = ctx
        s, f = ctx.sizes, Frame.of(ctx)
        W, H, m = f.width, f.height, f.margin
        if f.portrait:
            face = (0.08 * W, 0.45 * H, 0.84 * W, 0.55 * H - m)
            title, body = f.rows(m, face[1] - m / 2, [0.55, 0.45], gap=m / 4)
        else:
            face = (0.04 * W, m, 0.44 * W, H - 2 * m)
            right = (0.52 * W, m, 0.45 * W, H - 2 * m)
            title, body = ((right[0], y, right[2], h) for (_x, y, _w, h) in f.rows(m, H - m, [0.55, 0.45], gap=m / 4))
        fx, fy, fw, fh = face
        pad = m / 2
        picture = (fx + pad, fy + fh * 0.42, fw - 2 * pad, fh * 0.58 - pad)
        band = (fx + pad / 2, fy + pad / 2, fw - pad, fh * 0.42 - pad)
        label = (band[0] + pad / 2, band[1] + pad / 4, band[2] - pad, band[3] - pad / 2)
        self.picture_px = int(max(picture[2], picture[3]))
        self.face = place(Filled(), face, W, H)
        self.mount = Filled(size_hint=(None, None), opacity=0)
        self.mount.bg = theme.rgba(theme.WHITE)
        self.picture = place(Image(fit_mode="contain", opacity=0), picture, W, H)
        self.band = place(Filled(), band, W, H)
        self.label = place(Text(font_size=s.px("card_label"), bold=True), label, W, H)
        self.title = place(Text(font_size=round(s.px("title") * 1.15), bold=True), title, W, H)
        self.body = place(Text(font_size=s.px("title")), body, W, H)
        for child in (self.face, self.mount, self.picture, self.band, self.label, self.title, self.body):
            self.add_widget(child)
        self.picture.bind(norm_image_size=self._mount, pos=self._mount, size=self._mount)
        picture_textures.listen(self._picture_ready)
        self._card: Any = None

    def _mount(self, *_: Any) -> None:
        w, h = self.picture.norm_image_size
        pad = self.ctx.sizes.margin / 4
        self.mount.size = (w + 2 * pad, h + 2 * pad)
        self.mount.pos = (
            self.picture.x + (self.picture.width - w) / 2 - pad,
            self.picture.y + (self.picture.height - h) / 2 - pad,
        )

    def update(self, session: Any) -> None:
        card = session.screen.waiting
        if card is None or card is self._card:
            return
        self._card = card
        self.face.bg = theme.rgba(card.colour)
        style = theme.card_text_style(card.colour)
        self.label.color = theme.rgba(style.text)
        self.band.opacity = 1 if style.band else 0
        if style.band:
            self.band.bg = theme.rgba(style.band)
        self._show_picture(picture_textures.texture(card.picture, self.picture_px) if has_picture(card) else None)
        self.label.say(card.label)
        title, body = waiting_words(self.ctx.w, card)
        self.title.say(title)
        self.body.say(body)

    def _show_picture(self, texture: Any) -> None:
        self.picture.texture = texture
        self.picture.opacity = self.mount.opacity = 1 if texture is not None else 0

    def _picture_ready(self, path: Any, px: int) -> None:
        card = self._card
        if card is not None and has_picture(card) and card.picture == path and px == self.picture_px:
            self._show_picture(picture_textures.texture(path, px))
