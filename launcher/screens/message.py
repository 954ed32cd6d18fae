"""The calm message screens: an unknown card, a lost reader, an action or call that could not
start, a call the other side ended, a carer card on a tablet without a carer PIN, and a card
file that cannot be read."""

from __future__ import annotations

from typing import Any

from launcher import theme
from launcher.screens.widgets import BigButton, Filled, InfoSymbol, Text
from launcher.session import ActionFailed, CallEnded, CardsUnreadable, CarerNotSetUp, ReaderLost, UnknownCard
from launcher.wording import TRY_LATER, ended_words, failure_words


class MessageScreen(Filled):
    def __init__(self, ctx: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.ctx = ctx
        s = ctx.sizes
        self.symbol = InfoSymbol(
            size_hint=(None, None), size=(s.touch * 1.6, s.touch * 1.6), pos_hint={"center_x": 0.5, "top": 0.94}
        )
        self.title = Text(
            text="", font_size=s.px("title"), bold=True, size_hint=(0.9, 0.2), pos_hint={"center_x": 0.5, "top": 0.7}
        )
        self.body = Text(text="", font_size=s.px("body"), size_hint=(0.86, 0.2), pos_hint={"center_x": 0.5, "top": 0.5})
        self.hint = Text(
            text="",
            font_size=s.px("body"),
            color=theme.rgba(theme.TEXT_SOFT),
            size_hint=(0.86, 0.16),
            pos_hint={"center_x": 0.5, "top": 0.29},
        )
        self.home = BigButton(
            ctx.w("Home"), ctx.on_home, font_px=s.px("button"), touch=s.touch, pos_hint={"right": 0.97, "y": 0.04}
        )
        for child in (self.symbol, self.title, self.body, self.hint):
            self.add_widget(child)
        self._has_home = False

    def update(self, session: Any) -> None:
        w, screen = self.ctx.w, session.screen
        take_out = w("Take out the card to go back.") if session.mode == "slot" else w("Press Home to go back.")
        if isinstance(screen, UnknownCard):
            self.symbol.set_kind("unknown")
            if screen.why == "disabled":
                self.title.text = w("This card is switched off.")
            else:
                self.title.text = w("This card is not set up yet.")
            self.body.text = w("Ask your contact person for help.")
            self.hint.text = take_out
        elif isinstance(screen, ReaderLost):
            self.symbol.set_kind("reader")
            self.title.text = w("The card reader is not answering right now.")
            self.body.text = w("It usually comes back by itself. You do not need to do anything.")
            contact = self.ctx.cfg.help_contact
            self.hint.text = w("Need help? Call {contact}.", contact=contact) if contact else ""
        elif isinstance(screen, CardsUnreadable):
            # In place of home until the card file is fixed: nothing for the resident to do.
            self.symbol.set_kind("failed")
            self.title.text = w("The cards cannot be read right now.")
            self.body.text = w("The list of cards on the tablet has a mistake. You do not need to do anything.")
            contact = self.ctx.cfg.help_contact
            self.hint.text = w("Need help? Call {contact}.", contact=contact) if contact else ""
        elif isinstance(screen, CarerNotSetUp):
            # Seen only by a carer holding a staff card: say exactly what to do, and nothing else.
            self.symbol.set_kind("unknown")
            self.title.text = w("Carer mode is not set up on this tablet.")
            self.body.text = w("Choose a PIN on a computer with the command: klick carer pin")
            self.hint.text = take_out
        elif isinstance(screen, ActionFailed):
            self.symbol.set_kind("failed")
            self.title.text, self.body.text = failure_words(w, screen.card, screen.reason, session.mode)
            # "Take out the card and try again later." already says how to go back.
            self.hint.text = "" if screen.reason in TRY_LATER and session.mode == "slot" else take_out
        elif isinstance(screen, CallEnded):
            self.symbol.set_kind("ended")
            self.title.text = ended_words(w, screen.card)
            self.body.text = ""
            self.hint.text = take_out
        want_home = session.shows_home_button
        if want_home != self._has_home:
            self._has_home = want_home
            (self.add_widget if want_home else self.remove_widget)(self.home)
