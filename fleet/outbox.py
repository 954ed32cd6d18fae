"""The tablet's side of store and forward: what in usage.db has not reached the broker yet.

``klick fleet`` only reads what the launcher wrote, and writes one thing of its own: the last
sequence the broker acknowledged (meta ``fleet:acked``), after the PUBACK, with a short busy
timeout so it never holds the launcher up. Reads are short transactions (one snapshot per
batch), so the launcher's writes and checkpoints never wait for the network.

What may leave is decided by :func:`klick.export.pseudonymise` (the rule ``klick export`` uses)
and by consent: without it (``pilot.enrolled`` false, or a withdrawal recorded in usage.db) only
reader health leaves.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import shutil
import sqlite3
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from fleet.wire import Batch, row_problem
from klick.export import TABLES, pseudonymise
from klick.usage import DB_KIND, FLEET_ACKED, FLEET_MAX_BACKLOG_DAYS, SCHEMA_VERSION, consent_holds, parse_date

__all__ = ["Outbox", "NotReady", "Health", "WITHDRAWN_SENT"]

log = logging.getLogger("klick.fleet")

#: meta key: the withdrawn message was acknowledged by the broker (it is sent once).
WITHDRAWN_SENT = "fleet:withdrawn_sent"
#: The table whose row ids and sequence numbers each export table carries.
BASE = {"events": "events", "sessions": "sessions", "answers": "prompts"}


class NotReady(Exception):
    """usage.db is not there yet, or not a version this Klick reads; the daemon waits and tries again."""


@dataclass(frozen=True)
class Health:
    reader_state: str | None
    reader_detail: str | None
    reader_at: str | None
    last_card_at: str | None
    backlog: int
    backlog_oldest_at: str | None
    last_seq: int
    disk_free_mb: int | None


class Outbox:
    """usage.db as ``klick fleet`` sees it. One per daemon; used from one thread."""

    def __init__(
        self,
        path: str | Path,
        card: Callable[[str | None], str | None],
        *,
        enrolled: bool,
        free_text: bool,
        consent_date: _dt.date | None = None,
        busy_ms: int = 250,
        device: str | None = None,
    ) -> None:
        self.path = Path(path)
        #: The device name rows must carry to be taken by the collector (None: not checked).
        self.device = device
        #: Earlier device names whose rows were left out (each said once in the log).
        self.foreign: set[str] = set()
        self.card = card
        self.enrolled = enrolled
        self.consent_date = consent_date
        self.free_text = free_text
        self.busy_ms = busy_ms
        self.conn: sqlite3.Connection | None = None
        #: (st_dev, st_ino) of the file as it was opened: the launcher may move a damaged usage.db
        #: aside and `klick pilot withdraw` may delete one; the open handle would read the old file on.
        self.opened: tuple[int, int] | None = None
        #: Rows left out because they could not be sent as they are (damaged), and the last one's why.
        self.skipped = 0
        self.last_skipped: str | None = None

    # -- opening ------------------------------------------------------------------------------
    def open(self) -> None:
        """Connect, and check the file is a usage database with the sequence. Raises :class:`NotReady`."""
        if self.conn is not None:
            return
        try:
            # Taken before connecting: a file swapped in between is seen as replaced next turn.
            st = os.stat(self.path)
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            raise NotReady(f"{self.path} does not exist yet (the launcher makes it when it starts)")
        try:
            # No create: a missing file must not be made here, with the wrong owner and no schema.
            conn = sqlite3.connect(
                f"file:{quote(str(self.path.resolve()))}?mode=rw", uri=True, isolation_level=None, timeout=self.busy_ms / 1000
            )
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            kind = conn.execute("SELECT value FROM meta WHERE key='kind'").fetchone() if version else None
        except sqlite3.Error as exc:
            raise NotReady(f"{self.path} cannot be read ({exc})") from None
        if kind is None or kind[0] != DB_KIND:
            conn.close()
            raise NotReady(f"{self.path} is not a Klick usage database")
        if version < 2:
            conn.close()
            raise NotReady(f"{self.path} is still at version {version}; the launcher updates it when it starts")
        if version > SCHEMA_VERSION:
            conn.close()
            raise NotReady(f"{self.path} was written by a newer Klick (version {version}); update Klick")
        self.conn = conn
        self.opened = (st.st_dev, st.st_ino)

    def replaced(self) -> bool:
        """True when the open file is no longer the one at ``path`` (moved aside, deleted, swapped)."""
        if self.conn is None:
            return False
        try:
            st = os.stat(self.path)
        except OSError:
            return True
        return (st.st_dev, st.st_ino) != self.opened

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
            self.opened = None

    # -- marks ----------------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self._c().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def acked(self) -> int:
        try:
            return int(self.meta(FLEET_ACKED) or 0)
        except ValueError:
            return 0

    def set_meta(self, values: dict[str, str]) -> bool:
        """Write marks in one short transaction; False (try later) when the launcher holds the lock."""
        try:
            conn = self._c()
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", list(values.items()))
            conn.execute("COMMIT")
            return True
        except sqlite3.OperationalError:
            if self.conn is not None and self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            return False

    def set_acked(self, seq: int, max_backlog_days: int) -> bool:
        return self.set_meta({FLEET_ACKED: str(seq), FLEET_MAX_BACKLOG_DAYS: str(max_backlog_days)})

    def forget_marks(self) -> bool:
        """The fleet was switched off: retention goes back to the plain rule (if there is a usage.db)."""
        try:
            self._c().execute("DELETE FROM meta WHERE key IN (?, ?)", (FLEET_ACKED, FLEET_MAX_BACKLOG_DAYS))
            return True
        except (NotReady, sqlite3.Error):
            return False
        finally:
            self.close()

    # -- consent --------------------------------------------------------------------------------
    def consent(self) -> str:
        """enrolled, not_enrolled or withdrawn, by the launcher's own rule (:func:`klick.usage.consent_holds`).

        ``klick pilot withdraw`` records the day of withdrawal in the meta table; it outlasts
        ``pilot.enrolled: true`` until a later ``consent_date``.
        """
        withdrawn = self.withdrawn_at()
        if consent_holds(self.enrolled, self.consent_date, parse_date(withdrawn), _dt.date.today()):
            return "enrolled"
        return "withdrawn" if withdrawn is not None else "not_enrolled"

    def withdrawn_at(self) -> str | None:
        row = self._c().execute("SELECT value FROM meta WHERE key = 'withdrawn_on'").fetchone()
        return str(row[0])[:40] if row and row[0] else None

    # -- rows -----------------------------------------------------------------------------------
    def read_batch(self, after: int, key_check: str, limit: int = 500) -> Batch | None:
        """The rows after ``after`` that may leave, at most ``limit``; None when nothing is new.

        One snapshot: ``upto`` is the last sequence it has considered, so (after, upto] holds every
        row that may leave, and the next batch starts at ``upto``.
        """
        conn = self._c()
        conn.execute("BEGIN")
        try:
            last = conn.execute("SELECT last FROM row_seq WHERE id = 1").fetchone()[0]
            if last <= after:
                return None
            personal = self.consent() == "enrolled"
            found: list[tuple[int, str, tuple]] = []
            for name, table in TABLES.items():
                if not personal and name != "events":
                    continue
                where = "" if personal else " AND q.kind = 'reader_status'"
                sql = (
                    f"SELECT b.seq, q.* FROM ({table.query}) AS q JOIN {BASE[name]} AS b ON b.id = q.id"
                    f" WHERE b.seq > ?{where} ORDER BY b.seq LIMIT ?"
                )
                for seq, *raw in conn.execute(sql, (after, limit)):
                    found.append((seq, name, tuple(raw)))
        finally:
            conn.execute("COMMIT")
        found.sort(key=lambda r: r[0])
        upto = last
        if len(found) >= limit:
            found = found[:limit]
            upto = found[-1][0]
        rows = []
        for seq, name, raw in found:
            try:
                values = pseudonymise(name, raw, self.card, free_text=self.free_text)
                problem = row_problem(name, values)
            except Exception as exc:  # a damaged row (say a number where a card ID belongs)
                problem = f"{name} row {raw[0]} cannot be read ({type(exc).__name__})"
            if not problem and self.device is not None and values[0] != self.device:
                # Written before pilot.device_name was set (or changed): the collector takes rows of
                # this device only, on this device's topic. Left here, for `klick export`.
                self.skipped += 1
                other = str(values[0])[:64]
                if other not in self.foreign:
                    self.foreign.add(other)
                    self.last_skipped = (
                        f"rows written under the earlier device name {other!r} are not sent (they are not "
                        f"{self.device}'s); klick export still has them"
                    )
                    log.warning("klick fleet: %s", self.last_skipped)
                continue
            if problem:
                self.skipped += 1
                self.last_skipped = f"a damaged row was not sent: {problem}"
                log.warning("klick fleet: %s", self.last_skipped)
                continue
            rows.append((name, seq, values))
        return Batch(key_check, after, upto, tuple(rows))

    # -- health ---------------------------------------------------------------------------------
    def signature(self) -> tuple:
        """Cheap to read every second: changes when the reader's state or the last card use does."""
        conn = self._c()
        marks = conn.execute(
            "SELECT (SELECT max(id) FROM events WHERE kind = 'reader_status'), (SELECT max(id) FROM events WHERE kind = 'card_present')"
        ).fetchone()
        return (*marks, self.consent())

    def health(self, acked: int) -> Health:
        conn = self._c()
        conn.execute("BEGIN")
        try:
            reader = conn.execute(
                "SELECT outcome, detail, at FROM events WHERE kind = 'reader_status' ORDER BY id DESC LIMIT 1"
            ).fetchone() or (None, None, None)
            personal = self.consent() == "enrolled"
            last_card = None
            if personal:
                row = conn.execute("SELECT at FROM events WHERE kind = 'card_present' ORDER BY id DESC LIMIT 1").fetchone()
                last_card = row[0] if row else None
            only = "" if personal else " AND kind = 'reader_status'"
            backlog = conn.execute(f"SELECT count(*) FROM events WHERE seq > ?{only}", (acked,)).fetchone()[0]
            row = conn.execute(f"SELECT at FROM events WHERE seq > ?{only} ORDER BY seq LIMIT 1", (acked,)).fetchone()
            oldest = row[0] if row else None
            if personal:
                for table in ("sessions", "prompts"):
                    backlog += conn.execute(f"SELECT count(*) FROM {table} WHERE seq > ?", (acked,)).fetchone()[0]
            last = conn.execute("SELECT last FROM row_seq WHERE id = 1").fetchone()[0]
        finally:
            conn.execute("COMMIT")
        try:
            free = shutil.disk_usage(self.path.parent).free // (1024 * 1024)
        except OSError:
            free = None
        return Health(reader[0], reader[1], reader[2], last_card, backlog, oldest, last, free)

    def _c(self) -> sqlite3.Connection:
        if self.conn is None:
            self.open()
        assert self.conn is not None
        return self.conn
