"""The carer's PIN pad: big digits, the PIN shown only as dots, and "Cancel" always in reach.

A resident who finds a staff card gets no further than this pad; a carer with tired eyes gets
keys at least 16 mm wide and a plain message after a wrong PIN. The digits live only in this
widget until "OK"; the app checks them against the hash beside the screen (a slow hash takes a
moment) and tells the session. While it checks, the pad says so and ignores every key.
"""

from __future__ import annotations

import functools
from typing import Any

from kivy.uix.gridlayout import GridLayout

from klick.pin import MAX_DIGITS
from launcher import theme
from launcher.screens.layout import Frame
from launcher.screens.widgets import BigButton, Screen, Text, keep_same_size, place
from launcher.session import PIN_TRIES

#: A dot every font has (Roboto has no "●"), drawn large.
DOT = "•"


def masked(digits: str) -> str:
    return " ".join(DOT for _ in digits)


class PinScreen(Screen):
    def __init__(self, ctx: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.ctx = ctx
        s, w, f = ctx.sizes, ctx.w, Frame.of(ctx)
        W, H, m = f.width, f.height, f.margin
        self.digits = ""
        gap = max(8, s.margin // 3)
        key_w, key_h = round(s.touch * 1.4), s.touch
        pad_w, pad_h = 3 * key_w + 2 * gap, 4 * key_h + 3 * gap
        if f.portrait:
            # The pad in the middle, the words above it, Cancel below.
            pad = (W / 2 - pad_w / 2, f.bar + m / 2, pad_w, pad_h)
            words_bottom = f.bar + m / 2 + pad_h + m / 2
            title, ask, dots, message = f.rows(words_bottom, H - m, [0.26, 0.22, 0.26, 0.26])
        else:
            pad = (0.96 * W - pad_w, (H - pad_h) / 2, pad_w, pad_h)
            left = (m, f.bar, pad[0] - 2 * m, H - m - f.bar)
            title, ask, dots, message = (
                (left[0], y, left[2], h) for (_x, y, _w, h) in f.rows(left[1], left[1] + left[3], [0.2, 0.18, 0.22, 0.4])
            )
        self.title = place(Text(w("Staff card"), font_size=s.px("title"), bold=True, halign="left"), title, W, H)
        self.ask = place(Text(w("Type the staff PIN."), font_size=s.px("body"), halign="left"), ask, W, H)
        self.dots = place(Text(font_size=round(s.px("title") * 2), bold=True, halign="left"), dots, W, H)
        self.message = place(
            Text(font_size=s.px("body"), color=theme.rgba(theme.TEXT_SOFT), halign="left"),
            message,
            W,
            H,
        )
        self.cancel = BigButton(
            w("Cancel"),
            ctx.on_carer_leave,
            font_px=s.px("button"),
            touch=s.touch,
            max_width=(pad[0] - 2 * m) if not f.portrait else 0.45 * W,
            pos_hint={"x": m / W, "y": f.button_y / H},
        )
        self.pad = GridLayout(cols=3, spacing=gap)
        place(self.pad, pad, W, H)
        self.keys: dict[str, BigButton] = {}
        for label in ("1", "2", "3", "4", "5", "6", "7", "8", "9", "erase", "0", "ok"):
            text = {"erase": w("Erase"), "ok": w("OK")}.get(label, label)
            # Every key the same size whatever its word ("Sudda" is wider than "1").
            button = BigButton(
                text,
                functools.partial(self.press, label),
                font_px=s.px("body") if label in ("erase", "ok") else s.px("button"),
                touch=s.touch,
                size_hint=(1, 1),
            )
            self.keys[label] = button
            self.pad.add_widget(button)
        # "Erase" and "OK" at one size, the largest both fit.
        keep_same_size([self.keys["erase"], self.keys["ok"]], s.px("body"))
        for child in (self.title, self.ask, self.dots, self.message, self.cancel, self.pad):
            self.add_widget(child)
        self._screen = None

    def press(self, key: str) -> None:
        if getattr(self._screen, "checking", False):
            return  # one PIN at a time: keys pressed while it is checked count for nothing
        if key == "erase":
            self.digits = self.digits[:-1]
        elif key == "ok":
            if self.digits:
                digits, self.digits = self.digits, ""
                self.dots.say("")
                self.ctx.on_pin(digits)
                return
        elif len(self.digits) < MAX_DIGITS:
            self.digits += key
        self.dots.say(masked(self.digits))

    def update(self, session: Any) -> None:
        screen = session.screen
        if screen is self._screen:
            return
        self._screen = screen
        self.digits = ""
        self.dots.say("")
        w = self.ctx.w
        left = PIN_TRIES - screen.failures
        if screen.checking:
            self.message.say(w("Checking…"))
        elif screen.failures == 0:
            self.message.say("")
        elif left == 1:
            self.message.say(w("That was not the right PIN. One try left."))
        else:
            self.message.say(w("That was not the right PIN. {left} tries left.", left=left))
