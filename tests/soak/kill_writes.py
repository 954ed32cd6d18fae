"""SIGKILL a process in the middle of registry saves and usage-log writes, again and again.

A forked child (imports already loaded, so each round costs milliseconds, not a Python start)
saves the card registry, or records usage events, in a loop and reports each finished write on
a pipe. The parent kills it at a random moment with SIGKILL (no clean-up runs: the same as a
power cut for the process) and then checks:

  registry    cards.yaml always loads, holds exactly one save (never half of two), and is never
              older than the last save the writer had finished
  usage log   PRAGMA integrity_check says ok, every *committed* event is there, and the log opens
              again (a cut session is closed as "restart")

The usage log's guarantee changed with its writer thread (record() only queues, so the screen
never waits): a kill or power cut loses at most the events accepted but not yet committed, the
ones still in the queue. Two kinds of writer measure both halves: one waits for each commit
(flush) before it reports, so none of its reported events may be lost; the other records like
a launcher, a card's burst of events at a time, faster than any resident (one card every
BURST_PAUSE_S), and reports each event as record() accepts it; the figure is how many accepted
events one kill lost at most, against the goal of at most one burst.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import tempfile
import time
from pathlib import Path

FULL, QUICK = 1000, 15


def _registry(version: int):
    from cards.model import Card, Web
    from cards.registry import Registry

    cards = tuple(Card(f"04{i:06X}", f"Kort {version}-{i}", Web(f"https://example.se/{version}/{i}")) for i in range(30))
    return Registry(cards)


def _registry_writer(path: Path, start: int, out: int) -> None:
    from cards.registry import save_registry

    version = start
    while True:
        version += 1
        save_registry(_registry(version), path)
        os.write(out, f"{version}\n".encode())


#: A launcher's events for one card: placed, action started, action ended, lifted.
BURST = 4
#: One card every 50 ms: ten times faster than a resident could swap cards.
BURST_PAUSE_S = 0.05


def _usage_writer_committed(path: Path, start: int, out: int) -> None:
    """Reports an event only once the writer thread has committed it."""
    from klick.usage import UsageLog

    log = UsageLog.open(path, device="soak", enrolled=True)
    n = 0
    while True:
        n += 1
        kind = "card_present" if n % 2 else "card_removed"
        if not log.record(kind, uid="04A2B3C4D5E680", action_type="web" if n % 2 else None):
            os._exit(3)  # a write that was refused must not be counted as done
        if not log.flush(10):
            os._exit(4)
        os.write(out, b"1\n")


def _usage_writer_queued(path: Path, start: int, out: int) -> None:
    """Records as the launcher does, reporting each event as soon as record() accepted it."""
    from klick.usage import UsageLog

    log = UsageLog.open(path, device="soak", enrolled=True)
    while True:
        for kind in ("card_present", "action_started", "action_ended", "card_removed"):
            if not log.record(kind, uid="04A2B3C4D5E680", action_type="web"):
                os._exit(3)
            os.write(out, b"1\n")
        time.sleep(BURST_PAUSE_S)


def _round(writer, path: Path, start: int, rng: random.Random, wait_s: float = 0.012) -> int:
    """Fork a writer, kill it at a random moment; return how many writes it reported finished."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write until killed
        os.close(r)
        try:
            writer(path, start, w)
        finally:
            os._exit(1)
    os.close(w)
    first = os.read(r, 64)  # at least one write finished (so every round cuts a running writer)
    time.sleep(rng.random() * wait_s)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    data = first
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    lines = data.split()
    return int(lines[-1]) if writer is _registry_writer else len(lines)


def soak_registry(rounds: int, folder: Path, seed: int = 3) -> dict[str, int]:
    from cards.registry import load_registry, save_registry

    rng = random.Random(seed)
    path = folder / "cards.yaml"
    save_registry(_registry(0), path)
    version = 0
    bad = dict(unloadable=0, mixed=0, older=0)
    for _ in range(rounds):
        finished = _round(_registry_writer, path, version, rng)
        try:
            reg = load_registry(path)
        except Exception:
            bad["unloadable"] += 1
            continue
        versions = {int(c.label.split()[1].split("-")[0]) for c in reg.cards}
        if len(versions) != 1 or len(reg.cards) != 30:
            bad["mixed"] += 1
            continue
        on_disk = versions.pop()
        if on_disk < finished:
            bad["older"] += 1
        version = max(on_disk, finished)
    return dict(rounds=rounds, **bad)


def soak_usage(rounds: int, folder: Path, seed: int = 5) -> dict[str, float]:
    from klick.usage import UsageLog

    rng = random.Random(seed)
    path = folder / "usage.db"
    UsageLog.open(path, device="soak", enrolled=True).close()
    stored = 0
    bad = dict(not_ok=0, lost=0, unopenable=0)
    queued_lost: list[int] = []
    for n in range(rounds * 2):
        committed = n % 2 == 0
        if committed:
            acked = stored + _round(_usage_writer_committed, path, 0, rng)
        else:
            acked = stored + _round(_usage_writer_queued, path, 0, rng, wait_s=2 * BURST_PAUSE_S)
        conn = sqlite3.connect(path)
        try:
            if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                bad["not_ok"] += 1
            stored = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        finally:
            conn.close()
        if committed and stored < acked:
            bad["lost"] += 1
        if not committed:
            queued_lost.append(max(0, acked - stored))
        try:
            UsageLog.open(path, device="soak", enrolled=True).close()
        except Exception:
            bad["unopenable"] += 1
    return dict(
        rounds=rounds,
        events=stored,
        queued_lost_max=max(queued_lost, default=0),
        queued_lost_mean=sum(queued_lost) / max(1, len(queued_lost)),
        **bad,
    )


def run(quick: bool = False) -> list[tuple[str, str, str, bool]]:
    rounds = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="klick-soak-kill-") as tmp:
        reg = soak_registry(rounds, Path(tmp))
        use = soak_usage(rounds, Path(tmp))
    return [
        (
            f"SIGKILL mid registry save ({reg['rounds']:,}x): registry failed to load",
            str(reg["unloadable"]),
            "0",
            reg["unloadable"] == 0,
        ),
        ("SIGKILL mid registry save: a half or mixed card file", str(reg["mixed"]), "0", reg["mixed"] == 0),
        ("SIGKILL mid registry save: older than the last finished save", str(reg["older"]), "0", reg["older"] == 0),
        (
            f"SIGKILL mid usage write ({2 * use['rounds']:,}x): integrity_check not ok",
            str(use["not_ok"]),
            "0",
            use["not_ok"] == 0,
        ),
        (f"SIGKILL mid usage write: committed events lost ({use['events']:,} events)", str(use["lost"]), "0", use["lost"] == 0),
        (
            f"SIGKILL mid usage write: queued, not yet committed events lost, most in one kill (mean {use['queued_lost_mean']:.2f})",
            str(use["queued_lost_max"]),
            f"<= {BURST}",
            use["queued_lost_max"] <= BURST,
        ),
        ("SIGKILL mid usage write: log failed to open again", str(use["unopenable"]), "0", use["unopenable"] == 0),
    ]
