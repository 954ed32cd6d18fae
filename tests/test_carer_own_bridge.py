"""`klick carer` with no bridge running: the window starts `klick bridge` for its session (the
settings' reader, here the simulated one), programs a card through it like any client, and ends
it when the window closes, also mid-way, also when the window is killed; a bridge that cannot
start is one plain sentence in the window, which goes on working.

One Kivy app per process: this file is also the driver. pytest starts it as a subprocess
(``python tests/test_carer_own_bridge.py HOME OUT SCENARIO``); the driver runs the scenario in a
real Kivy window (SDL offscreen), records what it saw in a JSON file, and the tests check the
record, the card file, and which processes are left.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KLICK = [sys.executable, "-c", "from klick.cli import main; main()"]
NEW = "04C0FFEE0A01"

# =============================================================================================
# The driver (runs in its own process, with the window)
# =============================================================================================


def drive(home: Path, out: Path, scenario_name: str) -> None:
    os.environ.pop("DISPLAY", None)
    os.environ.pop("WAYLAND_DISPLAY", None)
    os.environ["SDL_VIDEODRIVER"] = "offscreen"
    os.environ["KIVY_NO_ARGS"] = "1"
    os.environ["KIVY_NO_CONSOLELOG"] = "1"
    os.environ["KIVY_NO_FILELOG"] = "1"
    os.environ["KIVY_HOME"] = str(home / "kivy-home")
    os.environ["KLICK_HOME"] = str(home)
    sys.path.insert(0, str(REPO))

    from cards.carer.session import EditorSession
    from klick.config import load_config

    cfg = load_config()
    session = EditorSession(cfg.paths.registry)
    from cards.carer.app import CarerApp  # Kivy loads here, with the carer window's settings

    # isort: split
    from kivy.clock import Clock
    from kivy.core.window import Window
    from kivy.tests.common import UnitTestTouch

    app = CarerApp(cfg, session)
    record: dict = {"steps": [], "errors": [], "pids": []}

    def note(name: str, **extra) -> None:
        pid = app.source.bridge_pid if app.source is not None else None
        if pid is not None and pid not in record["pids"]:
            record["pids"].append(pid)
        record["steps"].append({"step": name, "page": app.page, "status": app.status.text, "message": app.message.text, **extra})
        # Kept up to date, whole (written beside it, then renamed): the "killed" scenario never finishes.
        out.with_suffix(".tmp").write_text(json.dumps(record, indent=1))
        out.with_suffix(".tmp").replace(out)

    def tap(widget) -> None:
        x, y = widget.to_window(*widget.center)
        touch = UnitTestTouch(x, y)
        touch.touch_down()
        touch.touch_up()

    def key(code: int, char: str | None = None, modifiers=()) -> None:
        Window.dispatch("on_key_down", code, 0, char, list(modifiers))
        Window.dispatch("on_key_up", code, 0)

    def until(predicate, what: str, timeout: float = 20.0):
        return ("until", predicate, what, time.monotonic() + timeout)

    def connected() -> bool:
        return app.source.via == "bridge" and app.source.bridge_pid is not None and app.status.text == "Kortläsaren är redo"

    def fill(name: str, text: str):
        box = app.w[f"input_{name}"]
        app.w["scroll"].scroll_to(box, animate=False)
        yield 0.1
        tap(box)
        yield 0.05
        key(97, "a", ["ctrl"])
        key(8)
        for ch in text:
            Window.dispatch("on_textinput", ch)
        yield 0.05
        assert box.text == text, (name, box.text)

    def program():
        """Program a new web card through the bridge the window started, then close the window."""
        yield until(connected, "the window's own bridge, its reader ready")
        note("connected")
        tap(app.w["new_card"])
        yield until(lambda: app.page == "wait", "wait page")
        done = subprocess.run([*KLICK, "simulate", "insert", NEW], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        yield until(lambda: app.page == "kind", "the new card's UID from the window's bridge")
        note("kind", uid=app.form.uid)
        tap(app.w["kind_web"])
        yield until(lambda: app.page == "edit", "edit page")
        yield from fill("label", "Vädret")
        yield from fill("url", "https://www.smhi.se/")
        key(115, "s", ["ctrl"])
        yield until(lambda: app.page == "list", "back to the list after saving")
        note("saved", cards=sorted(k for k in app.w if k.startswith("card_")))

    def close_starting():
        """The carer closes the window at once, while its bridge is still starting."""
        note("closing at once")
        yield 0.0

    def close_waiting():
        """The carer closes the window half-way: the card asked for, none put on the reader yet."""
        yield until(connected, "the window's own bridge")
        tap(app.w["new_card"])
        yield until(lambda: app.page == "wait", "wait page")
        note("closing while waiting for a card")

    def killed():
        """The window is killed (pytest sends SIGKILL once it sees this step)."""
        yield until(connected, "the window's own bridge")
        tap(app.w["new_card"])
        yield until(lambda: app.page == "wait", "wait page")
        note("ready to be killed")
        yield 600.0

    def fails():
        """The bridge cannot start: plain words in the window, which still works."""
        failed = ("Klick-bryggan startade inte", "The Klick bridge did not start")
        yield until(lambda: any(w in app.status.text for w in failed), "the failure in the window")
        note("failed")
        tap(app.w["new_card"])
        yield until(lambda: app.page == "wait", "wait page, even without a reader")
        tap(app.w["cancel"])
        yield until(lambda: app.page == "list", "back to the list")
        note("still working")

    def no_reader():
        """The bridge starts, but the reader is not plugged in: the driver's words in the window's language."""
        # After "looking for it at …" comes "none found at …" (each in the window's language).
        yield until(lambda: any(w in app.status.text for w in ("hittades", "found at")), "the reader's state in the window")
        note("searching")

    scenarios = {"program": program, "close-starting": close_starting, "close-waiting": close_waiting}
    scenarios.update({"killed": killed, "fails": fails, "no-reader": no_reader})
    steps = scenarios[scenario_name]()
    state: dict = {"waiting": None, "resume_at": 0.0}

    def step(_dt):
        try:
            while True:
                if state["waiting"] is not None:
                    _, predicate, what, deadline = state["waiting"]
                    if not predicate():
                        if time.monotonic() > deadline:
                            raise AssertionError(f"timed out waiting for: {what} (page {app.page}, status {app.status.text!r})")
                        return
                    state["waiting"] = None
                if time.monotonic() < state["resume_at"]:
                    return
                item = next(steps)
                if isinstance(item, tuple):
                    state["waiting"] = item
                else:
                    state["resume_at"] = time.monotonic() + item
                    return
        except StopIteration:
            finish()
        except Exception as exc:
            import traceback

            record["errors"].append("".join(traceback.format_exception(exc)))
            finish()

    def finish():
        event.cancel()
        out.write_text(json.dumps(record, indent=1))
        app.stop()  # what closing the window does: Kivy stops the app, whose on_stop ends the reader source

    event = Clock.schedule_interval(step, 0.03)
    try:
        app.run()
    except Exception:
        import traceback

        record["errors"].append(traceback.format_exc())
    record["closed"] = True
    out.write_text(json.dumps(record, indent=1))
    session.close()


if __name__ == "__main__":
    drive(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
    sys.exit(0)


# =============================================================================================
# The tests (pytest side)
# =============================================================================================

import pytest  # noqa: E402
import yaml  # noqa: E402

from tests.bridge_commands import bridges_of  # noqa: E402

pytestmark = pytest.mark.ui


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    short = Path(f"/tmp/klick-own-{os.getpid()}-{time.monotonic_ns() % 10**9}")
    short.mkdir()
    (home / "klick.yaml").write_text(
        f"reader:\n  driver: sim\n  settle_ms: 60\n  grace_ms: 200\npaths:\n  socket: {short / 'b.sock'}\n"
    )
    (home / "cards.yaml").write_text("version: 1\ncards: []\n")
    yield home
    for pid in bridges_of(home / "klick.yaml"):
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(short, ignore_errors=True)


def _env(home: Path) -> dict:
    env = dict(os.environ)
    env["KLICK_HOME"] = str(home)
    env.pop("DISPLAY", None)
    env["KIVY_NO_ARGS"] = "1"
    env["KIVY_NO_CONSOLELOG"] = "1"
    env["KIVY_HOME"] = str(home / "kivy-home")
    return env


def _socket(home: Path) -> Path:
    return Path(yaml.safe_load((home / "klick.yaml").read_text())["paths"]["socket"])


def _run(home: Path, scenario: str) -> dict:
    out = home / f"record-{scenario}.json"
    done = subprocess.run(
        [sys.executable, __file__, str(home), str(out), scenario], env=_env(home), capture_output=True, text=True, timeout=120
    )
    assert out.exists(), f"the driver wrote no record:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    record = json.loads(out.read_text())
    assert not record["errors"], record["errors"][0]
    assert record.get("closed"), "the window did not close"
    return record


def _no_bridge_left(home: Path, record: dict) -> None:
    from klick.bridge_client import BridgeUnavailable, request

    assert not bridges_of(home / "klick.yaml"), "a bridge the window started is still running"
    with pytest.raises(BridgeUnavailable):
        request(_socket(home), {"command": "status"}, timeout=1)
    assert not _socket(home).exists(), "the bridge did not stop cleanly (its socket is left)"


def test_with_no_bridge_running_the_carer_window_starts_one_and_programs_a_card_through_it(home):
    from klick.bridge_client import BridgeUnavailable, request

    with pytest.raises(BridgeUnavailable):
        request(_socket(home), {"command": "status"}, timeout=1)  # no bridge before the window opens
    record = _run(home, "program")
    steps = {s["step"]: s for s in record["steps"]}
    assert steps["connected"]["status"] == "Kortläsaren är redo"
    assert len(record["pids"]) == 1  # one bridge, started by the window
    assert steps["kind"]["uid"] == NEW
    assert steps["saved"]["cards"] == [f"card_{NEW}"]
    cards = yaml.safe_load((home / "cards.yaml").read_text())["cards"]
    assert [(c["uid"], c["label"], c["action"]) for c in cards] == [
        (NEW, "Vädret", {"type": "web", "url": "https://www.smhi.se/"})
    ]
    _no_bridge_left(home, record)


@pytest.mark.parametrize("scenario", ["close-starting", "close-waiting"])
def test_closing_the_window_mid_way_ends_its_bridge(home, scenario):
    record = _run(home, scenario)
    if scenario == "close-waiting":
        assert record["steps"][-1]["page"] == "wait" and len(record["pids"]) == 1
    _no_bridge_left(home, record)
    assert yaml.safe_load((home / "cards.yaml").read_text())["cards"] == []


def test_killing_the_window_ends_its_bridge(home):
    out = home / "record-killed.json"
    window = subprocess.Popen(
        [sys.executable, __file__, str(home), str(out), "killed"],
        env=_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            steps = json.loads(out.read_text())["steps"] if out.exists() else []
            if steps and steps[-1]["step"] == "ready to be killed":
                break
            assert window.poll() is None, "the window ended by itself"
            assert time.monotonic() < deadline, "the window never got its bridge"
            time.sleep(0.1)
        pids = json.loads(out.read_text())["pids"]
        assert len(pids) == 1 and bridges_of(home / "klick.yaml") == pids
        window.send_signal(signal.SIGKILL)
        window.wait(10)
        deadline = time.monotonic() + 10
        while bridges_of(home / "klick.yaml") and time.monotonic() < deadline:
            time.sleep(0.05)
        _no_bridge_left(home, {})
    finally:
        if window.poll() is None:
            window.kill()
            window.wait()


@pytest.mark.parametrize("locale", ["sv", "en"])
def test_a_bridge_that_cannot_start_is_plain_words_in_the_window_which_goes_on(home, locale):
    blocker = _socket(home).parent / "a-file"
    blocker.write_text("not a folder")
    text = (home / "klick.yaml").read_text().replace(str(_socket(home)), str(blocker / "b.sock"))
    (home / "klick.yaml").write_text(f"locale: {locale}\n{text}")
    record = _run(home, "fails")
    steps = {s["step"]: s for s in record["steps"]}
    status = steps["failed"]["status"]
    # One language, the window's: the bridge's own English sentence ("Something went wrong on the
    # disk (…): Not a directory.") is its log's, not the carer's.
    assert (
        status
        == {
            "sv": "Kortläsaren hittas inte — Klick-bryggan startade inte, så läsaren kan inte användas. Den kan inte öppna "
            f"läsarens anslutning i {blocker / 'b.sock'}. Be den som installerade Klick att ändra paths.socket i inställningarna.",
            "en": "The card reader cannot be found — The Klick bridge did not start, so the reader cannot be used. It cannot "
            f"open the reader's connection at {blocker / 'b.sock'}. Ask whoever installed Klick to change paths.socket in the settings.",
        }[locale]
    )
    for word in ("Traceback", "Error", "Exception", ".py"):
        assert word not in status and word not in steps["failed"]["message"]
    assert steps["still working"]["page"] == "list"
    assert not record["pids"] and not bridges_of(home / "klick.yaml")


@pytest.mark.parametrize("locale", ["sv", "en"])
def test_a_reader_that_is_not_plugged_in_is_said_in_the_windows_language(home, locale):
    text = (home / "klick.yaml").read_text().replace("driver: sim", "driver: serial\n  device: /dev/klick-no-such-reader")
    (home / "klick.yaml").write_text(f"locale: {locale}\n{text}")
    record = _run(home, "no-reader")
    status = {s["step"]: s for s in record["steps"]}["searching"]["status"]
    assert (
        status
        == {
            "sv": "Letar efter kortläsaren … — Ingen kortläsare hittades på /dev/klick-no-such-reader. Kontrollera att den sitter i.",
            "en": "Looking for the card reader … — No card reader found at /dev/klick-no-such-reader. Check that it is plugged in.",
        }[locale]
    )
    assert len(record["pids"]) == 1  # its own bridge runs, looking for the reader
    _no_bridge_left(home, record)
