"""/mcp: every assistant as a Model Context Protocol tool, over streamable HTTP (the official `mcp` SDK).

The SDK's low-level `Server` speaks the protocol (initialize, ping, tools/list, tools/call, notifications,
errors for unknown methods); its session manager, in stateless JSON mode, is the HTTP transport. The
handlers here only turn assistants into tools and a tool call into a stateless run, made through the
same `create_run` as `POST /runs/wait`, so the project's auth handlers see the same payloads.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

import graphyard
from graphyard.api.deps import auth_user, authorize, services
from graphyard.api.errors import json_error
from graphyard.api.runs import create_listened
from graphyard.auth import AuthFailed
from graphyard.errors import GraphyardError
from graphyard.records import Assistant, Json
from graphyard.serde import dumps
from graphyard.services import assistants, runs

# Tools per tools/list page; the rest is reached with the returned cursor.
PAGE_SIZE = 20
# Assistants read per storage query while collecting every tool.
SCAN_SIZE = 100
# MCP tool names: 1 to 128 characters from this set (the SDK's own validation rule).
NOT_IN_TOOL_NAME = re.compile(r"[^A-Za-z0-9._-]")


def tool_name(assistant: Assistant, taken: set[str]) -> str:
    """The assistant's name made a valid tool name; a name already taken gets the assistant id's head."""
    base = NOT_IN_TOOL_NAME.sub("_", assistant.name)[:128] or "assistant"
    for name in (base, f"{base[:119]}_{assistant.assistant_id[:8]}"):
        if name not in taken:
            return name
    return f"{base[:91]}_{assistant.assistant_id}"  # assistant ids are unique, so this name is


def _request(ctx: ServerRequestContext[Any, Any]) -> Request:
    request = ctx.request
    assert isinstance(request, Request), "streamable HTTP hands every handler its HTTP request"
    return request


async def _visible_assistants(request: Request) -> list[tuple[str, Assistant]]:
    """(tool name, assistant) for every assistant the caller may see, oldest first, so names and pages
    are stable between tools/list and tools/call."""
    value: Json = {"graph_id": None, "metadata": None, "limit": SCAN_SIZE, "offset": 0}
    flt = await authorize(request, "assistants", "search", value)
    found: list[Assistant] = []
    while True:
        page, _ = await assistants.search(
            services(request),
            graph_id=None,
            metadata=value.get("metadata"),
            name=None,
            limit=SCAN_SIZE,
            offset=len(found),
            sort_by="created_at",
            sort_order="asc",
            auth=flt,
        )
        found.extend(page)
        if len(page) < SCAN_SIZE:
            break
    taken: set[str] = set()
    named = []
    for assistant in found:
        name = tool_name(assistant, taken)
        taken.add(name)
        named.append((name, assistant))
    return named


async def _tool(request: Request, name: str, assistant: Assistant) -> types.Tool:
    svc = services(request)
    schemas = await svc.graphs.schemas(
        assistant.graph_id, assistants.graph_config(assistant), user=auth_user(request), store=svc.storage.store
    )
    # Where LangGraph cannot express the input schema (message states, often), the state schema is
    # what the graph takes as input anyway.
    input_schema = schemas.get("input_schema") or schemas.get("state_schema") or {}
    if input_schema.get("type") != "object":
        # MCP requires an object at the root; a graph taking anything else gets an open object.
        input_schema = {"type": "object"}
    return types.Tool(
        name=name,
        title=assistant.name,
        description=assistant.description or f"Run the '{assistant.graph_id}' graph and return its final state.",
        input_schema=input_schema,
    )


async def list_tools(
    ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    request = _request(ctx)
    cursor = params.cursor if params is not None else None
    start = int(cursor) if cursor and cursor.isdigit() else 0
    if cursor and not cursor.isdigit():
        raise MCPError(types.INVALID_PARAMS, f"Invalid cursor {cursor!r}: pass the nextCursor of a previous page")
    named = await _visible_assistants(request)
    page = named[start : start + PAGE_SIZE]
    tools = [await _tool(request, name, assistant) for name, assistant in page]
    more = start + PAGE_SIZE < len(named)
    return types.ListToolsResult(tools=tools, next_cursor=str(start + PAGE_SIZE) if more else None)


def _text_result(value: Any, *, error: bool) -> types.CallToolResult:
    text = value if isinstance(value, str) else dumps(value).decode()
    structured = value if isinstance(value, dict) else None
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], structured_content=structured, is_error=error
    )


def output_result(output: Any) -> types.CallToolResult:
    """A finished run's output as a tool result. A failed run is an error result with the graph's
    error; a run that stopped at interrupt() is one too, since a stateless call cannot be resumed:
    its content is the final state with `__interrupt__`, so the caller sees what the graph asked."""
    if isinstance(output, dict) and "__error__" in output:
        failure = output["__error__"]
        if isinstance(failure, dict):
            return _text_result(f"{failure.get('error', 'Error')}: {failure.get('message', '')}", error=True)
        return _text_result(failure, error=True)
    interrupted = isinstance(output, dict) and bool(output.get("__interrupt__"))
    return _text_result(output, error=interrupted)


async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> types.CallToolResult:
    request = _request(ctx)
    chosen = next((a for name, a in await _visible_assistants(request) if name == params.name), None)
    if chosen is None:
        raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name}. tools/list names the tools there are.")
    payload: Json = {"assistant_id": chosen.assistant_id, "input": params.arguments or {}}
    # The reference also takes the run's `context` beside the arguments (not an MCP field: read it raw).
    context = (ctx.params or {}).get("context")
    if context is not None:
        if not isinstance(context, dict):
            raise MCPError(types.INVALID_PARAMS, "context must be an object (the graph's runtime context)")
        payload["context"] = context
    try:
        run, sub = await create_listened(request, payload, thread_id=None)
    except GraphyardError as exc:
        return _text_result(exc.message, error=True)
    except AuthFailed as exc:
        return _text_result(str(exc.detail), error=True)
    found, output = await runs.result(services(request), run.run_id, sub)
    if not found:
        return _text_result(f"Run {run.run_id} was cancelled and rolled back before it finished", error=True)
    return output_result(output)


def build_server() -> Server[Any]:
    return Server(
        "graphyard",
        version=graphyard.__version__,
        description="Every assistant of this graphyard server as a tool",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


class McpEndpoint:
    """The ASGI app at /mcp. POST carries JSON-RPC; GET (no server-initiated stream) is 405 and DELETE
    (no sessions to end) is 404, as the reference answers."""

    def __init__(self) -> None:
        self.server = build_server()
        # The SDK logs its manager starting and stopping, which here is every request.
        logging.getLogger("mcp.server.streamable_http_manager").setLevel(logging.WARNING)
        logging.getLogger("mcp.server.streamable_http").setLevel(logging.WARNING)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method", "")
        if method == "DELETE":
            await json_error(404, "No MCP session to delete: /mcp is stateless")(scope, receive, send)
            return
        if method != "POST":
            response = json_error(405, "Method Not Allowed: POST JSON-RPC messages to /mcp", {"Allow": "POST"})
            await response(scope, receive, send)
            return
        request = Request(scope, receive)
        if not request.headers.get("content-type", "").lower().startswith("application/json"):
            # The SDK would answer this in plain text; graphyard's errors are JSON with a `detail`.
            await json_error(400, "POST JSON-RPC to /mcp with Content-Type: application/json")(scope, receive, send)
            return
        # Stateless: nothing outlives a request, so each request gets its own manager, and /mcp stays a
        # self-contained app with no lifespan of its own (a route that can be left out of the table).
        manager = StreamableHTTPSessionManager(
            app=self.server,
            json_response=True,
            stateless=True,
            # Body size is limited once for the whole API, by the server's own setting.
            max_request_body_size=services(request).settings.max_body_bytes,
        )
        async with manager.run():
            await manager.handle_request(scope, receive, send)
