"""The fleet's store and forward under stress, with a real Mosquitto, `klick fleet` and `klick fleet collect`.

  broker crashes    the broker SIGKILLed and restarted while a launcher-like writer adds events
  fleet kills       `klick fleet` SIGKILLed at random moments while events are added
  a week offline    the broker down while a week of events is written; then it comes back

After each, the pilot file the collector wrote must hold exactly what `klick export` + `klick export
merge` make from the same usage.db: no row lost, none twice, none stale (an old version of a
session). While the backlog drains, the launcher's single insert is timed against a run with no
fleet at all.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent))

from fleet_broker import Broker, device_home, klick_bin, klick_env, start_collector, start_fleet, wait_for  # noqa: E402

FULL = dict(restarts=20, restart_events=20_000, kills=100, kill_events=10_000, offline_events=100_000)
QUICK = dict(restarts=3, restart_events=1_500, kills=4, kill_events=600, offline_events=4_000)
UIDS = [f"04{n:012X}" for n in range(30)]


class Writer(threading.Thread):
    """The launcher's writes: card in, action started, action ended, card out; each its own commit."""

    def __init__(self, db: Path, device: str, events: int, pace_s: float) -> None:
        super().__init__(daemon=True)
        from klick.usage import UsageLog

        self.log = UsageLog.open(db, device=device, enrolled=True, retention_days=3650)
        self.events, self.pace_s = events, pace_s
        self.written = 0
        self.times: list[float] = []

    def run(self) -> None:
        cycle = ("card_present", "action_started", "action_ended", "card_removed")
        while self.written < self.events:
            uid = UIDS[self.written % len(UIDS)]
            kind = cycle[self.written % 4]
            started = time.perf_counter()
            self.log.record(kind, uid=uid, action_type="web" if kind != "card_removed" else None)
            self.times.append(time.perf_counter() - started)
            self.written += 1
            if self.pace_s:
                time.sleep(self.pace_s)
        self.log.close()


def _usb(home: Path, out: Path) -> Path:
    import subprocess

    env = klick_env(home)
    for kind in ("usage", "answers"):
        subprocess.run(
            [klick_bin(), "export", kind, "--format", "sqlite", "--out", str(home / f"{kind}.sqlite")],
            check=True,
            env=env,
            capture_output=True,
        )
    subprocess.run(
        [klick_bin(), "export", "merge", str(home / "usage.sqlite"), str(home / "answers.sqlite"), "--out", str(out)],
        check=True,
        env=env,
        capture_output=True,
    )
    return out


def _rows(path: Path, table: str) -> set[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        return {tuple(r) for r in conn.execute(f"SELECT {', '.join(cols)} FROM {table}")}
    finally:
        conn.close()


def compare(pilot: Path, usb: Path) -> dict[str, int]:
    """lost: in the USB file, not in the pilot; stale: in the pilot in another version; extra: only there."""
    out = dict(rows=0, lost=0, stale=0, extra=0)
    for table in ("events", "sessions", "answers"):
        a, b = _rows(pilot, table), _rows(usb, table)
        keys_a = {(r[0], r[1]) for r in a}
        keys_b = {(r[0], r[1]) for r in b}
        out["rows"] += len(b)
        out["lost"] += len(keys_b - keys_a)
        out["extra"] += len(keys_a - keys_b)
        out["stale"] += len({(r[0], r[1]) for r in b - a} & keys_a)
    return out


def _rows_in(pilot: Path) -> int:
    conn = sqlite3.connect(f"file:{pilot}?mode=ro", uri=True, timeout=5)
    try:
        return sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("events", "sessions", "answers"))
    finally:
        conn.close()


def _covered(pilot: Path, device: str) -> int:
    try:
        conn = sqlite3.connect(f"file:{pilot}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT covered FROM fleet_devices WHERE device = ?", (device,)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return -1
    return row[0] if row else -1


def _last_seq(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT last FROM row_seq").fetchone()[0]
    finally:
        conn.close()


def _stop(proc, sig=signal.SIGTERM) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=15)
        except Exception:
            proc.kill()
            proc.wait()


def _setup(folder: Path, device: str, **home_args):
    broker = Broker(folder / "broker")
    home = folder / device
    device_home(broker, home, device, state_every_s=5, **home_args)
    from klick.usage import UsageLog

    UsageLog.open(home / "usage.db", device=device, enrolled=True).close()
    return broker, home


def _settle(pilot: Path, home: Path, device: str, timeout: float) -> float:
    """Seconds until the collector holds the device's whole sequence."""
    started = time.monotonic()
    target = _last_seq(home / "usage.db")
    wait_for(lambda: _covered(pilot, device) >= target, timeout, 0.1, what=f"{device} to be collected")
    return time.monotonic() - started


def broker_crashes(folder: Path, restarts: int, events: int, seed: int = 11) -> dict:
    rng = random.Random(seed)
    broker, home = _setup(folder, "soak-a")
    pilot = folder / "PILOT-a.sqlite"
    broker.start()
    collector = start_collector(broker, pilot, log=folder / "collector-a.log")
    fleet = start_fleet(home)
    try:
        # Pace the writer so the stream spans the restarts (about 1.5 s apart).
        writer = Writer(home / "usage.db", "soak-a", events, pace_s=max(0.0, restarts * 1.5 / events - 0.0015))
        writer.start()
        for _ in range(restarts):
            time.sleep(rng.uniform(0.5, 2.0))
            broker.stop(kill=True)
            time.sleep(rng.uniform(0.0, 1.0))
            broker.start()
        writer.join()
        catch_up = _settle(pilot, home, "soak-a", 300)
    finally:
        _stop(fleet)
        _stop(collector)
        broker.stop()
    result = compare(pilot, _usb(home, folder / "USB-a.sqlite"))
    holes = (folder / "collector-a.log").read_text().count("are missing")
    return dict(restarts=restarts, events=writer.written, catch_up=catch_up, holes=holes, **result)


def fleet_kills(folder: Path, kills: int, events: int, seed: int = 13) -> dict:
    rng = random.Random(seed)
    broker, home = _setup(folder, "soak-b")
    pilot = folder / "PILOT-b.sqlite"
    broker.start()
    collector = start_collector(broker, pilot, log=folder / "collector-b.log")
    try:
        writer = Writer(home / "usage.db", "soak-b", events, pace_s=max(0.0, kills * 1.2 / events - 0.0015))
        writer.start()
        for _ in range(kills):
            fleet = start_fleet(home)
            time.sleep(rng.uniform(0.2, 2.0))
            fleet.send_signal(signal.SIGKILL)
            fleet.wait()
        writer.join()
        fleet = start_fleet(home)
        catch_up = _settle(pilot, home, "soak-b", 300)
        _stop(fleet)
    finally:
        _stop(collector)
        broker.stop()
    result = compare(pilot, _usb(home, folder / "USB-b.sqlite"))
    return dict(kills=kills, events=writer.written, catch_up=catch_up, **result)


def _timed_inserts(db: Path, device: str, stop: threading.Event, every_s: float) -> list[float]:
    from klick.usage import UsageLog

    log = UsageLog.open(db, device=device, enrolled=True, retention_days=3650)
    times = []
    n = 0
    while not stop.is_set():
        started = time.perf_counter()
        log.record("card_present" if n % 2 == 0 else "card_removed", uid=UIDS[n % len(UIDS)])
        times.append(time.perf_counter() - started)
        n += 1
        time.sleep(every_s)
    log.close()
    return times


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def offline_week(folder: Path, events: int) -> dict:
    """A week of events with the broker down, then the broker back: order, completeness, insert times."""
    from fleet.mqtt import connect_properties, make_client
    from klick.usage import UsageLog

    broker, home = _setup(folder, "soak-c")
    pilot = folder / "PILOT-c.sqlite"
    week_start = time.time() - 7 * 86_400
    # The collector (and a spy on the rows topic that notes the order batches come in) have their
    # persistent sessions on the broker, as they would in a pilot; then the broker goes down.
    broker.start()
    order: queue.Queue = queue.Queue()
    subscribed = threading.Event()
    spy = make_client(broker.access("collector"), "soak-spy")
    spy.on_connect = lambda c, u, f, rc, p: c.subscribe("klick/soak-c/rows", qos=1)
    spy.on_subscribe = lambda *a: subscribed.set()
    spy.on_message = lambda c, u, m: order.put(json.loads(m.payload)["upto"])
    spy.connect(broker.host, broker.port, clean_start=False, properties=connect_properties(86_400))
    spy.loop_start()
    collector = start_collector(broker, pilot, log=folder / "collector-c.log")
    wait_for(lambda: subscribed.is_set() and "collecting" in (folder / "collector-c.log").read_text(), 30, what="subscriptions")
    time.sleep(0.5)
    broker.stop()
    # The week, written with the broker down (the launcher's own batches, its clock a week back).
    log = UsageLog.open(home / "usage.db", device="soak-c", enrolled=True, retention_days=3650)
    fleet = start_fleet(home)
    step = 7 * 86_400 / events
    cycle = ("card_present", "action_started", "action_ended", "card_removed")
    log.record_many(
        (cycle[i % 4], UIDS[(i // 4) % len(UIDS)], "web" if i % 4 != 3 else None, None, None, week_start + i * step)
        for i in range(events)
    )
    log.close()
    broker.start()
    stop = threading.Event()
    during: list[float] = []
    timer = threading.Thread(target=lambda: during.extend(_timed_inserts(home / "usage.db", "soak-c", stop, 0.02)))
    started = time.monotonic()
    timer.start()
    week = _last_seq(home / "usage.db")
    try:
        wait_for(lambda: _covered(pilot, "soak-c") >= week, 600, 0.1, what="the week's backlog")
        drain = time.monotonic() - started
        stop.set()
        timer.join()
        _settle(pilot, home, "soak-c", 120)
    finally:
        stop.set()
        spy.disconnect()
        spy.loop_stop()
        _stop(fleet)
        _stop(collector)
        broker.stop()
    uptos = []
    while not order.empty():
        uptos.append(order.get())
    out_of_order = sum(1 for a, b in zip(uptos, uptos[1:]) if b < a)
    # The same single inserts into a database of the same size, with no fleet running.
    base_db = folder / "baseline.db"
    base = UsageLog.open(base_db, device="base", enrolled=True, retention_days=3650)
    base.record_many((cycle[i % 4], UIDS[(i // 4) % len(UIDS)], None, None, None, week_start + i * step) for i in range(events))
    base.close()
    stop2 = threading.Event()
    baseline: list[float] = []
    t = threading.Thread(target=lambda: baseline.extend(_timed_inserts(base_db, "base", stop2, 0.02)))
    t.start()
    time.sleep(min(drain, 20.0))
    stop2.set()
    t.join()
    result = compare(pilot, _usb(home, folder / "USB-c.sqlite"))
    return dict(
        events=events,
        drain=drain,
        rate=_rows_in(pilot) / drain,
        out_of_order=out_of_order,
        batches=len(uptos),
        p99_during=_p(during, 0.99),
        p50_during=_p(during, 0.5),
        p99_base=_p(baseline, 0.99),
        p50_base=_p(baseline, 0.5),
        **result,
    )


NOTE = (
    "The fleet soak runs the broker and the collector on the same machine as the tablet's writer, so the "
    "insert times while the backlog drains include their CPU and fsyncs, which a tablet does not have."
)


def run(quick: bool = False) -> list[tuple[str, str, str, bool]]:
    n = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="klick-soak-fleet-") as tmp:
        folder = Path(tmp)
        a = broker_crashes(folder / "a", n["restarts"], n["restart_events"])
        b = fleet_kills(folder / "b", n["kills"], n["kill_events"])
        c = offline_week(folder / "c", n["offline_events"])
    insert_ok = c["p99_during"] <= max(3 * c["p99_base"], 0.050)
    return [
        (f"broker SIGKILLed {a['restarts']}x during {a['events']:,} events: rows lost", str(a["lost"]), "0", a["lost"] == 0),
        (
            "broker SIGKILLed: rows twice or stale in the pilot file",
            str(a["extra"] + a["stale"]),
            "0",
            a["extra"] + a["stale"] == 0,
        ),
        ("broker SIGKILLed: pilot complete after the writer stopped", f"{a['catch_up']:.1f} s", "< 300 s", a["catch_up"] < 300),
        ("broker SIGKILLed: holes the collector saw and had sent again", str(a["holes"]), "-", True),
        (f"klick fleet SIGKILLed {b['kills']}x during {b['events']:,} events: rows lost", str(b["lost"]), "0", b["lost"] == 0),
        ("klick fleet SIGKILLed: rows twice or stale", str(b["extra"] + b["stale"]), "0", b["extra"] + b["stale"] == 0),
        (f"a week offline ({c['events']:,} events): rows lost", str(c["lost"]), "0", c["lost"] == 0),
        (
            "a week offline: batches out of order",
            f"{c['out_of_order']} of {c['batches']}",
            "0",
            c["out_of_order"] == 0,
        ),
        (
            "a week offline: whole backlog in the pilot file after the broker is back",
            f"{c['drain']:.1f} s ({c['rate']:,.0f} rows/s)",
            "-",
            True,
        ),
        (
            "launcher insert while the backlog drains, p50 / p99",
            f"{c['p50_during'] * 1000:.1f} / {c['p99_during'] * 1000:.1f} ms",
            f"p99 <= 3x no fleet ({c['p50_base'] * 1000:.1f} / {c['p99_base'] * 1000:.1f} ms) or < 50 ms",
            insert_ok,
        ),
    ]


if __name__ == "__main__":
    for row in run("--quick" in sys.argv):
        print(row)
    os._exit(0)
