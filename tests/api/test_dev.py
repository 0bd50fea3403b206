"""`graphyard dev` habits of `langgraph dev`: reload on edits (runs in flight resume), banner with Docs and
Studio links, HTTPS, --version, defaults in --help, and one line for each flag that does nothing."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx
import pytest

from tests.api.clients import open_client
from tests.api.support import ROOT, Server, eventually, free_port, wait_for_file, wait_ready

pytestmark = pytest.mark.timeout(240)
# With reload the project is loaded twice (supervisor, then server): slow on a loaded machine.
STARTUP = 120.0

GRAPH = """
import asyncio
import operator
import time
from pathlib import Path
from typing import Annotated, Any

from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

VERSION = {version}


class State(TypedDict, total=False):
    gate: str
    steps: Annotated[list[str], operator.add]
    version: int


def before(state: State) -> dict[str, Any]:
    return {{"steps": ["before"], "version": VERSION}}


async def hold(state: State) -> dict[str, Any]:
    gate = state.get("gate")
    if gate:
        Path(gate + ".entered").touch()
        deadline = time.monotonic() + 60
        while not Path(gate).exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    return {{"steps": ["hold"]}}


graph = (
    StateGraph(State)
    .add_node("before", before)
    .add_node("hold", hold)
    .add_edge(START, "before")
    .add_edge("before", "hold")
    .add_edge("hold", END)
    .compile()
)
"""


def project(folder: Path, version: int) -> Path:
    """A one-graph project whose `before` node reports `version`; returns its langgraph.json."""
    (folder / "agent.py").write_text(GRAPH.format(version=version))
    config = folder / "langgraph.json"
    config.write_text(json.dumps({"graphs": {"agent": "./agent.py:graph"}}))
    return config


def start_dev(config: Path, log: Path, args: Sequence[str] = (), port: int | None = None) -> Server:
    """`python -m graphyard dev` exactly as typed (reload on unless args say otherwise)."""
    port = port or free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "graphyard", "dev", "--config", str(config), "--port", str(port), *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "LOG_JSON": ""},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return Server(
        url=f"http://127.0.0.1:{port}",
        port=port,
        config=config,
        database=config.parent / ".graphyard" / "graphyard.sqlite",
        log_path=log,
        process=process,
        args=tuple(args),
    )


@pytest.fixture
async def servers() -> AsyncIterator[list[Server]]:
    """Servers a test started, stopped at the end."""
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


async def version_of(server: Server) -> int | None:
    """What a stateless run of the project's graph reports (None while the server restarts)."""
    try:
        async with open_client(server) as client:
            values = await client.runs.wait(None, "agent", input={})
    except (httpx.TransportError, httpx.HTTPStatusError):
        return None
    assert isinstance(values, dict)
    version: int = values["version"]
    return version


async def test_reload_picks_up_an_edit_and_resumes_the_run_in_flight(tmp_path: Path, servers: list[Server]) -> None:
    """Editing the graph's file restarts the server, which then serves the new code; a run held in a
    node during the reload is handed back and resumes from its checkpoint, not from the start."""
    config = project(tmp_path, version=1)
    server = start_dev(config, tmp_path / "dev.log")
    servers.append(server)
    await wait_ready(server, timeout=STARTUP)
    assert await version_of(server) == 1
    gate = tmp_path / "gate"
    async with open_client(server) as client:
        thread = await client.threads.create()
        run = await client.runs.create(thread["thread_id"], "agent", input={"gate": str(gate)})
    await wait_for_file(Path(f"{gate}.entered"))

    (tmp_path / "agent.py").write_text(GRAPH.format(version=2))
    await eventually(lambda: _log(server), lambda text: "reloading after changes to agent.py" in text, what="a reload")
    await eventually(lambda: version_of(server), lambda v: v == 2, timeout=60, interval=0.2, what="the edited graph")
    gate.touch()
    async with open_client(server) as client:
        await client.runs.join(thread["thread_id"], run["run_id"])
        finished = await client.runs.get(thread["thread_id"], run["run_id"])
        state = await client.threads.get_state(thread["thread_id"])
    assert finished["status"] == "success", server.log()
    assert isinstance(state["values"], dict)
    assert state["values"]["steps"] == ["before", "hold"], "resumed at `hold`; `before` ran once"
    assert "run handed back" in server.log(tail=10_000)
    assert server.alive, "the supervisor keeps running across reloads"


async def _log(server: Server) -> str:
    return server.log(tail=10_000)


async def test_no_reload_ignores_edits(tmp_path: Path, servers: list[Server]) -> None:
    """With --no-reload an edit changes nothing until a restart."""
    config = project(tmp_path, version=1)
    server = start_dev(config, tmp_path / "dev.log", ["--no-reload"])
    servers.append(server)
    await wait_ready(server, timeout=STARTUP)
    (tmp_path / "agent.py").write_text(GRAPH.format(version=2))
    (tmp_path / "other.py").write_text("x = 1\n")
    # Three runs after the edit: a reloading server would be restarting or serving version 2 by then.
    for _ in range(3):
        await asyncio.sleep(0.5)
        assert await version_of(server) == 1
    assert "reloading" not in server.log()


async def test_banner_links_and_inert_flags(tmp_path: Path, servers: list[Server]) -> None:
    """The banner gives the API URL, its /docs and a Studio link built as langgraph dev builds it (on
    --studio-url); each accepted flag that does nothing says so in one line."""
    config = project(tmp_path, version=1)
    args = ["--no-reload", "--tunnel", "--debug-port", "5678", "--no-browser", "--studio-url", "https://studio.test"]
    server = start_dev(config, tmp_path / "dev.log", args)
    servers.append(server)
    await wait_ready(server, timeout=STARTUP)
    lines = server.log().splitlines()
    api = f"http://127.0.0.1:{server.port}"
    assert f"- API: {api}" in lines
    assert f"- Docs: {api}/docs" in lines
    assert f"- Studio: https://studio.test/studio/?baseUrl={api}" in lines
    for flag in ("--tunnel", "--debug-port", "--no-browser"):
        assert len([line for line in lines if line.startswith(f"graphyard: {flag} has no effect")]) == 1, flag
    assert not [line for line in lines if "--studio-url has no effect" in line]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graphyard", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def test_version_and_help() -> None:
    """--version prints the version; dev --help shows defaults; serve and worker --help name
    DATABASE_URI and REDIS_URI."""
    from graphyard import __version__

    version = _cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"graphyard {__version__}"
    dev_help = _cli("dev", "--help").stdout
    assert "(default: 2024)" in dev_help and "(default: 127.0.0.1)" in dev_help
    assert "--ssl-keyfile" in dev_help and "--no-reload" in dev_help
    for command in ("serve", "worker"):
        text = _cli(command, "--help").stdout
        assert "DATABASE_URI" in text and "REDIS_URI" in text, text


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert)),
            *("-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return key, cert


async def test_https_with_ssl_flags(tmp_path: Path, servers: list[Server]) -> None:
    """--ssl-keyfile/--ssl-certfile serve HTTPS (the banner says https); one without the other is refused."""
    key, cert = _self_signed(tmp_path)
    config = project(tmp_path, version=1)
    server = start_dev(
        config, tmp_path / "dev.log", ["--no-reload", "--ssl-keyfile", str(key), "--ssl-certfile", str(cert)]
    )
    servers.append(server)
    context = ssl.create_default_context(cafile=str(cert))
    url = f"https://127.0.0.1:{server.port}"

    async def status() -> int | None:
        if not server.alive:
            raise AssertionError(server.log())
        try:
            async with httpx.AsyncClient(verify=context) as http:
                return (await http.get(f"{url}/ok")).status_code
        except httpx.TransportError:
            return None

    assert await eventually(status, lambda s: s is not None, timeout=60, interval=0.1, what="HTTPS /ok") == 200
    assert f"- API: {url}" in server.log().splitlines()
    alone = _cli("dev", "--config", str(config), "--no-reload", "--ssl-keyfile", str(key))
    assert alone.returncode == 2 and "--ssl-keyfile and --ssl-certfile go together" in alone.stderr
