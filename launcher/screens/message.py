"""The calm message screens: an unknown card, a lost or starting reader, an action or call that
could not start, a call the other side ended, a carer card on a tablet without a carer PIN, a
card file that cannot be read, and the thank-you after an answer.

A symbol on top, then the title, the explanation and a hint, each in its own box; the bottom
strip is kept for the Home button (tap mode).
"""

from __future__ import annotations

from typing import Any

from launcher import theme
from launcher.screens.layout import Frame
from launcher.screens.widgets import BigButton, InfoSymbol, Screen, Text, place
from launcher.session import (
    ActionFailed,
    CallEnded,
    CardsUnreadable,
    CarerNotSetUp,
    ReaderLost,
    ReaderStarting,
    Thanks,
    UnknownCard,
)
from launcher.wording import TRY_LATER, ended_words, failure_words


class MessageScreen(Screen):
    def __init__(self, ctx: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.ctx = ctx
        s, f = ctx.sizes, Frame.of(ctx)
        W, H, m = f.width, f.height, f.margin
        d = min(s.touch * 1.5, 0.2 * H, 0.3 * W)
        self.f, self.d = f, d
        self.symbol = place(InfoSymbol(), (W / 2 - d / 2, H - m - d, d, d), W, H)
        self.title = Text(font_size=s.px("title"), bold=True)
        self.body = Text(font_size=s.px("body"))
        self.hint = Text(font_size=s.px("body"), color=theme.rgba(theme.TEXT_SOFT))
        self._with_home: bool | None = None
        self._place_words(False)
        self.home = BigButton(
            ctx.w("Home"),
            ctx.on_home,
            font_px=s.px("button"),
            touch=s.touch,
            max_width=0.4 * W,
            pos_hint={"right": 0.97, "y": f.button_y / H},
        )
        for child in (self.symbol, self.title, self.body, self.hint):
            self.add_widget(child)
        self._has_home = False

    def _place_words(self, with_home: bool) -> None:
        """The words fill the screen under the symbol, above the Home button when it shows."""
        if with_home == self._with_home:
            return
        self._with_home = with_home
        f, m = self.f, self.f.margin
        # Upright there is room to spare: the words stand a little lower, under the symbol.
        top = f.height - m - self.d - m / 2 - (0.06 * f.height if f.portrait else 0)
        bottom = f.bar + m / 4 if with_home else m
        boxes = f.rows(bottom, top, [0.42, 0.34, 0.24], gap=m / 4)
        for widget, box in zip((self.title, self.body, self.hint), boxes):
            place(widget, box, f.width, f.height)

    def show(self, kind: str, title: str, body: str = "", hint: str = "") -> None:
        self.symbol.set_kind(kind)
        self.title.say(title)
        self.body.say(body)
        self.hint.say(hint)

    def update(self, session: Any) -> None:
        w, screen = self.ctx.w, session.screen
        take_out = w("Take out the card to go back.") if session.mode == "slot" else w("Press Home to go back.")
        contact = self.ctx.cfg.help_contact
        call = w("Need help? Call {contact}.", contact=contact) if contact else ""
        if isinstance(screen, UnknownCard):
            if screen.why == "disabled":
                title = w("This card is switched off.")
            else:
                title = w("This card is not set up yet.")
            self.show("unknown", title, w("Ask your contact person for help."), take_out)
        elif isinstance(screen, ReaderLost):
            self.show(
                "reader",
                w("The card reader is not answering right now."),
                w("It usually comes back by itself. You do not need to do anything."),
                call,
            )
        elif isinstance(screen, ReaderStarting):
            # In place of home while a card would do nothing: say so, calmly, and who can help.
            self.show(
                "reader",
                w("The card reader is starting…"),
                w("It usually comes back by itself. You do not need to do anything."),
                call,
            )
        elif isinstance(screen, CardsUnreadable):
            # In place of home until the card file is fixed: nothing for the resident to do.
            self.show(
                "failed",
                w("The cards cannot be read right now."),
                w("The list of cards on the tablet has a mistake. Ask your contact person for help."),
                call,
            )
        elif isinstance(screen, CarerNotSetUp):
            # Seen only by a carer holding a staff card: say exactly what to do, and nothing else.
            self.show(
                "unknown",
                w("Staff mode is not set up on this tablet."),
                w("Choose a PIN on a computer with the command: klick carer pin"),
                take_out,
            )
        elif isinstance(screen, ActionFailed):
            title, body = failure_words(w, screen.card, screen.reason, session.mode)
            if screen.reason == "exited":  # it ran, then closed: nothing went wrong to speak of
                self.show("ended", title, body, take_out)
            elif screen.reason in TRY_LATER:
                # "Take out the card and try again later." already says how to go back.
                self.show("failed", title, body, "" if session.mode == "slot" else take_out)
            else:  # it will not start by itself next time: who can help, as when the reader is lost
                self.show("failed", title, body, call or take_out)
        elif isinstance(screen, CallEnded):
            self.show("ended", ended_words(w, screen.card), "", take_out)
        elif isinstance(screen, Thanks):
            self.show("thanks", w("Thank you!"), w("Your answer helps us make the tablet better."))
        want_home = session.shows_home_button
        self._place_words(want_home)
        if want_home != self._has_home:
            self._has_home = want_home
            (self.add_widget if want_home else self.remove_widget)(self.home)
