"""One questionnaire question, with big answers and a way out ("Not now") that is never hidden."""

from __future__ import annotations

from typing import Any

from kivy.uix.boxlayout import BoxLayout
from kivy.uix.textinput import TextInput

from launcher.screens.keyboard import BigTextInput, above_keyboard
from launcher.screens.widgets import BigButton, FaceButton, Filled, Text


class PromptScreen(Filled):
    def __init__(self, ctx: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.ctx = ctx
        s = ctx.sizes
        self.question = Text(
            text="", font_size=s.px("title"), bold=True, size_hint=(0.9, 0.26), pos_hint={"center_x": 0.5, "top": 0.96}
        )
        self.answers = BoxLayout(
            orientation="horizontal", spacing=s.margin, size_hint=(0.92, 0.36), pos_hint={"center_x": 0.5, "center_y": 0.5}
        )
        self.later = BigButton(
            ctx.w("Not now"), ctx.on_prompt_later, font_px=s.px("button"), touch=s.touch, pos_hint={"right": 0.97, "y": 0.04}
        )
        for child in (self.question, self.answers, self.later):
            self.add_widget(child)
        self._prompt_id = None
        self.entry: TextInput | None = None

    def update(self, session: Any) -> None:
        prompt = session.screen.prompt
        if prompt.id == self._prompt_id:
            return
        self._prompt_id = prompt.id
        ctx, s, w = self.ctx, self.ctx.sizes, self.ctx.w
        self.question.text = prompt.text.get(ctx.cfg.locale)
        self.question.font_size = s.px("title")
        self.question.size_hint = (0.9, 0.26)
        self.question.pos_hint = {"center_x": 0.5, "top": 0.96}
        self.answers.clear_widgets()
        self.entry = None
        self.answers.size_hint = (0.92, 0.36)
        self.answers.pos_hint = {"center_x": 0.5, "center_y": 0.5}
        self.later.text = w("Not now")
        if self.later.parent is not self:
            self.later.parent.remove_widget(self.later)
            self.later.size_hint = (None, None)
            self.later.pos_hint = {"right": 0.97, "y": 0.04}
            self.add_widget(self.later)
        if prompt.kind == "smiley5":
            for value in range(1, 6):
                self.answers.add_widget(FaceButton(value, lambda v: ctx.on_answer(v)))
        elif prompt.kind == "yes_no":
            self.answers.padding = [s.margin * 3, 0]
            for value, label in (("yes", w("Yes")), ("no", w("No"))):
                self.answers.add_widget(
                    BigButton(
                        label,
                        lambda v=value: ctx.on_answer(v),
                        font_px=round(s.px("button") * 1.2),
                        touch=s.touch,
                        size_hint=(1, 1),
                    )
                )
        elif prompt.kind == "choice":
            self.answers.padding = [0, 0]
            for option in prompt.options:
                self.answers.add_widget(
                    BigButton(
                        option.label.get(ctx.cfg.locale),
                        lambda v=option.value: ctx.on_answer(v),
                        font_px=s.px("button"),
                        touch=s.touch,
                        size_hint=(1, 1),
                        text_size=(None, None),
                    )
                )
                button = self.answers.children[0]
                button.bind(size=lambda b, sz: setattr(b, "text_size", (sz[0] - s.margin, None)))
        else:  # free_text: always optional; the on-screen keyboard docks at the bottom
            self.answers.padding = [0, 0]
            row, keyboard_top = self.above_keyboard()
            self.answers.size_hint = (0.94, row)
            self.answers.pos_hint = {"center_x": 0.5, "y": keyboard_top}
            # The keyboard covers most of the screen: the question gets what is left, in body size.
            self.question.font_size = s.px("body")
            self.question.size_hint = (0.94, 0.985 - keyboard_top - row - 0.01)
            self.question.pos_hint = {"center_x": 0.5, "top": 0.985}
            self.entry = BigTextInput(s, size_hint=(1, 1))
            send = BigButton(
                w("Send"),
                lambda: ctx.on_answer(self.entry.text.strip() or None, free_text=True),
                font_px=s.px("button"),
                touch=s.touch,
                size_hint=(None, 1),
            )
            self.answers.add_widget(self.entry)
            self.answers.add_widget(send)
            # The on-screen keyboard docks over the lower half: "Skip" sits beside "Send", above it.
            self.later.text = w("Skip")
            self.remove_widget(self.later)
            self.later.size_hint = (None, 1)
            self.answers.add_widget(self.later)
        self.answers.padding = self.answers.padding if prompt.kind == "yes_no" else [0, 0]

    def above_keyboard(self) -> tuple[float, float]:
        """(height of the answer row, top of the docked keyboard), as parts of the screen height."""
        return above_keyboard(self.ctx)
