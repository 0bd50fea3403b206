"""Custom auth guards the thread protocol: threads.create_run for run.start, threads.read for streams;
a thread another user's filter hides is a 404 stream and a `permission_denied` command."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.api.support import Server
from tests.api.test_auth import alice, anon, auth_server, bob
from tests.api.test_protocol import command, sse_events, until_root_end

__all__ = ["alice", "anon", "auth_server", "bob"]  # fixtures this module uses, from the auth suite


@pytest.fixture
async def alice_sdk(auth_server: Server) -> AsyncIterator[LangGraphClient]:
    """The official client, authenticated as alice."""
    client = get_client(url=auth_server.url, api_key=None, headers={"Authorization": "Bearer token-alice"})
    try:
        yield client
    finally:
        await client.http.client.aclose()


@pytest.mark.parametrize("transport", ["sse", "websocket"])
async def test_owner_streams_a_thread_her_run_created(alice_sdk: LangGraphClient, transport: Any) -> None:
    """run.start passes threads.create_run (which stamps the owner); the owner reads the stream."""
    # The SDK does not put the client's own headers on a WebSocket handshake: the session's headers it does.
    headers = {"Authorization": "Bearer token-alice"}
    async with alice_sdk.threads.stream(assistant_id="echo", transport=transport, headers=headers) as thread:
        started = await thread.run.start(input={"value": "mine"})
        states = [state async for state in thread.values]
        output = await thread.output
    assert output["echoed"] == "mine"
    assert states[-1]["echoed"] == "mine"
    run = await alice_sdk.runs.get(thread.thread_id, started["run_id"])
    metadata = run["metadata"] or {}
    assert metadata["owner"] == "alice"
    assert metadata["saw"]["action"] == "create_run"


async def test_other_users_thread_is_hidden(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient, anon: httpx.AsyncClient, auth_server: Server
) -> None:
    """Bob can neither start runs on, read, nor subscribe to alice's thread; without a token nothing opens."""
    tid = str(uuid.uuid4())
    started = await command(alice, tid, "run.start", {"assistant_id": "echo", "input": {"value": 1}})
    assert started["type"] == "success", started
    events = await until_root_end(sse_events(alice, tid, {"channels": ["lifecycle"], "since": 0}))
    assert events[-1]["params"]["data"]["event"] == "completed"
    hijack = await command(bob, tid, "run.start", {"assistant_id": "echo", "input": {"value": 2}})
    assert hijack["error"] == "permission_denied"
    tree = await command(bob, tid, "agent.getTree", {})
    assert tree["error"] == "permission_denied"
    hidden = await bob.post(f"/threads/{tid}/stream/events", json={"channels": ["values"], "since": 0})
    assert hidden.status_code == 404
    assert (await anon.post(f"/threads/{tid}/commands", json={"id": 1, "method": "agent.getTree"})).status_code == 401
    url = auth_server.url.replace("http://", "ws://") + f"/threads/{tid}/stream/events"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url):
            pass
    assert refused.value.response.status_code == 403
    async with connect(url, additional_headers={"Authorization": "Bearer token-bob"}) as ws:
        await ws.send('{"id": 1, "method": "subscription.subscribe", "params": {"channels": ["values"]}}')
        reply = await ws.recv()
        assert '"permission_denied"' in str(reply)
    forbidden = await command(
        alice, tid, "run.start", {"assistant_id": "echo", "input": {}, "metadata": {"forbidden": True}}
    )
    assert forbidden["error"] == "permission_denied"
