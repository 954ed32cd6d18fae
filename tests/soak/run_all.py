"""`make soak`: the reliability suite, one figure per line, with the machine it ran on.

Each module here has ``run(quick) -> [(figure, value, goal, ok)]``. ``--quick`` is the short
version `make test` runs (tests/test_soak_short.py); name modules to run only those:
``python tests/soak/run_all.py replug cycles``. Exits 1 if any figure misses its goal.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

MODULES = ["decoder_noise", "kill_writes", "replug", "cycles", "hostile", "fleet", "fleet_push", "fleet_privacy", "install_venv"]


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"klick_soak_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def machine() -> str:
    spec = importlib.util.spec_from_file_location("klick_bench_run_all", REPO / "tests/bench/run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.machine()


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    names = [a for a in argv if not a.startswith("-")] or MODULES
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        print(f"unknown soak module(s): {', '.join(unknown)}; known: {', '.join(MODULES)}")
        return 2
    # Everything the suite writes stays in temporary folders, never in a real Klick home.
    os.environ.setdefault("KLICK_HOME", tempfile.mkdtemp(prefix="klick-soak-home-"))
    print(f"Klick reliability suite{' (quick)' if quick else ''} on {machine()}", flush=True)
    rows: list[tuple[str, str, str, str]] = []
    notes: list[str] = []
    for name in names:
        print(f"... {name}", flush=True)
        started = time.perf_counter()
        try:
            module = load(name)
            for figure, value, goal, ok in module.run(quick):
                rows.append((figure, value, goal, "ok" if ok else "MISSED"))
            if getattr(module, "NOTE", None):
                notes.append(module.NOTE)
        except Exception:
            traceback.print_exc()
            rows.append((f"{name}: FAILED (see above)", "-", "-", "MISSED"))
        print(f"    {time.perf_counter() - started:.1f} s", flush=True)
    w1 = max(len(r[0]) for r in rows)
    w2 = max(len(r[1]) for r in rows)
    w3 = max(len(r[2]) for r in rows)
    print()
    print(f"{'figure':<{w1}}  {'value':<{w2}}  {'goal':<{w3}}  verdict")
    print(f"{'-' * w1}  {'-' * w2}  {'-' * w3}  -------")
    for figure, value, goal, verdict in rows:
        print(f"{figure:<{w1}}  {value:<{w2}}  {goal:<{w3}}  {verdict}")
    for note in notes:
        print(f"\nNote: {note}")
    missed = sum(r[3] != "ok" for r in rows)
    print(f"\n{len(rows) - missed} of {len(rows)} figures met their goal.")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
