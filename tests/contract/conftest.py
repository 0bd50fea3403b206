"""Backend fixtures for the contract suites: a real SQLite file, or a PostgreSQL database cloned from a template.

PostgreSQL comes from GRAPHYARD_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres).
A template database is migrated once per session; each test gets `CREATE DATABASE … TEMPLATE` under a
unique name and drops it afterwards. When the server is unreachable the PostgreSQL cases are skipped,
unless CI=true, where that is a failure.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from graphyard.storage import Storage, open_storage

POSTGRES_URL = os.environ.get("GRAPHYARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def database_url(name: str) -> str:
    """The test server's URL with another database name."""
    parts = urlsplit(POSTGRES_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)


def create_database(name: str, template: str | None = None) -> str:
    """Create a database (optionally a clone of `template`) and return its URL."""
    with _admin() as conn:
        if template is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        else:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
            )
    return database_url(name)


def drop_database(name: str) -> None:
    """Drop a test database, closing any session still connected to it."""
    with _admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def unique_name(prefix: str) -> str:
    """A database name no other test or session uses."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The PostgreSQL server URL, after checking that it answers (skip, or fail under CI=true)."""
    try:
        _admin().close()
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL unreachable at {POSTGRES_URL}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return POSTGRES_URL


async def _migrate(url: str) -> None:
    storage = await open_storage(url)
    await storage.close()


@pytest.fixture(scope="session")
def postgres_template(postgres_server: str) -> Iterator[str]:
    """A database migrated once per session, which each test clones."""
    name = unique_name("graphyard_test_tpl")
    url = create_database(name)
    try:
        asyncio.run(_migrate(url))
        yield name
    finally:
        drop_database(name)


@pytest.fixture
def postgres_url(postgres_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test only."""
    name = unique_name("graphyard_test")
    url = create_database(name, template=postgres_template)
    try:
        yield url
    finally:
        drop_database(name)


@pytest.fixture
def empty_postgres_url(postgres_server: str) -> Iterator[str]:
    """An empty PostgreSQL database (never migrated) for this test only."""
    name = unique_name("graphyard_test_empty")
    url = create_database(name)
    try:
        yield url
    finally:
        drop_database(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh database on each backend: a real SQLite file, or a cloned PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'graphyard.sqlite'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def storage(storage_url: str) -> AsyncIterator[Storage]:
    """An open, migrated storage on each backend, closed after the test."""
    opened = await open_storage(storage_url)
    try:
        yield opened
    finally:
        await opened.close()
