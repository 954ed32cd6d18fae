"""The launcher's rules, without a screen: slot and tap modes, unknown cards, a lost reader,
questions only when idle. Hypothesis throws arbitrary event sequences at the session."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

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
    for uid, screen in (
        (UNKNOWN, S.UnknownCard(UNKNOWN)),
        (OFF.uid, S.UnknownCard(OFF.uid, "disabled")),
        (STAFF.uid, S.CarerNotSetUp(STAFF)),
        (EMPTY.uid, S.ActionFailed(EMPTY, "no_action")),
    ):
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
    assert s.screen == S.Thanks()
    s.thanks_over()
    assert isinstance(s.screen, S.Home)


# --- the thank-you after an answer ---------------------------------------------------------------


def test_an_answer_is_thanked_then_home_returns():
    s = new()
    p = Prompt()
    s.prompt_due(p)
    s.prompt_answer(3)
    assert s.screen == S.Thanks() and not s.shows_home_button and not s.idle
    assert s.prompt_due(Prompt(2)) == []  # no other question over the thanks
    assert s.thanks_over() == [] and s.screen == S.Home()
    assert s.thanks_over() == [] and s.screen == S.Home()  # a late timer does nothing


def test_a_follow_up_is_asked_after_the_thanks():
    s = new()
    p, follow = Prompt(1, "yes_no"), Prompt(2, "free_text")
    s.prompt_due(p)
    s.prompt_answer("yes")
    s.follow_up(follow)
    assert s.screen == S.Thanks(follow)
    assert s.thanks_over() == [S.PromptShown(follow)] and s.screen == S.Asking(follow)


def test_a_card_put_in_during_the_thanks_starts_and_the_follow_up_waits():
    s = new()
    p, follow = Prompt(1, "yes_no"), Prompt(2, "free_text")
    s.prompt_due(p)
    s.prompt_answer("yes")
    s.follow_up(follow)
    s.event(CardPresent(ANNA.uid))
    assert s.screen == S.ShowingCard(ANNA)
    assert s.thanks_over() == [] and s.screen == S.ShowingCard(ANNA)


# --- an honest home: "the card reader is starting" -----------------------------------------------


class Steady:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def starting(mode: str = "slot") -> tuple[S.Session, Steady]:
    clock = Steady()
    return S.Session(lookup=CARDS.get, configured_mode=mode, steady=clock), clock


def test_no_bridge_for_a_few_seconds_shows_the_reader_is_starting_in_place_of_home():
    s, clock = starting()
    s.connection(False)
    s.tick()
    assert isinstance(s.screen, S.Home)  # a bridge restarting is back within the grace
    clock.t += S.BRIDGE_GRACE_S
    s.tick()
    assert s.screen == S.ReaderStarting() and not s.idle and not s.shows_home_button
    s.connection(True)
    assert s.screen == S.ReaderStarting()  # connected, but the reader has not said it is ready
    s.event(ReaderStatus("connected"))
    assert s.screen == S.Home()


def test_a_reader_searching_for_ten_seconds_shows_the_reader_is_starting():
    s, clock = starting()
    s.connection(True)
    s.event(ReaderStatus("searching"))
    clock.t += S.READER_GRACE_S - 1
    s.tick()
    assert isinstance(s.screen, S.Home)
    clock.t += 1
    s.tick()
    assert s.screen == S.ReaderStarting()
    # A card read proves the reader works: the card shows, as always.
    s.event(CardPresent(ANNA.uid))
    assert s.screen == S.ShowingCard(ANNA)
    s.event(CardRemoved(ANNA.uid))
    assert s.screen == S.Home()


def test_a_lost_reader_keeps_its_own_words_and_the_call_screens_are_not_replaced():
    s, clock = starting()
    s.connection(True)
    s.event(ReaderStatus("lost", detail="unplugged"))
    clock.t += 60
    s.tick()
    assert isinstance(s.screen, S.ReaderLost)
    s.event(ReaderStatus("connected"))
    s.event(CardPresent(ANNA.uid))
    s.connection(False)  # the bridge restarts while a card runs: the card's screen stays
    clock.t += 60
    s.tick()
    assert s.screen == S.ShowingCard(ANNA)


def test_the_reader_starting_stands_in_for_home_after_a_card_and_after_home_is_pressed():
    s, clock = starting("tap")
    s.connection(True)
    s.event(ReaderStatus("connected"))
    s.event(CardPresent(WEB.uid))
    s.connection(False)
    clock.t += S.BRIDGE_GRACE_S
    s.home_pressed()
    assert s.screen == S.ReaderStarting()
    assert s.home_pressed() == [] and s.screen == S.ReaderStarting()


@given(st.lists(st.sampled_from(["gone", "back", "searching", "connected", "lost", "tick", "wait", "card", "out"]), max_size=40))
def test_reader_starting_shows_exactly_while_no_card_could_be_read_for_too_long(steps):
    s, clock = starting()
    for step in steps:
        if step == "gone":
            s.connection(False)
        elif step == "back":
            s.connection(True)
        elif step in ("searching", "connected", "lost"):
            s.event(ReaderStatus(step))
        elif step == "wait":
            clock.t += 4
        elif step == "card":
            s.event(CardPresent(ANNA.uid))
        elif step == "out":
            s.event(CardRemoved(ANNA.uid))
        s.tick()
        if isinstance(s.screen, S.ReaderStarting):
            assert not s.reader_ready and s.reader != "lost"
        if s.reader_ready:
            assert not isinstance(s.screen, S.ReaderStarting)


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


# --- the reconnect gap ---------------------------------------------------------------------------


def reconnect(s: S.Session, *greeting) -> list:
    """The bridge went away and came back; its greeting is a status line, then maybe a card."""
    fx = s.connection(False) + s.connection(True)
    for ev in greeting:
        fx += s.event(ev)
    return fx


def test_a_card_taken_out_while_the_bridge_was_away_counts_as_removed():
    s = new()
    s.event(CardPresent(ANNA.uid))
    s.action_started(ANNA)
    fx = reconnect(s, ReaderStatus("connected"))
    assert kinds(fx, S.StopAction) == [] and s.running == ANNA  # a card line may still follow the status
    fx += s.greeting_over(s.greeting_count)
    assert kinds(fx, S.StopAction) == [S.StopAction(ANNA, "removed")]
    assert S.Record("card_removed", uid=ANNA.uid, detail="reconnect") in fx
    assert isinstance(s.screen, S.Home) and s.running is None and s.present is None


def test_the_greeting_naming_the_card_changes_nothing():
    s = new()
    s.event(CardPresent(ANNA.uid))
    fx = reconnect(s, ReaderStatus("connected"), CardPresent(ANNA.uid))
    assert kinds(fx, S.StopAction) == [] and kinds(fx, S.StartAction) == []
    assert s.screen == S.ShowingCard(ANNA) and s.running == ANNA
    assert s.greeting_over(s.greeting_count) == []


def test_the_greeting_naming_another_card_ends_the_old_and_starts_the_new():
    s = new()
    s.event(CardPresent(ANNA.uid))
    fx = reconnect(s, ReaderStatus("connected"), CardPresent(RADIO.uid))
    assert kinds(fx, S.StopAction) == [S.StopAction(ANNA, "removed")]
    assert kinds(fx, S.StartAction) == [S.StartAction(RADIO)]
    assert s.screen == S.ShowingCard(RADIO)


def test_any_other_line_after_the_status_ends_the_greeting_too():
    s = new()
    s.event(CardPresent(ANNA.uid))
    fx = reconnect(s, ReaderStatus("connected"), ReaderStatus("connected"))
    assert kinds(fx, S.StopAction) == [S.StopAction(ANNA, "removed")]
    assert isinstance(s.screen, S.Home)


def test_a_kept_card_removed_in_the_gap_keeps_running():
    s = new()
    s.event(CardPresent(WEB.uid))
    reconnect(s, ReaderStatus("connected"))
    fx = s.greeting_over()
    assert kinds(fx, S.StopAction) == [] and s.running == WEB and isinstance(s.screen, S.Home)


def test_a_stale_greeting_wait_does_nothing_and_tap_mode_ignores_the_gap():
    s = new()
    s.event(CardPresent(ANNA.uid))
    reconnect(s, ReaderStatus("connected"))
    old = s.greeting_count
    reconnect(s, ReaderStatus("connected"))
    assert s.greeting_over(old) == [] and s.running == ANNA
    t = new("tap")
    t.event(CardPresent(ANNA.uid))
    fx = reconnect(t, ReaderStatus("connected"), CardPresent(ANNA.uid))  # still lying on the reader
    assert kinds(fx, S.StopAction) == [] and t.running == ANNA  # the greeting is not a second tap
    assert t.greeting_over() == [] and t.running == ANNA


def test_carer_mode_ends_when_the_greeting_leaves_the_carer_card_out():
    s = carer_session()
    s.event(CardPresent(STAFF.uid))
    s.carer_pin(True)
    reconnect(s, ReaderStatus("connected"))
    s.greeting_over()
    assert isinstance(s.screen, S.Home)


# --- carer mode ------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def carer_session(mode: str = "slot", clock=None) -> S.Session:
    s = S.Session(lookup=CARDS.get, configured_mode=mode, carer_pin_set=True, clock=clock or Clock())
    s.event(ReaderStatus("connected"))
    return s


def test_carer_card_opens_the_pin_pad_and_the_right_pin_the_carer_screen():
    s = carer_session()
    fx = s.event(CardPresent(STAFF.uid))
    assert s.screen == S.CarerPin(STAFF) and kinds(fx, S.StartAction) == []
    assert S.Record("card_present", uid=STAFF.uid, detail="carer") in fx
    s.carer_pin(False)
    assert s.screen == S.CarerPin(STAFF, 1)
    s.carer_pin(True)
    assert s.screen == S.CarerMode(STAFF)
    assert not s.shows_home_button and not s.idle
    s.event(CardRemoved(STAFF.uid))
    assert isinstance(s.screen, S.Home)


def test_no_pin_configured_shows_only_that_it_is_not_set_up():
    s = new()
    s.event(CardPresent(STAFF.uid))
    assert s.screen == S.CarerNotSetUp(STAFF)
    assert s.carer_pin(True) == [] and s.screen == S.CarerNotSetUp(STAFF)  # no way past it
    s.event(CardRemoved(STAFF.uid))
    assert isinstance(s.screen, S.Home)


def test_in_tap_mode_a_carer_told_the_staff_mode_is_not_set_up_has_a_home_button_to_go_back():
    """The words say "Press Home to go back." and that screen has no Cancel of its own."""
    s = new("tap")
    s.event(CardPresent(STAFF.uid))
    assert s.screen == S.CarerNotSetUp(STAFF) and s.shows_home_button
    s.home_pressed()
    assert isinstance(s.screen, S.Home)
    # The PIN pad and staff mode keep their own Cancel and Done.
    s.carer_pin_set = True
    s.event(CardPresent(STAFF.uid))
    assert isinstance(s.screen, S.CarerPin) and not s.shows_home_button
    s.carer_pin(True)
    assert isinstance(s.screen, S.CarerMode) and not s.shows_home_button


def test_three_wrong_pins_go_home_with_a_notice_and_a_pause():
    clock = Clock()
    s = carer_session(clock=clock)
    s.event(CardPresent(STAFF.uid))
    for _ in range(S.PIN_TRIES):
        s.carer_pin(False)
    assert s.screen == S.Home(notice="carer_paused") and not s.idle
    s.event(CardRemoved(STAFF.uid))
    s.event(CardPresent(STAFF.uid))
    assert s.screen == S.Home(notice="carer_paused")  # the pad stays closed during the pause
    assert s.carer_pin(True) == [] and isinstance(s.screen, S.Home)
    s.event(CardRemoved(STAFF.uid))
    clock.t += S.PIN_PAUSE_S
    s.tick()
    assert s.screen == S.Home() and s.idle
    s.event(CardPresent(STAFF.uid))
    assert s.screen == S.CarerPin(STAFF)


def test_cancel_and_done_go_home_and_a_resident_card_ends_carer_mode():
    s = carer_session()
    s.event(CardPresent(STAFF.uid))
    s.carer_leave()
    assert isinstance(s.screen, S.Home)
    s.event(CardPresent(ANNA.uid))
    assert s.screen == S.ShowingCard(ANNA)
    t = carer_session("tap")
    t.event(CardPresent(STAFF.uid))
    t.carer_pin(True)
    fx = t.event(CardPresent(STAFF.uid))  # a second tap leaves
    assert isinstance(t.screen, S.Home) and S.Record("card_removed", uid=STAFF.uid, detail="tap") in fx


def test_reader_lost_ends_carer_mode():
    s = carer_session()
    s.event(CardPresent(STAFF.uid))
    s.carer_pin(True)
    s.event(ReaderStatus("lost"))
    assert isinstance(s.screen, S.ReaderLost)


def test_unknown_cards_are_remembered_newest_first_until_set_up():
    clock = Clock()
    known = dict(CARDS)
    s = S.Session(lookup=known.get, carer_pin_set=True, clock=clock)
    for uid in ("04AA000000000001", "04AA000000000002", "04AA000000000001"):
        clock.t += 10
        s.event(CardPresent(uid))
        s.event(CardRemoved(uid))
    assert [u.uid for u in s.unknown_cards()] == ["04AA000000000001", "04AA000000000002"]
    assert s.unknown_cards()[0].at == clock.t
    known["04AA000000000001"] = ANNA
    assert [u.uid for u in s.unknown_cards()] == ["04AA000000000002"]
    for n in range(10):
        s.remember_unknown(f"04BB0000000000{n:02d}", n)
    assert len(s.unknown_seen) == S.UNKNOWN_KEPT


def test_the_wrong_pin_count_survives_cancel_and_the_carer_card_going_out():
    s = carer_session()
    s.event(CardPresent(STAFF.uid))
    s.carer_pin(False)
    s.carer_leave()  # Cancel
    s.event(CardRemoved(STAFF.uid))
    s.event(CardPresent(STAFF.uid))
    assert s.screen == S.CarerPin(STAFF, 1)  # not a fresh pad with three new tries
    s.carer_pin(False)
    s.event(CardRemoved(STAFF.uid))
    s.event(CardPresent(STAFF.uid))
    assert s.screen == S.CarerPin(STAFF, 2)
    s.carer_pin(False)
    assert s.screen == S.Home(notice="carer_paused") and s.carer_pause_left() == S.PIN_PAUSE_S


def test_each_round_of_wrong_pins_doubles_the_pause_up_to_an_hour():
    clock = Clock()
    s = carer_session(clock=clock)
    pauses = []
    for _ in range(9):
        s.event(CardPresent(STAFF.uid))
        assert isinstance(s.screen, S.CarerPin)
        for _ in range(S.PIN_TRIES):
            s.carer_pin(False)
        pauses.append(s.carer_pause_left())
        s.event(CardRemoved(STAFF.uid))
        clock.t += pauses[-1] - 1
        s.event(CardPresent(STAFF.uid))  # a second early: still shut
        assert s.screen == S.Home(notice="carer_paused")
        s.event(CardRemoved(STAFF.uid))
        clock.t += 1
        s.tick()
    assert pauses == [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
    s.event(CardPresent(STAFF.uid))
    s.carer_pin(True)  # the right PIN clears the count
    assert s.screen == S.CarerMode(STAFF) and s.pin == S.PinThrottle()
    s.event(CardRemoved(STAFF.uid))
    s.event(CardPresent(STAFF.uid))
    for _ in range(S.PIN_TRIES):
        s.carer_pin(False)
    assert s.carer_pause_left() == S.PIN_PAUSE_S


def test_the_pin_notice_leaves_home_after_a_minute_while_a_long_pause_goes_on():
    clock = Clock()
    s = carer_session(clock=clock)
    s.restore_pin(S.PinThrottle(failures=2 * S.PIN_TRIES).to_text())
    s.event(CardPresent(STAFF.uid))
    for _ in range(S.PIN_TRIES):
        s.carer_pin(False)
    assert s.carer_pause_left() == 240
    s.event(CardRemoved(STAFF.uid))
    clock.t += S.PIN_NOTICE_S
    s.tick()
    assert s.screen == S.Home() and s.idle  # the resident's home is home again
    s.event(CardPresent(STAFF.uid))
    assert s.screen == S.Home(notice="carer_paused")  # but the pad is still shut


def test_the_pin_throttle_survives_a_restart_in_the_usage_database(tmp_path):
    from klick.usage import UsageLog

    clock = Clock()
    usage = UsageLog.open(tmp_path / "usage.db", device="t", enrolled=True)
    s = carer_session(clock=clock)
    s.event(CardPresent(STAFF.uid))
    for _ in range(S.PIN_TRIES):
        for effect in s.carer_pin(False):
            if isinstance(effect, S.KeepState):  # what the app does with it
                usage.set_state(effect.key, effect.value)
    usage.close()
    # A restart: a new process, a new session, the same database.
    usage = UsageLog.open(tmp_path / "usage.db", device="t", enrolled=True)
    again = carer_session(clock=clock)
    again.restore_pin(usage.get_state(S.PIN_STATE_KEY))
    again.event(CardPresent(STAFF.uid))
    assert again.screen == S.Home(notice="carer_paused") and again.carer_pause_left() == S.PIN_PAUSE_S
    clock.t += S.PIN_PAUSE_S
    again.event(CardRemoved(STAFF.uid))
    again.event(CardPresent(STAFF.uid))
    assert again.screen == S.CarerPin(STAFF, 0)
    for _ in range(S.PIN_TRIES):
        again.carer_pin(False)
    assert again.carer_pause_left() == 2 * S.PIN_PAUSE_S  # the second round since the restart doubles
    clock.t += 2 * S.PIN_PAUSE_S
    again.event(CardRemoved(STAFF.uid))
    again.event(CardPresent(STAFF.uid))
    for effect in again.carer_pin(True):
        usage.set_state(effect.key, effect.value)
    assert usage.get_state(S.PIN_STATE_KEY) is None
    usage.close()


def test_a_pin_check_answered_after_the_card_went_out_still_counts():
    s = carer_session()
    s.event(CardPresent(STAFF.uid))
    s.pin_entered()
    assert s.screen == S.CarerPin(STAFF, 0, checking=True)
    assert s.pin_entered() == [] and s.pin_pending  # a second OK while it checks: nothing
    s.event(CardRemoved(STAFF.uid))
    fx = s.carer_pin(False)
    assert s.pin.failures == 1 and isinstance(s.screen, S.Home)
    assert fx == [S.KeepState(S.PIN_STATE_KEY, S.PinThrottle(1).to_text())]
    assert s.carer_pin(False) == [] and s.pin.failures == 1  # no check was under way: no effect


def test_a_clock_set_back_never_shuts_the_pin_pad_longer_than_the_cap():
    clock = Clock()
    s = carer_session(clock=clock)
    s.restore_pin(S.PinThrottle(S.PIN_TRIES, paused_until=clock.t + 10 * 365 * 86400).to_text())
    s.event(CardPresent(STAFF.uid))
    assert s.screen == S.Home(notice="carer_paused")
    s.event(CardRemoved(STAFF.uid))
    clock.t += S.PIN_PAUSE_MAX_S
    s.tick()
    s.event(CardPresent(STAFF.uid))
    assert isinstance(s.screen, S.CarerPin)


@given(st.one_of(st.none(), st.text(), st.binary().map(lambda b: b.decode("latin-1")), st.builds(str, st.integers())))
def test_kept_pin_state_that_is_not_one_never_breaks_the_launcher(text):
    pin = S.PinThrottle.from_text(text)
    assert pin.failures >= 0 and pin.paused_until >= 0
    assert S.PinThrottle.from_text(pin.to_text()) == pin


def test_an_unreadable_card_file_stands_in_for_home_until_it_is_fixed():
    s = new()
    s.prompt_due(Prompt())
    fx = s.card_file_state("unreadable")
    assert s.screen == S.CardsUnreadable() and S.PromptSnoozed(s_prompt := fx[0].prompt) in fx and s_prompt.id == 1
    assert not s.idle and not s.shows_home_button and s.prompt_due(Prompt()) == []
    fx = s.event(CardPresent(ANNA.uid))  # even a card the lookup knew: nothing runs
    assert s.screen == S.CardsUnreadable() and kinds(fx, S.StartAction) == []
    assert S.Record("card_present", uid=ANNA.uid, detail="cards_unreadable") in fx
    s.event(CardRemoved(ANNA.uid))
    s.event(ReaderStatus("lost"))
    assert isinstance(s.screen, S.ReaderLost)
    s.event(ReaderStatus("connected"))
    assert s.screen == S.CardsUnreadable()
    s.card_file_state("ok")
    assert s.screen == S.Home() and s.idle
    s.event(CardPresent(ANNA.uid))
    s.card_file_state("kept")  # a mistake with the last good cards kept: nothing changes on screen
    assert s.screen == S.ShowingCard(ANNA)


def test_a_card_file_fixed_while_the_reader_is_still_starting_keeps_saying_the_reader_is_starting():
    """No flash of home (where a card would do nothing) between the card file and the reader."""
    s, clock = starting()
    s.connection(True)
    s.card_file_state("unreadable")
    assert s.screen == S.CardsUnreadable()
    clock.t += S.BRIDGE_GRACE_S + S.READER_GRACE_S  # the file is fixed before the next tick
    s.card_file_state("ok")
    assert s.screen == S.ReaderStarting()
    s.event(ReaderStatus("connected"))
    assert s.screen == S.Home()


# --- properties --------------------------------------------------------------------------------

uids = st.sampled_from([*CARDS, UNKNOWN])
inputs = st.one_of(
    st.builds(CardPresent, uids),
    st.builds(CardRemoved, uids),
    st.builds(ReaderStatus, st.sampled_from(["connected", "searching", "lost"]), mode=st.sampled_from(["slot", "tap"])),
    st.sampled_from(
        [
            "home",
            "prompt",
            "answer",
            "later",
            "fail",
            "exit",
            "started",
            "conn_up",
            "conn_down",
            "greeted",
            "pin_ok",
            "pin_bad",
            "carer_leave",
            "tick",
            "pin_entered",
            "cards_ok",
            "cards_kept",
            "cards_unreadable",
            "verdict_failed",
            "verdict_ended",
            "waiting",
            "waiting_none",
        ]
    ),
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
        "greeted": s.greeting_over,
        "pin_ok": lambda: s.carer_pin(True),
        "pin_bad": lambda: s.carer_pin(False),
        "carer_leave": s.carer_leave,
        "tick": s.tick,
        "pin_entered": s.pin_entered,
        "cards_ok": lambda: s.card_file_state("ok"),
        "cards_kept": lambda: s.card_file_state("kept"),
        "cards_unreadable": lambda: s.card_file_state("unreadable"),
        "verdict_failed": lambda: s.browser_verdict(running, "load_failed", "net::ERR_NAME_NOT_RESOLVED") if running else [],
        "verdict_ended": lambda: s.browser_verdict(running, "ended_by_other_side") if running else [],
        "waiting": lambda: s.someone_waiting([ANNA]),
        "waiting_none": lambda: s.someone_waiting([]),
    }[item]()


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["slot", "tap"]), st.lists(inputs, max_size=40))
def test_starts_and_stops_always_balance(mode, items):
    s = S.Session(lookup=CARDS.get, configured_mode=mode, carer_pin_set=True)
    started: list = []
    for item in items:
        before = s.running
        fx = drive(s, item)
        for e in fx:
            if isinstance(e, S.StartAction):
                assert e.card.uid in CARDS and e.card.enabled and e.card.action is not None
                assert s.card_file != "unreadable"
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
        if isinstance(s.screen, S.CardsUnreadable):
            assert s.card_file == "unreadable"
        if isinstance(s.screen, S.ShowingCard) and s.screen.phase != "finished":
            assert s.running == s.screen.card
        # "Anna is waiting" only on a home with nothing running, and announced only as it shows.
        if isinstance(s.screen, S.Home) and s.screen.waiting is not None:
            assert s.running is None and s.present is None and not s.screen.notice
        for e in fx:
            if isinstance(e, S.Announce):
                assert isinstance(s.screen, S.Home) and s.screen.waiting == e.card
        if isinstance(s.screen, S.CallEnded):
            assert s.running is None


@settings(max_examples=200, deadline=None)
@given(st.lists(inputs, max_size=30), st.sampled_from(list(CARDS)))
def test_in_slot_mode_taking_a_closing_card_out_always_ends_at_home(items, uid):
    s = S.Session(lookup=CARDS.get, configured_mode="slot", carer_pin_set=True)
    for item in items:
        drive(s, item)
    s.event(ReaderStatus("connected", mode="slot"))
    s.greeting_over()
    if isinstance(s.screen, S.Asking):
        s.prompt_later()
    s.event(CardPresent(uid))
    s.event(CardRemoved(uid))
    card = CARDS[uid]
    if s.card_file == "unreadable":  # the calm "cards cannot be read" stands in for home
        assert s.screen == S.CardsUnreadable() and s.running is None
    elif card.on_remove == "close":
        assert isinstance(s.screen, S.Home) and s.running is None
    else:
        assert s.running in (None, card)


# --- the browser's verdicts and someone waiting ---------------------------------------------------


def test_a_page_or_call_that_could_not_start_ends_the_browser_and_waits_for_the_card():
    s = new()
    s.event(CardPresent(ANNA.uid))
    fx = s.browser_verdict(ANNA, "conference_failed", "conference.connectionError.notAllowed")
    assert kinds(fx, S.StopAction) == [S.StopAction(ANNA, "conference_failed")]
    assert kinds(fx, S.Record) == [
        S.Record("action_failed", ANNA.uid, "video_call", "conference_failed", "conference.connectionError.notAllowed")
    ]
    assert s.screen == S.ActionFailed(ANNA, "conference_failed", "conference.connectionError.notAllowed") and s.running is None
    assert s.browser_verdict(ANNA, "load_failed") == []  # one verdict per run; a late one does nothing
    s.event(CardRemoved(ANNA.uid))
    assert s.screen == S.Home()


def test_a_call_the_other_side_ended_says_so_until_the_card_comes_out_and_tap_mode_has_home():
    s = new()
    s.event(CardPresent(ANNA.uid))
    fx = s.browser_verdict(ANNA, "ended_by_other_side", "the other side left")
    assert kinds(fx, S.Record)[0].kind == "action_ended" and kinds(fx, S.Record)[0].outcome == "ended_by_other_side"
    assert s.screen == S.CallEnded(ANNA) and not s.shows_home_button
    s.event(CardRemoved(ANNA.uid))
    assert s.screen == S.Home()
    t = new("tap")
    t.event(CardPresent(ANNA.uid))
    t.browser_verdict(ANNA, "ended_by_other_side")
    assert t.screen == S.CallEnded(ANNA) and t.shows_home_button
    t.event(CardPresent(ANNA.uid))  # tapping the card again goes home
    assert t.screen == S.Home()
    # A verdict for a card no longer running (the next card is in) changes nothing.
    u = new()
    u.event(CardPresent(ANNA.uid))
    u.event(CardPresent(RADIO.uid))
    assert u.browser_verdict(ANNA, "load_failed") == [] and isinstance(u.screen, S.ShowingCard)


def test_someone_waiting_shows_on_idle_home_announced_once_and_home_returns_when_the_room_empties():
    s = new()
    fx = s.someone_waiting([ANNA, WEB])
    assert s.screen.waiting == ANNA and fx == [S.Announce(ANNA)]
    assert not s.idle and s.home_idle  # no question over it, but the servers are still asked
    assert s.someone_waiting([ANNA]) == [] and s.screen.waiting == ANNA  # still there: said once
    assert s.someone_waiting([]) == [] and s.screen == S.Home() and s.screen.waiting is None
    assert s.someone_waiting([ANNA]) == [S.Announce(ANNA)]  # a new wait, a new announcement
    s.event(CardPresent(ANNA.uid))  # the resident puts Anna's card in
    assert isinstance(s.screen, S.ShowingCard) and s.someone_waiting([ANNA]) == []
    assert isinstance(s.screen, S.ShowingCard)  # nothing shows over a running call
    s.event(CardRemoved(ANNA.uid))
    assert s.screen == S.Home()  # not shown again until the servers answer afresh


def test_someone_waiting_puts_off_a_question_and_never_shows_on_a_notice_or_a_lost_reader():
    s = new()
    s.prompt_due(Prompt())
    assert isinstance(s.screen, S.Asking)
    fx = s.someone_waiting([ANNA])
    assert kinds(fx, S.PromptSnoozed) and s.screen.waiting == ANNA
    assert s.prompt_due(Prompt()) == [] and s.screen.waiting == ANNA  # no question over it
    lost = new()
    lost.event(ReaderStatus("lost"))
    assert lost.someone_waiting([ANNA]) == [] and isinstance(lost.screen, S.ReaderLost)
