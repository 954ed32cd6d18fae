"""The reader pulled out and pushed back again and again, with the real serial driver.

Each replug is a new firmware simulator on a new pty, re-pointed behind the same symlink (as
udev's /dev/klick-reader is), with a card already in the slot; each unplug closes the pty so
the driver sees the device vanish. The serial driver (pyserial, the wire protocol, its backoff)
must find the reader again by itself and report the card. The reader stays out for a random
0-1 s, as a hand would leave it; "time to reconnect" runs from the replug to the driver's
"connected". The goal is under 2 s, the driver's longest backoff being 2 s.
"""

from __future__ import annotations

import random
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

FULL, QUICK = 100, 4


class Sink:
    """What the driver reports, with the time of each status change."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.states: list[tuple[str, float]] = []
        self.details: list[str] = []
        self.cards: list[str] = []

    def seen(self, uid: str, at: float) -> None:
        with self.cond:
            self.cards.append(uid)
            self.cond.notify_all()

    def gone(self, at: float) -> None:
        pass

    def tapped(self, uid: str, at: float) -> None:
        pass

    def status(self, state: str, detail: str, mode: str = "slot") -> None:
        with self.cond:
            self.states.append((state, time.monotonic()))
            self.details.append(f"{state}: {detail}")
            self.cond.notify_all()

    def count(self, state: str) -> int:
        return sum(1 for s, _ in self.states if s == state)

    def wait(self, predicate, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)


def soak(cycles: int, seed: int = 11) -> dict[str, float]:
    from firmware_bridge.serial_driver import SerialDriver
    from firmware_bridge.simulator import Simulator
    from klick.config import load_config

    rng = random.Random(seed)
    folder = Path(tempfile.mkdtemp(prefix="klick-soak-replug-"))
    link = folder / "klick-reader"
    sink = Sink()
    reader = replace(load_config().reader, driver="serial", device=str(link))
    driver = SerialDriver(reader, sink, device=str(link))
    stop = threading.Event()
    thread = threading.Thread(target=driver.run, args=(stop,), daemon=True)
    thread.start()
    times: list[float] = []
    notes: list[str] = []
    failed = 0
    cards_seen = 0
    try:
        for n in range(cycles):
            uid = f"04{n:012X}"
            connected_before = sink.count("connected")
            plugged = time.monotonic()
            sim = Simulator(link=link, card=uid).start()
            ok = sink.wait(lambda before=connected_before: sink.count("connected") > before, 10.0)
            if not ok:
                failed += 1
                late = sink.wait(lambda before=connected_before: sink.count("connected") > before, 30.0)
                notes.append(
                    f"replug {n + 1}: not connected after 10 s"
                    + (f"; connected after {time.monotonic() - plugged:.1f} s" if late else "; not even after 40 s")
                    + f"; driver said: {sink.details[-3:]}"
                )
            else:
                at = next(t for s, t in reversed(sink.states) if s == "connected")
                times.append(at - plugged)
                if sink.wait(lambda uid=uid: uid in sink.cards, 5.0):
                    cards_seen += 1
            lost_before = sink.count("lost")
            sim.close()  # unplugged
            sink.wait(lambda before=lost_before: sink.count("lost") > before, 10.0)
            time.sleep(rng.random())  # out of the slot for a moment
    finally:
        stop.set()
        thread.join(10)
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()
    return dict(
        cycles=cycles,
        reconnected=len(times),
        failed=failed,
        cards_seen=cards_seen,
        worst=max(times) if times else float("nan"),
        median=sorted(times)[len(times) // 2] if times else float("nan"),
        connections=driver.connections,
        notes=notes,
    )


def run(quick: bool = False) -> list[tuple[str, str, str, bool]]:
    s = soak(QUICK if quick else FULL)
    for note in s["notes"]:
        print("    " + note, flush=True)
    return [
        (
            f"replug ({s['cycles']}x): reconnections",
            f"{s['reconnected']}/{s['cycles']}",
            f"{s['cycles']}/{s['cycles']}",
            s["reconnected"] == s["cycles"],
        ),
        (
            "replug: card in the slot reported after reconnecting",
            f"{s['cards_seen']}/{s['cycles']}",
            f"{s['cycles']}/{s['cycles']}",
            s["cards_seen"] == s["cycles"],
        ),
        ("replug: worst time to reconnect", f"{s['worst']:.2f} s", "< 2 s", s["worst"] < 2.0),
        ("replug: median time to reconnect", f"{s['median']:.2f} s", "-", True),
    ]
