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
from tests.test_export import export_device, make_device_db


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
    (klick_home / "klick.yaml").write_text('pilot:\n  export_key: "a pilot key, 16 or more"\n')
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
