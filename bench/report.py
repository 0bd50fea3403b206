"""The side-by-side table: one row per figure the issue asks for, graphyard beside the reference server."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# A suite's results: scenario name -> that scenario's payload (as written to its JSON file), or
# {"error": "..."} when it could not run on that server.
Suite = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Row:
    measure: str
    unit: str
    extract: Callable[[Suite], float | None]
    # The target where the project states one (README "Speed", bench/README); "" when it states none.
    target: str = ""
    digits: int = 2
    # A count (errors, runs done) has no meaningful ratio.
    ratio: bool = True


def _get(suite: Suite, scenario: str, *path: str) -> float | None:
    node: Any = suite.get(scenario)
    if not isinstance(node, dict) or "results" not in node:
        return None
    node = node["results"]
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    if isinstance(node, bool) or not isinstance(node, int | float):
        return None
    value = float(node)
    return None if math.isnan(value) else value


def _at(scenario: str, *path: str) -> Callable[[Suite], float | None]:
    return lambda suite: _get(suite, scenario, *path)


def _mib(scenario: str, *path: str) -> Callable[[Suite], float | None]:
    def extract(suite: Suite) -> float | None:
        kb = _get(suite, scenario, *path)
        return None if kb is None else kb / 1024

    return extract


def _peak_rss_mib(suite: Suite) -> float | None:
    """The highest whole-tree RSS sampled during any scenario of the set (each on a fresh server); the
    PostgreSQL-worker runs (`name@Nw`) are another deployment and are left out."""
    peaks = [
        payload["server_process"]["rss_kb_peak"]
        for name, payload in suite.items()
        if "@" not in name
        and isinstance(payload.get("server_process"), dict)
        and payload["server_process"].get("rss_kb_peak")
    ]
    return max(peaks) / 1024 if peaks else None


ROWS: list[Row] = [
    Row("noop `runs.wait` p50, 1 client, thread", "ms", _at("wait_latency", "stateful", "latency_ms", "p50"), "≤ 8"),
    Row("noop `runs.wait` p50, 1 client, stateless", "ms", _at("wait_latency", "stateless", "latency_ms", "p50")),
    Row("server CPU per noop run, 1 client", "ms", _at("wait_latency", "stateful", "server_cpu_ms_per_run")),
    Row("server CPU per noop run, 32 clients", "ms", _at("throughput", "server_cpu_ms_per_run")),
    Row("server CPU per noop run, 64 clients", "ms", _at("throughput_64", "server_cpu_ms_per_run")),
    Row("noop throughput, 32 clients", "runs/s", _at("throughput", "runs_per_second"), digits=1),
    Row("noop latency p99, 32 clients", "ms", _at("throughput", "latency_ms", "p99"), digits=0),
    Row("transport errors, 32 clients", "", _at("throughput", "transport_errors"), "0", 0, ratio=False),
    Row("noop throughput, 64 clients", "runs/s", _at("throughput_64", "runs_per_second"), "≥ 220", digits=1),
    Row("noop latency p99, 64 clients", "ms", _at("throughput_64", "latency_ms", "p99"), "≤ 1000", digits=0),
    Row("transport errors, 64 clients", "", _at("throughput_64", "transport_errors"), "0", 0, ratio=False),
    Row("burst of 2,000 runs: create rate", "runs/s", _at("burst", "create_rate_per_second"), digits=1),
    Row("burst of 2,000 runs: completion rate", "runs/s", _at("burst", "completion_rate_per_second"), digits=1),
    Row(
        "first `custom` event p50 (from the run-creating POST)",
        "ms",
        _at("first_custom_event", "raw_thread", "first_custom_ms", "p50"),
        "≤ 8",
    ),
    Row(
        "first `messages-tuple` event p50 (from the run-creating POST)",
        "ms",
        _at("first_messages_event", "thread", "first_messages_ms", "p50"),
    ),
    Row("1 MiB state: `threads.get_state` p50", "ms", _at("large_state", "get_state", "latency_ms", "p50")),
    Row("1 MiB state: `threads.get` p50", "ms", _at("large_state", "get", "latency_ms", "p50")),
    Row("1 MiB state: `get_history(limit=2)` p50", "ms", _at("large_state", "get_history_2", "latency_ms", "p50")),
    Row("server RSS, peak over the scenario set", "MiB", _peak_rss_mib, digits=1),
    Row("200-token streams on deleted threads: runs done", "", _at("memory_tokens", "completed_runs"), "", 0, False),
    Row("200-token streams, threads deleted: RSS warm", "MiB", _mib("memory_tokens", "baseline_rss_kb"), digits=1),
    Row(
        "200-token streams, threads deleted: RSS past retention",
        "MiB",
        _mib("memory_tokens", "after_retention_rss_kb"),
        digits=1,
    ),
    Row("3,000 streamed runs: RSS growth after idle", "MiB", _mib("memory", "second_batch_growth_kb"), digits=1),
    Row(
        "thread protocol: first `values` p50 (new thread)",
        "ms",
        _at("protocol_first_values", "new_thread", "first_values_ms", "p50"),
    ),
]


def _pg_rows(workers: int) -> list[Row]:
    scenario_wait, scenario_tp = f"wait_latency@{workers}w", f"throughput@{workers}w"
    where = f"PostgreSQL + Redis, API + {workers} worker{'s' if workers > 1 else ''}"
    return [
        Row(f"{where}: `runs.wait` p50", "ms", _at(scenario_wait, "stateful", "latency_ms", "p50")),
        Row(f"{where}: throughput, 32 clients", "runs/s", _at(scenario_tp, "runs_per_second"), digits=1),
        Row(f"{where}: server CPU per run, 32 clients", "ms", _at(scenario_tp, "server_cpu_ms_per_run")),
    ]


def _fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None:
        return "n/a"
    if theirs == 0:
        return "n/a" if ours != 0 else "="
    ratio = ours / theirs
    return f"{ratio:.2f}" if ratio >= 0.1 else f"{ratio:.3f}"


def table_rows(graphyard: Suite, reference: Suite | None, pg_workers: list[int]) -> list[dict[str, Any]]:
    """Every row with a figure on either side (PostgreSQL-worker rows read `<scenario>@<N>w` from `graphyard`)."""
    rows = [*ROWS, *(row for n in pg_workers for row in _pg_rows(n))]
    out: list[dict[str, Any]] = []
    for row in rows:
        ours = row.extract(graphyard)
        theirs = row.extract(reference) if reference is not None else None
        if ours is None and theirs is None:
            continue
        out.append(
            {
                "measure": row.measure,
                "unit": row.unit,
                "graphyard": ours,
                "reference": theirs,
                "ratio": ours / theirs if row.ratio and ours is not None and theirs else None,
                "target": row.target,
                "_digits": row.digits,
                "_ratio": row.ratio,
            }
        )
    return out


def markdown(rows: list[dict[str, Any]], with_reference: bool) -> str:
    head = ["measure", "graphyard"]
    if with_reference:
        head += ["reference", "graphyard / reference"]
    head.append("target")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        unit = f" ({row['unit']})" if row["unit"] else ""
        cells = [row["measure"] + unit, _fmt(row["graphyard"], row["_digits"])]
        if with_reference:
            ratio = _ratio(row["graphyard"], row["reference"]) if row["_ratio"] else ""
            cells += [_fmt(row["reference"], row["_digits"]), ratio]
        cells.append(row["target"] or "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def public(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows as written to JSON (without formatting hints)."""
    return [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows]
