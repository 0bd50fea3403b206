"""Production mode across processes: `graphyard serve` and `graphyard worker` on PostgreSQL and Redis.

Every test here starts real processes against a fresh PostgreSQL database and its own Redis key
prefix, and removes both afterwards. Without PostgreSQL or Redis the tests are skipped, unless
CI=true, where that is a failure.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import redis
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from psycopg import sql

from tests.api.support import CONFIG, ROOT, Server, eventually, free_port, obj, wait_for_file, wait_ready

POSTGRES_URL = os.environ.get("GRAPHYARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("GRAPHYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# Short leases so a dead worker's run is taken over within seconds.
LEASE_SECONDS = "2"
# A `graphyard worker` is not waited for when started: a wait for its first node includes its startup,
# which takes far longer than a node on a loaded 2-core machine (CI runs pytest on 3 xdist workers).
WORKER_STARTUP = 90.0
# Each test starts several processes; the suite's default 60 s is a single server's budget.
pytestmark = pytest.mark.timeout(180)


def _reachable() -> str | None:
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except (psycopg.Error, redis.RedisError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@dataclass
class Cluster:
    """A PostgreSQL database and a Redis prefix, and the graphyard processes started on them."""

    tmp: Path
    database_uri: str
    redis_prefix: str
    processes: list[Server] = field(default_factory=list)
    config: Path = CONFIG  # the project every process serves
    extra_env: dict[str, str] = field(default_factory=dict)  # added to every process's environment

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "DATABASE_URI": self.database_uri,
            "REDIS_URI": REDIS_URL,
            "GRAPHYARD_REDIS_PREFIX": self.redis_prefix,
            "GRAPHYARD_LEASE_SECONDS": LEASE_SECONDS,
            **self.extra_env,
            **extra,
        }

    def _spawn(self, args: list[str], env: Mapping[str, str], port: int = 0) -> Server:
        index = len(self.processes)
        log_path = self.tmp / f"{args[0]}-{index}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "graphyard", *args, "--config", str(self.config)],
                cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        server = Server(
            url=f"http://127.0.0.1:{port}",
            port=port,
            config=self.config,
            database=Path(self.database_uri.rsplit("/", 1)[-1]),
            log_path=log_path,
            process=process,
        )
        self.processes.append(server)
        return server

    async def api(self, *, workers: int = 0) -> Server:
        """A `graphyard serve` process; by default it runs no graphs at all."""
        port = free_port()
        server = self._spawn(
            ["serve", "--host", "127.0.0.1", "--port", str(port)],
            self.env(N_JOBS_PER_WORKER=str(workers)),
            port,
        )
        await wait_ready(server)
        return server

    def worker(self, *, drain_seconds: str = "10", max_retries: str = "3") -> Server:
        """A `graphyard worker` process (no HTTP)."""
        env = self.env(N_JOBS_PER_WORKER="4", GRAPHYARD_DRAIN_SECONDS=drain_seconds, BG_JOB_MAX_RETRIES=max_retries)
        return self._spawn(["worker"], env)

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.log()}" for p in self.processes)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A fresh database and Redis prefix; every process is stopped and both are removed at the end."""
    problem = _reachable()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL and Redis are required in CI: {problem}")
        pytest.skip(f"PostgreSQL or Redis unreachable: {problem}")
    name = f"graphyard_engine_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = POSTGRES_URL.rsplit("/", 1)[0]
    found = Cluster(tmp=tmp_path, database_uri=f"{base}/{name}", redis_prefix=f"graphyard-test-{name}:")
    try:
        yield found
    finally:
        for process in found.processes:
            process.stop()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{found.redis_prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
async def clients() -> AsyncIterator[list[LangGraphClient]]:
    """SDK clients made by the test, closed at the end."""
    made: list[LangGraphClient] = []
    yield made
    for client in made:
        await client.http.client.aclose()


def sdk(server: Server, made: list[LangGraphClient]) -> LangGraphClient:
    """An SDK client for one process, closed by the `clients` fixture."""
    client = get_client(url=server.url, api_key=None)
    made.append(client)
    return client


def _open_gate(gate: str) -> None:
    """Forget the first entry into the gate node, then let the node pass."""
    Path(f"{gate}.entered").unlink()
    Path(gate).touch()


async def test_killed_worker_run_finishes_on_another_worker(
    cluster: Cluster, clients: list[LangGraphClient], tmp_path: Path
) -> None:
    """A worker killed with SIGKILL mid-run loses nothing: another worker resumes the run from its
    last checkpoint and the thread ends idle, not busy."""
    api = await cluster.api()
    doomed = cluster.worker()
    client = sdk(api, clients)
    gate = str(tmp_path / "gate")
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "gate", input={"gate": gate})
    await wait_for_file(Path(f"{gate}.entered"), timeout=WORKER_STARTUP)
    doomed.process.send_signal(signal.SIGKILL)
    doomed.process.wait(10)
    _open_gate(gate)
    cluster.worker()
    done = await eventually(
        lambda: client.runs.get(thread["thread_id"], run["run_id"]),
        lambda r: r["status"] in ("success", "error", "interrupted", "timeout"),
        timeout=40,
        what="the run to finish on the second worker",
    )
    assert done["status"] == "success", cluster.logs()
    state = await client.threads.get_state(thread["thread_id"])
    assert obj(state["values"])["steps"] == ["before", "hold", "after"], "resumed after `before`, not from scratch"
    assert (await client.threads.get(thread["thread_id"]))["status"] == "idle"


async def test_run_started_through_one_api_is_joined_through_another(
    cluster: Cluster, clients: list[LangGraphClient]
) -> None:
    """Events of a run executed by a worker process reach a client of a different API process,
    live and replayed by event id."""
    first, second = await cluster.api(), await cluster.api()
    cluster.worker()
    a, b = sdk(first, clients), sdk(second, clients)
    thread = await a.threads.create()
    run = await a.runs.create(
        thread["thread_id"], "slow", input={"delay": 0.2}, stream_mode="updates", stream_resumable=True
    )
    live = [part async for part in b.runs.join_stream(thread["thread_id"], run["run_id"])]
    names = [part.event for part in live]
    assert names.count("updates") == 3, (names, cluster.logs())
    result = await b.runs.join(thread["thread_id"], run["run_id"])
    assert result["steps"] == ["s1", "s2", "s3"]
    replay = [part async for part in b.runs.join_stream(thread["thread_id"], run["run_id"], last_event_id="-")]
    assert [p.data for p in replay if p.event == "updates"] == [p.data for p in live if p.event == "updates"]


async def test_cancel_reaches_a_run_on_another_process(
    cluster: Cluster, clients: list[LangGraphClient], tmp_path: Path
) -> None:
    """Cancelling through one API process stops a run that a separate worker process executes."""
    first, second = await cluster.api(), await cluster.api()
    cluster.worker()
    a, b = sdk(first, clients), sdk(second, clients)
    gate = str(tmp_path / "never-opened")
    thread = await a.threads.create()
    run = await a.runs.create(thread["thread_id"], "gate", input={"gate": gate})
    await wait_for_file(Path(f"{gate}.entered"), timeout=WORKER_STARTUP)
    await b.runs.cancel(thread["thread_id"], run["run_id"], wait=True, action="interrupt")
    stopped = await a.runs.get(thread["thread_id"], run["run_id"])
    assert stopped["status"] == "interrupted", cluster.logs()
    state = await a.threads.get_state(thread["thread_id"])
    assert obj(state["values"])["steps"] == ["before"]
    assert state["next"] == ["hold"]


async def test_many_processes_start_at_once_on_an_empty_database(
    cluster: Cluster, clients: list[LangGraphClient]
) -> None:
    """Four API processes and two workers started together against an empty database all come up,
    the migrations are applied exactly once, and runs work."""
    workers = [cluster.worker(), cluster.worker()]
    apis = await asyncio.gather(*(cluster.api() for _ in range(4)))
    assert all(w.alive for w in workers), cluster.logs()
    async with await psycopg.AsyncConnection.connect(cluster.database_uri) as conn:
        cursor = await conn.execute("SELECT version, count(*) FROM graphyard_migrations GROUP BY version")
        rows = await cursor.fetchall()
    assert rows and all(count == 1 for _, count in rows), rows
    for api in apis:
        result = await sdk(api, clients).runs.wait(None, "echo", input={"value": api.port})
        assert obj(result)["echoed"] == api.port


def test_serve_refuses_to_start_without_database_uri(tmp_path: Path) -> None:
    """`graphyard serve` without DATABASE_URI exits at once with a message naming the variable."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URI", "POSTGRES_URI")}
    done = subprocess.run(
        [sys.executable, "-m", "graphyard", "serve", "--config", str(CONFIG)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert b"DATABASE_URI" in done.stderr


async def test_api_only_process_runs_no_graphs(cluster: Cluster, clients: list[LangGraphClient]) -> None:
    """With N_JOBS_PER_WORKER=0 an API process accepts runs but never executes them; a worker does."""
    api = await cluster.api(workers=0)
    client = sdk(api, clients)
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "echo", input={"value": 1})
    await asyncio.sleep(1.0)  # asserting that nothing happens without a worker
    assert (await client.runs.get(thread["thread_id"], run["run_id"]))["status"] == "pending"
    cluster.worker()
    result = await client.runs.join(thread["thread_id"], run["run_id"])
    assert result["echoed"] == 1


async def test_sigterm_drains_and_hands_unfinished_runs_back(
    cluster: Cluster, clients: list[LangGraphClient], tmp_path: Path
) -> None:
    """SIGTERM stops a worker cleanly: a run still going at the drain deadline goes back to the queue
    at once (no lease expiry needed) and another worker finishes it from its last checkpoint."""
    api = await cluster.api()
    draining = cluster.worker(drain_seconds="0.5")
    client = sdk(api, clients)
    gate = str(tmp_path / "gate")
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "gate", input={"gate": gate})
    await wait_for_file(Path(f"{gate}.entered"), timeout=WORKER_STARTUP)
    assert draining.stop() == 0, draining.log()
    requeued = await client.runs.get(thread["thread_id"], run["run_id"])
    assert requeued["status"] == "pending", cluster.logs()
    _open_gate(gate)
    cluster.worker()
    result = await client.runs.join(thread["thread_id"], run["run_id"])
    assert obj(result)["steps"] == ["before", "hold", "after"], cluster.logs()


async def test_two_workers_fire_each_cron_occurrence_once(
    cluster: Cluster, clients: list[LangGraphClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers whose schedulers look every 50 ms find a batch of crons due at once: every
    occurrence fires exactly once (the unique (cron, scheduled time) claim), not once per worker."""
    monkeypatch.setenv("CRON_SCHEDULER_SLEEP_TIME", "0.05")
    workers = [cluster.worker(), cluster.worker()]
    client = sdk(await cluster.api(), clients)
    threads = [str((await client.threads.create())["thread_id"]) for _ in range(12)]
    for i, thread_id in enumerate(threads):
        await client.crons.create_for_thread(thread_id, "echo", schedule="0 0 1 1 *", input={"value": i})
    async with await psycopg.AsyncConnection.connect(cluster.database_uri, autocommit=True) as conn:
        # Due for both workers in the same instant, as after a deployment was down over a boundary.
        await conn.execute("UPDATE graphyard_crons SET next_run_date = '2000-01-01T00:00:00.000000+00:00'")
    for thread_id in threads:
        await eventually(
            functools.partial(client.runs.list, thread_id),
            lambda rs: len(rs) >= 1 and all(r["status"] == "success" for r in rs),
            what=f"the cron run on {thread_id}",
        )
    await asyncio.sleep(1.0)  # twenty more passes of each scheduler
    counts = [len(await client.runs.list(thread_id)) for thread_id in threads]
    assert counts == [1] * len(threads), cluster.logs()
    async with await psycopg.AsyncConnection.connect(cluster.database_uri) as conn:
        cursor = await conn.execute("SELECT count(*) FROM graphyard_cron_fires")
        assert await cursor.fetchone() == (len(threads),)
    assert all(w.alive for w in workers), cluster.logs()


async def test_run_whose_worker_dies_on_its_last_attempt_fails(
    cluster: Cluster, clients: list[LangGraphClient], tmp_path: Path
) -> None:
    """When the worker of a run on its last allowed attempt dies, the sweeper of another worker marks the
    run `error` once the lease expires, rather than running it again, and frees the thread."""
    api = await cluster.api()
    doomed = cluster.worker(max_retries="1")
    client = sdk(api, clients)
    gate = str(tmp_path / "never-opened")
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "gate", input={"gate": gate})
    await wait_for_file(Path(f"{gate}.entered"), timeout=WORKER_STARTUP)
    doomed.process.send_signal(signal.SIGKILL)
    doomed.process.wait(10)
    cluster.worker(max_retries="1")
    failed = await eventually(
        lambda: client.runs.get(thread["thread_id"], run["run_id"]),
        lambda r: r["status"] not in ("pending", "running"),
        timeout=40,
        what="the sweeper to settle the run",
    )
    assert failed["status"] == "error", cluster.logs()
    body = obj(await client.runs.join(thread["thread_id"], run["run_id"]))
    assert obj(body["__error__"])["error"] == "RetryLimitExceeded"
    assert (await client.threads.get(thread["thread_id"]))["status"] == "error"
