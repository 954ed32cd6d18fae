"""Wire-protocol figures: decoder throughput, pty bytes-written → sink.seen latency, and how
long a card event whose first sending was lost takes to arrive (protocol version 2 resends it).

The latency runs the real path below the socket: the firmware simulator writes a frame into a
pty, the SerialDriver (pyserial, select, decoder, host session, normalise_uid) reads it and
calls the sink. Events go one at a time, each waiting for the last, so the figure is latency,
not throughput. The socket on top is measured by the bridge's own bench.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from firmware_bridge import protocol as p  # noqa: E402
from firmware_bridge.serial_driver import SerialDriver  # noqa: E402
from firmware_bridge.simulator import Simulator  # noqa: E402
from klick.config import ReaderConfig  # noqa: E402

EVENTS = 10_000


def _decoder_figures() -> list[tuple[str, str]]:
    msgs = [
        p.CardPresentMsg(i & 0xFFFF, (0x04A2B3C4D5E680 + i).to_bytes(7, "big"))
        if i % 3 == 0
        else p.CardRemovedMsg(i & 0xFFFF)
        if i % 3 == 1
        else p.Heartbeat(i & 0xFFFF)
        for i in range(60_000)
    ]
    stream = b"".join(p.encode(m, i) for i, m in enumerate(msgs))
    d = p.Decoder()
    t0 = time.perf_counter()
    n = 0
    for i in range(0, len(stream), 4096):
        n += len(d.feed(stream[i : i + 4096]))
    clean = time.perf_counter() - t0
    assert n == len(msgs)

    noisy = bytearray()
    for i, m in enumerate(msgs[:20_000]):
        noisy += bytes((i * 37 + k) & 0xFF for k in range(i % 7)) + b"\x7e" + p.encode(m, i)
    d = p.Decoder()
    t0 = time.perf_counter()
    n = 0
    for i in range(0, len(noisy), 4096):
        n += len(d.feed(noisy[i : i + 4096]))
    noisy_s = time.perf_counter() - t0
    return [
        ("decoder, clean stream", f"{len(msgs) / clean:,.0f} frames/s ({len(stream) / clean / 1e6:.2f} MB/s)"),
        ("decoder, noise before every frame", f"{n / noisy_s:,.0f} frames/s ({d.errors:,} garbage runs dropped)"),
        ("line time of one CARD_PRESENT at 115200 baud", f"{16 * 10 / 115200 * 1000:.2f} ms"),
    ]


class _Sink:
    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.at = 0.0
        self.connected = threading.Event()

    def seen(self, uid: str, at: float) -> None:
        self.at = time.monotonic()
        self.arrived.set()

    def gone(self, at: float) -> None:
        self.at = time.monotonic()
        self.arrived.set()

    def tapped(self, uid: str, at: float) -> None:
        pass

    def status(self, state: str, detail: str, mode: str = "slot") -> None:
        if state == "connected":
            self.connected.set()


def _latency_figures(events: int = EVENTS) -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        link = Path(tmp) / "klick-reader"
        sim = Simulator(link=link).start()
        sink = _Sink()
        driver = SerialDriver(ReaderConfig(driver="serial", device=str(link)), sink)
        stop = threading.Event()
        thread = threading.Thread(target=driver.run, args=(stop,), daemon=True)
        thread.start()
        try:
            if not sink.connected.wait(20):
                return [("pty → sink latency", "not measured: the driver did not connect")]
            sim.wait_received(p.Status)
            time.sleep(0.2)  # let the STATUS answer land before timing
            lat: list[float] = []
            lost = 0
            t_all = time.perf_counter()
            for i in range(events):
                sink.arrived.clear()
                t0 = sim.insert((0x04000000 + i).to_bytes(4, "big")) if i % 2 == 0 else sim.remove()
                if not sink.arrived.wait(5):
                    lost += 1
                    continue
                lat.append(sink.at - t0)
            total = time.perf_counter() - t_all
        finally:
            stop.set()
            thread.join(10)
            sim.close()
    lat.sort()
    ms = [x * 1000 for x in lat]
    q = statistics.quantiles(ms, n=100)
    return [
        (
            f"pty bytes written → sink.seen/gone, {len(ms):,} events",
            f"p50 {q[49]:.3f} ms, p99 {q[98]:.3f} ms, max {ms[-1]:.3f} ms",
        ),
        ("events lost on the pty path", f"{lost} of {events:,}"),
        ("events per second, one at a time", f"{events / total:,.0f} /s"),
        ("garbage frames seen by the driver", f"{driver.garbage}"),
    ]


def _resend_figures(events: int = 300) -> list[tuple[str, str]]:
    """The first sending of every event is lost: how long until the reader's resend lands."""
    with tempfile.TemporaryDirectory() as tmp:
        link = Path(tmp) / "klick-reader"
        sim = Simulator(link=link).start()
        sink = _Sink()
        driver = SerialDriver(ReaderConfig(driver="serial", device=str(link)), sink)
        stop = threading.Event()
        thread = threading.Thread(target=driver.run, args=(stop,), daemon=True)
        thread.start()
        lat: list[float] = []
        lost = 0
        try:
            if not sink.connected.wait(20):
                return [("resent event latency", "not measured: the driver did not connect")]
            time.sleep(0.2)
            for i in range(events):
                sink.arrived.clear()
                sim.drop_next_events(1)
                t0 = sim.insert((0x05000000 + i).to_bytes(4, "big")) if i % 2 == 0 else sim.remove()
                if not sink.arrived.wait(5):
                    lost += 1
                    continue
                lat.append(sink.at - t0)
        finally:
            stop.set()
            thread.join(10)
            sim.close()
    ms = sorted(x * 1000 for x in lat)
    q = statistics.quantiles(ms, n=100)
    return [
        (
            f"event whose first sending was lost → sink (v2 resend), {len(ms)} events",
            f"p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms, max {ms[-1]:.1f} ms",
        ),
        ("events lost although resent", f"{lost} of {events}"),
    ]


def run() -> list[tuple[str, str]]:
    return _decoder_figures() + _latency_figures() + _resend_figures()


if __name__ == "__main__":
    for name, value in run():
        print(f"{name:55} {value}")
