"""`python -m bench`: pick scenarios and a backend, run each against a fresh server, write JSON."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

from bench.results import SCHEMA_VERSION, load_average, machine_facts, write_result
from bench.scenarios import SCENARIOS, Params, Scenario
from bench.server import Backend, PostgresBackend, ServerFailed, SqliteBackend, running_server


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
        help="PostgreSQL URL for --backend postgres (default $DATABASE_URI); a fresh database is created beside it",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URI"),
        help="Redis URL for --backend postgres (default $REDIS_URI; unset: the server's in-process broker)",
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


async def _run_one(scenario: Scenario, backend: Backend, params: Params, n_jobs: int) -> dict[str, Any]:
    started = time.perf_counter()
    load_before = load_average()
    async with running_server(backend, n_jobs=n_jobs, env=scenario.env) as server:
        outcome = await scenario.run(server, params)
        argv = [os.path.basename(a) if i == 0 else a for i, a in enumerate(server.argv)]
    payload: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "scenario": scenario.name,
        "backend": backend.name,
        "summary": outcome.summary,
        "machine": {**machine_facts(), "load_average_before": load_before, "load_average_after": load_average()},
        "server": {**backend.describe(), "n_jobs_per_worker": n_jobs, "argv": argv, "env": scenario.env},
        "params": outcome.params,
        "results": outcome.results,
        "duration_s": round(time.perf_counter() - started, 2),
    }
    return payload


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    names = args.scenario or ["all"]
    chosen = list(SCENARIOS) if "all" in names else list(dict.fromkeys(names))
    backend = _backend(args)
    params = Params(
        runs=args.runs,
        warmup=args.warmup,
        clients=args.clients,
        max_seconds=args.max_seconds,
        settle_seconds=args.settle_seconds,
    )
    failed = 0
    for name in chosen:
        scenario = SCENARIOS[name]
        n_jobs = args.n_jobs_per_worker or scenario.n_jobs
        try:
            payload = asyncio.run(_run_one(scenario, backend, params, n_jobs))
        except ServerFailed as exc:
            print(f"{name}: server failed: {exc}", file=sys.stderr)
            failed += 1
            continue
        path = write_result(name, backend.name, payload)
        print(f"[{backend.name}] {payload['summary']}  -> {path.relative_to(path.parent.parent.parent)}", flush=True)
    return 1 if failed else 0
