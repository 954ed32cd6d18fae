"""The call card, end to end with real Chromium: card in → Chromium's first paint of the call
page; card out → the last Chromium process gone.

The launcher runs headless (SDL offscreen) next to a real `klick bridge` with the simulated
reader (settle and grace 0); Chromium draws on a headless X display (Xvfb) and opens a local
HTTPS call page (tests/browser_rig.py), in the call profile, over the launcher's DevTools pipe,
after the camera grant. "Card in" is the moment the launcher's bridge thread has the event;
"first paint" is Chromium's firstContentfulPaint lifecycle event as the launcher's watcher
receives it; "on the screen" is the first grab of the X display (every 20 ms) that shows the
page filling the screen (on Xvfb Chromium composites in software, so this comes later than the
paint). "Card out" is the moment the remove command is sent; "gone" is the first /proc scan
(every 5 ms) that finds no Chromium process of the call profile. The profile is warm after the
first run, as on a tablet.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

RUNS = 20
UID = "04CA11BE0C000001"


def _drive(home: Path, out: Path) -> None:
    from tests.browser_rig import Display, browser_command, chromium_processes, make_certificate, page_share, serve
    from tests.launcher_harness import offscreen_env, start_bridge, stop_bridge

    cert, key, spki = make_certificate(home)
    call = serve(cert, key, "call")
    (home / "cards.yaml").write_text(
        f'version: 1\ncards:\n  - uid: "{UID}"\n    label: Anna\n    action:\n      type: video_call\n'
        f"      provider: jitsi\n      server: {call.origin}\n      room: bench-joined\n",
        encoding="utf-8",
    )
    (home / "klick.yaml").write_text(
        f"reader:\n  driver: sim\n  settle_ms: 0\n  grace_ms: 0\n"
        f"browser:\n  command: {json.dumps(browser_command(spki))}\n"
        f"paths:\n  socket: {home / 'b.sock'}\ncalls:\n  waiting_poll_s: 0\n  allowed_servers: [{call.origin}]\n",
        encoding="utf-8",
    )
    display = Display()
    offscreen_env(home)
    os.environ.update(DISPLAY=display.name, SDL_VIDEODRIVER="offscreen")
    from klick.config import load_config
    from launcher.kivy_setup import configure_kivy

    cfg = load_config(home / "klick.yaml")
    bridge = start_bridge(home)
    import numpy  # noqa: F401  (page_share counts the page's pixels with it; the launcher keeps it out once configured)

    configure_kivy(cfg, offscreen=True)
    from kivy.clock import Clock

    from launcher import session as S
    from launcher.app import LauncherApp

    profile = cfg.browser.call_profile
    result: dict = {"paint": [], "glass": [], "gone": [], "errors": []}

    def probe(app: LauncherApp) -> None:
        state: dict = {"i": 0, "received": None}

        def shown(name: str, screen: object, received: float | None) -> None:
            if name == "card" and received is not None:
                state["received"] = received

        def painted(at: float) -> None:
            received = state["received"]
            if received is None:
                return
            result["paint"].append(at - received)
            state["received"] = None

            def on_glass() -> None:
                deadline = time.perf_counter() + 20
                while page_share(display.grab()) < 0.9 and time.perf_counter() < deadline:
                    time.sleep(0.02)
                result["glass"].append(time.perf_counter() - received)
                Clock.schedule_once(lambda _dt: take_out(), 0.3)

            threading.Thread(target=on_glass, daemon=True).start()

        def take_out() -> None:
            taken = time.perf_counter()
            app.send_to_bridge({"command": "remove"})

            def watch() -> None:
                while chromium_processes(profile):
                    time.sleep(0.005)
                result["gone"].append(time.perf_counter() - taken)
                Clock.schedule_once(lambda _dt: nxt(), 0.3)

            threading.Thread(target=watch, daemon=True).start()

        def nxt() -> None:
            if state["i"] >= RUNS:
                out.write_text(json.dumps(result))
                app.quit()
                return
            if not isinstance(app.session.screen, S.Home):
                Clock.schedule_once(lambda _dt: nxt(), 0.05)
                return
            state["i"] += 1
            app.send_to_bridge({"command": "insert", "uid": UID})

        def start() -> None:
            if not (app.session.bridge_connected and app.session.reader == "connected"):
                Clock.schedule_once(lambda _dt: start(), 0.05)
                return
            nxt()

        app.shown_listeners.append(shown)
        app.page_listeners.append(painted)
        Clock.schedule_once(lambda _dt: start(), 0)
        Clock.schedule_once(lambda _dt: (out.write_text(json.dumps({**result, "errors": ["timeout"]})), app.quit()), 150)

    try:
        LauncherApp(cfg, probe=probe).run()
    finally:
        stop_bridge(bridge)
        display.close()
        call.close()


def _p(ms: list[float], q: float) -> float:
    ms = sorted(ms)
    return ms[min(len(ms) - 1, round(q * (len(ms) - 1)))]


def run() -> list[tuple[str, str]]:
    from tests.browser_rig import CHROMIUM, XVFB, chromium_version

    if not CHROMIUM or not XVFB:
        return [("browser bench", "skipped: chromium or Xvfb is not installed")]
    with tempfile.TemporaryDirectory(prefix="klick-bench-browser-") as tmp:
        home, out = Path(tmp), Path(tmp) / "result.json"
        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        subprocess.run([sys.executable, __file__, str(home), str(out)], env=env, cwd=ROOT, timeout=200, capture_output=True)
        data = json.loads(out.read_text()) if out.exists() else {"errors": ["no result"], "paint": [], "gone": []}
    if data["errors"] or not data["paint"]:
        return [("browser bench", f"did not finish ({len(data['paint'])} of {RUNS} runs: {data['errors']})")]
    paint = [x * 1000 for x in data["paint"]]
    gone = [x * 1000 for x in data["gone"]]
    glass = [x * 1000 for x in data["glass"]]
    return [
        ("browser", chromium_version()),
        (f"card in → Chromium's first paint of the call page, p50 ({len(paint)} runs)", f"{statistics.median(paint):.0f} ms"),
        (f"card in → Chromium's first paint of the call page, p99 ({len(paint)} runs)", f"{_p(paint, 0.99):.0f} ms"),
        (f"card in → the call page on the screen (Xvfb), p50 ({len(glass)} runs)", f"{statistics.median(glass):.0f} ms"),
        (f"card in → the call page on the screen (Xvfb), p99 ({len(glass)} runs)", f"{_p(glass, 0.99):.0f} ms"),
        (f"card out → last Chromium process gone, p50 ({len(gone)} runs)", f"{statistics.median(gone):.0f} ms"),
        (f"card out → last Chromium process gone, p99 ({len(gone)} runs)", f"{_p(gone, 0.99):.0f} ms"),
    ]


if __name__ == "__main__":
    if len(sys.argv) == 3:
        _drive(Path(sys.argv[1]), Path(sys.argv[2]))
    else:
        for name, value in run():
            print(f"{name}: {value}")
