"""A tablet that starts a new usage.db keeps every row it ever wrote, at the collector and in a merge.

The launcher moves a damaged usage.db aside and starts a new one; `klick pilot withdraw` deletes a
damaged one and starts a new one. The collector and `klick export merge` know a row by
(device, src_id), and the collector also by the tablet's sequence; a new file numbers both from the
clock, above every number an earlier file reached, so its rows are never taken for old ones.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import sqlite_utils
from fleet_broker import Broker, device_home, have_mosquitto, klick_env, start_collector, start_fleet, wait_for
from test_export import CARDS, T0, make_device_db
from test_fleet import covered, last_seq, rows_of, stop, usb_pilot

from klick.usage import SCHEMA_VERSION, UsageLog, iso, withdraw_consent
from klick.usage_file import _MIGRATIONS

DAY = 86400.0
DATA_TABLES = ("events", "sessions", "answers")
needs_mosquitto = pytest.mark.skipif(not have_mosquitto(), reason="mosquitto is not installed (make test installs it)")


def version_2_file(path: Path) -> Path:
    """An empty usage.db as Klick made it before version 3: every number starts at 1."""
    conn = sqlite3.connect(path, isolation_level=None)
    db = sqlite_utils.Database(conn)
    _MIGRATIONS[1](db)
    _MIGRATIONS[2](db)
    conn.execute("INSERT INTO meta VALUES ('kind', 'klick-usage')")
    conn.execute("PRAGMA user_version=2")
    conn.close()
    return path


def damage(path: Path) -> None:
    """What an SD card that lost a page does: the first page reads as erased flash."""
    with open(path, "r+b") as fh:
        fh.write(b"\x00" * 4096)


def ids(path: Path, table: str) -> list[int]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute(f"SELECT id FROM {table} ORDER BY id")]
    finally:
        conn.close()


def klick(home: Path, *args: str) -> None:
    done = subprocess.run(
        [str(Path(os.sys.executable).parent / "klick"), *args], env=klick_env(home), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


# --- the numbers in the file ---------------------------------------------------------------------


def test_a_new_usage_db_numbers_its_rows_and_sequence_from_the_clock(tmp_path):
    path = tmp_path / "usage.db"
    log = UsageLog.open(path, device="hbg-1", enrolled=True, now=lambda: T0)
    log.record("card_present", uid="04A2B3C4D5E680", action_type="web")
    assert log.flush(10)
    base = int(T0 * 1000)
    assert ids(path, "events")[0] > base and ids(path, "sessions")[0] > base
    assert log.conn.execute("SELECT min(seq) FROM events").fetchone()[0] > base
    log.close()


def test_a_file_made_before_version_3_keeps_its_numbers_and_never_gives_an_id_twice(tmp_path):
    path = version_2_file(tmp_path / "usage.db")
    conn = sqlite3.connect(path, isolation_level=None)
    for i in range(3):
        conn.execute("INSERT INTO sessions(device, uid, started_at) VALUES ('hbg-1', 'X', ?)", (iso(T0 + i),))
    before = conn.execute("SELECT id, seq FROM sessions ORDER BY id").fetchall()
    conn.close()
    assert [i for i, _ in before] == [1, 2, 3]
    clock = [T0 + 400 * DAY]
    log = UsageLog.open(path, device="hbg-1", enrolled=True, retention_days=30, now=lambda: clock[0])
    assert log.flush(10)
    assert log.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    # Retention emptied the table (its rows are a year old); the next session must not be number 1 again.
    assert ids(path, "sessions") == []
    log.record("card_present", uid="04A2B3C4D5E680", action_type="web")
    assert log.flush(10)
    (new_id, new_seq), *_ = log.conn.execute("SELECT id, seq FROM sessions").fetchall()
    assert new_id == 4 and new_seq > max(s for _, s in before)
    triggers = {r[0] for r in log.conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert len(triggers) == 9  # the sequence's triggers, made again with the tables
    log.close()


def test_a_migrated_file_keeps_its_rows_ids_and_sequence_numbers(tmp_path):
    path = version_2_file(tmp_path / "usage.db")
    conn = sqlite3.connect(path, isolation_level=None)
    for i in range(4):
        conn.execute("INSERT INTO events(at, device, kind) VALUES (?, 'hbg-1', 'reader_status')", (iso(T0 + i),))
    conn.execute("UPDATE events SET outcome = 'lost' WHERE id = 2")
    before = conn.execute("SELECT * FROM events ORDER BY id").fetchall()
    last = conn.execute("SELECT last FROM row_seq").fetchone()[0]
    conn.close()
    log = UsageLog.open(path, device="hbg-1", enrolled=True, retention_days=365, now=lambda: T0 + 10)
    assert log.flush(10)
    assert log.conn.execute("SELECT * FROM events ORDER BY id").fetchall() == before
    assert log.conn.execute("SELECT last FROM row_seq").fetchone()[0] == last
    log.close()


def test_withdrawing_consent_on_a_damaged_file_starts_one_numbered_from_the_clock(tmp_path):
    path = make_device_db(tmp_path / "usage.db", "hbg-1", days=1)
    damage(path)
    start = time.time()
    done = withdraw_consent(path)
    assert done.damaged_deleted
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT last FROM row_seq").fetchone()[0] >= int(start * 1000)
        numbered = dict(conn.execute("SELECT name, seq FROM sqlite_sequence"))
    finally:
        conn.close()
    assert set(numbered) == {"events", "sessions", "prompts", "answers"}
    assert min(numbered.values()) >= int(start * 1000)


# --- end to end: the collector and klick export merge ---------------------------------------------


@needs_mosquitto
def test_the_collector_keeps_every_row_of_a_replaced_usage_db_and_takes_every_new_one(tmp_path):
    broker = Broker(tmp_path / "broker")
    broker.start()
    home = tmp_path / "hbg-07"
    device_home(broker, home, "hbg-07")
    (home / "cards.yaml").write_text(CARDS)
    usage = home / "usage.db"
    make_device_db(version_2_file(usage), "hbg-07", days=2)  # a file from before version 3: numbered from 1
    assert ids(usage, "events")[0] == 1
    pilot = tmp_path / "office" / "PILOT.sqlite"
    pilot.parent.mkdir()
    collector = start_collector(broker, pilot, log=tmp_path / "collector.log")
    try:
        fleet = start_fleet(home)
        try:
            target = last_seq(usage)
            wait_for(lambda: covered(pilot, "hbg-07") >= target, 60, what="the collector to hold the first file's rows")
        finally:
            stop(fleet)
        old = {t: rows_of(pilot, t) for t in DATA_TABLES}
        # The SD card loses a page; the launcher moves the file aside and starts a new one.
        damage(usage)
        make_device_db(usage, "hbg-07", days=2, start=T0 + 10 * DAY)
        assert list(home.glob("usage.db.damaged-*"))
        new = usb_pilot(home, tmp_path / "NEW.sqlite")
        fleet = start_fleet(home)
        try:
            target = last_seq(usage)
            wait_for(lambda: covered(pilot, "hbg-07") >= target, 60, what="the collector to hold the new file's rows")
        finally:
            stop(fleet)
    finally:
        stop(collector)
        broker.stop(kill=True)
    for table in DATA_TABLES:
        added = rows_of(new, table)
        assert old[table] and added, table
        assert rows_of(pilot, table) == old[table] + added, table
    conn = sqlite3.connect(f"file:{pilot}?mode=ro", uri=True)
    try:
        covered_to, highest, resend_from = conn.execute(
            "SELECT covered, highest, resend_from FROM fleet_devices WHERE device = 'hbg-07'"
        ).fetchone()
    finally:
        conn.close()
    # The new file's first batch said after=0: taken, with no hole asked for that could never fill.
    assert covered_to == highest == last_seq(usage) and resend_from is None


def test_klick_export_merge_keeps_every_row_of_a_replaced_usage_db(tmp_path):
    home = tmp_path / "hbg-07"
    home.mkdir()
    (home / "klick.yaml").write_text('pilot:\n  enrolled: true\n  device_name: hbg-07\n  export_key: "the pilot secret 2026"\n')
    (home / "cards.yaml").write_text(CARDS)
    usage = home / "usage.db"
    make_device_db(version_2_file(usage), "hbg-07", days=2)
    old = usb_pilot(home, tmp_path / "OLD.sqlite")
    damage(usage)
    make_device_db(usage, "hbg-07", days=2, start=T0 + 10 * DAY)
    new = usb_pilot(home, tmp_path / "NEW.sqlite")
    both = tmp_path / "BOTH.sqlite"
    klick(home, "export", "merge", str(old), str(new), "--out", str(both))
    for table in DATA_TABLES:
        assert rows_of(old, table) and rows_of(new, table), table
        assert rows_of(both, table) == rows_of(old, table) + rows_of(new, table), table
