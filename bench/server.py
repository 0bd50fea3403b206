"""Start a real server as subprocesses; a backend is only a different way of starting it.

Backends: graphyard on SQLite, graphyard on PostgreSQL (one process, or an API-only process plus separate
workers), and the official reference server (`langgraph dev`) from its own virtualenv.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx

from bench import proctree
from bench.graphs import GRAPHS

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Launch:
    """How to start one server: its argv and the environment variables to set for it."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    # Extra processes started once the first answers /ok (separate run workers), each with its own log.
    workers: list[list[str]] = field(default_factory=list)
    # A log line each worker prints once it is ready to take runs.
    worker_ready_line: str = ""


class Backend(Protocol):
    """How to start the server for one storage backend, with fresh state of its own."""

    @property
    def name(self) -> str:
        """The backend's name in result file names: sqlite, postgres."""
        ...

    def launch(self, *, config: Path, workdir: Path, port: int, n_jobs: int) -> AbstractAsyncContextManager[Launch]:
        """Prepare fresh state (a database), yield how to start the server on HOST:port, then clean up."""
        ...

    def describe(self) -> dict[str, str]:
        """Facts about the backend for the results file (never credentials)."""
        ...


def _common_args(config: Path, port: int, n_jobs: int) -> list[str]:
    return ["--config", str(config), "--host", HOST, "--port", str(port), "--n-jobs-per-worker", str(n_jobs)]


@dataclass(frozen=True)
class SqliteBackend:
    """`graphyard dev` on a fresh SQLite file in the scenario's temp directory, in-process broker."""

    name: str = "sqlite"

    @asynccontextmanager
    async def launch(self, *, config: Path, workdir: Path, port: int, n_jobs: int) -> AsyncIterator[Launch]:
        database = workdir / "graphyard.sqlite"
        yield Launch(
            [
                sys.executable,
                "-m",
                "graphyard",
                "dev",
                *_common_args(config, port, n_jobs),
                "--database",
                str(database),
                "--no-reload",
            ]
        )

    def describe(self) -> dict[str, str]:
        return {"mode": "graphyard dev", "database": "sqlite (fresh temp file)", "broker": "memory"}


@dataclass(frozen=True)
class PostgresBackend:
    """`graphyard serve` on a fresh PostgreSQL database created beside the one `database_url` names.

    The database is created with CREATE DATABASE (the role needs CREATEDB) and dropped afterwards.
    With `redis_url`, events go through Redis; without it the server uses its in-process broker.
    With `workers` > 0, `serve` is API only (`--n-jobs-per-worker 0`) and that many `graphyard worker`
    processes execute the runs, each with the scenario's run slots; they need Redis, and share a key
    prefix of their own that is deleted afterwards.
    """

    database_url: str
    redis_url: str | None = None
    workers: int = 0

    @property
    def name(self) -> str:
        return f"postgres-{self.workers}w" if self.workers else "postgres"

    @asynccontextmanager
    async def launch(self, *, config: Path, workdir: Path, port: int, n_jobs: int) -> AsyncIterator[Launch]:
        import psycopg
        from psycopg import sql

        if self.workers and not self.redis_url:
            raise ServerFailed("separate workers need Redis: pass --redis-url (or set REDIS_URI)")
        tag = uuid.uuid4().hex[:12]
        dbname = f"graphyard_bench_{tag}"
        prefix = f"graphyard-bench-{tag}:"
        async with await psycopg.AsyncConnection.connect(self.database_url, autocommit=True) as admin:
            await admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        env = {"DATABASE_URI": _with_database(self.database_url, dbname), "GRAPHYARD_REDIS_PREFIX": prefix}
        if self.redis_url:
            env["REDIS_URI"] = self.redis_url
        graphyard = [sys.executable, "-m", "graphyard"]
        try:
            if self.workers:
                worker = [*graphyard, "worker", "--config", str(config), "--n-jobs-per-worker", str(n_jobs)]
                yield Launch(
                    [*graphyard, "serve", *_common_args(config, port, 0)],
                    env,
                    workers=[worker] * self.workers,
                    worker_ready_line="graphyard worker ready",
                )
            else:
                yield Launch([*graphyard, "serve", *_common_args(config, port, n_jobs)], env)
        finally:
            async with await psycopg.AsyncConnection.connect(self.database_url, autocommit=True) as admin:
                await admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
            if self.redis_url:
                await _delete_redis_prefix(self.redis_url, prefix)

    def describe(self) -> dict[str, str]:
        facts = {
            "mode": "graphyard serve",
            "database": "postgres (fresh database)",
            "broker": "redis" if self.redis_url else "memory",
        }
        if self.workers:
            facts["mode"] = f"graphyard serve (API only) + {self.workers} x graphyard worker"
        return facts


async def _delete_redis_prefix(url: str, prefix: str) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
    finally:
        await client.aclose()


REFERENCE_VENV = Path(__file__).resolve().parent / ".reference-venv"
# What the reference venv gets: the CLI with the in-memory runtime, which pulls in langgraph-api and langgraph.
REFERENCE_REQUIREMENT = "langgraph-cli[inmem]"
REFERENCE_PACKAGES = ("langgraph-cli", "langgraph-api", "langgraph-runtime-inmem", "langgraph", "langgraph-sdk")


def ensure_reference_venv(venv: Path = REFERENCE_VENV) -> dict[str, str | None]:
    """Create the reference server's own virtualenv (never graphyard's) if missing; return its package versions."""
    langgraph = venv / "bin" / "langgraph"
    if not langgraph.exists():
        print(f"bench: installing {REFERENCE_REQUIREMENT} into {venv} (once)", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, REFERENCE_REQUIREMENT], check=True)
    probe = (
        "import json, importlib.metadata as m\n"
        "def v(p):\n"
        "    try: return m.version(p)\n"
        "    except m.PackageNotFoundError: return None\n"
        f"print(json.dumps({{p: v(p) for p in {list(REFERENCE_PACKAGES)!r}}}))"
    )
    out = subprocess.run([str(venv / "bin" / "python"), "-c", probe], check=True, capture_output=True, text=True)
    versions: dict[str, str | None] = json.loads(out.stdout)
    return versions


@dataclass(frozen=True)
class ReferenceBackend:
    """The official server, `langgraph dev` (in-memory runtime), from `bench/.reference-venv`."""

    venv: Path = REFERENCE_VENV
    name: str = "reference"

    @asynccontextmanager
    async def launch(self, *, config: Path, workdir: Path, port: int, n_jobs: int) -> AsyncIterator[Launch]:
        langgraph = self.venv / "bin" / "langgraph"
        if not langgraph.exists():
            raise ServerFailed(f"{langgraph} is missing: run with --reference once to create the venv")
        argv = [str(langgraph), "dev", "--no-browser", "--no-reload", *_common_args(config, port, n_jobs)]
        # No analytics and no LangSmith tracing: the bench stays on loopback.
        env = {"LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGSMITH_TRACING": "false", "LANGCHAIN_TRACING_V2": "false"}
        env["PATH"] = os.pathsep.join([str(self.venv / "bin"), os.environ.get("PATH", "")])
        yield Launch(argv, env)

    def describe(self) -> dict[str, str]:
        return {"mode": "langgraph dev (reference, in-memory runtime)", "database": "in-memory", "broker": "memory"}


def _with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


class ServerFailed(RuntimeError):
    """The server exited or never answered /ok; the message carries the tail of its log."""


@dataclass
class Server:
    """A running server: its URL, processes (the HTTP one first) and log file.

    CPU and memory are always of every process started for it and all their descendants, so servers that
    split work across processes (the reference's CLI, separate workers) are measured the same way.
    """

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    argv: list[str]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def roots(self) -> list[int]:
        return [self.process.pid, *(w.pid for w in self.workers)]

    def rss_kb(self) -> int:
        """Resident set size of the whole process tree (sum of VmRSS), in KiB."""
        return proctree.rss_kb(self.roots)

    def hwm_kb(self) -> int:
        """Sum of each process's peak resident set size (VmHWM), in KiB."""
        return proctree.hwm_kb(self.roots)

    def cpu_seconds(self) -> float:
        """User + system CPU of the whole process tree so far."""
        return proctree.cpu_seconds(self.roots)

    def process_count(self) -> int:
        return proctree.process_count(self.roots)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def write_project(workdir: Path) -> Path:
    """Write the benchmark langgraph.json; its graphs import bench.graphs from the repo root."""
    config = workdir / "langgraph.json"
    config.write_text(
        json.dumps({"dependencies": [str(REPO_ROOT)], "graphs": GRAPHS, "env": {}}, indent=2), encoding="utf-8"
    )
    return config


async def _wait_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2.0) as http:
        while True:
            if server.process.poll() is not None:
                raise ServerFailed(
                    f"server exited with code {server.process.returncode} before it was ready "
                    f"({' '.join(server.argv[2:4])}); its log:\n{server.log_tail()}"
                )
            try:
                response = await http.get(server.url + "/ok")
                if response.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise ServerFailed(f"server did not answer /ok within {timeout:.0f} s; its log:\n{server.log_tail()}")
            await asyncio.sleep(0.05)


# The server reads these; only the backend decides them, never the shell the bench was started from.
_BACKEND_VARS = ("DATABASE_URI", "POSTGRES_URI", "REDIS_URI", "N_JOBS_PER_WORKER", "GRAPHYARD_REDIS_PREFIX")


def _spawn(argv: list[str], env_extra: dict[str, str], workdir: Path, log_path: Path) -> subprocess.Popen[bytes]:
    # The graphyard measured is the one beside this bench/, even when another checkout is installed editable.
    # (The reference imports only bench.graphs from here.)
    pythonpath = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {k: v for k, v in os.environ.items() if k not in _BACKEND_VARS and k != "VIRTUAL_ENV"}
    env.update({"PYTHONUNBUFFERED": "1", "PYTHONPATH": pythonpath, **env_extra})
    with open(log_path, "wb") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env=env)


def _stop(processes: list[subprocess.Popen[bytes]], grace: float = 10.0) -> None:
    """SIGINT every process, wait, then SIGKILL whatever of their trees is still there (only what we started)."""
    tree = proctree.tree_pids([p.pid for p in processes if p.poll() is None])
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for pid in tree:
        if pid not in {p.pid for p in processes} and os.path.exists(f"/proc/{pid}"):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


async def _wait_workers(server: Server, logs: list[Path], line: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = list(zip(server.workers, logs, strict=True))
    while pending:
        process, log = pending[0]
        if process.poll() is not None:
            tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-30:])
            raise ServerFailed(f"worker exited with code {process.returncode} before it was ready; its log:\n{tail}")
        if line in log.read_text(encoding="utf-8", errors="replace"):
            pending.pop(0)
            continue
        if time.monotonic() > deadline:
            raise ServerFailed(f"worker did not log {line!r} within {timeout:.0f} s")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running_server(
    backend: Backend, *, n_jobs: int, env: dict[str, str] | None = None, startup_timeout: float = 60.0
) -> AsyncIterator[Server]:
    """Start a server with its own temp dir (config, database, logs) and extra `env`, yield it, then stop it."""
    with tempfile.TemporaryDirectory(prefix="graphyard-bench-") as tmp:
        workdir = Path(tmp)
        config = write_project(workdir)
        port = free_port()
        async with backend.launch(config=config, workdir=workdir, port=port, n_jobs=n_jobs) as launch:
            log_path = workdir / "server.log"
            launch_env = {**(env or {}), **launch.env}
            process = await asyncio.to_thread(_spawn, launch.argv, launch_env, workdir, log_path)
            server = Server(url=f"http://{HOST}:{port}", process=process, log_path=log_path, argv=launch.argv)
            try:
                await _wait_ready(server, startup_timeout)
                logs = [workdir / f"worker-{i}.log" for i in range(len(launch.workers))]
                for argv, log in zip(launch.workers, logs, strict=True):
                    server.workers.append(await asyncio.to_thread(_spawn, argv, launch_env, workdir, log))
                await _wait_workers(server, logs, launch.worker_ready_line, startup_timeout)
                yield server
            finally:
                await asyncio.to_thread(_stop, [process, *server.workers])
