"""The fleet at pilot and city scale, through a real Mosquitto into `klick fleet collect`.

50 tablets x 20,000 events   50 `klick fleet` daemons while launcher-like writers add events;
                             events/s into the pilot file, end-to-end latency (written on the
                             tablet -> row in the pilot file), the collector's RSS
1,000 tablets at once        1,000 MQTT clients (paho, one process) each with its retained state
                             and a trickle of rows; broker and collector RSS and CPU; rows lost
one tablet idle              `klick fleet` connected with nothing to send: CPU and RSS

python tests/bench/bench_fleet.py [--small]     # --small: 5 x 2,000 and 100 clients
"""

from __future__ import annotations

import os
import random
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent))

from fleet_broker import Broker, device_home, start_collector, start_fleet, wait_for  # noqa: E402

DEVICES, PER_DEVICE, WRITE_S = 50, 20_000, 120.0
CLIENTS, CLIENT_WINDOW_S = 1000, 60.0
IDLE_S = 30.0
UIDS = [f"04{n:012X}" for n in range(40)]
TICK = os.sysconf("SC_CLK_TCK")


def _proc(pid: int) -> tuple[float, float]:
    """(CPU seconds used so far, RSS in MiB) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return cpu, rss


def _peak_rss(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


# --- 50 tablets -------------------------------------------------------------------------------


def pilot_scale(folder: Path, devices: int, per_device: int, write_s: float) -> dict:
    from klick.usage import UsageLog, from_iso

    broker = Broker(folder / "broker")
    names = [f"hbg-{i:03d}" for i in range(devices)]
    broker.add_devices(names)
    homes = {}
    for name in names:
        home = folder / name
        device_home(broker, home, name, state_every_s=30)
        UsageLog.open(home / "usage.db", device=name, enrolled=True).close()
        homes[name] = home
    broker.start()
    pilot = folder / "PILOT.sqlite"
    collector = start_collector(broker, pilot, log=folder / "collector.log")
    wait_for(lambda: "collecting" in (folder / "collector.log").read_text(), 30, what="the collector")
    fleets = [start_fleet(homes[n]) for n in names]
    # Launcher-like writers: each tablet writes small transactions at a steady pace (real clock).
    per_tick = 20
    ticks = per_device // per_tick
    stop = threading.Event()

    def write_all() -> None:
        logs = {n: UsageLog.open(homes[n] / "usage.db", device=n, enrolled=True, retention_days=3650) for n in names}
        cycle = ("card_present", "action_started", "action_ended", "card_removed")
        began = time.monotonic()
        for t in range(ticks):
            for log in logs.values():
                now = time.time()
                log.record_many(
                    (cycle[(t * per_tick + i) % 4], UIDS[i % len(UIDS)], "web", None, None, now) for i in range(per_tick)
                )
            lag = began + (t + 1) * write_s / ticks - time.monotonic()
            if lag > 0:
                time.sleep(lag)
        for log in logs.values():
            log.close()

    # Latency: poll the pilot file for each tablet's newest event, and compare with when it was written.
    latencies: list[float] = []
    seen = dict.fromkeys(names, 0)  # the newest src_id looked at (a new usage.db numbers from the clock)
    arrived = dict.fromkeys(names, 0)  # events in the pilot file

    def poll() -> None:
        conn = sqlite3.connect(f"file:{pilot}?mode=ro", uri=True, timeout=10)
        while not stop.is_set():
            now = time.time()
            for n in names:
                row = conn.execute("SELECT max(src_id) FROM events WHERE device = ?", (n,)).fetchone()
                top = row[0] or 0
                if top > seen[n]:
                    for (at,) in conn.execute(
                        "SELECT at FROM events WHERE device = ? AND src_id > ? AND src_id <= ? AND src_id % 50 = 0",
                        (n, seen[n], top),
                    ):
                        latencies.append(now - from_iso(at))
                    seen[n] = top
                    arrived[n] = conn.execute("SELECT count(*) FROM events WHERE device = ?", (n,)).fetchone()[0]
            time.sleep(0.2)
        conn.close()

    poller = threading.Thread(target=poll, daemon=True)
    writer = threading.Thread(target=write_all)
    started = time.monotonic()
    poller.start()
    writer.start()
    peak_collector = 0.0
    try:
        writer.join()
        total = devices * per_device
        while sum(arrived.values()) < total and time.monotonic() - started < write_s + 600:
            time.sleep(0.5)
            peak_collector = max(peak_collector, _proc(collector.pid)[1])
        elapsed = time.monotonic() - started
        collector_cpu, _ = _proc(collector.pid)
        peak_collector = max(peak_collector, _peak_rss(collector.pid))
        fleet_rss = max(_peak_rss(f.pid) for f in fleets)
    finally:
        stop.set()
        for f in fleets:
            f.terminate()
        for f in fleets:
            f.wait()
        collector.terminate()
        collector.wait()
        broker.stop()
    conn = sqlite3.connect(pilot)
    stored = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    sessions = conn.execute("SELECT count(*) FROM sessions").fetchone()[0]
    conn.close()
    return dict(
        events=stored,
        expected=devices * per_device,
        sessions=sessions,
        elapsed=elapsed,
        rate=stored / elapsed,
        p50=_pct(latencies, 0.5),
        p99=_pct(latencies, 0.99),
        collector_rss=peak_collector,
        collector_cpu=collector_cpu,
        fleet_rss=fleet_rss,
    )


# --- 1,000 tablets ------------------------------------------------------------------------------


#: paho's network loop uses select(), which cannot watch a descriptor past 1023, and each client
#: holds three: so the simulated tablets are spread over processes of at most this many.
CLIENTS_PER_PROCESS = 250


def _city_worker(access_args: tuple, names: list[str], window_s: float, out) -> None:
    """One process's share of the simulated tablets: online 20 at a time, state, then a trickle of rows."""
    from fleet import wire
    from fleet.mqtt import Access, connect_properties, make_client
    from klick.export import key_check
    from klick.usage import iso

    host, port, ca_file, passwords = access_args
    check = key_check("the pilot secret for tests 2026")
    connected = threading.Semaphore(0)
    made = []
    rng = random.Random(len(names))
    for k, name in enumerate(names):
        c = make_client(Access(host, port, Path(ca_file), name, passwords[name]), f"klick-{name}")
        c.connect_timeout = 60.0
        c.will_set(wire.topic(name, wire.STATE), wire.encode({"v": 1, "online": False}), qos=1, retain=True)

        def on_connect(cl, u, f, rc, p, name=name):
            state = {"v": 1, "online": True, "at": iso(time.time()), "since": iso(time.time()), "backlog": 0}
            cl.publish(wire.topic(name, wire.STATE), wire.encode(state), qos=1, retain=True)
            connected.release()

        c.on_connect = on_connect
        c.connect_async(host, port, keepalive=120, clean_start=False, properties=connect_properties(3600))
        c.loop_start()
        made.append((name, c))
        if k % 20 == 19 or k == len(names) - 1:
            for _ in range(k % 20 + 1):
                connected.acquire(timeout=60)
    out.send(("online", len(made)))
    out.recv()  # the go for the trickle
    seq = dict.fromkeys(names, 0)
    rows = batches = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < window_s:
        for name, c in made:
            if rng.random() < 0.1:  # a pass a second, 10 % of tablets: a batch about every 10 s each
                after = seq[name]
                batch = tuple(
                    (
                        "events",
                        after + j + 1,
                        (name, after + j + 1, iso(time.time()), "reader_status", None, None, "connected", None),
                    )
                    for j in range(5)
                )
                seq[name] = after + 5
                c.publish(wire.topic(name, wire.ROWS), wire.encode_rows(wire.Batch(check, after, after + 5, batch)), qos=1)
                rows += 5
                batches += 1
        time.sleep(1.0)
    time.sleep(2.0)  # the last PUBACKs
    out.send(("sent", rows, batches))
    out.recv()
    for _, c in made:
        c.disconnect()
        c.loop_stop()


def city_scale(folder: Path, clients: int, window_s: float) -> dict:
    import multiprocessing

    broker = Broker(folder / "broker")
    names = [f"sim-{i:04d}" for i in range(clients)]
    broker.add_devices(names)
    broker.start()
    pilot = folder / "PILOT.sqlite"
    collector = start_collector(broker, pilot, log=folder / "collector.log")
    wait_for(lambda: "collecting" in (folder / "collector.log").read_text(), 30, what="the collector")
    ctx = multiprocessing.get_context("fork")
    access_args = (broker.host, broker.port, str(broker.ca_file), dict(broker.users))
    workers = []
    began = time.monotonic()
    for i in range(0, clients, CLIENTS_PER_PROCESS):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_city_worker, args=(access_args, names[i : i + CLIENTS_PER_PROCESS], window_s, child))
        proc.start()
        workers.append((proc, parent))
    online = sum(parent.recv()[1] for _, parent in workers)
    connect_s = time.monotonic() - began
    on = sum(1 for line in (folder / "broker" / "mosquitto.log").read_text().splitlines() if "New client connected" in line) - 1
    broker_cpu0, _ = _proc(broker.proc.pid)
    collector_cpu0, _ = _proc(collector.pid)
    t0 = time.monotonic()
    for _, parent in workers:
        parent.send("go")
    peak_broker = peak_collector = 0.0
    while time.monotonic() - t0 < window_s:
        peak_broker = max(peak_broker, _proc(broker.proc.pid)[1])
        peak_collector = max(peak_collector, _proc(collector.pid)[1])
        time.sleep(1.0)
    results = [parent.recv() for _, parent in workers]
    window = time.monotonic() - t0
    sent_rows = sum(r[1] for r in results)
    sent_batches = sum(r[2] for r in results)

    def stored() -> int:
        try:
            conn = sqlite3.connect(f"file:{pilot}?mode=ro", uri=True, timeout=10)
            try:
                return conn.execute("SELECT count(*) FROM events").fetchone()[0]
            finally:
                conn.close()
        except sqlite3.Error:
            return 0

    try:
        wait_for(lambda: stored() >= sent_rows, 120, 0.5, what="the trickle")
    except AssertionError:
        pass
    broker_cpu, _ = _proc(broker.proc.pid)
    collector_cpu, _ = _proc(collector.pid)
    got = stored()
    for proc, parent in workers:
        parent.send("bye")
        proc.join(60)
    collector.terminate()
    collector.wait()
    broker.stop()
    return dict(
        clients=online,
        online=on,
        connect_s=connect_s,
        batches=sent_batches,
        rows=sent_rows,
        lost=max(0, sent_rows - got),
        broker_cpu=100 * (broker_cpu - broker_cpu0) / window,
        collector_cpu=100 * (collector_cpu - collector_cpu0) / window,
        broker_rss=peak_broker,
        collector_rss=peak_collector,
    )


# --- one tablet idle --------------------------------------------------------------------------


def idle(folder: Path, seconds: float) -> dict:
    from klick.usage import UsageLog

    broker = Broker(folder / "broker")
    home = folder / "hbg-idle"
    device_home(broker, home, "hbg-idle")
    log = UsageLog.open(home / "usage.db", device="hbg-idle", enrolled=True)
    for i in range(200):
        log.record("card_present" if i % 2 == 0 else "card_removed", uid=UIDS[0])
    log.close()
    broker.start()
    fleet = start_fleet(home)
    try:
        wait_for(lambda: "connected" in (home / "fleet.log").read_text(), 30, what="klick fleet online")
        time.sleep(3.0)  # the backlog of 200 rows is sent; then nothing to do
        cpu0, _ = _proc(fleet.pid)
        time.sleep(seconds)
        cpu1, rss = _proc(fleet.pid)
    finally:
        fleet.terminate()
        fleet.wait()
        broker.stop()
    return dict(cpu=100 * (cpu1 - cpu0) / seconds, rss=rss)


def run() -> list[tuple[str, str]]:
    small = "--small" in sys.argv or os.environ.get("KLICK_BENCH_SMALL")
    devices, per_device, write_s = (5, 2_000, 10.0) if small else (DEVICES, PER_DEVICE, WRITE_S)
    clients, window = (100, 10.0) if small else (CLIENTS, CLIENT_WINDOW_S)
    with tempfile.TemporaryDirectory(prefix="klick-bench-fleet-") as tmp:
        folder = Path(tmp)
        i = idle(folder / "idle", 5.0 if small else IDLE_S)
        print(f"idle: {i}", file=sys.stderr, flush=True)
        p = pilot_scale(folder / "pilot", devices, per_device, write_s)
        print(f"pilot: {p}", file=sys.stderr, flush=True)
        c = city_scale(folder / "city", clients, window)
        print(f"city: {c}", file=sys.stderr, flush=True)
    return [
        (
            f"{devices} tablets x {per_device:,} events: into the pilot file",
            f"{p['events']:,} of {p['expected']:,} events (+{p['sessions']:,} sessions)",
        ),
        (f"{devices} tablets: events/s written on the tablets", f"{p['expected'] / write_s:,.0f} /s for {write_s:.0f} s"),
        (f"{devices} tablets: events/s into the pilot file (all done)", f"{p['rate']:,.0f} /s ({p['elapsed']:.0f} s)"),
        (f"{devices} tablets: written on a tablet -> row in the pilot file, p50 / p99", f"{p['p50']:.2f} / {p['p99']:.2f} s"),
        (f"{devices} tablets: collector peak RSS, CPU", f"{p['collector_rss']:.0f} MiB, {p['collector_cpu']:.0f} s"),
        (f"{devices} tablets: a klick fleet's peak RSS", f"{p['fleet_rss']:.0f} MiB"),
        (
            f"{c['clients']:,} tablets connected at once (TLS, 20 at a time)",
            f"{c['online']:,} online in {c['connect_s']:.1f} s",
        ),
        (f"{c['clients']:,} tablets: rows lost of {c['rows']:,} ({c['batches']:,} batches)", str(c["lost"])),
        (f"{c['clients']:,} tablets: broker RSS, CPU", f"{c['broker_rss']:.0f} MiB, {c['broker_cpu']:.1f} %"),
        (f"{c['clients']:,} tablets: collector RSS, CPU", f"{c['collector_rss']:.0f} MiB, {c['collector_cpu']:.1f} %"),
        ("klick fleet idle: CPU (goal < 0.5 %)", f"{i['cpu']:.2f} %"),
        ("klick fleet idle: RSS (goal < 40 MiB)", f"{i['rss']:.0f} MiB"),
    ]


if __name__ == "__main__":
    for figure, value in run():
        print(f"{figure:<70}  {value}")
