"""One questionnaire question, with big answers and a way out ("Not now") that is never hidden.

The question says what it is about ("How did the call with Anna go?") and shows that card's
picture beside it. A free-text question opens with the on-screen keyboard already up, and its
"Skip" and "Send" stand side by side, the same size. A second tap within a second of
the first counts for nothing: stiff fingers press twice (:mod:`launcher.taps`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kivy.clock import Clock
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.gridlayout import GridLayout
from kivy.uix.image import Image
from kivy.uix.textinput import TextInput

from launcher import theme
from launcher.screens.card import has_picture
from launcher.screens.keyboard import BigTextInput, above_keyboard
from launcher.screens.layout import Frame
from launcher.screens.widgets import BigButton, FaceButton, Filled, Screen, Text, keep_same_size, place
from launcher.taps import TapGuard
from launcher.textures import picture_textures
from launcher.wording import question_words

__all__ = ["PromptScreen"]


class PromptScreen(Screen):
    def __init__(self, ctx: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.ctx = ctx
        self.f = Frame.of(ctx)
        s, f = ctx.sizes, self.f
        self.guard: TapGuard = getattr(ctx, "tap_guard", None) or TapGuard()
        self.question = Text(font_size=s.px("title"), bold=True)
        # The card the question is about: its colour around its picture.
        self.face = Filled()
        self.face_picture = Image(fit_mode="contain", size_hint=(None, None))
        self.face.add_widget(self.face_picture)
        self.face.bind(pos=self._fit_picture, size=self._fit_picture)
        self.answers = BoxLayout(orientation="horizontal", spacing=s.margin)
        self.later = BigButton(
            ctx.w("Not now"),
            self._tapped(ctx.on_prompt_later),
            font_px=s.px("button"),
            touch=s.touch,
            max_width=0.4 * f.width,
            pos_hint={"right": 0.97, "y": f.button_y / f.height},
        )
        #: The session's screen this was built for: a question put off ("Not now") comes back
        #: as a new screen with the same prompt, and is built afresh (empty field, keyboard up).
        self._screen: Any = None
        self._picture: Any = None
        self.entry: TextInput | None = None
        picture_textures.listen(self._picture_ready)

    def _tapped(self, action: Callable[..., None]) -> Callable[..., None]:
        def tap(*args: Any) -> None:
            if self.guard.accept():
                action(*args)

        return tap

    # -- the question's card -------------------------------------------------------------------
    def _card(self, prompt: Any) -> Any:
        uid = getattr(prompt, "uid", None)
        return self.ctx.registry.get(uid) if uid else None

    def _face_box(self, with_card: bool, kind: str = "") -> tuple[Any, Any]:
        """(face box or None, question box) above the answers. A choice's answers are words, two
        rows of them lying down: they get more of the height than faces or yes and no."""
        f = self.f
        W, H, m = f.width, f.height, f.margin
        split = (0.56 if f.portrait else (0.68 if kind == "choice" else 0.62)) * H
        if not with_card:
            return None, (m, split, W - 2 * m, H - m - split)
        if f.portrait:
            fh = 0.16 * H
            fw = fh * 1.3
            return (W / 2 - fw / 2, H - m - fh, fw, fh), (m, split, W - 2 * m, H - m - fh - m / 2 - split)
        fh = H - m - split
        fw = min(fh * 1.3, 0.3 * W)
        return (m, split, fw, fh), (m + fw + m / 2, split, W - 2 * m - fw - m / 2, fh)

    def _show_face(self, card: Any, box: Any) -> None:
        self.face.bg = theme.rgba(card.colour)
        self._picture = card.picture if has_picture(card) else None
        px = int(max(box[2], box[3]))
        texture = picture_textures.texture(card.picture, px) if self._picture is not None else None
        self.face_picture.texture = texture
        self.face_picture.opacity = 1 if texture is not None else 0

    def _fit_picture(self, *_: Any) -> None:
        """The picture inside the card's colour, a narrow frame of it around."""
        pad = self.ctx.sizes.margin / 4
        self.face_picture.pos = (self.face.x + pad, self.face.y + pad)
        self.face_picture.size = (max(1, self.face.width - 2 * pad), max(1, self.face.height - 2 * pad))

    def _picture_ready(self, path: Any, px: int) -> None:
        if self._picture is not None and path == self._picture:
            texture = picture_textures.texture(path, px)
            if texture is not None:
                self.face_picture.texture = texture
                self.face_picture.opacity = 1

    # -- showing -------------------------------------------------------------------------------
    def update(self, session: Any) -> None:
        if session.screen is self._screen:
            return
        self._screen = session.screen
        prompt = session.screen.prompt
        ctx, s, w, f = self.ctx, self.ctx.sizes, self.ctx.w, self.f
        W, H, m = f.width, f.height, f.margin
        if self.entry is not None:
            self.entry.focus = False  # its keyboard goes with it
        self.clear_widgets()
        self.answers.clear_widgets()
        self.entry = None
        card = self._card(prompt)
        words = question_words(w, prompt, card, ctx.cfg.locale)
        if prompt.kind == "free_text":
            self._free_text(words)
            return
        face, question = self._face_box(card is not None, prompt.kind)
        if face is not None:
            place(self.face, face, W, H)
            self.add_widget(self.face)
            self._show_face(card, face)
        place(self.question, question, W, H)
        self.question.say(words, max_px=s.px("title"))
        self.add_widget(self.question)
        split = question[1]
        answers = (0.04 * W, f.bar + m / 2, 0.92 * W, split - m / 2 - f.bar - m / 2)
        self.later.say(w("Not now"))
        self.add_widget(self.later)
        if prompt.kind == "smiley5":
            self.answers = BoxLayout(orientation="horizontal", spacing=m)
            for value in range(1, 6):
                self.answers.add_widget(FaceButton(value, self._tapped(ctx.on_answer)))
        elif prompt.kind == "yes_no":
            self.answers = BoxLayout(orientation="horizontal", spacing=m * 2, padding=[m * 2 if f.portrait else m * 4, 0])
            for answer, label in (("yes", w("Yes")), ("no", w("No"))):
                self.answers.add_widget(self._answer(label, answer, round(s.px("button") * 1.2)))
            keep_same_size(list(self.answers.children), round(s.px("button") * 1.2))
        else:  # choice: two columns lying down when there are more than two; one column upright
            options = list(prompt.options)
            cols = 1 if f.portrait else (2 if len(options) > 2 else len(options))
            self.answers = GridLayout(cols=max(1, cols), spacing=m / 2)
            for option in options:
                self.answers.add_widget(self._answer(option.label.get(ctx.cfg.locale), option.value, s.px("button")))
            keep_same_size(list(self.answers.children), s.px("button"))
        place(self.answers, answers, W, H)
        self.add_widget(self.answers)

    def _answer(self, label: str, value: Any, font_px: int) -> BigButton:
        s = self.ctx.sizes
        return BigButton(
            label,
            self._tapped(lambda v=value: self.ctx.on_answer(v)),
            font_px=font_px,
            touch=s.touch,
            size_hint=(1, 1),
        )

    def _free_text(self, words: str) -> None:
        """The keyboard docks at the bottom; the question, the field and both buttons stay above it."""
        ctx, s, w, f = self.ctx, self.ctx.sizes, self.ctx.w, self.f
        W, H, m = f.width, f.height, f.margin
        row, keyboard_top = self.above_keyboard()
        row_px, top_px = row * H, keyboard_top * H
        bar = BoxLayout(orientation="horizontal", spacing=m // 2)
        place(bar, (0.03 * W, top_px, 0.94 * W, row_px), W, H)
        self.entry = BigTextInput(s, size_hint=(1, 1))
        send = BigButton(w("Send"), self._tapped(self._send), font_px=s.px("button"), touch=s.touch, size_hint=(None, 1))
        skip = BigButton(w("Skip"), self._tapped(ctx.on_prompt_later), font_px=s.px("button"), touch=s.touch, size_hint=(None, 1))
        # "Skip" and "Send" the same size, side by side: neither looks like the one to press.
        same = min(max(send.width, skip.width), 0.25 * W)
        send.width = skip.width = same
        keep_same_size([send, skip], s.px("button"))
        bar.add_widget(self.entry)
        bar.add_widget(send)
        bar.add_widget(skip)
        question_y = top_px + row_px + m / 4
        place(self.question, (m, question_y, W - 2 * m, H - m / 2 - question_y), W, H)
        self.question.say(words, max_px=s.px("body"))
        self.add_widget(self.question)
        self.add_widget(bar)
        self.send_button, self.skip_button = send, skip
        entry = self.entry
        # Up at once: the keyboard docks as soon as the field has the focus, on the next frame
        # (the field must be on the window first).
        Clock.schedule_once(lambda _dt: setattr(entry, "focus", True) if entry.get_root_window() else None, 0)

    def _send(self) -> None:
        text = self.entry.text.strip() if self.entry is not None else ""
        self.ctx.on_answer(text or None, free_text=True)

    def above_keyboard(self) -> tuple[float, float]:
        """(height of the answer row, top of the docked keyboard), as parts of the screen height."""
        return above_keyboard(self.ctx)
