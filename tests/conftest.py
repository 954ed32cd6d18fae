"""Shared test set-up: every test runs with its own temporary KLICK_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
KLICK = str(Path(sys.executable).parent / "klick")


@pytest.fixture(autouse=True)
def klick_home(tmp_path, monkeypatch) -> Path:
    """A fresh, empty Klick home; no test ever reads the developer's own settings."""
    home = tmp_path / "klick-home"
    home.mkdir()
    monkeypatch.setenv("KLICK_HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    return home


def run_klick(*args: str, env: dict | None = None, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the real `klick` console script, as a carer would."""
    return subprocess.run(
        [KLICK, *args], capture_output=True, text=True, env=env or os.environ.copy(), input=input, timeout=timeout
    )


@pytest.fixture
def klick():
    return run_klick
