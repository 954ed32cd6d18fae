"""The carer's window (Kivy): the cards as small faces, and the few steps to program a new one.

A normal desktop window for mouse and keyboard, but with the launcher's calm colours, large
words and large targets: carers are often the residents' own children, not young either.
Everything the window decides is in :mod:`cards.carer.model` and :mod:`cards.carer.session`;
this module only draws and forwards clicks, keys and card reads to them.

The window opens maximised and follows its size: it fits a 1366x768 laptop and a 1280x800
tablet. Labels on card faces and buttons shrink to fit (:mod:`cards.fitting`), never broken
inside a word. Pictures are shown from thumbnails made off the window's thread
(:mod:`cards.carer.pictures`), so a huge or damaged picture never stalls or stops it.

Keys: Escape goes back, Ctrl+S saves, Ctrl+Z undoes, Ctrl+N programs a new card.
"""

from __future__ import annotations

import os

os.environ.setdefault("KIVY_NO_ARGS", "1")

from kivy.config import Config  # noqa: E402  (settings must precede the window's creation)

Config.set("kivy", "exit_on_escape", "0")
Config.set("input", "mouse", "mouse,disable_multitouch")
Config.set("graphics", "width", "1280")
Config.set("graphics", "height", "720")
Config.set("graphics", "minimum_width", "1000")
Config.set("graphics", "minimum_height", "620")
Config.set("graphics", "resizable", "1")
Config.set("graphics", "window_state", "maximized")

import threading  # noqa: E402
from collections import OrderedDict  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

from kivy.app import App  # noqa: E402
from kivy.clock import Clock  # noqa: E402
from kivy.core.text import Label as CoreLabel  # noqa: E402
from kivy.core.window import Window  # noqa: E402
from kivy.graphics import Color, InstructionGroup, Line, Rectangle, RoundedRectangle  # noqa: E402
from kivy.graphics.texture import Texture  # noqa: E402
from kivy.properties import BooleanProperty, ObjectProperty, StringProperty  # noqa: E402
from kivy.uix.behaviors import ButtonBehavior  # noqa: E402
from kivy.uix.boxlayout import BoxLayout  # noqa: E402
from kivy.uix.button import Button  # noqa: E402
from kivy.uix.gridlayout import GridLayout  # noqa: E402
from kivy.uix.image import Image  # noqa: E402
from kivy.uix.label import Label  # noqa: E402
from kivy.uix.modalview import ModalView  # noqa: E402
from kivy.uix.popup import Popup  # noqa: E402
from kivy.uix.recyclegridlayout import RecycleGridLayout  # noqa: E402
from kivy.uix.recycleview import RecycleView  # noqa: E402
from kivy.uix.recycleview.views import RecycleDataViewBehavior  # noqa: E402
from kivy.uix.relativelayout import RelativeLayout  # noqa: E402
from kivy.uix.scrollview import ScrollView  # noqa: E402
from kivy.uix.stacklayout import StackLayout  # noqa: E402
from kivy.uix.textinput import TextInput  # noqa: E402
from kivy.uix.widget import Widget  # noqa: E402

from cards.carer.model import (  # noqa: E402
    CHANNELS,
    KINDS,
    SWATCHES,
    CardForm,
    Checked,
    Face,
    check_form,
    face_of,
    form_from_card,
    new_form,
    provider_choices,
    visible_fields,
)
from cards.carer.pictures import PICTURE_SUFFIXES, Thumb, Thumbnailer, display_name, list_folder, pictures_folder  # noqa: E402
from cards.carer.reader import CardSource  # noqa: E402
from cards.carer.session import EditorSession, SessionBusy, SessionError  # noqa: E402
from cards.carer.words import words  # noqa: E402
from cards.colours import BG, BUTTON_BG, BUTTON_TEXT, PALETTE, PANEL, TEXT, TEXT_SOFT, card_text_style, rgba  # noqa: E402
from cards.describe import describe  # noqa: E402
from cards.fitting import fit_text  # noqa: E402
from klick.config import Config as KlickConfig  # noqa: E402

__all__ = [
    "CarerApp",
    "CardFace",
    "PictureChooser",
    "run_app",
    "ERROR_TEXT",
    "WARNING_TEXT",
    "DISABLED_BG",
    "DISABLED_TEXT",
    "PICTURE_TYPES",
]

#: Messages next to fields: a soft red and a soft yellow, each over 8:1 on the navy background.
ERROR_TEXT = "#FFB4AB"
WARNING_TEXT = "#FFE08A"
INPUT_BG = "#FFFFFF"
INPUT_TEXT = "#111111"
SELECTED = "#FFFDF7"
#: A button that cannot be pressed now: a muted plate, its words still 6.6:1 (WCAG asks 4.5:1).
DISABLED_BG = PANEL
DISABLED_TEXT = TEXT_SOFT
#: A folder in the picture chooser.
FOLDER = "#F7D58B"
PICTURE_TYPES = [f"*{s}" for s in PICTURE_SUFFIXES] + [f"*{s.upper()}" for s in PICTURE_SUFFIXES]

FONT = {"title": 38, "heading": 30, "body": 24, "button": 26, "small": 20}
#: The smallest a button's words may shrink to before they take a second line.
MIN_BUTTON_FONT = 18
BUTTON_H = 64
#: A card is 85.6 x 54 mm; every face on screen keeps that shape.
CARD_RATIO = 54 / 85.6
_CHANNEL_NAMES = {"svt1": "SVT1", "svt2": "SVT2", "svtbarn": "SVT Barn", "kunskapskanalen": "Kunskapskanalen", "svt24": "SVT24"}
_PROVIDER_NAMES = {"jitsi": "Jitsi", "teams": "Teams"}


# --- measuring text for the fitting rule --------------------------------------------------------

_measurers: dict[tuple[bool, float], CoreLabel] = {}
_line_factor: dict[bool, float] = {}


def measure(bold: bool):
    """``measure(text, size)`` in pixels, in the window's own font: what :func:`fit_text` asks for."""

    def width(text: str, size: float) -> float:
        label = _measurers.get((bold, size))
        if label is None:
            if len(_measurers) > 400:
                _measurers.clear()
            label = _measurers[(bold, size)] = CoreLabel(font_size=size, bold=bold)
        return label.get_extents(text)[0]

    return width


def line_factor(bold: bool) -> float:
    """How tall one line is, as a multiple of the font size (Kivy draws lines this far apart)."""
    if bold not in _line_factor:
        _line_factor[bold] = CoreLabel(font_size=100, bold=bold).get_extents("ÅÄÖgjy")[1] / 100
    return _line_factor[bold]


class Fits:
    """For a Label or Button: its words as large as its box allows, shrunk before they wrap.

    ``full_text`` is what it says; ``text`` is that text in the lines it is drawn in.
    """

    # What the mixin uses of the Kivy Label or Button it is mixed into (Kivy has no type hints).
    width: float
    height: float
    bold: bool
    font_size: float
    text: str
    text_size: tuple[float | None, float | None]
    bind: Callable[..., object]

    def setup_fit(self, text: str, max_font: float, min_font: float, max_lines: int | None, margin: float = 8) -> None:
        self.full_text = text
        self.max_font, self.min_font, self.max_lines, self.fit_margin = max_font, min_font, max_lines, margin
        self.bind(size=self.refit)
        self.refit()

    def set_text(self, text: str) -> None:
        self.full_text = text
        self.refit()

    def refit(self, *_) -> None:
        w, h = self.width - 2 * self.fit_margin, self.height - 4
        if w <= 8 or h <= 4:
            return
        fitted = fit_text(
            self.full_text,
            w - 4,
            h,
            measure(self.bold),
            max_size=self.max_font,
            min_size=min(self.min_font, self.max_font),
            line_height=line_factor(self.bold),
            max_lines=self.max_lines,
        )
        self.font_size = fitted.size
        self.text = fitted.text
        # The lines were fitted a little narrower than this, so Kivy never breaks one of them again.
        self.text_size = (w, None)


# --- small widgets ------------------------------------------------------------------------------


class Plain(Label):
    """Text that wraps to its width and is as tall as it needs.

    ``reserve``: lines kept free even when empty, and the most it has needed is kept, so that
    text below it never moves when a message comes and goes under the mouse.
    """

    def __init__(self, text: str = "", size: str = "body", colour: str = TEXT, reserve: int = 0, **kw) -> None:
        kw.setdefault("halign", "left")
        kw.setdefault("valign", "middle")
        super().__init__(text=text, font_size=FONT[size], color=rgba(colour), size_hint_y=None, **kw)
        self.reserve = reserve
        self.reserved = 0.0
        self.bind(width=self._rewrap, texture_size=self._grow)
        self.texture_update()
        self._grow()

    def _rewrap(self, *_) -> None:
        # A new width makes new lines: what was kept for the old ones no longer says anything.
        self.text_size = (self.width, None)
        self.texture_update()
        self.release()

    def _grow(self, *_) -> None:
        need = self.texture_size[1] if self.text else 0
        if self.reserve:
            self.reserved = max(self.reserved, need, self.reserve * self.font_size * line_factor(False))
            self.height = self.reserved
        else:
            self.height = max(need, 1)

    def release(self) -> None:
        """Give back the space kept for past messages (when the page is built anew)."""
        self.reserved = 0.0
        self._grow()


class BigButton(Fits, Button):
    """A light plate with dark words: the one kind of thing to press, everywhere."""

    def __init__(
        self, text: str, on_press=None, selected: bool = False, fill: str = BUTTON_BG, ink: str = BUTTON_TEXT, **kw
    ) -> None:
        kw.setdefault("size_hint_y", None)
        kw.setdefault("height", BUTTON_H)
        font = kw.pop("font_size", FONT["button"])
        super().__init__(
            text=text,
            background_normal="",
            background_down="",
            background_disabled_normal="",
            background_disabled_down="",
            background_color=(0, 0, 0, 0),
            color=rgba(ink),
            disabled_color=rgba(DISABLED_TEXT),
            halign="center",
            valign="middle",
            font_size=font,
            **kw,
        )
        self.fill, self.selected = fill, selected
        self.bind(pos=self._draw, size=self._draw, state=self._draw, disabled=self._draw)
        if on_press is not None:
            self.bind(on_release=lambda *_: on_press())
        self.setup_fit(text, font, MIN_BUTTON_FONT, 2)
        self._draw()

    def _draw(self, *_) -> None:
        self.canvas.before.clear()
        with self.canvas.before:
            if self.disabled:
                Color(*rgba(DISABLED_BG))
            else:
                Color(*rgba(self.fill, 0.8 if self.state == "down" else 1.0))
            RoundedRectangle(pos=self.pos, size=self.size, radius=[10])
            if self.selected:
                Color(*rgba(SELECTED))
                Line(rounded_rectangle=(self.x - 5, self.y - 5, self.width + 10, self.height + 10, 14), width=3)


class FitLabel(Fits, Label):
    """A label in a fixed box: its words shrink to the box, wrapped only between words."""

    def __init__(self, text: str, max_font: float, min_font: float, max_lines: int | None = None, **kw) -> None:
        kw.setdefault("halign", "center")
        kw.setdefault("valign", "middle")
        super().__init__(text=text, **kw)
        self.setup_fit(text, max_font, min_font, max_lines, margin=0)


# --- pictures as textures -----------------------------------------------------------------------


class Thumbs:
    """Thumbnails as textures, made by a worker thread and kept for the pictures seen last.

    ``get(path, done)`` calls ``done(texture, problem)`` on the window's thread: at once if the
    thumbnail is known, else when the worker has made it.
    """

    KEEP = 150  # about 30 MB of textures

    def __init__(self, cache: Path | None) -> None:
        self.known: OrderedDict[Path, tuple[Texture | None, str | None]] = OrderedDict()
        self.waiting: dict[Path, list] = {}
        self.worker = Thumbnailer(lambda thumb: Clock.schedule_once(lambda _dt: self._arrived(thumb)), cache)

    def get(self, path: Path, done) -> None:
        if path in self.known:
            self.known.move_to_end(path)
            done(*self.known[path])
            return
        self.waiting.setdefault(path, []).append(done)
        self.worker.request(path)

    def forget(self, path: Path) -> None:
        self.known.pop(path, None)

    def _arrived(self, thumb: Thumb) -> None:
        texture = None
        if thumb.problem is None and thumb.rgba:
            texture = Texture.create(size=thumb.size, colorfmt="rgba")
            texture.blit_buffer(thumb.rgba, colorfmt="rgba", bufferfmt="ubyte")
            texture.flip_vertical()  # Pillow's rows run top down, OpenGL's bottom up
        self.known[thumb.path] = (texture, thumb.problem)
        while len(self.known) > self.KEEP:
            self.known.popitem(last=False)
        for done in self.waiting.pop(thumb.path, []):
            done(texture, thumb.problem)

    def stop(self) -> None:
        self.worker.stop()


def _thumb_cache() -> Path | None:
    try:
        import platformdirs

        return Path(platformdirs.user_cache_dir("klick")) / "thumbnails"
    except Exception:
        return None


_THUMBS: Thumbs | None = None


def thumbs() -> Thumbs:
    global _THUMBS
    if _THUMBS is None:
        _THUMBS = Thumbs(_thumb_cache())
    return _THUMBS


# --- card faces ---------------------------------------------------------------------------------


class CardFace(RelativeLayout):
    """A card as it shows on the tablet: its colour, its picture at the left, its label at the right.

    The label is as large as its box allows and wraps only between words (:mod:`cards.fitting`).
    """

    def __init__(self, face: Face, **kw) -> None:
        super().__init__(**kw)
        self.face = face
        self.texture_shown = False
        self.picture: Image | None = None
        if face.picture is not None:
            self.picture = Image(fit_mode="contain")
            self.add_widget(self.picture)
            thumbs().get(face.picture, self._show_picture)
        self.label = Label(text=face.label, bold=True, halign="center", valign="middle")
        self.add_widget(self.label)
        # Our own group: canvas.before also holds RelativeLayout's PushMatrix, which must stay.
        self.back = InstructionGroup()
        self.canvas.before.add(self.back)
        self.bind(size=self._layout)
        self._layout()

    def _show_picture(self, texture, _problem) -> None:
        if texture is not None and self.picture is not None:
            self.picture.texture = texture
            self.texture_shown = True

    def _layout(self, *_) -> None:
        w, h = self.size
        if w < 4 or h < 4:
            return
        style = card_text_style(self.face.colour)
        picture = self.picture
        text_w = w * (0.56 if picture is not None else 0.9)
        text_x = w * (0.42 if picture is not None else 0.05)
        if picture is not None:
            picture.size_hint = (None, None)
            picture.size = (w * 0.36, h * 0.8)
            picture.pos = (w * 0.04, h * 0.1)
        fitted = fit_text(
            self.face.label,
            text_w - 8,
            h * 0.8,
            measure(True),
            max_size=max(12, int(h * 0.26)),
            min_size=12,
            line_height=line_factor(True),
            max_lines=3,
        )
        self.fitted = fitted
        self.label.color = rgba(style.text)
        self.label.font_size = fitted.size
        self.label.text = fitted.text
        self.label.size_hint = (None, None)
        self.label.size = (text_w, h * 0.8)
        self.label.pos = (text_x, h * 0.1)
        self.label.text_size = (text_w, None)
        self.label.texture_update()
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

    W = 330

    def __init__(self, face: Face, uid: str, on_press, **kw) -> None:
        super().__init__(orientation="vertical", spacing=6, size_hint=(None, None), width=self.W, **kw)
        self.card_uid = uid
        self.face = CardFace(face, size_hint=(None, None), size=(self.W, round(self.W * CARD_RATIO)))
        self.add_widget(self.face)
        # Two lines kept for the words under every face, so all faces in a row line up.
        self.words = Plain(face.words or " ", "small", TEXT, reserve=2, halign="center", valign="top")
        self.add_widget(self.words)
        self.words.bind(height=self._fit)
        self._fit()
        self.bind(on_release=lambda *_: on_press(uid))

    def _fit(self, *_) -> None:
        self.height = self.face.height + self.spacing + self.words.height


class Swatch(ButtonBehavior, BoxLayout):
    """A colour to choose, with its name under it: a colour alone says nothing to some eyes."""

    def __init__(self, colour: str, name: str, selected: bool, on_press, **kw) -> None:
        super().__init__(orientation="vertical", spacing=4, size_hint=(None, None), size=(104, 100), **kw)
        self.colour, self.selected = colour, selected
        self.plate = Widget(size_hint_y=None, height=60)
        self.name_label = FitLabel(name, FONT["small"], 14, 1, size_hint_y=None, height=30, color=rgba(TEXT))
        self.add_widget(self.plate)
        self.add_widget(self.name_label)
        self.plate.bind(pos=self._draw, size=self._draw)
        self.bind(on_release=lambda *_: on_press())
        self._draw()

    @property
    def text(self) -> str:
        return self.name_label.full_text

    def _draw(self, *_) -> None:
        p = self.plate
        p.canvas.clear()
        with p.canvas:
            if self.selected:
                Color(*rgba(SELECTED))
                Line(rounded_rectangle=(p.x + 2, p.y - 2, p.width - 4, p.height + 4, 12), width=3)
            Color(*rgba(self.colour))
            RoundedRectangle(pos=(p.x + 8, p.y + 4), size=(p.width - 16, p.height - 8), radius=[8])
            Color(*rgba(TEXT_SOFT))
            Line(rounded_rectangle=(p.x + 8, p.y + 4, p.width - 16, p.height - 8, 8), width=1)


class Field(BoxLayout):
    """A caption, perhaps one line of help, the thing to fill in, and the place for its message.

    The message's place is kept even while there is none, so fields never jump under the mouse.
    """

    def __init__(self, caption: str, body: Widget, hint: str = "", **kw) -> None:
        super().__init__(orientation="vertical", spacing=4, size_hint_y=None, **kw)
        self.caption = Plain(caption, "body", TEXT_SOFT)
        self.hint = Plain(hint, "small", TEXT_SOFT) if hint else None
        self.body = body
        self.message = Plain("", "body", ERROR_TEXT, reserve=1, bold=True)
        for child in (self.caption, self.hint, body, self.message):
            if child is not None:
                self.add_widget(child)
                child.bind(height=self._fit)
        self._fit()

    def _fit(self, *_) -> None:
        self.height = sum(c.height for c in self.children) + self.spacing * (len(self.children) - 1)

    def show(self, errors: list[str], warnings: list[str]) -> None:
        lines = errors or warnings
        self.message.color = rgba(ERROR_TEXT if errors else WARNING_TEXT)
        self.message.text = "\n".join(lines)


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


# --- the picture chooser ------------------------------------------------------------------------


class ChooserTile(RecycleDataViewBehavior, ButtonBehavior, BoxLayout):
    """A folder or a picture in the chooser: a large thumbnail (or a folder) and its name."""

    path = ObjectProperty(None, allownone=True)
    name = StringProperty("")
    is_folder = BooleanProperty(False)
    problem = StringProperty("")
    chooser = ObjectProperty(None, allownone=True)

    def __init__(self, **kw) -> None:
        super().__init__(orientation="vertical", spacing=6, padding=[8, 8, 8, 4], **kw)
        self.area = RelativeLayout(size_hint_y=None, height=PictureChooser.THUMB_H)
        self.image = Image(fit_mode="contain")
        #: Said instead of a thumbnail when there is none ("Kan inte visas", "För stor bild").
        self.note = Label(font_size=FONT["small"], color=rgba(TEXT), halign="center", valign="middle")
        self.note.bind(size=lambda lbl, sz: setattr(lbl, "text_size", sz))
        self.area.add_widget(self.image)
        self.area.add_widget(self.note)
        self.caption = Label(
            font_size=FONT["small"], color=rgba(TEXT), halign="center", valign="top", max_lines=2, shorten_from="center"
        )
        self.caption.bind(size=lambda lbl, sz: setattr(lbl, "text_size", sz))
        self.add_widget(self.area)
        self.add_widget(self.caption)
        self.bind(pos=self._draw, size=self._draw, state=self._draw)
        self.area.bind(pos=self._draw, size=self._draw)

    def refresh_view_attrs(self, rv, index, data):
        super().refresh_view_attrs(rv, index, data)
        self.caption.text = self.name
        self.image.texture = None
        self.image.opacity = 0
        self.note.text = ""
        self.problem = ""
        if not self.is_folder and self.path is not None:
            path = self.path
            thumbs().get(path, lambda tex, problem: self._thumb(path, tex, problem))
        self._draw()

    def _thumb(self, path, texture, problem) -> None:
        if path != self.path or self.chooser is None:
            return  # this tile shows another picture by now
        if texture is not None:
            self.image.texture = texture
            self.image.opacity = 1
        else:
            self.problem = problem or "unreadable"
            self.note.text = self.chooser.t(f"picture_{self.problem}")

    @property
    def shows_picture(self) -> bool:
        return self.image.texture is not None

    def _draw(self, *_) -> None:
        self.canvas.before.clear()
        with self.canvas.before:
            Color(*rgba(BUTTON_BG if self.state == "down" else PANEL))
            RoundedRectangle(pos=self.pos, size=self.size, radius=[12])
            if self.is_folder:
                # A folder: a tab and a body, in a warm yellow, where a picture's thumbnail goes.
                a = self.area
                x, y, w, h = a.x + a.width * 0.15, a.y + a.height * 0.12, a.width * 0.7, a.height * 0.7
                Color(*rgba(FOLDER))
                RoundedRectangle(pos=(x, y + h * 0.8), size=(w * 0.4, h * 0.2), radius=[6])
                RoundedRectangle(pos=(x, y), size=(w, h * 0.86), radius=[8])

    def on_release(self) -> None:
        if self.chooser is None or self.path is None:
            return
        if self.is_folder:
            self.chooser.open_folder(self.path)
        elif not self.problem:
            self.chooser.choose(self.path)


class PictureChooser(ModalView):
    """Pictures as large thumbnails, folders as folders, big words, and a plain "Tillbaka" up.

    ``folders_only``: choosing an album folder; pictures are shown to see what is in a folder,
    and "Välj den här mappen" chooses the one open.
    """

    TILE_W, TILE_H, THUMB_H = 232, 262, 190

    def __init__(self, app: CarerApp, start: Path, on_choose, *, folders_only: bool = False, **kw) -> None:
        super().__init__(auto_dismiss=False, background="", background_color=rgba(BG), size_hint=(1, 1), **kw)
        self.app, self.on_choose, self.folders_only = app, on_choose, folders_only
        self.t = app.t
        self.folder = start
        box = BoxLayout(orientation="vertical", padding=[28, 20, 28, 16], spacing=12)
        title = self.t("choose_folder_title" if folders_only else "choose_picture_title")
        box.add_widget(Plain(title, "title", TEXT, bold=True))
        self.where = Plain("", "body", TEXT_SOFT)
        box.add_widget(self.where)
        # The buttons share the width, so the row fits any window; their words shrink if they must.
        self.up = BigButton(self.t("back"), self.go_up, size_hint_x=1)
        home = BigButton(self.t("place_pictures"), lambda: self.open_folder(pictures_folder()), size_hint_x=1)
        cancel = BigButton(self.t("cancel"), self.dismiss, size_hint_x=1)
        buttons = [self.up, home]
        cards = app.session.base
        if cards != pictures_folder():
            buttons.append(BigButton(self.t("place_cards"), lambda: self.open_folder(cards), size_hint_x=1.2))
        box.add_widget(row(*buttons, Widget(size_hint_x=0.6 if len(buttons) == 3 else 1.8), cancel))
        self.use = None
        if folders_only:
            self.use = BigButton(self.t("use_this_folder"), lambda: self.choose(self.folder), size_hint_x=1, height=72)
            box.add_widget(row(self.use, Widget(size_hint_x=0.6), height=72))
        self.note = Plain("", "body", WARNING_TEXT, reserve=1)
        box.add_widget(self.note)
        self.grid = RecycleView(do_scroll_x=False, bar_width=14, scroll_type=["bars", "content"])
        layout = RecycleGridLayout(
            cols=4,
            spacing=18,
            padding=[4, 4],
            default_size=(self.TILE_W, self.TILE_H),
            default_size_hint=(None, None),
            size_hint_y=None,
        )
        layout.bind(minimum_height=layout.setter("height"))
        self.grid.add_widget(layout)
        self.grid.viewclass = ChooserTile  # after the layout: set before it, no tile is ever made
        self.grid.bind(width=self._columns)
        box.add_widget(self.grid)
        self.add_widget(box)
        self.buttons = {"back": self.up, "pictures": home, "cancel": cancel}
        if self.use is not None:
            self.buttons["use"] = self.use
        self.open_folder(start)

    def _columns(self, *_) -> None:
        layout = self.grid.layout_manager
        layout.cols = max(1, int((self.grid.width - 8 + 18) // (self.TILE_W + 18)))

    def open_folder(self, folder: Path) -> None:
        listing = list_folder(folder, folders_only=False)
        self.folder = folder
        self.listing = listing
        parent = folder.parent
        self.up.disabled = parent == folder
        self.where.text = self.t("in_folder", path=display_name(str(folder), 90))
        entries = list(listing.folders) + list(listing.pictures)
        self.grid.data = [{"path": e.path, "name": e.name, "is_folder": e.is_folder, "chooser": self} for e in entries]
        if listing.problem:
            self.note.text = self.t("folder_unreadable", reason=listing.problem)
        elif not entries:
            self.note.text = self.t("no_pictures_here")
        elif listing.left_out:
            self.note.text = self.t("left_out", count=listing.left_out)
        else:
            self.note.text = ""
        if self.use is not None:
            count = len(listing.pictures)
            self.use.set_text(self.t("use_this_folder_one" if count == 1 else "use_this_folder_n", count=count))
        self.grid.scroll_y = 1

    def go_up(self) -> None:
        self.open_folder(self.folder.parent)

    def tiles(self) -> list[ChooserTile]:
        """The tiles on show now (for tests and keys)."""
        return [c for c in self.grid.layout_manager.children if isinstance(c, ChooserTile)]

    def choose(self, path: Path) -> None:
        self.dismiss(animation=False)  # at once: the choice shows in the preview behind it
        self.on_choose(path)


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
        self.chooser: PictureChooser | None = None
        self.popup: PictureChooser | None = None
        self.reader_text = self.t("reader_starting")
        self.source = CardSource(cfg, self._card_from_thread, self._status_from_thread) if card_source else None
        if self.source is None:
            self.reader_text = ""
        self.title = words("title", self.locale)

    def t(self, key: str, **fields: object) -> str:
        return words(key, self.locale, **fields)

    @property
    def default_server(self) -> str:
        """The call server a new card starts with: the first one the settings allow."""
        servers = self.cfg.calls.allowed_servers
        return servers[0] if servers else ""

    # ---- frame ----------------------------------------------------------------------------

    def build(self):
        Window.clearcolor = rgba(BG)
        root = BoxLayout(orientation="vertical", padding=[28, 20, 28, 16], spacing=12)
        self.body = BoxLayout(orientation="vertical")
        self.message = Plain("", "body", TEXT, reserve=1)
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
        thumbs().stop()

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
            key = f"reader_{state}" if state in _STATES else "reader_other"
            self.reader_text = self.t(key, state=state)
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
            self.form = new_form(uid).set("server", self.default_server)
            self.show_kinds()

    # ---- list -----------------------------------------------------------------------------

    def show_list(self) -> None:
        self.form = None
        page = BoxLayout(orientation="vertical", spacing=16)
        new = BigButton(self.t("new_card"), self.start_new, size_hint_x=None, width=440, height=76)
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
                card.picture if card.picture and _is_file(card.picture) else None,
                describe(card, self.locale),
            )
            tiles[card.uid] = CardTile(face, card.uid, self.open_card)
            grid.add_widget(tiles[card.uid])
        if not tiles:
            grid.add_widget(Plain(self.t("no_cards"), "heading", TEXT_SOFT))
        scroll = ScrollView(do_scroll_x=False, bar_width=12)
        scroll.add_widget(grid)
        scroll.bind(width=lambda _s, width: setattr(grid, "cols", max(1, int((width - 8 + 28) // (CardTile.W + 28)))))
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

    def say_failed(self, exc: Exception) -> None:
        """A change that did not happen, in the window's words; what the carer typed stays on the page."""
        busy = isinstance(exc, SessionBusy)
        self.say(self.t("card_set_busy") if busy else self.t("save_failed", reason=exc), ERROR_TEXT)

    def undo(self) -> None:
        try:
            done = self.session.undo()
        except (SessionError, OSError) as exc:
            self.say_failed(exc)
            return
        self.show_list()
        self.say(self.t("undone") if done else self.t("undo_nothing"))

    # ---- wait for the card ----------------------------------------------------------------

    def start_new(self) -> None:
        page = BoxLayout(orientation="vertical", spacing=30, padding=[0, 40, 0, 0])
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
        form = self.form
        if form is None:  # a click from a page already left: there is no card to choose for
            return
        page = BoxLayout(orientation="vertical", spacing=14)
        page.add_widget(Plain(self.t("what_does_it_do"), "title", TEXT, bold=True))
        page.add_widget(Plain(self.t("card_id", uid=form.uid), "small", TEXT_SOFT))
        self.w = {}
        height, gap = 68, 12
        column = BoxLayout(orientation="vertical", spacing=gap, size_hint=(None, None), width=760)
        for kind in KINDS:
            button = BigButton(
                self.t(f"kind_{kind}"), lambda k=kind: self.choose_kind(k), height=height, font_size=FONT["heading"]
            )
            self.w[f"kind_{kind}"] = button
            column.add_widget(button)
        column.height = len(KINDS) * height + (len(KINDS) - 1) * gap
        page.bind(width=lambda _p, width: setattr(column, "width", min(760, width)))
        page.add_widget(column)
        cancel = BigButton(self.t("cancel"), self.cancel_edit, size_hint_x=None, width=300)
        self.w["cancel"] = cancel
        page.add_widget(row(cancel, Widget()))
        page.add_widget(Widget())
        self._set_page("kind", page)

    def choose_kind(self, kind: str) -> None:
        if self.form is not None:  # None: a click from a page already left
            self.edit(self.form.set("kind", kind))

    def cancel_edit(self) -> None:
        self.show_list()
        self.say("")

    # ---- the form -------------------------------------------------------------------------

    def edit(self, form: CardForm) -> None:
        self.form = form
        self.shown_errors = False
        self.say("")
        self.message.release()
        page = BoxLayout(orientation="horizontal", spacing=32)
        left = BoxLayout(orientation="vertical", spacing=8)
        kind_name = self.t("kind_carer") if form.role == "carer" else self.t(f"kind_{form.kind}")
        title = Plain(kind_name, "title", TEXT, bold=True)
        self.w = {}
        if form.role != "carer":
            change = BigButton(
                self.t("change_kind"), self.show_kinds, size_hint_x=None, width=300, height=56, font_size=FONT["body"]
            )
            left.add_widget(row(title, change, height=60))
            self.w["change_kind"] = change
        else:
            left.add_widget(title)
        left.add_widget(Plain(self.t("card_id", uid=form.uid), "small", TEXT_SOFT))
        self.general = Plain("", "body", ERROR_TEXT, bold=True)
        left.add_widget(self.general)
        self.form_box = BoxLayout(orientation="vertical", spacing=10, size_hint_y=None, padding=[8, 8, 16, 8])
        self.form_box.bind(minimum_height=self.form_box.setter("height"))
        scroll = ScrollView(do_scroll_x=False, bar_width=12, scroll_type=["bars", "content"])
        scroll.add_widget(self.form_box)
        left.add_widget(scroll)
        page.add_widget(left)

        right = BoxLayout(orientation="vertical", spacing=12, size_hint_x=None, width=440)
        page.bind(width=lambda _p, width: setattr(right, "width", max(340, min(460, width * 0.36))))
        self.preview_heading = Plain(self.t("preview"), "heading", TEXT_SOFT)
        right.add_widget(self.preview_heading)
        self.preview_box = BoxLayout(orientation="vertical", spacing=8, size_hint_y=None)
        self.preview_box.bind(minimum_height=self.preview_box.setter("height"))
        right.add_widget(self.preview_box)
        save = BigButton(self.t("save"), self.save, height=72, font_size=FONT["heading"])
        cancel = BigButton(self.t("cancel"), self.cancel_edit)
        right.add_widget(save)
        self.w.update({"save": save, "cancel": cancel, "scroll": scroll})
        if not form.is_new:
            delete = BigButton(self.t("delete_card"), self.delete)
            right.add_widget(row(cancel, delete))
            self.w["delete"] = delete
        else:
            right.add_widget(row(cancel))
        right.add_widget(Widget())
        right.bind(size=lambda *_: self._size_preview())
        self.right = right
        page.add_widget(right)
        self._set_page("edit", page)
        self._build_fields(form)
        self._refresh_preview(form)

    def _build_fields(self, form: CardForm) -> None:
        """The fields this choice needs, rebuilt when the choice inside it changes (the service)."""
        self.form_box.clear_widgets()
        self.fields = {}
        self._add_field("label", text_box(form.label, lambda v: self.change("label", v)))
        for name in visible_fields(form):
            if name == "provider":
                buttons = [
                    self._choice_button(
                        _PROVIDER_NAMES.get(p) or self.t(f"provider_{p}_retired"), "provider", p, form.provider == p, rebuild=True
                    )
                    for p in provider_choices(form)
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
                hint = self.t(f"hint_{name}") if f"hint_{name}" in _HINTS else ""
                self._add_field(name, text_box(getattr(form, name), lambda v, n=name: self.change(n, v)), hint)
        swatches = StackLayout(orientation="lr-tb", spacing=[10, 8], size_hint_y=None)
        swatches.bind(minimum_height=swatches.setter("height"))
        for colour_name in SWATCHES:
            hex_colour = PALETTE[colour_name]
            swatch = Swatch(
                hex_colour,
                self.t(f"colour_{colour_name}"),
                form.colour.upper() == hex_colour,
                lambda c=hex_colour: self.change("colour", c, rebuild=True),
            )
            swatch.colour_name = colour_name
            self.w[f"swatch_{colour_name}"] = swatch
            swatches.add_widget(swatch)
        self._add_field("colour", swatches)
        name = display_name(Path(form.picture).name) if form.picture else self.t("no_picture")
        picture_name = Plain(name, "body", TEXT)
        choose = BigButton(
            self.t("choose_picture"),
            lambda: self.choose_file("picture"),
            size_hint_x=None,
            width=220,
            height=56,
            font_size=FONT["body"],
        )
        clear = BigButton(
            self.t("remove_picture"),
            lambda: self.change("picture", "", rebuild=True),
            size_hint_x=None,
            width=200,
            height=56,
            font_size=FONT["body"],
        )
        clear.disabled = not form.picture
        self.w["choose_picture"], self.w["remove_picture"] = choose, clear
        self._add_field("picture", row(picture_name, choose, clear, height=56))
        if self.shown_errors:
            self._show_problems(form)
        elif form.provider == "skype" and "provider" in self.fields:
            self.fields["provider"].show([], [self.t("skype_retired")])

    def _add_field(self, name: str, body: Widget, hint: str = "") -> None:
        field = Field(self.t(f"field_{name}"), body, hint)
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
        if self.form is None:  # typing or a click that arrives after the form was left
            return
        form = self.form = self.form.set(name, value)
        if rebuild:
            scroll = self.w.get("scroll")
            at = scroll.scroll_y if scroll is not None else 1
            self._build_fields(form)
            if scroll is not None:
                scroll.scroll_y = at
        elif self.shown_errors:
            self._show_problems(form)
        self._refresh_preview(form)

    def _refresh_preview(self, form: CardForm) -> None:
        face = face_of(form, self.session.base, self.locale)
        self.preview_box.clear_widgets()
        self.preview = CardFace(face, size_hint=(None, None), size=(440, round(440 * CARD_RATIO)))
        self.preview_box.add_widget(self.preview)
        self.preview_words = Plain(face.words, "body", TEXT)
        self.preview_box.add_widget(self.preview_words)
        self.preview_words.bind(height=lambda *_: self._size_preview())
        self.w["preview"] = self.preview
        self._size_preview()

    def _size_preview(self) -> None:
        """The preview as wide as its column, but never so tall that the buttons leave the window."""
        right = getattr(self, "right", None)
        if right is None or getattr(self, "preview", None) is None:
            return
        others = sum(c.height for c in right.children if c is not self.preview_box and c.size_hint_y is None)
        others += self.preview_words.height + right.spacing * (len(right.children) - 1) + self.preview_box.spacing
        width = min(right.width, max(160, (right.height - others - 8) / CARD_RATIO))
        self.preview.size = (width, round(width * CARD_RATIO))

    def _show_problems(self, form: CardForm, checked: Checked | None = None) -> None:
        checked = checked or check_form(form, self.session.registry, self.session.base, self.locale, whole_file=False)
        for name, field in self.fields.items():
            warnings = checked.warnings.get(name, [])
            if name == "provider" and form.provider == "skype":
                warnings = [self.t("skype_retired"), *warnings]
            field.show(checked.errors.get(name, []), warnings)
        general = checked.errors.get("uid", []) + checked.errors.get("kind", [])
        general += [m for n, ms in checked.errors.items() if n not in self.fields and n not in ("uid", "kind") for m in ms]
        self.general.text = "\n".join(general)
        if not checked.errors and self.message.text == self.t("fix_fields"):
            self.say("")

    def save(self) -> None:
        form = self.form
        if form is None:  # a click from a page already left
            return
        try:
            checked = self.session.save(form, self.locale)
        except (SessionError, OSError) as exc:
            self.say_failed(exc)
            return
        if checked.card is None or not checked.ok:
            self.shown_errors = True
            self._show_problems(form, checked)
            self.say(self.t("fix_fields"), ERROR_TEXT)
            return
        self.show_list()
        self.say(self.t("saved", label=checked.card.label))

    def delete(self) -> None:
        form = self.form
        if form is None:  # a click from a page already left
            return
        label = form.label
        try:
            self.session.remove(form.uid)
        except (SessionError, OSError, KeyError) as exc:
            self.say_failed(exc)
            return
        self.show_list()
        self.say(self.t("removed", label=label))

    # ---- choosing a picture or a folder ---------------------------------------------------

    def choose_file(self, what: str) -> None:
        """A picture (by its thumbnail) or the album folder, in the window's own chooser."""
        start = pictures_folder()
        current = getattr(self.form, what)
        if current:
            p = Path(current).expanduser()
            p = p if p.is_absolute() else self.session.base / p
            for candidate in (p, p.parent):
                if _is_dir(candidate):
                    start = candidate
                    break
        chooser = PictureChooser(
            self, start, lambda path: self.change(what, str(path), rebuild=True), folders_only=(what == "folder")
        )
        self.chooser = self.popup = chooser
        chooser.open()

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
            popup = self.popup
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


_STATES = {"connected", "searching", "lost", "starting"}
_HINTS = {"hint_room", "hint_server"}


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def run_app(cfg: KlickConfig, session: EditorSession, push: Callable | None = None) -> None:
    CarerApp(cfg, session, push=push).run()
