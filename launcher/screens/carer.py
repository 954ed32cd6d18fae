"""Carer mode on the tablet: how the reader is, which unknown cards were put in, and programming
the newest one with a few big buttons (and at most one text field, for a web address).

One page at a time, like every screen here: menu → what should the card do → (folder | address)
→ done. The page lives in this widget; what a choice makes and how it is saved is
:mod:`launcher.carer`, pure and tested without a screen.
"""

from __future__ import annotations

import datetime as _dt
import logging
from typing import Any

from kivy.uix.boxlayout import BoxLayout
from kivy.uix.gridlayout import GridLayout

from cards.describe import describe
from launcher import carer, theme
from launcher.screens.keyboard import BigTextInput, above_keyboard
from launcher.screens.widgets import BigButton, Filled, Text

log = logging.getLogger("klick.launcher")

#: Unknown cards listed on the menu page (the newest is the one programmed).
LISTED = 3


class CarerScreen(Filled):
    def __init__(self, ctx: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.ctx = ctx
        self.page = "menu"
        self.card_uid: str | None = None
        self.entry: BigTextInput | None = None
        self._screen = None

    # -- pages --------------------------------------------------------------------------------
    def update(self, session: Any) -> None:
        if session.screen is not self._screen:  # carer mode (re)opened: start at the menu
            self._screen = session.screen
            self.show("menu")
        elif self.page == "menu":
            self.show("menu")  # the reader's state or the list of unknown cards changed

    def show(self, page: str, **info: Any) -> None:
        self.page = page
        if self.entry is not None:
            self.entry.focus = False
            self.entry = None
        self.clear_widgets()
        getattr(self, f"_page_{page}")(**info)

    def _title(self, text: str, *, width: float = 0.7, top: float = 0.96, height: float = 0.12, font: str = "title") -> Text:
        s = self.ctx.sizes
        label = Text(
            text=text, font_size=s.px(font), bold=True, halign="left", size_hint=(width, height), pos_hint={"x": 0.04, "top": top}
        )
        self.add_widget(label)
        return label

    def _line(self, text: str, top: float, *, height: float = 0.08, soft: bool = False, width: float = 0.92) -> Text:
        s = self.ctx.sizes
        label = Text(
            text=text,
            font_size=s.px("body"),
            halign="left",
            size_hint=(width, height),
            pos_hint={"x": 0.04, "top": top},
            color=theme.rgba(theme.TEXT_SOFT if soft else theme.TEXT),
        )
        self.add_widget(label)
        return label

    def _button(self, text: str, action: Any, **kw: Any) -> BigButton:
        s = self.ctx.sizes
        button = BigButton(text, action, font_px=s.px("button"), touch=s.touch, **kw)
        return button

    def _corner(self, text: str, action: Any) -> None:
        self.add_widget(self._button(text, action, pos_hint={"right": 0.97, "top": 0.96}))

    def _page_menu(self) -> None:
        w, session = self.ctx.w, self.ctx.session
        self._title(w("Carer mode"))
        self._corner(w("Done"), self.ctx.on_carer_leave)
        ready = session.reader == "connected" and session.bridge_connected
        self._line(w("The card reader is ready") if ready else w("Waiting for the card reader"), 0.82, soft=True)
        top = 0.0
        if session.card_file != "ok":
            # The carer is the one who can get the file fixed; the resident never sees this.
            self._line(w("The card file has a mistake. The tablet uses the cards it had."), 0.75, height=0.1)
            top = 0.1
        unknown = session.unknown_cards()
        if not unknown:
            self._line(w("No unknown cards yet."), 0.68 - top)
            self._line(
                w("Put the new card in once and take it out. Then put in the staff card again."),
                0.58 - top,
                height=0.2,
                soft=True,
            )
            return
        self._line(w("Unknown cards, newest first:"), 0.7 - top)
        for n, seen in enumerate(unknown[:LISTED]):
            when = _dt.datetime.fromtimestamp(seen.at).strftime("%H:%M")
            self._line(w("Card {uid}, at {time}", uid=seen.uid, time=when), 0.61 - top - n * 0.08, height=0.08, soft=n > 0)
        newest = unknown[0].uid
        self.add_widget(
            self._button(w("Program the newest unknown card"), lambda: self._program(newest), pos_hint={"x": 0.04, "y": 0.05})
        )

    def _program(self, uid: str) -> None:
        self.card_uid = uid
        self.show("choose")

    def _page_choose(self) -> None:
        w, s = self.ctx.w, self.ctx.sizes
        self._title(w("What should the card do?"))
        self._line(w("Card {uid}", uid=self.card_uid), 0.83, soft=True)
        self._corner(w("Back"), lambda: self.show("menu"))
        grid = GridLayout(cols=2, spacing=s.margin, size_hint=(0.92, 0.6), pos_hint={"center_x": 0.5, "y": 0.05})
        names = {"photos": w("Show photos"), "svt1": w("SVT1 live"), "rapport": w("Rapport (news)"), "web": w("A web page")}
        for choice in carer.CHOICES:
            grid.add_widget(self._button(names[choice], lambda c=choice: self._choose(c), size_hint=(1, 1)))
        self.add_widget(grid)

    def _choose(self, choice: str) -> None:
        if choice == "photos":
            self.show("photos")
        elif choice == "web":
            self.show("web")
        else:
            self._save(carer.card_for(self.card_uid, choice))

    def _page_photos(self) -> None:
        w, s = self.ctx.w, self.ctx.sizes
        self._title(w("Which folder of photos?"))
        self._corner(w("Back"), lambda: self.show("choose"))
        root = carer.photo_root(self.ctx.cfg)
        folders = carer.photo_folders(root, self.ctx.registry.registry.cards)
        if not folders:
            self._line(w("There are no folders with photos yet."), 0.78)
            self._line(w("Put a folder of pictures in {path} and try again.", path=root), 0.66, height=0.2, soft=True)
            return
        grid = GridLayout(cols=2, spacing=s.margin // 2, size_hint=(0.92, 0.7), pos_hint={"center_x": 0.5, "y": 0.05})
        for folder in folders:
            grid.add_widget(
                self._button(
                    folder.name, lambda f=folder: self._save(carer.card_for(self.card_uid, "photos", f)), size_hint=(1, 1)
                )
            )
        self.add_widget(grid)

    def _page_web(self, problem: str = "") -> None:
        w, s = self.ctx.w, self.ctx.sizes
        row, keyboard_top = above_keyboard(self.ctx)
        top_space = 0.985 - keyboard_top - row - 0.01
        # The keyboard covers the lower part: the words, the field and both buttons sit above it.
        self._title(
            problem or w("Type the web address, for example smhi.se"), width=0.92, top=0.985, height=top_space, font="body"
        )
        bar = BoxLayout(
            orientation="horizontal", spacing=s.margin // 2, size_hint=(0.94, row), pos_hint={"center_x": 0.5, "y": keyboard_top}
        )
        self.entry = BigTextInput(s, size_hint=(1, 1))
        self.entry.bind(on_text_validate=lambda *_: self._save_web())
        bar.add_widget(self.entry)
        bar.add_widget(self._button(w("Save"), self._save_web, size_hint=(None, 1)))
        bar.add_widget(self._button(w("Back"), lambda: self.show("choose"), size_hint=(None, 1)))
        self.add_widget(bar)
        self.entry.focus = True

    def _save_web(self) -> None:
        text = self.entry.text if self.entry is not None else ""
        try:
            card = carer.card_for(self.card_uid, "web", text)
        except carer.ProgramError:
            self.show("web", problem=self.ctx.w("That does not look like a web address. Try again, for example smhi.se"))
            return
        self._save(card)

    def _save(self, card: Any) -> None:
        try:
            self.ctx.save_carer_card(card)
        except carer.ProgramError as exc:
            log.warning("The card %s was not programmed: %s (%s)", card.uid, exc.reason, exc.detail)
            self.show("problem", reason=exc.reason)
            return
        self.show("saved", card=card)

    def _page_saved(self, card: Any) -> None:
        w = self.ctx.w
        self._title(w("Done! The card is ready."))
        self._corner(w("Done"), self.ctx.on_carer_leave)
        self._line(f"{card.label}: {describe(card, self.ctx.cfg.locale)}", 0.78, height=0.16)
        self._line(w("Take out the staff card and put in the new card to try it."), 0.58, height=0.2, soft=True)
        self.add_widget(self._button(w("Program another card"), lambda: self.show("menu"), pos_hint={"x": 0.04, "y": 0.05}))

    def _page_problem(self, reason: str) -> None:
        w = self.ctx.w
        self._title(w("The card was not programmed."))
        self._corner(w("Back"), lambda: self.show("menu"))
        text = {
            "known": w("This card has been set up already, on another device or a computer."),
            "card_file": w("The card file on this tablet has a mistake. Open it with klick carer on a computer."),
        }.get(reason, w("Something on the tablet stopped it."))
        self._line(text, 0.78, height=0.25)
