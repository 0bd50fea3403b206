"""What a fault scenario asserts, computed from the ledger the graph's nodes wrote and the runs' final states."""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson


@dataclass
class Execution:
    """One execution of one node of one run, by one process: from its start to its end or cancellation."""

    run_id: str
    thread_id: str
    node: str
    pid: int
    start: float
    stop: float | None = None
    outcome: str = "open"


@dataclass
class Verdict:
    """The figures a scenario reports and asserts."""

    runs: int = 0
    lost: int = 0
    errored: int = 0
    concurrent: list[str] = field(default_factory=list)  # node executions of one run that overlapped
    fifo: list[str] = field(default_factory=list)  # a run on a thread that started before the previous one ended
    repeated: int = 0  # node executions repeated after a fault (at-least-once, allowed)
    open_executions: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "lost": self.lost,
            "errored": self.errored,
            "concurrent": len(self.concurrent),
            "fifo_violations": len(self.fifo),
            "repeated_node_executions": self.repeated,
        }


def executions(ledger: Path) -> list[Execution]:
    """Pair each start with the end (or cancellation) the same process wrote next for that run and node."""
    found: list[Execution] = []
    open_by_key: dict[tuple[str, str, int], Execution] = {}
    if not ledger.exists():
        return found
    for raw in ledger.read_bytes().splitlines():
        entry = orjson.loads(raw)
        key = (entry["run_id"], entry["node"], entry["pid"])
        if entry["event"] == "start":
            execution = Execution(entry["run_id"], entry["thread_id"], entry["node"], entry["pid"], entry["t"])
            open_by_key[key] = execution
            found.append(execution)
        elif key in open_by_key:
            execution = open_by_key.pop(key)
            execution.stop, execution.outcome = entry["t"], entry["event"]
    return found


def judge(ledger: Path, runs_by_thread: dict[str, list[dict[str, Any]]]) -> Verdict:
    """runs_by_thread: each thread's runs in creation order, as the API finally reports them."""
    verdict = Verdict()
    found = executions(ledger)
    by_run: dict[str, list[Execution]] = defaultdict(list)
    for execution in found:
        by_run[execution.run_id].append(execution)
    verdict.open_executions = sum(1 for e in found if e.stop is None)
    for runs in runs_by_thread.values():
        previous_end: float | None = None
        previous_id = ""
        for run in runs:
            verdict.runs += 1
            if run["status"] == "error":
                verdict.errored += 1
            elif run["status"] != "success":
                verdict.lost += 1
            mine = by_run.get(run["run_id"], [])
            per_node: dict[str, list[Execution]] = defaultdict(list)
            for execution in mine:
                per_node[execution.node].append(execution)
            for node, runs_of_node in per_node.items():
                verdict.repeated += len(runs_of_node) - 1
                ordered = sorted(runs_of_node, key=lambda e: e.start)
                for earlier, later in itertools.pairwise(ordered):
                    if earlier.stop is None or earlier.stop > later.start:
                        verdict.concurrent.append(f"{run['run_id']}/{node}: pids {earlier.pid} and {later.pid}")
            if not mine:
                continue
            first_start = min(e.start for e in mine)
            if previous_end is not None and first_start < previous_end:
                verdict.fifo.append(f"{run['run_id']} started before {previous_id} ended")
            stops = [e.stop for e in mine if e.stop is not None]
            previous_end = max(stops) if stops else first_start
            previous_id = run["run_id"]
    return verdict
