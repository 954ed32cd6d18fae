"""The built-in photo album: newest picture first, a slow cross-fade, a tap pauses and resumes.

Moving content must be pausable (WCAG 2.2.2), and a resident with dementia may want to look at
one picture for a long time: a tap anywhere holds it, another tap lets it go on. No network.

A phone's photo is 12 megapixels and often stored sideways with an EXIF note: the pictures are
made to fit the screen upright beside the screen's thread (:data:`launcher.textures.picture_textures`)
and a picture is shown when it is there; one that cannot be read or is too big is passed over.
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
from launcher.textures import picture_textures

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
        #: The size pictures are made to fit: the whole screen.
        self.picture_px = int(max(W, H))
        #: (index, fade) of the picture to show as soon as it is decoded.
        self._waiting: tuple[int, bool] | None = None
        picture_textures.listen(self._picture_ready)

    # -- life cycle ---------------------------------------------------------------------------
    def begin(self, pictures: list[Path], folder: Path) -> None:
        self.end()
        self._folder = folder
        self.pictures = pictures
        self.index = 0
        self.paused = False
        self._show_paused(False)
        self.front.texture = None
        self.front.opacity = 1
        self.back.opacity = 0
        self._go_to(0, fade=False)
        self._timer = Clock.schedule_interval(self._next, SHOW_SECONDS)

    def end(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._waiting = None
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
        if self.paused or len(self.pictures) < 2 or self._waiting is not None:
            return
        self._go_to((self.index + 1) % len(self.pictures), fade=True)

    def _go_to(self, index: int, *, fade: bool) -> None:
        """Show picture ``index`` once it is made; pictures that cannot be shown are passed over."""
        for _ in range(len(self.pictures)):
            path = self.pictures[index]
            texture = picture_textures.texture(path, self.picture_px)
            if texture is not None:
                self._waiting = None
                self.index = index
                self._show(texture, fade)
                following = self.pictures[(index + 1) % len(self.pictures)]
                picture_textures.request(following, self.picture_px)  # ready when its turn comes
                return
            if not picture_textures.failed(path, self.picture_px):
                self._waiting = (index, fade)  # being made: _picture_ready goes on
                return
            index = (index + 1) % len(self.pictures)
        self._waiting = None  # not one picture can be shown
        if self.front.texture is None:
            self.ctx.on_album_empty()  # a dark screen says nothing: say so, as for an empty folder

    def _picture_ready(self, path: Any, px: int) -> None:
        if self._waiting is None or not self.running or px != self.picture_px:
            return
        index, fade = self._waiting
        if index < len(self.pictures) and self.pictures[index] == path:
            self._go_to(index, fade=fade)

    def _show(self, texture: Any, fade: bool) -> None:
        if not fade:
            self.front.texture = texture
            return
        self.back.texture = texture
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
