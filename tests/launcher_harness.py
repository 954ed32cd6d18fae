"""What the headless launcher tests share: the offscreen environment, a real sim bridge, and a
runner that steps a scenario generator on Kivy's clock.

A scenario yields either a number (wait that many seconds) or a callable (wait until it is
true). The runner records any exception or time-out in ``results["errors"]`` and always ends
the app, so a broken step shows as a failed assertion, never as a hung test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path


def offscreen_env(home: Path) -> None:
    """Kivy draws into memory; its settings and logs stay in the test's home."""
    os.environ.update(
        KLICK_HOME=str(home),
        KIVY_NO_ARGS="1",
        KIVY_NO_CONSOLELOG="1",
        KIVY_NO_FILELOG="1",
        KIVY_HOME=str(home / "kivy"),
        KLICK_LAUNCHER_OFFSCREEN="1",
    )
    os.environ.pop("DISPLAY", None)
    os.environ.pop("WAYLAND_DISPLAY", None)


def run_as_script(script: str, home: Path, *, timeout: float = 120) -> dict:
    """Run a launcher test file as its own script on ``home`` (one Kivy app per process, no
    display) and return the results it wrote, with its exit code as ``returncode``; a run that
    wrote none fails with its stderr."""
    out = home / "results.json"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["KLICK_HOME"] = str(home)
    proc = subprocess.run(
        [sys.executable, script, str(home), str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert out.exists(), f"the launcher run wrote no results (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    return {**json.loads(out.read_text()), "returncode": proc.returncode}


def start_bridge(home: Path) -> subprocess.Popen:
    """A real `klick bridge` on the home's klick.yaml, logging to bridge.log."""
    return subprocess.Popen(
        [sys.executable, "-c", "from klick.cli import main; main()", "bridge", "--config", str(home / "klick.yaml")],
        stdout=open(home / "bridge.log", "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_bridge(bridge: subprocess.Popen) -> None:
    bridge.terminate()
    try:
        bridge.wait(5)
    except subprocess.TimeoutExpired:
        bridge.kill()


def run_scenario(
    app, scenario: Iterator, results: dict, out: Path, *, timeout: float = 40, on_finish: Callable[[], None] | None = None
) -> None:
    """Step ``scenario`` every 20 ms; write ``results`` to ``out`` and quit when it ends."""
    from kivy.clock import Clock

    state = {"wait": None, "until": 0.0, "deadline": time.monotonic() + timeout}

    def tick(_dt: float) -> None:
        try:
            if time.monotonic() > state["deadline"]:
                results["errors"].append(f"timed out after steps {results['steps']}, screen {app.session.screen}")
                return finish()
            if state["wait"] is not None and not state["wait"]():
                return
            if time.monotonic() < state["until"]:
                return
            state["wait"] = None
            step = next(scenario)
            if callable(step):
                state["wait"] = step
            else:
                state["until"] = time.monotonic() + float(step)
        except StopIteration:
            finish()
        except Exception:  # report, never hang
            results["errors"].append(traceback.format_exc())
            finish()

    def finish() -> None:
        event.cancel()
        if on_finish is not None:
            on_finish()
        out.write_text(json.dumps(results, default=str), encoding="utf-8")
        app.quit()

    event = Clock.schedule_interval(tick, 0.02)


def said(widget) -> str:
    """What a text on the screen says: its words, whatever lines the fitting broke them into."""
    return getattr(widget, "words", None) or widget.text
