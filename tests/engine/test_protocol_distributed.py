"""The thread streaming protocol in production mode: `graphyard serve` processes and a `graphyard worker`
on PostgreSQL and Redis, driven by the official client (both transports) and by raw SSE reconnects."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient

from tests.api.support import CHAT_REPLY, obj, wait_for_file
from tests.api.test_protocol import EVERY_CHANNEL, command, sse_events, until_root_end
from tests.engine.test_distributed import WORKER_STARTUP, Cluster, clients, cluster, sdk

__all__ = ["clients", "cluster"]  # fixtures this module uses, imported from the distributed suite
# Several processes on one shared machine: each wait here gets more room than a single server's.
CLUSTER_DEADLINE = 60.0


@pytest.mark.parametrize("transport", ["sse", "websocket"])
async def test_thread_stream_through_api_processes_with_a_separate_worker(
    cluster: Cluster, clients: list[LangGraphClient], transport: Any
) -> None:
    """Values, interrupt and respond, and chat messages over the protocol, executed by a worker process."""
    api = await cluster.api()
    cluster.worker()
    client = sdk(api, clients)
    async with client.threads.stream(assistant_id="ask", transport=transport) as thread:
        await thread.run.start(input={"question": "ship?"})
        [state async for state in thread.values]
        assert thread.interrupted, cluster.logs()
        await thread.run.respond("shipped")
        output = await thread.output
    assert output["answer"] == "shipped"
    async with client.threads.stream(assistant_id="chat", transport=transport) as thread:
        await thread.run.start(input={"messages": [{"role": "user", "content": "hi"}]})
        streams = [stream async for stream in thread.messages]
        await thread.output
    assert [await s.text for s in streams] == [CHAT_REPLY]


@pytest.mark.timeout(180)
async def test_stream_resumes_with_since_on_a_restarted_api_process(
    cluster: Cluster, clients: list[LangGraphClient], tmp_path: Path
) -> None:
    """A run started through one API process streams to a client of another; after that process dies,
    a fresh one continues from `since` with nothing missed and nothing repeated."""
    first, second = await cluster.api(), await cluster.api()
    cluster.worker()
    tid = str(uuid.uuid4())
    gate = tmp_path / "gate"
    body = {"channels": EVERY_CHANNEL, "since": 0}
    async with httpx.AsyncClient(base_url=first.url, timeout=60) as a:
        started = await command(a, tid, "run.start", {"assistant_id": "gate", "input": {"gate": str(gate)}})
        assert started["type"] == "success", started
        before: list[dict[str, Any]] = []
        async with httpx.AsyncClient(base_url=second.url, timeout=60) as b:
            async with asyncio.timeout(CLUSTER_DEADLINE):
                async for event in sse_events(b, tid, body):
                    before.append(event)
                    if event["method"] == "updates" and "before" in event["params"]["data"]:
                        break
        second.stop()
        await wait_for_file(Path(f"{gate}.entered"), timeout=WORKER_STARTUP)
        gate.touch()
        third = await cluster.api()
        async with httpx.AsyncClient(base_url=third.url, timeout=60) as c:
            after = await until_root_end(
                sse_events(c, tid, {**body, "since": before[-1]["seq"]}), deadline=CLUSTER_DEADLINE
            )
        everything = await until_root_end(sse_events(a, tid, body), deadline=CLUSTER_DEADLINE)
    ids = [e["event_id"] for e in before + after]
    assert len(ids) == len(set(ids))
    assert ids == [e["event_id"] for e in everything], cluster.logs()
    assert after[-1]["params"]["data"]["event"] == "completed"
    state = await sdk(first, clients).threads.get_state(tid)
    assert obj(state["values"])["steps"] == ["before", "hold", "after"]
