"""The launcher app: bridge events in, the session decides, screens draw, actions run.

Import this module only after :func:`launcher.kivy_setup.configure_kivy`; it opens Kivy.
Everything the resident sees is decided by :class:`launcher.session.Session`; this module only
carries out its effects (start and stop programs, record usage, ask questions, speak) and
shows the screen the session names.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kivy.app import App
from kivy.clock import Clock
from kivy.core.window import Keyboard, Window
from kivy.graphics.opengl import glFinish
from kivy.uix.floatlayout import FloatLayout

from klick.bridge_client import BridgeClient
from klick.pin import check_pin
from launcher import actions, carer, guard, stopping, theme
from launcher import session as S
from launcher.browser import BrowserRun, Verdict
from launcher.feedback_thread import FeedbackThread
from launcher.i18n import Words
from launcher.keys import KeyComboError, parse_keys
from launcher.screens.album import AlbumScreen
from launcher.screens.card import CardScreen
from launcher.screens.carer import CarerScreen
from launcher.screens.home import HomeScreen
from launcher.screens.keyboard import use_big_keyboard
from launcher.screens.message import MessageScreen
from launcher.screens.pin import PinScreen
from launcher.screens.prompt import PromptScreen
from launcher.screens.waiting import WaitingScreen
from launcher.services import QuestionnaireWatch, RegistryWatch, open_feedback, open_usage, recent_unknown
from launcher.taps import TapGuard
from launcher.textures import picture_textures
from launcher.waiting import WaitingWatch, waiting_rooms
from launcher.wording import waiting_words

__all__ = ["LauncherApp", "run_launcher"]

log = logging.getLogger("klick.launcher")

#: How often the questionnaire is asked for a due question while home is idle, and how long
#: home shows first after an action ends (a question must not jump at the resident).
PROMPT_POLL_S = 20.0
PROMPT_SETTLE_S = 3.0
REGISTRY_POLL_S = 2.0
#: After a reconnect the bridge sends its greeting at once; a card it has not named by then
#: was taken out while the launcher was not listening.
GREETING_WAIT_S = 1.0
#: How often a noted SIGTERM/SIGINT is looked for, and how long a running program gets to close
#: itself when the launcher stops: together well inside the two seconds systemd is promised.
STOP_SIGNAL_POLL_S = 0.1
SHUTDOWN_GRACE_S = 0.8
#: After the resident's own call in a room ends, the server may still count the tablet there
#: for a while (until it notices the browser is gone): that room is not announced meanwhile.
OWN_CALL_GRACE_S = 90.0
#: Cards whose faces are rendered ahead of time, one per frame while home is idle (their words
#: and pictures then cost nothing when the card comes in); the rest are rendered on first use.
PREPARED_FACES = 24
_KEY_NAMES = {code: name for name, code in Keyboard.keycodes.items()}


def beside_the_screen(work: Callable[[], Any], then: Callable[[Any], None], failed: Any, what: str) -> None:
    """``work()`` on a thread of its own, its result handed to ``then`` on the screen's thread.

    For what may take seconds (a PIN's slow hash, a big card file): the screen keeps drawing
    meanwhile. An exception is logged as ``what`` and hands ``then`` the ``failed`` value.
    """

    def run() -> None:
        try:
            result = work()
        except Exception:
            log.exception(what)
            result = failed
        Clock.schedule_once(lambda _dt: then(result), -1)

    threading.Thread(target=run, name="beside-the-screen", daemon=True).start()


class LauncherApp(App):
    title = "Klick"

    def __init__(
        self, cfg: Any, *, demo_uids: tuple[str, ...] = (), probe: Callable[[LauncherApp], None] | None = None, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.cfg = cfg
        self.w = Words(cfg.locale)
        self.demo_uids = tuple(demo_uids)
        self.probe = probe
        #: Called as listener(screen_name, session_screen, t_event) after the frame that first shows
        #: a new screen is on the glass; t_event is the perf_counter when its event arrived (or None).
        self.shown_listeners: list[Callable[[str, Any, float | None], None]] = []
        #: Called as listener(perf_counter) from the browser's thread when a page first paints.
        self.page_listeners: list[Callable[[float], None]] = []
        #: What the card in the slot runs: a program (RunningProgram) or a page (BrowserRun).
        self.program: actions.RunningProgram | BrowserRun | None = None
        self.program_card: Any = None
        self.album_card: Any = None
        self._pending_start: Any = None
        self._pending_shown: tuple[str, Any, float | None] | None = None
        self._last_screen: Any = None
        self._current: Any = None
        self._quitting = False
        self._stopped = False
        self._idle_since = time.monotonic()
        self._last_prompt_poll = 0.0
        self._last_registry_poll = 0.0
        self._registry_reading = False
        self._pin_checking = False
        #: Where the time went for the last card event (perf_counter marks), for `make bench`.
        self.timing: dict[str, float] = {}
        self._timing: dict[str, float] | None = None
        self.tap_guard = TapGuard()
        self._offscreen = os.environ.get("SDL_VIDEODRIVER") == "offscreen"
        self._asked_this_idle = False
        self._asking = False  # a next_prompt call is under way beside the screen
        self._thanks_event: Any = None
        self._to_prepare: list[Any] = []
        self._prepare_event: Any = None
        try:
            self.quit_combo = parse_keys(cfg.display.quit_keys)
        except KeyComboError as exc:
            log.error("%s; using ctrl+alt+q", exc)
            self.quit_combo = parse_keys("ctrl+alt+q")

    # -- set-up -------------------------------------------------------------------------------
    def build(self) -> FloatLayout:
        guard.install()
        Window.clearcolor = theme.rgba(theme.BG)
        self.screen_size = (Window.width, Window.height)
        self.sizes = theme.sizes_for(Window.width, Window.height, self.cfg.text_scale, self.cfg.display.dpi)
        self.registry = RegistryWatch(self.cfg.paths.registry)
        self.usage = open_usage(self.cfg)
        self.questionnaire = QuestionnaireWatch(self.cfg.paths.questionnaire)
        self.feedback = open_feedback(self.usage, self.questionnaire)
        self.feedback_thread = FeedbackThread(lambda work: Clock.schedule_once(lambda _dt: work(), -1))
        self.session = S.Session(
            lookup=self.registry.get, configured_mode=self.cfg.reader.mode, carer_pin_set=bool(self.cfg.carer.pin_hash.strip())
        )
        self.session.card_file_state(self.registry.state)
        if self.usage is not None:  # without a usage database the count lives in memory only
            self.session.restore_pin(self.usage.get_state(S.PIN_STATE_KEY))
        for uid, at in reversed(recent_unknown(self.usage, S.UNKNOWN_KEPT)):
            self.session.remember_unknown(uid, at)
        self.waiting = WaitingWatch(self.cfg.calls.waiting_poll_s, on_change=self._waiting_answer)
        self._rooms_changed()
        self.root_widget = FloatLayout()
        self._build_screens()
        self.render()
        self._relayout_soon = Clock.create_trigger(lambda _dt: self._follow_window(), 0.2)
        Window.bind(on_key_down=self._on_key, on_request_close=self._on_request_close, on_flip=self._after_flip)
        Window.bind(on_resize=lambda *_: self._relayout_soon())
        # "launcher": the bridge never lets this client go when it is full of others.
        self.client = BridgeClient(
            self.cfg.paths.socket, on_event=self._from_bridge, on_connection=self._connection, hello="launcher"
        )
        Clock.schedule_interval(self._tick, 0.5)
        return self.root_widget

    def _build_screens(self) -> None:
        use_big_keyboard(Window, self.sizes, self.cfg.display.dpi)
        self.screens = {
            "home": HomeScreen(self),
            "card": CardScreen(self),
            "message": MessageScreen(self),
            "prompt": PromptScreen(self),
            "album": AlbumScreen(self),
            "pin": PinScreen(self),
            "carer": CarerScreen(self),
            "waiting": WaitingScreen(self),
        }
        self.screens["home"].tick(_dt.datetime.now())
        self._prepare_faces()

    def relayout(self, *, text_size: str | None = None, locale: str | None = None) -> None:
        """Build every screen again for the window's size now, and for a text size or language
        if given: a compositor that hands the window another size, a tablet turned on its side.
        What shows stays what shows; the album keeps its pictures."""
        if text_size is not None:
            self.cfg = dataclasses.replace(self.cfg, text_size=text_size)
        if locale is not None:
            self.cfg = dataclasses.replace(self.cfg, locale=locale)
            self.w = Words(self.cfg.locale)
        self.screen_size = (Window.width, Window.height)
        self.sizes = theme.sizes_for(Window.width, Window.height, self.cfg.text_scale, self.cfg.display.dpi)
        album = self.screens.get("album")
        if self._current is not None:
            self._drop_keyboard(self._current)
        self.root_widget.clear_widgets()
        self._current = None
        self._last_screen = None
        if album is not None:
            album.end()
        self._build_screens()
        if album is not None and album.pictures and self.album_card is not None:
            self.screens["album"].begin(album.pictures, album._folder or Path("."))
        self.render()

    def _follow_window(self) -> None:
        if (Window.width, Window.height) != self.screen_size and Window.width > 0 and Window.height > 0:
            log.info("The launcher was laid out again for %dx%d.", Window.width, Window.height)
            self.relayout()

    def on_start(self) -> None:
        self._watch_stop_signals()
        # What a kiosk compositor gave it, and the words it speaks.
        log.info("The screen is %dx%d, in %s.", Window.width, Window.height, "English" if self.w.language == "en" else "Swedish")
        self.client.start()
        if self.probe is not None:
            self.probe(self)

    def on_stop(self) -> None:
        """End everything the launcher started, then close the usage log. Kivy calls this twice
        (from :meth:`stop` and again when its loop ends); the second call finds nothing to do."""
        if self._stopped:
            return
        self._stopped = True
        if self.program is not None:
            program, card = self.program, self.program_card
            self.program, self.program_card = None, None
            program.stop(grace=SHUTDOWN_GRACE_S, wait=True)
            if card is not None and self.usage is not None:
                kind = getattr(card.action, "type", None)
                self._record_quietly("action_ended", uid=card.uid, action_type=kind, outcome="launcher_stopped")
        actions.finish_stopping(grace=SHUTDOWN_GRACE_S)  # a card taken out just before
        self.waiting.stop()
        self.client.stop(timeout=0.5)
        self.screens["album"].end()
        if self.usage is not None:
            self.usage.close()

    def _record_quietly(self, kind: str, **fields: Any) -> None:
        if self.usage is None:
            return
        try:
            self.usage.record(kind, **fields)
        except Exception:  # the log's trouble must not keep the launcher from stopping
            log.exception("could not record %s while stopping", kind)

    def quit(self) -> None:
        self._quitting = True
        self.stop()

    def _watch_stop_signals(self) -> None:
        """SIGTERM (systemctl stop) and SIGINT (Ctrl+C) stop the launcher like the quit keys."""
        if stopping.catch_stop_signals():
            Clock.schedule_interval(self._check_stop_signal, STOP_SIGNAL_POLL_S)
        self._check_stop_signal(0)

    def _check_stop_signal(self, _dt_: float) -> None:
        signum = stopping.stop_signal()
        if signum is not None and not self._quitting:
            log.info("Stopping on %s.", stopping.signal_name(signum))
            self.quit()

    # -- inputs -------------------------------------------------------------------------------
    def _from_bridge(self, event: Any) -> None:
        """Called on the bridge client's thread: hand the event to Kivy's thread."""
        received = time.perf_counter()
        Clock.schedule_once(lambda _dt: self.handle_event(event, received), -1)

    def _connection(self, connected: bool) -> None:
        Clock.schedule_once(lambda _dt: self._connected(connected), -1)

    def _connected(self, connected: bool) -> None:
        self._apply_and_render(self.session.connection(connected))
        if connected:
            count = self.session.greeting_count
            Clock.schedule_once(lambda _dt: self._apply_and_render(self.session.greeting_over(count)), GREETING_WAIT_S)

    def handle_event(self, event: Any, received: float | None = None) -> None:
        self._timing = {"received": received if received is not None else time.perf_counter(), "handled": time.perf_counter()}
        self._step(lambda: self.session.event(event), received)

    def on_album_empty(self) -> None:
        """Not one picture in the album's folder can be shown: the words for an empty album."""
        card = self.album_card
        if card is None:
            return
        folder = self.screens["album"]._folder
        self.screens["album"].end()
        self.album_card = None
        self._apply_and_render(self.session.action_failed(card, "no_pictures", str(folder)))

    def on_home(self) -> None:
        self._apply_and_render(self.session.home_pressed())

    def on_answer(self, value: Any, free_text: bool = False) -> None:
        if free_text:
            if not value:
                self._apply_and_render(self.session.prompt_dismiss())
                return
            self._apply_and_render(self.session.prompt_answer(value, text=value))
        else:
            self._apply_and_render(self.session.prompt_answer(value))

    def on_prompt_later(self) -> None:
        screen = self.session.screen
        if isinstance(screen, S.Asking) and screen.prompt.kind == "free_text":
            self._apply_and_render(self.session.prompt_dismiss())
        else:
            self._apply_and_render(self.session.prompt_later())

    # -- carer mode -------------------------------------------------------------------------
    def on_pin(self, digits: str) -> None:
        """OK on the PIN pad: the slow hash is checked on a worker thread; the pad waits."""
        if self._pin_checking:
            return
        self._apply_and_render(self.session.pin_entered())
        if not self.session.pin_pending:
            return
        self._pin_checking = True
        pin_hash = self.cfg.carer.pin_hash
        # A broken hash never lets anyone in.
        beside_the_screen(lambda: check_pin(digits, pin_hash), self._pin_checked, False, "the carer PIN could not be checked")

    def _pin_checked(self, right: bool) -> None:
        self._pin_checking = False
        self._apply_and_render(self.session.carer_pin(right))

    def on_carer_leave(self) -> None:
        self._apply_and_render(self.session.carer_leave())

    def save_carer_card(self, card: Any, then: Callable[[Any], None]) -> None:
        """Save a card programmed in carer mode beside the screen; it works the moment the carer
        card is out. ``then`` hears, on the screen's thread, None when it was saved or the
        :class:`launcher.carer.ProgramError` that says why not."""
        path = self.cfg.paths.registry

        def work() -> tuple[Any, bool]:
            try:
                carer.program_card(path, card)
            except carer.ProgramError as exc:
                return exc, False
            # Read back as any change to the file is, so the new card is in use at once.
            return None, self.registry.check()

        def done(outcome: tuple[Any, bool]) -> None:
            error, changed = outcome
            self._cards_changed(changed)
            if error is None:
                log.info("Carer mode programmed the card %s (%s).", card.uid, card.action.type)
            then(error)

        beside_the_screen(work, done, (carer.ProgramError("failed", "an error"), False), "the card could not be saved")

    def send_to_bridge(self, command: dict) -> bool:
        return self.client.send(command)

    def _on_key(self, _window: Any, key: int, _scancode: int, codepoint: str | None, modifiers: list) -> bool:
        name = _KEY_NAMES.get(key, codepoint or "")
        if self.quit_combo.matches(name, modifiers):
            self.quit()
            return True
        if key == 27:  # Escape: swallowed, never quits
            return True
        held = {m for m in modifiers or () if m in ("ctrl", "alt", "meta", "shift")}
        if self.demo_uids and not held and name in "012345" and len(name) == 1:
            number = int(name)
            if number == 0:
                self.send_to_bridge({"command": "remove"})
            elif number <= len(self.demo_uids):
                self.send_to_bridge({"command": "insert", "uid": self.demo_uids[number - 1]})
            return True
        return False

    def _on_request_close(self, *_: Any, **__: Any) -> bool:
        # On the appliance nothing but the quit keys closes the launcher; a desktop window may.
        return not (self._quitting or not self.cfg.display.fullscreen)

    # -- effects ------------------------------------------------------------------------------
    def _step(self, decide: Callable[[], list], received: float | None = None) -> None:
        """Ask the session, carry out what it says, draw: whatever fails is logged, and the
        screen keeps what it had rather than the whole launcher ending."""
        try:
            effects = decide()
        except Exception:
            log.exception("the launcher could not take in an event")
            effects = []
        self._mark("decided")
        self._apply_and_render(effects, received)

    def _mark(self, name: str) -> None:
        if self._timing is not None:
            self._timing[name] = time.perf_counter()

    def _apply_and_render(self, effects: list, received: float | None = None) -> None:
        self.apply(effects)
        self._mark("applied")
        try:
            self.render(received)
        except Exception:
            log.exception("the screen could not be drawn")

    def apply(self, effects: list) -> None:
        for effect in effects:
            try:
                self._apply_one(effect)
            except Exception:  # one failing effect (a log write) must not stop the rest
                log.exception("could not carry out %s", type(effect).__name__)

    def _apply_one(self, effect: Any) -> None:
        if isinstance(effect, S.Record):
            if self.usage is not None:
                self.usage.record(
                    effect.kind, uid=effect.uid, action_type=effect.action_type, outcome=effect.outcome, detail=effect.detail
                )
        elif isinstance(effect, S.StartAction):
            self._pending_start = effect.card
        elif isinstance(effect, S.StopAction):
            self._stop_action(effect.card)
        elif isinstance(effect, S.Speak):
            if self.cfg.speech:
                actions.speak(effect.text, self.cfg.locale)
        elif isinstance(effect, S.Announce):
            title, body = waiting_words(self.w, effect.card)
            log.info("Someone is in the room of card %s.", effect.card.uid)
            actions.announce(f"{title} {body}", self.cfg.locale, speech=self.cfg.speech)
        elif isinstance(effect, S.KeepState):
            if self.usage is not None:
                self.usage.set_state(effect.key, effect.value)
        elif isinstance(effect, S.PromptShown):
            self._feedback_call("shown", effect.prompt.id)
        elif isinstance(effect, S.PromptAnswered):
            # "Tack!" is on the screen already; a follow-up joins it when the answer is stored.
            self._feedback_call(
                "answer",
                effect.prompt.id,
                effect.value,
                effect.text,
                then=lambda follow: self._step(lambda: self.session.follow_up(follow)),
            )
            if self._thanks_event is not None:
                self._thanks_event.cancel()
            self._thanks_event = Clock.schedule_once(lambda _dt: self._thanks_over(), S.THANKS_S)
        elif isinstance(effect, S.PromptSnoozed):
            self._feedback_call("snooze", effect.prompt.id)
        elif isinstance(effect, S.PromptDismissed):
            self._feedback_call("dismiss", effect.prompt.id)

    def _thanks_over(self) -> None:
        self._thanks_event = None
        self._apply_and_render(self.session.thanks_over())

    def _feedback_call(self, name: str, *args: Any, then: Callable[[Any], None] | None = None) -> bool:
        """The questionnaire's ``name(*args)`` beside the screen, after the calls before it (each
        may wait for the disk or a lock); its result goes to ``then`` on the screen's thread, None
        after an error (logged). False when there are no questions."""
        if self.feedback is None:
            return False
        self.feedback_thread.call(self.feedback, name, *args, then=then)
        return True

    def _start_action(self, card: Any) -> None:
        if self.session.running is None or self.session.running.uid != card.uid:
            return  # the card was taken out before its first frame was drawn
        try:
            step = actions.plan(card.action, self.cfg)
        except Exception as exc:  # a card the planner cannot read is a card that cannot start
            log.exception("the action of card %s could not be planned", card.uid)
            step = actions.Unrunnable("cannot_start", f"{type(exc).__name__}: {exc}")
        if isinstance(step, actions.Unrunnable) and step.reason == "server_not_allowed":
            log.warning(
                "The call on card %s was not started: %s is not in calls.allowed_servers in klick.yaml.", card.uid, step.detail
            )
        if isinstance(step, actions.BrowserPage):
            self.program = self._open_page(card, step)
            self.program_card = card
        elif isinstance(step, actions.External):
            try:
                self.program = actions.start_program(step.argv, step.program, log_file=actions.actions_log(self.cfg.paths.home))
                self.program_card = card
            except actions.ActionError as exc:
                self._apply_and_render(self.session.action_failed(card, exc.reason, exc.detail))
                return
        elif isinstance(step, actions.BuiltInAlbum):
            pictures = actions.album_pictures(step.folder)
            if not pictures:
                self._apply_and_render(self.session.action_failed(card, "no_pictures", str(step.folder)))
                return
            self.album_card = card
            self.screens["album"].begin(pictures, step.folder)
        else:
            self._apply_and_render(self.session.action_failed(card, step.reason, step.detail))
            return
        self._apply_and_render(self.session.action_started(card))

    def _open_page(self, card: Any, page: actions.BrowserPage) -> BrowserRun:
        """The browser on its own thread; its verdict comes back to this thread."""

        def verdict(v: Verdict) -> None:
            Clock.schedule_once(lambda _dt: self._browser_verdict(card, run, v), -1)

        def painted(at: float) -> None:
            for listener in list(self.page_listeners):
                try:
                    listener(at)
                except Exception:
                    log.exception("a page listener failed")

        run = BrowserRun(
            page,
            load_timeout=self.cfg.browser.load_timeout_s,
            on_verdict=verdict,
            on_painted=painted,
            log_file=actions.actions_log(self.cfg.paths.home),
        )
        return run.start()

    def _browser_verdict(self, card: Any, run: BrowserRun, verdict: Verdict) -> None:
        if self.program is not run:
            return  # that browser has been ended already (card out, next card)
        if verdict.failed:
            log.info("The page of card %s could not start: %s (%s).", card.uid, verdict.outcome, verdict.detail)
        else:
            log.info("The call on card %s was ended by the other side.", card.uid)
        self._step(lambda: self.session.browser_verdict(card, verdict.outcome, verdict.detail))

    def _stop_action(self, card: Any) -> None:
        if self._pending_start is not None and self._pending_start.uid == card.uid:
            self._pending_start = None
        if self.program is not None and self.program_card is not None and self.program_card.uid == card.uid:
            self.program.stop()
            self.program, self.program_card = None, None
            if getattr(card.action, "type", None) == "video_call":
                self.waiting.quiet(card.uid, OWN_CALL_GRACE_S)
        if self.album_card is not None and self.album_card.uid == card.uid:
            self.screens["album"].end()
            self.album_card = None

    # -- drawing ------------------------------------------------------------------------------
    def _screen_key(self, screen: Any) -> str:
        if isinstance(screen, S.ShowingCard):
            if self.album_card is not None and self.album_card.uid == screen.card.uid and screen.phase != "starting":
                return "album"
            return "card"
        if isinstance(
            screen, (S.UnknownCard, S.ReaderLost, S.ActionFailed, S.CardsUnreadable, S.CallEnded, S.ReaderStarting, S.Thanks)
        ):
            return "message"
        if isinstance(screen, S.Asking):
            return "prompt"
        if isinstance(screen, S.CarerPin):
            return "pin"
        if isinstance(screen, S.CarerMode):
            return "carer"
        if isinstance(screen, S.CarerNotSetUp):
            return "message"
        if isinstance(screen, S.Home) and screen.waiting is not None:
            return "waiting"
        return "home"

    def render(self, received: float | None = None) -> None:
        screen = self.session.screen
        key = self._screen_key(screen)
        widget = self.screens[key]
        if widget is not self._current:
            if self._current is not None:
                self._drop_keyboard(self._current)
                self._current.unbind(bg=self._paint)
            self.root_widget.clear_widgets()
            self.root_widget.add_widget(widget)
            self._current = widget
            widget.bind(bg=self._paint)
        widget.update(self.session)
        self._paint()
        self._mark("updated")
        if screen is not self._last_screen:
            if not isinstance(self._last_screen, (S.Home, S.Asking, S.Thanks)) and isinstance(screen, S.Home):
                self._asked_this_idle = False  # a new idle moment: it may bring one question
            self._last_screen = screen
            self._pending_shown = (key, screen, received)
            if isinstance(screen, S.Home):
                self._idle_since = time.monotonic()
                self._resume_faces()
            # The words and pictures now, not in the middle of the frame (their textures are
            # kept: a card seen before costs nothing here).
            for child in widget.walk(restrict=True):
                if hasattr(child, "render_options"):
                    child.texture_update()
            self._mark("textures")

    def _paint(self, *_: Any) -> None:
        """The window's clear colour is the screen's background: no rectangle over the glass."""
        if self._current is not None:
            Window.clearcolor = self._current.bg

    @staticmethod
    def _drop_keyboard(widget: Any) -> None:
        """A text field on a screen that goes away keeps its focus, and with it the on-screen
        keyboard, over whatever comes next (home!): take the focus away first."""
        from kivy.uix.textinput import TextInput

        for child in widget.walk(restrict=True):
            if isinstance(child, TextInput) and child.focus:
                child.focus = False
        Window.release_all_keyboards()

    def _after_flip(self, *_: Any) -> None:
        if self._offscreen:
            # SDL's offscreen driver has no glass to swap to, so the GL never finishes a frame
            # by itself: textures let go are never freed, and "drawn" would mean "queued".
            glFinish()
        timing, self._timing = self._timing, None
        if self._pending_shown is not None:
            if timing is not None:
                timing["drawn"] = time.perf_counter()
                self.timing = timing
            shown, self._pending_shown = self._pending_shown, None
            for listener in list(self.shown_listeners):
                try:
                    listener(*shown)
                except Exception:  # an observer's failure must never hold up the card's action
                    log.exception("a screen listener failed")
        if self._pending_start is not None:
            card, self._pending_start = self._pending_start, None
            try:
                self._start_action(card)
            except Exception as exc:  # a card's data that breaks its start fails that card only
                log.exception("the action of card %s could not start", card.uid)
                detail = f"{type(exc).__name__}: {exc}"
                self._step(lambda: self.session.action_failed(card, "cannot_start", detail))

    # -- the clock ----------------------------------------------------------------------------
    def _tick(self, _dt_: float) -> None:
        try:
            self._tick_once()
        except Exception:  # the clock must keep ticking: it is what brings home back
            log.exception("the launcher's clock tick failed")

    def _tick_once(self) -> None:
        now = time.monotonic()
        self.waiting.set_active(self.session.home_idle)
        if self._current is self.screens["home"]:
            self.screens["home"].tick(_dt.datetime.now())
        before = self.session.screen
        effects = self.session.tick()
        if effects or self.session.screen is not before:
            self._apply_and_render(effects)
        if self.program is not None:
            code = self.program.poll()
            if code is not None:
                card = self.program_card
                self.program.stop()  # its helpers, if it left any
                self.program, self.program_card = None, None
                if code == 0:
                    self._apply_and_render(self.session.action_exited(card))
                else:
                    self._apply_and_render(self.session.action_failed(card, "exited", f"exit status {code}"))
        if now - self._last_registry_poll >= REGISTRY_POLL_S and not self._registry_reading:
            self._last_registry_poll = now
            if self.registry.changed():
                self._read_registry()
            if self.questionnaire.changed():
                self._read_questionnaire()
        if (
            self.feedback is not None
            and self.session.idle
            and not self._asked_this_idle
            and now - self._idle_since >= PROMPT_SETTLE_S
            and now - self._last_prompt_poll >= PROMPT_POLL_S
        ):
            self.ask_for_prompt()

    def _read_questionnaire(self) -> None:
        """A questionnaire pushed or edited while the launcher runs: read beside the screen; a
        broken one keeps the last good questions (:class:`launcher.services.QuestionnaireWatch`)."""
        # check() never raises; if it did, the next poll tries again.
        beside_the_screen(self.questionnaire.check, self._questionnaire_read, False, "the questionnaire could not be read")

    def _questionnaire_read(self, changed: bool) -> None:
        if not changed:
            return
        if self.feedback is not None and self.questionnaire.current is not None:
            self.feedback.questionnaire = self.questionnaire.current
        elif self.feedback is None:
            self.feedback = open_feedback(self.usage, self.questionnaire)

    def _read_registry(self) -> None:
        """Read the changed card file beside the screen (a big file takes seconds to check);
        the session hears of the outcome on the screen's thread."""
        self._registry_reading = True
        beside_the_screen(self.registry.check, self._registry_read, False, "the card file could not be read")

    def _registry_read(self, changed: bool) -> None:
        self._registry_reading = False
        self._cards_changed(changed)

    def _cards_changed(self, changed: bool) -> None:
        """After the card file was read: new cards bring their rooms, pictures and faces."""
        if changed:
            self._rooms_changed()
            picture_textures.forget()
            self._prepare_faces()
            self._step(lambda: self.session.card_file_state(self.registry.state))

    # -- faces ahead of time -------------------------------------------------------------------
    def _prepare_faces(self) -> None:
        """Render the faces of the first cards in the file ahead of time, one per frame while
        home is idle (a card put in meanwhile is rendered on first use, as any other)."""
        cards = [c for c in self.registry.registry.cards if c.role == "resident" and c.enabled]
        self._to_prepare = cards[:PREPARED_FACES]
        self._resume_faces()

    def _resume_faces(self) -> None:
        if self._to_prepare and self._prepare_event is None:
            self._prepare_event = Clock.schedule_interval(self._prepare_one, 0)

    def _prepare_one(self, _dt_: float) -> bool:
        if not self._to_prepare or not isinstance(self.session.screen, S.Home):
            # Done, or the resident is using the tablet: no look every frame through a whole
            # call; render() starts again when home is back.
            self._prepare_event = None
            return False
        if self._pending_shown is not None:
            return True  # home's first frame first
        card = self._to_prepare.pop(0)
        try:
            self.screens["card"].prepare(card, self.session.mode)
        except Exception:  # a face that cannot be made ahead is made when it is needed
            log.exception("the face of card %s could not be made ahead", card.uid)
        return True

    # -- someone waiting in a call card's room ---------------------------------------------------
    def _rooms_changed(self) -> None:
        self.waiting.set_rooms(waiting_rooms(self.registry.registry.cards, self.cfg.calls.allowed_servers))

    def _waiting_answer(self, uids: tuple[str, ...]) -> None:
        """From a worker thread: the cards whose rooms have someone in them."""
        Clock.schedule_once(lambda _dt: self._someone_waiting(uids), -1)

    def _someone_waiting(self, uids: tuple[str, ...]) -> None:
        cards = [card for card in (self.registry.get(uid) for uid in uids) if card is not None]
        self._step(lambda: self.session.someone_waiting(cards))

    def ask_for_prompt(self) -> bool:
        """Ask the questionnaire, beside the screen, for a due question; True when it is asked
        (a due one then comes on the screen, if home is still idle when the answer comes).

        One question an idle moment: after an answer (or "not now") the next waits until a card
        has been used and home is back (and the questionnaire's ``between_minutes`` have passed).
        """
        self._last_prompt_poll = time.monotonic()
        if self.feedback is None or not self.session.idle or self._asked_this_idle or self._asking:
            return False
        self._asking = self._feedback_call("next_prompt", self.session.running is not None, then=self._prompt_found)
        return self._asking

    def _prompt_found(self, prompt: Any) -> None:
        self._asking = False
        if prompt is None or not self.session.idle or self._asked_this_idle:
            return  # not shown, so still queued: a later idle moment asks it
        self._asked_this_idle = True
        self._apply_and_render(self.session.prompt_due(prompt))

    # -- for tests, benchmarks and `klick launcher --screenshot` ------------------------------
    def screenshot(self, path: str | Path) -> Path:
        """The whole screen as a PNG, drawn into memory (works offscreen too)."""
        from kivy.graphics import ClearBuffers, ClearColor, Fbo

        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        # Every layer on the window, so the docked on-screen keyboard is in the picture too.
        fbo = Fbo(size=Window.size, with_stencilbuffer=True)
        with fbo:
            ClearColor(*Window.clearcolor)  # each screen's background is the window's clear colour
            ClearBuffers()
        # A canvas can have one parent: each layer is lent to the Fbo and put back where it was.
        layers = [(child.canvas, Window.canvas.indexof(child.canvas)) for child in reversed(Window.children)]
        for layer, _ in layers:
            Window.canvas.remove(layer)
            fbo.add(layer)
        try:
            fbo.draw()
        finally:
            for layer, index in reversed(layers):
                fbo.remove(layer)
                Window.canvas.insert(index, layer)
        from PIL import Image

        # Pillow with light compression: a screenshot is saved in a tenth of the time Kivy takes.
        width, height = fbo.size
        image = Image.frombytes("RGBA", (int(width), int(height)), fbo.pixels).transpose(Image.Transpose.FLIP_TOP_BOTTOM)
        image.convert("RGB").save(p, "PNG", compress_level=1)
        return p


def run_launcher(cfg: Any, **kw: Any) -> None:
    """Run the launcher until it is closed or stopped, then free the glass (the window) before
    Python's own teardown."""
    LauncherApp(cfg, **kw).run()
    Window.close()
