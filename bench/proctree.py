"""CPU and memory of a server's whole process tree, read from /proc.

A server is one or more root processes (graphyard dev; the reference's CLI and whatever it spawns; an API
process plus separate workers) and every descendant of them. Each is measured the same way, so a server
that splits its work across processes is charged for all of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            text = stat.read()
    except OSError:
        return None  # gone between listing and reading
    # After the ")" closing the command name: state is field 0, ppid 1, utime 11, stime 12, cutime 13, cstime 14.
    return text.rsplit(")", 1)[1].split()


def tree_pids(roots: Iterable[int]) -> list[int]:
    """The roots (those still alive) and all their descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    pending = [pid for pid in roots if os.path.exists(f"/proc/{pid}")]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, ()))
    return found


def cpu_seconds(roots: Iterable[int]) -> float:
    """User + system CPU of every process in the tree so far, plus what its exited, reaped children used."""
    ticks = 0
    for pid in tree_pids(roots):
        fields = _stat_fields(pid)
        if fields is not None:
            ticks += sum(int(f) for f in fields[11:15])
    return ticks / _CLK_TCK


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


def rss_kb(roots: Iterable[int]) -> int:
    """Sum of the tree's resident set sizes (VmRSS), in KiB."""
    return sum(_status_kb(pid, "VmRSS") for pid in tree_pids(roots))


def hwm_kb(roots: Iterable[int]) -> int:
    """Sum of the tree's peak resident set sizes (VmHWM, each process's own peak), in KiB."""
    return sum(_status_kb(pid, "VmHWM") for pid in tree_pids(roots))


def process_count(roots: Iterable[int]) -> int:
    return len(tree_pids(roots))
