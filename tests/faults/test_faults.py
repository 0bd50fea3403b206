"""Infrastructure faults under load, with real processes (`graphyard serve` + two `graphyard worker`) on a
private PostgreSQL and a private Redis that each test stops and starts. Each scenario asserts, from the
ledger the graph's nodes write: no run lost, none ended `error` by the fault, no node of a run executed by
two processes at once, no run on a thread started before the previous one ended, no thread left busy or
error, no response >= 500 but 503, every process still up. The figures are printed (pytest -s) for the README.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.api.support import ROOT, Server, eventually, free_port, read_sse, wait_ready
from tests.faults.services import PrivatePostgres, PrivateRedis
from tests.faults.verdict import Verdict, judge

CONFIG = Path(__file__).with_name("langgraph.json")
OUTAGE_SECONDS = 6.0
LEASE_SECONDS = "3"
THREADS = 12
RUNS_PER_THREAD = 4
SETTLE_SECONDS = 90.0
# One xdist worker runs these one after another (scripts/test runs pytest with --dist loadgroup): each
# starts a private PostgreSQL, Redis and three graphyard processes, and two at once would starve each other.
pytestmark = [pytest.mark.timeout(240), pytest.mark.xdist_group("private-postgres")]


@dataclass
class Cluster:
    """A private PostgreSQL and Redis, and graphyard processes on them."""

    tmp: Path
    postgres: PrivatePostgres
    redis: PrivateRedis
    database_uri: str
    ledger: Path
    processes: list[Server] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "DATABASE_URI": self.database_uri,
            "REDIS_URI": self.redis.url,
            "GRAPHYARD_LEASE_SECONDS": LEASE_SECONDS,
            "GRAPHYARD_TEST_LEDGER": str(self.ledger),
            **extra,
        }

    def spawn(self, args: list[str], env: dict[str, str], port: int = 0) -> Server:
        log_path = self.tmp / f"{args[0]}-{len(self.processes)}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "graphyard", *args, "--config", str(CONFIG)],
                cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        server = Server(f"http://127.0.0.1:{port}", port, CONFIG, self.ledger, log_path, process)
        self.processes.append(server)
        return server

    async def start(self) -> Server:
        """`graphyard serve` (API only) and two `graphyard worker` processes."""
        port = free_port()
        api = self.spawn(["serve", "--host", "127.0.0.1", "--port", str(port)], self.env(N_JOBS_PER_WORKER="0"), port)
        await wait_ready(api, timeout=120.0)  # a loaded CI machine imports slowly
        workers = [self.spawn(["worker"], self.env(N_JOBS_PER_WORKER="8")) for _ in range(2)]

        async def ready() -> int:
            return sum("graphyard worker ready" in w.log() for w in workers)

        await eventually(ready, lambda n: n == len(workers), timeout=120.0, interval=0.2, what="workers ready")
        return api

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.log(80)}" for p in self.processes)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Fresh private PostgreSQL and Redis servers; every process and both servers are stopped at the end."""
    postgres = PrivatePostgres()
    postgres.start()
    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    found = Cluster(tmp_path, postgres, redis, postgres.create_database("graphyard"), tmp_path / "ledger.jsonl")
    try:
        yield found
    finally:
        for process in found.processes:
            process.stop()
        redis.close()
        postgres.close()


@dataclass
class Traffic:
    """Every response the clients got: status codes, and how long the 503s took."""

    statuses: list[int] = field(default_factory=list)
    slowest_503: float = 0.0
    hung: int = 0

    def record(self, status: int, seconds: float) -> None:
        self.statuses.append(status)
        if status == 503:
            self.slowest_503 = max(self.slowest_503, seconds)

    @property
    def server_errors(self) -> list[int]:
        return [s for s in self.statuses if s >= 500 and s != 503]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client (raw status codes, no client-side retries)."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as client:
        yield client


async def _call(http: httpx.AsyncClient, traffic: Traffic, method: str, url: str, body: Any = None) -> httpx.Response:
    started = time.monotonic()
    response = await http.request(method, url, json=body)
    traffic.record(response.status_code, time.monotonic() - started)
    return response


async def _until_ok(http: httpx.AsyncClient, traffic: Traffic, method: str, url: str, body: Any = None) -> Any:
    """A request retried while it answers 503 (as a client honouring Retry-After would)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        response = await _call(http, traffic, method, url, body)
        if response.status_code != 503:
            assert response.status_code < 300, (response.status_code, response.text)
            return response.json()
        assert time.monotonic() < deadline, f"{url} still answers 503"
        await asyncio.sleep(float(response.headers.get("retry-after", "1")) / 4)


def _ledger_ends_after(ledger: Path, moment: float) -> list[float]:
    if not ledger.exists():
        return []
    return [
        e["t"] for e in map(orjson.loads, ledger.read_bytes().splitlines()) if e["event"] == "end" and e["t"] > moment
    ]


async def _settle(
    http: httpx.AsyncClient, api: Server, traffic: Traffic, runs_by_thread: dict[str, list[dict[str, Any]]]
) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Wait until every run is terminal; the runs as the API reports them, and threads not idle at the end."""

    async def all_terminal() -> bool:
        for runs in runs_by_thread.values():
            for run in runs:
                got = await _until_ok(
                    http, traffic, "GET", f"{api.url}/threads/{run['thread_id']}/runs/{run['run_id']}"
                )
                if got["status"] in ("pending", "running"):
                    return False
        return True

    await eventually(all_terminal, bool, timeout=SETTLE_SECONDS, interval=0.5, what="every run terminal")
    final: dict[str, list[dict[str, Any]]] = {}
    busy: list[str] = []
    for thread_id, runs in runs_by_thread.items():
        final[thread_id] = [
            await _until_ok(http, traffic, "GET", f"{api.url}/threads/{thread_id}/runs/{run['run_id']}") for run in runs
        ]
        thread = await _until_ok(http, traffic, "GET", f"{api.url}/threads/{thread_id}")
        if thread["status"] != "idle":
            busy.append(f"{thread_id}: {thread['status']}")
    return final, busy


async def _load(http: httpx.AsyncClient, api: Server, traffic: Traffic) -> dict[str, list[dict[str, Any]]]:
    """THREADS threads with RUNS_PER_THREAD queued runs each (in creation order)."""
    runs_by_thread: dict[str, list[dict[str, Any]]] = {}
    for _ in range(THREADS):
        thread = await _until_ok(http, traffic, "POST", f"{api.url}/threads", {})
        runs_by_thread[thread["thread_id"]] = []
    for seq in range(RUNS_PER_THREAD):
        for thread_id, runs in runs_by_thread.items():
            body = {"assistant_id": "ledger", "input": {"seq": seq}, "multitask_strategy": "enqueue"}
            runs.append(await _until_ok(http, traffic, "POST", f"{api.url}/threads/{thread_id}/runs", body))
    return runs_by_thread


async def _probe(
    http: httpx.AsyncClient, api: Server, traffic: Traffic, stop: asyncio.Event, extra: dict[str, list[dict[str, Any]]]
) -> None:
    """Keep using the API through the fault: health, reads, and new runs on threads of their own."""
    while not stop.is_set():
        ok = await _call(http, traffic, "GET", f"{api.url}/ok")
        info = await _call(http, traffic, "GET", f"{api.url}/info")
        assert info.status_code == 200
        created = await _call(http, traffic, "POST", f"{api.url}/threads", {})
        if created.status_code == 200:
            thread_id = created.json()["thread_id"]
            body = {"assistant_id": "ledger", "input": {"seq": 0}}
            run = await _call(http, traffic, "POST", f"{api.url}/threads/{thread_id}/runs", body)
            if run.status_code == 200:
                extra[thread_id] = [run.json()]
        item = {"namespace": ["probe"], "key": "k", "value": {"at": time.time()}}
        if (await _call(http, traffic, "PUT", f"{api.url}/store/items", item)).status_code in (200, 204):
            await _call(http, traffic, "GET", f"{api.url}/store/items?namespace=probe&key=k")
        if ok.status_code != 200:
            assert "cannot be reached" in ok.json()["detail"]
        await asyncio.sleep(0.25)


def _report(name: str, verdict: Verdict, traffic: Traffic, recovery: float, cluster: Cluster) -> None:
    figures = {
        "scenario": name,
        **verdict.summary(),
        "responses": len(traffic.statuses),
        "503": traffic.statuses.count(503),
        "5xx_other": len(traffic.server_errors),
        "slowest_503_s": round(traffic.slowest_503, 2),
        "recovery_s": round(recovery, 2),
    }
    print("\nFAULT FIGURES", orjson.dumps(figures).decode())
    (cluster.tmp.parent / f"fault-{name}.json").write_bytes(orjson.dumps(figures))


def _assert_clean(verdict: Verdict, busy: list[str], traffic: Traffic, cluster: Cluster) -> None:
    assert verdict.lost == 0 and verdict.errored == 0, (verdict.summary(), cluster.logs())
    assert verdict.concurrent == [], (verdict.concurrent, cluster.logs())
    assert verdict.fifo == [], (verdict.fifo, cluster.logs())
    assert busy == [], busy
    assert traffic.server_errors == [], traffic.server_errors
    assert traffic.slowest_503 < 3.0, traffic.slowest_503
    dead = [p.log_path.name for p in cluster.processes if not p.alive]
    assert dead == [], cluster.logs()


@pytest.mark.parametrize("outage", [6.0, 25.0], ids=["6s", "25s"])
async def test_postgres_down_under_load(cluster: Cluster, http: httpx.AsyncClient, outage: float) -> None:
    """PostgreSQL stopped for 6 s (and 25 s, far past the leases) while runs execute and clients call the API:
    every run still succeeds once it is back, nothing runs twice at once or out of order, the API answers
    503 (not 500, not a hang), and every process is still up."""
    api = await cluster.start()
    traffic = Traffic()
    runs_by_thread = await _load(http, api, traffic)
    await eventually(lambda: _ledger_count(cluster.ledger), lambda n: n >= 8, timeout=120, what="runs executing")
    stop = asyncio.Event()
    extra: dict[str, list[dict[str, Any]]] = {}
    prober = asyncio.create_task(_probe(http, api, traffic, stop, extra))
    cluster.postgres.stop()
    await asyncio.sleep(outage)  # the fault's duration, not a wait for state
    cluster.postgres.start()
    back = time.time()
    final, busy = await _settle(http, api, traffic, {**runs_by_thread})
    stop.set()
    await prober
    extra_final, extra_busy = await _settle(http, api, traffic, extra)
    ends = _ledger_ends_after(cluster.ledger, back)
    verdict = judge(cluster.ledger, {**final, **extra_final})
    _report(f"postgres-{outage:g}s", verdict, traffic, (min(ends) - back) if ends else -1.0, cluster)
    _assert_clean(verdict, busy + extra_busy, traffic, cluster)
    assert traffic.statuses.count(503) > 0  # the fault was seen by clients (and answered 503)


def _lines(ledger: Path) -> int:
    return len(ledger.read_bytes().splitlines()) if ledger.exists() else 0


async def _ledger_count(ledger: Path) -> int:
    return _lines(ledger)


@dataclass
class StreamOutcomes:
    """How the streaming clients' streams ended."""

    completed: int = 0
    error_event: int = 0
    refused: int = 0
    hung: int = 0
    open_now: int = 0
    open_at_fault: int = 0  # streams in flight when the broker went away
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


async def _streamer(
    http: httpx.AsyncClient, api: Server, traffic: Traffic, stop: asyncio.Event, outcomes: StreamOutcomes
) -> None:
    """Stream runs back to back on fresh threads until stopped; each stream must end within its deadline."""
    while not stop.is_set():
        created = await _call(http, traffic, "POST", f"{api.url}/threads", {})
        if created.status_code != 200:
            await asyncio.sleep(0.2)
            continue
        thread_id = created.json()["thread_id"]
        body = {"assistant_id": "ledger", "input": {"seq": 0}, "stream_mode": ["updates"]}
        started = time.monotonic()
        try:
            async with asyncio.timeout(30.0):
                async with http.stream("POST", f"{api.url}/threads/{thread_id}/runs/stream", json=body) as response:
                    traffic.record(response.status_code, time.monotonic() - started)
                    if response.status_code != 200:
                        await response.aread()
                        outcomes.refused += 1
                        continue
                    run_id = response.headers["content-location"].rstrip("/").split("/")[-1]
                    outcomes.runs[thread_id] = [{"run_id": run_id, "thread_id": thread_id}]
                    outcomes.open_now += 1
                    try:
                        events = [event.event async for event in read_sse(response)]
                    finally:
                        outcomes.open_now -= 1
        except TimeoutError:
            outcomes.hung += 1
            continue
        except httpx.HTTPError:
            outcomes.error_event += 1  # the connection ended abruptly: the client knows it lost the stream
            continue
        if "error" in events:
            outcomes.error_event += 1
        else:
            outcomes.completed += 1


async def test_redis_down_six_seconds_with_streaming_clients(cluster: Cluster, http: httpx.AsyncClient) -> None:
    """Redis stopped for 6 s while clients stream runs: every run's outcome is unchanged (success), each stream
    ends (normally, or with an `error` event saying events were lost; never hangs), the API answers 503."""
    api = await cluster.start()
    traffic = Traffic()
    runs_by_thread = await _load(http, api, traffic)
    stop = asyncio.Event()
    outcomes = StreamOutcomes()
    streamers = [asyncio.create_task(_streamer(http, api, traffic, stop, outcomes)) for _ in range(8)]
    await eventually(lambda: _ledger_count(cluster.ledger), lambda n: n >= 8, timeout=120, what="runs executing")
    await eventually(lambda: _open(outcomes), lambda n: n >= 4, timeout=120, what="streams in flight")
    outcomes.open_at_fault = outcomes.open_now
    cluster.redis.stop()
    await asyncio.sleep(OUTAGE_SECONDS)  # the fault's duration, not a wait for state
    cluster.redis.start()
    back = time.time()
    await eventually(lambda: _completed(outcomes), lambda n: n >= 3, timeout=60, what="streams completing again")
    stop.set()
    await asyncio.gather(*streamers)
    final, busy = await _settle(http, api, traffic, {**runs_by_thread, **outcomes.runs})
    ends = _ledger_ends_after(cluster.ledger, back)
    verdict = judge(cluster.ledger, final)
    _report("redis-6s", verdict, traffic, (min(ends) - back) if ends else -1.0, cluster)
    print("STREAMS", orjson.dumps(outcomes.__dict__ | {"runs": len(outcomes.runs)}).decode())
    _assert_clean(verdict, busy, traffic, cluster)
    assert outcomes.hung == 0
    assert outcomes.completed > 0
    assert outcomes.open_at_fault >= 4  # the fault did hit streams in flight


async def _completed(outcomes: StreamOutcomes) -> int:
    return outcomes.completed


async def _open(outcomes: StreamOutcomes) -> int:
    return outcomes.open_now


async def test_a_paused_worker_writes_nothing_after_its_run_was_taken_over(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    """A worker frozen mid-node (SIGSTOP) past its lease loses the run to the other worker, which finishes it;
    thawed, the stale worker writes no checkpoint and no status, and runs no further node: it stops."""
    api = await cluster.start()
    traffic = Traffic()
    thread = await _until_ok(http, traffic, "POST", f"{api.url}/threads", {})
    body = {"assistant_id": "ledger", "input": {"seq": 0, "seconds": 1.5}}
    run = await _until_ok(http, traffic, "POST", f"{api.url}/threads/{thread['thread_id']}/runs", body)

    async def first_start() -> list[dict[str, Any]]:
        if not cluster.ledger.exists():
            return []
        return [e for e in map(orjson.loads, cluster.ledger.read_bytes().splitlines()) if e["event"] == "start"]

    [started] = await eventually(first_start, bool, timeout=60.0, what="the first node to start")
    stale = next(p for p in cluster.processes if p.process.pid == started["pid"])
    os.kill(started["pid"], signal.SIGSTOP)
    try:
        url = f"{api.url}/threads/{thread['thread_id']}/runs/{run['run_id']}"

        async def status() -> str:
            return str((await _until_ok(http, traffic, "GET", url))["status"])

        assert await eventually(status, lambda s: s == "success", timeout=60.0, what="takeover and finish") == "success"
    finally:
        os.kill(started["pid"], signal.SIGCONT)

    async def stale_stopped() -> bool:
        return "run taken over by another attempt" in stale.log() or "lease lost" in stale.log()

    await eventually(stale_stopped, bool, timeout=30.0, what="the stale worker to stop its attempt")
    entries = list(map(orjson.loads, cluster.ledger.read_bytes().splitlines()))
    assert [e["node"] for e in entries if e["pid"] == stale.process.pid and e["event"] == "start"] == ["one"]
    state = await _until_ok(http, traffic, "GET", f"{api.url}/threads/{thread['thread_id']}/state")
    assert state["values"]["steps"] == ["one", "two", "three"]
    history = await _until_ok(http, traffic, "POST", f"{api.url}/threads/{thread['thread_id']}/history", {"limit": 50})
    steps = [h["metadata"]["step"] for h in history]
    assert len(steps) == len(set(steps)), steps  # no second branch written by the stale attempt
    assert (await _until_ok(http, traffic, "GET", url))["status"] == "success"
    assert stale.alive
