"""The built-in photo album: newest picture first, a slow cross-fade, a tap pauses and resumes.

Moving content must be pausable (WCAG 2.2.2), and a resident with dementia may want to look at
one picture for a long time: a tap anywhere holds it, another tap lets it go on. No network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy.animation import Animation
from kivy.clock import Clock
from kivy.uix.image import Image

from launcher import theme
from launcher.screens.layout import Frame
from launcher.screens.widgets import BigButton, Filled, Screen, Text, place

#: Seconds a picture stays, and the length of the fade between two.
SHOW_SECONDS = 8.0
FADE_SECONDS = 1.5


class AlbumScreen(Screen):
    def __init__(self, ctx: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.bg = theme.rgba(theme.ALBUM_BG)
        self.ctx = ctx
        s, f = ctx.sizes, Frame.of(ctx)
        W, H, m = f.width, f.height, f.margin
        self.front = Image(fit_mode="contain", size_hint=(1, 1), pos_hint={"x": 0, "y": 0})
        self.back = Image(fit_mode="contain", size_hint=(1, 1), pos_hint={"x": 0, "y": 0}, opacity=0)
        band_h = min(max(s.px("body") * 2.6, f.touch), 0.3 * H)
        self.paused_band = place(Filled(), (0, 0, W, band_h), W, H)
        self.paused_band.bg = theme.rgba(theme.ALBUM_BG, 1.0)
        self.paused_text = place(
            Text(
                ctx.w("The pictures are standing still. Tap to go on."),
                font_size=s.px("body"),
                color=theme.rgba(theme.ALBUM_TEXT),
            ),
            (m, m / 4, W - 2 * m, band_h - m / 2),
            W,
            band_h,  # placed inside the band
        )
        self.paused_band.add_widget(self.paused_text)
        self.home = BigButton(
            ctx.w("Home"),
            ctx.on_home,
            font_px=s.px("button"),
            touch=s.touch,
            max_width=0.4 * W,
            pos_hint={"right": 1 - m / W, "top": 1 - m / 2 / H},
        )
        self.add_widget(self.back)
        self.add_widget(self.front)
        self.pictures: list[Path] = []
        self.index = 0
        self.paused = False
        self._timer = None
        self._has_home = False
        self._folder: Path | None = None

    # -- life cycle ---------------------------------------------------------------------------
    def begin(self, pictures: list[Path], folder: Path) -> None:
        self.end()
        self._folder = folder
        self.pictures = pictures
        self.index = 0
        self.paused = False
        self._show_paused(False)
        self.front.source = str(pictures[0])
        self.front.opacity = 1
        self.back.opacity = 0
        self._timer = Clock.schedule_interval(self._next, SHOW_SECONDS)

    def end(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        Animation.cancel_all(self.front)
        Animation.cancel_all(self.back)

    @property
    def running(self) -> bool:
        return self._timer is not None

    def update(self, session: Any) -> None:
        want_home = session.shows_home_button
        if want_home != self._has_home:
            self._has_home = want_home
            (self.add_widget if want_home else self.remove_widget)(self.home)

    # -- showing ------------------------------------------------------------------------------
    def _next(self, *_: Any) -> None:
        if self.paused or len(self.pictures) < 2:
            return
        self.index = (self.index + 1) % len(self.pictures)
        self.back.source = str(self.pictures[self.index])
        self.back.opacity = 0
        Animation.cancel_all(self.front)
        Animation.cancel_all(self.back)
        Animation(opacity=0, duration=FADE_SECONDS).start(self.front)
        fade_in = Animation(opacity=1, duration=FADE_SECONDS)
        fade_in.bind(on_complete=self._swap)
        fade_in.start(self.back)

    def _swap(self, *_: Any) -> None:
        # The picture now showing becomes the front one. Kivy draws the end of ``children`` first,
        # so the faded-out picture goes to the end: under the new one, the pause band and Home.
        self.front, self.back = self.back, self.front
        self.remove_widget(self.back)
        self.add_widget(self.back, index=len(self.children))

    def toggle_pause(self) -> None:
        self.paused = not self.paused
        self._show_paused(self.paused)

    def _show_paused(self, paused: bool) -> None:
        if paused and self.paused_band.parent is None:
            self.add_widget(self.paused_band)
        elif not paused and self.paused_band.parent is not None:
            self.remove_widget(self.paused_band)

    def on_touch_down(self, touch: Any) -> bool:
        if self._has_home and self.home.collide_point(*touch.pos):
            return super().on_touch_down(touch)
        if self.collide_point(*touch.pos):
            self.toggle_pause()
            return True
        return super().on_touch_down(touch)
