"""Fixtures for API tests that run on both backends: `graphyard dev` on SQLite, `graphyard serve` on
PostgreSQL + Redis (a fresh database and key prefix per module, removed afterwards)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from psycopg import sql

from tests.api.backends import BACKENDS, Backend, create_database, drop_database, postgres_admin_url
from tests.api.support import Server, free_port, wait_ready_blocking
from tests.engine.test_distributed import POSTGRES_URL, REDIS_URL, Cluster, _reachable


@pytest.fixture(scope="module")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`graphyard serve` running graphs on a fresh PostgreSQL database and Redis prefix, removed afterwards."""
    problem = _reachable()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL and Redis are required in CI: {problem}")
        pytest.skip(f"PostgreSQL or Redis unreachable: {problem}")
    name = f"graphyard_api_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = POSTGRES_URL.rsplit("/", 1)[0]
    made = Cluster(tmp=tmp_path_factory.mktemp("api-pg"), database_uri=f"{base}/{name}", redis_prefix=f"{name}:")
    try:
        port = free_port()
        server = made._spawn(
            ["serve", "--host", "127.0.0.1", "--port", str(port)], made.env(N_JOBS_PER_WORKER="4"), port
        )
        # A fresh database is migrated at startup: slower than `dev`; within the 60 s test timeout.
        wait_ready_blocking(server, timeout=50)
        yield server
    finally:
        for process in made.processes:
            process.stop()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{made.redis_prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.redis])])
def backend(request: pytest.FixtureRequest) -> Server:
    """`graphyard dev` on SQLite (the shared server), or `graphyard serve` on PostgreSQL + Redis."""
    found: Server = request.getfixturevalue("server" if request.param == "sqlite" else "postgres_server")
    assert found.alive, f"graphyard died:\n{found.log()}"
    return found


@pytest.fixture(params=BACKENDS)
def fresh_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A fresh SQLite file or PostgreSQL database for this test only, for servers of its own project
    (started with `Backend.start`); servers stopped and the database dropped afterwards."""
    if request.param == "sqlite":
        found = Backend("sqlite", tmp_path)
        yield found
        for started in found.servers:
            started.stop()
        return
    admin = postgres_admin_url()
    name, url = create_database(admin)
    found = Backend("postgres", tmp_path, url)
    try:
        yield found
    finally:
        for started in found.servers:
            started.stop()
        drop_database(admin, name)
