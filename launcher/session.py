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
  else. Each round of three wrong PINs: home, a calm notice, and a pause before the PIN pad opens
  again, twice as long after each round (capped). The count survives Cancel, the card going out
  and (through the app, which stores :class:`PinThrottle`) a restart; only the right PIN clears it.
* a card file with a mistake and no good cards to fall back on: a calm "the cards cannot be
  read" stands in for home until the file is fixed; cards put in meanwhile run nothing.
* after a reconnect the bridge greets with its state: a status line, then the card in the slot
  if there is one. A card the launcher shows that the greeting leaves out was taken out while
  nobody listened, and counts as removed.
* the browser watches its page (:mod:`launcher.browser`): a page or call that could not start
  ends the browser and says so calmly; a call the other side ended says "Anna has hung up".
  Both wait for the card to come out, like any finished action.
* someone waiting in a call card's room (:mod:`launcher.waiting`) shows that card on an idle
  home, "Anna is waiting for you", announced once; home returns when the room empties.
* home is honest: while a card would do nothing (no bridge to hear it for :data:`BRIDGE_GRACE_S`,
  or a reader still searching after :data:`READER_GRACE_S`), a calm "the card reader is starting"
  stands in for "put in a card", and home comes back the moment the reader is ready.
* an answered question is thanked for :data:`THANKS_S`, then home (or its follow-up) returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from klick.events import CardPresent, CardRemoved, Event, ReaderStatus
from launcher.browser import TRY_LATER

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
    "CardsUnreadable",
    "CallEnded",
    "ReaderStarting",
    "Thanks",
    "BRIDGE_GRACE_S",
    "READER_GRACE_S",
    "THANKS_S",
    "Screen",
    "UnknownSeen",
    "PIN_TRIES",
    "PIN_PAUSE_S",
    "PIN_PAUSE_MAX_S",
    "PIN_NOTICE_S",
    "PinThrottle",
    "KeepState",
    "UNKNOWN_KEPT",
    "StartAction",
    "StopAction",
    "Record",
    "Speak",
    "Announce",
    "PromptShown",
    "PromptAnswered",
    "PromptSnoozed",
    "PromptDismissed",
    "Effect",
    "Session",
    "FAILURE_REASONS",
    "CALL_FAILURES",
]

#: How a page in the browser or a call could not start (launcher.browser's verdicts).
CALL_FAILURES = TRY_LATER
#: Why an action could not run, each with its own plain-words message on the screen.
FAILURE_REASONS = (
    "missing",
    "not_allowed",
    "exited",
    "no_action",
    "no_pictures",
    "cannot_start",
    "server_not_allowed",
    *CALL_FAILURES,
)
#: Wrong PINs in a row before the PIN pad closes, and how long it then stays closed: the first
#: pause, doubled after every further round of wrong PINs up to the cap. A carer who mistyped
#: waits a minute; guessing every 4-digit PIN takes months instead of hours.
PIN_TRIES = 3
PIN_PAUSE_S = 60.0
PIN_PAUSE_MAX_S = 3600.0
#: How long the "not the right PIN" notice stands on home; the pause itself may last longer.
PIN_NOTICE_S = 60.0
#: The state key under which the app keeps :class:`PinThrottle` (in the usage database).
PIN_STATE_KEY = "carer_pin_throttle"
_MAX_FAILURES = 1_000_000
#: How many unknown cards the carer screen remembers (newest first).
UNKNOWN_KEPT = 5
#: Home says "the card reader is starting" when no bridge has answered for this long (a bridge
#: that systemd restarts is back well within it), or a reader has searched for this long.
BRIDGE_GRACE_S = 3.0
READER_GRACE_S = 10.0
#: How long "Thank you!" stands after an answer.
THANKS_S = 2.0


# --- screens ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Home:
    #: "" or "carer_paused": the PIN pad is closed for a while after too many wrong PINs.
    notice: str = ""
    #: A call card whose room has someone in it: "Anna is waiting for you. Put in Anna's card."
    #: (Left out of the repr, which logs and tests read as "Home(notice='')".)
    waiting: Any = field(default=None, repr=False)
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
    """The number pad a carer card opens; ``failures`` wrong PINs so far in this round of
    :data:`PIN_TRIES`; ``checking`` while the typed PIN is being checked (it takes a moment)."""

    card: Any
    failures: int = 0
    checking: bool = False
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


@dataclass(frozen=True)
class CardsUnreadable:
    """The card file has a mistake and there are no good cards to use: shown in place of home."""

    name = "cards_unreadable"


@dataclass(frozen=True)
class ReaderStarting:
    """In place of home while no card can be read: the bridge or the reader is not ready yet."""

    name = "reader_starting"


@dataclass(frozen=True)
class Thanks:
    """ "Thank you!" for a moment after an answer; ``follow_up`` is asked next, if any."""

    follow_up: Any = None
    name = "thanks"


@dataclass(frozen=True)
class CallEnded:
    """The other side ended the call: "Anna has hung up." until the card comes out."""

    card: Any
    name = "call_ended"


Screen = (
    Home
    | ShowingCard
    | UnknownCard
    | ReaderLost
    | ActionFailed
    | Asking
    | CarerPin
    | CarerNotSetUp
    | CarerMode
    | CardsUnreadable
    | CallEnded
    | ReaderStarting
    | Thanks
)
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
class Announce:
    """Someone waits in ``card``'s room: a soft chime, and the words aloud when speech is on."""

    card: Any


@dataclass(frozen=True)
class KeepState:
    """A small value to keep across restarts (the app stores it in the usage database)."""

    key: str
    value: str | None


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


Effect = (
    StartAction
    | StopAction
    | Record
    | Speak
    | Announce
    | KeepState
    | PromptShown
    | PromptAnswered
    | PromptSnoozed
    | PromptDismissed
)


# --- the carer PIN's throttle ------------------------------------------------------------------


@dataclass(frozen=True)
class PinThrottle:
    """Wrong carer PINs since the last right one, and until when the PIN pad stays shut.

    Kept as a short text so it survives card removal, Cancel and restarts; anything unreadable
    in that text reads as a fresh start only if it cannot be understood at all.
    """

    failures: int = 0
    #: Wall-clock seconds (time.time) until which the pad stays shut.
    paused_until: float = 0.0

    @property
    def rounds(self) -> int:
        return self.failures // PIN_TRIES

    @property
    def in_round(self) -> int:
        """Wrong PINs in the round now running (what the pad says: "2 tries left")."""
        return self.failures % PIN_TRIES

    def pause(self) -> float:
        """How long the pad shuts after the round just completed: 60 s, 120 s, 240 s, … the cap."""
        if self.rounds < 1:
            return 0.0
        return min(PIN_PAUSE_S * 2 ** min(self.rounds - 1, 20), PIN_PAUSE_MAX_S)

    def to_text(self) -> str:
        import json

        return json.dumps({"failures": self.failures, "paused_until": round(self.paused_until, 3)})

    @classmethod
    def from_text(cls, text: str | None) -> PinThrottle:
        """The throttle from :meth:`to_text`; None or text that is not one gives a fresh start."""
        import json
        import math

        if not text:
            return cls()
        try:
            data = json.loads(text)
            failures, until = data["failures"], data["paused_until"]
        except (ValueError, TypeError, KeyError):
            return cls()
        if isinstance(failures, bool) or not isinstance(failures, int):
            failures = 0
        if isinstance(until, bool) or not isinstance(until, (int, float)) or not math.isfinite(until):
            until = 0.0
        return cls(max(0, min(failures, _MAX_FAILURES)), max(0.0, float(until)))


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
    #: A steady clock for how long the reader has not been ready (injectable, like ``clock``).
    steady: Callable[[], float] = time.monotonic
    #: Since when (``steady``) the reader or the bridge has not been ready; None while it is.
    unready_since: float | None = None
    #: Wrong carer PINs and the pause; the app restores it at start and stores each change.
    pin: PinThrottle = field(default_factory=PinThrottle)
    #: Until when home shows the "not the right PIN" notice.
    notice_until: float = 0.0
    #: A typed PIN is being checked (off the screen's thread); its result always counts.
    pin_pending: bool = False
    #: ok, kept (the file has a mistake; the last good cards are used) or unreadable (no cards).
    card_file: str = "ok"
    #: Where the reconnect greeting is: None, "status" (expecting its status line) or "card"
    #: (the status came; a card line may follow).
    greeting: str | None = None
    greeting_count: int = 0
    #: Cards whose rooms have someone in them (the last answer), and those already announced
    #: (each once, until its room is empty again).
    waiting: tuple = ()
    announced: frozenset = frozenset()

    # -- derived ----------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return "tap" if "tap" in (self.configured_mode, self.reader_mode) else "slot"

    @property
    def home_idle(self) -> bool:
        """On home (or a question on it) with nothing running and a working reader: the time to
        ask the call servers whether someone is waiting."""
        return (
            isinstance(self.screen, (Home, Asking))
            and not getattr(self.screen, "notice", "")
            and self.running is None
            and self.present is None
            and self.reader == "connected"
        )

    @property
    def idle(self) -> bool:
        """On a plain home with nothing running and a working reader: the only time to ask a question."""
        return isinstance(self.screen, Home) and self.screen.waiting is None and self.home_idle

    @property
    def shows_home_button(self) -> bool:
        """Tap mode has no "card out", so every screen but home offers a way back."""
        if isinstance(self.screen, (Home, Asking, ReaderLost, CardsUnreadable, ReaderStarting, Thanks, CarerPin, CarerMode)):
            return False  # the PIN pad and carer mode carry their own "Cancel" and "Done"
        if isinstance(self.screen, CallEnded):
            return self.mode == "tap"
        if self.mode == "tap":
            return True
        # A kept built-in action (photo album) whose card is out needs a way home too.
        return isinstance(self.screen, ShowingCard) and not self.screen.present

    # -- inputs -----------------------------------------------------------------------------
    def event(self, ev: Event) -> list[Effect]:
        self.bridge_connected = True  # only a connected bridge says anything
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
        self._readiness_changed()
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
    def carer_pause_left(self) -> float:
        """Seconds until the PIN pad opens again; 0 when it is open."""
        return max(0.0, min(self.pin.paused_until - self.clock(), PIN_PAUSE_MAX_S))

    def restore_pin(self, text: str | None) -> None:
        """The throttle as the app kept it (before a restart)."""
        self.pin = PinThrottle.from_text(text)

    def _paused(self) -> bool:
        now = self.clock()
        if self.pin.paused_until - now > PIN_PAUSE_MAX_S:
            # A clock set back (a tablet that booted before it knew the time) must not shut the
            # pad for years: no pause is ever longer than the cap from now.
            self.pin = replace(self.pin, paused_until=now + PIN_PAUSE_MAX_S)
        return now < self.pin.paused_until

    def pin_entered(self) -> list[Effect]:
        """OK on the pad: the app checks the PIN beside the screen; the pad waits for the answer."""
        screen = self.screen
        if not isinstance(screen, CarerPin) or screen.checking or self.pin_pending:
            return []
        self.pin_pending = True
        self.screen = replace(screen, checking=True)
        return []

    def carer_pin(self, right: bool) -> list[Effect]:
        """A typed PIN was checked (the app checks the hash; this decides).

        The answer to a check under way counts even if the card went out meanwhile: pulling the
        card right after "OK" must not be a free guess.
        """
        screen = self.screen
        if not (self.pin_pending or isinstance(screen, CarerPin)):
            return []
        self.pin_pending = False
        pad = screen if isinstance(screen, CarerPin) else None
        if right:
            changed = self.pin != PinThrottle()
            self.pin = PinThrottle()
            if pad is not None:
                self.screen = CarerMode(pad.card)
            return [KeepState(PIN_STATE_KEY, None)] if changed else []
        pin = PinThrottle(min(self.pin.failures + 1, _MAX_FAILURES), self.pin.paused_until)
        if pin.in_round == 0:  # a whole round wrong: the pad shuts for a while
            now, pause = self.clock(), pin.pause()
            pin = replace(pin, paused_until=now + pause)
            if pad is not None or isinstance(screen, Home):
                self.screen = self._home("carer_paused")
                self.notice_until = now + min(PIN_NOTICE_S, pause)
        elif pad is not None:
            self.screen = CarerPin(pad.card, pin.in_round)
        self.pin = pin
        return [KeepState(PIN_STATE_KEY, pin.to_text())]

    def carer_leave(self) -> list[Effect]:
        """ "Cancel" on the PIN pad or "Done" on the carer screen; the carer card may still be in."""
        effects: list[Effect] = []
        if isinstance(self.screen, _CARER_SCREENS):
            if self.mode == "tap" and self.present is not None:
                effects.append(Record("card_removed", uid=self.present, detail="tap"))
                self.present = None
            self.screen = self._home()
        return effects

    def tick(self) -> list[Effect]:
        """Time passed: the notice of a PIN pause goes after a while (the pause may go on), and a
        reader that is not ready for too long shows "starting" in place of home."""
        if isinstance(self.screen, Home) and self.screen.notice and self.clock() >= self.notice_until:
            self.screen = self._home()
        if isinstance(self.screen, (Home, CardsUnreadable)) and self._starting_due():
            if isinstance(self.screen, Home) and self.screen.waiting is not None:
                return []  # someone waits: the call works once the reader answers; keep saying so
            self.screen = ReaderStarting()
        return []

    # -- is the reader ready? -----------------------------------------------------------------
    @property
    def reader_ready(self) -> bool:
        return self.bridge_connected and self.reader == "connected"

    def _readiness_changed(self) -> None:
        """Note when the reader stopped being ready; home returns the moment it is ready."""
        if self.reader_ready:
            self.unready_since = None
            if isinstance(self.screen, ReaderStarting):
                self.screen = self._home()
        elif self.unready_since is None:
            self.unready_since = self.steady()

    def _starting_due(self) -> bool:
        if self.reader_ready or self.reader == "lost":
            return False
        if self.unready_since is None:
            self.unready_since = self.steady()
        waited = self.steady() - self.unready_since
        return waited >= (READER_GRACE_S if self.bridge_connected else BRIDGE_GRACE_S)

    # -- the card file ------------------------------------------------------------------------
    def card_file_state(self, state: str) -> list[Effect]:
        """The card file was read: ``ok``, ``kept`` (a mistake; the last good cards are in use)
        or ``unreadable`` (a mistake and no cards at all: a calm screen stands in for home)."""
        if state not in ("ok", "kept", "unreadable"):
            state = "unreadable"
        self.card_file = state
        effects: list[Effect] = []
        if state == "unreadable":
            if isinstance(self.screen, Asking):
                effects.append(PromptSnoozed(self.screen.prompt))
            if isinstance(self.screen, (Home, Asking)):
                self.screen = CardsUnreadable()
        elif isinstance(self.screen, CardsUnreadable):
            self.screen = self._home()
        return effects

    def _home(self, notice: str = "") -> Screen:
        """Home, or in its place the calm "cards cannot be read" while there are no cards, or
        "the reader is starting" while no card could be read."""
        if self._starting_due():
            return ReaderStarting()
        if self.card_file == "unreadable":
            return CardsUnreadable()
        return Home(notice)

    def unknown_cards(self) -> list[UnknownSeen]:
        """Unknown cards seen, newest first, leaving out any that have been set up since."""
        return [seen for seen in self.unknown_seen if self.lookup(seen.uid) is None]

    def remember_unknown(self, uid: str, at: float) -> None:
        kept = [s for s in self.unknown_seen if s.uid != uid]
        self.unknown_seen = tuple([UnknownSeen(uid, at), *kept][:UNKNOWN_KEPT])

    def home_pressed(self) -> list[Effect]:
        effects: list[Effect] = []
        if isinstance(self.screen, (Home, ReaderLost, CardsUnreadable, ReaderStarting)):
            return effects
        if isinstance(self.screen, Thanks):
            return self.thanks_over()
        if isinstance(self.screen, Asking):
            return self.prompt_later()
        if isinstance(self.screen, _CARER_SCREENS) and self.mode == "slot":
            return self.carer_leave()
        effects += self._stop("home_button")
        if self.mode == "tap" and self.present is not None:
            effects.append(Record("card_removed", uid=self.present, detail="tap"))
        self.present = None
        self.screen = self._home()
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
                self.screen = self._home()
        return effects

    def browser_verdict(self, card: Any, outcome: str, detail: str = "") -> list[Effect]:
        """The browser's watch decided (launcher.browser): the page or call could not start
        (``outcome`` a failure reason), or the other side ended the call. The browser ends, and
        the screen says so until the card comes out (or, in tap mode, Home is pressed)."""
        if self.running is None or self.running.uid != card.uid:
            return []
        self.running = None
        ended = outcome == "ended_by_other_side"
        effects: list[Effect] = [
            StopAction(card, outcome),
            Record(
                "action_ended" if ended else "action_failed",
                uid=card.uid,
                action_type=_type(card),
                outcome=outcome,
                detail=detail or None,
            ),
        ]
        if isinstance(self.screen, ShowingCard) and self.screen.card.uid == card.uid:
            if self.screen.present or self.mode == "tap":
                self.screen = CallEnded(card) if ended else ActionFailed(card, outcome, detail)
            else:
                self.screen = self._home()
        return effects

    def someone_waiting(self, cards: list | tuple) -> list[Effect]:
        """The call servers' latest answer: ``cards`` have someone in their rooms (most wanted
        first). An idle home shows the first; each card is announced once until its room empties."""
        cards = tuple(c for c in cards if c is not None)
        uids = {c.uid for c in cards}
        self.waiting = cards
        self.announced = frozenset(u for u in self.announced if u in uids)
        effects: list[Effect] = []
        screen = self.screen
        if not self.home_idle:
            return effects
        shown = screen.waiting if isinstance(screen, Home) else None
        if shown is not None and shown.uid in uids:
            return effects
        if not cards:
            if shown is not None:
                self.screen = Home()
            return effects
        card = cards[0]
        if isinstance(screen, Asking):
            effects.append(PromptSnoozed(screen.prompt))
        self.screen = Home(waiting=card)
        if card.uid not in self.announced:
            self.announced = self.announced | {card.uid}
            effects.append(Announce(card))
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
        self.screen = Thanks()
        return [PromptAnswered(prompt, value, text)]

    def follow_up(self, prompt: Any) -> list[Effect]:
        """The answer just given calls for ``prompt``: it is asked once the thanks are over."""
        if isinstance(self.screen, Thanks) and prompt is not None:
            self.screen = Thanks(prompt)
        return []

    def thanks_over(self) -> list[Effect]:
        """The thank-you has stood long enough: its follow-up question, or home."""
        if not isinstance(self.screen, Thanks):
            return []
        follow = self.screen.follow_up
        self.screen = self._home()
        if follow is not None and self.idle:
            self.screen = Asking(follow)
            return [PromptShown(follow)]
        return []

    def prompt_later(self) -> list[Effect]:
        if not isinstance(self.screen, Asking):
            return []
        prompt = self.screen.prompt
        self.screen = self._home()
        return [PromptSnoozed(prompt)]

    def prompt_dismiss(self) -> list[Effect]:
        if not isinstance(self.screen, Asking):
            return []
        prompt = self.screen.prompt
        self.screen = self._home()
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
            self.screen = self._home()
        elif ev.state == "searching" and previous == "lost":
            self.reader = "lost"  # still gone; only "connected" brings it back
        self._readiness_changed()
        return effects

    def _present(self, uid: str) -> list[Effect]:
        self.reader = "connected"  # a card read proves the reader answers
        self._readiness_changed()
        if isinstance(self.screen, ReaderLost):
            self.screen = self._home()
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
        self.screen = self._home()
        return effects

    def _start(self, uid: str) -> list[Effect]:
        effects: list[Effect] = []
        if isinstance(self.screen, Asking):
            effects.append(PromptSnoozed(self.screen.prompt))
        effects += self._stop("next_card")
        self.present = uid
        if self.card_file == "unreadable":  # no card can be known: say so, never "not set up"
            self.screen = CardsUnreadable()
            return effects + [Record("card_present", uid=uid, detail="cards_unreadable")]
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
        elif self._paused():
            self.screen = self._home("carer_paused")
            self.notice_until = self.clock() + min(PIN_NOTICE_S, self.carer_pause_left())
        else:
            self.screen = CarerPin(card, self.pin.in_round, checking=self.pin_pending)
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
                    self.screen = self._home()
                return effects
            effects += self._stop("removed")
            self.screen = self._home()
        elif isinstance(screen, (UnknownCard, ActionFailed, CallEnded, *_CARER_SCREENS)):
            self.screen = self._home()
        return effects

    def _stop(self, why: str) -> list[Effect]:
        if self.running is None:
            return []
        card, self.running = self.running, None
        return [StopAction(card, why), Record("action_ended", uid=card.uid, action_type=_type(card), outcome=why)]

    def _shown_uid(self) -> str | None:
        screen = self.screen
        if isinstance(screen, (ShowingCard, ActionFailed, CallEnded)):
            return screen.card.uid
        if isinstance(screen, UnknownCard):
            return screen.uid
        if isinstance(screen, _CARER_SCREENS):
            return screen.card.uid
        return None
