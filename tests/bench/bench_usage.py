"""Usage log, export and merge at pilot scale: 1,000,000 events, 50 devices.

Each part runs in its own process so its peak RSS is its own: the point of streaming is that a
million events never sit in memory, and the RSS shows whether that holds.

    python tests/bench/bench_usage.py          # all parts, prints the figures
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO))

EVENTS = 1_000_000
SINGLE = 2_000
DEVICES, PER_DEVICE = 50, 20_000
T0 = 1772452800.0
UIDS = [f"04{n:012X}" for n in range(40)]
TYPES = ["video_call", "svt_play", "photo_album", "web"]


def _events(n: int, start: float = T0):
    """A realistic mix: place, start, end, lift; a reader hiccup now and then."""
    t = start
    i = 0
    while i < n:
        uid = UIDS[i % len(UIDS)]
        kind = TYPES[i % len(TYPES)]
        for ev in (
            ("card_present", uid, kind, None, None),
            ("action_started", uid, kind, None, None),
            ("action_ended", uid, kind, "ok", None),
            ("card_removed", uid, None, None, None),
        ):
            if i >= n:
                break
            t += 7.0
            yield (*ev, t)
            i += 1
        if i % 1000 == 0 and i < n:
            t += 1.0
            yield ("reader_status", None, None, "connected", "usb", t)
            i += 1


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def part_insert_batched(folder: Path) -> dict:
    from klick.usage import UsageLog

    log = UsageLog.open(folder / "big.db", device="bench", enrolled=True, retention_days=3650, now=lambda: T0)
    started = time.perf_counter()
    n = log.record_many(_events(EVENTS), batch=10_000)
    elapsed = time.perf_counter() - started
    log.close()
    return {"n": n, "seconds": elapsed, "rss": _rss_mb(), "size": (folder / "big.db").stat().st_size}


def part_single(folder: Path) -> dict:
    """What the launcher's thread pays per event (record() only queues), and how long until committed."""
    from klick.usage import UsageLog

    clock = [T0]
    log = UsageLog.open(folder / "single.db", device="bench", enrolled=True, retention_days=3650, now=lambda: clock[0])
    log.flush()
    calls, commits = [], []
    for _i, ev in enumerate(_events(SINGLE)):
        kind, uid, action_type, outcome, detail, at = ev
        clock[0] = at
        started = time.perf_counter()
        log.record(kind, uid=uid, action_type=action_type, outcome=outcome, detail=detail)
        calls.append(time.perf_counter() - started)
        log.flush()
        commits.append(time.perf_counter() - started)
    log.close()
    calls.sort()
    commits.sort()
    ms = lambda xs, q: xs[min(len(xs) - 1, int(len(xs) * q))] * 1000  # noqa: E731
    return {
        "p50": ms(calls, 0.5),
        "p99": ms(calls, 0.99),
        "max": calls[-1] * 1000,
        "commit_p50": ms(commits, 0.5),
        "commit_p99": ms(commits, 0.99),
        "rss": _rss_mb(),
    }


def part_open(folder: Path) -> dict:
    """Opening the million-event log (what the launcher's thread waits for), and the writer's
    start-up work after it (quick_check of the whole file, pruning). The file is in the page
    cache here; from a cold SD card the quick_check reads the whole file from the card."""
    from klick.usage import UsageLog

    started = time.perf_counter()
    log = UsageLog.open(folder / "big.db", device="bench", enrolled=True, retention_days=3650, now=lambda: T0)
    opened = time.perf_counter() - started
    log.flush(600)
    ready = time.perf_counter() - started
    log.close()
    return {"seconds": opened, "ready": ready}


def part_export_csv(folder: Path) -> dict:
    from klick.export import Window, card_hasher, export_rows, open_usage_db, write_csv

    conn = open_usage_db(folder / "big.db")
    started = time.perf_counter()
    columns, total, rows = export_rows(conn, "events", Window(), card_hasher("bench key, long enough"))
    with open(folder / "big.csv", "w", encoding="utf-8", newline="") as fh:
        n = write_csv(columns, rows, fh)
    elapsed = time.perf_counter() - started
    conn.close()
    return {"n": n, "seconds": elapsed, "rss": _rss_mb(), "size": (folder / "big.csv").stat().st_size}


def part_make_device_files(folder: Path) -> dict:
    """50 export files as 50 devices would send them (not timed as part of the merge)."""
    import sqlite3

    from klick.export import card_hasher, create_export_db, key_check

    card = card_hasher("bench key, long enough")
    for d in range(DEVICES):
        device = f"hbg-{d:02d}"
        conn = sqlite3.connect(folder / f"{device}.sqlite", isolation_level=None)
        conn.execute("BEGIN")
        create_export_db(
            conn, {"contents": "usage", "personal": "0", "key_check": key_check("bench key, long enough"), "devices": device}
        )
        rows = (
            (
                device,
                i + 1,
                f"2026-03-{1 + int((at - T0) // 86400) % 28:02d}T12:00:00.000Z",
                kind,
                card(uid),
                atype,
                outcome,
                detail,
            )
            for i, (kind, uid, atype, outcome, detail, at) in enumerate(_events(PER_DEVICE))
        )
        conn.executemany(
            "INSERT INTO events(device, src_id, at, kind, card, action_type, outcome, detail) VALUES (?,?,?,?,?,?,?,?)", rows
        )
        conn.execute("COMMIT")
        conn.close()
    return {}


def part_merge(folder: Path) -> dict:
    from klick.export import merge

    files = sorted(folder.glob("hbg-*.sqlite"))
    started = time.perf_counter()
    counts = merge(files, folder / "PILOT.sqlite")
    elapsed = time.perf_counter() - started
    return {"n": counts["events"], "seconds": elapsed, "rss": _rss_mb(), "size": (folder / "PILOT.sqlite").stat().st_size}


PARTS = {
    "insert_batched": part_insert_batched,
    "single": part_single,
    "open": part_open,
    "export_csv": part_export_csv,
    "make_device_files": part_make_device_files,
    "merge": part_merge,
}


def _in_child(part: str, folder: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, part, str(folder)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run() -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="klick-bench-usage-") as tmp:
        folder = Path(tmp)
        r = _in_child("insert_batched", folder)
        rows += [
            (f"insert {r['n']:,} events, batches of 10,000", f"{r['seconds']:.1f} s ({r['n'] / r['seconds']:,.0f} events/s)"),
            ("  database size", f"{r['size'] / 1e6:.0f} MB"),
            ("  peak RSS", f"{r['rss']:.0f} MB"),
        ]
        r = _in_child("single", folder)
        rows += [
            (
                f"record() on the launcher's thread (queues), {SINGLE:,} calls",
                f"p50 {r['p50']:.3f} ms, p99 {r['p99']:.3f} ms, max {r['max']:.1f} ms",
            ),
            (
                "  until committed by the writer (WAL, synchronous=FULL)",
                f"p50 {r['commit_p50']:.2f} ms, p99 {r['commit_p99']:.2f} ms",
            ),
        ]
        r = _in_child("open", folder)
        rows += [
            (f"open the {EVENTS:,}-event log (the launcher's thread waits)", f"{r['seconds'] * 1000:.1f} ms"),
            ("  writer's start-up work done (quick_check, pruning)", f"{r['ready']:.2f} s"),
        ]
        r = _in_child("export_csv", folder)
        rows += [
            (f"export {r['n']:,} events to CSV", f"{r['seconds']:.1f} s ({r['size'] / 1e6:.0f} MB)"),
            ("  peak RSS", f"{r['rss']:.0f} MB"),
        ]
        _in_child("make_device_files", folder)
        r = _in_child("merge", folder)
        rows += [
            (f"merge {DEVICES} device files of {PER_DEVICE:,} events", f"{r['seconds']:.1f} s ({r['n']:,} events)"),
            ("  peak RSS", f"{r['rss']:.0f} MB"),
        ]
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 3:
        print(json.dumps(PARTS[sys.argv[1]](Path(sys.argv[2]))))
    else:
        for name, value in run():
            print(f"{name:60s} {value}")
