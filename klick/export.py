"""The pilot tester's exports: pseudonymised rows out of a device's usage database, and merging.

Privacy by default (GDPR art. 5 and 25): a card ID leaves the device only as a keyed hash
(HMAC-SHA256 with the pilot's export key, at least :data:`MIN_EXPORT_KEY` characters, so one card
hashes the same on every device of the pilot and no one without the key can link it back); card
labels, free-text details and raw IDs go out only when the tester asks with ``include_personal``,
and the residents' own written answers (which hold names and phone numbers) only with
``include_free_text``. Answers export separately from usage.

The source database is opened read-only (SQLite URI ``mode=ro``), so an export can never change
it, even while the launcher writes. Rows are streamed: a million events never sit in memory.
An export to SQLite is the unit of :func:`merge`, which keeps each row's device pseudonym and
refuses files of another export format or another export key. A file to merge or report on may
come from anywhere, so it is read only through real tables with exactly the expected columns
(a view named ``events`` could recurse forever), at most :data:`MAX_ROWS_PER_FILE` rows, every
time one Klick wrote; the half-built merge is removed on any exit, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import hmac
import json
import os
import re
import signal
import sqlite3
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TextIO
from urllib.parse import quote

from klick import __version__
from klick.atomic import check_replaceable
from klick.config import MAKE_A_KEY, MIN_EXPORT_KEY
from klick.usage import DB_KIND, SCHEMA_VERSION, iso

__all__ = [
    "EXPORT_SCHEMA",
    "EXPORT_KIND",
    "ExportError",
    "Window",
    "Table",
    "TABLES",
    "parse_day",
    "window",
    "card_hasher",
    "key_check",
    "export_key_problem",
    "MIN_EXPORT_KEY",
    "MAX_ROWS_PER_FILE",
    "open_readonly",
    "open_usage_db",
    "open_export",
    "export_rows",
    "pseudonymise",
    "write_csv",
    "write_json",
    "write_sqlite",
    "merge",
    "replace_atomically",
]

#: The layout of an export file. Merge and report read exactly this version.
EXPORT_SCHEMA = 1
EXPORT_KIND = "klick-export"
#: Details that say nothing about a person: reader health and question ids.
SAFE_DETAIL_KINDS = ("reader_status", "prompt_shown", "prompt_answered", "prompt_dismissed")
BATCH = 5000
#: Shorter keys can be guessed, and then every card hash can be linked back to its card.
#: A year of a busy device is about 100,000 rows, and a merged pilot of 50 devices a few million;
#: a file with more than this is not an export we can take in one go (nor, likely, an export).
MAX_ROWS_PER_FILE = 10_000_000


class ExportError(Exception):
    """One sentence for the tester; the CLI prints it and exits non-zero."""


# --- dates --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A time span as UTC text bounds: ``since`` inclusive, ``until`` exclusive; None is open."""

    since: str | None = None
    until: str | None = None


def parse_day(text: str | None, option: str) -> _dt.date | None:
    if text is None or text == "":
        return None
    try:
        return _dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ExportError(f"{option} must be a date written like 2026-03-01, not {text!r}.") from None


def window(since: str | None, until: str | None) -> Window:
    """Whole UTC days from ``since`` through ``until`` (both included)."""
    first, last = parse_day(since, "--since"), parse_day(until, "--until")
    if first and last and last < first:
        raise ExportError(f"--until ({last}) is before --since ({first}); swap them.")
    return Window(
        f"{first.isoformat()}T00:00:00.000Z" if first else None,
        f"{(last + _dt.timedelta(days=1)).isoformat()}T00:00:00.000Z" if last else None,
    )


# --- pseudonyms ---------------------------------------------------------------------------------


def export_key_problem(key: str) -> str | None:
    """Why ``key`` cannot be the pilot's export key (one sentence saying how to make one), or None."""
    if not key:
        return (
            "Set pilot.export_key in klick.yaml (a long secret, the same on every device of the pilot) so card IDs "
            f"can be exported as keyed hashes. Make one with: {MAKE_A_KEY}"
        )
    if len(key) < MIN_EXPORT_KEY:
        return (
            f"pilot.export_key in klick.yaml is too short ({len(key)} characters; at least {MIN_EXPORT_KEY}): "
            f"card hashes made with it could be linked back to the cards. Make a good one with: {MAKE_A_KEY} "
            "and put the same key on every device of the pilot."
        )
    return None


def card_hasher(key: str) -> Callable[[str | None], str | None]:
    """A card ID → its keyed hash, the same on every device sharing the pilot's export key."""
    problem = export_key_problem(key)
    if problem:
        raise ExportError(problem)
    secret = key.encode("utf-8")
    cache: dict[str, str] = {}

    def card(uid: str | None) -> str | None:
        if uid is None:
            return None
        hit = cache.get(uid)
        if hit is None:
            hit = "c" + hmac.new(secret, uid.encode("utf-8"), hashlib.sha256).hexdigest()[:20]
            if len(cache) < 100_000:
                cache[uid] = hit
        return hit

    return card


def key_check(key: str) -> str:
    """A short fingerprint of the export key, so merge can tell files hashed with different keys."""
    return hmac.new(key.encode("utf-8"), b"klick export key check", hashlib.sha256).hexdigest()[:12]


# --- opening ------------------------------------------------------------------------------------


def _stray_companion(p: Path) -> str | None:
    """Why a file SQLite would read beside ``p`` does not belong to it, or None.

    SQLite reads ``p-wal`` whenever it exists and takes its pages over the file's own, whichever
    database wrote it: a copy of an export with another file's ``-wal`` beside it reads as that
    other file. Exports never have one (they are written without a journal); a database kept
    in WAL mode (its header says so) may.
    """
    wal = p.with_name(p.name + "-wal")
    try:
        info = wal.stat()
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return f"{wal.name} beside it is not a file; move it away and try again"
    if info.st_size == 0:
        return None
    try:
        with open(p, "rb") as fh:
            header = fh.read(100)
    except OSError:
        return None
    if len(header) == 100 and header[18] == 2 and header[19] == 2:
        return None  # a database kept in WAL mode: its -wal is its own
    return (
        f"{wal.name} beside it belongs to another database ({p.name} is not kept with one), and SQLite would "
        f"read that database instead; move {wal.name} away and try again"
    )


def open_readonly(path: str | Path) -> sqlite3.Connection:
    p = Path(path)
    if not p.is_file():
        raise ExportError(f"{p} does not exist." if not p.exists() else f"{p} is not a file.")
    stray = _stray_companion(p)
    if stray:
        raise ExportError(f"{p} cannot be read safely: {stray}.")
    try:
        conn = sqlite3.connect(f"file:{quote(str(p.resolve()))}?mode=ro", uri=True)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        conn.execute("PRAGMA trusted_schema=OFF")  # no functions from the file's own schema
    except sqlite3.DatabaseError as exc:
        raise ExportError(f"{p} is not a Klick database (SQLite says: {exc}).") from None
    # Text in a file from elsewhere may not be UTF-8: show it mangled rather than fail.
    conn.text_factory = lambda b: b.decode("utf-8", "replace")
    return conn


def _object_types(conn: sqlite3.Connection, schema: str = "main") -> dict[str, str]:
    """name → 'table', 'view' or 'virtual table', straight from the schema (nothing is run)."""
    out = {}
    for name, kind, sql in conn.execute(f"SELECT name, type, sql FROM {schema}.sqlite_master WHERE type IN ('table', 'view')"):
        virtual = kind == "table" and isinstance(sql, str) and sql.lstrip().upper().startswith("CREATE VIRTUAL")
        out[name] = "virtual table" if virtual else kind
    return out


def _require_tables(conn: sqlite3.Connection, path: str | Path, names: Iterable[str], what: str, schema: str = "main") -> None:
    """Only real tables of stored values are read: a view or virtual table of the same name could
    run forever, and a computed (generated) column could make each row any size it likes (a
    53 kB file once merged into 4 GB)."""
    types = _object_types(conn, schema)
    for name in names:
        kind = types.get(name)
        if kind is None:
            raise ExportError(f"{path} has no {name} table, so it is not {what}.")
        if kind != "table":
            raise ExportError(
                f"{path} holds '{name}' as a {kind}, not a table; Klick reads only its own tables, so it is not {what}."
            )
        computed = [r[1] for r in conn.execute(f"PRAGMA {schema}.table_xinfo({name})") if r[6]]
        if computed:
            raise ExportError(
                f"{path}: its {name} table has columns computed from a formula ({', '.join(computed)}), which Klick "
                f"never makes; Klick reads only stored values, so it is not {what}."
            )


def _meta(conn: sqlite3.Connection) -> dict[str, str]:
    try:
        return dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError:
        return {}


def open_usage_db(path: str | Path) -> sqlite3.Connection:
    """A device's usage database, read-only, checked to be one this Klick understands."""
    conn = open_readonly(path)
    types = _object_types(conn)
    if types.get("meta") != "table":
        conn.close()
        raise ExportError(f"{path} is an SQLite file, but not a Klick usage database.")
    meta = _meta(conn)
    if meta.get("kind") == EXPORT_KIND:
        conn.close()
        raise ExportError(f"{path} is already an export; use it with 'klick export merge' or 'klick report'.")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if meta.get("kind") != DB_KIND:
        conn.close()
        raise ExportError(f"{path} is an SQLite file, but not a Klick usage database.")
    if version > SCHEMA_VERSION:
        conn.close()
        raise ExportError(
            f"{path} was written by a newer Klick (database version {version}; this Klick reads up to {SCHEMA_VERSION}); update Klick on this computer."
        )
    try:
        _require_tables(conn, path, ("events", "sessions", "prompts", "answers"), "a Klick usage database")
    except ExportError:
        conn.close()
        raise
    return conn


def open_export(path: str | Path) -> tuple[sqlite3.Connection, dict[str, str]]:
    """An export (or merged pilot) file, read-only, checked to be of this Klick's export format.

    Its tables are checked (real tables, the expected columns and types) before anything is read
    from them.
    """
    conn = open_readonly(path)
    if _object_types(conn).get("meta") != "table":
        conn.close()
        raise ExportError(f"{path} is an SQLite file, but not a Klick export.")
    meta = _meta(conn)
    if meta.get("kind") == DB_KIND:
        conn.close()
        raise ExportError(
            f"{path} is a device's usage database, not an export; run 'klick export usage --format sqlite' and 'klick export answers --format sqlite' on it first."
        )
    if meta.get("kind") != EXPORT_KIND:
        conn.close()
        raise ExportError(f"{path} is an SQLite file, but not a Klick export.")
    version = int(meta.get("export_schema", "0") or 0)
    if version != EXPORT_SCHEMA:
        conn.close()
        newer = "a newer" if version > EXPORT_SCHEMA else "an older"
        raise ExportError(
            f"{path} was exported by {newer} Klick (export format {version}; this Klick reads format {EXPORT_SCHEMA}); export every device with the same Klick version."
        )
    try:
        check_export_tables(conn, path)
    except ExportError:
        conn.close()
        raise
    return conn, meta


def _columns(ddl: str) -> list[tuple[str, str]]:
    return [(part.split()[0], part.split()[1]) for part in ddl.split(", ")]


def check_export_tables(conn: sqlite3.Connection, path: str | Path, schema: str = "main") -> None:
    """Every export table is a real table with exactly the columns and types an export has."""
    what = "a Klick export"
    _require_tables(conn, path, (*_EXPORT_DDL, "meta"), what, schema)
    for table, ddl in (*_EXPORT_DDL.items(), ("meta", "key TEXT, value TEXT")):
        have = [(r[1], (r[2] or "").upper()) for r in conn.execute(f"PRAGMA {schema}.table_xinfo({table})")]
        if have != _columns(ddl):
            raise ExportError(
                f"{path}: its {table} table does not have the columns of a Klick export "
                f"({', '.join(n for n, _ in have) or 'none'}); it was not made by klick export, or was changed since."
            )


#: A time Klick writes lies in these years (the first inclusive, the last not): one rule for the
#: tablet's check before sending, the collector, ``klick export merge`` and ``klick report``. A
#: time outside is a clock gone wrong or an edited file; the plots cannot even draw the year 9999.
FIRST_YEAR, LAST_YEAR = 1970, 2200
_TIME_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


def time_ok(value: Any) -> bool:
    """True for a time exactly as :func:`klick.usage.iso` writes it (a real date, fixed width, UTC),
    in the years the pilot's files hold; :func:`time_sql` is the same rule in SQL."""
    if not isinstance(value, str) or not _TIME_TEXT.fullmatch(value) or not FIRST_YEAR <= int(value[:4]) < LAST_YEAR:
        return False
    try:
        _dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return False
    return True


def time_sql(column: str) -> str:
    """SQL true (1) for a value of ``column`` that :func:`time_ok` takes, else 0 (never NULL)."""
    # Through julianday and back: SQLite's strftime alone would keep a 30 February as it is.
    return (
        f"coalesce(typeof({column}) = 'text' AND {column} >= '{FIRST_YEAR}' AND {column} < '{LAST_YEAR}'"
        f" AND strftime('%Y-%m-%dT%H:%M:%fZ', julianday({column})) = {column}, 0)"
    )


def _value_checks(ddl: str) -> str:
    """SQL true for a row whose every value is of its column's type, every time one Klick writes."""
    checks = []
    for part in ddl.split(", "):
        name, kind = part.split()[:2]
        required = "NOT NULL" in part
        if kind == "INTEGER":
            checks.append(f"typeof({name}) = 'integer'" if required else f"typeof({name}) IN ('integer', 'null')")
        elif kind == "REAL":
            checks.append(f"typeof({name}) IN ('real', 'integer', 'null')")
        else:
            allowed = "('text')" if required else "('text', 'null')"
            checks.append(f"typeof({name}) IN {allowed}")
        if name in TIME_COLUMNS:
            checks.append(time_sql(name) if required else f"({name} IS NULL OR {time_sql(name)})")
    return "coalesce(" + " AND ".join(checks) + ", 0)"


#: Columns holding a time as Klick writes it (klick.usage.iso): report and merge read them as times.
TIME_COLUMNS = frozenset({"at", "started_at", "ended_at", "created_at", "shown_at", "closed_at", "answered_at"})


def check_export_rows(conn: sqlite3.Connection, path: str | Path, max_rows: int = MAX_ROWS_PER_FILE) -> int:
    """Count an export's rows (at most ``max_rows``) and check each value; returns the count."""
    total = 0
    for table in _EXPORT_DDL:
        total += conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    if total > max_rows:
        raise ExportError(
            f"{path} holds {total:,} rows, more than the {max_rows:,} one file may bring to a merge "
            "(a year of a busy device is about 100,000); split it, or check that it is an export."
        )
    for table, ddl in _EXPORT_DDL.items():
        bad = conn.execute(f"SELECT rowid, * FROM {table} WHERE NOT ({_value_checks(ddl)}) LIMIT 1").fetchone()
        if bad is not None:
            raise ExportError(
                f"{path}: row {bad[0]} of its {table} table has a value Klick never writes there "
                "(a time it cannot read, or text where a number belongs); it was changed after klick export. Nothing was merged."
            )
    return total


# --- tables -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    name: str
    #: Columns of the export, in order; the personal ones are added with include_personal.
    columns: tuple[str, ...]
    personal: tuple[str, ...]
    #: Source query; its columns: src_id, then the export columns with ``uid`` in place of card.
    query: str
    time_column: str
    contents: str


TABLES: dict[str, Table] = {
    "events": Table(
        "events",
        ("device", "src_id", "at", "kind", "card", "action_type", "outcome", "detail"),
        ("uid", "label"),
        "SELECT id, device, id, at, kind, uid, action_type, outcome, detail FROM events",
        "at",
        "usage",
    ),
    "sessions": Table(
        "sessions",
        ("device", "src_id", "card", "action_type", "started_at", "ended_at", "duration_s", "end_reason"),
        ("uid", "label"),
        "SELECT id, device, id, uid, action_type, started_at, ended_at, duration_s, end_reason FROM sessions",
        "started_at",
        "usage",
    ),
    "answers": Table(
        "answers",
        (
            "device",
            "src_id",
            "question_id",
            "trigger",
            "card",
            "action_type",
            "state",
            "created_at",
            "shown_at",
            "closed_at",
            "answered_at",
            "value",
            "text",
        ),
        ("uid", "label"),
        "SELECT p.id, p.device, p.id, p.question_id, p.trigger, p.uid, p.action_type, p.state, p.created_at,"
        " p.shown_at, p.closed_at, a.at, a.value, a.text FROM prompts p"
        " LEFT JOIN answers a ON a.id = (SELECT max(id) FROM answers WHERE prompt_id = p.id)",
        "p.created_at",
        "answers",
    ),
}


def _filtered(table: Table, win: Window) -> tuple[str, list[str]]:
    where, args = [], []
    if win.since:
        where.append(f"{table.time_column} >= ?")
        args.append(win.since)
    if win.until:
        where.append(f"{table.time_column} < ?")
        args.append(win.until)
    sql = table.query + (" WHERE " + " AND ".join(where) if where else "")
    return sql, args


def export_rows(
    conn: sqlite3.Connection,
    table_name: str,
    win: Window,
    card: Callable[[str | None], str | None],
    *,
    include_personal: bool = False,
    labels: Mapping[str, str] | None = None,
    include_free_text: bool = False,
) -> tuple[tuple[str, ...], int, Iterator[tuple]]:
    """(columns, row count, rows) of one table, pseudonymised unless ``include_personal``.

    The rows are produced one batch at a time from an SQLite cursor. Written answers (the
    ``text`` column) are left out unless ``include_free_text``: residents write names and phone
    numbers in them, so they leave the device only when the tester asks and may.
    """
    table = TABLES[table_name]
    sql, args = _filtered(table, win)
    total = conn.execute(f"SELECT count(*) FROM ({sql})", args).fetchone()[0]
    columns = table.columns + (table.personal if include_personal else ())

    def rows() -> Iterator[tuple]:
        cur = conn.execute(sql + " ORDER BY 1", args)
        while True:
            batch = cur.fetchmany(BATCH)
            if not batch:
                return
            for raw in batch:
                yield pseudonymise(
                    table_name, raw, card, include_personal=include_personal, labels=labels, free_text=include_free_text
                )

    return columns, total, rows()


def pseudonymise(
    table_name: str,
    raw: tuple,
    card: Callable[[str | None], str | None],
    *,
    include_personal: bool = False,
    labels: Mapping[str, str] | None = None,
    free_text: bool = False,
) -> tuple:
    """One source row (``TABLES[table_name].query``'s columns, row id first) as it may leave the device.

    The one rule for what leaves a tablet, used by ``klick export`` and by ``klick fleet``: the
    card ID as its keyed hash, details other than reader health and question ids left out, and
    free-text answers only with ``free_text``; ``include_personal`` adds the raw ID and label.
    """
    at = _POSITIONS[table_name]
    out = list(raw[1:])
    uid = out[at.card]
    out[at.card] = card(uid)
    if include_personal:
        out.extend((uid, (labels or {}).get(uid) if uid else None))
    elif at.detail is not None and (at.kind is None or out[at.kind] not in SAFE_DETAIL_KINDS):
        out[at.detail] = None
    if not free_text and at.text is not None:
        out[at.text] = None
    return tuple(out)


class _Positions(NamedTuple):
    """Where card, kind, detail and text sit in a table's export columns (None: not there)."""

    card: int
    kind: int | None
    detail: int | None
    text: int | None


def _positions(table: Table) -> _Positions:
    def at(column: str) -> int | None:
        return table.columns.index(column) if column in table.columns else None

    # Every exported table names its card: pseudonymising it is the point of this module.
    return _Positions(table.columns.index("card"), at("kind"), at("detail"), at("text"))


_POSITIONS = {name: _positions(t) for name, t in TABLES.items()}


# --- writers ------------------------------------------------------------------------------------


#: What a spreadsheet takes for the start of a formula (OWASP's list): ``=HYPERLINK(...)`` in a card
#: label or a written answer would otherwise run when the pilot tester opens the file.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula, with a ``'`` in front (which spreadsheets
    show as text and hide); numbers and every other text as they are. Only for CSV: JSON and
    SQLite keep the text exactly."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_csv(columns: Iterable[str], rows: Iterable[tuple], fh: TextIO) -> int:
    writer = csv.writer(fh, lineterminator="\n")
    writer.writerow(list(columns))
    n = 0
    for row in rows:
        writer.writerow([spreadsheet_safe(v) for v in row])
        n += 1
    return n


def write_json(columns: Iterable[str], rows: Iterable[tuple], fh: TextIO) -> int:
    """A JSON list of objects, written one object at a time."""
    names = list(columns)
    n = 0
    fh.write("[")
    for row in rows:
        fh.write(",\n" if n else "\n")
        fh.write(json.dumps(dict(zip(names, row)), ensure_ascii=False))
        n += 1
    fh.write("\n]\n" if n else "]\n")
    return n


_EXPORT_DDL = {
    "events": "device TEXT NOT NULL, src_id INTEGER NOT NULL, at TEXT NOT NULL, kind TEXT NOT NULL, card TEXT,"
    " action_type TEXT, outcome TEXT, detail TEXT, uid TEXT, label TEXT",
    "sessions": "device TEXT NOT NULL, src_id INTEGER NOT NULL, card TEXT, action_type TEXT, started_at TEXT NOT NULL,"
    " ended_at TEXT, duration_s REAL, end_reason TEXT, uid TEXT, label TEXT",
    "answers": "device TEXT NOT NULL, src_id INTEGER NOT NULL, question_id TEXT NOT NULL, trigger TEXT, card TEXT,"
    " action_type TEXT, state TEXT, created_at TEXT NOT NULL, shown_at TEXT, closed_at TEXT,"
    " answered_at TEXT, value TEXT, text TEXT, uid TEXT, label TEXT",
}
_EXPORT_INDEXES = (
    "CREATE INDEX events_at ON events(at)",
    "CREATE INDEX events_kind ON events(kind)",
    "CREATE INDEX sessions_started ON sessions(started_at)",
    "CREATE INDEX answers_question ON answers(question_id)",
)


def create_export_db(conn: sqlite3.Connection, meta: Mapping[str, str]) -> None:
    for name, ddl in _EXPORT_DDL.items():
        # (device, src_id) is unique: merging the same device's file twice adds nothing twice.
        conn.execute(f"CREATE TABLE {name} ({ddl}, UNIQUE(device, src_id))")
    for sql in _EXPORT_INDEXES:
        conn.execute(sql)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    base = {"kind": EXPORT_KIND, "export_schema": str(EXPORT_SCHEMA), "klick_version": __version__}
    base.update(meta)
    conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?)", sorted(base.items()))
    conn.execute(f"PRAGMA user_version={EXPORT_SCHEMA}")


def write_sqlite(
    parts: Iterable[tuple[str, tuple[str, ...], Iterable[tuple]]],
    out: Path,
    meta: Mapping[str, str],
    progress: Callable[[int], None] | None = None,
) -> int:
    """An export file holding ``(table, columns, rows)`` parts; written aside, then renamed into place."""
    n = 0

    def build(tmp: Path) -> None:
        nonlocal n
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("BEGIN")
            create_export_db(conn, meta)
            for table, columns, rows in parts:
                sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
                batch: list[tuple] = []
                for row in rows:
                    batch.append(row)
                    if len(batch) >= BATCH:
                        conn.executemany(sql, batch)
                        n += len(batch)
                        if progress:
                            progress(len(batch))
                        batch = []
                if batch:
                    conn.executemany(sql, batch)
                    n += len(batch)
                    if progress:
                        progress(len(batch))
            conn.execute("COMMIT")
        finally:
            conn.close()

    replace_atomically(out, build)
    return n


def replace_atomically(out: Path, build: Callable[[Path], None]) -> None:
    """Build a file beside ``out`` and rename it over ``out``: a failed run leaves no half file."""
    out = Path(out)
    check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        tmp.unlink()
        build(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
            try:
                leftover.unlink()
            except FileNotFoundError:
                pass
        raise


# --- merge --------------------------------------------------------------------------------------


@contextmanager
def _stoppable(conn: sqlite3.Connection) -> Iterator[Callable[[], None]]:
    """Ctrl-C, SIGTERM and SIGHUP stop a long SQLite statement too, as KeyboardInterrupt.

    Python runs its signal handlers only between its own instructions, so without this a
    statement copying millions of rows would run on, and SIGTERM (systemd, a closed terminal)
    would end the process before the half-built file is removed. Returns a check to call
    between statements.
    """
    stopped: list[int] = []

    def check() -> None:
        if stopped:
            raise KeyboardInterrupt

    def on_signal(signum: int, frame: Any) -> None:
        stopped.append(signum)

    conn.set_progress_handler(lambda: 1 if stopped else 0, 10_000)
    old: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            old[sig] = signal.signal(sig, on_signal)
    try:
        yield check
    except sqlite3.OperationalError:
        check()  # "interrupted" by the progress handler: say it as the interrupt it was
        raise
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        conn.set_progress_handler(None, 0)


def merge(
    inputs: list[Path], out: Path, progress: Callable[[Path], None] | None = None, *, max_rows: int = MAX_ROWS_PER_FILE
) -> dict[str, int]:
    """Merge export files into one pilot file; returns row counts per table.

    Every input is checked first (a Klick export of this format, real tables with the expected
    columns, at most ``max_rows`` rows, every value of its column's type and every time readable,
    the same export key and the same personal/pseudonymised kind), so a refusal never leaves a
    half-merged file. The rows are copied inside SQLite (``INSERT ... SELECT`` from an attached
    read-only file): nothing is held in Python's memory. The file being built is removed on any
    exit: an error, Ctrl-C, SIGTERM.
    """
    if not inputs:
        raise ExportError("Name at least one export file to merge.")
    resolved_out = Path(out).resolve()
    metas: list[dict[str, str]] = []
    for path in inputs:
        if Path(path).resolve() == resolved_out:
            raise ExportError(f"{path} is both an input and --out; choose another name for the merged file.")
        conn, meta = open_export(path)
        try:
            with _stoppable(conn) as check:
                check_export_rows(conn, path, max_rows)
                check()
        except sqlite3.DatabaseError as exc:
            raise ExportError(f"{path} cannot be read to the end (SQLite says: {exc}); nothing was merged.") from None
        finally:
            conn.close()
        metas.append(meta)
    first = metas[0]
    for path, meta in zip(inputs[1:], metas[1:]):
        if meta.get("personal", "0") != first.get("personal", "0"):
            raise ExportError(
                f"{path} {'includes' if meta.get('personal') == '1' else 'leaves out'} personal data and {inputs[0]} does not; export all devices the same way."
            )
        if meta.get("key_check") != first.get("key_check"):
            raise ExportError(
                f"{path} was exported with a different pilot.export_key than {inputs[0]}; its card hashes would not match. Export every device with the same key."
            )
    contents = sorted({part for m in metas for part in m.get("contents", "").split("+") if part})
    devices = sorted({d for m in metas for d in m.get("devices", "").split(",") if d})
    meta_out = {
        "contents": "+".join(contents),
        "personal": first.get("personal", "0"),
        "free_text": "1" if any(m.get("free_text") == "1" for m in metas) else "0",
        "key_check": first.get("key_check", ""),
        "devices": ",".join(devices),
        "merged_from": str(len(inputs)),
        "created_at": iso(_dt.datetime.now(_dt.UTC).timestamp()),
    }
    counts: dict[str, int] = {}

    def build(tmp: Path) -> None:
        conn = sqlite3.connect(f"file:{quote(str(tmp))}", uri=True, isolation_level=None)
        try:
            with _stoppable(conn) as check:
                conn.execute("PRAGMA trusted_schema=OFF")
                conn.execute("PRAGMA journal_mode=OFF")
                conn.execute("PRAGMA synchronous=OFF")
                conn.execute("BEGIN")
                create_export_db(conn, meta_out)
                conn.execute("COMMIT")
                for path in inputs:
                    conn.execute("ATTACH DATABASE ? AS src", (f"file:{quote(str(Path(path).resolve()))}?mode=ro",))
                    try:
                        check_export_tables(conn, path, "src")  # the same file that was checked, still
                        conn.execute("BEGIN")
                        for table, ddl in _EXPORT_DDL.items():
                            cols = ", ".join(name for name, _ in _columns(ddl))
                            conn.execute(f"INSERT OR IGNORE INTO main.{table} ({cols}) SELECT {cols} FROM src.{table}")
                            check()
                        conn.execute("COMMIT")
                    finally:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        conn.execute("DETACH DATABASE src")
                    if progress:
                        progress(Path(path))
                for table in _EXPORT_DDL:
                    counts[table] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        finally:
            conn.close()

    try:
        replace_atomically(Path(out), build)
    except sqlite3.DatabaseError as exc:
        raise ExportError(f"The merge stopped: {exc}. The files named were not changed.") from None
    return counts


def devices_in(conn: sqlite3.Connection, table_name: str) -> list[str]:
    table = "prompts" if table_name == "answers" else table_name
    return [r[0] for r in conn.execute(f"SELECT DISTINCT device FROM {table}")]


def export_meta(
    contents: str, device: str | None, key: str, include_personal: bool, win: Window, include_free_text: bool = False
) -> dict[str, Any]:
    return {
        "contents": contents,
        "personal": "1" if include_personal else "0",
        "free_text": "1" if include_free_text else "0",
        "key_check": key_check(key),
        "devices": device or "",
        "since": win.since or "",
        "until": win.until or "",
        "created_at": iso(_dt.datetime.now(_dt.UTC).timestamp()),
    }
