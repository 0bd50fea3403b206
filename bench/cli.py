"""`python -m bench`: pick scenarios and servers, run each scenario against a fresh server, write JSON and a table."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import traceback
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench import report
from bench.results import RESULTS_DIR, SCHEMA_VERSION, load_average, machine_facts, write_result
from bench.scenarios import SCENARIOS, Params, Scenario
from bench.server import (
    Backend,
    PostgresBackend,
    ReferenceBackend,
    Server,
    SqliteBackend,
    ensure_reference_venv,
    running_server,
)

# What the PostgreSQL-with-workers comparison runs for each worker count.
PG_WORKER_SCENARIOS = ("wait_latency", "throughput")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Benchmark a real graphyard server.")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=[*SCENARIOS, "all"],
        help="scenario to run; repeat for several (default: all, in order)",
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URI"),
        help="PostgreSQL URL for --backend postgres and --pg-workers (default $DATABASE_URI); a fresh database "
        "is created beside it and dropped afterwards",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URI"),
        help="Redis URL for --backend postgres and --pg-workers (default $REDIS_URI; unset: in-process broker)",
    )
    parser.add_argument(
        "--reference",
        action="store_true",
        help="also run every chosen scenario against the official server (`langgraph dev`, in-memory runtime) "
        "from its own venv bench/.reference-venv (created on first use), and print both side by side",
    )
    parser.add_argument(
        "--pg-workers",
        default="",
        metavar="N[,N...]",
        help="also run wait_latency and throughput on PostgreSQL + Redis with `graphyard serve` API-only and N "
        "separate `graphyard worker` processes, for each N listed (e.g. 1,2,3)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        help="measured runs: per variant (wait_latency, first_custom_event), per client (throughput), total (memory)",
    )
    parser.add_argument("--warmup", type=int, help="warm-up runs, not measured (per client for throughput)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients for throughput (default 32)")
    parser.add_argument("--n-jobs-per-worker", type=int, help="override the server's concurrency for every scenario")
    parser.add_argument(
        "--max-seconds", type=float, default=300.0, help="time bound per scenario; loops stop early (default 300)"
    )
    parser.add_argument(
        "--reference-max-seconds",
        type=float,
        help="time bound per scenario on the reference server (default: --max-seconds); its queue starts a run about "
        "once a second, so full-size sequential scenarios would take it many minutes each",
    )
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=130.0,
        help="memory: idle wait before the last RSS sample, past the 120 s stream grace period (default 130)",
    )
    return parser


def _backend(args: argparse.Namespace) -> Backend:
    if args.backend == "postgres":
        if not args.database_url:
            raise SystemExit("bench: --backend postgres needs --database-url (or DATABASE_URI)")
        return PostgresBackend(database_url=args.database_url, redis_url=args.redis_url)
    return SqliteBackend()


def _worker_counts(args: argparse.Namespace) -> list[int]:
    if not args.pg_workers:
        return []
    try:
        counts = [int(n) for n in args.pg_workers.split(",") if n.strip()]
    except ValueError:
        raise SystemExit(f"bench: --pg-workers takes worker counts like 1,2,3, not {args.pg_workers!r}") from None
    if any(n < 1 for n in counts):
        raise SystemExit("bench: --pg-workers counts must be at least 1")
    if not args.database_url or not args.redis_url:
        raise SystemExit("bench: --pg-workers needs --database-url and --redis-url (or DATABASE_URI and REDIS_URI)")
    return counts


def _redacted(arg: str) -> str:
    """A URL's password never reaches the results file."""
    if "://" not in arg:
        return arg
    parts = urlsplit(arg)
    if parts.password is None:
        return arg
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


async def _sample_rss(server: Server, into: list[int], stop: asyncio.Event) -> None:
    """Whole-tree RSS once a second for the whole scenario (its peak is one row of the table)."""
    while not stop.is_set():
        with contextlib.suppress(OSError):
            into.append(server.rss_kb())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def _run_one(scenario: Scenario, backend: Backend, params: Params, n_jobs: int) -> dict[str, Any]:
    started = time.perf_counter()
    load_before = load_average()
    async with running_server(backend, n_jobs=n_jobs, env=scenario.env) as server:
        rss: list[int] = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(_sample_rss(server, rss, stop))
        try:
            outcome = await scenario.run(server, params)
        finally:
            stop.set()
            await sampler
        processes = server.process_count()
        argv = [os.path.basename(a) if i == 0 else a for i, a in enumerate(server.argv)]
    payload: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "scenario": scenario.name,
        "backend": backend.name,
        "summary": outcome.summary,
        "machine": {**machine_facts(), "load_average_before": load_before, "load_average_after": load_average()},
        "server": {**backend.describe(), "n_jobs_per_worker": n_jobs, "argv": argv, "env": scenario.env},
        "server_process": {
            "measured": "whole process tree: every process started for the server and its descendants",
            "processes": processes,
            "rss_kb_start": rss[0] if rss else None,
            "rss_kb_peak": max(rss) if rss else None,
            "rss_kb_end": rss[-1] if rss else None,
        },
        "params": outcome.params,
        "results": outcome.results,
        "duration_s": round(time.perf_counter() - started, 2),
    }
    return payload


def _run_and_write(
    scenario: Scenario, backend: Backend, params: Params, n_jobs: int, file_backend: str
) -> dict[str, Any]:
    """One scenario on one server; a failure is recorded (and printed) instead of ending the whole set."""
    try:
        payload = asyncio.run(_run_one(scenario, backend, params, n_jobs))
    except Exception as exc:  # noqa: BLE001 - the set goes on; the failure is printed and kept in the results
        detail = "".join(traceback.format_exception_only(exc)).strip()
        print(f"[{file_backend}] {scenario.name}: failed: {detail}", file=sys.stderr, flush=True)
        return {"error": detail}
    path = write_result(scenario.name, file_backend, payload)
    print(f"[{file_backend}] {payload['summary']}  -> {path.relative_to(path.parent.parent.parent)}", flush=True)
    return payload


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    names = args.scenario or ["all"]
    chosen = list(SCENARIOS) if "all" in names else list(dict.fromkeys(names))
    backend = _backend(args)
    worker_counts = _worker_counts(args)
    params = Params(
        runs=args.runs,
        warmup=args.warmup,
        clients=args.clients,
        max_seconds=args.max_seconds,
        settle_seconds=args.settle_seconds,
    )
    reference_params = replace(params, max_seconds=args.reference_max_seconds or args.max_seconds)
    reference_versions = ensure_reference_venv() if args.reference else None
    reference_backend = ReferenceBackend()
    started = time.perf_counter()
    load_before = load_average()
    ours: report.Suite = {}
    theirs: report.Suite = {}
    # Each scenario runs on graphyard, then at once on the reference, so both see the same machine load.
    for name in chosen:
        scenario = SCENARIOS[name]
        n_jobs = args.n_jobs_per_worker or scenario.n_jobs
        ours[name] = _run_and_write(scenario, backend, params, n_jobs, backend.name)
        if args.reference:
            theirs[name] = _run_and_write(scenario, reference_backend, reference_params, n_jobs, "reference")
    for count in worker_counts:
        workers = PostgresBackend(database_url=args.database_url, redis_url=args.redis_url, workers=count)
        for name in PG_WORKER_SCENARIOS:
            scenario = SCENARIOS[name]
            n_jobs = args.n_jobs_per_worker or scenario.n_jobs
            ours[f"{name}@{count}w"] = _run_and_write(scenario, workers, params, n_jobs, workers.name)
    rows = report.table_rows(ours, theirs if args.reference else None, worker_counts)
    table = report.markdown(rows, with_reference=args.reference)
    load_after = load_average()
    combined = {
        "schema_version": SCHEMA_VERSION,
        "machine": {**machine_facts(), "load_average_before": load_before, "load_average_after": load_after},
        "command": ["scripts/bench", *(_redacted(a) for a in (argv if argv is not None else sys.argv[1:]))],
        "backend": backend.name,
        "reference_packages": reference_versions,
        "pg_workers": worker_counts,
        "table": report.public(rows),
        "graphyard": ours,
        "reference": theirs if args.reference else None,
        "duration_s": round(time.perf_counter() - started, 1),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / "report.json"
    path.write_text(json.dumps(combined, indent=2) + "\n", encoding="utf-8")
    print()
    print(table)
    print(f"\nload average before {load_before}, after {load_after}; all results -> bench/results/{path.name}")
    failed = [name for name, payload in ours.items() if "error" in payload]
    return 1 if failed else 0
