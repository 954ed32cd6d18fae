"""Processes as /proc shows them, for the tests that check a stopped launcher left nothing behind.

An orphan is re-parented (to PID 1, or a subreaper), so "left behind" is decided by process
group and by PIDs noted while the tree was whole, not by parent links after the fact. A zombie
has ended; only its parent has not read its exit status yet, so it does not count as left.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    state: str
    name: str


def processes() -> list[Proc]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as f:
                stat = f.read()
        except OSError:  # it ended while we looked
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        found.append(Proc(int(entry), int(fields[1]), int(fields[2]), fields[0], name))
    return found


def descendants(root: int) -> list[Proc]:
    """Every living process below ``root`` (children, grandchildren, ...)."""
    procs = processes()
    below: set[int] = {root}
    grew = True
    while grew:
        grew = False
        for p in procs:
            if p.ppid in below and p.pid not in below:
                below.add(p.pid)
                grew = True
    return [p for p in procs if p.pid in below and p.pid != root and p.state != "Z"]


def still_running(pids: set[int], groups: set[int]) -> list[Proc]:
    """Those of ``pids``, or any member of ``groups``, that have not ended."""
    return [p for p in processes() if (p.pid in pids or p.pgid in groups) and p.state != "Z"]
