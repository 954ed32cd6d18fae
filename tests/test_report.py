"""`klick report`: a self-contained HTML page with readable plots and the same figures as tables."""

from __future__ import annotations

import base64
import re
import struct
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from klick.cli import cli
from tests.test_export import export_device, make_device_db, tampered


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def pilot_file(home: Path, folder: Path) -> Path:
    (home / "klick.yaml").write_text('pilot:\n  export_key: "the pilot secret 2026"\n')
    files = []
    for name, days in (("hbg-01", 4), ("hbg-02", 2)):
        db = make_device_db(folder / f"{name}.db", name, days=days)
        files += export_device(home, db, folder, name)
    out = folder / "PILOT.sqlite"
    assert run("export", "merge", *map(str, files), "--out", str(out)).exit_code == 0
    return out


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_report_is_self_contained_with_plots_and_tables(klick_home, tmp_path):
    pilot = pilot_file(klick_home, tmp_path)
    before = pilot.read_bytes()
    out = tmp_path / "report.html"
    result = run("report", str(pilot), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    page = out.read_text()
    assert pilot.read_bytes() == before
    # Self-contained: no outside links, scripts or stylesheets; every image embedded.
    assert not re.search(r'(src|href)="(https?:|//)', page) and "<script" not in page
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]+)"', page)
    assert len(images) == 5
    for data, alt in images:
        width, height = png_size(base64.b64decode(data))
        assert width >= 1000 and height >= 300, (alt, width, height)
    for heading in ("Uses per day", "Uses per kind of card", "Session durations", "Answers per question", "Reader outages"):
        assert f"<h2>{heading}</h2>" in page
    # The same figures as tables: 6 days of use, two kinds of card, outages of 5 minutes.
    assert page.count("<table>") == 6
    assert '<td>video call</td><td class="n">6</td>' in page
    assert '<td>svt play</td><td class="n">6</td>' in page
    assert '<td>2026-03-02</td><td class="n">2</td><td class="n">10.0</td>' in page  # two devices, 5 min each
    assert "how_did_it_go" in page and "2 devices" in page
    assert "font-size: 20px" in page


def test_report_on_an_empty_export(klick_home, tmp_path):
    (klick_home / "klick.yaml").write_text('pilot:\n  export_key: "a long enough pilot key"\n')
    db = tmp_path / "empty.db"
    from klick.usage import UsageLog

    UsageLog.open(db, device="quiet", enrolled=True, retention_days=30).close()
    export = tmp_path / "empty.sqlite"
    assert run("export", "usage", "--db", str(db), "--format", "sqlite", "--out", str(export)).exit_code == 0
    result = run("report", str(export), "--out", str(tmp_path / "r.html"))
    assert result.exit_code == 0, result.stderr
    assert "No data for this in the file." in (tmp_path / "r.html").read_text()


def test_report_refuses_what_is_not_an_export(klick_home, tmp_path):
    db = make_device_db(tmp_path / "device.db", "hbg-01", days=1)
    result = run("report", str(db), "--out", str(tmp_path / "r.html"))
    assert result.exit_code == 1
    assert "is a device's usage database, not an export" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists()
    result = run("report", str(tmp_path / "missing.sqlite"), "--out", str(tmp_path / "r.html"))
    assert result.exit_code == 1 and "does not exist" in result.stderr


def test_the_export_command_does_not_load_matplotlib():
    code = "import sys, klick.cli.export_cmd, klick.export, klick.usage, klick.feedback; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_report_survives_rows_with_unreadable_times(klick_home, tmp_path):
    home = klick_home
    (home / "klick.yaml").write_text('pilot:\n  enrolled: true\n  export_key: "the pilot secret 2026"\n')
    make_device_db(home / "usage.db", "hbg-07")
    files = export_device(home, home / "usage.db", tmp_path, "hbg-07")
    tampered(
        files[0],
        "UPDATE events SET at = 'garbage' WHERE rowid = 1;"
        " UPDATE events SET at = '2026-02-30T25:00:00.000Z' WHERE rowid IN (SELECT rowid FROM events WHERE kind = 'reader_status' AND rowid > 1 LIMIT 1);"
        " UPDATE sessions SET started_at = 12 WHERE rowid = 1; UPDATE sessions SET duration_s = 'long', action_type = x'ff00' WHERE rowid = 2;",
    )
    out = tmp_path / "r.html"
    result = run("report", str(files[0]), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    page = out.read_text()
    assert "3 rows were left out: their time is not one Klick writes" in page


# --- files made to break the report (attack2) ------------------------------------------------------

T = "2026-03-01T10:00:00.000Z"


def made_export(path: Path, events=(), sessions=(), answers=()) -> Path:
    """An export holding exactly these rows (events, sessions, answers as the export tables have them)."""
    import sqlite3

    from klick.export import create_export_db, key_check

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    meta = {"contents": "usage+answers", "personal": "1", "free_text": "1", "key_check": key_check("k" * 20), "devices": "d1"}
    create_export_db(conn, meta)
    for table, rows in (("events", events), ("sessions", sessions), ("answers", answers)):
        for row in rows:
            conn.execute(f"INSERT INTO {table} VALUES ({', '.join('?' * len(row))})", row)
    conn.execute("COMMIT")
    conn.close()
    return path


def images(page: str) -> dict[str, tuple[int, int]]:
    found = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]+)"', page)
    return {alt: png_size(base64.b64decode(data)) for data, alt in found}


def test_a_dollar_sign_or_a_control_character_in_a_question_or_answer_is_shown_as_written(klick_home, tmp_path):
    """matplotlib read "$\\frac{$" as the start of a formula and the whole report failed."""
    odd = ["$\\frac{$", "$x^{$", "a$b$c$", "<script>alert(1)</script>", "tab\there", "nul\x00here", "$$"]
    answers = [
        ("d1", i, text, "after_uses", "c1", text, "answered", T, T, T, T, text, text, "04AA", text) for i, text in enumerate(odd)
    ]
    sessions = [("d1", i, "c1", text, T, T, 60.0, "removed", "04AA", text) for i, text in enumerate(odd)]
    out = tmp_path / "r.html"
    result = run("report", str(made_export(tmp_path / "odd.sqlite", sessions=sessions, answers=answers)), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert "Warning" not in result.stderr  # no Python warning about a letter the font lacks
    page = out.read_text()
    assert "<td>$\\frac{$</td>" in page and "&lt;script&gt;" in page and "<script" not in page
    assert "\x00" not in page and "<td>nul\ufffdhere</td>" in page
    assert len(images(page)) == 4  # days, kinds of card, durations, answers


def test_a_time_no_tablet_lived_through_is_left_out_not_a_failed_report(klick_home, tmp_path):
    """A session in 9999 passed every check and the plot of days could not draw it."""
    sessions = [
        ("d1", 1, "c1", "web", "9999-12-31T23:59:59.999Z", None, 5.0, None, None, None),
        ("d1", 2, "c1", "web", "2200-01-01T00:00:00.000Z", None, 5.0, None, None, None),
        ("d1", 3, "c1", "web", T, None, 5.0, None, None, None),
    ]
    out = tmp_path / "r.html"
    result = run("report", str(made_export(tmp_path / "future.sqlite", sessions=sessions)), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    page = out.read_text()
    assert "2 rows were left out" in page and "<td>2026-03-01</td>" in page


def test_thousands_of_questions_answers_and_kinds_of_card_give_a_report_with_a_page_of_plots(klick_home, tmp_path):
    """3,000 questions in one file: the report drew 3,000 plots and had not finished after two minutes."""
    answers = [("d1", i, f"q{i}", "t", "c", "web", "answered", T, T, T, T, str(i), None, None, None) for i in range(3000)]
    answers += [
        ("d1", 5000 + i, "q0", "t", "c", "web", "answered", T, T, T, T, f"answer {i}", None, None, None) for i in range(500)
    ]
    sessions = [("d1", i, "c1", f"kind {i} " + "x" * 200, T, T, 60.0 + i, "removed", None, None) for i in range(3000)]
    out = tmp_path / "r.html"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from klick.cli import main; main()",
            "report",
            str(made_export(tmp_path / "many.sqlite", sessions=sessions, answers=answers)),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    sizes = images(page)
    assert sizes["Bar charts of the answers to each question"][1] < 6000  # at most 20 questions drawn
    assert sizes["Bar chart of uses per kind of card"][1] < 2500  # at most 20 bars
    assert page.count("<td>q") >= 3000 and page.count("<td>kind ") == 3000  # the tables have everything
    assert '<td class="n">1.0</td>' in page  # the median of a kind of one session of 60 s
