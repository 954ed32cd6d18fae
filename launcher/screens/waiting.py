"""Home while someone waits in a call card's room: that card's face, large, and "Anna väntar på
dig. Sätt i Annas kort." One message, nothing to press: putting the card in starts the call."""

from __future__ import annotations

from typing import Any

from kivy.uix.image import Image

from launcher import theme
from launcher.screens.widgets import Filled, Text
from launcher.wording import waiting_words


class WaitingScreen(Filled):
    def __init__(self, ctx: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.ctx = ctx
        s = ctx.sizes
        # The card, as it looks in the hand: its colour, its picture on a white mount, its name.
        self.face = Filled(size_hint=(0.4, 0.8), pos_hint={"x": 0.05, "center_y": 0.5})
        self.mount = Filled(size_hint=(None, None))
        self.mount.bg = theme.rgba(theme.WHITE)
        self.picture = Image(size_hint=(0.34, 0.46), pos_hint={"x": 0.08, "top": 0.86}, fit_mode="contain")
        self.band = Filled(size_hint=(0.38, 0.2), pos_hint={"x": 0.06, "y": 0.14})
        self.label = Text(
            text="", font_size=s.px("card_label"), bold=True, size_hint=(0.36, 0.18), pos_hint={"x": 0.07, "y": 0.15}
        )
        self.title = Text(
            text="", font_size=round(s.px("title") * 1.15), bold=True, size_hint=(0.47, 0.3), pos_hint={"right": 0.97, "top": 0.8}
        )
        self.body = Text(text="", font_size=s.px("title"), size_hint=(0.47, 0.26), pos_hint={"right": 0.97, "top": 0.46})
        for child in (self.face, self.mount, self.picture, self.band, self.label, self.title, self.body):
            self.add_widget(child)
        self.picture.bind(norm_image_size=self._mount, pos=self._mount, size=self._mount)
        self._card_uid = None

    def _mount(self, *_: Any) -> None:
        w, h = self.picture.norm_image_size
        pad = self.ctx.sizes.margin / 2
        self.mount.size = (w + 2 * pad, h + 2 * pad)
        self.mount.pos = (
            self.picture.x + (self.picture.width - w) / 2 - pad,
            self.picture.y + (self.picture.height - h) / 2 - pad,
        )

    def update(self, session: Any) -> None:
        card = session.screen.waiting
        if card is None or card.uid == self._card_uid:
            return
        self._card_uid = card.uid
        self.face.bg = theme.rgba(card.colour)
        style = theme.card_text_style(card.colour)
        self.label.color = theme.rgba(style.text)
        self.band.opacity = 1 if style.band else 0
        if style.band:
            self.band.bg = theme.rgba(style.band)
        has_picture = card.picture is not None and card.picture.is_file()
        self.picture.source = str(card.picture) if has_picture else ""
        self.picture.opacity = self.mount.opacity = 1 if has_picture else 0
        self.label.text = card.label
        self.title.text, self.body.text = waiting_words(self.ctx.w, card)
