"""The reliability suite (tests/soak, `make soak`) in its quick form: every figure must meet its goal.

Quick means: 20,000 frames instead of a million, 15 SIGKILLs per writer instead of 1,000, 4
replugs instead of 100, 2,000 insert/remove cycles instead of 100,000, the hostile inputs
without the 100 MB files, and the fleet with 3 broker crashes, 4 `klick fleet` SIGKILLs and 4,000
events offline (instead of 20, 100 and 100,000), and 4 SIGKILLs of `klick fleet` while it applies a
pushed card set (instead of 100); the appliance venv install runs only in `make soak`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

# Measures wall time or CPU: runs alone, after the parallel part of `make test`.
pytestmark = pytest.mark.serial

SOAK = Path(__file__).resolve().parent / "soak"
MODULES = ["decoder_noise", "kill_writes", "replug", "cycles", "hostile", "fleet", "fleet_push"]


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"klick_soak_{name}", SOAK / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", MODULES)
def test_quick_soak_meets_every_goal(name):
    rows = load(name).run(quick=True)
    assert rows
    missed = [r for r in rows if not r[3]]
    assert not missed, missed


def test_the_full_suite_lists_every_module():
    spec = importlib.util.spec_from_file_location("klick_soak_run_all", SOAK / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert set(MODULES) <= set(module.MODULES)
    assert sorted(p.stem for p in SOAK.glob("*.py") if p.stem != "run_all") == sorted(module.MODULES)
