"""`make bench`: run every tests/bench/bench_*.py and print one table of figures.

Each bench module has ``run() -> list[tuple[str, str]]`` (figure, value with unit). Figures are
printed, never asserted: a busy 2-core machine must not turn a benchmark into a failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{platform.node()}: {cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def run_one(path: Path) -> int:
    """Run one bench module and print its rows as one JSON line (the parent reads the last line)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        rows = [list(row) for row in module.run()]
    except Exception:
        traceback.print_exc()
        return 1
    print(json.dumps(rows, ensure_ascii=False))
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--one"]:
        return run_one(Path(argv[1]))
    only = set(argv)
    modules = sorted(HERE.glob("bench_*.py"))
    if only:
        modules = [m for m in modules if m.stem.removeprefix("bench_") in only]
    began = time.perf_counter()
    print(f"Klick benchmarks on {machine()}")
    if not modules:
        print("nothing yet")
        return 0
    rows: list[tuple[str, str, str]] = []
    for path in modules:
        topic = path.stem.removeprefix("bench_")
        print(f"... {topic}", flush=True)
        started = time.perf_counter()
        # Each bench in its own process, so a peak-RSS figure is that bench's own peak.
        proc = subprocess.run([sys.executable, __file__, "--one", str(path)], stdout=subprocess.PIPE, text=True)
        if proc.returncode == 0:
            rows += [(topic, figure, value) for figure, value in json.loads(proc.stdout.strip().splitlines()[-1])]
        else:
            rows.append((topic, "FAILED (see above)", "-"))
        rows.append((topic, "(bench wall time)", f"{time.perf_counter() - started:.1f} s"))
    print()
    print(table(rows))
    failed = sum(1 for r in rows if r[1].startswith("FAILED"))
    print(
        f"\n{len(modules)} benches, {len(rows) - len(modules) - failed} figures"
        + (f", {failed} FAILED" if failed else "")
        + f", {time.perf_counter() - began:.0f} s in all."
    )
    return 1 if failed else 0


def table(rows: list[tuple[str, str, str]]) -> str:
    """One table; each topic named once, a blank line between topics, values aligned."""
    w1 = max(len("topic"), *(len(r[0]) for r in rows))
    w2 = max(len("figure"), *(len(r[1]) for r in rows))
    lines = [f"{'topic':<{w1}}  {'figure':<{w2}}  value", f"{'-' * w1}  {'-' * w2}  {'-' * 5}"]
    previous = None
    for topic, figure, value in rows:
        if previous is not None and topic != previous:
            lines.append("")
        lines.append(f"{topic if topic != previous else '':<{w1}}  {figure:<{w2}}  {value}")
        previous = topic
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
