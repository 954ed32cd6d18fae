"""The carer's window (Kivy): the cards as small faces, and the few steps to program a new one.

A normal desktop window for mouse and keyboard, but with the launcher's calm colours, large
words and large targets: carers are often the residents' own children, not young either.
Everything the window decides is in :mod:`cards.carer.model` and :mod:`cards.carer.session`;
this module only draws and forwards clicks, keys and card reads to them.

Keys: Escape goes back, Ctrl+S saves, Ctrl+Z undoes, Ctrl+N programs a new card.
"""

from __future__ import annotations

import os

os.environ.setdefault("KIVY_NO_ARGS", "1")

from kivy.config import Config  # noqa: E402  (settings must precede the window's creation)

Config.set("kivy", "exit_on_escape", "0")
Config.set("input", "mouse", "mouse,disable_multitouch")
Config.set("graphics", "width", "1280")
Config.set("graphics", "height", "820")

import threading  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

from kivy.app import App  # noqa: E402
from kivy.clock import Clock  # noqa: E402
from kivy.core.window import Window  # noqa: E402
from kivy.graphics import Color, InstructionGroup, Line, Rectangle, RoundedRectangle  # noqa: E402
from kivy.uix.behaviors import ButtonBehavior  # noqa: E402
from kivy.uix.boxlayout import BoxLayout  # noqa: E402
from kivy.uix.button import Button  # noqa: E402
from kivy.uix.filechooser import FileChooserIconView  # noqa: E402
from kivy.uix.gridlayout import GridLayout  # noqa: E402
from kivy.uix.image import Image  # noqa: E402
from kivy.uix.label import Label  # noqa: E402
from kivy.uix.popup import Popup  # noqa: E402
from kivy.uix.relativelayout import RelativeLayout  # noqa: E402
from kivy.uix.scrollview import ScrollView  # noqa: E402
from kivy.uix.textinput import TextInput  # noqa: E402
from kivy.uix.widget import Widget  # noqa: E402

from cards.carer.model import (  # noqa: E402
    CHANNELS,
    KINDS,
    PROVIDER_CHOICES,
    SWATCHES,
    CardForm,
    Face,
    check_form,
    face_of,
    form_from_card,
    new_form,
    visible_fields,
)
from cards.carer.reader import CardSource  # noqa: E402
from cards.carer.session import EditorSession, SessionError  # noqa: E402
from cards.carer.words import words  # noqa: E402
from cards.colours import PALETTE  # noqa: E402
from cards.describe import describe  # noqa: E402
from klick.config import Config as KlickConfig  # noqa: E402
from launcher.theme import BG, BUTTON_BG, BUTTON_TEXT, TEXT, TEXT_SOFT, card_text_style, rgba  # noqa: E402

__all__ = ["CarerApp", "CardFace", "run_app", "ERROR_TEXT", "WARNING_TEXT", "PICTURE_TYPES"]

#: Messages next to fields: a soft red and a soft yellow, each over 8:1 on the navy background.
ERROR_TEXT = "#FFB4AB"
WARNING_TEXT = "#FFE08A"
INPUT_BG = "#FFFFFF"
INPUT_TEXT = "#111111"
SELECTED = "#FFFDF7"
PICTURE_TYPES = ["*.png", "*.jpg", "*.jpeg", "*.PNG", "*.JPG", "*.JPEG"]

FONT = {"title": 38, "heading": 30, "body": 24, "button": 26, "small": 20}
BUTTON_H = 64
_CHANNEL_NAMES = {
    "svt1": "SVT1",
    "svt2": "SVT2",
    "svtbarn": "SVT Barn",
    "kunskapskanalen": "Kunskaps-\nkanalen",
    "svt24": "SVT24",
}
_PROVIDER_NAMES = {"jitsi": "Jitsi", "teams": "Teams", "skype": "Skype"}
_COLOUR_NAMES_SV = {
    "blue": "Blå",
    "green": "Grön",
    "red": "Röd",
    "purple": "Lila",
    "orange": "Orange",
    "yellow": "Gul",
    "black": "Svart",
    "white": "Vit",
}


# --- small widgets ------------------------------------------------------------------------------


class Plain(Label):
    """Text that wraps to its width and is as tall as it needs."""

    def __init__(self, text: str = "", size: str = "body", colour: str = TEXT, **kw) -> None:
        kw.setdefault("halign", "left")
        kw.setdefault("valign", "middle")
        super().__init__(text=text, font_size=FONT[size], color=rgba(colour), size_hint_y=None, **kw)
        self.bind(
            width=lambda *_: setattr(self, "text_size", (self.width, None)),
            texture_size=lambda *_: setattr(self, "height", max(self.texture_size[1], 1)),
        )
        self.texture_update()
        self.height = max(self.texture_size[1], 1)


class BigButton(Button):
    """A light plate with dark words: the one kind of thing to press, everywhere."""

    def __init__(
        self, text: str, on_press=None, selected: bool = False, fill: str = BUTTON_BG, ink: str = BUTTON_TEXT, **kw
    ) -> None:
        kw.setdefault("size_hint_y", None)
        kw.setdefault("height", BUTTON_H)
        kw.setdefault("font_size", FONT["button"])
        super().__init__(
            text=text,
            background_normal="",
            background_down="",
            background_disabled_normal="",
            background_color=(0, 0, 0, 0),
            color=rgba(ink),
            halign="center",
            valign="middle",
            **kw,
        )
        self.fill, self.selected = fill, selected
        self.bind(pos=self._draw, size=self._draw, state=self._draw, disabled=self._draw)
        self.bind(size=lambda *_: setattr(self, "text_size", (self.width - 16, None)))
        if on_press is not None:
            self.bind(on_release=lambda *_: on_press())
        self._draw()

    def _draw(self, *_) -> None:
        self.canvas.before.clear()
        with self.canvas.before:
            alpha = 0.45 if self.disabled else (0.8 if self.state == "down" else 1.0)
            Color(*rgba(self.fill, alpha))
            RoundedRectangle(pos=self.pos, size=self.size, radius=[10])
            if self.selected:
                Color(*rgba(SELECTED))
                Line(rounded_rectangle=(self.x - 5, self.y - 5, self.width + 10, self.height + 10, 14), width=3)


class CardFace(RelativeLayout):
    """A card as it will look: its colour, picture and label, drawn as the printed card is laid out."""

    def __init__(self, face: Face, **kw) -> None:
        super().__init__(**kw)
        self.face = face
        self.picture = Image(fit_mode="contain") if face.picture else None
        if self.picture is not None:
            self.picture.source = str(face.picture)
            self.add_widget(self.picture)
        self.label = Label(text=face.label, bold=True, halign="center", valign="middle")
        self.add_widget(self.label)
        # Our own group: canvas.before also holds RelativeLayout's PushMatrix, which must stay.
        self.back = InstructionGroup()
        self.canvas.before.add(self.back)
        self.bind(size=self._layout)
        self._layout()

    def _layout(self, *_) -> None:
        w, h = self.size
        style = card_text_style(self.face.colour)
        has_pic = self.picture is not None
        text_w = w * (0.56 if has_pic else 0.9)
        text_x = w * (0.42 if has_pic else 0.05)
        if has_pic:
            self.picture.size_hint = (None, None)
            self.picture.size = (w * 0.36, h * 0.8)
            self.picture.pos = (w * 0.04, h * 0.1)
        size = max(12, int(h * 0.26))
        self.label.color = rgba(style.text)
        self.label.size_hint = (None, None)
        self.label.size = (text_w, h * 0.8)
        self.label.pos = (text_x, h * 0.1)
        self.label.text_size = (text_w, None)
        # Shrink a long label until it fits, as the printed card does.
        while size > 12:
            self.label.font_size = size
            self.label.texture_update()
            if self.label.texture_size[0] <= text_w and self.label.texture_size[1] <= h * 0.8:
                break
            size -= 2
        self.back.clear()
        radius = max(6, h * 0.06)
        self.back.add(Color(*rgba(self.face.colour)))
        self.back.add(RoundedRectangle(pos=(0, 0), size=self.size, radius=[radius]))
        self.back.add(Color(*rgba(TEXT_SOFT)))
        self.back.add(Line(rounded_rectangle=(0, 0, w, h, radius), width=1.5))
        if style.band and self.face.label:
            th = self.label.texture_size[1] + 12
            self.back.add(Color(*rgba(style.band)))
            self.back.add(Rectangle(pos=(text_x - 4, h / 2 - th / 2), size=(text_w + 8, th)))


class CardTile(ButtonBehavior, BoxLayout):
    """One card in the list: its face, and below it what it does in words. Click to change it."""

    def __init__(self, face: Face, uid: str, on_press, **kw) -> None:
        super().__init__(orientation="vertical", spacing=6, size_hint=(None, None), size=(330, 290), **kw)
        self.card_uid = uid
        self.add_widget(CardFace(face, size_hint=(None, None), size=(330, 208)))
        self.add_widget(Plain(face.words or " ", "small", TEXT, halign="center"))
        self.bind(on_release=lambda *_: on_press(uid))


class Field(BoxLayout):
    """A caption, the thing to fill in, and the place for the message about it."""

    def __init__(self, caption: str, body: Widget, **kw) -> None:
        super().__init__(orientation="vertical", spacing=4, size_hint_y=None, **kw)
        self.caption = Plain(caption, "body", TEXT_SOFT)
        self.body = body
        self.message = Plain("", "body", ERROR_TEXT, bold=True)
        for child in (self.caption, body, self.message):
            self.add_widget(child)
            child.bind(height=self._fit)
        self._fit()

    def _fit(self, *_) -> None:
        self.height = sum(c.height for c in self.children) + self.spacing * 2

    def show(self, errors: list[str], warnings: list[str]) -> None:
        lines = errors or warnings
        self.message.color = rgba(ERROR_TEXT if errors else WARNING_TEXT)
        self.message.text = "\n".join(lines)
        if not lines:
            self.message.height = 1


def text_box(text: str, on_text, hint: str = "") -> TextInput:
    box = TextInput(
        multiline=False,
        font_size=FONT["body"],
        size_hint_y=None,
        height=52,
        background_normal="",
        background_active="",
        background_color=rgba(INPUT_BG),
        foreground_color=rgba(INPUT_TEXT),
        cursor_color=rgba(INPUT_TEXT),
        hint_text=hint,
        padding=[12, 12, 12, 12],
        write_tab=False,
    )
    # The text goes in after the font: given together, Kivy lays it out in its default size.
    box.text = text
    box.bind(text=lambda _w, value: on_text(value))
    return box


def row(*widgets: Widget, height: int = BUTTON_H, spacing: int = 14) -> BoxLayout:
    box = BoxLayout(orientation="horizontal", spacing=spacing, size_hint_y=None, height=height)
    for widget in widgets:
        box.add_widget(widget)
    return box


# --- the app ------------------------------------------------------------------------------------


class CarerApp(App):
    """Pages: ``list`` (the cards), ``wait`` (put the card on the reader), ``kind``, ``edit``.

    ``self.w`` names the widgets of the page on show, for keys and for tests.
    """

    def __init__(
        self, cfg: KlickConfig, session: EditorSession, *, card_source: bool = True, push: Callable | None = None, **kw
    ) -> None:
        super().__init__(**kw)
        self.cfg = cfg
        #: Sends the card set to a tablet through the fleet (fleet.push.carer_push), or None: no button.
        self.push = push
        self.locale = cfg.locale if cfg.locale in ("sv", "en") else "sv"
        self.session = session
        self.page = ""
        self.w: dict[str, Widget] = {}
        self.fields: dict[str, Field] = {}
        self.form: CardForm | None = None
        self.shown_errors = False
        self.reader_text = words("reader_direct", self.locale, state=words("state_starting", self.locale))
        self.source = CardSource(cfg, self._card_from_thread, self._status_from_thread) if card_source else None
        if self.source is None:
            self.reader_text = ""
        self.title = words("title", self.locale)

    def t(self, key: str, **fields: object) -> str:
        return words(key, self.locale, **fields)

    # ---- frame ----------------------------------------------------------------------------

    def build(self):
        Window.clearcolor = rgba(BG)
        root = BoxLayout(orientation="vertical", padding=[28, 20, 28, 16], spacing=12)
        self.body = BoxLayout(orientation="vertical")
        self.message = Plain("", "body", TEXT)
        self.status = Plain(self.reader_text, "small", TEXT_SOFT)
        root.add_widget(self.body)
        root.add_widget(self.message)
        root.add_widget(self.status)
        Window.bind(on_key_down=self._on_key)
        self.show_list()
        if self.source is not None:
            self.source.start()
        return root

    def on_stop(self) -> None:
        if self.source is not None:
            self.source.stop()

    def say(self, text: str, colour: str = TEXT) -> None:
        self.message.text = text
        self.message.color = rgba(colour)

    def _set_page(self, name: str, widget: Widget) -> None:
        self.page = name
        self.body.clear_widgets()
        self.body.add_widget(widget)

    # ---- reader (called from its thread) --------------------------------------------------

    def _card_from_thread(self, uid: str) -> None:
        Clock.schedule_once(lambda _dt: self.card_read(uid))

    def _status_from_thread(self, via: str, state: str, detail: str) -> None:
        def show(_dt):
            key = "reader_bridge" if via == "bridge" else "reader_direct"
            self.reader_text = self.t(key, state=self.t(f"state_{state}") if f"state_{state}" in _STATES else state)
            if state != "connected" and detail:
                self.reader_text += f" — {detail}"
            self.status.text = self.reader_text

        Clock.schedule_once(show)

    def card_read(self, uid: str) -> None:
        """A card arrived on the reader; it matters only while the window asks for one."""
        if self.page != "wait":
            return
        card = self.session.registry.get(uid)
        if card is not None:
            self.edit(form_from_card(card, self.session.base))
        else:
            self.form = new_form(uid)
            self.show_kinds()

    # ---- list -----------------------------------------------------------------------------

    def show_list(self) -> None:
        self.form = None
        page = BoxLayout(orientation="vertical", spacing=16)
        new = BigButton(self.t("new_card"), self.start_new, size_hint_x=None, width=460, height=76)
        undo = BigButton(self.t("undo"), self.undo, size_hint_x=None, width=200, height=76)
        undo.disabled = not self.session.can_undo
        heading = Plain(self.t("cards_heading"), "title", TEXT, bold=True)
        page.add_widget(row(heading, new, undo, height=80))
        if self.session.bundle is not None:
            page.add_widget(Plain(self.t("bundle_note", name=self.session.bundle.name), "small", TEXT_SOFT))
        grid = GridLayout(cols=3, spacing=[28, 24], size_hint_y=None, padding=[4, 8])
        grid.bind(minimum_height=grid.setter("height"))
        tiles = {}
        for card in self.session.registry.cards:
            face = Face(
                card.label,
                card.colour,
                card.picture if card.picture and card.picture.is_file() else None,
                describe(card, self.locale),
            )
            tiles[card.uid] = CardTile(face, card.uid, self.open_card)
            grid.add_widget(tiles[card.uid])
        if not tiles:
            grid.add_widget(Plain(self.t("no_cards"), "heading", TEXT_SOFT))
        scroll = ScrollView(do_scroll_x=False, bar_width=12)
        scroll.add_widget(grid)
        page.add_widget(scroll)
        self.w = {"new_card": new, "undo": undo, "grid": grid, "scroll": scroll, **{f"card_{u}": t for u, t in tiles.items()}}
        if self.push is not None:
            self.w["send_to_tablet"] = BigButton(self.t("send_to_tablet"), self.send_to_tablet, size_hint_x=None, width=460)
            page.add_widget(row(Widget(), self.w["send_to_tablet"]))
        self._set_page("list", page)

    def open_card(self, uid: str) -> None:
        card = self.session.registry.get(uid)
        if card is not None:
            self.edit(form_from_card(card, self.session.base))

    def undo(self) -> None:
        try:
            done = self.session.undo()
        except (SessionError, OSError) as exc:
            self.say(self.t("save_failed", reason=exc), ERROR_TEXT)
            return
        self.show_list()
        self.say(self.t("undone") if done else self.t("undo_nothing"))

    # ---- wait for the card ----------------------------------------------------------------

    def start_new(self) -> None:
        page = BoxLayout(orientation="vertical", spacing=30, padding=[0, 60, 0, 0])
        page.add_widget(Plain(self.t("place_card"), "title", TEXT, bold=True, halign="center"))
        page.add_widget(Plain(self.t("place_card_hint"), "heading", TEXT_SOFT, halign="center"))
        cancel = BigButton(self.t("cancel"), self.show_list, size_hint_x=None, width=300)
        page.add_widget(row(Widget(), cancel, Widget()))
        page.add_widget(Widget())
        self.w = {"cancel": cancel}
        self.say("")
        self._set_page("wait", page)
        if self.source is not None and self.source.present:
            self.card_read(self.source.present)

    # ---- what should it do ----------------------------------------------------------------

    def show_kinds(self) -> None:
        page = BoxLayout(orientation="vertical", spacing=18)
        page.add_widget(Plain(self.t("what_does_it_do"), "title", TEXT, bold=True))
        page.add_widget(Plain(self.t("card_id", uid=self.form.uid), "small", TEXT_SOFT))
        self.w = {}
        column = BoxLayout(orientation="vertical", spacing=16, size_hint=(None, None), width=760)
        for kind in KINDS:
            button = BigButton(self.t(f"kind_{kind}"), lambda k=kind: self.choose_kind(k), height=78, font_size=FONT["heading"])
            self.w[f"kind_{kind}"] = button
            column.add_widget(button)
        column.height = len(KINDS) * 78 + (len(KINDS) - 1) * 16
        page.add_widget(column)
        cancel = BigButton(self.t("cancel"), self.cancel_edit, size_hint_x=None, width=300)
        self.w["cancel"] = cancel
        page.add_widget(row(cancel, Widget()))
        page.add_widget(Widget())
        self._set_page("kind", page)

    def choose_kind(self, kind: str) -> None:
        self.edit(self.form.set("kind", kind))

    def cancel_edit(self) -> None:
        self.show_list()
        self.say("")

    # ---- the form -------------------------------------------------------------------------

    def edit(self, form: CardForm) -> None:
        self.form = form
        self.shown_errors = False
        self.say("")
        page = BoxLayout(orientation="horizontal", spacing=36)
        left = BoxLayout(orientation="vertical", spacing=10)
        kind_name = self.t("kind_carer") if form.role == "carer" else self.t(f"kind_{form.kind}")
        left.add_widget(Plain(kind_name, "title", TEXT, bold=True))
        left.add_widget(Plain(self.t("card_id", uid=form.uid), "small", TEXT_SOFT))
        self.general = Plain("", "body", ERROR_TEXT, bold=True)
        left.add_widget(self.general)
        self.form_box = BoxLayout(orientation="vertical", spacing=14, size_hint_y=None, padding=[8, 8, 16, 8])
        self.form_box.bind(minimum_height=self.form_box.setter("height"))
        scroll = ScrollView(do_scroll_x=False, bar_width=12)
        scroll.add_widget(self.form_box)
        left.add_widget(scroll)
        page.add_widget(left)

        right = BoxLayout(orientation="vertical", spacing=14, size_hint_x=None, width=440)
        right.add_widget(Plain(self.t("preview"), "heading", TEXT_SOFT))
        self.preview_box = BoxLayout(orientation="vertical", spacing=8, size_hint_y=None)
        self.preview_box.bind(minimum_height=self.preview_box.setter("height"))
        right.add_widget(self.preview_box)
        save = BigButton(self.t("save"), self.save, height=76, font_size=FONT["heading"])
        cancel = BigButton(self.t("cancel"), self.cancel_edit)
        right.add_widget(save)
        right.add_widget(cancel)
        self.w = {"save": save, "cancel": cancel, "scroll": scroll}
        if form.role != "carer":
            change = BigButton(self.t("change_kind"), self.show_kinds)
            right.add_widget(change)
            self.w["change_kind"] = change
        if not form.is_new:
            delete = BigButton(self.t("delete_card"), self.delete)
            right.add_widget(delete)
            self.w["delete"] = delete
        right.add_widget(Widget())
        page.add_widget(right)
        self._set_page("edit", page)
        self._build_fields()
        self._refresh_preview()

    def _build_fields(self) -> None:
        """The fields this choice needs, rebuilt when the choice inside it changes (the service)."""
        form = self.form
        self.form_box.clear_widgets()
        self.fields = {}
        self._add_field("label", text_box(form.label, lambda v: self.change("label", v)))
        for name in visible_fields(form):
            if name == "provider":
                buttons = [
                    self._choice_button(_PROVIDER_NAMES[p], "provider", p, form.provider == p, rebuild=True)
                    for p in PROVIDER_CHOICES
                ]
                self._add_field(name, row(*buttons))
            elif name == "channel":
                options = [("", self.t("no_channel"))] + [(c, _CHANNEL_NAMES[c]) for c in CHANNELS]
                grid = GridLayout(cols=3, spacing=10, size_hint_y=None, height=2 * BUTTON_H + 10)
                for value, text in options:
                    grid.add_widget(self._choice_button(text, "channel", value, form.channel == value, font_size=FONT["body"]))
                self._add_field(name, grid)
            elif name == "folder":
                box = text_box(form.folder, lambda v: self.change("folder", v))
                choose = BigButton(
                    self.t("choose_folder"),
                    lambda: self.choose_file("folder"),
                    size_hint_x=None,
                    width=220,
                    height=52,
                    font_size=FONT["body"],
                )
                self.w["choose_folder"] = choose
                self._add_field(name, row(box, choose, height=52))
                self.w["input_folder"] = box
            else:
                self._add_field(name, text_box(getattr(form, name), lambda v, n=name: self.change(n, v)))
        swatches = []
        for colour_name in SWATCHES:
            hex_colour = PALETTE[colour_name]
            swatch = BigButton(
                "", None, selected=form.colour.upper() == hex_colour, fill=hex_colour, size_hint_x=None, width=76, height=76
            )
            swatch.bind(on_release=lambda *_, c=hex_colour: self.change("colour", c, rebuild=True))
            swatch.colour_name = colour_name
            self.w[f"swatch_{colour_name}"] = swatch
            swatches.append(swatch)
        self._add_field("colour", row(*swatches, Widget(), height=86, spacing=12))
        picture_name = Plain(Path(form.picture).name if form.picture else self.t("no_picture"), "body", TEXT)
        choose = BigButton(
            self.t("choose_picture"),
            lambda: self.choose_file("picture"),
            size_hint_x=None,
            width=240,
            height=56,
            font_size=FONT["body"],
        )
        clear = BigButton(
            self.t("remove_picture"),
            lambda: self.change("picture", "", rebuild=True),
            size_hint_x=None,
            width=220,
            height=56,
            font_size=FONT["body"],
        )
        clear.disabled = not form.picture
        self.w["choose_picture"], self.w["remove_picture"] = choose, clear
        self._add_field("picture", row(picture_name, choose, clear, height=56))
        if self.shown_errors:
            self._show_problems()

    def _add_field(self, name: str, body: Widget) -> None:
        field = Field(self.t(f"field_{name}"), body)
        self.fields[name] = field
        if isinstance(body, TextInput):
            self.w[f"input_{name}"] = body
        self.form_box.add_widget(field)

    def _choice_button(
        self, text: str, name: str, value: str, selected: bool, rebuild: bool = False, font_size: int = FONT["button"]
    ) -> BigButton:
        button = BigButton(text, lambda: self.change(name, value, rebuild=True), selected=selected, font_size=font_size)
        self.w[f"{name}_{value or 'none'}"] = button
        return button

    def change(self, name: str, value, rebuild: bool = False) -> None:
        self.form = self.form.set(name, value)
        if rebuild:
            scroll = self.w.get("scroll")
            at = scroll.scroll_y if scroll is not None else 1
            self._build_fields()
            if scroll is not None:
                scroll.scroll_y = at
        elif self.shown_errors:
            self._show_problems()
        self._refresh_preview()

    def _refresh_preview(self) -> None:
        face = face_of(self.form, self.session.base, self.locale)
        self.preview_box.clear_widgets()
        self.preview = CardFace(face, size_hint=(None, None), size=(440, 277))
        self.preview_box.add_widget(self.preview)
        self.preview_words = Plain(face.words, "body", TEXT)
        self.preview_box.add_widget(self.preview_words)
        self.w["preview"] = self.preview

    def _show_problems(self, checked=None) -> None:
        checked = checked or check_form(self.form, self.session.registry, self.session.base, self.locale, whole_file=False)
        for name, field in self.fields.items():
            field.show(checked.errors.get(name, []), checked.warnings.get(name, []))
        general = checked.errors.get("uid", []) + checked.errors.get("kind", [])
        general += [m for n, ms in checked.errors.items() if n not in self.fields and n not in ("uid", "kind") for m in ms]
        self.general.text = "\n".join(general)
        if not checked.errors and self.message.text == self.t("fix_fields"):
            self.say("")
        return checked

    def save(self) -> None:
        try:
            checked = self.session.save(self.form, self.locale)
        except (SessionError, OSError) as exc:
            self.say(self.t("save_failed", reason=exc), ERROR_TEXT)
            return
        if not checked.ok:
            self.shown_errors = True
            self._show_problems(checked)
            self.say(self.t("fix_fields"), ERROR_TEXT)
            return
        self.show_list()
        self.say(self.t("saved", label=checked.card.label))

    def delete(self) -> None:
        label = self.form.label
        try:
            self.session.remove(self.form.uid)
        except (SessionError, OSError, KeyError) as exc:
            self.say(self.t("save_failed", reason=exc), ERROR_TEXT)
            return
        self.show_list()
        self.say(self.t("removed", label=label))

    # ---- file chooser ---------------------------------------------------------------------

    def choose_file(self, what: str) -> None:
        """A picture (images only) or the album folder, with Kivy's own file chooser."""
        start = self.session.base if self.session.bundle is None else Path.home()
        current = getattr(self.form, what)
        if current:
            p = Path(current).expanduser()
            p = p if p.is_absolute() else self.session.base / p
            start = p if p.is_dir() else p.parent if p.parent.is_dir() else start
        chooser = FileChooserIconView(
            path=str(start), dirselect=(what == "folder"), filters=PICTURE_TYPES if what == "picture" else []
        )
        box = BoxLayout(orientation="vertical", spacing=12)
        box.add_widget(chooser)
        ok = BigButton(self.t("choose"), None)
        cancel = BigButton(self.t("cancel"), None)
        box.add_widget(row(ok, cancel))
        popup = Popup(
            title=self.t("field_picture" if what == "picture" else "field_folder"),
            content=box,
            size_hint=(0.9, 0.9),
            title_size=FONT["heading"],
            auto_dismiss=False,
        )

        def pick(*_):
            chosen = chooser.selection[0] if chooser.selection else (chooser.path if what == "folder" else "")
            popup.dismiss()
            if chosen:
                self.change(what, chosen, rebuild=True)

        ok.bind(on_release=pick)
        cancel.bind(on_release=lambda *_: popup.dismiss())
        self.chooser, self.popup = chooser, popup
        popup.open()

    # ---- sending the card set to a tablet (the fleet) ------------------------------------

    def send_to_tablet(self) -> None:
        """Ask which tablet (or group), then push the card set off the screen's thread."""
        box = BoxLayout(orientation="vertical", spacing=14)
        box.add_widget(Plain(self.t("send_target"), "body", TEXT))
        name = text_box(getattr(self, "send_target", ""), lambda value: setattr(self, "send_target", value))
        box.add_widget(name)
        send, cancel = BigButton(self.t("send"), None), BigButton(self.t("cancel"), None)
        box.add_widget(row(send, cancel))
        popup = Popup(title=self.t("send_to_tablet"), content=box, size_hint=(0.7, 0.45), title_size=FONT["heading"])

        def go(*_) -> None:
            target = name.text.strip()
            if not target or self.push is None:
                return
            popup.dismiss()
            self.say(self.t("sending", target=target))
            path = self.session.bundle or self.session.path
            threading.Thread(target=self._send, args=(self.push, path, target), name="push", daemon=True).start()

        send.bind(on_release=go)
        cancel.bind(on_release=lambda *_: popup.dismiss())
        self.popup = popup
        popup.open()

    def _send(self, push: Callable, path: Path, target: str) -> None:
        try:
            results = push(path, target)
            colour = TEXT if all(outcome in ("applied", "pending") for _, outcome, _ in results) else ERROR_TEXT
            keys = {
                "applied": "sent_applied",
                "pending": "sent_pending",
                "refused": "sent_refused",
                "no_answer": "sent_no_answer",
            }
            text = "\n".join(
                self.t(keys[outcome], device=device, reason=detail)
                if outcome in keys
                else self.t("send_failed", reason=f"{device}: {detail}")
                for device, outcome, detail in results
            )
        except Exception as exc:  # whatever went wrong, the carer reads one sentence, never a Python error
            text, colour = self.t("send_failed", reason=str(exc) or type(exc).__name__), ERROR_TEXT
        Clock.schedule_once(lambda _dt: self.say(text, colour))

    # ---- keys -----------------------------------------------------------------------------

    def _on_key(self, _window, key: int, _scancode, codepoint, modifiers) -> bool:
        ctrl = "ctrl" in modifiers or "meta" in modifiers
        if key == 27:  # Escape: one step back, never out of the program
            popup = getattr(self, "popup", None)
            if popup is not None and popup.parent is not None:
                popup.dismiss()
            elif self.page in ("wait", "kind", "edit"):
                self.cancel_edit()
            return True
        if ctrl and codepoint == "s" and self.page == "edit":
            self.save()
            return True
        if ctrl and codepoint == "z" and self.page == "list":
            self.undo()
            return True
        if ctrl and codepoint == "n" and self.page == "list":
            self.start_new()
            return True
        return False


_STATES = {"state_connected", "state_searching", "state_lost", "state_starting"}


def run_app(cfg: KlickConfig, session: EditorSession, push: Callable | None = None) -> None:
    CarerApp(cfg, session, push=push).run()
