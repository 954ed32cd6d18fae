"""The usage database as a file: its schema, how it is recognised without writing, damage, withdrawal.

:mod:`klick.usage` keeps the log itself (the writer thread, sessions, retention); this module holds
what works on the file whoever opens it, the launcher's log or ``klick pilot withdraw``:

* the schema and its migrations (``PRAGMA user_version``; a newer file is refused), and the
  numbering of a new file from the clock;
* recognising a file read-only, before any pragma that writes, so a foreign or newer file is left
  byte for byte as it was; and telling damage (``quick_check``, a blank first page) from a lock;
* moving a damaged file aside as ``usage.db.damaged-<time>`` with its -wal/-shm;
* deleting every personal row when consent is withdrawn, so that they are gone from the file.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:  # imported where a migration needs it: see prepare()
    import sqlite_utils

__all__ = [
    "SCHEMA_VERSION",
    "DB_KIND",
    "SEQ_TABLES",
    "FLEET_ACKED",
    "FLEET_MAX_BACKLOG_DAYS",
    "PERSONAL_TABLES",
    "UI_BUSY_S",
    "UsageDbError",
    "FileState",
    "Withdrawal",
    "iso",
    "from_iso",
    "parse_date",
    "connect",
    "set_pragmas",
    "recognise",
    "prepare",
    "is_busy",
    "is_damage",
    "inspect_file",
    "damaged_copies",
    "move_aside",
    "remove_with_companions",
    "purge_personal",
    "has_personal_rows",
    "checkpoint",
    "withdraw_consent",
]

log = logging.getLogger("klick.usage")

#: Version of the usage database layout. Raise it only together with a new entry in _MIGRATIONS.
SCHEMA_VERSION = 3
#: Written to the meta table so that a foreign SQLite file is recognised as such.
DB_KIND = "klick-usage"

#: Tables that hold only personal rows; withdrawing consent empties them (events keep reader health).
PERSONAL_TABLES = ("sessions", "answers", "prompts", "feedback_state")
#: The longest a call on the launcher's thread waits for SQLite's lock: then it fails softly.
UI_BUSY_S = 0.25
_SQLITE_MAGIC = b"SQLite format 3\x00"
_BUSY_CODES = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED (and their extended codes)
_DAMAGE_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB


class UsageDbError(Exception):
    """The usage database cannot be used; the message is one sentence for an installer."""


# --- time ---------------------------------------------------------------------------------------


def iso(t: float) -> str:
    """UTC, fixed width, so that text order is time order and SQL can compare it."""
    stamp = _dt.datetime.fromtimestamp(t, _dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def from_iso(text: str) -> float:
    return _dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=_dt.UTC).timestamp()


def parse_date(text: Any) -> _dt.date | None:
    try:
        return _dt.date.fromisoformat(str(text)[:10]) if text else None
    except ValueError:
        return None


# --- schema -------------------------------------------------------------------------------------


def _migrate_to_1(db: sqlite_utils.Database) -> None:
    db.table("meta").create({"key": str, "value": str}, pk="key", not_null={"value"})
    db.table("events").create(
        {"id": int, "at": str, "device": str, "kind": str, "uid": str, "action_type": str, "outcome": str, "detail": str},
        pk="id",
        not_null={"at", "device", "kind"},
    )
    db.table("events").create_index(["at"])
    db.table("events").create_index(["kind", "id"])
    db.table("sessions").create(
        {
            "id": int,
            "device": str,
            "uid": str,
            "action_type": str,
            "started_at": str,
            "ended_at": str,
            "duration_s": float,
            "end_reason": str,
        },
        pk="id",
        not_null={"device", "uid", "started_at"},
    )
    db.table("sessions").create_index(["started_at"])
    db.table("prompts").create(
        {
            "id": int,
            "device": str,
            "question_id": str,
            "parent_id": int,
            "trigger": str,
            "uid": str,
            "action_type": str,
            "state": str,
            "created_at": str,
            "expires_at": str,
            "shown_at": str,
            "snoozed_until": str,
            "closed_at": str,
        },
        pk="id",
        not_null={"device", "question_id", "trigger", "state", "created_at", "expires_at"},
    )
    db.table("prompts").create_index(["state"])
    db.table("answers").create(
        {"id": int, "prompt_id": int, "device": str, "question_id": str, "value": str, "text": str, "at": str},
        pk="id",
        not_null={"prompt_id", "device", "question_id", "at"},
    )
    db.table("answers").create_index(["at"])
    # Cursors and use counters of the questionnaire engine; updated_at lets retention reach them.
    db.table("feedback_state").create({"key": str, "value": str, "updated_at": str}, pk="key", not_null={"value"})


#: The tables whose rows leave the device (through ``klick fleet``), each numbered by the sequence.
SEQ_TABLES = ("events", "sessions", "prompts", "answers")
#: meta keys ``klick fleet`` keeps: the last sequence the broker acknowledged, and how long rows
#: it has not sent yet are kept past retention (its ``fleet.max_backlog_days``).
FLEET_ACKED, FLEET_MAX_BACKLOG_DAYS = "fleet:acked", "fleet:max_backlog_days"


def _migrate_to_2(db: sqlite_utils.Database) -> None:
    """The per-device sequence: every row written or changed gets the next number.

    ``klick fleet`` sends the rows after the last number the broker acknowledged, so a session
    closed (or a prompt answered) after it was sent is sent again. SQLite triggers keep the
    numbers, so no write path in Python has to remember to. Rows already there are numbered in
    table and id order.
    """
    conn = db.conn
    conn.execute("CREATE TABLE row_seq (id INTEGER PRIMARY KEY CHECK (id = 1), last INTEGER NOT NULL)")
    conn.execute("INSERT INTO row_seq (id, last) VALUES (1, 0)")
    bump = "UPDATE row_seq SET last = last + 1 WHERE id = 1"
    current = "(SELECT last FROM row_seq WHERE id = 1)"
    for table in SEQ_TABLES:
        conn.execute(f"ALTER TABLE {table} ADD COLUMN seq INTEGER")
        # Gaps are fine (numbers need only grow), so the row id does: one pass, no counting.
        conn.execute(f"UPDATE {table} SET seq = {current} + id")
        conn.execute(f"UPDATE row_seq SET last = last + coalesce((SELECT max(id) FROM {table}), 0) WHERE id = 1")
        conn.execute(f"CREATE INDEX {table}_seq ON {table}(seq)")
        conn.execute(
            f"CREATE TRIGGER {table}_seq_insert AFTER INSERT ON {table} BEGIN {bump}; UPDATE {table} SET seq = {current} WHERE id = NEW.id; END"
        )
        # WHEN: the trigger's own UPDATE of seq must not number the row again.
        conn.execute(
            f"CREATE TRIGGER {table}_seq_update AFTER UPDATE ON {table} WHEN NEW.seq IS OLD.seq"
            f" BEGIN {bump}; UPDATE {table} SET seq = {current} WHERE id = NEW.id; END"
        )
    # An answer changes what its prompt's row says (the export joins them): send the prompt again.
    conn.execute(
        f"CREATE TRIGGER answers_seq_prompt AFTER INSERT ON answers BEGIN {bump};"
        f" UPDATE prompts SET seq = {current} WHERE id = NEW.prompt_id; END"
    )


def _migrate_to_3(db: sqlite_utils.Database) -> None:
    """Row ids are never given twice (AUTOINCREMENT), so that a row's id names it for good.

    A row's id leaves the device as its ``src_id``, and the collector and ``klick export merge``
    know a row by (device, src_id). Without AUTOINCREMENT SQLite starts again at 1 in a table that
    retention or a withdrawal emptied. SQLite cannot add AUTOINCREMENT to a table, so each is
    copied into a new one (ids, sequence numbers and all); its indexes and triggers are made again.
    """
    conn = db.conn
    names = ", ".join(f"'{t}'" for t in SEQ_TABLES)
    again = conn.execute(
        f"SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND tbl_name IN ({names}) AND sql IS NOT NULL"
    ).fetchall()
    for kind, name, _ in again:
        if kind == "trigger":  # before any table goes: answers_seq_prompt names prompts
            conn.execute(f'DROP TRIGGER "{name}"')
    for table in SEQ_TABLES:
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()[0]
        columns, n = re.subn(r"\bINTEGER PRIMARY KEY\b", "INTEGER PRIMARY KEY AUTOINCREMENT", sql[sql.index("(") :], count=1)
        if n != 1:
            raise UsageDbError(f"the {table} table of this usage database has no row id; move the file aside.")
        conn.execute(f"CREATE TABLE {table}_v3 {columns}")
        conn.execute(f"INSERT INTO {table}_v3 SELECT * FROM {table}")
        conn.execute(f"DROP TABLE {table}")
        conn.execute(f"ALTER TABLE {table}_v3 RENAME TO {table}")
    for _, _, sql in sorted(again, key=lambda r: r[0]):  # indexes first, then triggers
        conn.execute(sql)


def _number_from(conn: sqlite3.Connection, now: float) -> int:
    """Number a new file's rows (their ids and the sequence) from the clock; returns the base.

    A tablet that starts a new usage.db (a damaged one moved aside, or deleted by a withdrawal)
    would otherwise number from 1 again, and the collector and ``klick export merge``, who know a
    row by (device, src_id), would take its rows for ones they hold. Milliseconds since 1970 are
    far above any number a file made earlier reached (hundreds of rows a day, 86 million ms) and
    far below 2**62, the largest number the wire takes.
    """
    base = max(0, int(now * 1000))
    for table in SEQ_TABLES:
        conn.execute("DELETE FROM sqlite_sequence WHERE name = ?", (table,))
        conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, base))
    conn.execute("UPDATE row_seq SET last = ? WHERE id = 1", (base,))
    return base


#: _MIGRATIONS[n] brings a database from version n-1 to n. Never edit one that has shipped.
_MIGRATIONS: dict[int, Callable[[sqlite_utils.Database], None]] = {1: _migrate_to_1, 2: _migrate_to_2, 3: _migrate_to_3}


def _code(exc: BaseException) -> int:
    return (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def is_busy(exc: BaseException) -> bool:
    """Another connection holds the lock: worth waiting for, not a fault of the file."""
    if _code(exc) in _BUSY_CODES:
        return True
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def is_damage(exc: BaseException) -> bool:
    if _code(exc) in _DAMAGE_CODES:
        return True
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def _lenient(raw: bytes) -> str:
    """Text from the file as text, even where a damaged byte broke its UTF-8."""
    return raw.decode("utf-8", "replace")


def connect(path: Path, busy_s: float) -> sqlite3.Connection:
    """A connection; nothing is read yet (that may have to wait for another program's lock)."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=busy_s)
    conn.text_factory = _lenient
    return conn


def set_pragmas(conn: sqlite3.Connection) -> None:
    """Per connection, writing nothing: each commit reaches the disk, and deleted rows are overwritten."""
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA secure_delete=ON")


def _not_ours(path: Path) -> UsageDbError:
    return UsageDbError(f"{path} is an SQLite file, but not a Klick usage database; move it aside and Klick starts a new one.")


def _newer(path: Path, version: int) -> UsageDbError:
    return UsageDbError(
        f"{path} was written by a newer Klick (database version {version}; this Klick knows up to "
        f"{SCHEMA_VERSION}). Update Klick on this device, or move the file aside."
    )


def recognise(conn: sqlite3.Connection, path: Path) -> tuple[int, _dt.date | None]:
    """(version, withdrawal date) of a usage database, read without writing anything.

    Raises :class:`UsageDbError` for a foreign or newer file, and lets sqlite3 errors through.
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    kinds = dict(conn.execute("SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view')").fetchall())
    if version > SCHEMA_VERSION:
        raise _newer(path, version)
    if version == 0:
        if any(not name.startswith("sqlite_") for name in kinds):
            raise _not_ours(path)
        return 0, None
    if kinds.get("meta") != "table":
        raise _not_ours(path)
    meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('kind', 'withdrawn_on')").fetchall())
    if meta.get("kind") != DB_KIND:
        raise _not_ours(path)
    return version, parse_date(meta.get("withdrawn_on"))


def prepare(conn: sqlite3.Connection, path: Path, now: float) -> None:
    """Recognise the file, then (only then) switch it to WAL and migrate it forward.

    Raises :class:`UsageDbError` for a foreign or newer file, which is left exactly as it was;
    sqlite3 errors (a held lock) go to the caller, who retries.
    """
    try:
        version, _ = recognise(conn, path)
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
        if is_busy(exc):
            raise
        raise UsageDbError(
            f"{path} is not a Klick usage database (SQLite says: {exc}); move it aside and Klick starts a new one."
        ) from None
    conn.execute("PRAGMA journal_mode=WAL")
    if version == SCHEMA_VERSION:
        return
    # Only a migration needs sqlite-utils, and importing it loads numpy where that is installed
    # (matplotlib brings it): 20 MiB in every process that reads the log, the fleet daemon too.
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        version, _ = recognise(conn, path)  # again, under the lock: another process may have done it
        for step in range(version + 1, SCHEMA_VERSION + 1):
            _MIGRATIONS[step](db)
        if version == 0:
            _number_from(conn, now)
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('kind', ?)", (DB_KIND,))
        conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('created_at', ?)", (iso(now),))
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


# --- the file before it is opened ---------------------------------------------------------------


@dataclass(frozen=True)
class FileState:
    """What a read-only look at the usage database found.

    ``state``: ``new`` (missing or empty), ``ok`` (a sound Klick usage database), ``damaged``
    (fails quick_check or cannot be read as SQLite), or ``unsure`` (another program held the lock,
    or SQLite could not say; opening goes on and the writer retries).
    """

    state: str
    reason: str = ""
    withdrawn_on: _dt.date | None = None


def inspect_file(path: str | Path, *, check: bool = True) -> FileState:
    """Look at the usage database read-only; raises :class:`UsageDbError` for a foreign or newer file.

    Nothing here writes to the file, so a file that is not ours is left byte for byte as it was.
    ``check`` runs ``PRAGMA quick_check`` (it reads the whole file).
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        with open(p, "rb") as fh:
            head = fh.read(100)
    except FileNotFoundError:
        return FileState("new")
    except OSError as exc:
        raise UsageDbError(f"the usage database {p} cannot be read ({exc.strerror or exc}).") from None
    if size == 0:
        return FileState("new")
    if not head.startswith(_SQLITE_MAGIC):
        if len(set(head)) == 1 and head[0] in (0x00, 0xFF):
            return FileState("damaged", "its first page is blank")  # erased flash reads as all 0 or all 1
        raise UsageDbError(f"{p} is not a Klick usage database (not an SQLite file); move it aside and Klick starts a new one.")
    try:
        conn = sqlite3.connect(f"file:{quote(str(p.resolve()))}?mode=ro", uri=True, timeout=UI_BUSY_S, check_same_thread=False)
    except sqlite3.Error as exc:
        return FileState("unsure", str(exc))
    conn.text_factory = _lenient
    try:
        version, withdrawn = recognise(conn, p)
        if version == 0:
            return FileState("new")
        if check:
            rows = conn.execute("PRAGMA quick_check").fetchall()
            if [r[0] for r in rows] != ["ok"]:
                return FileState("damaged", f"quick_check: {rows[0][0]}")
        return FileState("ok", withdrawn_on=withdrawn)
    except sqlite3.DatabaseError as exc:
        if is_damage(exc):
            return FileState("damaged", str(exc))
        return FileState("unsure", str(exc))
    except UnicodeDecodeError:  # SQLite's own message quoted a damaged schema's bytes
        return FileState("damaged", "its schema cannot be read")
    finally:
        conn.close()


def damaged_copies(path: str | Path) -> list[Path]:
    """Damaged usage databases moved aside beside ``path``, oldest first (not their -wal/-shm)."""
    p = Path(path)
    try:
        found = [f for f in p.parent.glob(f"{p.name}.damaged-*") if not f.name.endswith(("-wal", "-shm", "-journal"))]
    except OSError:
        return []
    return sorted(found)


def _companions(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal")]


def move_aside(path: Path, now: float) -> Path:
    stamp = _dt.datetime.fromtimestamp(now, _dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    os.replace(path, target)
    for old, new in zip(_companions(path), _companions(target)):
        try:
            os.replace(old, new)
        except FileNotFoundError:
            pass
    return target


def remove_with_companions(path: Path) -> bool:
    """Delete a database file with its -wal/-shm/-journal; False (and a log line) if one stays."""
    ok = True
    for f in (path, *_companions(path)):
        try:
            f.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.error("%s could not be deleted: %s", f, exc.strerror or exc)
            ok = False
    return ok


# --- withdrawing consent ------------------------------------------------------------------------


def purge_personal(conn: sqlite3.Connection, withdrawn_on: _dt.date) -> dict[str, int]:
    """Delete every personal row in one transaction, keep only the withdrawal date, VACUUM.

    Events keep reader health; sessions, prompts, answers and the questionnaire's state go. With
    ``secure_delete`` and VACUUM, and the WAL checkpointed and truncated, the rows are gone from
    the file itself. Returns the rows deleted per table. sqlite3 errors go to the caller.
    """
    conn.execute("PRAGMA secure_delete=ON")
    conn.execute("BEGIN IMMEDIATE")
    try:
        counts = {"events": conn.execute("DELETE FROM events WHERE kind != 'reader_status'").rowcount}
        for table in PERSONAL_TABLES:
            counts[table] = conn.execute(f"DELETE FROM {table}").rowcount
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('withdrawn_on', ?)", (withdrawn_on.isoformat(),))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("VACUUM")
    checkpoint(conn, tries=20)
    return counts


def checkpoint(conn: sqlite3.Connection, tries: int = 1) -> bool:
    """Copy the WAL into the main file and truncate it; True when it was complete."""
    for n in range(tries):
        try:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error:
            busy = 1
        if not busy:
            return True
        if n + 1 < tries:
            time.sleep(0.1)
    return False


def has_personal_rows(conn: sqlite3.Connection) -> bool:
    if conn.execute("SELECT 1 FROM events WHERE kind != 'reader_status' LIMIT 1").fetchone():
        return True
    return any(conn.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone() for t in PERSONAL_TABLES)


@dataclass(frozen=True)
class Withdrawal:
    """What ``klick pilot withdraw`` did."""

    withdrawn_on: _dt.date
    deleted: dict[str, int] = field(default_factory=dict)
    #: Damaged copies moved aside earlier (they held personal rows too), now deleted.
    removed_files: tuple[Path, ...] = ()
    #: The usage database itself could not be read and was deleted whole.
    damaged_deleted: bool = False


def withdraw_consent(path: str | Path, *, today: _dt.date | None = None, busy_s: float = 30.0) -> Withdrawal:
    """Withdraw the pilot's consent on this device (``klick pilot withdraw``).

    Safe while the launcher runs: the delete waits its turn through SQLite's lock, and the
    launcher's writer checks the withdrawal inside each of its transactions, so it never writes
    a card event again. A database that is missing is created to hold the date; one that is
    damaged is deleted whole (it can only hold personal rows we cannot single out). Raises
    :class:`UsageDbError` for a foreign or newer file (left unchanged) and for a lock held longer
    than ``busy_s``.
    """
    p = Path(path)
    today = today or _dt.datetime.now(_dt.UTC).date()
    removed = []
    for copy in damaged_copies(p):
        if remove_with_companions(copy):
            removed.append(copy)
    state = inspect_file(p)
    damaged = state.state == "damaged"
    if damaged and not remove_with_companions(p):
        raise UsageDbError(f"the usage database {p} is damaged and could not be deleted; nothing was deleted.")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(p, busy_s)
    except (OSError, sqlite3.Error) as exc:
        raise UsageDbError(f"the usage database {p} cannot be opened ({exc}).") from None
    try:
        set_pragmas(conn)
        prepare(conn, p, time.time())
        deleted = purge_personal(conn, today)
    except sqlite3.Error as exc:
        if is_busy(exc):
            raise UsageDbError(
                f"another program kept {p} locked for {busy_s:.0f} s; nothing was deleted. Try again in a minute."
            ) from None
        raise UsageDbError(f"the usage database {p} could not be changed ({exc}); nothing was deleted.") from None
    finally:
        conn.close()
    return Withdrawal(today, deleted, tuple(removed), damaged)
