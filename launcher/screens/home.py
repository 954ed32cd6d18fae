"""Home: a big clock and date, and "put in a card" with a picture of a card going into the slot.

Lying down, the slot picture and "put in a card" share the lower half; upright (a tablet on its
side), everything stands in one column and the picture gets the width.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

from launcher import theme
from launcher.screens.layout import Box, Frame
from launcher.screens.widgets import ReaderDot, Screen, SlotPicture, Text, place
from launcher.wording import date_words


class HomeScreen(Screen):
    def __init__(self, ctx: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.ctx = ctx
        s, w, f = ctx.sizes, ctx.w, Frame.of(ctx)
        W, H, m = f.width, f.height, f.margin
        row = max(s.px("small") * 1.4, 0.07 * H)
        row_y = H - m / 2 - row
        clock_top = row_y - m / 4
        clock: Box
        date: Box
        insert: Box
        picture: Box
        if f.portrait:
            dot_x = 0.1 * W
            clock = (m, 0.70 * H, W - 2 * m, clock_top - 0.70 * H)
            date = (m, 0.62 * H, W - 2 * m, 0.08 * H)
            insert = (m, 0.46 * H, W - 2 * m, 0.15 * H)
            picture = (0.1 * W, 0.04 * H, 0.8 * W, 0.40 * H)
        else:
            dot_x = 0.42 * W
            clock = (m, 0.58 * H, W - 2 * m, clock_top - 0.58 * H)
            date = (m, 0.47 * H, W - 2 * m, 0.11 * H)
            insert = (0.50 * W, 0.06 * H, 0.46 * W, 0.38 * H)
            picture = (0.05 * W, 0.04 * H, 0.42 * W, 0.42 * H)
        self.dot = place(ReaderDot(), (dot_x, row_y, row, row), W, H)
        self.reader_text = place(
            Text(font_size=s.px("small"), color=theme.rgba(theme.TEXT_SOFT), halign="left"),
            (dot_x + row + m / 4, row_y, W - m - dot_x - row - m / 4, row),
            W,
            H,
        )
        self.clock = place(Text(font_size=s.px("clock"), bold=True), clock, W, H)
        self.date = place(Text(font_size=s.px("date")), date, W, H)
        self.picture = place(SlotPicture(), picture, W, H)
        self.insert = place(Text(w("Put in a card"), font_size=round(s.px("title") * 1.15), bold=True), insert, W, H)
        for child in (self.dot, self.reader_text, self.clock, self.date, self.picture, self.insert):
            self.add_widget(child)
        self._minute: _dt.datetime | None = None

    def tick(self, now: _dt.datetime) -> None:
        minute = now.replace(second=0, microsecond=0)
        if minute == self._minute:
            return
        self._minute = minute
        self.clock.say(now.strftime("%H:%M"))
        self.date.say(date_words(self.ctx.w, now.date()))

    def update(self, session: Any) -> None:
        s, notice = self.ctx.sizes, session.screen.notice
        if notice:  # after a round of wrong carer PINs: calm words in place of "put in a card", for a while
            minutes = math.ceil(session.carer_pause_left() / 60)
            if minutes <= 1:
                text = self.ctx.w("That was not the right PIN. Staff mode opens again in a minute.")
            else:
                text = self.ctx.w("That was not the right PIN. Staff mode opens again in {minutes} minutes.", minutes=minutes)
            self.insert.say(text, max_px=s.px("body"))
        else:
            self.insert.say(self.ctx.w("Put in a card"), max_px=round(s.px("title") * 1.15))
        ready = session.reader == "connected" and session.bridge_connected
        self.dot.ready = 1 if ready else 0
        self.reader_text.say(self.ctx.w("The card reader is ready") if ready else self.ctx.w("Waiting for the card reader"))
