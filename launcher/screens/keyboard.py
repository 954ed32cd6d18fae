"""The on-screen keyboard, held to the rules of every screen: big letters, 7:1, 16 mm keys.

Kivy's own VKeyboard draws white letters on a grey picture of a key, 20 px high, on a strip
700 px wide that docked mode then stretches by scaling, so neither its colours nor its sizes are
known. This one draws flat plates in the theme's colours and takes its size from
:func:`launcher.theme.keyboard_size`; the app makes it the window's keyboard class. The keys
come from the layout file (``launcher/keyboards/sv.json``), as before.
"""

from __future__ import annotations

import json
import logging
from functools import cache
from pathlib import Path
from typing import Any

from kivy.graphics import Color, Rectangle, RoundedRectangle
from kivy.uix.label import Label
from kivy.uix.textinput import TextInput
from kivy.uix.vkeyboard import VKeyboard

from launcher import theme

__all__ = ["BigKeyboard", "BigTextInput", "use_big_keyboard", "above_keyboard", "layout_shape", "LAYOUT_FILE"]

log = logging.getLogger("klick.launcher")
LAYOUT_FILE = Path(__file__).resolve().parent.parent / "keyboards" / "sv.json"


@cache
def layout_shape(path: Path = LAYOUT_FILE) -> tuple[int, int]:
    """(columns, rows) of the keyboard layout file."""
    layout = json.loads(Path(path).read_text(encoding="utf-8"))
    return int(layout["cols"]), int(layout["rows"])


def above_keyboard(ctx: Any) -> tuple[float, float]:
    """(height of a one-line text field's row, top of the docked keyboard), as parts of the
    screen height: where a field sits so the keyboard leaves it and its buttons in view."""
    from kivy.core.window import Window

    s, height = ctx.sizes, max(Window.height, 1)
    cols, rows = layout_shape()
    k = theme.keyboard_size(Window.width, Window.height, s, ctx.cfg.display.dpi, cols, rows)
    need = theme.mm_to_px(theme.MIN_TOUCH_MM, ctx.cfg.display.dpi)
    return (need + s.margin // 4) / height, (k.height + s.margin // 4) / height


class BigKeyboard(VKeyboard):
    #: Set by :func:`use_big_keyboard` before the first text field takes the focus.
    sizes: theme.Sizes | None = None
    dpi: int = 160

    def key_size(self, win_w: int, win_h: int) -> theme.KeyboardSize:
        layout = self.available_layouts.get(self.layout)
        cols, rows = (layout["cols"], layout["rows"]) if layout else layout_shape()
        sizes = self.sizes or theme.sizes_for(win_w, win_h, 1.0, self.dpi)
        return theme.keyboard_size(win_w, win_h, sizes, self.dpi, cols, rows)

    def setup_mode_dock(self, *_: Any) -> None:
        """Docked along the bottom at its real size: no scaling, so the key sizes are the drawn ones."""
        self.do_translation = self.do_rotation = self.do_scale = False
        self.rotation = 0
        self.scale = 1
        win = self.get_parent_window()
        self._fit_window(win)
        win.bind(on_resize=self._update_dock_mode)

    def _update_dock_mode(self, win: Any, *_: Any) -> None:
        self._fit_window(win)

    def _fit_window(self, win: Any) -> None:
        k = self.key_size(int(win.width), int(win.height))
        if not k.fits:
            log.warning("The screen is too small for 16 mm keys; the keys are %dx%d px, as large as fit.", k.key_w, k.key_h)
        edge, half = theme.KEYBOARD_EDGE, theme.KEY_GAP / 2
        self.size = (win.width, k.height)
        self.margin_hint = [edge / k.height, edge / win.width, edge / k.height, edge / win.width]
        self.key_margin = [half, half, half, half]
        self.font_size = k.font_px
        self.pos = (0, 0)
        if self.layout in self.available_layouts:  # else Kivy loads it on the next frame and draws then
            self.refresh(True)

    def draw_keys(self) -> None:
        layout = self.available_layouts[self.layout]
        geometry = self.layout_geometry
        radius = [max(4, int(min(self.size) * 0.015))]
        self.background_key_layer.clear()
        with self.background_key_layer:
            Color(*theme.rgba(theme.KEYBOARD_BG))
            Rectangle(pos=(0, 0), size=self.size)
            Color(*theme.rgba(theme.KEY_BG))
            for line in range(1, layout["rows"] + 1):
                for pos, size in geometry[f"LINE_{line}"]:
                    RoundedRectangle(pos=pos, size=size, radius=radius)
        for line in range(1, layout["rows"] + 1):
            keys = layout[f"{self.layout_mode}_{line}"]
            for (pos, size), key in zip(geometry[f"LINE_{line}"], keys):
                self.add_widget(
                    Label(
                        text=key[0],
                        font_size=self.font_size,
                        pos=pos,
                        size=size,
                        font_name=self.font_name,
                        color=theme.rgba(theme.KEY_TEXT),
                    )
                )

    def refresh_active_keys_layer(self) -> None:
        self.active_keys_layer.clear()
        geometry = self.layout_geometry
        radius = [max(4, int(min(self.size) * 0.015))]
        with self.active_keys_layer:
            Color(*theme.rgba(theme.KEY_DOWN))
            for line_nb, index in self.active_keys.values():
                pos, size = geometry[f"LINE_{line_nb}"][index]
                RoundedRectangle(pos=pos, size=size, radius=radius)


def use_big_keyboard(window: Any, sizes: theme.Sizes, dpi: int) -> None:
    BigKeyboard.sizes = sizes
    BigKeyboard.dpi = dpi
    window.set_vkeyboard_class(BigKeyboard)


class BigTextInput(TextInput):
    """A one-line text field in the theme's button colours, with large letters."""

    def __init__(self, sizes: theme.Sizes, **kw: Any) -> None:
        kw.setdefault("font_size", sizes.px("body"))
        kw.setdefault("multiline", False)
        kw.setdefault("foreground_color", theme.rgba(theme.BUTTON_TEXT))
        kw.setdefault("background_color", theme.rgba(theme.BUTTON_BG))
        kw.setdefault("cursor_color", theme.rgba(theme.BUTTON_TEXT))
        kw.setdefault("write_tab", False)
        super().__init__(background_normal="", background_active="", **kw)
        self.sizes = sizes
        self.bind(size=self._centre_text)

    def _centre_text(self, *_: Any) -> None:
        """The line in the middle of the field, not stuck to its top edge."""
        side = self.sizes.margin // 2
        self.padding = [side, max(4, (self.height - self.font_size * 1.25) / 2), side, 0]
