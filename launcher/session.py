"""What the screen shows and which action runs, decided from events alone (no Kivy, no I/O).

The launcher's behaviour is a small state machine: card events, reader health, the end of an
action, the home button and due questionnaire prompts go in; a new screen and a list of
effects (start or stop an action, record a usage event, say a word) come out. Keeping it pure
means hypothesis can throw any sequence of events at it, and the Kivy app only draws what it
is told and carries out effects.

Rules (DESIGN.md, "The card's life"):

* slot mode: card in → its card screen, then its action; card out → the action ends (unless the
  card says ``on_remove: keep``) and home returns.
* tap mode (configured, or a reader that can only report taps): a tap starts; a second tap of
  the same card, or the home button, ends it. Removals mean nothing.
* an unknown or switched-off card never runs anything; it is shown and recorded.
* a lost reader ends the running action (its removal can no longer be seen, and a resident
  must never be left in a full-screen call with no way out) and shows calm words until the
  reader is back, which returns home by itself.
* a questionnaire prompt appears only on an idle home screen; a card put in while it shows
  puts it off ("snooze"), it is never lost.
* a carer card opens the PIN pad, and the right PIN the carer screen; taking the card out (in
  tap mode: tapping it again) always leaves. No PIN configured: a plain "not set up" and nothing
  else. Three wrong PINs: home, a calm notice, and a pause before the PIN pad opens again.
* after a reconnect the bridge greets with its state: a status line, then the card in the slot
  if there is one. A card the launcher shows that the greeting leaves out was taken out while
  nobody listened, and counts as removed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from klick.events import CardPresent, CardRemoved, Event, ReaderStatus

__all__ = [
    "Home",
    "ShowingCard",
    "UnknownCard",
    "ReaderLost",
    "ActionFailed",
    "Asking",
    "CarerPin",
    "CarerNotSetUp",
    "CarerMode",
    "Screen",
    "UnknownSeen",
    "PIN_TRIES",
    "PIN_PAUSE_S",
    "UNKNOWN_KEPT",
    "StartAction",
    "StopAction",
    "Record",
    "Speak",
    "PromptShown",
    "PromptAnswered",
    "PromptSnoozed",
    "PromptDismissed",
    "Effect",
    "Session",
    "FAILURE_REASONS",
]

#: Why an action could not run, each with its own plain-words message on the screen.
FAILURE_REASONS = ("missing", "not_allowed", "exited", "no_action", "no_pictures", "cannot_start")
#: Wrong PINs in a row before the PIN pad closes, and how long it then stays closed: long enough
#: to make guessing slow, short enough that a carer who mistyped is not locked out for the day.
PIN_TRIES = 3
PIN_PAUSE_S = 60.0
#: How many unknown cards the carer screen remembers (newest first).
UNKNOWN_KEPT = 5


# --- screens ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Home:
    #: "" or "carer_paused": the PIN pad is closed for a while after too many wrong PINs.
    notice: str = ""
    name = "home"


@dataclass(frozen=True)
class ShowingCard:
    """A card's face; ``phase`` is starting (first frame), running, or finished (program closed)."""

    card: Any
    phase: str = "starting"
    present: bool = True
    name = "card"


@dataclass(frozen=True)
class UnknownCard:
    uid: str
    #: unknown (not in the card file) or disabled (switched off by a carer).
    why: str = "unknown"
    name = "unknown"


@dataclass(frozen=True)
class ReaderLost:
    detail: str = ""
    name = "reader_lost"


@dataclass(frozen=True)
class ActionFailed:
    card: Any
    reason: str
    detail: str = ""
    name = "failed"


@dataclass(frozen=True)
class Asking:
    prompt: Any
    name = "prompt"


@dataclass(frozen=True)
class CarerPin:
    """The number pad a carer card opens; ``failures`` wrong PINs so far."""

    card: Any
    failures: int = 0
    name = "carer_pin"


@dataclass(frozen=True)
class CarerNotSetUp:
    """A carer card on a device with no PIN configured: a plain message, nothing else."""

    card: Any
    name = "carer_not_set_up"


@dataclass(frozen=True)
class CarerMode:
    card: Any
    name = "carer"


Screen = Home | ShowingCard | UnknownCard | ReaderLost | ActionFailed | Asking | CarerPin | CarerNotSetUp | CarerMode
_CARER_SCREENS = (CarerPin, CarerNotSetUp, CarerMode)


@dataclass(frozen=True)
class UnknownSeen:
    """An unknown card put in, for the carer screen: its UID and when (seconds since the epoch)."""

    uid: str
    at: float


# --- effects ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartAction:
    card: Any


@dataclass(frozen=True)
class StopAction:
    card: Any
    why: str


@dataclass(frozen=True)
class Record:
    """One usage-log row (kinds as in klick.usage.KINDS)."""

    kind: str
    uid: str | None = None
    action_type: str | None = None
    outcome: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class Speak:
    text: str


@dataclass(frozen=True)
class PromptShown:
    prompt: Any


@dataclass(frozen=True)
class PromptAnswered:
    prompt: Any
    value: Any
    text: str | None = None


@dataclass(frozen=True)
class PromptSnoozed:
    prompt: Any


@dataclass(frozen=True)
class PromptDismissed:
    prompt: Any


Effect = StartAction | StopAction | Record | Speak | PromptShown | PromptAnswered | PromptSnoozed | PromptDismissed


def _type(card: Any) -> str | None:
    return card.action.type if card is not None and card.action is not None else None


@dataclass
class Session:
    """The launcher's state. Each input method returns the effects to carry out, in order.

    ``lookup(uid)`` is the registry's ``get``: a Card or None.
    """

    lookup: Callable[[str], Any]
    configured_mode: str = "slot"
    screen: Screen = field(default_factory=Home)
    #: connected, searching or lost; "searching" until the bridge has said anything.
    reader: str = "searching"
    reader_mode: str = "slot"
    bridge_connected: bool = False
    #: The card whose action runs now (on screen, or kept after removal), if any.
    running: Any = None
    #: The UID the reader last reported as in the slot (slot mode only).
    present: str | None = None
    #: A carer PIN is configured; without one a carer card opens nothing.
    carer_pin_set: bool = False
    #: Unknown cards put in, newest first (also those from before a restart, if the app adds them).
    unknown_seen: tuple = ()
    #: Wall-clock time, injectable so the PIN pause can be tested without waiting.
    clock: Callable[[], float] = time.time
    carer_paused_until: float = 0.0
    #: Where the reconnect greeting is: None, "status" (expecting its status line) or "card"
    #: (the status came; a card line may follow).
    greeting: str | None = None
    greeting_count: int = 0

    # -- derived ----------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return "tap" if "tap" in (self.configured_mode, self.reader_mode) else "slot"

    @property
    def idle(self) -> bool:
        """On home with nothing running and a working reader: the only time to ask a question."""
        return (
            isinstance(self.screen, Home)
            and not self.screen.notice
            and self.running is None
            and self.present is None
            and self.reader == "connected"
        )

    @property
    def shows_home_button(self) -> bool:
        """Tap mode has no "card out", so every screen but home offers a way back."""
        if isinstance(self.screen, (Home, Asking, ReaderLost, *_CARER_SCREENS)):
            return False  # the carer screens carry their own "Cancel" and "Done"
        if self.mode == "tap":
            return True
        # A kept built-in action (photo album) whose card is out needs a way home too.
        return isinstance(self.screen, ShowingCard) and not self.screen.present

    # -- inputs -----------------------------------------------------------------------------
    def event(self, ev: Event) -> list[Effect]:
        if self.greeting == "status" and isinstance(ev, ReaderStatus):
            self.greeting = "card"
            return self._status(ev)
        if self.greeting == "card":
            self.greeting = None
            if isinstance(ev, CardPresent) and ev.uid == self.present:
                return []  # still in the slot, as the launcher thought: nothing happened
            return self._gone_while_away() + self.event(ev)
        if isinstance(ev, ReaderStatus):
            return self._status(ev)
        if isinstance(ev, CardPresent):
            return self._present(ev.uid)
        if isinstance(ev, CardRemoved):
            return self._removed(ev.uid)
        return []

    def connection(self, connected: bool) -> list[Effect]:
        """The bridge socket came or went. Going away is not "reader lost": systemd restarts it."""
        self.bridge_connected = connected
        if connected:
            self.greeting = "status"
            self.greeting_count += 1
        else:
            self.greeting = None
            if self.reader == "connected":
                self.reader = "searching"
        return []

    def greeting_over(self, count: int | None = None) -> list[Effect]:
        """The bridge's greeting has had time to arrive (its lines are sent at once on connect).

        If it named no card, the card the launcher still shows left the slot while the bridge
        was away. ``count`` is :attr:`greeting_count` when the wait began, so a wait that
        outlived its connection does nothing.
        """
        if self.greeting != "card" or (count is not None and count != self.greeting_count):
            return []
        self.greeting = None
        return self._gone_while_away()

    def _gone_while_away(self) -> list[Effect]:
        if self.mode == "tap" or self.present is None:
            return []
        return self._removed(self.present, detail="reconnect")

    # -- carer mode ---------------------------------------------------------------------------
    def carer_pin(self, right: bool) -> list[Effect]:
        """The PIN typed on the pad was checked (the app checks the hash; this decides)."""
        screen = self.screen
        if not isinstance(screen, CarerPin):
            return []
        if right:
            self.screen = CarerMode(screen.card)
            return []
        failures = screen.failures + 1
        if failures < PIN_TRIES:
            self.screen = CarerPin(screen.card, failures)
            return []
        self.carer_paused_until = self.clock() + PIN_PAUSE_S
        self.screen = Home(notice="carer_paused")
        return []

    def carer_leave(self) -> list[Effect]:
        """ "Cancel" on the PIN pad or "Done" on the carer screen; the carer card may still be in."""
        effects: list[Effect] = []
        if isinstance(self.screen, _CARER_SCREENS):
            if self.mode == "tap" and self.present is not None:
                effects.append(Record("card_removed", uid=self.present, detail="tap"))
                self.present = None
            self.screen = Home()
        return effects

    def tick(self) -> list[Effect]:
        """Time passed: the notice of a PIN pause goes when the pause is over."""
        if isinstance(self.screen, Home) and self.screen.notice and self.clock() >= self.carer_paused_until:
            self.screen = Home()
        return []

    def unknown_cards(self) -> list[UnknownSeen]:
        """Unknown cards seen, newest first, leaving out any that have been set up since."""
        return [seen for seen in self.unknown_seen if self.lookup(seen.uid) is None]

    def remember_unknown(self, uid: str, at: float) -> None:
        kept = [s for s in self.unknown_seen if s.uid != uid]
        self.unknown_seen = tuple([UnknownSeen(uid, at), *kept][:UNKNOWN_KEPT])

    def home_pressed(self) -> list[Effect]:
        effects: list[Effect] = []
        if isinstance(self.screen, (Home, ReaderLost)):
            return effects
        if isinstance(self.screen, Asking):
            return self.prompt_later()
        if isinstance(self.screen, _CARER_SCREENS) and self.mode == "slot":
            return self.carer_leave()
        effects += self._stop("home_button")
        if self.mode == "tap" and self.present is not None:
            effects.append(Record("card_removed", uid=self.present, detail="tap"))
        self.present = None
        self.screen = Home()
        return effects

    def action_failed(self, card: Any, reason: str, detail: str = "") -> list[Effect]:
        """The runner could not start ``card``'s action, or it ended with an error."""
        if self.running is None or self.running.uid != card.uid:
            return []
        self.running = None
        effects: list[Effect] = [
            Record("action_failed", uid=card.uid, action_type=_type(card), outcome=reason, detail=detail or None)
        ]
        if isinstance(self.screen, ShowingCard) and self.screen.card.uid == card.uid:
            self.screen = ActionFailed(card, reason, detail)
        return effects

    def action_started(self, card: Any) -> list[Effect]:
        """The first frame of the card screen is drawn and the action is on its way."""
        if self.running is None or self.running.uid != card.uid:
            return []
        if isinstance(self.screen, ShowingCard) and self.screen.card.uid == card.uid:
            self.screen = replace(self.screen, phase="running")
        return [Record("action_started", uid=card.uid, action_type=_type(card))]

    def action_exited(self, card: Any) -> list[Effect]:
        """The program closed by itself without an error (the resident closed the browser)."""
        if self.running is None or self.running.uid != card.uid:
            return []
        self.running = None
        effects: list[Effect] = [Record("action_ended", uid=card.uid, action_type=_type(card), outcome="exited")]
        if isinstance(self.screen, ShowingCard) and self.screen.card.uid == card.uid:
            if self.screen.present:
                self.screen = replace(self.screen, phase="finished")
            else:
                self.screen = Home()
        return effects

    def prompt_due(self, prompt: Any) -> list[Effect]:
        if prompt is None or not self.idle:
            return []
        self.screen = Asking(prompt)
        return [PromptShown(prompt)]

    def prompt_answer(self, value: Any, text: str | None = None) -> list[Effect]:
        if not isinstance(self.screen, Asking):
            return []
        prompt = self.screen.prompt
        self.screen = Home()
        return [PromptAnswered(prompt, value, text)]

    def prompt_later(self) -> list[Effect]:
        if not isinstance(self.screen, Asking):
            return []
        prompt = self.screen.prompt
        self.screen = Home()
        return [PromptSnoozed(prompt)]

    def prompt_dismiss(self) -> list[Effect]:
        if not isinstance(self.screen, Asking):
            return []
        prompt = self.screen.prompt
        self.screen = Home()
        return [PromptDismissed(prompt)]

    # -- event rules ------------------------------------------------------------------------
    def _status(self, ev: ReaderStatus) -> list[Effect]:
        effects: list[Effect] = []
        self.reader_mode = ev.mode if ev.mode in ("slot", "tap") else "slot"
        if ev.state != self.reader:
            effects.append(Record("reader_status", outcome=ev.state, detail=ev.detail or None))
        previous, self.reader = self.reader, ev.state
        if ev.state == "lost":
            if isinstance(self.screen, Asking):
                effects.append(PromptSnoozed(self.screen.prompt))
            effects += self._stop("reader_lost")
            self.present = None
            self.screen = ReaderLost(ev.detail)
        elif ev.state == "connected" and isinstance(self.screen, ReaderLost):
            self.screen = Home()
        elif ev.state == "searching" and previous == "lost":
            self.reader = "lost"  # still gone; only "connected" brings it back
        return effects

    def _present(self, uid: str) -> list[Effect]:
        self.reader = "connected"  # a card read proves the reader answers
        if isinstance(self.screen, ReaderLost):
            self.screen = Home()
        if self.mode == "tap":
            return self._tap(uid)
        if self.present == uid and not isinstance(self.screen, (Home, Asking)):
            return []  # the bridge repeating what it said (a reconnect greeting)
        return self._start(uid)

    def _tap(self, uid: str) -> list[Effect]:
        shown = self._shown_uid()
        if shown == uid:
            return self.home_pressed() if not isinstance(self.screen, ShowingCard) else self._end_tap(uid)
        if self.running is not None and self.running.uid == uid:
            return self._end_tap(uid)
        effects: list[Effect] = []
        if self.present is not None:
            effects.append(Record("card_removed", uid=self.present, detail="tap"))
        return effects + self._start(uid)

    def _end_tap(self, uid: str) -> list[Effect]:
        effects = self._stop("tapped")
        effects.append(Record("card_removed", uid=uid, detail="tap"))
        self.present = None
        self.screen = Home()
        return effects

    def _start(self, uid: str) -> list[Effect]:
        effects: list[Effect] = []
        if isinstance(self.screen, Asking):
            effects.append(PromptSnoozed(self.screen.prompt))
        effects += self._stop("next_card")
        self.present = uid
        card = self.lookup(uid)
        if card is None:
            self.screen = UnknownCard(uid, "unknown")
            self.remember_unknown(uid, self.clock())
            return effects + [Record("unknown_card", uid=uid)]
        if card.enabled and card.role == "carer":
            return effects + [Record("card_present", uid=card.uid, detail="carer")] + self._carer_in(card)
        if not card.enabled or card.role != "resident":
            self.screen = UnknownCard(card.uid, "disabled")
            return effects + [Record("card_present", uid=card.uid, detail="disabled")]
        effects.append(Record("card_present", uid=card.uid, action_type=_type(card)))
        if card.action is None:
            self.screen = ActionFailed(card, "no_action")
            return effects + [Record("action_failed", uid=card.uid, outcome="no_action")]
        self.running = card
        self.screen = ShowingCard(card)
        return effects + [Speak(card.label), StartAction(card)]

    def _carer_in(self, card: Any) -> list[Effect]:
        if not self.carer_pin_set:
            self.screen = CarerNotSetUp(card)
        elif self.clock() < self.carer_paused_until:
            self.screen = Home(notice="carer_paused")
        else:
            self.screen = CarerPin(card)
        return []

    def _removed(self, uid: str, detail: str | None = None) -> list[Effect]:
        if self.mode == "tap":
            return []
        effects: list[Effect] = [Record("card_removed", uid=uid, detail=detail)]
        if self.present is not None and self.present != uid:
            return effects  # an old card's late removal; the slot holds another one
        self.present = None
        screen = self.screen
        if isinstance(screen, ShowingCard):
            if screen.card.on_remove == "keep" and self.running is not None:
                if self.running.action.type == "photo_album":
                    self.screen = replace(screen, present=False)
                else:
                    self.screen = Home()
                return effects
            effects += self._stop("removed")
            self.screen = Home()
        elif isinstance(screen, (UnknownCard, ActionFailed, *_CARER_SCREENS)):
            self.screen = Home()
        return effects

    def _stop(self, why: str) -> list[Effect]:
        if self.running is None:
            return []
        card, self.running = self.running, None
        return [StopAction(card, why), Record("action_ended", uid=card.uid, action_type=_type(card), outcome=why)]

    def _shown_uid(self) -> str | None:
        screen = self.screen
        if isinstance(screen, (ShowingCard, ActionFailed)):
            return screen.card.uid
        if isinstance(screen, UnknownCard):
            return screen.uid
        if isinstance(screen, _CARER_SCREENS):
            return screen.card.uid
        return None
