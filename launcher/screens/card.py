"""A card's face: its colour, picture and label, and what is happening ("Calling Anna…")."""

from __future__ import annotations

from typing import Any

from kivy.uix.image import Image

from launcher import theme
from launcher.screens.widgets import BigButton, Filled, Text
from launcher.wording import status_words


class CardScreen(Filled):
    def __init__(self, ctx: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.ctx = ctx
        s = ctx.sizes
        self.frame = Filled(size_hint=(None, None))
        self.frame.bg = theme.rgba(theme.WHITE)
        self.picture = Image(size_hint=(0.4, 0.64), pos_hint={"x": 0.06, "center_y": 0.55}, fit_mode="contain")
        self.band = Filled(size_hint=(0.47, 0.6), pos_hint={"right": 0.97, "center_y": 0.55})
        self.label = Text(
            text="", font_size=s.px("card_label"), bold=True, size_hint=(0.45, 0.3), pos_hint={"right": 0.96, "center_y": 0.66}
        )
        self.status = Text(text="", font_size=s.px("title"), size_hint=(0.45, 0.25), pos_hint={"right": 0.96, "center_y": 0.4})
        self.home = BigButton(
            ctx.w("Home"), ctx.on_home, font_px=s.px("button"), touch=s.touch, pos_hint={"right": 0.97, "y": 0.04}
        )
        for child in (self.frame, self.picture, self.band, self.label, self.status):
            self.add_widget(child)
        # A white mount hugging the picture as drawn, whatever its shape.
        self.picture.bind(norm_image_size=self._mount, pos=self._mount, size=self._mount)
        self._card_uid = None
        self._has_home = False

    def _mount(self, *_: Any) -> None:
        w, h = self.picture.norm_image_size
        pad = self.ctx.sizes.margin / 2
        self.frame.size = (w + 2 * pad, h + 2 * pad)
        self.frame.pos = (
            self.picture.x + (self.picture.width - w) / 2 - pad,
            self.picture.y + (self.picture.height - h) / 2 - pad,
        )

    def update(self, session: Any) -> None:
        screen = session.screen
        card = screen.card
        if card.uid != self._card_uid:
            self._card_uid = card.uid
            self.bg = theme.rgba(card.colour)
            style = theme.card_text_style(card.colour)
            self.label.color = self.status.color = theme.rgba(style.text)
            self.band.opacity = 1 if style.band else 0
            if style.band:
                self.band.bg = theme.rgba(style.band)
            has_picture = card.picture is not None and card.picture.is_file()
            self.picture.source = str(card.picture) if has_picture else ""
            self.picture.opacity = self.frame.opacity = 1 if has_picture else 0
            self.label.text = card.label
        self.status.text = status_words(self.ctx.w, card, screen.phase, session.mode)
        want_home = session.shows_home_button
        if want_home != self._has_home:
            self._has_home = want_home
            (self.add_widget if want_home else self.remove_widget)(self.home)
