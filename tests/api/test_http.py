"""The `http` key of langgraph.json: the project's own app, CORS, headers copied into runs, route
groups switched off, a mount prefix, and custom routes behind the project's auth when asked.

The project is tests/graphs/http (app.py, graph.py, auth.py: any `Bearer token-<name>` is <name>);
each test writes the langgraph.json it needs.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from tests.api.support import GRAPHS_DIR, StartServer, obj
from tests.api.test_cli import one_error_line, run_dev

PROJECT = GRAPHS_DIR / "http"
ALICE = {"Authorization": "Bearer token-alice"}


def project(tmp_path: Path, http: dict[str, Any], *, auth: bool = True) -> Path:
    """A langgraph.json in tmp_path serving tests/graphs/http with this `http` block."""
    config: dict[str, Any] = {
        "dependencies": [str(PROJECT)],
        "graphs": {"headers": f"{PROJECT}/graph.py:graph"},
        "http": http,
    }
    if auth:
        config["auth"] = {"path": f"{PROJECT}/auth.py:auth"}
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
async def served(start_server: StartServer, tmp_path: Path) -> AsyncIterator[Any]:
    """Start a server on a project with the given `http` block; yields a raw client per call."""
    clients: list[httpx.AsyncClient] = []

    async def serve(http: dict[str, Any], *, auth: bool = True) -> httpx.AsyncClient:
        server = await start_server(config=project(tmp_path / f"p{len(clients)}", http, auth=auth))
        client = httpx.AsyncClient(base_url=server.url, timeout=30)
        clients.append(client)
        return client

    (tmp_path / "p0").mkdir()
    (tmp_path / "p1").mkdir()
    yield serve
    for client in clients:
        await client.aclose()


async def test_project_app_routes_lifespan_and_middleware(served: Any) -> None:
    """The project's routes answer beside ours without credentials, its lifespan state reaches them, it may
    shadow /info but not /ok, and its middleware wraps our routes too (before auth by default)."""
    http = await served({"app": f"{PROJECT}/app.py:app"})
    hello = await http.get("/hello")
    assert (hello.status_code, hello.json()) == (200, {"greeting": "hello from the project's lifespan"})
    assert hello.headers["x-project-middleware"] == "-"
    assert (await http.get("/info")).json() == {"info": "the project's own"}
    assert (await http.get("/ok")).json()["ok"] is True  # ours, not the project's
    assert (await http.post("/threads/search", json={})).status_code == 401
    ours = await http.post("/threads/search", json={}, headers=ALICE)
    assert ours.status_code == 200
    assert ours.headers["x-project-middleware"] == "-"  # middleware_first: it ran before auth


async def test_fastapi_app_routes_work_as_standalone(served: Any) -> None:
    """A FastAPI app answers as it would on its own: validated bodies (its own 422), dependencies,
    state its lifespan put on the app."""
    http = await served({"app": f"{PROJECT}/fastapi_app.py:app"}, auth=False)
    made = await http.post("/items", json={"name": "cup", "size": 2}, headers={"x-caller": "bob"})
    assert (made.status_code, made.json()) == (200, {"name": "cup", "size": 2, "by": "bob"})
    invalid = await http.post("/items", json={"name": "cup"})
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["loc"] == ["body", "size"]
    assert (await http.get("/started")).json() == {"started": True}
    paths = (await http.get("/openapi.json")).json()["paths"]
    assert "post" in paths["/items"] and "/threads" in paths
    assert (await http.post("/threads", json={})).status_code == 200


async def test_custom_routes_behind_auth_and_auth_first(served: Any) -> None:
    """With enable_custom_route_auth the project's routes need credentials; auth_first runs its
    middleware after authentication, so it sees the user."""
    http = await served(
        {"app": f"{PROJECT}/app.py:app", "enable_custom_route_auth": True, "middleware_order": "auth_first"}
    )
    assert (await http.get("/hello")).status_code == 401
    hello = await http.get("/hello", headers=ALICE)
    assert hello.status_code == 200
    assert hello.headers["x-project-middleware"] == "alice"
    assert (await http.get("/ok")).status_code == 200


async def test_cors_policy_replaces_the_permissive_default(served: Any) -> None:
    """A CORS preflight from an allowed origin is answered for it; another origin is refused."""
    http = await served({"cors": {"allow_origins": ["https://app.example"], "allow_credentials": True}})
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    allowed = await http.options("/threads", headers={"Origin": "https://app.example", **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    refused = await http.options("/threads", headers={"Origin": "https://evil.example", **preflight})
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


async def test_default_cors_allows_any_origin(served: Any) -> None:
    """Without `http.cors` any origin may call the API, and the pagination headers are exposed."""
    http = await served({}, auth=False)
    preflight = {"Origin": "https://anywhere.example", "Access-Control-Request-Method": "POST"}
    answer = await http.options("/threads/search", headers=preflight)
    assert (answer.status_code, answer.headers["access-control-allow-origin"]) == (200, "*")
    search = await http.post("/threads/search", json={}, headers={"Origin": "https://anywhere.example"})
    assert "x-pagination-total" in search.headers["access-control-expose-headers"]


async def test_configurable_headers_are_copied_into_runs(served: Any) -> None:
    """Included request headers reach the run's configurable; excluded ones and credentials never do."""
    http = await served(
        {
            "configurable_headers": {
                "includes": ["x-user-*", "x-tenant-id", "authorization"],
                "excludes": ["x-user-secret"],
            }
        }
    )
    sdk = get_client(
        url=str(http.base_url),
        api_key=None,
        headers={**ALICE, "x-user-id": "u-1", "x-user-secret": "s", "x-tenant-id": "t", "x-other": "o"},
    )
    try:
        result = obj(await sdk.runs.wait(None, "headers", input={}))
    finally:
        await sdk.http.client.aclose()
    assert result["headers"] == {"x-user-id": "u-1"}


async def test_configurable_headers_default_copies_nothing(served: Any) -> None:
    """Without `configurable_headers` no request header reaches a run."""
    http = await served({}, auth=False)
    sdk = get_client(url=str(http.base_url), api_key=None, headers={"x-user-id": "u-1"})
    try:
        result = obj(await sdk.runs.wait(None, "headers", input={}))
    finally:
        await sdk.http.client.aclose()
    assert result["headers"] == {}


async def test_disable_switches_drop_their_route_groups(served: Any) -> None:
    """disable_assistants/store/meta drop those routes (404); threads, runs and /ok stay."""
    http = await served({"disable_assistants": True, "disable_store": True, "disable_meta": True}, auth=False)
    assert (await http.post("/assistants/search", json={})).status_code == 404
    assert (await http.post("/store/items/search", json={})).status_code == 404
    assert (await http.get("/info")).status_code == 404
    assert (await http.get("/ok")).status_code == 200
    thread = (await http.post("/threads", json={})).json()
    run = await http.post(f"/threads/{thread['thread_id']}/runs/wait", json={"assistant_id": "headers"})
    assert run.status_code == 200


async def test_disable_threads_and_runs(served: Any) -> None:
    """disable_threads drops /threads but not thread runs; disable_runs drops /runs and thread runs."""
    threads_off = await served({"disable_threads": True}, auth=False)
    assert (await threads_off.post("/threads", json={})).status_code == 404
    assert (await threads_off.post("/runs/wait", json={"assistant_id": "headers"})).status_code == 200
    runs_off = await served({"disable_runs": True}, auth=False)
    thread = (await runs_off.post("/threads", json={})).json()
    assert (await runs_off.post("/runs/wait", json={"assistant_id": "headers"})).status_code == 404
    wait = await runs_off.post(f"/threads/{thread['thread_id']}/runs/wait", json={"assistant_id": "headers"})
    assert wait.status_code == 404


async def test_mount_prefix_serves_everything_under_it(served: Any) -> None:
    """With mount_prefix the API and the project's routes live under it (the client takes it as its url);
    /ok also stays at the root, and auth still applies under the prefix."""
    http = await served({"mount_prefix": "/api", "app": f"{PROJECT}/app.py:app"})
    base = str(http.base_url)
    assert (await http.get("/ok")).status_code == 200
    assert (await http.get("/api/ok")).status_code == 200
    assert (await http.get("/api/hello")).status_code == 200
    assert (await http.post("/threads/search", json={}, headers=ALICE)).status_code == 404
    assert (await http.post("/api/threads/search", json={})).status_code == 401
    sdk = get_client(url=f"{base}/api", api_key=None, headers=ALICE)
    try:
        result = obj(await sdk.runs.wait(None, "headers", input={}))
        assert result == {"headers": {}}
    finally:
        await sdk.http.client.aclose()
    paths = (await http.get("/api/openapi.json")).json()["paths"]
    # Routes that need no credentials say so under the prefix too; the API's routes keep the requirement.
    assert paths["/api/ok"]["get"]["security"] == []
    assert paths["/api/info"]["get"]["security"] == []
    assert "security" not in paths["/api/threads/search"]["post"]


@pytest.mark.parametrize(
    ("http", "expected"),
    [
        ({"app": "./nope.py:app"}, "not found"),
        ({"app": f"{PROJECT}/graph.py:graph"}, "is not a Starlette or FastAPI app"),
    ],
)
def test_unusable_project_app_stops_startup_with_one_line(tmp_path: Path, http: dict[str, Any], expected: str) -> None:
    """An `http.app` that cannot be imported or is not an app stops startup with one line naming it."""
    line = one_error_line(run_dev(project(tmp_path, http, auth=False), tmp_path))
    assert '"http.app"' in line
    assert expected in line


async def test_mount_prefix_and_cors_origins_from_the_environment(start_server: StartServer, tmp_path: Path) -> None:
    """MOUNT_PREFIX moves the API under a prefix and CORS_ALLOW_ORIGINS (comma-separated) replaces the
    permissive default, as the reference reads them; a project `env` value counts like the process's."""
    config = project(tmp_path, {}, auth=False)
    raw = json.loads(config.read_text())
    raw["env"] = {"CORS_ALLOW_ORIGINS": "https://a.example, https://b.example"}
    config.write_text(json.dumps(raw))
    server = await start_server(config=config, env={"MOUNT_PREFIX": "/v1"})
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        assert (await http.post("/v1/threads/search", json={})).status_code == 200
        assert (await http.post("/threads/search", json={})).status_code == 404
        preflight = {"Access-Control-Request-Method": "POST"}
        allowed = await http.options("/v1/threads", headers={"Origin": "https://b.example", **preflight})
        assert allowed.headers.get("access-control-allow-origin") == "https://b.example"
        refused = await http.options("/v1/threads", headers={"Origin": "https://c.example", **preflight})
        assert "access-control-allow-origin" not in refused.headers


def test_bad_mount_prefix_variable_stops_startup_with_one_line(tmp_path: Path) -> None:
    """A MOUNT_PREFIX that does not start with "/" stops startup with one line naming the variable."""
    line = one_error_line(run_dev(project(tmp_path, {}, auth=False), tmp_path, env={"MOUNT_PREFIX": "api/"}))
    assert "MOUNT_PREFIX" in line
