"""What leaves a tablet, read in full: every message published in every fleet test, then a
collector's log and `klick fleet status --json`, searched for what must never leave.

  every message   the fleet tests (tests/test_fleet*.py) run with a spy on each test broker
                  (KLICK_FLEET_SPY: a user who may read everything records every message);
                  rows, state, seen, withdrawn and resend messages must hold no raw card ID, card
                  label, web or call address, room, contact name, free text, or this machine's ID.
                  The office's own pushes (set/...) carry card sets by design, and a tablet's
                  `applied` may quote the pushed set in a refusal (README, "What leaves the tablet"):
                  they are counted, not searched.
  log and status  a tablet with card use, calls, a failure with an address, questionnaire
                  answers and free text sends to a collector; its log and the office's status
                  (text and --json) are searched the same way.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests"))

#: What the tests put in usage.db and card files that must never leave a tablet.
WORDS = (
    "https://",
    "http://",
    "example.se",
    "meet.",
    "familjen-andersson",
    "Anna",
    "Andersson",
    "Rapport",
    "Ljudet var",
    "Norr",
    "Bertil",
    "Kalle",
)
#: A raw card ID: upper-case hex, as klick.uid.normalise_uid writes it (hashes are lower case).
RAW_UID = re.compile(rb"(?<![0-9A-Za-z])04[0-9A-F]{6,18}(?![0-9A-Za-z])")
SEARCHED = ("rows", "state", "seen", "withdrawn", "set/resend")


def _secrets() -> list[bytes]:
    found = [w.encode() for w in WORDS]
    try:
        machine = Path("/etc/machine-id").read_text().strip()
    except OSError:
        machine = ""
    if machine:
        found.append(machine.encode())
    return found


def search(payload: bytes) -> list[str]:
    hits = [s.decode() for s in _secrets() if s in payload]
    hits += [f"card ID {m.decode()}" for m in RAW_UID.findall(payload)]
    return hits


def _messages(folder: Path) -> list[tuple[str, bytes]]:
    out = []
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            m = json.loads(line)
            out.append((m["topic"], base64.b64decode(m["payload"])))
    return out


def every_test_message(quick: bool) -> tuple[int, int, list[str]]:
    spy = Path(tempfile.mkdtemp(prefix="klick-fleet-spy-"))
    tests = (
        ["tests/test_fleet.py"] if quick else sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_fleet*.py"))
    )
    env = {**os.environ, "KLICK_FLEET_SPY": str(spy)}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-n", "3", "-p", "no:cacheprovider", *tests],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        raise RuntimeError(f"the fleet tests failed under the spy:\n{run.stdout[-3000:]}")
    messages = _messages(spy)
    problems, searched = [], 0
    for topic, payload in messages:
        leaf = topic.split("/", 2)[2] if topic.count("/") >= 2 else topic
        if leaf not in SEARCHED:
            continue
        searched += 1
        for hit in search(payload):
            problems.append(f"{topic}: {hit}")
    return len(messages), searched, problems


def log_and_status() -> list[str]:
    from fleet_broker import Broker, device_home, klick_bin, klick_env, start_collector, start_fleet, wait_for
    from test_export import CARDS, make_device_db

    folder = Path(tempfile.mkdtemp(prefix="klick-fleet-privacy-"))
    problems = []
    with Broker(folder / "broker") as broker:
        home = folder / "hbg-07"
        device_home(broker, home, "hbg-07")
        (home / "cards.yaml").write_text(CARDS)
        make_device_db(home / "usage.db", "hbg-07", days=3)
        pilot, log = folder / "PILOT.sqlite", folder / "collector.log"
        collector = start_collector(broker, pilot, log=log)
        fleet = start_fleet(home)
        try:
            import sqlite3

            def all_there() -> bool:
                if not pilot.exists():
                    return False
                conn = sqlite3.connect(f"file:{pilot}?mode=ro", uri=True, timeout=5)
                try:
                    return bool(conn.execute("SELECT count(*) FROM answers").fetchone()[0])
                except sqlite3.Error:
                    return False
                finally:
                    conn.close()

            wait_for(all_there, 60, 0.2, what="the rows at the collector")
            time.sleep(1.0)
            for args in ((), ("--json",)):
                status = subprocess.run(
                    [klick_bin(), "fleet", "status", *broker.office_args("office"), *args],
                    capture_output=True,
                    env=klick_env(folder),
                    timeout=60,
                )
                problems += [f"status {' '.join(args)}: {h}" for h in search(status.stdout + status.stderr)]
        finally:
            for proc in (fleet, collector):
                proc.terminate()
                proc.wait(15)
        problems += [f"collector log: {h}" for h in search(log.read_bytes())]
    return problems


def run(quick: bool) -> list[tuple[str, str, str, bool]]:
    total, searched, found = every_test_message(quick)
    found_log = log_and_status()
    for line in (found + found_log)[:20]:
        print(f"    {line}", flush=True)
    return [
        ("fleet privacy: messages published in the fleet tests", f"{total:,} ({searched:,} searched)", "> 0", searched > 0),
        ("fleet privacy: personal data in them", f"{len(found)}", "0", not found),
        ("fleet privacy: personal data in the collector's log and status", f"{len(found_log)}", "0", not found_log),
    ]
