"""The launcher's rules, without a screen: slot and tap modes, unknown cards, a lost reader,
questions only when idle. Hypothesis throws arbitrary event sequences at the session."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings, strategies as st

from cards.model import Card, Command, PhotoAlbum, VideoCall, Web
from klick.events import CardPresent, CardRemoved, ReaderStatus
from launcher import session as S

ANNA = Card(uid="04A2B3C4D5E680", label="Anna", action=VideoCall("jitsi", "https://meet.example.se", "room", "Mamma"))
WEB = Card(uid="0012345678", label="Vädret", action=Web("https://www.smhi.se"), on_remove="keep")
ALBUM = Card(uid="04D3E4F5061728", label="Barnbarnen", action=PhotoAlbum(Path("/tmp/album")), on_remove="keep")
OFF = Card(uid="04000000000001", label="Av", action=Web("https://x.se"), enabled=False)
STAFF = Card(uid="04000000000002", label="Personal", action=None, role="carer")
EMPTY = Card(uid="04000000000003", label="Tomt", action=None)
RADIO = Card(uid="04000000000004", label="Radio", action=Command(("radio",)))
CARDS = {c.uid: c for c in (ANNA, WEB, ALBUM, OFF, STAFF, EMPTY, RADIO)}
UNKNOWN = "04FFFFFFFFFFFF"


class Prompt:
    def __init__(self, pid: int = 1, kind: str = "smiley5") -> None:
        self.id, self.kind = pid, kind


def new(mode: str = "slot") -> S.Session:
    s = S.Session(lookup=CARDS.get, configured_mode=mode)
    s.event(ReaderStatus("connected"))
    return s


def kinds(effects, cls):
    return [e for e in effects if isinstance(e, cls)]


def test_slot_card_in_shows_card_and_starts_then_out_ends_and_goes_home():
    s = new()
    fx = s.event(CardPresent(ANNA.uid))
    assert s.screen == S.ShowingCard(ANNA)
    assert kinds(fx, S.StartAction) == [S.StartAction(ANNA)]
    assert S.Record("card_present", uid=ANNA.uid, action_type="video_call") in fx
    assert S.Speak("Anna") in fx
    s.action_started(ANNA)
    assert s.screen.phase == "running"
    fx = s.event(CardRemoved(ANNA.uid))
    assert kinds(fx, S.StopAction) == [S.StopAction(ANNA, "removed")]
    assert isinstance(s.screen, S.Home) and s.running is None


def test_on_remove_keep_leaves_the_program_running_until_the_next_card():
    s = new()
    s.event(CardPresent(WEB.uid))
    fx = s.event(CardRemoved(WEB.uid))
    assert kinds(fx, S.StopAction) == [] and s.running == WEB and isinstance(s.screen, S.Home)
    assert s.prompt_due(Prompt()) == []  # never ask while something runs
    fx = s.event(CardPresent(ANNA.uid))
    assert kinds(fx, S.StopAction) == [S.StopAction(WEB, "next_card")]
    assert s.running == ANNA


def test_kept_album_stays_on_screen_with_a_home_button():
    s = new()
    s.event(CardPresent(ALBUM.uid))
    s.event(CardRemoved(ALBUM.uid))
    assert s.screen == S.ShowingCard(ALBUM, present=False)
    assert s.shows_home_button
    fx = s.home_pressed()
    assert kinds(fx, S.StopAction) == [S.StopAction(ALBUM, "home_button")]
    assert isinstance(s.screen, S.Home)


def test_tap_mode_second_tap_ends_and_removals_mean_nothing():
    s = new("tap")
    s.event(CardPresent(ANNA.uid))
    assert s.event(CardRemoved(ANNA.uid)) == []
    assert s.screen == S.ShowingCard(ANNA) and s.shows_home_button
    fx = s.event(CardPresent(ANNA.uid))
    assert kinds(fx, S.StopAction) == [S.StopAction(ANNA, "tapped")]
    assert S.Record("card_removed", uid=ANNA.uid, detail="tap") in fx
    assert isinstance(s.screen, S.Home)


def test_a_tap_only_reader_forces_tap_mode_and_home_button_ends():
    s = new("slot")
    s.event(ReaderStatus("connected", mode="tap"))
    assert s.mode == "tap"
    s.event(CardPresent(ANNA.uid))
    s.event(CardRemoved(ANNA.uid))
    assert s.running == ANNA
    fx = s.home_pressed()
    assert kinds(fx, S.StopAction) == [S.StopAction(ANNA, "home_button")]


def test_unknown_disabled_staff_and_empty_cards_never_run_anything():
    for uid, screen in ((UNKNOWN, S.UnknownCard(UNKNOWN)), (OFF.uid, S.UnknownCard(OFF.uid, "disabled")),
                        (STAFF.uid, S.UnknownCard(STAFF.uid, "carer")), (EMPTY.uid, S.ActionFailed(EMPTY, "no_action"))):
        s = new()
        fx = s.event(CardPresent(uid))
        assert s.screen == screen
        assert kinds(fx, S.StartAction) == []
        s.event(CardRemoved(uid))
        assert isinstance(s.screen, S.Home)
    s = new()
    assert S.Record("unknown_card", uid=UNKNOWN) in s.event(CardPresent(UNKNOWN))


def test_failed_action_shows_why_and_card_out_goes_home():
    s = new()
    s.event(CardPresent(RADIO.uid))
    fx = s.action_failed(RADIO, "missing", "radio is not installed")
    assert s.screen == S.ActionFailed(RADIO, "missing", "radio is not installed")
    assert fx[0].kind == "action_failed" and fx[0].outcome == "missing"
    assert s.running is None
    s.event(CardRemoved(RADIO.uid))
    assert isinstance(s.screen, S.Home)


def test_reader_lost_ends_the_action_and_recovers_by_itself():
    s = new()
    s.event(CardPresent(ANNA.uid))
    fx = s.event(ReaderStatus("lost", detail="unplugged"))
    assert kinds(fx, S.StopAction) == [S.StopAction(ANNA, "reader_lost")]
    assert s.screen == S.ReaderLost("unplugged")
    s.event(ReaderStatus("searching"))
    assert isinstance(s.screen, S.ReaderLost)
    s.event(ReaderStatus("connected"))
    assert isinstance(s.screen, S.Home)


def test_prompt_only_on_idle_home_and_a_card_puts_it_off():
    s = S.Session(lookup=CARDS.get)
    assert s.prompt_due(Prompt()) == []  # reader not confirmed yet
    s.event(ReaderStatus("connected"))
    p = Prompt()
    assert s.prompt_due(p) == [S.PromptShown(p)]
    fx = s.event(CardPresent(ANNA.uid))
    assert fx[0] == S.PromptSnoozed(p)
    assert s.screen == S.ShowingCard(ANNA)
    s.event(CardRemoved(ANNA.uid))
    s.prompt_due(p)
    assert s.prompt_answer(5) == [S.PromptAnswered(p, 5, None)]
    assert isinstance(s.screen, S.Home)


def test_a_repeated_present_from_a_reconnect_does_not_restart():
    s = new()
    s.event(CardPresent(ANNA.uid))
    assert s.event(CardPresent(ANNA.uid)) == []


def test_a_late_removal_of_another_card_is_ignored():
    s = new()
    s.event(CardPresent(ANNA.uid))
    s.event(CardPresent(RADIO.uid))
    s.event(CardRemoved(ANNA.uid))
    assert s.screen == S.ShowingCard(RADIO)


# --- properties --------------------------------------------------------------------------------

uids = st.sampled_from([*CARDS, UNKNOWN])
inputs = st.one_of(
    st.builds(CardPresent, uids),
    st.builds(CardRemoved, uids),
    st.builds(ReaderStatus, st.sampled_from(["connected", "searching", "lost"]), mode=st.sampled_from(["slot", "tap"])),
    st.sampled_from(["home", "prompt", "answer", "later", "fail", "exit", "started", "conn_up", "conn_down"]),
)


def drive(s: S.Session, item) -> list:
    if isinstance(item, (CardPresent, CardRemoved, ReaderStatus)):
        return s.event(item)
    running = s.running
    return {
        "home": s.home_pressed,
        "prompt": lambda: s.prompt_due(Prompt()),
        "answer": lambda: s.prompt_answer(3),
        "later": s.prompt_later,
        "fail": lambda: s.action_failed(running, "missing") if running else [],
        "exit": lambda: s.action_exited(running) if running else [],
        "started": lambda: s.action_started(running) if running else [],
        "conn_up": lambda: s.connection(True),
        "conn_down": lambda: s.connection(False),
    }[item]()


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["slot", "tap"]), st.lists(inputs, max_size=40))
def test_starts_and_stops_always_balance(mode, items):
    s = S.Session(lookup=CARDS.get, configured_mode=mode)
    started: list = []
    for item in items:
        before = s.running
        fx = drive(s, item)
        for e in fx:
            if isinstance(e, S.StartAction):
                assert e.card.uid in CARDS and e.card.enabled and e.card.action is not None
                started.append(e.card)
            if isinstance(e, S.StopAction):
                assert started and started[-1] == e.card
                started.pop()
        if item in ("fail", "exit") and before is not None and s.running is None and started:
            started.pop()
        # At most one action at a time, and the session knows which.
        assert len(started) <= 1
        assert (s.running is None) == (not started)
        if isinstance(s.screen, S.Asking):
            assert s.running is None
        if s.reader == "lost":
            assert isinstance(s.screen, S.ReaderLost) and s.running is None
        if isinstance(s.screen, S.ShowingCard) and s.screen.phase != "finished":
            assert s.running == s.screen.card


@settings(max_examples=200, deadline=None)
@given(st.lists(inputs, max_size=30), st.sampled_from(list(CARDS)))
def test_in_slot_mode_taking_a_closing_card_out_always_ends_at_home(items, uid):
    s = S.Session(lookup=CARDS.get, configured_mode="slot")
    for item in items:
        drive(s, item)
    s.event(ReaderStatus("connected", mode="slot"))
    if isinstance(s.screen, S.Asking):
        s.prompt_later()
    s.event(CardPresent(uid))
    s.event(CardRemoved(uid))
    card = CARDS[uid]
    if card.on_remove == "close":
        assert isinstance(s.screen, S.Home) and s.running is None
    else:
        assert s.running in (None, card)
