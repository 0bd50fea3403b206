"""Fixtures: real graphyard subprocesses on free ports, a langgraph_sdk client and a raw httpx client.

`start_server` (typed by `StartServer`) starts a server for one test, with custom args or env, and can
restart one on the same SQLite file. `server` is one session-wide server for tests that can share it.
The log of every server a test used is attached to its report when the test fails.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Iterator, Mapping, Sequence
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.api.support import CONFIG, Server, StartServer, launch, running, wait_ready

SERVERS = pytest.StashKey[list[Server]]()


def _watch(item: pytest.Item, server: Server) -> None:
    """Remember that the test `item` talks to `server`, so a failure shows its log."""
    item.stash.setdefault(SERVERS, []).append(server)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the logs of the test's servers to the report of a failed test."""
    report: pytest.TestReport = yield
    if report.failed:
        for server in item.stash.get(SERVERS, []):
            report.sections.append((f"graphyard log {server.url} ({server.database.name})", server.log()))
    return report


@pytest.fixture(scope="session")
def session_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One graphyard for every test that does not need a server of its own."""
    with running(CONFIG, tmp_path_factory.mktemp("session-server")) as server:
        yield server


@pytest.fixture
def server(session_server: Server, request: pytest.FixtureRequest) -> Server:
    """The shared server, checked alive, with its log attached to this test's failure report."""
    assert session_server.alive, f"the shared graphyard died:\n{session_server.log()}"
    _watch(request.node, session_server)
    return session_server


@pytest.fixture
def start_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[StartServer]:
    """A factory for servers owned by one test; every one is stopped (SIGTERM, then SIGKILL) at teardown."""
    started: list[Server] = []

    async def start(
        *,
        config: Path = CONFIG,
        database: Path | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> Server:
        index = len(started)
        server = launch(
            config,
            database or tmp_path / f"graphyard-{index}.sqlite",
            tmp_path / f"server-{index}.log",
            port=port,
            args=args,
            env=env,
        )
        started.append(server)
        _watch(request.node, server)
        await wait_ready(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
async def client(server: Server) -> AsyncIterator[LangGraphClient]:
    """A langgraph_sdk client for the shared server."""
    sdk = get_client(url=server.url, api_key=None, timeout=60)
    try:
        yield sdk
    finally:
        await sdk.http.client.aclose()


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """A raw HTTP client for the shared server."""
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as raw:
        yield raw
