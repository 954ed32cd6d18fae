"""The device's usage log: what happened, when, and for how long, in one SQLite file.

The pilot wants to learn whether Klick helps, so the launcher records each card placed and lifted,
each action started or failed, and the reader's health. Three things shape this module:

* The launcher calls it from Kivy's UI thread, so each write is one small transaction, committed
  at once (WAL mode, ``synchronous=FULL``): a power cut loses at most the event being written,
  and a disk problem is logged and swallowed rather than freezing or crashing the screen.
* Privacy by default (GDPR art. 5 and 25): without recorded consent (``pilot.enrolled`` false)
  only reader health is stored; the device is named by a pseudonym; rows older than
  ``pilot.retention_days`` are deleted (with ``secure_delete``), at start and once a day.
* The file outlives the software that wrote it: ``PRAGMA user_version`` holds the schema
  version, older files are migrated forward, and a file from a newer Klick is refused.

Sessions (card in → card out) are derived from the events by :func:`session_step`, a pure
function, so the rules can be tested on any sequence of events without a database.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from klick.uid import UidError, normalise_uid

__all__ = [
    "SCHEMA_VERSION",
    "KINDS",
    "CARD_KINDS",
    "UsageLog",
    "UsageDbError",
    "OpenSession",
    "SessionOp",
    "session_step",
    "device_pseudonym",
    "iso",
    "from_iso",
]

log = logging.getLogger(__name__)

#: Version of the usage database layout. Raise it only together with a new entry in _MIGRATIONS.
SCHEMA_VERSION = 2
#: Written to the meta table so that a foreign SQLite file is recognised as such.
DB_KIND = "klick-usage"

KINDS = (
    "card_present",
    "card_removed",
    "unknown_card",
    "action_started",
    "action_failed",
    "action_ended",
    "reader_status",
    "prompt_shown",
    "prompt_answered",
    "prompt_dismissed",
)
#: Everything but reader health tells how a person used the device: stored only with consent.
CARD_KINDS = frozenset(KINDS) - {"reader_status"}
#: Free text from the launcher (an error message) is cut, so no one logs a page by mistake.
MAX_DETAIL = 500
DAY = 86_400.0


class UsageDbError(Exception):
    """The usage database cannot be used; the message is one sentence for an installer."""


# --- time ---------------------------------------------------------------------------------------


def iso(t: float) -> str:
    """UTC, fixed width, so that text order is time order and SQL can compare it."""
    stamp = _dt.datetime.fromtimestamp(t, _dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def from_iso(text: str) -> float:
    return _dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=_dt.UTC).timestamp()


# --- device pseudonym ---------------------------------------------------------------------------


def device_pseudonym(device_name: str = "", machine_id_file: str | Path = "/etc/machine-id") -> str:
    """The name a device goes by in the data: the installer's pseudonym, or a hash of the machine.

    The machine ID (or host name) can identify a device outside the pilot, so it is never stored
    itself; its salted hash is stable across restarts and reinstalls of Klick.
    """
    if device_name.strip():
        return device_name.strip()
    try:
        raw = Path(machine_id_file).read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        raw = ""
    if not raw:
        raw = socket.gethostname()
    digest = hashlib.sha256(b"klick-device\0" + raw.encode("utf-8", "replace")).hexdigest()
    return f"dev-{digest[:12]}"


# --- sessions: pure rules -----------------------------------------------------------------------


@dataclass(frozen=True)
class OpenSession:
    uid: str
    started_at: float
    action_type: str | None = None


@dataclass(frozen=True)
class SessionOp:
    """One change to the sessions table: ``open``, ``close`` (with a reason) or ``set_type``."""

    op: str
    at: float
    uid: str | None = None
    action_type: str | None = None
    reason: str | None = None


def session_step(
    current: OpenSession | None, kind: str, uid: str | None, action_type: str | None, outcome: str | None, at: float
) -> tuple[OpenSession | None, list[SessionOp]]:
    """The open session after one event, and the changes to make.

    Rules: a card placed opens a session (closing one left open by another card, whose removal
    was never seen); the same card placed again while open is a repeat, not a new use; a removal
    of the open card closes it; a removal of another card is an orphan and ignored; a lost reader
    closes the open session, since its removal can no longer be seen. The first action type
    named (on the placing or on ``action_started``) is the session's.
    """
    ops: list[SessionOp] = []
    if kind == "card_present" and uid:
        if current is not None and current.uid == uid:
            if current.action_type is None and action_type:
                ops.append(SessionOp("set_type", at, action_type=action_type))
                current = OpenSession(current.uid, current.started_at, action_type)
            return current, ops
        if current is not None:
            ops.append(SessionOp("close", at, reason="next_card"))
        ops.append(SessionOp("open", at, uid=uid, action_type=action_type))
        return OpenSession(uid, at, action_type), ops
    if current is None:
        return None, ops
    if kind == "card_removed" and uid == current.uid:
        return None, [SessionOp("close", at, reason="removed")]
    if kind == "reader_status" and outcome == "lost":
        return None, [SessionOp("close", at, reason="reader_lost")]
    if kind == "action_started" and action_type and current.action_type is None:
        if uid is None or uid == current.uid:
            return OpenSession(current.uid, current.started_at, action_type), [SessionOp("set_type", at, action_type=action_type)]
    return current, ops


# --- schema -------------------------------------------------------------------------------------


def _migrate_to_1(db: sqlite_utils.Database) -> None:
    db["meta"].create({"key": str, "value": str}, pk="key", not_null={"value"})
    db["events"].create(
        {"id": int, "at": str, "device": str, "kind": str, "uid": str, "action_type": str, "outcome": str, "detail": str},
        pk="id",
        not_null={"at", "device", "kind"},
    )
    db["events"].create_index(["at"])
    db["events"].create_index(["kind", "id"])
    db["sessions"].create(
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
    db["sessions"].create_index(["started_at"])
    db["prompts"].create(
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
    db["prompts"].create_index(["state"])
    db["answers"].create(
        {"id": int, "prompt_id": int, "device": str, "question_id": str, "value": str, "text": str, "at": str},
        pk="id",
        not_null={"prompt_id", "device", "question_id", "at"},
    )
    db["answers"].create_index(["at"])
    # Cursors and use counters of the questionnaire engine; updated_at lets retention reach them.
    db["feedback_state"].create({"key": str, "value": str, "updated_at": str}, pk="key", not_null={"value"})


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


#: _MIGRATIONS[n] brings a database from version n-1 to n. Never edit one that has shipped.
_MIGRATIONS: dict[int, Callable[[sqlite_utils.Database], None]] = {1: _migrate_to_1, 2: _migrate_to_2}


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=5.0)
    return conn


def _prepare(conn: sqlite3.Connection, path: Path, now: float) -> None:
    """Set the pragmas, recognise the file, migrate it forward. Raises :class:`UsageDbError`."""
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA secure_delete=ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise UsageDbError(
            f"{path} is not a Klick usage database (SQLite says: {exc}); move it aside and Klick starts a new one."
        ) from None
    if version > SCHEMA_VERSION:
        raise UsageDbError(
            f"{path} was written by a newer Klick (database version {version}; this Klick knows up to "
            f"{SCHEMA_VERSION}). Update Klick on this device, or move the file aside."
        )
    if version == 0 and tables:
        raise UsageDbError(f"{path} is an SQLite file, but not a Klick usage database; move it aside and Klick starts a new one.")
    if version > 0:
        row = conn.execute("SELECT value FROM meta WHERE key='kind'").fetchone() if "meta" in tables else None
        if row is None or row[0] != DB_KIND:
            raise UsageDbError(
                f"{path} is an SQLite file, but not a Klick usage database; move it aside and Klick starts a new one."
            )
    if version == SCHEMA_VERSION:
        return
    db = sqlite_utils.Database(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        for step in range(version + 1, SCHEMA_VERSION + 1):
            _MIGRATIONS[step](db)
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('kind', ?)", (DB_KIND,))
        conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('created_at', ?)", (iso(now),))
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


# --- the log ------------------------------------------------------------------------------------


class UsageLog:
    """The open usage database of this device. One per process; safe to call from any thread."""

    def __init__(
        self, conn: sqlite3.Connection, path: Path, *, device: str, enrolled: bool, retention_days: int, now: Callable[[], float]
    ):
        self.conn = conn
        self.path = path
        self.device = device
        self.enrolled = enrolled
        self.retention_days = retention_days
        self.now = now
        #: Held for every statement: Kivy's thread and a helper thread may share the connection.
        self.lock = threading.RLock()
        self.db = sqlite_utils.Database(conn)
        self._open: OpenSession | None = None
        self._open_id: int | None = None
        self._loaded = False
        self._last_prune = 0.0
        self._closed = False

    # -- opening ------------------------------------------------------------------------------
    @classmethod
    def open(
        cls, path: str | Path, *, device: str, enrolled: bool, retention_days: int = 365, now: Callable[[], float] = time.time
    ) -> UsageLog:
        """Open (creating or migrating) the database; prune old rows; close a session left open.

        Raises :class:`UsageDbError` for a foreign, corrupt or newer file.
        """
        p = Path(path)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            conn = _connect(p)
        except (OSError, sqlite3.Error) as exc:
            raise UsageDbError(f"the usage database {p} cannot be opened ({exc}).") from None
        try:
            _prepare(conn, p, now())
        except BaseException:
            conn.close()
            raise
        self = cls(conn, p, device=device, enrolled=enrolled, retention_days=retention_days, now=now)
        self._close_dangling()
        self.prune()
        return self

    @classmethod
    def from_config(cls, cfg: Any, *, now: Callable[[], float] = time.time) -> UsageLog:
        return cls.open(
            cfg.paths.usage_db,
            device=device_pseudonym(cfg.pilot.device_name),
            enrolled=cfg.pilot.enrolled,
            retention_days=cfg.pilot.retention_days,
            now=now,
        )

    def _close_dangling(self) -> None:
        """A session still open at start was cut by a crash or power cut: end it at the last event."""
        with self.lock:
            row = self.conn.execute("SELECT id, started_at FROM sessions WHERE ended_at IS NULL ORDER BY id").fetchall()
            if not row:
                return
            last = self.conn.execute("SELECT max(at) FROM events").fetchone()[0]
            self.conn.execute("BEGIN IMMEDIATE")
            for sid, started in row:
                end = max(last or started, started)
                self.conn.execute(
                    "UPDATE sessions SET ended_at=?, duration_s=?, end_reason='restart' WHERE id=?",
                    (end, from_iso(end) - from_iso(started), sid),
                )
            self.conn.execute("COMMIT")

    # -- writing ------------------------------------------------------------------------------
    def record(
        self,
        kind: str,
        *,
        uid: str | None = None,
        action_type: str | None = None,
        outcome: str | None = None,
        detail: str | None = None,
        at: float | None = None,
    ) -> int | None:
        """Store one event and update the sessions; returns the event's id, or None if not stored.

        For ``reader_status`` put the reader's state (connected, searching, lost) in ``outcome``.
        Card events are not stored on a device without consent. A disk or database problem is
        logged and swallowed: the resident's screen must keep working.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown usage event kind {kind!r}; known kinds: {', '.join(KINDS)}")
        if not self.enrolled and kind in CARD_KINDS:
            return None
        if self._closed:
            return None
        when = self.now() if at is None else at
        try:
            return self._write([(kind, _uid(uid), action_type, outcome, _detail(detail), when)])
        except sqlite3.Error as exc:
            log.warning("usage event %s not stored: %s", kind, exc)
            return None

    def record_many(self, events: Iterable[tuple], *, batch: int = 10_000) -> int:
        """Store many ``(kind, uid, action_type, outcome, detail, at)`` events, one transaction per batch.

        For imports and tests; the launcher uses :meth:`record`. Returns the number stored.
        """
        stored = 0
        chunk: list[tuple] = []
        for kind, uid, action_type, outcome, detail, at in events:
            if kind not in KINDS:
                raise ValueError(f"unknown usage event kind {kind!r}")
            if not self.enrolled and kind in CARD_KINDS:
                continue
            chunk.append((kind, _uid(uid), action_type, outcome, _detail(detail), at))
            if len(chunk) >= batch:
                self._write(chunk)
                stored += len(chunk)
                chunk = []
        if chunk:
            self._write(chunk)
            stored += len(chunk)
        return stored

    def _write(self, rows: list[tuple]) -> int:
        with self.lock:
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                last_id = 0
                for kind, uid, action_type, outcome, detail, at in rows:
                    stamp = iso(at)
                    last_id = conn.execute(
                        "INSERT INTO events(at, device, kind, uid, action_type, outcome, detail) VALUES (?,?,?,?,?,?,?)",
                        (stamp, self.device, kind, uid, action_type, outcome, detail),
                    ).lastrowid
                    if kind in ("card_present", "card_removed", "action_started", "reader_status"):
                        self._apply_session(kind, uid, action_type, outcome, at)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                self._reload_open()
                raise
        if self.now() - self._last_prune >= DAY:
            self.prune()
        return last_id

    def _apply_session(self, kind: str, uid: str | None, action_type: str | None, outcome: str | None, at: float) -> None:
        if not self._loaded:
            self._reload_open()
        new, ops = session_step(self._open, kind, uid, action_type, outcome, at)
        for op in ops:
            if op.op == "close" and self._open_id is not None and self._open is not None:
                self.conn.execute(
                    "UPDATE sessions SET ended_at=?, duration_s=?, end_reason=? WHERE id=?",
                    (iso(op.at), max(0.0, op.at - self._open.started_at), op.reason, self._open_id),
                )
                self._open_id = None
            elif op.op == "open":
                self._open_id = self.conn.execute(
                    "INSERT INTO sessions(device, uid, action_type, started_at) VALUES (?,?,?,?)",
                    (self.device, op.uid, op.action_type, iso(op.at)),
                ).lastrowid
            elif op.op == "set_type" and self._open_id is not None:
                self.conn.execute("UPDATE sessions SET action_type=? WHERE id=?", (op.action_type, self._open_id))
        self._open = new

    def _reload_open(self) -> None:
        row = self.conn.execute(
            "SELECT id, uid, started_at, action_type FROM sessions WHERE ended_at IS NULL ORDER BY id DESC LIMIT 1"
        ).fetchone()
        self._loaded = True
        if row is None:
            self._open, self._open_id = None, None
        else:
            self._open_id = row[0]
            self._open = OpenSession(row[1], from_iso(row[2]), row[3])

    # -- retention ----------------------------------------------------------------------------
    def prune(self) -> int:
        """Delete every row older than the retention period; returns how many went.

        ``secure_delete`` overwrites the freed space, so the rows are gone, not just unlinked.
        A session or prompt still in use (open, queued) is kept until it ends.
        """
        now = self.now()
        cutoff = iso(now - self.retention_days * DAY)
        deleted = 0
        with self.lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                unsent = self._unsent_rule(now)
                for table, when, also in (
                    ("events", "at", ""),
                    ("sessions", "ended_at", "ended_at IS NOT NULL AND "),
                    ("answers", "at", ""),
                    ("prompts", "coalesce(closed_at, expires_at)", ""),
                    ("feedback_state", "updated_at", "updated_at IS NOT NULL AND "),
                ):
                    sql, args = f"DELETE FROM {table} WHERE {also}{when} < ?", [cutoff]
                    if unsent is not None and table in SEQ_TABLES:
                        sql += f" AND (seq IS NULL OR seq <= ? OR {when} < ?)"
                        args += unsent
                    deleted += self.conn.execute(sql, args).rowcount
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                log.warning("old usage rows not pruned: %s", exc)
                return 0
            self._last_prune = now
            self._reload_open()
        return deleted

    def _unsent_rule(self, now: float) -> list | None:
        """[acknowledged sequence, backlog cut-off] to keep rows ``klick fleet`` has not sent; None without it.

        A row past retention goes once the broker acknowledged it, or once it is older than the
        fleet's ``max_backlog_days`` (a device that never gets back online must not keep data for
        ever). Both numbers are in meta, written by ``klick fleet``.
        """
        marks = dict(
            self.conn.execute("SELECT key, value FROM meta WHERE key IN (?, ?)", (FLEET_ACKED, FLEET_MAX_BACKLOG_DAYS)).fetchall()
        )
        if FLEET_ACKED not in marks:
            return None
        try:
            acked, days = int(marks[FLEET_ACKED]), float(marks.get(FLEET_MAX_BACKLOG_DAYS, 0))
        except ValueError:
            return None
        return [acked, iso(now - days * DAY)]

    # -- small durable state (e.g. the carer PIN's wrong-guess count) ------------------------
    def get_state(self, key: str) -> str | None:
        """A value kept across restarts under ``key`` (in the meta table), or None."""
        with self.lock:
            if self._closed:
                return None
            try:
                row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (f"state:{key}",)).fetchone()
            except sqlite3.Error as exc:
                log.warning("state %s not read: %s", key, exc)
                return None
        return row[0] if row else None

    def set_state(self, key: str, value: str | None) -> bool:
        """Keep ``value`` under ``key`` across restarts (None deletes it); False when not stored."""
        with self.lock:
            if self._closed:
                return False
            try:
                if value is None:
                    self.conn.execute("DELETE FROM meta WHERE key = ?", (f"state:{key}",))
                else:
                    self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (f"state:{key}", str(value)))
            except sqlite3.Error as exc:
                log.warning("state %s not stored: %s", key, exc)
                return False
        return True

    # -- reading (for tests, doctor and the questionnaire) -------------------------------------
    def open_session(self) -> OpenSession | None:
        with self.lock:
            return self._open

    def count(self, table: str) -> int:
        if table not in ("events", "sessions", "prompts", "answers"):
            raise ValueError(table)
        with self.lock:
            return self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close. Safe to call twice."""
        with self.lock:
            if self._closed:
                return
            self._closed = True
            try:
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            self.conn.close()

    def __enter__(self) -> UsageLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _uid(uid: str | None) -> str | None:
    if uid is None or uid == "":
        return None
    try:
        return normalise_uid(uid)
    except UidError:
        # An unreadable ID is still worth a row (an unknown card was shown); keep a bounded form.
        return str(uid)[:40]


def _detail(detail: str | None) -> str | None:
    if detail is None:
        return None
    text = str(detail)
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"
