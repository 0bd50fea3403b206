"""`checkpointer.ttl` and a thread's own `ttl`: threads expire and are swept (deleted, or pruned to their
latest checkpoint), never under a run in flight."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError

from tests.api.backends import Backend, sdk
from tests.api.support import GRAPHS_DIR, eventually, obj
from tests.api.test_runs import Gate

# 0.01 minutes = 0.6 s between sweeps; threads live 0.02 minutes = 1.2 s.
SWEEP_MINUTES = 0.01
SHORT_MINUTES = 0.02
GRAPHS = {"echo": f"{GRAPHS_DIR / 'graphs.py'}:echo", "gate": f"{GRAPHS_DIR / 'graphs.py'}:gate"}


def project(tmp_path: Path, ttl: dict[str, Any]) -> Path:
    """A langgraph.json serving the test graphs with `checkpointer.ttl` set to `ttl`."""
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps({"graphs": GRAPHS, "checkpointer": {"ttl": ttl}}))
    return path


async def create_with_ttl(url: str, minutes: float, strategy: str = "delete") -> str:
    """POST /threads with a fractional-minute TTL (the SDK types `ttl` as whole minutes); the thread id."""
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.post("/threads", json={"ttl": {"strategy": strategy, "ttl": minutes}})
        assert response.status_code == 200, response.text
        thread_id: str = response.json()["thread_id"]
        return thread_id


async def gone(client: LangGraphClient, thread_id: str) -> None:
    """Wait until the thread answers 404."""

    async def exists() -> bool:
        try:
            await client.threads.get(thread_id)
        except NotFoundError:
            return False
        return True

    await eventually(exists, lambda found: not found, timeout=30, what=f"thread {thread_id} to be swept")


async def test_thread_with_a_ttl_is_deleted_and_one_without_stays(fresh_backend: Backend, tmp_path: Path) -> None:
    """A thread created with `ttl` is deleted (state and all) after it; a thread without one stays."""
    server = await fresh_backend.start(project(tmp_path, {"sweep_interval_minutes": SWEEP_MINUTES}))
    async with sdk(server) as client:
        kept = (await client.threads.create())["thread_id"]
        short = await create_with_ttl(server.url, SHORT_MINUTES)
        await client.runs.wait(short, "echo", input={"value": 1})
        await gone(client, short)
        assert (await client.threads.get(kept))["thread_id"] == kept
        assert await client.threads.search(ids=[short]) == []


async def test_default_ttl_applies_to_threads_created_without_one(fresh_backend: Backend, tmp_path: Path) -> None:
    """With `default_ttl`, threads made by create and by a run with if_not_exists=create both expire."""
    ttl = {"default_ttl": SHORT_MINUTES, "sweep_interval_minutes": SWEEP_MINUTES}
    server = await fresh_backend.start(project(tmp_path, ttl))
    async with sdk(server) as client:
        created = (await client.threads.create())["thread_id"]
        by_run = "9d2bb0f4-5c3a-4b8e-9e37-0d6d3c1f2a10"
        await client.runs.wait(by_run, "echo", input={"value": 2}, if_not_exists="create")
        await gone(client, created)
        await gone(client, by_run)


async def test_thread_ttl_is_shown_with_include_ttl(fresh_backend: Backend, tmp_path: Path) -> None:
    """`ttl` set through the SDK (whole minutes) comes back with include=ttl; patching it restarts it."""
    server = await fresh_backend.start(project(tmp_path, {"sweep_interval_minutes": 60}))
    async with sdk(server) as client:
        thread = await client.threads.create(ttl=90)
        plain = await client.threads.get(thread["thread_id"])
        assert "ttl" not in plain
        shown = obj(obj(await client.threads.get(thread["thread_id"], include=["ttl"]))["ttl"])
        assert (shown["strategy"], shown["ttl_minutes"]) == ("delete", 90)
        assert shown["expires_at"] > thread["created_at"]
        await client.threads.update(thread["thread_id"], metadata={}, ttl={"strategy": "keep_latest", "ttl": 30})
        patched = obj(obj(await client.threads.get(thread["thread_id"], include=["ttl"]))["ttl"])
        assert (patched["strategy"], patched["ttl_minutes"]) == ("keep_latest", 30)
        assert patched["expires_at"] < shown["expires_at"]
        untimed = await client.threads.create()
        assert obj(await client.threads.get(untimed["thread_id"], include=["ttl"]))["ttl"] is None


async def test_keep_latest_prunes_history_but_keeps_the_thread(fresh_backend: Backend, tmp_path: Path) -> None:
    """With keep_latest an expired thread keeps its latest state and loses its older checkpoints."""
    ttl = {"strategy": "keep_latest", "sweep_interval_minutes": SWEEP_MINUTES}
    server = await fresh_backend.start(project(tmp_path, ttl))
    async with sdk(server) as client:
        thread_id = await create_with_ttl(server.url, SHORT_MINUTES, strategy="keep_latest")
        await client.runs.wait(thread_id, "echo", input={"value": 1})
        await client.runs.wait(thread_id, "echo", input={"value": 2})
        before = await client.threads.get_history(thread_id, limit=100)
        assert len(before) > 1

        async def history() -> list[Any]:
            return list(await client.threads.get_history(thread_id, limit=100))

        after = await eventually(history, lambda found: len(found) == 1, timeout=30, what="history pruned")
        assert after[0]["values"] == before[0]["values"]
        assert obj(await client.threads.get_state(thread_id))["values"] == before[0]["values"]
        assert (await client.threads.get(thread_id))["thread_id"] == thread_id


async def test_a_thread_with_a_run_in_flight_is_not_swept(fresh_backend: Backend, tmp_path: Path) -> None:
    """An expired thread whose run is still running survives sweeps, and is deleted once the run ends."""
    server = await fresh_backend.start(project(tmp_path, {"sweep_interval_minutes": SWEEP_MINUTES}))
    gate = Gate(tmp_path)
    async with sdk(server) as client:
        busy = await create_with_ttl(server.url, SHORT_MINUTES)
        run = await client.runs.create(busy, "gate", input=gate.input)
        await gate.reached()
        # Created after `busy`, so it expires later: once it is swept, a sweep has seen `busy` expired.
        probe = await create_with_ttl(server.url, SHORT_MINUTES)
        await gone(client, probe)
        assert (await client.threads.get(busy))["status"] == "busy"
        gate.open()
        await client.runs.join(busy, run["run_id"])
        await gone(client, busy)
