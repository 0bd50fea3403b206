"""Support for the API tests: a graphyard subprocess, its typed factory, polling and SSE helpers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[2]
GRAPHS_DIR = ROOT / "tests" / "graphs"
CONFIG = GRAPHS_DIR / "langgraph.json"
# Generous: a loaded 2-core CI machine has taken over 30 s to import langgraph and start a server.
STARTUP_SECONDS = 90.0
STOP_SECONDS = 10.0
DEADLINE = 20.0

# Values the deterministic graphs in tests/graphs/graphs.py produce.
CHAT_REPLY = "the quick brown fox"
CHAT_TOKENS = ["the", " ", "quick", " ", "brown", " ", "fox"]
FAILURE_MESSAGE = "boom node failed on purpose"
RUN_TERMINAL = ("success", "error", "timeout", "interrupted")
# The reference derives a graph's system assistant id as uuid5(NAMESPACE_GRAPH, graph_id).
NAMESPACE_GRAPH = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")

T = TypeVar("T")


def system_assistant_id(graph_id: str) -> str:
    """The deterministic id of the system assistant the server makes for a graph."""
    return str(uuid.uuid5(NAMESPACE_GRAPH, graph_id))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def graphyard_command(config: Path, port: int, database: Path, args: Sequence[str] = ()) -> list[str]:
    """The command line of `python -m graphyard dev` as a user would type it."""
    return [
        sys.executable,
        "-m",
        "graphyard",
        "dev",
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--database",
        str(database),
        "--no-reload",
        *args,
    ]


@dataclass
class Server:
    """One `graphyard dev` subprocess with its log file."""

    url: str
    port: int
    config: Path
    database: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process.poll() is None

    def log(self, tail: int = 200) -> str:
        """The last `tail` lines of what the server wrote to stdout and stderr."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(lines[-tail:])

    def stop(self) -> int:
        """SIGTERM, then SIGKILL if it has not exited within STOP_SECONDS; returns the exit code."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(STOP_SECONDS)

    def kill(self) -> int:
        """SIGKILL: the process dies without any chance to clean up, as in a crash."""
        if self.alive:
            self.process.kill()
        return self.process.wait(STOP_SECONDS)


def launch(
    config: Path,
    database: Path,
    log_path: Path,
    *,
    port: int | None = None,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Server:
    """Start `python -m graphyard dev` (not yet waiting for it to be ready)."""
    port = port or free_port()
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            graphyard_command(config, port, database, args),
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return Server(
        url=f"http://127.0.0.1:{port}",
        port=port,
        config=config,
        database=database,
        log_path=log_path,
        process=process,
        args=tuple(args),
        env=dict(env or {}),
    )


@contextlib.contextmanager
def running(config: Path, folder: Path) -> Iterator[Server]:
    """A ready `graphyard dev` on config with its database and log in folder, stopped on exit
    (for servers shared by a module or a session)."""
    server = launch(config, folder / "graphyard.sqlite", folder / "server.log")
    try:
        wait_ready_blocking(server)
        yield server
    finally:
        server.stop()


class ServerNotReady(RuntimeError):
    """The server exited or did not answer /ok before the deadline."""


def wait_ready_blocking(server: Server, timeout: float = STARTUP_SECONDS) -> None:
    """Poll /ok until it answers 200, the process exits, or the deadline passes (for sync fixtures)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if not server.alive:
                raise ServerNotReady(f"graphyard exited with {server.process.returncode}:\n{server.log()}")
            with contextlib.suppress(httpx.TransportError):
                if http.get(f"{server.url}/ok").status_code == 200:
                    return
            time.sleep(0.05)
    server.kill()
    raise ServerNotReady(f"graphyard did not answer /ok within {timeout} s:\n{server.log()}")


async def wait_ready(server: Server, timeout: float = STARTUP_SECONDS) -> None:
    """Poll /ok until it answers 200, the process exits, or the deadline passes."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if not server.alive:
                raise ServerNotReady(f"graphyard exited with {server.process.returncode}:\n{server.log()}")
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(f"{server.url}/ok")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    server.kill()
    raise ServerNotReady(f"graphyard did not answer /ok within {timeout} s:\n{server.log()}")


class StartServer(Protocol):
    """Start a graphyard server for one test; pass `database=` an earlier server's file to restart on it."""

    async def __call__(
        self,
        *,
        config: Path = ...,
        database: Path | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> Server: ...


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    *,
    timeout: float = DEADLINE,
    interval: float = 0.02,
    what: str = "condition",
) -> T:
    """Poll `probe` until `accept` holds for its result; fail with the last result at the deadline."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = await probe()
        if accept(last):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s; last seen: {last!r}")
        await asyncio.sleep(interval)


def _exists(path: Path) -> bool:
    return path.exists()


async def wait_for_file(path: Path, timeout: float = DEADLINE) -> None:
    """Wait until a graph node has created `path` (the gate graph's `.entered` marker)."""

    async def exists() -> bool:
        return _exists(path)

    await eventually(exists, bool, timeout=timeout, what=f"{path} to exist")


@dataclass(frozen=True)
class SSE:
    """One server-sent event as it came over the wire."""

    event: str
    data: Any
    id: str | None = None


async def read_sse(response: httpx.Response) -> AsyncIterator[SSE]:
    """Parse an SSE response into events (comments and heartbeats skipped)."""
    event: str | None = None
    data: list[str] = []
    event_id: str | None = None
    async for line in response.aiter_lines():
        if line == "":
            if event is not None or data:
                yield SSE(event or "message", orjson.loads("\n".join(data)) if data else None, event_id)
            event, data, event_id = None, [], None
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
            elif name == "id":
                event_id = value
    if event is not None or data:
        yield SSE(event or "message", orjson.loads("\n".join(data)) if data else None, event_id)


async def collect_sse(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[httpx.Response, list[SSE]]:
    """Send a request and read its whole SSE body (or its JSON error) into a list."""
    async with http.stream(method, url, json=json, headers=headers) as response:
        if response.status_code != 200:
            await response.aread()
            return response, []
        events = [event async for event in read_sse(response)]
    return response, events


def obj(value: object) -> dict[str, Any]:
    """`value` as a JSON object, failing the test if it is anything else (narrows the SDK's unions)."""
    assert isinstance(value, dict), f"expected a JSON object, got {value!r}"
    return value


GRACEFUL_EXIT = (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after a clean shutdown
