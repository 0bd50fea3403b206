"""A project's server on either backend: `graphyard dev` on a SQLite file, or `graphyard serve` on a fresh
PostgreSQL database (dropped afterwards). Used by behaviour tests that must hold on both backends.

Without a reachable PostgreSQL the postgres cases are skipped, unless CI=true, where that is a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from psycopg import sql

from tests.api.support import ROOT, STARTUP_SECONDS, Server, free_port, launch, wait_ready

POSTGRES_URL = os.environ.get("GRAPHYARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SERVE = [sys.executable, "-m", "graphyard", "serve"]
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def postgres_admin_url() -> str:
    """The admin URL of the shared PostgreSQL, after checking it answers (skip, or fail under CI=true)."""
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL unreachable at {POSTGRES_URL}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return POSTGRES_URL


def create_database(admin_url: str) -> tuple[str, str]:
    """A new empty database on the server at admin_url: (name, url)."""
    name = f"graphyard_api_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, f"{admin_url.rsplit('/', 1)[0]}/{name}"


def drop_database(admin_url: str, name: str) -> None:
    """Drop a test database, closing any session still on it."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def launch_serve(config: Path, database_uri: str, log_path: Path, env: Mapping[str, str] | None) -> Server:
    """Start `python -m graphyard serve` on `database_uri` (API and workers in one process, memory broker)."""
    port = free_port()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [*SERVE, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "DATABASE_URI": database_uri, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return Server(f"http://127.0.0.1:{port}", port, config, Path(database_uri), log_path, process)


@dataclass
class Backend:
    """Where a test's servers keep their data: a SQLite file or a PostgreSQL database."""

    name: str
    tmp: Path
    database_uri: str | None = None
    servers: list[Server] = field(default_factory=list)

    async def start(self, config: Path, env: Mapping[str, str] | None = None) -> Server:
        """Serve `config` on this backend and wait until it answers /ok."""
        index = len(self.servers)
        log_path = self.tmp / f"server-{index}.log"
        if self.database_uri is None:
            server = launch(config, self.tmp / "graphyard.sqlite", log_path, env=env)
        else:
            server = launch_serve(config, self.database_uri, log_path, env)
        self.servers.append(server)
        # A fresh PostgreSQL database is migrated at startup: slower than `dev`, within the test timeout.
        await wait_ready(server, timeout=50 if self.database_uri else STARTUP_SECONDS)
        return server

    def connect(self) -> psycopg.Connection[tuple[object, ...]] | None:
        """A PostgreSQL connection to the backend's database (None on SQLite: open the file instead)."""
        return None if self.database_uri is None else psycopg.connect(self.database_uri, autocommit=True)

    @property
    def sqlite_path(self) -> Path:
        return self.tmp / "graphyard.sqlite"


@asynccontextmanager
async def sdk(server: Server) -> AsyncIterator[LangGraphClient]:
    """A langgraph_sdk client for `server`, closed on exit."""
    client = get_client(url=server.url, api_key=None, timeout=60)
    try:
        yield client
    finally:
        await client.http.client.aclose()
