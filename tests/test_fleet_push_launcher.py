"""A card set pushed while the resident's card runs: the real launcher (offscreen, a real sim bridge,
a stand-in browser), a real broker, a real `klick fleet` daemon and the real `klick fleet push`.

The action in progress goes on undisturbed; the new card set is in force for the next card.
Like tests/test_launcher_card_file_ui.py, this file starts itself as a script (one Kivy app per
process); the broker and the daemon run beside it, started by the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # when run as the launcher's script
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.launcher_harness import offscreen_env, run_scenario, start_bridge, stop_bridge  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
UID = "04000000000000"  # card 1 of every set make_bundle makes

pytestmark = pytest.mark.ui


# --- the driver (runs in the subprocess) -------------------------------------------------------


def _drive(home: Path, out: Path) -> None:
    offscreen_env(home)
    plan = json.loads((home / "plan.json").read_text())
    from klick.config import load_config
    from launcher.kivy_setup import configure_kivy

    cfg = load_config(home / "klick.yaml")
    bridge = start_bridge(home)
    configure_kivy(cfg, offscreen=True)
    from launcher import session as S
    from launcher.app import LauncherApp

    results: dict = {"steps": [], "errors": []}

    def browser_lines() -> list[str]:
        """One line per page a browser was asked to open."""
        log = home / "launcher-actions.log"
        lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
        return [line for line in lines if "a tablet would open" in line]

    def scenario(app: LauncherApp):
        session = app.session

        def on(kind: type) -> bool:
            return isinstance(session.screen, kind)

        yield lambda: session.bridge_connected and session.reader == "connected"
        app.send_to_bridge({"command": "insert", "uid": UID})
        yield lambda: on(S.ShowingCard) and session.screen.phase == "running"
        yield lambda: len(browser_lines()) == 1  # the stand-in browser is up
        results["running_label"] = session.screen.card.label
        results["steps"].append("running")

        # The office pushes set B while the card runs.
        push = subprocess.Popen(plan["push"], env=plan["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        yield lambda: push.poll() is not None
        results["push_rc"], results["push_out"] = push.returncode, push.stdout.read()
        yield lambda: app.registry.get(UID) is not None and app.registry.get(UID).label == "Bertil 1"
        results["steps"].append("new set read")
        yield 1.0  # a second with the new set in force and the old action still on
        results["after_push_screen"] = type(session.screen).__name__
        results["after_push_phase"] = getattr(session.screen, "phase", None)
        results["after_push_label"] = session.screen.card.label if on(S.ShowingCard) else None
        results["after_push_browser"] = browser_lines()
        results["card_file"] = session.card_file

        app.send_to_bridge({"command": "remove"})
        yield lambda: on(S.Home)
        app.send_to_bridge({"command": "insert", "uid": UID})
        yield lambda: on(S.ShowingCard) and session.screen.phase == "running"
        yield lambda: len(browser_lines()) == 2
        results["next_label"] = session.screen.card.label
        results["next_browser"] = browser_lines()
        app.send_to_bridge({"command": "remove"})
        yield lambda: on(S.Home)
        results["steps"].append("next card")

    def probe(app: LauncherApp) -> None:
        run_scenario(app, scenario(app), results, out, timeout=90)

    try:
        LauncherApp(cfg, probe=probe).run()
    finally:
        stop_bridge(bridge)


# --- the test (pytest side) ----------------------------------------------------------------------


def test_a_card_set_pushed_while_a_card_runs_leaves_the_action_alone_and_serves_the_next_card(tmp_path):
    from fleet_broker import Broker, device_home, have_mosquitto, klick_env, start_fleet, wait_for
    from fleet_push_kit import ALLOWED, in_force, keygen, make_bundle, make_office, push

    if not have_mosquitto():
        pytest.skip("mosquitto is not installed (make test installs it)")
    broker = Broker(tmp_path / "broker").start()
    home = tmp_path / "hbg-01"
    fleet = None
    try:
        office = make_office(broker, tmp_path / "office", {})
        run, public = keygen(office)
        assert run.returncode == 0, run.stderr
        # The demo's stand-in browser: it speaks the launcher's DevTools pipe and notes every
        # address it is asked to open in launcher-actions.log, then waits like a real one.
        browser = [sys.executable, "-m", "launcher.demo_browser"]
        device_home(
            broker,
            home,
            "hbg-01",
            extra=(
                f'  signing_key: "{public}"\n'
                f"calls:\n  allowed_servers: [{ALLOWED}]\n"
                "reader:\n  driver: sim\n  grace_ms: 0\n"
                f"browser:\n  command: {json.dumps(browser)}\n"
                f"paths:\n  socket: {home / 'b.sock'}\n  questionnaire: {home / 'no-questions.yaml'}\n"
            ),
        )
        fleet = start_fleet(home)
        wait_for(lambda: "connected" in (home / "fleet.log").read_text(), 30, what="the daemon to connect")
        first, second = make_bundle(tmp_path / "anna.klick", "Anna", 2), make_bundle(tmp_path / "bertil.klick", "Bertil", 2)
        result = push(office, "cards", first, "--device", "hbg-01", "--wait", "--timeout", "30")
        assert result.returncode == 0, result.stdout + result.stderr
        from fleet_broker import klick_bin

        plan = {
            "push": [klick_bin(), "fleet", "push", "cards", str(second), "--config", str(office), "--device", "hbg-01", "--wait"],
            "env": klick_env(office.parent),
        }
        (home / "plan.json").write_text(json.dumps(plan))
        out = home / "results.json"
        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        env["KLICK_HOME"] = str(home)
        proc = subprocess.run(
            [sys.executable, __file__, str(home), str(out)], capture_output=True, text=True, timeout=180, env=env, cwd=REPO
        )
        assert out.exists(), f"the launcher run wrote no results (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
        results = json.loads(out.read_text())
        assert in_force(home) is not None
    finally:
        if fleet is not None:
            fleet.terminate()
            fleet.wait(10)
        broker.stop(kill=True)
    assert results["errors"] == [] and proc.returncode == 0, results["errors"]
    assert results["steps"] == ["running", "new set read", "next card"]
    assert results["push_rc"] == 0 and "hbg-01  applied   card set" in results["push_out"]
    # The action in progress: the same card, still running, the browser opened once and left alone.
    assert results["running_label"] == "Anna 1"
    assert (results["after_push_screen"], results["after_push_phase"], results["after_push_label"]) == (
        "ShowingCard",
        "running",
        "Anna 1",
    )
    assert len(results["after_push_browser"]) == 1 and "/anna/0" in results["after_push_browser"][0]
    assert results["card_file"] == "ok"
    # The next card: the new set.
    assert results["next_label"] == "Bertil 1" and "/bertil/0" in results["next_browser"][1]


if __name__ == "__main__":
    _drive(Path(sys.argv[1]), Path(sys.argv[2]))
