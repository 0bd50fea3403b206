"""Start a real graphyard server as a subprocess; a backend is only a different way of starting it."""

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

from bench.graphs import GRAPHS

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Launch:
    """How to start one server: its argv and the environment variables to set for it."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


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
    """

    database_url: str
    redis_url: str | None = None
    name: str = "postgres"

    @asynccontextmanager
    async def launch(self, *, config: Path, workdir: Path, port: int, n_jobs: int) -> AsyncIterator[Launch]:
        import psycopg
        from psycopg import sql

        dbname = f"graphyard_bench_{uuid.uuid4().hex[:12]}"
        async with await psycopg.AsyncConnection.connect(self.database_url, autocommit=True) as admin:
            await admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        env = {"DATABASE_URI": _with_database(self.database_url, dbname)}
        if self.redis_url:
            env["REDIS_URI"] = self.redis_url
        try:
            yield Launch([sys.executable, "-m", "graphyard", "serve", *_common_args(config, port, n_jobs)], env)
        finally:
            async with await psycopg.AsyncConnection.connect(self.database_url, autocommit=True) as admin:
                await admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))

    def describe(self) -> dict[str, str]:
        return {
            "mode": "graphyard serve",
            "database": "postgres (fresh database)",
            "broker": "redis" if self.redis_url else "memory",
        }


def _with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


class ServerFailed(RuntimeError):
    """The server exited or never answered /ok; the message carries the tail of its log."""


@dataclass
class Server:
    """A running server: its URL, process and log file."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    argv: list[str]

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_kb(self) -> int:
        """Resident set size of the server process (VmRSS in /proc/<pid>/status), in KiB."""
        return _proc_status_kb(self.pid, "VmRSS")

    def hwm_kb(self) -> int:
        """Peak resident set size (VmHWM), in KiB."""
        return _proc_status_kb(self.pid, "VmHWM")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _proc_status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


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
_BACKEND_VARS = ("DATABASE_URI", "POSTGRES_URI", "REDIS_URI", "N_JOBS_PER_WORKER")


def _spawn(launch: Launch, workdir: Path, log_path: Path) -> subprocess.Popen[bytes]:
    # The graphyard measured is the one beside this bench/, even when another checkout is installed editable.
    pythonpath = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {k: v for k, v in os.environ.items() if k not in _BACKEND_VARS}
    env.update({"PYTHONUNBUFFERED": "1", "PYTHONPATH": pythonpath, **launch.env})
    with open(log_path, "wb") as log:
        return subprocess.Popen(launch.argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env=env)


def _stop(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@asynccontextmanager
async def running_server(
    backend: Backend, *, n_jobs: int, env: dict[str, str] | None = None, startup_timeout: float = 60.0
) -> AsyncIterator[Server]:
    """Start a server with its own temp dir (config, database, log) and extra `env`, yield it, then stop it."""
    with tempfile.TemporaryDirectory(prefix="graphyard-bench-") as tmp:
        workdir = Path(tmp)
        config = write_project(workdir)
        port = free_port()
        async with backend.launch(config=config, workdir=workdir, port=port, n_jobs=n_jobs) as launch:
            log_path = workdir / "server.log"
            launch = Launch(launch.argv, {**(env or {}), **launch.env})
            process = await asyncio.to_thread(_spawn, launch, workdir, log_path)
            server = Server(url=f"http://{HOST}:{port}", process=process, log_path=log_path, argv=launch.argv)
            try:
                await _wait_ready(server, startup_timeout)
                yield server
            finally:
                await asyncio.to_thread(_stop, process)
