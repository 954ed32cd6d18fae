"""The carer's PIN pad: big digits, the PIN shown only as dots, and "Cancel" always in reach.

A resident who finds a staff card gets no further than this pad; a carer with tired eyes gets
keys at least 16 mm wide and a plain message after a wrong PIN. The digits live only in this
widget until "OK"; the app checks them against the hash beside the screen (a slow hash takes a
moment) and tells the session. While it checks, the pad says so and ignores every key.
"""

from __future__ import annotations

from typing import Any

from kivy.uix.gridlayout import GridLayout

from klick.pin import MAX_DIGITS
from launcher import theme
from launcher.screens.widgets import BigButton, Filled, Text
from launcher.session import PIN_TRIES

#: A dot every font has (Roboto has no "●"), drawn large.
DOT = "•"


def masked(digits: str) -> str:
    return " ".join(DOT for _ in digits)


class PinScreen(Filled):
    def __init__(self, ctx: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.ctx = ctx
        s, w = ctx.sizes, ctx.w
        self.digits = ""
        self.title = Text(
            text=w("Staff card"), font_size=s.px("title"), bold=True, size_hint=(0.5, 0.14), pos_hint={"x": 0.03, "top": 0.95}
        )
        self.ask = Text(
            text=w("Type the carer PIN."), font_size=s.px("body"), size_hint=(0.5, 0.12), pos_hint={"x": 0.03, "top": 0.8}
        )
        self.dots = Text(
            text="", font_size=round(s.px("title") * 2), bold=True, size_hint=(0.5, 0.14), pos_hint={"x": 0.03, "top": 0.66}
        )
        self.message = Text(
            text="",
            font_size=s.px("body"),
            color=theme.rgba(theme.TEXT_SOFT),
            size_hint=(0.5, 0.22),
            pos_hint={"x": 0.03, "top": 0.5},
        )
        self.cancel = BigButton(
            w("Cancel"), ctx.on_carer_leave, font_px=s.px("button"), touch=s.touch, pos_hint={"x": 0.04, "y": 0.05}
        )
        gap = max(8, s.margin // 3)
        key_w, key_h = round(s.touch * 1.4), s.touch
        self.pad = GridLayout(
            cols=3,
            spacing=gap,
            size_hint=(None, None),
            size=(3 * key_w + 2 * gap, 4 * key_h + 3 * gap),
            pos_hint={"right": 0.96, "center_y": 0.5},
        )
        self.keys: dict[str, BigButton] = {}
        for label in ("1", "2", "3", "4", "5", "6", "7", "8", "9", "erase", "0", "ok"):
            text = {"erase": w("Erase"), "ok": w("OK")}.get(label, label)
            # Every key the same size whatever its word ("Sudda" is wider than "1").
            button = BigButton(text, lambda k=label: self.press(k), font_px=s.px("button"), touch=s.touch, size_hint=(1, 1))
            if label in ("erase", "ok"):
                button.font_size = s.px("body")
            self.keys[label] = button
            self.pad.add_widget(button)
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
                self.dots.text = ""
                self.ctx.on_pin(digits)
                return
        elif len(self.digits) < MAX_DIGITS:
            self.digits += key
        self.dots.text = masked(self.digits)

    def update(self, session: Any) -> None:
        screen = session.screen
        if screen is self._screen:
            return
        self._screen = screen
        self.digits = ""
        self.dots.text = ""
        w = self.ctx.w
        left = PIN_TRIES - screen.failures
        if screen.checking:
            self.message.text = w("Checking…")
        elif screen.failures == 0:
            self.message.text = ""
        elif left == 1:
            self.message.text = w("That was not the right PIN. One try left.")
        else:
            self.message.text = w("That was not the right PIN. {left} tries left.", left=left)
