"""Route groups for the `http.disable_*` switches, and which requests skip authentication."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from graphyard.api import enabled, route_groups, routes
from graphyard.api.http import ProjectRoutes, public_paths


@pytest.mark.parametrize(
    ("path", "groups"),
    [
        ("/assistants/{assistant_id}/schemas", {"assistants"}),
        ("/threads", {"threads"}),
        ("/threads/{thread_id}/state", {"threads"}),
        ("/threads/{thread_id}/runs/{run_id}/stream", {"runs"}),
        ("/threads/{thread_id}/stream", {"runs"}),
        ("/threads/{tid}/commands", {"threads", "runs"}),
        ("/threads/{thread_id}/stream/events", {"threads", "runs"}),
        ("/runs/crons/{cron_id}", {"runs"}),
        ("/store/items", {"store"}),
        ("/mcp", {"mcp"}),
        ("/a2a/{assistant_id}", {"a2a"}),
        ("/.well-known/agent-card.json", {"a2a"}),
        ("/openapi.json", {"meta"}),
        ("/docs", {"meta"}),
        ("/info", {"meta"}),
        ("/ok", set()),
        ("/", set()),
        ("/threadsafe", set()),
    ],
)
def test_route_groups_by_path(path: str, groups: set[str]) -> None:
    """Each path falls in the group of its most specific prefix, whatever its parameters are named."""
    assert route_groups(path) == groups


def test_disabling_a_group_removes_only_its_routes() -> None:
    """Switching off assistants leaves every other route in place."""
    table = routes()
    kept = enabled(table, frozenset({"assistants"}))
    assert all(not getattr(r, "path", "").startswith("/assistants") for r in kept)
    assert len(table) - len(kept) == sum(getattr(r, "path", "").startswith("/assistants") for r in table)


def _endpoint(request: object) -> PlainTextResponse:
    return PlainTextResponse("project")


async def _handled_by(router: ProjectRoutes, path: str, method: str = "GET") -> str:
    """Send one request through `router`; "project" if the project's app answered, "ours" otherwise."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "path": path, "method": method, "root_path": "", "headers": [], "query_string": b""}
    await router(scope, receive, send)
    return "project" if any(m.get("body") == b"project" for m in sent) else "ours"


async def _ours(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ours"})


async def test_project_app_answers_only_where_its_routes_win() -> None:
    """The project's app gets its own paths and the methods it serves on a shared path; the rest, and
    the pinned /ok, stay ours; under a prefix only prefixed paths are considered."""
    project = Starlette(routes=[Route("/threads", _endpoint, methods=["GET"]), Route("/hello", _endpoint)])
    table = routes()
    pinned = [r for r in table if getattr(r, "path", "") == "/ok"]
    router = ProjectRoutes(_ours, project, table, pinned)
    assert await _handled_by(router, "/hello") == "project"
    assert await _handled_by(router, "/threads", "GET") == "project"
    assert await _handled_by(router, "/threads", "POST") == "ours"
    assert await _handled_by(router, "/assistants/search", "POST") == "ours"
    assert await _handled_by(router, "/ok") == "ours"
    prefixed = ProjectRoutes(_ours, project, table, pinned, prefix="/api")
    assert await _handled_by(prefixed, "/api/hello") == "project"
    assert await _handled_by(prefixed, "/hello") == "ours"


def test_public_paths_are_ok_and_info_also_under_the_prefix() -> None:
    """Only /ok and /info skip authentication, at the root or below the mount prefix."""
    public = public_paths("/api")
    assert public({"path": "/ok"}) and public({"path": "/api/info"})
    assert not public({"path": "/api/threads"}) and not public({"path": "/hello"})
