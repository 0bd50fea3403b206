"""The HTTP API: the whole route table in one place."""

from __future__ import annotations

import re

from starlette.routing import BaseRoute, Route, WebSocketRoute, request_response
from starlette.types import ASGIApp

from graphyard.api import assistants, crons, docs, meta, metrics, protocol, runs, store, threads, ui
from graphyard.api.lazy import LazyApp

# Route groups by path, for the `http.disable_*` switches of langgraph.json (most specific first).
# A route in several groups goes when any of them is disabled; /ok and / are in none.
ROUTE_GROUPS: tuple[tuple[str, frozenset[str]], ...] = (
    ("/threads/{thread_id}/commands", frozenset({"threads", "runs"})),
    ("/threads/{thread_id}/stream/events", frozenset({"threads", "runs"})),
    ("/threads/{thread_id}/runs", frozenset({"runs"})),
    ("/threads/{thread_id}/stream", frozenset({"runs"})),
    ("/threads", frozenset({"threads"})),
    ("/assistants", frozenset({"assistants"})),
    ("/runs", frozenset({"runs"})),
    ("/store", frozenset({"store"})),
    ("/mcp", frozenset({"mcp"})),
    ("/a2a", frozenset({"a2a"})),
    ("/.well-known/agent-card.json", frozenset({"a2a"})),
    ("/ui", frozenset({"ui"})),
    ("/info", frozenset({"meta"})),
    ("/metrics", frozenset({"meta"})),
    ("/docs", frozenset({"meta"})),
    ("/openapi.json", frozenset({"meta"})),
)


def route_groups(path: str) -> frozenset[str]:
    """The groups a route path belongs to (its most specific prefix's), whatever its parameters are named."""
    path = _PARAM.sub("{}", path)
    for prefix, groups in ROUTE_GROUPS:
        prefix = _PARAM.sub("{}", prefix)
        if path == prefix or path.startswith(prefix + "/"):
            return groups
    return frozenset()


_PARAM = re.compile(r"\{[^}]*\}")


def enabled(table: list[BaseRoute], disabled: frozenset[str]) -> list[BaseRoute]:
    """The routes left when the groups in `disabled` are switched off."""
    return [r for r in table if not route_groups(getattr(r, "path", "")) & disabled]


def routes() -> list[BaseRoute]:
    a = "/assistants/{assistant_id}"
    t = "/threads/{thread_id}"
    r = t + "/runs/{run_id}"
    return [
        Route("/ok", meta.ok, methods=["GET"]),
        Route("/", meta.ok, methods=["GET"]),
        Route("/info", meta.info, methods=["GET"]),
        Route("/metrics", metrics.scrape, methods=["GET"]),
        # assistants
        Route("/assistants", assistants.create, methods=["POST"]),
        Route("/assistants/search", assistants.search, methods=["POST"]),
        Route("/assistants/count", assistants.count, methods=["POST"]),
        Route(a, assistants.get, methods=["GET"]),
        Route(a, assistants.patch, methods=["PATCH"]),
        Route(a, assistants.delete, methods=["DELETE"]),
        Route(a + "/versions", assistants.versions, methods=["POST"]),
        Route(a + "/latest", assistants.set_latest, methods=["POST"]),
        Route(a + "/graph", assistants.graph, methods=["GET"]),
        Route(a + "/schemas", assistants.graph_schemas, methods=["GET"]),
        Route(a + "/subgraphs", assistants.subgraphs, methods=["GET"]),
        Route(a + "/subgraphs/{namespace}", assistants.subgraphs, methods=["GET"]),
        # threads
        Route("/threads", threads.create, methods=["POST"]),
        Route("/threads/search", threads.search, methods=["POST"]),
        Route("/threads/count", threads.count, methods=["POST"]),
        Route("/threads/prune", threads.prune, methods=["POST"]),
        Route(t, threads.get, methods=["GET"]),
        Route(t, threads.patch, methods=["PATCH"]),
        Route(t, threads.delete, methods=["DELETE"]),
        Route(t + "/copy", threads.copy, methods=["POST"]),
        Route(t + "/state", threads.get_state, methods=["GET"]),
        Route(t + "/state", threads.update_state, methods=["POST"]),
        Route(t + "/state/checkpoint", threads.get_state_at, methods=["POST"]),
        Route(t + "/state/{checkpoint_id}", threads.get_state, methods=["GET"]),
        Route(t + "/history", threads.history_get, methods=["GET"]),
        Route(t + "/history", threads.history, methods=["POST"]),
        Route(t + "/stream", threads.join_stream, methods=["GET"]),
        # the thread streaming protocol (client.threads.stream)
        Route(t + "/commands", protocol.commands, methods=["POST"]),
        Route(t + "/stream/events", protocol.stream_events, methods=["POST"]),
        WebSocketRoute(t + "/stream/events", protocol.websocket),
        # runs on a thread
        Route(t + "/runs", runs.create_stateful, methods=["POST"]),
        Route(t + "/runs", runs.list_runs, methods=["GET"]),
        Route(t + "/runs/stream", runs.stream_stateful, methods=["POST"]),
        Route(t + "/runs/wait", runs.wait_stateful, methods=["POST"]),
        Route(r, runs.get, methods=["GET"]),
        Route(r, runs.delete, methods=["DELETE"]),
        Route(r + "/join", runs.join, methods=["GET"]),
        Route(r + "/stream", runs.join_stream, methods=["GET"]),
        Route(r + "/cancel", runs.cancel, methods=["POST"]),
        # stateless runs
        Route("/runs", runs.create_stateless, methods=["POST"]),
        Route("/runs/stream", runs.stream_stateless, methods=["POST"]),
        Route("/runs/wait", runs.wait_stateless, methods=["POST"]),
        Route("/runs/batch", runs.batch, methods=["POST"]),
        Route("/runs/cancel", runs.cancel_many, methods=["POST"]),
        # crons
        Route("/runs/crons", crons.create_stateless, methods=["POST"]),
        Route(t + "/runs/crons", crons.create_for_thread, methods=["POST"]),
        Route("/runs/crons/search", crons.search, methods=["POST"]),
        Route("/runs/crons/count", crons.count, methods=["POST"]),
        Route("/runs/crons/{cron_id}", crons.get, methods=["GET"]),
        Route("/runs/crons/{cron_id}", crons.patch, methods=["PATCH"]),
        Route("/runs/crons/{cron_id}", crons.delete, methods=["DELETE"]),
        # long-term store
        Route("/store/items", store.put_item, methods=["PUT"]),
        Route("/store/items", store.get_item, methods=["GET"]),
        Route("/store/items", store.delete_item, methods=["DELETE"]),
        Route("/store/items/search", store.search_items, methods=["POST"]),
        Route("/store/namespaces", store.list_namespaces, methods=["POST"]),
        # /openapi.json is built from this table (see api/openapi.py), and /docs renders it
        *docs.routes(),
    ]


# The MCP and A2A SDKs add about a quarter to the server's import time: their modules are imported
# when /mcp or /a2a is first called (imports inside functions only for this, as storage adapters are).


def _mcp_endpoint() -> ASGIApp:
    from graphyard.api import mcp

    return mcp.McpEndpoint()


def _a2a_rpc() -> ASGIApp:
    from graphyard.api import a2a

    return request_response(a2a.rpc)


def _a2a_card() -> ASGIApp:
    from graphyard.api import a2a

    return request_response(a2a.agent_card)


def _a2a_root_card() -> ASGIApp:
    from graphyard.api import a2a

    return request_response(a2a.root_agent_card)


def mcp_routes() -> list[Route]:
    """/mcp: every assistant as an MCP tool (streamable HTTP). A group of its own, so it can be left out."""
    endpoint = LazyApp(_mcp_endpoint)
    return [Route("/mcp", endpoint), Route("/mcp/", endpoint)]


def a2a_routes() -> list[Route]:
    """/a2a/{assistant_id}: every assistant as an A2A agent, and its agent cards. A group of its own."""
    a = "/a2a/{assistant_id}"
    card = LazyApp(_a2a_card)
    return [
        Route(a, LazyApp(_a2a_rpc), methods=["POST"]),
        Route(a + "/.well-known/agent-card.json", card, methods=["GET"]),
        Route(a + "/.well-known/agent.json", card, methods=["GET"]),
        Route("/.well-known/agent-card.json", LazyApp(_a2a_root_card), methods=["GET"]),
    ]


def ui_routes() -> list[Route]:
    """/ui: generative UI (langgraph.json `ui`), served only for a project that has it. A group of its
    own; GET of a bundle's files is not authenticated."""
    return [
        Route("/ui/{graph_id}", ui.component, methods=["POST"]),
        Route(ui.FILES_PATH, ui.asset, methods=["GET"], name=ui.ASSET_ROUTE),
    ]
