"""Home: a big clock and date, and "put in a card" with a picture of a card going into the slot."""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

from launcher import theme
from launcher.screens.widgets import Filled, ReaderDot, SlotPicture, Text
from launcher.wording import date_words


class HomeScreen(Filled):
    def __init__(self, ctx: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.ctx = ctx
        s, w = ctx.sizes, ctx.w
        self.dot = ReaderDot(
            size_hint=(None, None), size=(s.px("small"), s.px("small")), pos_hint={"right": 0.97 - 0.36, "top": 0.965}
        )
        self.reader_text = Text(
            text="",
            font_size=s.px("small"),
            color=theme.rgba(theme.TEXT_SOFT),
            halign="left",
            size_hint=(0.36, None),
            height=s.px("small") * 1.2,
            pos_hint={"right": 0.97, "top": 0.965},
        )
        self.clock = Text(text="", font_size=s.px("clock"), bold=True, size_hint=(1, 0.3), pos_hint={"center_x": 0.5, "top": 0.9})
        self.date = Text(text="", font_size=s.px("date"), size_hint=(1, 0.1), pos_hint={"center_x": 0.5, "top": 0.6})
        self.picture = SlotPicture(size_hint=(0.42, 0.42), pos_hint={"x": 0.05, "y": 0.04})
        self.insert = Text(
            text=w("Put in a card"),
            font_size=round(s.px("title") * 1.15),
            bold=True,
            size_hint=(0.46, 0.36),
            pos_hint={"right": 0.96, "y": 0.07},
        )
        for child in (self.dot, self.reader_text, self.clock, self.date, self.picture, self.insert):
            self.add_widget(child)
        self._minute = None

    def tick(self, now: _dt.datetime) -> None:
        minute = now.replace(second=0, microsecond=0)
        if minute == self._minute:
            return
        self._minute = minute
        self.clock.text = now.strftime("%H:%M")
        self.date.text = date_words(self.ctx.w, now.date())

    def update(self, session: Any) -> None:
        s, notice = self.ctx.sizes, session.screen.notice
        if notice:  # after a round of wrong carer PINs: calm words in place of "put in a card", for a while
            minutes = math.ceil(session.carer_pause_left() / 60)
            if minutes <= 1:
                self.insert.text = self.ctx.w("That was not the right PIN. Carer mode opens again in a minute.")
            else:
                self.insert.text = self.ctx.w(
                    "That was not the right PIN. Carer mode opens again in {minutes} minutes.", minutes=minutes
                )
            self.insert.font_size = s.px("body")
        else:
            self.insert.text = self.ctx.w("Put in a card")
            self.insert.font_size = round(s.px("title") * 1.15)
        ready = session.reader == "connected" and session.bridge_connected
        self.dot.ready = 1 if ready else 0
        self.reader_text.text = self.ctx.w("The card reader is ready") if ready else self.ctx.w("Waiting for the card reader")
