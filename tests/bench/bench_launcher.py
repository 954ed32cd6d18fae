"""The launcher's speed: bridge event received → that card's screen on the glass; cold start to
the home screen; memory.

The launcher runs headless (SDL offscreen, real drawing) in its own process next to a real
`klick bridge` with the simulated reader (settle and grace 0, so only the launcher is measured).
"Received" is the moment the bridge client's thread has the decoded event; "drawn" is the
buffer flip of the first frame that shows the card. Cold start is from spawning the process to
the first frame of the home screen (Python, Kivy, the window, the card file, the usage log).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

#: The faces the launcher makes ahead of time (launcher.app.PREPARED_FACES): the first cards.
PREPARED = 24
#: How long a card stays in before the bench takes it out again.
REMOVE_AFTER_S = 0.05
CARDS = int(os.environ.get("BENCH_CARDS", "200"))


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


def _write_home(home: Path) -> None:
    cards = ["version: 1", "cards:"]
    colours = ["blue", "green", "red", "purple", "orange", "yellow"]
    for i in range(CARDS):
        cards += [
            f'  - uid: "04{i:012X}"',
            f"    label: Kort {i + 1}",
            f"    colour: {colours[i % len(colours)]}",
            f"    picture: {ROOT}/config/demo/pictures/anna.png",
            "    action:",
            "      type: web",
            f"      url: https://example.se/{i}",
        ]
    (home / "cards.yaml").write_text("\n".join(cards) + "\n", encoding="utf-8")
    (home / "klick.yaml").write_text(
        f"""reader:
  driver: sim
  settle_ms: 0
  grace_ms: 0
browser:
  command: ["true"]
paths:
  socket: {home / "b.sock"}
""",
        encoding="utf-8",
    )


def _drive(home: Path, out: Path, spawned_at: float) -> None:
    os.environ.update(
        KLICK_HOME=str(home), KIVY_NO_ARGS="1", KIVY_NO_CONSOLELOG="1", KIVY_NO_FILELOG="1", KIVY_HOME=str(home / "kivy")
    )
    from klick.config import load_config
    from launcher.kivy_setup import configure_kivy

    cfg = load_config(home / "klick.yaml")
    configure_kivy(cfg, offscreen=True)
    if os.environ.get("BENCH_LOG"):
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(relativeCreated)d %(name)s %(message)s")
    from kivy.clock import Clock

    from launcher.app import LauncherApp

    latencies: list[float] = []
    timings: list[dict] = []
    result: dict = {}
    uids = [f"04{i:012X}" for i in range(CARDS)]
    state = {"i": 0, "waiting": None}

    def probe(app: LauncherApp) -> None:
        def shown(name: str, screen: object, received: float | None) -> None:
            now = time.perf_counter()
            if name == "home" and "cold_start" not in result:
                result["cold_start"] = time.monotonic() - spawned_at
                result["rss_home"] = _rss_kib()
                Clock.schedule_once(lambda _dt: start(), 0)
            elif name == "card" and state["waiting"] == "card" and received is not None:
                latencies.append(now - received)
                timings.append(dict(app.timing, card=state["i"]))
                state["waiting"] = "home"
                # A hand takes a card out some time after it went in; a remove sent in the same
                # millisecond as the insert's face was drawn can be lost between the simulated
                # reader and the bridge (seen here one time in a few hundred).
                Clock.schedule_once(lambda _dt: app.send_to_bridge({"command": "remove"}), REMOVE_AFTER_S)
            elif name == "home" and state["waiting"] == "home":
                state["i"] += 1
                Clock.schedule_once(lambda _dt: nxt(), 0)

        app.shown_listeners.append(shown)

        def start() -> None:
            # The bridge starts with the launcher; wait until it is connected.
            if not (app.session.bridge_connected and app.session.reader == "connected"):
                Clock.schedule_once(lambda _dt: start(), 0.05)
                return
            nxt()

        def nxt() -> None:
            if state["i"] >= CARDS:
                with open("/proc/self/status") as f:
                    for line in f:
                        if line.startswith(("VmRSS", "VmHWM")):
                            result[line.split(":")[0]] = int(line.split()[1])
                result["latencies"] = latencies
                result["timings"] = timings
                out.write_text(json.dumps(result))
                app.quit()
                return
            state["waiting"] = "card"
            app.send_to_bridge({"command": "insert", "uid": uids[state["i"]]})

        Clock.schedule_once(
            lambda _dt: (
                out.write_text(
                    json.dumps(
                        {
                            "error": "timeout",
                            **result,
                            "done": state["i"],
                            "screen": repr(app.session.screen),
                            "waiting": state["waiting"],
                        }
                    )
                ),
                app.quit(),
            ),
            50,
        )

    LauncherApp(cfg, probe=probe).run()


def run() -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory(prefix="klick-bench-launcher-") as tmp:
        home = Path(tmp)
        _write_home(home)
        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        env["KLICK_HOME"] = str(home)
        bridge = subprocess.Popen(
            [sys.executable, "-c", "from klick.cli import main; main()", "bridge", "--config", str(home / "klick.yaml")],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            out = home / "result.json"
            spawned = time.monotonic()
            subprocess.run(
                [sys.executable, __file__, str(home), str(out), repr(spawned)], env=env, cwd=ROOT, timeout=90, capture_output=True
            )
        finally:
            bridge.terminate()
            bridge.wait(5)
        data = json.loads(out.read_text())
    if "error" in data:
        return [("launcher bench", f"did not finish ({data.get('done', 0)} of {CARDS} cards)")]
    ms = [x * 1000 for x in data["latencies"]]
    timings = data["timings"]
    rows = [
        (f"launcher: event received → card face drawn ({len(ms)} cards)", _p50_p99(ms)),
    ]
    ahead = [m for m, t in zip(ms, timings) if t.get("card", 0) < PREPARED]
    first = [m for m, t in zip(ms, timings) if t.get("card", 0) >= PREPARED]
    if ahead and first:
        rows.append((f"launcher:   faces made ahead of time ({len(ahead)} cards)", _p50_p99(ahead)))
        rows.append((f"launcher:   faces made on first use ({len(first)} cards)", _p50_p99(first)))
    for name, a, b in BREAKDOWN:
        rows.append((f"launcher:   {name}", _p50_p99([(t[b] - t[a]) * 1000 for t in timings if a in t and b in t])))
    rows += [
        ("launcher: cold start to home screen (offscreen)", f"{data['cold_start'] * 1000:.0f} ms"),
        ("launcher: RSS on the home screen, before any card", f"{data.get('rss_home', 0) / 1024:.0f} MiB"),
        (
            f"launcher: RSS after {CARDS} cards",
            f"{data.get('VmRSS', 0) / 1024:.0f} MiB (peak {data.get('VmHWM', 0) / 1024:.0f} MiB)",
        ),
    ]
    return rows


#: Where the time goes between the bridge's event and the frame that shows the card's face.
BREAKDOWN = (
    ("bridge's thread → the screen's thread", "received", "handled"),
    ("session (what to show, what to do)", "handled", "decided"),
    ("effects (usage log queue, start planned)", "decided", "applied"),
    ("widget update (fitting the words, the picture)", "applied", "updated"),
    ("text and picture textures", "updated", "textures"),
    ("frame (drawn and finished by the GL)", "textures", "drawn"),
)


def _p50_p99(values: list[float]) -> str:
    if not values:
        return "no samples"
    ms = sorted(values)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return f"p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms"


if __name__ == "__main__":
    if len(sys.argv) == 4:
        _drive(Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]))
    else:
        for name, value in run():
            print(f"{name}: {value}")
