"""Place and lift: turn a reader's raw levels into calm card events.

A cheap tag drops out for a moment while it lies still; a card slid in brushes the antenna
before it is seated; a resident lifts a card and puts it straight back. None of that may launch
or end anything twice. So every reader feeds one of these machines, and only the machine
decides when a card counts as placed or lifted:

* a read must hold for ``settle_ms`` before the card counts as present;
* a present card must be missing for ``grace_ms`` before it counts as removed;
* the same card back within the grace time resumes quietly (no event);
* a different card that settles during the grace time ends the old card first, then starts.

The machine is pure: time comes in as arguments (monotonic seconds), the wall clock for the
events' ``at`` is injected, and :meth:`PlaceLift.next_deadline` tells the caller when to call
:meth:`PlaceLift.tick` next, so the daemon sleeps exactly until something can happen.

A reading may arrive late: a serial reader resends a card event the noisy line lost, saying how
long ago it happened. Such a reading takes its place in the past, so a card that was in for
0.3 s a second ago still counts: its settle and grace times run from when it really came and
went. Readings keep their order (one older than the last reading counts from then), and what
was announced stays announced: an event that falls due before the last one announced is
stamped with that one's time, so the events' times never run backwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from klick.events import CardPresent, CardRemoved

__all__ = ["PlaceLift"]

CardEvent = CardPresent | CardRemoved


class PlaceLift:
    def __init__(
        self,
        reader: str = "reader",
        settle_ms: int = 80,
        grace_ms: int = 1200,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.reader = reader
        self.settle = max(0, settle_ms) / 1000.0
        self.grace = max(0, grace_ms) / 1000.0
        self._wall = wall
        #: The card the world has been told about, or None.
        self.present: str | None = None
        #: What the field holds right now (raw level) and since when.
        self._level: str | None = None
        self._level_since = 0.0
        #: When the present card was last in the field; None while it is there.
        self._missing_since: float | None = None
        self._now = float("-inf")
        #: When the level last changed: a late reading never goes before it.
        self._last_reading = float("-inf")
        #: When the last event announced fell due: no later event is stamped before it.
        self._last_event = float("-inf")

    # --- inputs --------------------------------------------------------------------------------

    def observe(self, uid: str | None, now: float, clock: float | None = None) -> list[CardEvent]:
        """The field holds ``uid`` (or nothing) from ``now`` on. Repeating a level is harmless.

        ``now`` may lie in the past (a late report); :meth:`tick` then fires what fell due since.
        ``clock`` is the time it really is, if later, so events are stamped right meanwhile.
        """
        now = self._reading(now, clock)
        events = self._advance(now)
        if uid != self._level:
            self._last_reading = now
            self._level, self._level_since = uid, now
            if self.present is not None:
                if uid == self.present:
                    self._missing_since = None
                elif self._missing_since is None:
                    self._missing_since = now
        events += self._advance(now)
        return events

    def tapped(self, uid: str, now: float) -> list[CardEvent]:
        """A keyboard-style reader saw ``uid`` once: it comes and goes in the same instant."""
        now = self._reading(now)
        events = self._advance(now)
        if self.present is not None:
            events.append(self._removed(self.present, now))
            self.present = None
            self._missing_since = None
        at = self._at(now)
        events += [CardPresent(uid, self.reader, at), CardRemoved(uid, self.reader, at)]
        self._level = None
        self._level_since = self._last_reading = now
        return events

    def tick(self, now: float) -> list[CardEvent]:
        """Let time pass; returns whatever became due."""
        return self._advance(self._clock(now))

    def next_deadline(self) -> float | None:
        """The monotonic time at which :meth:`tick` can next produce an event, or None."""
        deadlines = []
        settle = self._settle_due()
        if settle is not None:
            deadlines.append(settle)
        if self.present is not None and self._missing_since is not None:
            deadlines.append(self._missing_since + self.grace)
        return min(deadlines) if deadlines else None

    # --- the machine ---------------------------------------------------------------------------

    def _settle_due(self) -> float | None:
        if self._level is None or self._level == self.present:
            return None
        return self._level_since + self.settle

    def _advance(self, now: float) -> list[CardEvent]:
        """Fire every due deadline in time order, each stamped with the moment it fell due."""
        events: list[CardEvent] = []
        while True:
            settle = self._settle_due()
            grace = self._missing_since + self.grace if self.present is not None and self._missing_since is not None else None
            if settle is not None and settle <= now and (grace is None or settle <= grace):
                # A new card settled: the old one (in its grace time) ends first.
                if self.present is not None:
                    events.append(self._removed(self.present, settle))
                events.append(CardPresent(self._level, self.reader, self._at(settle)))  # type: ignore[arg-type]
                self.present = self._level
                self._missing_since = None
            elif grace is not None and grace <= now:
                events.append(self._removed(self.present, grace))  # type: ignore[arg-type]
                self.present = None
                self._missing_since = None
            else:
                return events

    def _removed(self, uid: str, when: float) -> CardRemoved:
        return CardRemoved(uid, self.reader, self._at(when))

    def _at(self, when: float) -> float:
        """Wall-clock time of monotonic moment ``when`` (never after ``self._now``), not before the last event's."""
        when = self._last_event = max(when, self._last_event)
        return self._wall() - max(0.0, self._now - when)

    def _clock(self, now: float) -> float:
        # A monotonic clock never runs backwards; a caller's rounding must not make us.
        self._now = max(self._now, now)
        return self._now

    def _reading(self, at: float, clock: float | None = None) -> float:
        """When a reading counts from: ``at``, but never before the last reading."""
        at = max(at, self._last_reading)
        self._now = max(self._now, at, at if clock is None else clock)
        return at
