"""/mcp through the official `mcp` client over streamable HTTP: assistants as tools, calls as stateless runs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import mcp_types as types
import pytest
from langgraph_sdk.client import LangGraphClient
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.api.support import FAILURE_MESSAGE, GRAPHS_DIR, Server, launch, wait_ready_blocking

# Handshake-era clients (initialize first) and the client's default negotiation.
MODES = ["legacy", "auto"]
PAGE_SIZE = 20


@asynccontextmanager
async def connect(server: Server, mode: str = "legacy", token: str | None = None) -> AsyncIterator[Client]:
    """An `mcp` client connected to the server's /mcp, with a bearer token when given."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        transport = streamable_http_client(f"{server.url}/mcp", http_client=http)
        async with Client(transport, mode=mode) as client:
            yield client


def _text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


async def _all_tools(client: Client) -> list[types.Tool]:
    tools: list[types.Tool] = []
    cursor: str | None = None
    while True:
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            return tools


@pytest.mark.parametrize("mode", MODES)
async def test_every_graph_is_a_tool_with_its_input_schema(backend: Server, mode: str) -> None:
    """tools/list names each graph's assistant, titled and described, with the graph's input schema."""
    async with connect(backend, mode) as client:
        tools = {tool.name: tool for tool in await _all_tools(client)}
    assert {"echo", "failing", "ask", "chat"} <= set(tools)
    echo = tools["echo"]
    assert echo.title == "echo"
    assert echo.description and "echo" in echo.description
    assert echo.input_schema["type"] == "object"
    assert set(echo.input_schema["properties"]) >= {"value", "echoed", "steps"}


@pytest.mark.parametrize("mode", MODES)
async def test_calling_a_tool_runs_the_graph_and_returns_its_output(backend: Server, mode: str) -> None:
    """tools/call runs the assistant with the arguments as input; the final state is text and structured."""
    async with connect(backend, mode) as client:
        result = await client.call_tool("echo", {"value": {"n": 42}})
    assert result.is_error is False
    assert result.structured_content == {"value": {"n": 42}, "echoed": {"n": 42}, "steps": ["echo"]}
    assert '"echoed":{"n":42}' in _text(result)


async def test_a_tool_call_leaves_no_thread_behind(server: Server, client: LangGraphClient) -> None:
    """A tool call is a stateless run: its temporary thread is gone once the result is back."""
    marker = uuid.uuid4().hex
    async with connect(server) as mcp_client:
        result = await mcp_client.call_tool("echo", {"value": marker})
    assert result.is_error is False
    found = await client.threads.search(values={"value": marker})
    assert found == []


async def test_a_failing_graph_is_an_error_result(backend: Server) -> None:
    """A graph that raises gives isError with its error, not a protocol error."""
    async with connect(backend) as client:
        result = await client.call_tool("failing", {})
    assert result.is_error is True
    assert FAILURE_MESSAGE in _text(result)


async def test_an_interrupting_graph_is_an_error_result_carrying_its_question(backend: Server) -> None:
    """A graph stopping at interrupt() cannot be resumed statelessly: isError, with the state and the question."""
    async with connect(backend) as client:
        result = await client.call_tool("ask", {"question": "proceed?"})
    assert result.is_error is True
    structured = result.structured_content
    assert isinstance(structured, dict)
    assert structured["steps"] == ["prepare"]
    assert structured["__interrupt__"][0]["value"] == {"question": "proceed?"}


async def test_an_unknown_tool_is_a_protocol_error(server: Server) -> None:
    """Calling a tool that tools/list does not name is a JSON-RPC error naming it."""
    async with connect(server) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("no-such-tool", {})
    assert caught.value.code == types.INVALID_PARAMS
    assert "no-such-tool" in caught.value.error.message


async def test_tools_page_by_cursor_with_valid_unique_names(server: Server, client: LangGraphClient) -> None:
    """Past a page of tools, nextCursor leads to the rest; odd and repeated names become valid, distinct ones."""
    tag = uuid.uuid4().hex[:8]
    made = [
        await client.assistants.create("echo", name=f"pager {tag}!", metadata={"tag": tag})
        for _ in range(PAGE_SIZE + 1)
    ]
    async with connect(server) as client_mcp:
        first = await client_mcp.list_tools()
        tools = await _all_tools(client_mcp)
    assert len(first.tools) == PAGE_SIZE
    assert first.next_cursor is not None
    names = [tool.name for tool in tools]
    assert len(names) == len(set(names))
    mine = [tool for tool in tools if tool.title == f"pager {tag}!"]
    assert len(mine) == len(made)
    assert all(all(c.isalnum() or c in "._-" for c in tool.name) for tool in mine)
    assert f"pager_{tag}_" in {tool.name for tool in mine}
    # A renamed duplicate is still callable by the name it was listed under.
    async with connect(server) as client_mcp:
        result = await client_mcp.call_tool(mine[-1].name, {"value": tag})
    assert result.structured_content == {"value": tag, "echoed": tag, "steps": ["echo"]}


def _rpc(method: str, params: dict[str, Any] | None = None, request_id: int | None = 1) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if request_id is not None:
        body["id"] = request_id
    if params is not None:
        body["params"] = params
    return body


ACCEPT = {"Accept": "application/json, text/event-stream"}


async def test_http_surface_answers_as_the_reference(http: httpx.AsyncClient) -> None:
    """GET is 405, DELETE 404, a notification 202, ping an empty result, an unknown method 'Method not found'."""
    assert (await http.get("/mcp", headers=ACCEPT)).status_code == 405
    assert (await http.delete("/mcp", headers=ACCEPT)).status_code == 404
    note = await http.post("/mcp", json=_rpc("notifications/initialized", request_id=None), headers=ACCEPT)
    assert note.status_code == 202
    ping = await http.post("/mcp", json=_rpc("ping", request_id=7), headers=ACCEPT)
    assert ping.json() == {"jsonrpc": "2.0", "id": 7, "result": {}}
    unknown = await http.post("/mcp", json=_rpc("tools/frobnicate"), headers=ACCEPT)
    assert unknown.json()["error"]["code"] == types.METHOD_NOT_FOUND
    init = await http.post(
        "/mcp",
        json=_rpc(
            "initialize",
            {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
        ),
        headers=ACCEPT,
    )
    result = init.json()["result"]
    assert result["capabilities"]["tools"] == {"listChanged": False}
    assert result["serverInfo"]["name"] == "graphyard"


async def test_a_call_may_carry_the_runs_context(http: httpx.AsyncClient) -> None:
    """tools/call takes the graph's runtime `context` beside the arguments, as the reference does."""
    params = {"name": "slow", "arguments": {"delay": 0}, "context": {"tag": "t"}}
    res = await http.post("/mcp", json=_rpc("tools/call", params), headers=ACCEPT)
    result = res.json()["result"]
    assert result["isError"] is False
    assert result["structuredContent"]["steps"] == ["s1:t", "s2:t", "s3:t"]
    bad = await http.post("/mcp", json=_rpc("tools/call", {**params, "context": "t"}), headers=ACCEPT)
    assert bad.json()["error"]["code"] == types.INVALID_PARAMS


async def test_bad_input_is_a_json_rpc_error_not_a_500(http: httpx.AsyncClient) -> None:
    """A bad cursor, a call without a name and a body that is not JSON are client errors."""
    bad_cursor = await http.post("/mcp", json=_rpc("tools/list", {"cursor": "abc"}), headers=ACCEPT)
    assert bad_cursor.json()["error"]["code"] == types.INVALID_PARAMS
    nameless = await http.post("/mcp", json=_rpc("tools/call", {"arguments": {}}), headers=ACCEPT)
    assert nameless.json()["error"]["code"] == types.INVALID_PARAMS
    garbage = await http.post("/mcp", content=b"{not json", headers={**ACCEPT, "Content-Type": "application/json"})
    assert 400 <= garbage.status_code < 500
    refused = await http.post("/mcp", json=_rpc("ping"), headers={"Accept": "text/html"})
    assert 400 <= refused.status_code < 500


# --- custom auth -------------------------------------------------------------------------------


# One xdist worker runs this module, so its module-scoped server starts once (not once per worker).
pytestmark = pytest.mark.xdist_group("mcp")


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A graphyard serving the auth test app (bearer tokens)."""
    folder = tmp_path_factory.mktemp("mcp-auth")
    server = launch(GRAPHS_DIR / "auth" / "langgraph.json", folder / "graphyard.sqlite", folder / "server.log")
    try:
        wait_ready_blocking(server)
        yield server
    finally:
        server.stop()


async def test_without_a_token_mcp_is_401(auth_server: Server) -> None:
    """The project's authenticate handler guards /mcp like every other route."""
    async with httpx.AsyncClient(base_url=auth_server.url) as http:
        res = await http.post("/mcp", json=_rpc("tools/list"), headers=ACCEPT)
    assert res.status_code == 401
    assert res.json()["detail"] == "Missing bearer token"


async def test_a_tool_call_runs_as_the_authenticated_user(auth_server: Server) -> None:
    """The run a tool call makes carries the caller as its auth user, as a /runs/wait would."""
    async with connect(auth_server, token="token-alice") as client:
        names = {tool.name for tool in await _all_tools(client)}
        result = await client.call_tool("whoami", {})
    assert {"echo", "slow", "whoami"} <= names
    assert result.is_error is False
    seen = (result.structured_content or {})["seen"]
    assert seen["langgraph_auth_user_id"] == "alice"
    assert seen["langgraph_auth_permissions"] == ["read", "write"]
