"""The browser's watch and the waiting indicator without a browser: the pure rules (hammered by
hypothesis), the DevTools pipe against real child processes (the demo's stand-in, and hostile
ones), the browser profile's settings, and the room-size poller against real local HTTP
servers that answer, are slow, fail, or have no endpoint."""

from __future__ import annotations

import functools
import http.server
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cards.model import Card, VideoCall, Web
from launcher import browser, devtools, waiting
from launcher.browser import ENDED, VERDICTS, JitsiState, PageWatch, Verdict, read_jitsi_state

# --- the page watch --------------------------------------------------------------------------


def test_a_load_that_fails_or_never_comes_is_one_verdict_with_its_reason():
    w = PageWatch(deadline=10.0)
    assert w.tick(5.0) is None and w.next_deadline() == 10.0
    assert w.navigation_failed("net::ERR_NAME_NOT_RESOLVED") == Verdict("load_failed", "net::ERR_NAME_NOT_RESOLVED")
    assert w.tick(99.0) is None and w.page_loaded(200) is None  # one verdict, never a second
    assert PageWatch(deadline=10.0).page_loaded(503) == Verdict("load_failed", "HTTP 503")
    late = PageWatch(deadline=10.0)
    assert late.tick(10.0) == Verdict("load_timeout", "the page did not load in time")
    fine = PageWatch(deadline=10.0)
    assert fine.page_loaded(200) is None and fine.loaded and fine.tick(1e9) is None and fine.next_deadline() is None


def test_jitsi_waiting_for_a_moderator_or_failing_before_the_call_joined_is_told():
    waiting_ = PageWatch(deadline=10.0, jitsi=True, loaded=True)
    state = JitsiState(error="conference.authenticationRequired", waiting=True)
    assert waiting_.jitsi_state(state, 1.0) == Verdict("waiting_for_moderator", "conference.authenticationRequired")
    login = PageWatch(deadline=10.0, jitsi=True, loaded=True)
    assert login.jitsi_state(JitsiState(connection_error="connection.passwordRequired"), 1.0).outcome == "waiting_for_moderator"
    failed = PageWatch(deadline=10.0, jitsi=True, loaded=True)
    assert failed.jitsi_state(JitsiState(connection_error="connection.otherError"), 1.0) == Verdict(
        "conference_failed", "connection.otherError"
    )
    # A web page is never read as a call.
    assert PageWatch(deadline=10.0, loaded=True).jitsi_state(JitsiState(error="x"), 1.0) is None


def test_the_call_ends_when_the_other_side_is_gone_for_the_grace_or_ends_it_for_everyone():
    g = browser.HANGUP_GRACE_S
    w = PageWatch(deadline=10.0, jitsi=True, loaded=True)
    assert w.jitsi_state(JitsiState(joined=True), 1.0) is None  # alone from the start: waiting for Anna
    assert w.jitsi_state(JitsiState(joined=True, remote=1), 2.0) is None
    assert w.jitsi_state(JitsiState(joined=True), 3.0) is None  # Anna's connection blips...
    assert w.jitsi_state(JitsiState(joined=True, remote=1), 3.0 + g - 0.1) is None  # ...and she is back
    assert w.jitsi_state(JitsiState(joined=True), 10.0) is None
    assert w.next_deadline() == 10.0 + g
    assert w.tick(10.0 + g) == Verdict(ENDED, "the other side left")
    # An old error from before joining (Jitsi keeps it) means nothing once the call is on.
    old = PageWatch(deadline=10.0, jitsi=True, loaded=True)
    assert old.jitsi_state(JitsiState(joined=True, error="conference.authenticationRequired", remote=1), 1.0) is None
    everyone = PageWatch(deadline=10.0, jitsi=True, loaded=True)
    everyone.jitsi_state(JitsiState(joined=True, remote=1), 1.0)
    assert everyone.jitsi_state(JitsiState(error="conference.destroyed"), 2.0) == Verdict(ENDED, "conference.destroyed")
    # Jitsi reconnecting (not in the conference for a moment) is nobody leaving.
    rejoin = PageWatch(deadline=10.0, jitsi=True, loaded=True)
    rejoin.jitsi_state(JitsiState(joined=True, remote=1), 1.0)
    assert rejoin.jitsi_state(JitsiState(joined=False), 2.0) is None and rejoin.tick(100.0) is None


hostile = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=300),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=6),
    max_leaves=20,
)


@given(hostile)
def test_whatever_the_page_returns_is_a_jitsi_state_or_nothing(value):
    state = read_jitsi_state(value)
    assert state is None or (0 <= state.remote <= 100_000 and len(state.error) <= 100 and len(state.connection_error) <= 100)


@given(
    st.fixed_dictionaries(
        {
            "joined": st.one_of(st.booleans(), hostile),
            "error": st.one_of(st.sampled_from(["", "conference.destroyed", "conference.iceFailed"]), hostile),
            "waiting": st.one_of(st.booleans(), hostile),
            "remote": st.one_of(st.integers(-5, 5), st.floats(), hostile),
        }
    )
)
def test_probe_answers_are_read_strictly(value):
    state = read_jitsi_state(value)
    assert state.joined is (value["joined"] is True) and state.waiting is (value["waiting"] is True)


inputs = st.lists(
    st.one_of(
        st.tuples(st.just("failed"), st.text(max_size=200)),
        st.tuples(st.just("loaded"), st.one_of(st.none(), st.integers(100, 599))),
        st.tuples(
            st.just("jitsi"),
            st.builds(
                JitsiState,
                joined=st.booleans(),
                error=st.sampled_from(["", "conference.destroyed", "conference.iceFailed"]),
                connection_error=st.sampled_from(["", "connection.passwordRequired", "connection.droppedError"]),
                waiting=st.booleans(),
                remote=st.integers(0, 3),
            ),
        ),
        st.tuples(st.just("tick"), st.none()),
    ),
    max_size=40,
)


@given(inputs, st.booleans(), st.lists(st.floats(0, 5), min_size=40, max_size=40))
@settings(max_examples=300)
def test_any_sequence_gives_at_most_one_verdict_and_a_known_one(steps, jitsi, gaps):
    w = PageWatch(deadline=20.0, jitsi=jitsi)
    now, verdicts, joined = 0.0, [], False
    for (kind, value), gap in zip(steps, gaps):
        now += gap
        if kind == "failed":
            got = w.navigation_failed(value)
        elif kind == "loaded":
            got = w.page_loaded(value)
        elif kind == "jitsi":
            joined = joined or value.joined
            got = w.jitsi_state(value, now)
        else:
            got = w.tick(now)
        if got is not None:
            verdicts.append(got)
    assert len(verdicts) <= 1
    for v in verdicts:
        assert v.outcome in VERDICTS and len(v.detail) <= 100 and v == w.verdict
        assert v.outcome != ENDED or joined  # only a call that was on can end
        assert v.outcome in ("load_failed", "load_timeout") or jitsi


# --- the profile -----------------------------------------------------------------------------


def test_the_profile_gets_its_kiosk_settings_and_keeps_the_rest(tmp_path):
    profile = tmp_path / "p"
    browser.seed_preferences(profile)
    prefs = json.loads((profile / "Default" / "Preferences").read_text())
    assert prefs["profile"]["exit_type"] == "Normal" and prefs["translate"]["enabled"] is False
    assert prefs["profile"]["default_content_setting_values"]["media_stream_camera"] == 2
    prefs["profile"]["exit_type"] = "Crashed"
    prefs["extensions"] = {"kept": 1}
    (profile / "Default" / "Preferences").write_text(json.dumps(prefs))
    browser.seed_preferences(profile)
    again = json.loads((profile / "Default" / "Preferences").read_text())
    assert again["profile"]["exit_type"] == "Normal" and again["extensions"] == {"kept": 1}
    for damaged in (b"{not json", b"[1, 2]", b"\xff\xfe", b'"x"', b"{" * 100_000):
        (profile / "Default" / "Preferences").write_bytes(damaged)
        browser.seed_preferences(profile)
        assert json.loads((profile / "Default" / "Preferences").read_text())["translate"] == {"enabled": False}
    (profile / "Default" / "Preferences").write_bytes(b" " * (browser.MAX_PREFERENCES_BYTES + 1))
    browser.seed_preferences(profile)
    assert (profile / "Default" / "Preferences").stat().st_size < 10_000


def test_a_profile_that_cannot_be_written_is_logged_and_the_browser_starts_anyway(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="klick.launcher.browser"):
        browser.seed_preferences(blocker / "profile")
    assert any("could not be written" in r.message for r in caplog.records)


# --- the DevTools pipe, against real processes -----------------------------------------------------


def test_the_pipe_speaks_to_a_child_on_its_descriptors_3_and_4(tmp_path):
    proc, pipe = devtools.spawn_with_pipe(
        (sys.executable, "-m", "launcher.demo_browser", "--remote-debugging-pipe"), log_file=tmp_path / "log"
    )
    events: list = []
    pipe.start(events.append)
    try:
        assert pipe.call("Browser.getVersion")["product"] == "Klick demo stand-in"
        assert pipe.call("Anything.else", {"x": 1}, session="s") == {}
        pipe.send("Page.navigate", {"url": "https://example.se/"}, session="demo-session")
        devtools_wait(lambda: any(e and e.get("method") == "Page.domContentEventFired" for e in events))
        assert "a tablet would open https://example.se/" in (tmp_path / "log").read_text()
    finally:
        pipe.close()  # the child sees its pipe close, and quits
    assert proc.wait(10) == 0
    devtools_wait(lambda: events and events[-1] is None)  # the reader saw the end
    with pytest.raises(devtools.DevToolsError):
        pipe.call("Browser.getVersion")


HOSTILE_BROWSER = r"""
import os, sys, time, json
w = lambda b: os.write(4, b)
w(b"not json\0")
w(b"[1, 2, 3]\0")
w(b"{\"id\": \"x\"}\0")
w(b"[" * 100000 + b"\0")
w(b"x" * (%d + 10) + b"\0")
w(json.dumps({"method": "Some.event", "params": {}}).encode() + b"\0")
data = os.read(3, 65536)
msg = json.loads(data.split(b"\0")[0])
w(json.dumps({"id": msg["id"], "result": {"product": "survived"}}).encode() + b"\0")
time.sleep(%s)
"""


def test_garbage_and_huge_messages_from_the_browser_are_left_out_and_the_pipe_goes_on():
    script = HOSTILE_BROWSER % (devtools.MAX_MESSAGE, "30")
    proc, pipe = devtools.spawn_with_pipe((sys.executable, "-c", script))
    events: list = []
    pipe.start(events.append)
    try:
        assert pipe.call("Browser.getVersion", timeout=20)["product"] == "survived"
        assert [e for e in events if e is not None] == [{"id": "x"}, {"method": "Some.event", "params": {}}]
    finally:
        pipe.close()
        os.killpg(proc.pid, 9)
        proc.wait(10)


@pytest.mark.serial  # measures wall time
def test_a_browser_that_ends_fails_every_waiting_call_at_once():
    proc, pipe = devtools.spawn_with_pipe((sys.executable, "-c", "import time; time.sleep(0.5)"))
    pipe.start(lambda _m: None)
    started = time.monotonic()
    with pytest.raises(devtools.DevToolsError, match="closed"):
        pipe.call("Browser.getVersion", timeout=30)
    assert time.monotonic() - started < 5
    assert proc.wait(5) == 0 and proc.poll() == 0
    with pytest.raises(FileNotFoundError):
        devtools.spawn_with_pipe(("/nonexistent/klick-no-browser",))
    sleeper, quiet = devtools.spawn_with_pipe((sys.executable, "-c", "import time; time.sleep(30)"))
    with pytest.raises(subprocess.TimeoutExpired):
        sleeper.wait(0.2)
    os.killpg(sleeper.pid, 9)
    assert sleeper.wait(5) == -9
    quiet.close()


def test_card_out_never_waits_on_a_browser_that_stopped_reading_its_pipe():
    """A hung Chromium stops reading: the watcher's write waits for room, up to a second. Closing
    the pipe (card out, on the screen's thread) must not wait for that write: the write stops,
    says "the browser closed", and the command end is closed once the writer lets go of it."""
    import fcntl
    import termios

    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()
    pipe = devtools.DevToolsPipe(to_w, from_r)
    pipe.start(lambda _m: None)
    outcome: list[str] = []

    def send() -> None:
        try:
            pipe.send("Page.navigate", {"url": "x" * 300_000})
        except devtools.DevToolsError as exc:
            outcome.append(str(exc))

    def queued() -> int:
        return int.from_bytes(fcntl.ioctl(to_r, termios.FIONREAD, b"\0\0\0\0"), "little")

    sender = threading.Thread(target=send)
    sender.start()
    try:
        capacity = fcntl.fcntl(to_r, fcntl.F_GETPIPE_SZ)
        devtools_wait(lambda: queued() >= capacity)  # the pipe is full: the write waits for room
        pipe.close()
        sender.join(10)
        assert outcome == ["Page.navigate: the browser closed"]  # not "not reading its pipe" a second later
        os.set_blocking(to_r, False)
        while os.read(to_r, 1 << 20):  # end of file: no command end is left open
            pass
    finally:
        os.close(to_r)
        os.close(from_w)


def test_a_stop_right_after_the_spawn_leaves_the_reader_no_descriptor_to_read_or_close(monkeypatch):
    """stop() can close the pipe before the browser thread starts its reader: the reader must not
    read descriptor -1 (and fail closing it), nor a number close() freed and a new file took."""
    failures: list = []
    monkeypatch.setattr(threading, "excepthook", failures.append)
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()
    pipe = devtools.DevToolsPipe(to_w, from_r)
    pipe.close()
    taken_r, taken_w = os.pipe()  # the lowest free numbers: likely the ones close() freed
    try:
        events: list = []
        pipe.start(events.append)
        reader = pipe._reader
        if reader is not None:
            reader.join(10)
        assert failures == []
        os.fstat(taken_r)  # still open: nobody closed a descriptor that was not theirs
        os.fstat(taken_w)
        with pytest.raises(devtools.DevToolsError, match="closed"):
            pipe.call("Browser.getVersion", timeout=5)
    finally:
        for fd in (to_r, from_w, taken_r, taken_w):
            os.close(fd)


def devtools_wait(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_browser_command_that_is_no_chromium_is_told_plainly_after_the_load_timeout(tmp_path):
    page = browser_page(tmp_path, (sys.executable, "-c", "import time; time.sleep(30)"))
    got: list = []
    run = browser.BrowserRun(page, load_timeout=1.0, on_verdict=got.append).start()
    try:
        devtools_wait(lambda: got)
        assert got[0].outcome == "cannot_start" and "DevTools" in got[0].detail
    finally:
        run.stop(wait=True)
    assert run.poll() is not None
    gone = browser.BrowserRun(browser_page(tmp_path, ("true",)), load_timeout=5, on_verdict=got.append).start()
    devtools_wait(lambda: gone.poll() is not None)
    gone.join(5)
    assert gone.poll() == 0 and len(got) == 1  # ended by itself: the app's exit handling says so
    missing = browser.BrowserRun(browser_page(tmp_path, ("/nonexistent/chromium",)), load_timeout=5, on_verdict=got.append)
    missing.start().join(10)
    assert got[1] == Verdict("missing", "/nonexistent/chromium is not installed")


def test_a_stop_before_the_browser_has_started_means_it_never_starts(tmp_path):
    from launcher import actions

    got: list = []
    marker = tmp_path / "started"
    page = browser_page(tmp_path, (sys.executable, "-c", f"open({str(marker)!r}, 'w')"))
    run = browser.BrowserRun(page, load_timeout=5, on_verdict=got.append)
    run.stop()
    run.start().join(10)
    assert run.pid is None and not marker.exists() and got == []
    assert actions.wait_for_stops(1.0)


def browser_page(tmp_path: Path, argv: tuple[str, ...]):
    from launcher.actions import BrowserPage

    return BrowserPage(argv, "https://example.se/", tmp_path / "profile")


# --- the waiting indicator: its rules --------------------------------------------------------


def test_room_names_are_what_jitsi_meet_gives_its_server():
    assert waiting.backend_room_name("familjen-andersson") == "familjen-andersson"
    assert waiting.backend_room_name("Familjen Andersson") == "familjen%20andersson"
    assert waiting.backend_room_name("Åsa") == "%c3%a5sa"
    assert waiting.backend_room_name("klick%20Demo") == "klick%20demo"  # already encoded: the same room
    assert waiting.backend_room_name("ﬁka") == "fika"  # NFKC
    assert waiting.backend_room_name("a&domain=evil") == "a%26domain%3devil"  # stays one value


def test_only_switched_on_jitsi_cards_on_allowed_servers_are_asked_about_each_room_once():
    def card(uid, action, **kw):
        return Card(uid=uid, label=uid, action=action, **kw)

    cards = [
        card("A", VideoCall("jitsi", "https://meet.example.se/", "Familjen")),
        card("B", VideoCall("jitsi", "https://MEET.example.se", "familjen")),  # the same room
        card("C", VideoCall("jitsi", "https://meet.example.se", "other"), enabled=False),
        card("D", VideoCall("jitsi", "https://meet.evil.example", "x")),
        card("E", VideoCall("teams", user="a@b.se")),
        card("F", Web("https://meet.example.se/x")),
        card("G", VideoCall("jitsi", "https://meet.example.se:8443", "x")),
        card("H", None, role="carer"),
    ]
    rooms = waiting.waiting_rooms(cards, ["meet.example.se", "https://meet.example.se:8443"])
    assert rooms == (
        waiting.Room("A", "https://meet.example.se", "familjen", "meet.example.se"),
        waiting.Room("G", "https://meet.example.se:8443", "x", "meet.example.se"),
    )
    assert waiting.room_size_url(rooms[0]) == "https://meet.example.se/room-size?room=familjen&domain=meet.example.se"


@pytest.mark.parametrize(
    ("status", "kind", "body", "probe", "room"),
    [
        (400, "text/html", b"", "count", "no_endpoint"),
        (200, "application/json", b'{"participants": 2}', "count", ("count", 2)),
        (200, "text/html", b"<!doctype html><title>Jitsi Meet</title>", "no_endpoint", "no_endpoint"),
        (404, "text/html", b"<h1>Not Found</h1>", "maybe", "absent"),
        (403, "text/html", b"", "no_endpoint", "no_endpoint"),
        (500, "text/html", b"", "trouble", "trouble"),
        (None, "", b"", "trouble", "trouble"),
        (200, "application/json", b'{"participants": -1}', "no_endpoint", "no_endpoint"),
        (200, "application/json", b'{"participants": true}', "no_endpoint", "no_endpoint"),
        (200, "application/json", b'{"participants": 1e400}', "no_endpoint", "no_endpoint"),
        (200, "application/json", b"[" * 100_000, "no_endpoint", "no_endpoint"),
    ],
)
def test_what_each_answer_of_the_room_size_endpoint_means(status, kind, body, probe, room):
    assert waiting.read_probe(status, kind, body).kind == probe
    got = waiting.read_room(status, kind, body)
    assert (got.kind, got.count) == room if isinstance(room, tuple) else got.kind == room


def test_a_server_without_the_endpoint_is_off_after_one_line_and_a_failing_one_is_asked_less_often():
    state = waiting.ServerState("https://meet.example.se", poll_s=15)
    notes = [state.after(waiting.Answer("trouble", detail="no answer"), t) for t in (0, 30, 90, 210, 450, 930, 1530)]
    assert [n for n in notes if n] == [
        "Waiting indicator: https://meet.example.se does not answer (no answer); asking less often until it does."
    ]
    assert state.next_at == 1530 + waiting.MAX_BACKOFF_S and not state.due(1530 + 599)
    assert state.after(waiting.Answer("count"), 2200) == "Waiting indicator: https://meet.example.se answers again."
    assert state.next_at == 2215 and state.state == "on"
    note = state.after(waiting.Answer("no_endpoint", detail="HTTP 200 with a page"), 2300)
    assert "has no room-size endpoint" in note and "not asked again" in note
    assert state.state == "off" and not state.due(1e12)
    # A probe's 404 (a proxy adding domain= to every request) leaves it to the rooms' answers.
    proxied = waiting.ServerState("https://meet.example.se", poll_s=15)
    assert proxied.after(waiting.read_probe(404), 0) is None and proxied.state == "maybe"
    assert proxied.after(waiting.Answer("absent"), 15) is None and proxied.state == "maybe"
    assert proxied.after(waiting.Answer("count", 1), 30) is None and proxied.state == "on"


# --- the waiting indicator: against real local servers ------------------------------------------


class _Endpoint(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        server = self.server
        server.asked.append(self.path)
        if server.mode == "slow":
            time.sleep(3)
        if server.mode == "failing":
            return self._send(500, b"")
        if server.mode == "missing":
            return self._send(200, b"<!doctype html><title>Jitsi Meet</title>", "text/html")
        if "?" not in self.path:
            return self._send(400, b"")
        n = server.rooms.get(self.path.split("room=")[1].split("&")[0])
        if n is None:
            return self._send(404, b"")
        self._send(200, json.dumps({"participants": n}).encode(), "application/json")

    def _send(self, status, body, kind="text/html"):
        try:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass

    def log_message(self, *_):
        pass


def endpoint(mode: str, rooms: dict | None = None):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    server.daemon_threads = True
    server.mode, server.rooms, server.asked = mode, rooms or {}, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.mark.serial  # measures wall time
def test_someone_in_a_room_is_reported_and_slow_failing_or_missing_servers_hold_nothing_up(caplog):
    good, good_origin = endpoint("good", {"familjen": 1, "empty": 0})
    slow, slow_origin = endpoint("slow")
    failing, failing_origin = endpoint("failing")
    missing, missing_origin = endpoint("missing")
    heard: list = []
    watch = waiting.WaitingWatch(
        0.3, lambda uids: heard.append((time.monotonic(), uids)), fetcher=functools.partial(waiting.fetch, timeout=1.0)
    )
    rooms = [
        waiting.Room("SLOW", slow_origin, "x", "h"),
        waiting.Room("ANNA", good_origin, "familjen", "h"),
        waiting.Room("FAIL", failing_origin, "x", "h"),
        waiting.Room("GONE", missing_origin, "x", "h"),
        waiting.Room("BO", good_origin, "empty", "h"),
        waiting.Room("NOONE", good_origin, "nobody", "h"),
    ]
    try:
        with caplog.at_level(logging.INFO, logger="klick.launcher.waiting"):
            started = time.monotonic()
            watch.set_rooms(rooms)
            watch.set_active(True)
            assert time.monotonic() - started < 0.05  # the screen's thread never waits for a server
            devtools_wait(lambda: heard and heard[-1][1] == ("ANNA",))
            assert heard[0][0] - started < 0.9  # the good server answered while the slow one still hung
            time.sleep(2.5)
            watch.set_active(False)
            asked_before = (len(missing.asked), len(good.asked))
            time.sleep(1.0)
            assert (len(missing.asked), len(good.asked)) == asked_before  # nothing is asked while home is busy
        assert missing.asked == ["/room-size"]  # asked once, never again
        assert len(failing.asked) <= 4  # 0.3 s, then 0.6, 1.2: less and less often, not a storm
        lines = [r.message for r in caplog.records]
        assert sum("has no room-size endpoint" in m for m in lines) == 1
        assert sum(failing_origin in m and "does not answer" in m for m in lines) == 1
        assert all(uids == ("ANNA",) for _, uids in heard if uids)
        # The tablet's own call just ended in Anna's room: not announced for a while.
        watch.quiet("ANNA", 60)
        heard.clear()
        watch.set_active(True)
        devtools_wait(lambda: heard)
        assert heard[-1][1] == ()
        good.rooms["familjen"] = 0
        watch.quiet("ANNA", 0)
        heard.clear()
        devtools_wait(lambda: heard)
        assert heard[-1][1] == ()  # the room emptied
    finally:
        watch.stop()
        for server in (good, slow, failing, missing):
            server.shutdown()
