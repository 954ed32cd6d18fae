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
from launcher.screens.layout import Frame
from launcher.screens.widgets import BigButton, Screen, Text, place

log = logging.getLogger("klick.launcher")

#: Unknown cards listed on the menu page (the newest is the one programmed).
LISTED = 3


class CarerScreen(Screen):
    def __init__(self, ctx: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.ctx = ctx
        self.f = Frame.of(ctx)
        self.page = "menu"
        #: The unknown card being programmed (set when "Program the newest" is pressed).
        self.card_uid = ""
        self.entry: BigTextInput | None = None
        self._screen = None
        self._lines: list[tuple[str, float, bool]] = []

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
        self._lines = []
        getattr(self, f"_page_{page}")(**info)
        self._flow()

    # -- building blocks -----------------------------------------------------------------------
    @property
    def _header_y(self) -> float:
        """The bottom of the header: the title and the corner button stand above it."""
        f = self.f
        return f.height - f.margin / 2 - f.touch

    def _corner_width(self) -> float:
        return 0.3 * self.f.width

    def _title(self, text: str) -> Text:
        s, f = self.ctx.sizes, self.f
        W, H, m = f.width, f.height, f.margin
        box = (m, self._header_y, W - 2 * m - self._corner_width() - m / 2, f.touch)
        label = place(Text(text, font_size=s.px("title"), bold=True, halign="left"), box, W, H)
        self.add_widget(label)
        return label

    def _line(self, text: str, share: float = 1.0, *, soft: bool = False) -> None:
        """A line of words below the header; the page's lines share the room between the header
        and the bottom strip by their ``share`` (1 is one line of words)."""
        self._lines.append((text, share, soft))

    def _flow(self) -> None:
        if not self._lines:
            return
        s, f = self.ctx.sizes, self.f
        W, H, m = f.width, f.height, f.margin
        top = self._header_y - m / 2
        bottom = f.bar + m / 4
        # A line wants about one and a half body lines of room; more room is left empty below.
        want = sum(share for _, share, _ in self._lines) * s.px("body") * 1.6
        room = top - bottom
        if want < room:
            bottom = top - want
        boxes = f.rows(bottom, top, [share for _, share, _ in self._lines])
        for (text, _share, soft), box in zip(self._lines, boxes):
            colour = theme.rgba(theme.TEXT_SOFT if soft else theme.TEXT)
            self.add_widget(place(Text(text, font_size=s.px("body"), halign="left", color=colour), box, W, H))

    def _button(self, text: str, action: Any, **kw: Any) -> BigButton:
        s = self.ctx.sizes
        kw.setdefault("max_width", self.f.width - 2 * self.f.margin)
        return BigButton(text, action, font_px=s.px("button"), touch=s.touch, **kw)

    def _corner(self, text: str, action: Any) -> None:
        f = self.f
        self.add_widget(
            self._button(
                text,
                action,
                max_width=self._corner_width(),
                pos_hint={"right": 1 - f.margin / f.width, "top": 1 - f.margin / 2 / f.height},
            )
        )

    def _bottom(self, text: str, action: Any) -> None:
        f = self.f
        self.add_widget(self._button(text, action, pos_hint={"x": f.margin / f.width, "y": f.button_y / f.height}))

    def _grid(self, top_share: float = 0.0) -> GridLayout:
        """Two columns of big buttons under the header (and under ``top_share`` of its room)."""
        s, f = self.ctx.sizes, self.f
        W, H, m = f.width, f.height, f.margin
        top = self._header_y - m / 2 - top_share * (self._header_y - f.margin)
        grid = GridLayout(cols=1 if f.portrait else 2, spacing=s.margin // 2)
        place(grid, (m, m, W - 2 * m, top - m), W, H)
        return grid

    # -- the pages -----------------------------------------------------------------------------
    def _page_menu(self) -> None:
        w, session = self.ctx.w, self.ctx.session
        self._title(w("Staff mode"))
        self._corner(w("Done"), self.ctx.on_carer_leave)
        ready = session.reader == "connected" and session.bridge_connected
        self._line(w("The card reader is ready") if ready else w("Waiting for the card reader"), soft=True)
        if session.card_file != "ok":
            # The carer is the one who can get the file fixed; the resident never sees this.
            self._line(w("The card file has a mistake. The tablet uses the cards it had."), 1.5)
        unknown = session.unknown_cards()
        if not unknown:
            self._line(w("No unknown cards yet."))
            self._line(w("Put the new card in once and take it out. Then put in the staff card again."), 2, soft=True)
            return
        self._line(w("Unknown cards, newest first:"))
        for n, seen in enumerate(unknown[:LISTED]):
            when = _dt.datetime.fromtimestamp(seen.at).strftime("%H:%M")
            self._line(w("Card {uid}, at {time}", uid=seen.uid, time=when), soft=n > 0)
        newest = unknown[0].uid
        self._bottom(w("Program the newest unknown card"), lambda: self._program(newest))

    def _program(self, uid: str) -> None:
        self.card_uid = uid
        self.show("choose")

    def _page_choose(self) -> None:
        w = self.ctx.w
        self._title(w("What should the card do?"))
        self._corner(w("Back"), lambda: self.show("menu"))
        s, f = self.ctx.sizes, self.f
        W, H, m = f.width, f.height, f.margin
        line_h = s.px("body") * 1.5
        uid_box = (m, self._header_y - m / 4 - line_h, W - 2 * m, line_h)
        self.add_widget(
            place(
                Text(
                    w("Card {uid}", uid=self.card_uid), font_size=s.px("body"), halign="left", color=theme.rgba(theme.TEXT_SOFT)
                ),
                uid_box,
                W,
                H,
            )
        )
        grid = GridLayout(cols=1 if f.portrait else 2, spacing=s.margin // 2)
        place(grid, (m, m, W - 2 * m, uid_box[1] - m / 2 - m), W, H)
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
        w = self.ctx.w
        self._title(w("Which folder of photos?"))
        self._corner(w("Back"), lambda: self.show("choose"))
        root = carer.photo_root(self.ctx.cfg)
        folders = carer.photo_folders(root, self.ctx.registry.registry.cards)
        if not folders:
            self._line(w("There are no folders with photos yet."))
            self._line(w("Put a folder of pictures in {path} and try again.", path=root), 2, soft=True)
            return
        grid = self._grid()
        for folder in folders:
            grid.add_widget(
                self._button(
                    folder.name, lambda f=folder: self._save(carer.card_for(self.card_uid, "photos", f)), size_hint=(1, 1)
                )
            )
        self.add_widget(grid)

    def _page_web(self, problem: str = "") -> None:
        w, s, f = self.ctx.w, self.ctx.sizes, self.f
        W, H, m = f.width, f.height, f.margin
        row, keyboard_top = above_keyboard(self.ctx)
        row_px, top_px = row * H, keyboard_top * H
        # The keyboard covers the lower part: the words, the field and both buttons sit above it.
        words_y = top_px + row_px + m / 4
        title = Text(problem or w("Type the web address, for example smhi.se"), font_size=s.px("body"), bold=True, halign="left")
        self.add_widget(place(title, (m, words_y, W - 2 * m, H - m / 2 - words_y), W, H))
        bar = BoxLayout(orientation="horizontal", spacing=s.margin // 2)
        place(bar, (0.03 * W, top_px, 0.94 * W, row_px), W, H)
        self.entry = BigTextInput(s, size_hint=(1, 1))
        self.entry.bind(on_text_validate=lambda *_: self._save_web())
        save = self._button(w("Save"), self._save_web, size_hint=(None, 1), max_width=0.25 * W)
        back = self._button(w("Back"), lambda: self.show("choose"), size_hint=(None, 1), max_width=0.25 * W)
        bar.add_widget(self.entry)
        bar.add_widget(save)
        bar.add_widget(back)
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
        """Saved beside the screen (it may wait on a card set being unpacked): "Saving…" meanwhile."""
        self.show("saving")
        opened = self._screen

        def saved(error: Any) -> None:
            if error is not None:
                log.warning("The card %s was not programmed: %s (%s)", card.uid, error.reason, error.detail)
            if self._screen is not opened or self.page != "saving":
                return  # carer mode was left (or opened again) meanwhile
            if error is not None:
                self.show("problem", reason=error.reason)
            else:
                self.show("saved", card=card)

        self.ctx.save_carer_card(card, saved)

    def _page_saving(self) -> None:
        self._title(self.ctx.w("Saving…"))

    def _page_saved(self, card: Any) -> None:
        w = self.ctx.w
        self._title(w("Done! The card is ready."))
        self._corner(w("Done"), self.ctx.on_carer_leave)
        self._line(f"{card.label}: {describe(card, self.ctx.cfg.locale)}", 2)
        self._line(w("Take out the staff card and put in the new card to try it."), 2, soft=True)
        self._bottom(w("Program another card"), lambda: self.show("menu"))

    def _page_problem(self, reason: str) -> None:
        w = self.ctx.w
        self._title(w("The card was not programmed."))
        self._corner(w("Back"), lambda: self.show("menu"))
        text = {
            "known": w("This card has been set up already, on another device or a computer."),
            "card_file": w("The card file on this tablet has a mistake. Open it with klick carer on a computer."),
            "busy": w("The cards are being changed from somewhere else right now. Try again in a minute."),
        }.get(reason, w("Something on the tablet stopped it."))
        self._line(text, 3)
