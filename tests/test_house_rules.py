"""The rules of the house that a tool checks (`make lint`) really catch a break: a scratch copy of
the tree with one wrong import fails `lint-imports`, naming the contract it breaks and the line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("klick", "cards", "launcher", "firmware_bridge", "fleet")


@pytest.fixture
def scratch(tmp_path) -> Path:
    """The packages and pyproject.toml (which holds the contracts), copied."""
    for name in PACKAGES:
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def lint_imports(where: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the copy: it comes first on the path, before the installed checkout."""
    env = dict(os.environ, PYTHONPATH=str(where))
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=where, env=env, capture_output=True, text=True, timeout=60)


def test_the_copy_keeps_every_contract(scratch):
    done = lint_imports(scratch)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "arrow", "contract"),
    [
        (
            "firmware_bridge/protocol.py",
            "import cards.registry",
            "firmware_bridge.protocol -> cards.registry",
            "The bridge owns the hardware and never knows what a card means: firmware_bridge imports no cards, launcher or fleet",
        ),
        (
            "cards/carer/reader.py",
            "from firmware_bridge.driver import make_driver",
            "cards.carer.reader -> firmware_bridge.driver",
            "The card tools (cards) sit under the launcher and the fleet, and never open a reader",
        ),
        (
            "klick/usage.py",
            "import serial",
            "klick.usage -> serial",
            "pyserial is imported only by the serial driver, so a machine without it still runs the rest",
        ),
    ],
)
def test_a_wrong_import_fails_lint_imports_naming_the_contract(scratch, module, line, arrow, contract):
    path = scratch / module
    text = path.read_text("utf-8") + f"\n{line}  # a deliberately wrong import\n"
    path.write_text(text, "utf-8")
    done = lint_imports(scratch)
    assert done.returncode == 1, done.stdout + done.stderr
    report = " ".join(done.stdout.split())  # lint-imports wraps long names over lines
    assert f"{contract}" in report and "BROKEN" in report, done.stdout
    assert "1 broken" in report
    assert f"{arrow} (l.{text.count(chr(10))})" in done.stdout  # the import, with its line
