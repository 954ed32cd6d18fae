"""The bridge's speed: bytes on the reader's line → event at a socket client; idle cost.

`klick bridge` runs as its own process with the serial driver on a pty; the firmware simulator
(in this process) writes each card in/out and notes the monotonic time just before its bytes
go on the line; a socket client here notes when the event arrives. CLOCK_MONOTONIC is one
clock for the whole machine, so the two processes' times compare directly.

Settle and grace are set to 0 for the latency run: they are waits chosen on purpose (80 ms and
1.2 s by default) and would otherwise be all the figure shows. Add them to p50 for the time a
resident waits. Idle CPU is measured with a reader connected and its heartbeat four times a
second (protocol version 2).
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

EVENTS = 10_000
IDLE_SECONDS = 30


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run() -> list[tuple[str, str]]:
    from firmware_bridge.simulator import Simulator
    from klick.bridge_client import BridgeUnavailable, iter_events, request
    from klick.events import CardPresent, CardRemoved, ReaderStatus

    home = Path(tempfile.mkdtemp(prefix="klick-bench-"))
    sock, link = home / "bridge.sock", home / "klick-reader"
    (home / "klick.yaml").write_text(
        f"reader:\n  driver: serial\n  device: {link}\n  settle_ms: 0\n  grace_ms: 0\npaths:\n  socket: {sock}\n"
    )
    sim = Simulator(link=link).start()
    env = dict(os.environ, KLICK_HOME=str(home))
    proc = subprocess.Popen(
        [sys.executable, "-c", "from klick.cli import main; main()", "bridge"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                request(sock, {"command": "status"}, timeout=2)
                break
            except (BridgeUnavailable, TimeoutError):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the bridge did not start") from None
                time.sleep(0.05)
        events = iter_events(sock, timeout=10)
        for event in events:
            if isinstance(event, ReaderStatus) and event.state == "connected":
                break
        rss_start = _rss_mib(proc.pid)

        latencies = []
        started = time.perf_counter()
        for i in range(EVENTS):
            if i % 2 == 0:
                sent, want = sim.insert(f"04{i:012X}"), CardPresent
            else:
                sent, want = sim.remove(), CardRemoved
            for event in events:
                if isinstance(event, want):
                    latencies.append(time.monotonic() - sent)
                    break
        elapsed = time.perf_counter() - started

        time.sleep(1.0)
        cpu0, t0 = _cpu_seconds(proc.pid), time.monotonic()
        time.sleep(IDLE_SECONDS)
        cpu1, t1 = _cpu_seconds(proc.pid), time.monotonic()
        rss_end = _rss_mib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        sim.close()
        shutil.rmtree(home, ignore_errors=True)

    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return [
        (f"pty bytes → socket event, p50 ({len(ms)} events, settle/grace 0)", f"{statistics.median(ms):.2f} ms"),
        ("pty bytes → socket event, p99", f"{p99:.2f} ms"),
        ("pty bytes → socket event, max", f"{ms[-1]:.2f} ms"),
        ("one event at a time, sustained", f"{len(ms) / elapsed:.0f} events/s"),
        (f"bridge idle CPU over {IDLE_SECONDS} s (reader connected)", f"{100 * (cpu1 - cpu0) / (t1 - t0):.3f} %"),
        ("bridge RSS after start / after the run", f"{rss_start:.1f} / {rss_end:.1f} MiB"),
    ]


if __name__ == "__main__":
    for figure, value in run():
        print(f"{figure:60s} {value}")
