"""The device's usage log: what happened, when, and for how long, in one SQLite file.

The pilot wants to learn whether Klick helps, so the launcher records each card placed and lifted,
each action started or failed, and the reader's health. Four things shape this module:

* The log can never delay or stop the screen. :meth:`UsageLog.record` only puts the event on a
  bounded queue and returns; a small writer thread commits it (WAL mode, ``synchronous=FULL``),
  usually within milliseconds. When another program holds SQLite's lock the writer waits and
  retries while the queue holds the events; a full queue drops new events and counts them rather
  than making the screen wait. A power cut or SIGKILL loses at most the events still queued.
* Opening never stops the launcher. A file that fails ``PRAGMA quick_check`` (an SD card that
  overwrote a few pages) is moved aside as ``usage.db.damaged-<time>`` and a new log is started;
  the check reads the whole file, so the writer thread runs it and opening stays quick.
  A foreign file, or one from a newer Klick, is refused *without being changed*: it is recognised
  read-only, before any pragma that writes. A lock held by another program does not make opening
  wait: the writer thread does the rest of the start-up work when the lock is free.
* Privacy by default (GDPR art. 5, 7(3) and 25): without consent only reader health is stored;
  consent withdrawn (``klick pilot withdraw``, or ``pilot.enrolled: false`` with rows still
  there) deletes every personal row in one transaction and VACUUMs, keeping only the date; the
  device is named by a pseudonym; rows older than ``pilot.retention_days`` are deleted (with
  ``secure_delete``), at start and once a day.
* The file outlives the software that wrote it: ``PRAGMA user_version`` holds the schema
  version, older files are migrated forward, and a file from a newer Klick is refused. A row's
  id names it for good (it leaves the device as ``src_id``): ids are never given twice, and a new
  file numbers its rows from the clock, above every row of a file it replaces.

Sessions (card in → card out) are derived from the events by :func:`session_step`, a pure
function, so the rules can be tested on any sequence of events without a database. What works on
the file itself (schema, recognising it, damage, withdrawal) is in :mod:`klick.usage_file`, and
is importable from here too.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import socket
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from klick.uid import UidError, normalise_uid
from klick.usage_file import (
    DB_KIND,
    FLEET_ACKED,
    FLEET_MAX_BACKLOG_DAYS,
    PERSONAL_TABLES,
    SCHEMA_VERSION,
    SEQ_TABLES,
    UI_BUSY_S,
    FileState,
    UsageDbError,
    Withdrawal,
    checkpoint,
    connect,
    damaged_copies,
    from_iso,
    has_personal_rows,
    inspect_file,
    is_busy,
    is_damage,
    iso,
    move_aside,
    parse_date,
    prepare,
    purge_personal,
    recognise,
    remove_with_companions,
    set_pragmas,
    withdraw_consent,
)

__all__ = [
    "SCHEMA_VERSION",
    "DB_KIND",
    "SEQ_TABLES",
    "FLEET_ACKED",
    "FLEET_MAX_BACKLOG_DAYS",
    "UI_BUSY_S",
    "KINDS",
    "CARD_KINDS",
    "PERSONAL_TABLES",
    "QUEUE_MAX",
    "UsageLog",
    "UsageDbError",
    "FileState",
    "Withdrawal",
    "OpenSession",
    "SessionOp",
    "session_step",
    "consent_holds",
    "inspect_file",
    "damaged_copies",
    "purge_personal",
    "withdraw_consent",
    "device_pseudonym",
    "iso",
    "from_iso",
]

log = logging.getLogger(__name__)

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
#: An action type or outcome is one word; anything longer is cut to this.
MAX_WORD = 100
DAY = 86_400.0

#: Events waiting for the writer thread. A resident makes a few events a minute; a thousand is
#: far more than a held lock or a slow card ever needs, and small enough to cost nothing.
QUEUE_MAX = 1000
#: Events committed in one transaction at most (the queue after a held lock is let go).
BATCH_MAX = 500
#: One attempt of the writer thread; it retries after a pause while another program holds the lock.
WRITER_BUSY_S = 1.0
#: The longest :meth:`UsageLog.close` waits for queued events before it gives up on them.
CLOSE_WAIT_S = 2.0
#: The writer's pause between attempts on a locked database grows to this.
RETRY_MAX_S = 2.0
#: A problem the writer keeps meeting is logged at most this often.
LOG_EVERY_S = 60.0


def _day(t: float) -> _dt.date:
    return _dt.datetime.fromtimestamp(t, _dt.UTC).date()


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


# --- consent: a pure rule -----------------------------------------------------------------------


def consent_holds(
    enrolled: bool, consent_date: _dt.date | None, withdrawn_on: _dt.date | None, today: _dt.date | None = None
) -> bool:
    """Whether card events may be kept: enrolled, and not withdrawn since the consent was given.

    A withdrawal (recorded in the database) outlasts ``pilot.enrolled: true`` in klick.yaml until
    a ``consent_date`` later than the withdrawal, and not in the future, says consent was given
    again: a settings file copied from before the withdrawal must not start the log again.
    """
    if not enrolled:
        return False
    if withdrawn_on is None:
        return True
    if consent_date is None or consent_date <= withdrawn_on:
        return False
    return today is None or consent_date <= today


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


# --- the log ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Event:
    kind: str
    uid: str | None
    action_type: str | None
    outcome: str | None
    detail: str | None
    at: float


class UsageLog:
    """The open usage database of this device. One per process; safe to call from any thread.

    Two connections: :attr:`conn` (guarded by :attr:`lock`) for reads and the questionnaire on
    the launcher's thread, with a short busy timeout so it fails softly rather than waits; and
    the writer thread's own, which may wait for a lock because nobody waits for it.
    """

    def __init__(
        self,
        path: Path,
        *,
        device: str,
        enrolled: bool,
        retention_days: int,
        consent_date: _dt.date | None,
        now: Callable[[], float],
    ):
        self.path = path
        self.device = device
        #: What klick.yaml says (pilot.enrolled).
        self.configured_enrolled = enrolled
        self.consent_date = consent_date
        #: The day consent was withdrawn on this device (from the database), or None.
        self.withdrawn_on: _dt.date | None = None
        #: Whether card events are kept now: enrolled and not withdrawn (see :func:`consent_holds`).
        self.enrolled = enrolled
        self.retention_days = retention_days
        self.now = now
        #: Held for every use of :attr:`conn`: Kivy's thread and a helper thread may share it.
        self.lock = threading.RLock()
        self.conn: sqlite3.Connection = None  # type: ignore[assignment]  # set by open()
        #: Events not stored because the queue was full (the database busy or slow) or the disk failed.
        self.dropped = 0
        self._wconn: sqlite3.Connection = None  # type: ignore[assignment]
        self._wlock = threading.RLock()
        self._cv = threading.Condition()
        self._queue: deque[_Event] = deque()
        self._states: dict[str, str | None] = {}
        self._accepted = 1  # the start-up work counts as the first job, so flush() waits for it too
        self._done = 0
        self._started = False  # start-up work done (migration, dangling sessions, consent, pruning)
        self._closing = False
        self._stop = False
        self._dead = False  # the file turned out not to be ours: nothing more is written
        self._ui_ready = False  # conn has its pragmas (else the writer sets them once it can)
        self._check_pending = False  # quick_check still to run (by the writer thread, at start)
        self._thread: threading.Thread | None = None
        self._dropped_unlogged = 0
        self._last_problem = 0.0
        self._open: OpenSession | None = None
        self._open_id: int | None = None
        self._loaded = False
        self._last_prune = 0.0

    # -- opening ------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        device: str,
        enrolled: bool,
        retention_days: int = 365,
        consent_date: _dt.date | None = None,
        now: Callable[[], float] = time.time,
    ) -> UsageLog:
        """Open (creating or migrating) the database and start its writer thread.

        Raises :class:`UsageDbError` for a foreign or newer file (left unchanged) and for a folder
        that cannot hold the file. A damaged file is moved aside and a new log started. The rest of
        the start-up (closing a session cut by a crash, pruning, deleting rows after a withdrawal)
        is done by the writer thread, so a lock held by another program never makes this wait.
        """
        p = Path(path)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageDbError(f"the usage database {p} cannot be opened ({exc}).") from None
        # Only the first page and the schema here; quick_check reads the whole file, so the
        # writer thread runs it (a year's log on a slow SD card takes seconds).
        found = inspect_file(p, check=False)
        if found.state == "damaged":
            try:
                aside = move_aside(p, now())
            except OSError as exc:
                raise UsageDbError(
                    f"the usage database {p} is damaged ({found.reason}) and cannot be moved aside ({exc})."
                ) from None
            log.error(
                "The usage log %s was damaged (%s); it was moved aside as %s and a new one started.", p, found.reason, aside.name
            )
        try:
            conn = connect(p, UI_BUSY_S)
            wconn = connect(p, WRITER_BUSY_S)
        except (OSError, sqlite3.Error) as exc:
            raise UsageDbError(f"the usage database {p} cannot be opened ({exc}).") from None
        self = cls(p, device=device, enrolled=enrolled, retention_days=retention_days, consent_date=consent_date, now=now)
        self.conn, self._wconn = conn, wconn
        self._check_pending = found.state in ("ok", "unsure")
        self._set_withdrawn(found.withdrawn_on)
        try:
            set_pragmas(conn)
            prepare(conn, p, now())  # quick when nobody holds the lock; otherwise the writer does it
            self._set_withdrawn(recognise(conn, p)[1])
            self._ui_ready = True
        except Exception as exc:  # only UsageDbError leaves open(): the launcher goes on without a log
            if isinstance(exc, sqlite3.Error) and is_busy(exc):
                log.warning("The usage log %s is locked by another program; events wait in memory until it is free.", p)
            else:
                conn.close()
                wconn.close()
                if isinstance(exc, UsageDbError):
                    raise
                raise UsageDbError(f"the usage database {p} cannot be used ({exc}).") from None
        self._thread = threading.Thread(target=self._run, name="klick-usage-writer", daemon=True)
        self._thread.start()
        return self

    @classmethod
    def from_config(cls, cfg: Any, *, now: Callable[[], float] = time.time) -> UsageLog:
        return cls.open(
            cfg.paths.usage_db,
            device=device_pseudonym(cfg.pilot.device_name),
            enrolled=cfg.pilot.enrolled,
            retention_days=cfg.pilot.retention_days,
            consent_date=getattr(cfg.pilot, "consent_date", None),
            now=now,
        )

    def _set_withdrawn(self, withdrawn_on: _dt.date | None) -> bool:
        """Take the database's withdrawal date into account; returns whether consent holds."""
        self.withdrawn_on = withdrawn_on
        self.enrolled = consent_holds(self.configured_enrolled, self.consent_date, withdrawn_on, _day(self.now()))
        if not self.enrolled:
            self._open, self._open_id, self._loaded = None, None, True
        return self.enrolled

    def consent_in(self, conn: sqlite3.Connection) -> bool:
        """Whether card data may be written, read inside the caller's write transaction.

        ``klick pilot withdraw`` may run while the launcher does: whoever writes personal rows
        asks this after ``BEGIN IMMEDIATE``, so nothing is written after a withdrawal.
        """
        row = conn.execute("SELECT value FROM meta WHERE key = 'withdrawn_on'").fetchone()
        return self._set_withdrawn(parse_date(row[0]) if row else None)

    # -- the writer thread --------------------------------------------------------------------
    def _run(self) -> None:
        pause = 0.05
        batch: list[_Event] = []
        states: dict[str, str | None] = {}
        while True:
            with self._cv:
                while self._started and not batch and not self._queue and not self._states and not self._stop:
                    self._cv.wait()
                if self._stop:
                    break
                if not batch:
                    while self._queue and len(batch) < BATCH_MAX:
                        batch.append(self._queue.popleft())
                states = dict(self._states)
            try:
                with self._wlock:
                    if not self._started:
                        self._start_up()
                    if batch or states:
                        self._write(batch, states)
                    if self.now() - self._last_prune >= DAY:
                        self.prune()
            except UsageDbError as exc:
                log.error("Usage is no longer recorded: %s", exc)
                self._give_up()
                return
            except sqlite3.Error as exc:
                if is_busy(exc):
                    self._problem(f"the usage log {self.path} is locked by another program; events wait in memory ({exc})")
                    with self._cv:
                        self._cv.wait(pause)
                    pause = min(pause * 2, RETRY_MAX_S)
                    continue
                # A disk that fails (full, read-only, I/O error): these events are lost, later ones
                # are tried again after a pause, so a failing card is not hammered.
                self._problem(f"{len(batch)} usage events not stored: {exc}")
                with self._cv:
                    self.dropped += len(batch)
                    self._done += len(batch)
                    self._cv.notify_all()
                    self._cv.wait(pause)
                pause = min(pause * 2, RETRY_MAX_S)
                batch = []
                continue
            except Exception as exc:  # a bug: lose this batch, not the log for the rest of the run
                self._problem(f"{len(batch)} usage events not stored: the writer failed ({type(exc).__name__}: {exc})")
                with self._cv:
                    self.dropped += len(batch)
                    self._done += len(batch)
                    self._done += len(self._states)  # one job per key still waiting
                    self._states.clear()
                    self._cv.notify_all()
                    self._cv.wait(pause)
                pause = min(pause * 2, RETRY_MAX_S)
                batch = []
                continue
            pause = 0.05
            with self._cv:
                if not self._started:
                    self._started = True
                    self._done += 1
                self._done += len(batch)
                for key, value in states.items():
                    if key in self._states and self._states[key] == value:
                        del self._states[key]
                        self._done += 1
                self._cv.notify_all()
                dropped, self._dropped_unlogged = self._dropped_unlogged, 0
            if dropped:
                log.warning("%d usage events were dropped while the database was busy (the queue holds %d).", dropped, QUEUE_MAX)
            batch, states = [], {}
        left = len(batch) + len(self._queue)
        if left:
            log.warning("%d usage events were not stored: the database stayed busy while Klick stopped.", left)

    def _give_up(self) -> None:
        with self._cv:
            self._dead = True
            self.dropped += len(self._queue)
            self._queue.clear()
            self._states.clear()
            self._done = self._accepted
            self._cv.notify_all()

    def _problem(self, text: str) -> None:
        """Log a problem the writer keeps meeting, once a minute at most."""
        t = time.monotonic()
        if t - self._last_problem >= LOG_EVERY_S or not self._last_problem:
            self._last_problem = t
            log.warning("%s", text)

    def _start_up(self) -> None:
        """The start-up work, on the writer thread: each step can be repeated after a held lock."""
        if self._check_pending:
            self._quick_check()
        conn = self._wconn
        set_pragmas(conn)
        prepare(conn, self.path, self.now())
        if not self._ui_ready:
            with self.lock:
                set_pragmas(self.conn)
                self._ui_ready = True
        row = conn.execute("SELECT value FROM meta WHERE key = 'withdrawn_on'").fetchone()
        if not self._set_withdrawn(parse_date(row[0]) if row else None):
            if has_personal_rows(conn):
                deleted = purge_personal(conn, _day(self.now()))
                self._set_withdrawn(_day(self.now()))
                log.warning(
                    "Consent is not given or was withdrawn: %d personal rows were deleted from the usage log; only reader health is kept.",
                    sum(deleted.values()),
                )
            for copy in damaged_copies(self.path):
                remove_with_companions(copy)
        else:
            self._close_dangling()
            self._remove_old_copies()
        self.prune()

    def _quick_check(self) -> None:
        """A file that fails quick_check is moved aside and a new log started, under both connections' feet."""
        try:
            rows = self._wconn.execute("PRAGMA quick_check").fetchall()
            reason = "" if [r[0] for r in rows] == ["ok"] else f"quick_check: {rows[0][0]}"
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise
            reason = str(exc)
        except UnicodeDecodeError:
            reason = "its schema cannot be read"
        if reason:
            with self.lock:
                for conn in (self.conn, self._wconn):
                    try:
                        conn.close()
                    except sqlite3.Error:
                        pass
                try:
                    aside = move_aside(self.path, self.now())
                except OSError as exc:
                    raise UsageDbError(
                        f"the usage database {self.path} is damaged ({reason}) and cannot be moved aside ({exc})."
                    ) from None
                log.error(
                    "The usage log %s was damaged (%s); it was moved aside as %s and a new one started.",
                    self.path,
                    reason,
                    aside.name,
                )
                self.conn = connect(self.path, UI_BUSY_S)
                self._wconn = connect(self.path, WRITER_BUSY_S)
                self._ui_ready = False
                self._open, self._open_id, self._loaded = None, None, False
        self._check_pending = False

    def _remove_old_copies(self) -> None:
        """Damaged copies hold personal rows too: retention reaches them."""
        cutoff = self.now() - self.retention_days * DAY
        for copy in damaged_copies(self.path):
            try:
                if copy.stat().st_mtime < cutoff:
                    remove_with_companions(copy)
            except OSError:
                pass

    def _close_dangling(self) -> None:
        """A session still open at start was cut by a crash or power cut: end it at the last event."""
        conn = self._wconn
        rows = conn.execute("SELECT id, started_at FROM sessions WHERE ended_at IS NULL ORDER BY id").fetchall()
        if not rows:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            last = conn.execute("SELECT max(at) FROM events").fetchone()[0]
            for sid, started in rows:
                end = max(last or started, started)
                conn.execute(
                    "UPDATE sessions SET ended_at=?, duration_s=?, end_reason='restart' WHERE id=? AND ended_at IS NULL",
                    (end, from_iso(end) - from_iso(started), sid),
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._loaded = False

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
    ) -> bool:
        """Queue one event for the writer thread; never waits. True when queued, False when not kept.

        For ``reader_status`` put the reader's state (connected, searching, lost) in ``outcome``.
        Card events are not kept without consent. A full queue (the database held by another
        program for long) drops the event and counts it in :attr:`dropped`; the count is logged
        once the writer catches up. The time is taken now, not when the row is written.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown usage event kind {kind!r}; known kinds: {', '.join(KINDS)}")
        if not self.enrolled and kind in CARD_KINDS:
            return False
        when = self.now() if at is None else at
        item = _Event(kind, _uid(uid), _text(action_type, MAX_WORD), _text(outcome, MAX_WORD), _detail(detail), float(when))
        with self._cv:
            if self._closing or self._dead:
                return False
            if len(self._queue) >= QUEUE_MAX:
                if not self._dropped_unlogged:
                    log.warning("The usage log is behind (its database is busy or slow): new events are dropped for now.")
                self.dropped += 1
                self._dropped_unlogged += 1
                return False
            self._queue.append(item)
            self._accepted += 1
            self._cv.notify_all()
        return True

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far (and the start-up work) is written; True if it was in time.

        For tests, imports and shutdown; the launcher's thread never calls it.
        """
        deadline = time.monotonic() + timeout
        with self._cv:
            target = self._accepted
            while self._done < target:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None or not self._thread.is_alive():
                    return False
                self._cv.wait(left)
            return True

    def record_many(self, events: Iterable[tuple], *, batch: int = 10_000) -> int:
        """Store many ``(kind, uid, action_type, outcome, detail, at)`` events, one transaction per batch.

        For imports and benchmarks, on the caller's thread (it waits for the database); the
        launcher uses :meth:`record`. Returns the number stored.
        """
        self.flush()
        stored = 0
        chunk: list[_Event] = []
        for kind, uid, action_type, outcome, detail, at in events:
            if kind not in KINDS:
                raise ValueError(f"unknown usage event kind {kind!r}")
            if not self.enrolled and kind in CARD_KINDS:
                continue
            chunk.append(
                _Event(kind, _uid(uid), _text(action_type, MAX_WORD), _text(outcome, MAX_WORD), _detail(detail), float(at))
            )
            if len(chunk) >= batch:
                with self._wlock:
                    stored += self._write(chunk, {})
                chunk = []
        if chunk:
            with self._wlock:
                stored += self._write(chunk, {})
        return stored

    def _write(self, rows: list[_Event], states: dict[str, str | None]) -> int:
        """One transaction: the events (card events only with consent, checked inside it) and state."""
        conn = self._wconn
        saved = (self._open, self._open_id, self._loaded)
        conn.execute("BEGIN IMMEDIATE")
        try:
            consent = self.consent_in(conn)
            stored = 0
            for e in rows:
                if not consent and e.kind in CARD_KINDS:
                    continue
                conn.execute(
                    "INSERT INTO events(at, device, kind, uid, action_type, outcome, detail) VALUES (?,?,?,?,?,?,?)",
                    (iso(e.at), self.device, e.kind, e.uid, e.action_type, e.outcome, e.detail),
                )
                stored += 1
                if consent and e.kind in ("card_present", "card_removed", "action_started", "reader_status"):
                    self._apply_session(e.kind, e.uid, e.action_type, e.outcome, e.at)
            for key, value in states.items():
                if value is None:
                    conn.execute("DELETE FROM meta WHERE key = ?", (f"state:{key}",))
                else:
                    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (f"state:{key}", value))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._open, self._open_id, self._loaded = saved
            raise
        return stored

    def _apply_session(self, kind: str, uid: str | None, action_type: str | None, outcome: str | None, at: float) -> None:
        if not self._loaded:
            self._reload_open()
        new, ops = session_step(self._open, kind, uid, action_type, outcome, at)
        conn = self._wconn
        for op in ops:
            if op.op == "close" and self._open_id is not None and self._open is not None:
                conn.execute(
                    "UPDATE sessions SET ended_at=?, duration_s=?, end_reason=? WHERE id=?",
                    (iso(op.at), max(0.0, op.at - self._open.started_at), op.reason, self._open_id),
                )
                self._open_id = None
            elif op.op == "open":
                self._open_id = conn.execute(
                    "INSERT INTO sessions(device, uid, action_type, started_at) VALUES (?,?,?,?)",
                    (self.device, op.uid, op.action_type, iso(op.at)),
                ).lastrowid
            elif op.op == "set_type" and self._open_id is not None:
                conn.execute("UPDATE sessions SET action_type=? WHERE id=?", (op.action_type, self._open_id))
        self._open = new

    def _reload_open(self) -> None:
        row = self._wconn.execute(
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
        A session or prompt still in use (open, queued) is kept until it ends. Runs on the writer
        thread at start and once a day; may be called from any thread (it waits for the writer).
        """
        now = self.now()
        cutoff = iso(now - self.retention_days * DAY)
        deleted = 0
        with self._wlock:
            conn = self._wconn
            try:
                conn.execute("BEGIN IMMEDIATE")
                unsent = self._unsent_rule(conn, now)
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
                    deleted += conn.execute(sql, args).rowcount
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if is_busy(exc) and not self._started:
                    raise  # the start-up work is retried as a whole
                log.warning("old usage rows not pruned: %s", exc)
                return 0
            self._last_prune = now
            self._reload_open()
        return deleted

    def _unsent_rule(self, conn: sqlite3.Connection, now: float) -> list | None:
        """[acknowledged sequence, backlog cut-off] to keep rows ``klick fleet`` has not sent; None without it.

        A row past retention goes once the broker acknowledged it, or once it is older than the
        fleet's ``max_backlog_days`` (a device that never gets back online must not keep data for
        ever). Both numbers are in meta, written by ``klick fleet``.
        """
        marks = dict(
            conn.execute("SELECT key, value FROM meta WHERE key IN (?, ?)", (FLEET_ACKED, FLEET_MAX_BACKLOG_DAYS)).fetchall()
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
        """A value kept across restarts under ``key`` (in the meta table), or None.

        A value just set and not yet written is returned from memory; the read itself takes
        at most :data:`UI_BUSY_S` and gives None when the database cannot answer.
        """
        with self._cv:
            if key in self._states:
                return self._states[key]
        with self.lock:
            if self._closing:
                return None
            try:
                row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (f"state:{key}",)).fetchone()
            except sqlite3.Error as exc:
                log.warning("state %s not read: %s", key, exc)
                return None
        return row[0] if row else None

    def set_state(self, key: str, value: str | None) -> bool:
        """Keep ``value`` under ``key`` across restarts (None deletes it); never waits.

        The writer thread stores it with its next transaction (the latest value per key wins;
        state is never dropped for a full queue). False when the log is closed or not usable.
        """
        with self._cv:
            if self._closing or self._dead:
                return False
            if key not in self._states:
                self._accepted += 1
            self._states[key] = _text(value, MAX_DETAIL)
            self._cv.notify_all()
        return True

    # -- reading (for tests, doctor and the questionnaire) -------------------------------------
    def open_session(self) -> OpenSession | None:
        """The session the writer has open (events still queued are not in it yet)."""
        return self._open

    def count(self, table: str) -> int:
        if table not in ("events", "sessions", "prompts", "answers"):
            raise ValueError(table)
        with self.lock:
            return self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

    def close(self, timeout: float = CLOSE_WAIT_S) -> None:
        """Write what is queued (waiting at most ``timeout``), checkpoint the WAL and close. Safe twice."""
        with self._cv:
            if self._closing:
                return
            self._closing = True
        self.flush(timeout)
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(WRITER_BUSY_S + 1.0)
        with self._wlock, self.lock:
            for conn in (self._wconn, self.conn):
                try:
                    conn.execute("PRAGMA busy_timeout=100")
                except sqlite3.Error:
                    pass
            checkpoint(self._wconn)
            self.conn.close()
            self._wconn.close()

    def __enter__(self) -> UsageLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _text(value: Any, limit: int) -> str | None:
    """Any value as text SQLite can store (no lone surrogates), at most ``limit`` characters."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.encode("utf-8", "replace").decode("utf-8")


def _uid(uid: str | None) -> str | None:
    if uid is None or uid == "":
        return None
    try:
        return normalise_uid(uid)
    except (UidError, TypeError, ValueError):
        # An unreadable ID is still worth a row (an unknown card was shown); keep a bounded form.
        return _text(uid, 40)


def _detail(detail: str | None) -> str | None:
    return _text(detail, MAX_DETAIL)
