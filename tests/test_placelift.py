"""The place-and-lift machine, driven by hand and by hypothesis with random read sequences."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.placelift import PlaceLift
from klick.events import CardPresent, CardRemoved

SETTLE, GRACE = 80, 1200


class Clock:
    """A wall clock that reads the same as the monotonic one, so ``at`` is checkable exactly."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def machine(settle: int = SETTLE, grace: int = GRACE) -> tuple[PlaceLift, Clock]:
    clock = Clock()
    return PlaceLift("slot", settle, grace, wall=clock), clock


def run(
    levels: list[tuple[str | None, int]],
    settle: int = SETTLE,
    grace: int = GRACE,
    tick_at_deadlines: bool = True,
    tail_ms: int = 0,
) -> tuple[list, PlaceLift]:
    """Feed (level, duration ms) in order; tick at every deadline as the daemon would."""
    m, clock = machine(settle, grace)
    events: list = []
    t = 0.0

    def until(end: float) -> None:
        while tick_at_deadlines:
            due = m.next_deadline()
            if due is None or due > end:
                break
            clock.now = due
            events.extend(m.tick(due))
        clock.now = end
        events.extend(m.tick(end))

    for uid, ms in levels:
        clock.now = t
        events.extend(m.observe(uid, t))
        until(t + ms / 1000)
        t += ms / 1000
    if tail_ms:
        until(t + tail_ms / 1000)
    return events, m


def kinds(events: list) -> list[tuple[str, str]]:
    return [("in" if isinstance(e, CardPresent) else "out", e.uid) for e in events]


# --- by hand -----------------------------------------------------------------------------------


def test_a_card_counts_only_after_settling():
    m, clock = machine()
    assert m.observe("A1", 0.0) == []
    assert m.next_deadline() == 0.08
    assert m.tick(0.079) == []
    clock.now = 0.08
    assert kinds(m.tick(0.08)) == [("in", "A1")]
    assert m.present == "A1"
    assert m.next_deadline() is None


def test_the_same_card_back_within_grace_is_no_event():
    events, m = run([("A1", 200), (None, 1000), ("A1", 500)])
    assert kinds(events) == [("in", "A1")]
    assert m.present == "A1"


def test_removal_counts_after_grace_and_is_stamped_when_it_fell_due():
    events, _ = run([("A1", 200), (None, 5000)])
    assert kinds(events) == [("in", "A1"), ("out", "A1")]
    assert events[0].at == 0.08
    assert abs(events[1].at - 1.4) < 1e-9


def test_a_different_card_within_grace_is_removal_then_the_new_card():
    events, m = run([("A1", 200), (None, 100), ("B2", 300)])
    assert kinds(events) == [("in", "A1"), ("out", "A1"), ("in", "B2")]
    assert events[1].at == events[2].at
    assert m.present == "B2"


def test_a_swap_without_a_gap_is_also_removal_then_new_card():
    events, _ = run([("A1", 200), ("B2", 200)])
    assert kinds(events) == [("in", "A1"), ("out", "A1"), ("in", "B2")]


def test_a_tap_is_present_then_removed_at_once():
    m, clock = machine()
    clock.now = 5.0
    events = m.tapped("0012345678", 5.0)
    assert kinds(events) == [("in", "0012345678"), ("out", "0012345678")]
    assert events[0].at == events[1].at == 5.0
    assert m.present is None and m.next_deadline() is None


def test_a_tap_ends_a_card_lying_on_the_reader_first():
    m, clock = machine(settle=0)
    m.observe("A1", 0.0)
    assert kinds(m.tapped("B2", 1.0)) == [("out", "A1"), ("in", "B2"), ("out", "B2")]


def test_zero_settle_and_zero_grace_report_at_once():
    m, _ = machine(settle=0, grace=0)
    assert kinds(m.observe("A1", 1.0)) == [("in", "A1")]
    assert kinds(m.observe(None, 2.0)) == [("out", "A1")]


def test_a_clock_that_steps_back_is_treated_as_standing_still():
    m, _ = machine()
    m.observe("A1", 10.0)
    assert m.tick(5.0) == []
    assert kinds(m.tick(10.08)) == [("in", "A1")]


def test_the_wall_clock_is_kept_apart_from_the_monotonic_one():
    m = PlaceLift("r", 80, 1200, wall=lambda: 1_700_000_000.0)
    m.observe("A1", 100.0)
    [event] = m.tick(100.5)  # ticked late: the event is stamped when it fell due
    assert event == CardPresent("A1", "r", 1_700_000_000.0 - 0.42)


# --- properties -------------------------------------------------------------------------------

uids = st.sampled_from(["A1", "B2", "C3"])
levels = st.lists(st.tuples(st.one_of(st.none(), uids), st.integers(1, 3000)), max_size=40)


def check_alternation(events: list) -> None:
    present = None
    for event in events:
        if isinstance(event, CardPresent):
            assert present is None, f"two PRESENT without a REMOVED between: {kinds(events)}"
            present = event.uid
        else:
            assert event.uid == present, f"REMOVED of a card that was not present: {kinds(events)}"
            present = None


@settings(max_examples=300)
@given(levels)
def test_never_two_present_without_a_removed_between(seq):
    events, _ = run(seq)
    check_alternation(events)
    ats = [e.at for e in events]
    assert ats == sorted(ats)


@settings(max_examples=200)
@given(st.lists(st.tuples(st.one_of(st.none(), uids), st.integers(1, SETTLE - 1)), max_size=40))
def test_no_event_for_reads_shorter_than_settle(seq):
    # Every read is cut short (by nothing or by another card) before it can settle.
    cut = []
    for uid, ms in seq:
        if cut and cut[-1][0] == uid:
            uid = None if uid is not None else "A1"
        cut.append((uid, ms))
    cut.append((None, 10_000))
    events, _ = run(cut)
    assert events == []


@settings(max_examples=200)
@given(
    st.integers(SETTLE, 5000),
    st.lists(st.tuples(st.integers(1, GRACE - 1), st.integers(1, 3000)), max_size=30),
)
def test_a_card_lying_still_with_short_dropouts_is_one_present(first_ms, dropouts):
    seq: list[tuple[str | None, int]] = [("A1", first_ms)]
    for gap, back in dropouts:
        seq += [(None, gap), ("A1", back)]
    events, m = run(seq)
    assert kinds(events) == [("in", "A1")]
    assert m.present == "A1"


@settings(max_examples=300)
@given(levels)
def test_every_present_is_followed_by_a_removed_once_the_field_stays_empty(seq):
    events, m = run(seq + [(None, GRACE + 1)])
    check_alternation(events)
    assert m.present is None
    assert m.next_deadline() is None
    assert sum(isinstance(e, CardPresent) for e in events) == sum(isinstance(e, CardRemoved) for e in events)


@settings(max_examples=200)
@given(levels)
def test_late_ticks_give_the_same_events_as_ticks_on_time(seq):
    # The daemon may wake late on a busy machine: the outcome, stamps included, must not change.
    on_time, _ = run(seq, tail_ms=GRACE + 1)
    late, _ = run(seq, tick_at_deadlines=False, tail_ms=GRACE + 1)
    assert kinds(late) == kinds(on_time)
    assert [round(e.at, 9) for e in late] == [round(e.at, 9) for e in on_time]


# --- late readings (a serial reader's resent events) ----------------------------------------


def test_a_brief_insertion_reported_late_still_counts_and_is_stamped_when_it_happened():
    m, clock = machine()
    clock.now = 10.0
    assert m.tick(10.0) == []  # the daemon has been ticking; the field looked empty
    # The card was in from 9.0 to 9.3; its events reach the bridge only now (resent).
    events = m.observe("A1", 9.0, 10.0) + m.observe(None, 9.3, 10.0)
    assert [(k, round(e.at, 6)) for k, e in zip(kinds(events), events)] == [(("in", "A1"), 9.08)]
    assert m.tick(10.0) == []
    clock.now = 10.5
    [out] = m.tick(10.5)
    assert kinds([out]) == [("out", "A1")] and round(out.at, 6) == 10.5  # 9.3 + grace


def test_a_late_reading_never_goes_before_the_last_reading_or_event():
    m, clock = machine(grace=0)
    m.observe("A1", 1.0)
    clock.now = 2.0
    assert kinds(m.tick(2.0)) == [("in", "A1")]  # settled at 1.08
    # A removal reported as of 0.5 cannot come before the reading at 1.0, nor the event at 1.08.
    [out] = m.observe(None, 0.5)
    assert kinds([out]) == [("out", "A1")] and round(out.at, 6) == 1.08


def test_a_brief_card_reported_late_still_counts_after_the_card_before_it_was_announced_gone():
    m, clock = machine()
    m.observe("A1", 0.0)
    assert kinds(m.observe(None, 1.0)) == [("in", "A1")]  # A1 out at 1.0: gone at 2.2 unless it comes back
    clock.now = 2.5
    [gone] = m.tick(2.5)
    assert kinds([gone]) == [("out", "A1")] and round(gone.at, 6) == 2.2
    # Only now does the bridge learn that B2 was in from 1.5 to 1.9 (its events were resent).
    events = m.observe("B2", 1.5, 2.5) + m.observe(None, 1.9, 2.5)
    assert kinds(events) == [("in", "B2")]  # it was in 0.4 s: it counts
    assert round(events[0].at, 6) == 2.2  # but no event is stamped before one already announced
    clock.now = 3.1
    assert kinds(m.tick(3.1)) == [("out", "B2")]  # 1.9 + grace


@settings(max_examples=200)
@given(levels)
def test_readings_delivered_late_but_in_order_give_the_same_events(seq):
    on_time, _ = run(seq, tick_at_deadlines=False, tail_ms=GRACE + 1)
    m, clock = machine()
    end = sum(ms for _, ms in seq) / 1000 + (GRACE + 1) / 1000
    clock.now = end
    assert m.tick(end) == []  # the bridge ticked on; the reader's reports come in a burst, late
    late: list = []
    t = 0.0
    for uid, ms in seq:
        late += m.observe(uid, t)
        t += ms / 1000
        late += m.tick(t) if t >= end else []
    late += m.tick(end)
    assert kinds(late) == kinds(on_time)
    assert [round(e.at, 9) for e in late] == [round(e.at, 9) for e in on_time]


@settings(max_examples=300)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 3000), st.integers(0, 2500)), max_size=30))
def test_every_card_read_long_enough_counts_once_however_late_its_readings_arrive(steps):
    """Distinct cards (each read at least the settle time, as a reader that reports removal only
    after 150 ms of misses guarantees) and gaps of any length, each reading delivered up to 2.5 s
    late (in order), the daemon ticking meanwhile at every deadline: each card is announced
    exactly once, in order; events alternate and their times never run backwards."""
    m, clock = machine()
    events: list = []
    t = delivered = 0.0
    expected: list[str] = []
    for n, (is_card, ms, delay_ms) in enumerate(steps):
        uid = f"C{n}" if is_card else None
        if uid:
            ms = max(ms, SETTLE)
            expected.append(uid)
        delivered = max(delivered, t + delay_ms / 1000)
        while (due := m.next_deadline()) is not None and due <= delivered:
            clock.now = max(clock.now, due)
            events += m.tick(clock.now)
        clock.now = delivered
        events += m.tick(delivered) + m.observe(uid, t, delivered)
        t += ms / 1000
    end = max(delivered, t) + (GRACE + SETTLE) / 1000
    clock.now = end
    events += m.observe(None, t, end) + m.tick(end)
    check_alternation(events)
    assert [e.uid for e in events if isinstance(e, CardPresent)] == expected
    ats = [round(e.at, 9) for e in events]
    assert ats == sorted(ats)
