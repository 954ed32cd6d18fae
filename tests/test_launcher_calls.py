"""Calls as the resident meets them: the real launcher (offscreen) with a real sim bridge, real
Chromium on a headless X display, and local HTTPS call servers (tests/browser_rig.py) that fail,
hang up, or have someone waiting in a room; plus servers whose room-size endpoint is slow,
failing or missing.

One launcher process runs the whole scenario (Kivy allows one app per process); the tests read
what it saw. PNGs go to artifacts/browser/.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # when run as the launcher's script

from tests.browser_rig import CHROMIUM, XVFB  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts" / "browser"
ANNA, BO, RAPPORT, LISA, SLOW, FAIL, GONE = (f"04CA11000000{i:02X}" for i in range(7))

pytestmark = [
    pytest.mark.serial,
    pytest.mark.ui,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM or not XVFB, reason="chromium or Xvfb is not installed (make test installs them)"),
]


def write_home(home: Path, servers: dict, spki: str) -> None:
    from tests.browser_rig import browser_command

    def call(uid: str, label: str, colour: str, server: str, room: str) -> str:
        return (
            f'  - uid: "{uid}"\n    label: {label}\n    colour: {colour}\n    picture: {REPO}/config/demo/pictures/anna.png\n'
            f"    action:\n      type: video_call\n      provider: jitsi\n      server: {server}\n      room: {room}\n"
            "      display_name: Mamma\n"
        )

    c = servers["call"].origin
    cards = "version: 1\ncards:\n" + "".join(
        [
            call(ANNA, "Anna", "blue", c, "anna-failed"),
            call(BO, "Bo", "green", c, "bo-hangup"),
            f'  - uid: "{RAPPORT}"\n    label: Rapport\n    colour: red\n    action:\n      type: web\n'
            "      url: https://klick-test.invalid/rapport\n",
            call(LISA, "Lisa", "purple", c, "lisa-joined"),
            call(SLOW, "Sven", "yellow", servers["slow"].origin, "x"),
            call(FAIL, "Frida", "yellow", servers["failing"].origin, "x"),
            call(GONE, "Gun", "yellow", servers["missing"].origin, "x"),
        ]
    )
    (home / "cards.yaml").write_text(cards, encoding="utf-8")
    allowed = "".join(f"    - {s.origin}\n" for s in servers.values())
    (home / "klick.yaml").write_text(
        f"reader:\n  driver: sim\n  grace_ms: 0\nlocale: sv\n"
        f"browser:\n  command: {json.dumps(browser_command(spki))}\n  load_timeout_s: 10\n"
        f"paths:\n  socket: {home / 'b.sock'}\n"
        f"pilot:\n  device_name: test-calls\n  enrolled: true\n"
        f"calls:\n  waiting_poll_s: 1\n  allowed_servers:\n{allowed}",
        encoding="utf-8",
    )


def _drive(home: Path, out: Path) -> None:
    from tests.browser_rig import Display, chromium_processes, make_certificate, page_share, serve
    from tests.launcher_harness import offscreen_env, run_scenario, said, start_bridge, stop_bridge

    cert, key, spki = make_certificate(home)
    servers = {
        "call": serve(cert, key, "call"),
        "slow": serve(cert, key, "slow", delay=10),
        "failing": serve(cert, key, "failing"),
        "missing": serve(cert, key, "missing"),
    }
    write_home(home, servers, spki)
    display = Display()
    offscreen_env(home)
    os.environ.update(DISPLAY=display.name, SDL_VIDEODRIVER="offscreen", SSL_CERT_FILE=str(cert))
    import logging

    from klick.config import load_config
    from launcher.kivy_setup import configure_kivy

    cfg = load_config(home / "klick.yaml")
    bridge = start_bridge(home)
    import numpy  # noqa: F401  (the page's pixels are counted with it; the launcher keeps it out once configured)

    configure_kivy(cfg, offscreen=True)
    from launcher import session as S
    from launcher.app import LauncherApp
    from tests.test_kiosk import layout_problems

    results: dict = {"steps": [], "errors": [], "texts": {}, "screens": {}, "latencies": [], "log": []}

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            results["log"].append(record.getMessage())

    logging.getLogger("klick").addHandler(Keep())
    logging.getLogger("klick").setLevel(logging.INFO)
    profile = cfg.browser.call_profile

    def texts(app) -> list[str]:
        from kivy.uix.label import Label

        return [said(w) for w in app.root_widget.walk(restrict=True) if isinstance(w, Label) and w.text.strip()]

    def shot(app, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        app.screenshot(ARTIFACTS / f"{name}.png")
        results["texts"][name] = texts(app)
        results["screens"][name] = layout_problems(app.root_widget, cfg.display.width, cfg.display.height)

    def scenario(app: LauncherApp):
        session = app.session
        painted: list[float] = []
        app.page_listeners.append(painted.append)
        app.shown_listeners.append(
            lambda name, screen, received: received is not None and results["latencies"].append(time.perf_counter() - received)
        )

        def on(kind: type) -> bool:
            return isinstance(session.screen, kind)

        def card(uid: str):
            app.send_to_bridge({"command": "insert", "uid": uid})

        def remove():
            app.send_to_bridge({"command": "remove"})

        yield lambda: on(S.Home) and session.reader == "connected" and session.bridge_connected
        # 1. Someone is in Anna's room: home says so, and goes back when the room empties.
        rooms = servers["call"].rooms
        rooms["anna-failed"] = 1
        shown = time.monotonic()
        yield lambda: on(S.Home) and session.screen.waiting is not None
        results["waiting_after"] = time.monotonic() - shown
        results["waiting_card"] = session.screen.waiting.uid
        yield 0.3
        shot(app, "anna-waiting")
        rooms.pop("anna-failed")
        yield lambda: on(S.Home) and session.screen.waiting is None
        rooms["anna-failed"] = 1
        yield lambda: on(S.Home) and session.screen.waiting is not None
        results["steps"].append("waiting")
        # 2. The resident puts in Anna's card: Jitsi says the conference failed. The browser
        #    ends; calm words.
        card(ANNA)
        yield lambda: on(S.ActionFailed)
        results["anna_reason"] = session.screen.reason
        yield lambda: not chromium_processes(profile)
        yield 0.3
        shot(app, "call-could-not-start")
        remove()
        yield lambda: on(S.Home)
        # The server still counts someone in Anna's room (as it may count the tablet itself for a
        # while after its own call): not announced again meanwhile.
        yield 2.5
        results["waiting_after_own_call"] = session.screen.waiting is not None
        results["steps"].append("failed")
        # 2. Bo hangs up (his screen share lingers: not a person).
        card(BO)
        yield lambda: on(S.CallEnded)
        yield lambda: not chromium_processes(profile)
        yield 0.3
        shot(app, "call-ended")
        remove()
        yield lambda: on(S.Home)
        results["steps"].append("ended")
        # 3. SVT/web with no network: the page cannot load.
        card(RAPPORT)
        yield lambda: on(S.ActionFailed)
        results["rapport_reason"] = session.screen.reason
        yield 0.3
        shot(app, "page-could-not-open")
        remove()
        yield lambda: on(S.Home)
        results["steps"].append("web")
        # 4. Lisa's call goes on: the kiosk on the glass; card out ends every Chromium process.
        card(LISA)
        yield lambda: painted
        painted_at = time.monotonic()
        yield lambda: page_share(display.grab()) > 0.9  # the call page, on the glass, full screen
        results["page_on_glass_after_paint"] = time.monotonic() - painted_at
        display.grab().save(ARTIFACTS / "launcher-kiosk-call-page.png")
        results["lisa_processes"] = len(chromium_processes(profile))
        taken_out = time.monotonic()
        remove()
        yield lambda: not chromium_processes(profile)
        results["lisa_gone_after"] = time.monotonic() - taken_out
        yield lambda: on(S.Home)
        results["steps"].append("card_out")
        # 5. The slow, failing and missing servers held nothing up: a card still shows at once.
        #    The launcher then quits (as on SIGTERM) in the middle of the call.
        results["asked"] = {name: [p for _, p in s.asked] for name, s in servers.items() if name != "call"}
        painted.clear()
        card(LISA)
        yield lambda: on(S.ShowingCard)
        yield lambda: painted
        results["running_at_quit"] = len(chromium_processes(profile))

    def probe(app: LauncherApp) -> None:
        run_scenario(app, scenario(app), results, out, timeout=90)

    try:
        LauncherApp(cfg, probe=probe).run()
        results["left_after_quit"] = len(chromium_processes(profile))
        out.write_text(json.dumps(results, default=str), encoding="utf-8")
    finally:
        stop_bridge(bridge)
        display.close()
        for server in servers.values():
            server.close()


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("calls")
    out = home / "results.json"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.run(
        [sys.executable, __file__, str(home), str(out)], capture_output=True, text=True, timeout=180, env=env, cwd=REPO
    )
    assert out.exists(), f"the launcher wrote no results (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    results = json.loads(out.read_text())
    results["home"] = str(home)
    return results


def test_the_scenario_ran_to_its_end(run):
    assert run["errors"] == []
    assert run["steps"] == ["waiting", "failed", "ended", "web", "card_out"]


def test_a_call_that_could_not_start_says_so_calmly_speaking_of_the_call(run):
    assert run["anna_reason"] == "conference_failed"
    said = run["texts"]["call-could-not-start"]
    assert "Samtalet med Anna kunde inte starta." in said and "Ta ut kortet och försök igen senare." in said
    assert run["screens"]["call-could-not-start"] == []
    assert (ARTIFACTS / "call-could-not-start.png").stat().st_size > 2000


def test_a_call_the_other_side_ended_says_who_hung_up(run):
    said = run["texts"]["call-ended"]
    assert "Bo har lagt på." in said and "Ta ut kortet för att gå tillbaka." in said
    assert run["screens"]["call-ended"] == []


def test_a_page_that_cannot_load_shows_the_same_calm_failure(run):
    assert run["rapport_reason"] == "load_failed"
    assert "Rapport gick inte att starta." in run["texts"]["page-could-not-open"]
    assert "Ta ut kortet och försök igen senare." in run["texts"]["page-could-not-open"]


def test_card_out_leaves_no_chromium_process_within_3_s(run):
    assert run["lisa_processes"] >= 3
    assert run["lisa_gone_after"] < 3.0


def test_someone_waiting_in_a_call_cards_room_is_shown_on_home_and_announced_once(run):
    assert run["waiting_card"] == ANNA
    said = run["texts"]["anna-waiting"]
    assert "Anna väntar på dig." in said and "Sätt i Annas kort." in said and "Anna" in said
    assert run["screens"]["anna-waiting"] == []
    assert run["waiting_after"] < 5.0
    # Once while her room stayed full; again after it emptied and filled; never for the
    # tablet's own call that just ended there.
    assert sum(f"Someone is in the room of card {ANNA}" in m for m in run["log"]) == 2
    assert run["waiting_after_own_call"] is False


def test_slow_failing_and_missing_room_size_servers_never_delay_the_screen(run):
    assert max(run["latencies"]) < 1.0, run["latencies"]
    asked = run["asked"]
    assert asked["missing"] == ["/room-size"]  # no endpoint: asked once, one log line, never again
    assert sum("has no room-size endpoint" in m for m in run["log"]) == 1
    assert 1 <= len(asked["failing"]) <= 6  # a failing server is asked less and less often
    assert sum("does not answer" in m and "HTTP 500" in m for m in run["log"]) == 1


def test_quitting_in_the_middle_of_a_call_ends_the_browser_and_logs_it(run):
    assert run["running_at_quit"] >= 3 and run["left_after_quit"] == 0
    db = sqlite3.connect(Path(run["home"]) / "usage.db")
    last = db.execute("SELECT uid, kind, outcome FROM events WHERE kind = 'action_ended' ORDER BY id DESC LIMIT 1").fetchone()
    assert last == (LISA, "action_ended", "launcher_stopped")


def test_every_call_outcome_is_in_the_usage_log(run):
    db = sqlite3.connect(Path(run["home"]) / "usage.db")
    rows = db.execute(
        "SELECT uid, kind, outcome FROM events WHERE kind IN ('action_failed', 'action_ended') ORDER BY id"
    ).fetchall()
    assert rows[:4] == [
        (ANNA, "action_failed", "conference_failed"),
        (BO, "action_ended", "ended_by_other_side"),
        (RAPPORT, "action_failed", "load_failed"),
        (LISA, "action_ended", "removed"),
    ]


if __name__ == "__main__":
    _drive(Path(sys.argv[1]), Path(sys.argv[2]))
