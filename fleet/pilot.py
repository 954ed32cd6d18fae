"""The collector's pilot database: the very file ``klick export merge`` writes, filled from the broker.

The data tables (events, sessions, answers) and meta are made by :func:`klick.export.create_export_db`,
so ``klick report`` and ``klick export merge`` read a collected file as they read a merged one,
and a device's rows are the same whether they came over the network or on a USB stick. Beside
them, tables named ``fleet_*`` hold the collector's bookkeeping (never personal):

``fleet_rows``     (device, table, src_id) → the sequence of the version stored. A row arrives
                   again when it changed on the device (a session closed, a prompt answered) with
                   a higher sequence, and replaces the stored one; a copy with the same or a lower
                   sequence (QoS 1 delivers at least once, and a restarted tablet sends again from
                   its mark) changes nothing. So each (device, table, sequence) is stored once.
``fleet_devices``  per device: how far its sequence is covered without a hole, withdrawal.
``fleet_rejects``  messages not stored, counted by reason.

Everything for one handful of messages happens in one transaction, committed before the
messages are acknowledged to the broker: a collector killed at any moment loses nothing.
"""

from __future__ import annotations

import datetime as _dt
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from fleet.wire import Batch
from klick import __version__
from klick.export import EXPORT_KIND, TABLES, ExportError, create_export_db
from klick.usage import iso

__all__ = ["PilotStore", "Applied", "PERSONAL_TABLES"]

log = logging.getLogger("klick.fleet.collect")

#: A hole that does not start filling within this many seconds is asked for again.
RESEND_AFTER_S = 30.0
#: The most rows one device may have in the pilot file: years of the busiest tablet's use (a few
#: hundred rows a day). A device past it is broken or hostile; its new rows are refused, so one
#: tablet cannot fill the office's disk (it could send a megabyte a message, as fast as the broker
#: takes them).
MAX_ROWS_PER_DEVICE = 1_000_000
#: What a withdrawal deletes: everything but reader health.
PERSONAL_TABLES = ("sessions", "answers")

_FLEET_DDL = (
    "CREATE TABLE fleet_rows (device TEXT NOT NULL, tbl TEXT NOT NULL, src_id INTEGER NOT NULL, seq INTEGER NOT NULL,"
    " PRIMARY KEY (device, tbl, src_id)) WITHOUT ROWID",
    "CREATE TABLE fleet_devices (device TEXT PRIMARY KEY, covered INTEGER NOT NULL DEFAULT 0,"
    " highest INTEGER NOT NULL DEFAULT 0, withdrawn_at TEXT, first_at TEXT, last_at TEXT,"
    " resend_from INTEGER, resend_at REAL)",
    "CREATE TABLE fleet_rejects (reason TEXT PRIMARY KEY, count INTEGER NOT NULL, last_at TEXT, last_topic TEXT)",
)


@dataclass
class Applied:
    stored: int = 0
    duplicates: int = 0
    refused: int = 0
    #: New rows refused because the device holds MAX_ROWS_PER_DEVICE already.
    over_limit: int = 0
    #: Ask the device to send again from this sequence (a hole was seen); None: nothing to ask.
    resend_from: int | None = None
    #: The hole is filled: clear the request.
    resend_done: bool = False


def _is_pilot_file(conn: sqlite3.Connection, tables: set[str]) -> bool:
    kind = conn.execute("SELECT value FROM meta WHERE key='kind'").fetchone() if "meta" in tables else None
    return kind is not None and kind[0] == EXPORT_KIND and {"fleet_rows", "fleet_devices", "fleet_rejects"} <= tables


class PilotStore:
    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.key_check = ""
        self.devices: set[str] = set()
        self._read_meta()
        #: Devices whose last rows were hashed with another export key: told once, not asked to resend.
        self.wrong_key: set[str] = set()
        #: Rows per device in the file, counted once per device and run, then kept up to date.
        self._held: dict[str, int] = {}
        self.max_rows_per_device = MAX_ROWS_PER_DEVICE
        #: Devices already named in the log for going past it.
        self.over_limit: set[str] = set()
        self._columns = {name: t.columns for name, t in TABLES.items()}
        self._upsert = {
            name: (
                f"INSERT INTO {name} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
                f" ON CONFLICT(device, src_id) DO UPDATE SET {', '.join(f'{c}=excluded.{c}' for c in cols[2:])}"
            )
            for name, cols in self._columns.items()
        }

    @classmethod
    def open(cls, path: str | Path, key_check: str = "") -> PilotStore:
        """Open a collector's pilot file, or make a new one. Raises :class:`ExportError` for any other file.

        ``key_check`` is the fingerprint of the pilot's export key when the office knows it
        (``pilot.export_key`` in its klick.yaml): then no tablet decides which key the file takes.
        Without it, the first rows to arrive decide, and a tablet set up with a wrong key (or a
        hostile one) that reports first would have every other tablet's rows refused.
        """
        p = Path(path)
        foreign = ExportError(
            f"{p} is not a pilot file written by 'klick fleet collect'; give --out a new file name "
            "(merge it with others afterwards with 'klick export merge')."
        )
        try:
            # The folder is not made: a typo would make folders anywhere (`klick fleet collect` checks --out).
            conn = sqlite3.connect(str(p), isolation_level=None, timeout=10.0)
        except sqlite3.Error as exc:
            raise ExportError(f"{p} cannot be used as the pilot file (SQLite says: {exc}).") from None
        try:
            # What an existing file is, before anything (the WAL pragma) changes it.
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables and not _is_pilot_file(conn, tables):
                raise foreign
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            if not tables:
                conn.execute("BEGIN IMMEDIATE")
                create_export_db(
                    conn,
                    {
                        "contents": "answers+usage",
                        "personal": "0",
                        "key_check": key_check,
                        "devices": "",
                        "created_at": iso(_dt.datetime.now(_dt.UTC).timestamp()),
                        "collected_by": f"klick fleet collect {__version__}",
                    },
                )
                for sql in _FLEET_DDL:
                    conn.execute(sql)
                conn.execute("COMMIT")
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if not _is_pilot_file(conn, tables):  # another process made something else at once
                    raise foreign
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise ExportError(f"{p} cannot be used as the pilot file (SQLite says: {exc}).") from None
        except ExportError:
            conn.close()
            raise
        store = cls(conn, p)
        if key_check and store.key_check and store.key_check != key_check:
            conn.close()
            raise ExportError(
                f"{p} holds rows hashed with another export key (key check {store.key_check}) than pilot.export_key in "
                f"this klick.yaml (key check {key_check}); give --out a new file name, or set the pilot's key."
            )
        if key_check and not store.key_check:
            store.key_check = key_check
            store._set_meta("key_check", key_check)
        return store

    def close(self) -> None:
        self.conn.close()

    # -- transactions ---------------------------------------------------------------------------
    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self.forget_counts()

    def _read_meta(self) -> None:
        """What the file says of the key and the devices: after a rollback, what it held before."""
        meta = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
        self.key_check = meta.get("key_check", "")
        self.devices = {d for d in meta.get("devices", "").split(",") if d}

    # -- storing ---------------------------------------------------------------------------------
    def reject(self, reason: str, topic: str) -> None:
        self.conn.execute(
            "INSERT INTO fleet_rejects (reason, count, last_at, last_topic) VALUES (?, 1, ?, ?)"
            " ON CONFLICT(reason) DO UPDATE SET count = count + 1, last_at = excluded.last_at, last_topic = excluded.last_topic",
            (reason, _now(), topic[:200]),
        )

    def apply(self, device: str, batch: Batch, *, repair: bool = True, now: float | None = None) -> Applied | str:
        """Store a batch from ``device``; a reason word (and nothing stored) when it may not be."""
        if not self.key_check:
            self.key_check = batch.key_check
            self._set_meta("key_check", batch.key_check)
            log.warning(
                "the pilot file takes rows hashed with %s's export key (key check %s); set pilot.export_key in the "
                "collector's klick.yaml so that no tablet decides this",
                device,
                batch.key_check,
            )
        elif batch.key_check != self.key_check:
            if device not in self.wrong_key:
                self.wrong_key.add(device)
                log.warning(
                    "%s's rows are hashed with another export key (key check %s, the pilot file's is %s) and are not "
                    "stored; set pilot.export_key on %s to the pilot's key, and its rows will be asked for again",
                    device,
                    batch.key_check,
                    self.key_check,
                    device,
                )
            return "wrong_key"
        self.wrong_key.discard(device)
        row = self.conn.execute(
            "SELECT covered, highest, withdrawn_at, resend_from, resend_at FROM fleet_devices WHERE device = ?", (device,)
        ).fetchone()
        if row is None:
            self.conn.execute("INSERT INTO fleet_devices (device, first_at) VALUES (?, ?)", (device, _now()))
            row = (0, 0, None, None, None)
        if batch.rows and device not in self.devices:
            self.devices.add(device)
            self._set_meta("devices", ",".join(sorted(self.devices)))
        covered, highest, withdrawn, resend_from, resend_at = row
        result = Applied()
        for table, seq, values in batch.rows:
            src_id = values[1]
            if withdrawn and (table in PERSONAL_TABLES or values[3] != "reader_status"):
                result.refused += 1
                continue
            held = self.conn.execute(
                "SELECT seq FROM fleet_rows WHERE device = ? AND tbl = ? AND src_id = ?", (device, table, src_id)
            ).fetchone()
            if held is not None and held[0] >= seq:
                result.duplicates += 1
                continue
            if held is None and self._rows_held(device) >= self.max_rows_per_device:
                result.over_limit += 1
                continue
            self.conn.execute(self._upsert[table], values)
            if held is None:
                self._held[device] += 1
            self.conn.execute(
                "INSERT OR REPLACE INTO fleet_rows (device, tbl, src_id, seq) VALUES (?, ?, ?, ?)", (device, table, src_id, seq)
            )
            result.stored += 1
        self._cover(device, covered, highest, batch.after, batch.upto, resend_from, resend_at, result, repair, now)
        return result

    def heard(self, device: str, acked: int, *, repair: bool = True, now: float | None = None) -> Applied:
        """The device says the broker acknowledged everything up to ``acked``: a hole shows if we lack some."""
        result = Applied()
        row = self.conn.execute(
            "SELECT covered, highest, resend_from, resend_at FROM fleet_devices WHERE device = ?", (device,)
        ).fetchone()
        if row is None:
            self.conn.execute("INSERT INTO fleet_devices (device, first_at) VALUES (?, ?)", (device, _now()))
            row = (0, 0, None, None)
        covered, highest, resend_from, resend_at = row
        # after > upto: no stretch covered, only the highest number learnt. A device whose rows
        # carry another key is not asked to send them again: it would send them all every 30 s.
        repair = repair and device not in self.wrong_key
        self._cover(device, covered, highest, acked + 1, acked, resend_from, resend_at, result, repair, now)
        return result

    def _cover(self, device, covered, highest, after, upto, resend_from, resend_at, result, repair, now) -> None:
        """Extend the stretch covered without a hole; ask for the rest when a hole stays open."""
        highest = max(highest, upto)
        if after <= covered:
            covered = max(covered, upto)
        when = now if now is not None else _dt.datetime.now(_dt.UTC).timestamp()
        if repair and covered < highest:
            if resend_from is None or (resend_from == covered and when - (resend_at or 0) > RESEND_AFTER_S):
                result.resend_from = covered
                resend_from, resend_at = covered, when
            elif resend_from != covered:  # the hole is filling: wait for it
                resend_from, resend_at = covered, when
        elif resend_from is not None:
            resend_from, resend_at = None, None
            result.resend_done = True
        self.conn.execute(
            "UPDATE fleet_devices SET covered = ?, highest = ?, last_at = ?, resend_from = ?, resend_at = ? WHERE device = ?",
            (covered, highest, _now(), resend_from, resend_at, device),
        )

    def overdue(self, now: float | None = None) -> list[tuple[str, int]]:
        """Holes asked for ``RESEND_AFTER_S`` ago that have not begun to fill: (device, from) to ask again.

        Hearing from a device is not enough to ask again: one that has sent all it has is quiet until
        its next state message (five minutes), and rows the broker dropped while it resent them
        would wait that long. The collector calls this every few seconds instead.
        """
        when = now if now is not None else _dt.datetime.now(_dt.UTC).timestamp()
        rows = self.conn.execute(
            "SELECT device, covered FROM fleet_devices WHERE resend_from IS NOT NULL AND resend_from = covered"
            " AND covered < highest AND resend_at < ?",
            (when - RESEND_AFTER_S,),
        ).fetchall()
        due = [(device, covered) for device, covered in rows if device not in self.wrong_key]
        self.conn.executemany("UPDATE fleet_devices SET resend_at = ? WHERE device = ?", [(when, d) for d, _ in due])
        return due

    def _rows_held(self, device: str) -> int:
        if device not in self._held:
            self._held[device] = self.conn.execute("SELECT count(*) FROM fleet_rows WHERE device = ?", (device,)).fetchone()[0]
        return self._held[device]

    def forget_counts(self) -> None:
        """Count again from the file, and read its key and devices again (after a rollback or a deletion):
        a key or device set in a transaction that was rolled back would never reach the file's meta."""
        self._held.clear()
        self._read_meta()

    def withdraw(self, device: str, at: str) -> int:
        """Consent withdrawn: delete the device's personal rows (all but reader health); returns how many."""
        self.forget_counts()
        gone = self.conn.execute("DELETE FROM events WHERE device = ? AND kind != 'reader_status'", (device,)).rowcount
        for table in PERSONAL_TABLES:
            gone += self.conn.execute(f"DELETE FROM {table} WHERE device = ?", (device,)).rowcount
            self.conn.execute("DELETE FROM fleet_rows WHERE device = ? AND tbl = ?", (device, table))
        self.conn.execute(
            "DELETE FROM fleet_rows WHERE device = ? AND tbl = 'events' AND src_id NOT IN (SELECT src_id FROM events WHERE device = ?)",
            (device, device),
        )
        self.conn.execute("INSERT OR IGNORE INTO fleet_devices (device, first_at) VALUES (?, ?)", (device, _now()))
        self.conn.execute("UPDATE fleet_devices SET withdrawn_at = ? WHERE device = ?", (at or _now(), device))
        return gone

    # -- reading ---------------------------------------------------------------------------------
    def rejects(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT reason, count FROM fleet_rejects ORDER BY reason").fetchall())

    def counts(self) -> dict[str, int]:
        return {t: self.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}

    def _set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def _now() -> str:
    return iso(_dt.datetime.now(_dt.UTC).timestamp())
