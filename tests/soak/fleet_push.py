"""Pushed card sets under SIGKILL: `klick fleet` killed in the middle of applying, again and again.

A real Mosquitto, a real `klick fleet` on a tablet home, two card sets (A and B, each with real
pictures) pushed in turn, each signed with a newer version. After each push, as soon as the daemon
says it is applying, it is SIGKILLed at a random moment within the time an apply takes, then
started again. Each time, while it is dead and again after it has taken the push (the broker
delivers the retained push again), the card set on disk must be A or B exactly (the card file,
every picture it names, byte for byte): never a mix, never a card file naming a missing picture.

Beside it runs the real launcher (offscreen), reading the card file as it always does; it must
never stop, never see a card set it cannot read, and only ever hold A or B.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent))

from fleet_broker import Broker, start_fleet, wait_for  # noqa: E402
from fleet_push_kit import applied_state, in_force, make_bundle, make_tablet, which_set  # noqa: E402

FULL = dict(kills=100)
QUICK = dict(kills=4)
NOTE = ""


class Office:
    """The office's publisher, kept open across the rounds (as `klick fleet push` would publish)."""

    def __init__(self, broker: Broker) -> None:
        from fleet.mqtt import make_client

        self.acks: queue.Queue = queue.Queue()
        self.client = make_client(broker.access("office"), f"soak-office-{os.urandom(3).hex()}")
        self.client.on_publish = lambda c, u, mid, rc, p: self.acks.put((mid, rc))
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=True)
        while True:
            mid, rc = self.acks.get(timeout=60)
            if mid == info.mid:
                assert not rc.is_failure, rc
                return

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _applying(log: Path, version: int) -> bool:
    return f"applying the pushed cards version {version} " in log.read_text(errors="replace")


def start_launcher(home: Path, out: Path, stop_file: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["KLICK_HOME"] = str(home)
    return subprocess.Popen(
        [sys.executable, __file__, "watch", str(home), str(out), str(stop_file)],
        env=env,
        cwd=HERE.parent.parent,
        stdout=open(home / "launcher.log", "wb"),
        stderr=subprocess.STDOUT,
    )


def soak(folder: Path, kills: int, seed: int = 7) -> dict:
    from fleet import envelope
    from fleet.signing import new_key_pair, public_text

    rnd = random.Random(seed)
    broker = Broker(folder / "broker").start()
    key = new_key_pair()
    home = folder / "hbg-01"
    make_tablet(broker, home, "hbg-01", public_text(key))
    sets = {
        "A": make_bundle(folder / "a.klick", "Anna", 6, picture_size=200),
        "B": make_bundle(folder / "b.klick", "Bertil", 7, picture_size=200),
    }
    bodies = {name: path.read_bytes() for name, path in sets.items()}
    office = Office(broker)
    topic = "klick/hbg-01/set/cards"
    fleet = start_fleet(home)
    stop_file, out = folder / "stop", folder / "launcher.json"
    launcher = None
    counts = {"kills": 0, "mid_apply": 0, "old_on_disk": 0, "applied": 0, "refused": 0, "torn": 0, "torn_what": []}
    try:
        version = 1
        office.publish(
            topic, envelope.seal(key, "cards", "hbg-01", version, bodies["A"], name="A.klick", at="2026-03-05T12:00:00.000Z")
        )
        wait_for(lambda: in_force(home) == version, 60, what="the first card set")
        launcher = start_launcher(home, out, stop_file)
        # How long an apply takes here: the next push, timed from "applying" to "in force".
        version += 1
        office.publish(
            topic, envelope.seal(key, "cards", "hbg-01", version, bodies["B"], name="B.klick", at="2026-03-05T12:00:00.000Z")
        )
        wait_for(lambda v=version: _applying(home / "fleet.log", v), 60, 0.002, what="the apply to start")
        started = time.monotonic()
        wait_for(lambda v=version: in_force(home) == v, 60, 0.002, what="the apply to end")
        apply_s = time.monotonic() - started
        current = "B"
        for _ in range(kills):
            version += 1
            new = "A" if current == "B" else "B"
            payload = envelope.seal(
                key, "cards", "hbg-01", version, bodies[new], name=f"{new}.klick", at="2026-03-05T12:00:00.000Z"
            )
            office.publish(topic, payload)
            wait_for(lambda v=version: _applying(home / "fleet.log", v), 60, 0.001, what="the apply to start")
            time.sleep(rnd.uniform(0, apply_s))
            fleet.send_signal(signal.SIGKILL)
            fleet.wait()
            counts["kills"] += 1
            if in_force(home) != version:
                counts["mid_apply"] += 1
            got = which_set(home, {current: sets[current], new: sets[new]})
            counts["old_on_disk"] += got == current
            if got.startswith("torn") or got == "none":
                counts["torn"] += 1
                counts["torn_what"].append(got)
            fleet = start_fleet(home)
            try:
                wait_for(lambda v=version: in_force(home) == v, 60, 0.01, what="the push to be taken after the restart")
            except AssertionError:
                pass
            state = applied_state(home)
            if in_force(home) == version:
                counts["applied"] += 1
            if (state.get("refused") or {}).get("cards", {}).get("version") == version:
                counts["refused"] += 1
            got = which_set(home, {new: sets[new]})
            if got != new:
                counts["torn"] += 1
                counts["torn_what"].append(got)
            current = new
        counts["apply_s"] = apply_s
        counts["launcher_alive"] = launcher.poll() is None
    finally:
        stop_file.write_text("stop")
        if launcher is not None:
            try:
                launcher.wait(30)
            except subprocess.TimeoutExpired:
                launcher.kill()
        fleet.terminate()
        fleet.wait(10)
        office.close()
        broker.stop(kill=True)
    seen = json.loads(out.read_text()) if out.exists() else {"sets": [], "errors": ["no results"], "states": []}
    expected = {tuple(f"{label} {i + 1}" for i in range(n)) for label, n in (("Anna", 6), ("Bertil", 7))}
    counts["launcher_sets_ok"] = bool(seen["sets"]) and all(tuple(s) in expected for s in seen["sets"])
    counts["launcher_states"] = seen["states"]
    counts["launcher_errors"] = seen["errors"]
    counts["launcher_exit"] = launcher.returncode if launcher is not None else None
    return counts


def run(quick: bool = False) -> list[tuple[str, str, str, bool]]:
    n = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="klick-soak-push-") as tmp:
        c = soak(Path(tmp), n["kills"])
    launcher_ok = c["launcher_alive"] and c["launcher_exit"] == 0 and not c["launcher_errors"] and c["launcher_states"] == ["ok"]
    return [
        (
            f"pushed card sets: `klick fleet` SIGKILLed while applying ({c['apply_s'] * 1000:.0f} ms an apply)",
            f"{c['kills']} kills: {c['old_on_disk']} left the old set, {c['kills'] - c['old_on_disk'] - c['torn']} the new "
            f"({c['mid_apply'] - c['old_on_disk']} of them not yet recorded)",
            f"{n['kills']} kills",
            c["kills"] == n["kills"],
        ),
        (
            "pushed card sets: applied / refused / torn",
            f"{c['applied']} / {c['refused']} / {c['torn']}",
            f"{n['kills']} / 0 / 0",
            c["applied"] == n["kills"] and c["refused"] == 0 and c["torn"] == 0,
        ),
        (
            "pushed card sets: the launcher ran throughout and saw only whole sets",
            "yes" if launcher_ok and c["launcher_sets_ok"] else f"no ({c['launcher_errors'][:1]}, {c['launcher_states']})",
            "yes",
            launcher_ok and c["launcher_sets_ok"],
        ),
    ]


# --- the launcher beside it (runs as this file's subprocess) ----------------------------------------


def _watch(home: Path, out: Path, stop_file: Path) -> None:
    from tests.launcher_harness import offscreen_env, run_scenario

    offscreen_env(home)
    from klick.config import load_config
    from launcher.kivy_setup import configure_kivy

    cfg = load_config(home / "klick.yaml")
    configure_kivy(cfg, offscreen=True)
    from launcher.app import LauncherApp

    results: dict = {"steps": [], "errors": [], "sets": [], "states": []}

    def scenario(app: LauncherApp):
        while not stop_file.exists():
            labels = [c.label for c in app.registry.registry.cards]
            if labels and labels not in results["sets"]:
                results["sets"].append(labels)
            if app.session.card_file not in results["states"]:
                results["states"].append(app.session.card_file)
            yield 0.05

    def probe(app: LauncherApp) -> None:
        run_scenario(app, scenario(app), results, out, timeout=3600)

    LauncherApp(cfg, probe=probe).run()


if __name__ == "__main__":
    if sys.argv[1:2] == ["watch"]:
        _watch(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        for row in run("--quick" in sys.argv):
            print(row)
        os._exit(0)
