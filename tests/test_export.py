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
    a, b, other = card_hasher("k1"), card_hasher("k1"), card_hasher("k2")
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
    assert any(a["text"] == "Ljudet var för svagt" for a in answers)
    assert ANNA not in json.dumps(answers)


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
    (home / "klick.yaml").write_text('pilot:\n  export_key: "another pilot key 2026"\n')
    other = export_device(home, home / "usage.db", tmp_path, "other-key")
    result = run("export", "merge", str(files[0]), str(other[0]), "--out", str(out))
    assert result.exit_code == 1 and "different pilot.export_key" in result.stderr
    result = run("export", "merge", str(files[0]), "--out", str(files[0]))
    assert result.exit_code == 1 and "both an input and --out" in result.stderr


def test_rows_are_streamed_not_held(tmp_path):
    path = tmp_path / "big.db"
    log = UsageLog.open(path, device="big", enrolled=True, retention_days=3650, now=lambda: T0)
    uids = [f"04{n:012X}" for n in range(50)]
    log.record_many((("card_present", uids[i % 50], "web", None, "x" * 40, T0 + i) for i in range(40_000)), batch=10_000)
    log.close()
    conn = open_usage_db(path)
    columns, total, rows = export_rows(conn, "events", Window(), card_hasher("k"))
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
