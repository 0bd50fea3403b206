"""/openapi.json describes every route, real responses of every route conform to it, and /docs renders it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from langgraph_sdk.client import LangGraphClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from graphyard.api import a2a_routes, mcp_routes, routes, threads
from graphyard.api.openapi import document, operation, operation_of
from tests.api.support import GRAPHS_DIR, Server, StartServer, obj, system_assistant_id

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


async def _document(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        response = await http.get("/openapi.json")
    assert response.status_code == 200
    return obj(response.json())


def _operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in doc["paths"].items() for method in item}


async def test_document_lists_every_route_with_a_declared_operation(server: Server) -> None:
    """Every route of the route table is in the document (HEAD aside); graphyard's own routes are declared."""
    doc = await _document(server.url)
    assert doc["openapi"] == "3.1.0"
    table = [*routes(), *mcp_routes(), *a2a_routes()]
    expected = {
        (method, route.path)
        for route in table
        if isinstance(route, Route) and route.include_in_schema
        # a route taking any method (an ASGI app routed whole) is listed as GET and POST
        for method in route.methods or ("GET", "POST")
        if method != "HEAD"
    }
    assert _operations(doc) == expected
    declared = {
        route.path for route in routes() if isinstance(route, Route) and operation_of(route.endpoint) is not None
    }
    # The core API is described in full; routes added without a declaration are listed minimally.
    assert {"/threads/search", "/threads/{thread_id}/runs/stream", "/store/items", "/runs/crons/{cron_id}"} <= declared
    for path, item in doc["paths"].items():
        for method, spec in item.items():
            assert spec["summary"], (method, path)
            assert ("default" in spec["responses"]) == (path not in declared), (method, path)
    assert "/openapi.json" not in doc["paths"]
    assert "/docs" not in doc["paths"]


async def test_request_schemas_are_the_validators_schemas(server: Server) -> None:
    """The document's request bodies are the very schemas the handlers validate with."""
    doc = await _document(server.url)
    search = doc["paths"]["/threads/search"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert search == threads.SEARCH.schema
    limit = search["properties"]["offset"]
    assert limit == {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
    for route in routes():
        if not isinstance(route, Route) or not route.include_in_schema:
            continue
        spec = operation_of(route.endpoint)
        assert spec is not None
        if spec.body is None:
            continue
        body = spec.body if isinstance(spec.body, dict) else spec.body.schema
        for method in route.methods or ():
            if method == "HEAD":
                continue
            documented = doc["paths"][route.path][method.lower()]["requestBody"]["content"]["application/json"]
            assert documented["schema"] == body, (method, route.path)


def test_routes_without_a_declaration_are_listed_minimally() -> None:
    """A route added without @operation (a custom app's, say) and a mounted router's routes are still listed."""

    async def plain(request: Any) -> Any:
        raise AssertionError("never called")

    class AnyMethodApp:
        """An ASGI app routed as a whole (as an MCP or A2A endpoint may be): any method reaches it."""

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            raise AssertionError("never called")

    @operation("Declared", "custom", response={"type": "object"})
    async def declared(request: Any) -> Any:
        raise AssertionError("never called")

    table = [
        Route("/custom/{item_id}", plain, methods=["GET", "POST"]),
        Route("/declared", declared, methods=["GET"]),
        Route("/rpc", AnyMethodApp()),
        Mount("/sub", routes=[Route("/inner/{name:path}", plain, methods=["DELETE"])]),
        Mount("/static", app=StaticFiles(directory=str(GRAPHS_DIR))),
    ]
    doc = document(table, title="t", version="1")
    assert _operations(doc) == {
        ("GET", "/custom/{item_id}"),
        ("POST", "/custom/{item_id}"),
        ("GET", "/declared"),
        ("GET", "/rpc"),
        ("POST", "/rpc"),
        ("DELETE", "/sub/inner/{name}"),
    }
    minimal = doc["paths"]["/custom/{item_id}"]["get"]
    assert minimal["parameters"] == [{"name": "item_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    assert list(minimal["responses"]) == ["default"]
    assert doc["paths"]["/declared"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "type": "object"
    }
    assert "security" not in doc


# --- real responses of every route, validated against the document ----------------------------------


@dataclass
class Call:
    """One request to make: the documented operation it exercises and what to send."""

    method: str
    template: str
    path: dict[str, str]
    query: dict[str, Any] | None = None
    body: Any = None
    streaming_forever: bool = False


@dataclass
class World:
    """Real resources on the shared server for the calls to name."""

    assistant_id: str
    spare_assistant_id: str
    thread_id: str
    spare_thread_id: str
    pruned_thread_id: str
    run_id: str
    pending_thread_id: str
    pending_run_id: str
    other_pending_run_id: str
    spare_run_id: str
    checkpoint_id: str
    cron_id: str
    spare_cron_id: str


@pytest.fixture
async def world(client: LangGraphClient) -> World:
    """Assistants, threads, finished and pending runs, crons and a checkpoint to call every route with."""
    assistant = await client.assistants.create("echo", name="openapi")
    spare_assistant = await client.assistants.create("echo", name="openapi-spare")
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    run = await client.runs.create(thread_id, "echo", input={"value": 1})
    await client.runs.join(thread_id, run["run_id"])
    spare = await client.runs.create(thread_id, "echo", input={"value": 2})
    await client.runs.join(thread_id, spare["run_id"])
    state = await client.threads.get_state(thread_id)
    pending_thread = (await client.threads.create())["thread_id"]
    pending = await client.runs.create(pending_thread, "echo", input={"value": 3}, after_seconds=3600)
    other_pending = await client.runs.create(pending_thread, "echo", input={"value": 4}, after_seconds=3600)
    cron = await client.crons.create_for_thread(thread_id, "echo", schedule="0 0 1 1 *")
    spare_cron = await client.crons.create("echo", schedule="0 0 1 1 *")
    return World(
        assistant_id=assistant["assistant_id"],
        spare_assistant_id=spare_assistant["assistant_id"],
        thread_id=thread_id,
        spare_thread_id=(await client.threads.create())["thread_id"],
        pruned_thread_id=(await client.threads.create())["thread_id"],
        run_id=run["run_id"],
        pending_thread_id=pending_thread,
        pending_run_id=pending["run_id"],
        other_pending_run_id=other_pending["run_id"],
        spare_run_id=spare["run_id"],
        checkpoint_id=str(obj(state["checkpoint"])["checkpoint_id"]),
        cron_id=str(obj(cron)["cron_id"]),
        spare_cron_id=str(obj(spare_cron)["cron_id"]),
    )


def _calls(w: World) -> list[Call]:
    a, t = {"assistant_id": w.assistant_id}, {"thread_id": w.thread_id}
    tr = {**t, "run_id": w.run_id}
    run = {"assistant_id": "echo", "input": {"value": "x"}}
    item = {"namespace": ["openapi", "docs"], "key": "k"}
    return [
        Call("GET", "/ok", {}),
        Call("GET", "/", {}),
        Call("GET", "/info", {}),
        Call("GET", "/metrics", {}),
        Call("POST", "/assistants", {}, body={"graph_id": "echo", "name": "made"}),
        Call("POST", "/assistants/search", {}, body={"limit": 2}),
        Call("POST", "/assistants/count", {}, body={}),
        Call("GET", "/assistants/{assistant_id}", a),
        Call("PATCH", "/assistants/{assistant_id}", a, body={"metadata": {"k": "v"}}),
        Call("POST", "/assistants/{assistant_id}/versions", a, body={}),
        Call("POST", "/assistants/{assistant_id}/latest", a, body={"version": 1}),
        Call("GET", "/assistants/{assistant_id}/graph", {"assistant_id": "nested"}, query={"xray": "true"}),
        Call("GET", "/assistants/{assistant_id}/schemas", a),
        Call("GET", "/assistants/{assistant_id}/subgraphs", {"assistant_id": "nested"}),
        Call(
            "GET", "/assistants/{assistant_id}/subgraphs/{namespace}", {"assistant_id": "nested", "namespace": "child"}
        ),
        Call("DELETE", "/assistants/{assistant_id}", {"assistant_id": w.spare_assistant_id}),
        Call("POST", "/threads", {}, body={"metadata": {"k": "v"}}),
        Call("POST", "/threads/search", {}, body={"limit": 2, "select": ["thread_id", "status"]}),
        Call("POST", "/threads/count", {}, body={}),
        Call("POST", "/threads/prune", {}, body={"thread_ids": [w.pruned_thread_id]}),
        Call("GET", "/threads/{thread_id}", t),
        Call("PATCH", "/threads/{thread_id}", t, body={"metadata": {"k": "v"}}),
        Call("DELETE", "/threads/{thread_id}", {"thread_id": w.spare_thread_id}),
        Call("POST", "/threads/{thread_id}/copy", t),
        Call("GET", "/threads/{thread_id}/state", t, query={"subgraphs": "true"}),
        Call("POST", "/threads/{thread_id}/state", t, body={"values": {"value": "set"}}),
        Call(
            "POST", "/threads/{thread_id}/state/checkpoint", t, body={"checkpoint": {"checkpoint_id": w.checkpoint_id}}
        ),
        Call("GET", "/threads/{thread_id}/state/{checkpoint_id}", {**t, "checkpoint_id": w.checkpoint_id}),
        Call("GET", "/threads/{thread_id}/history", t, query={"limit": 2}),
        Call("POST", "/threads/{thread_id}/history", t, body={"limit": 2}),
        Call("GET", "/threads/{thread_id}/stream", t, streaming_forever=True),
        Call("POST", "/threads/{thread_id}/commands", t, body={"id": 1, "method": "agent.getTree", "params": {}}),
        Call("POST", "/threads/{thread_id}/stream/events", t, body={"channels": ["values"]}, streaming_forever=True),
        Call("POST", "/threads/{thread_id}/runs", t, body=run),
        Call("GET", "/threads/{thread_id}/runs", t, query={"limit": 5}),
        Call("POST", "/threads/{thread_id}/runs/stream", t, body={**run, "stream_mode": ["values", "updates"]}),
        Call("POST", "/threads/{thread_id}/runs/wait", t, body=run),
        Call("GET", "/threads/{thread_id}/runs/{run_id}", tr),
        Call("GET", "/threads/{thread_id}/runs/{run_id}/join", tr),
        Call("GET", "/threads/{thread_id}/runs/{run_id}/stream", tr),
        Call(
            "POST",
            "/threads/{thread_id}/runs/{run_id}/cancel",
            {"thread_id": w.pending_thread_id, "run_id": w.pending_run_id},
        ),
        Call("DELETE", "/threads/{thread_id}/runs/{run_id}", {**t, "run_id": w.spare_run_id}),
        Call("POST", "/runs", {}, body=run),
        Call("POST", "/runs/stream", {}, body=run),
        Call("POST", "/runs/wait", {}, body=run),
        Call("POST", "/runs/batch", {}, body=[run, run]),
        Call("POST", "/runs/cancel", {}, body={"thread_id": w.pending_thread_id, "run_ids": [w.other_pending_run_id]}),
        Call("POST", "/runs/crons", {}, body={"assistant_id": "echo", "schedule": "0 0 1 1 *"}),
        Call("POST", "/threads/{thread_id}/runs/crons", t, body={"assistant_id": "echo", "schedule": "0 0 1 1 *"}),
        Call("POST", "/runs/crons/search", {}, body={"limit": 2}),
        Call("POST", "/runs/crons/count", {}, body={}),
        Call("GET", "/runs/crons/{cron_id}", {"cron_id": w.cron_id}),
        Call("PATCH", "/runs/crons/{cron_id}", {"cron_id": w.cron_id}, body={"enabled": False}),
        Call("DELETE", "/runs/crons/{cron_id}", {"cron_id": w.spare_cron_id}),
        Call("PUT", "/store/items", {}, body={**item, "value": {"a": 1}}),
        Call("GET", "/store/items", {}, query={"namespace": "openapi.docs", "key": "k"}),
        Call("POST", "/store/items/search", {}, body={"namespace_prefix": ["openapi"]}),
        Call("POST", "/store/namespaces", {}, body={"prefix": ["openapi"]}),
        Call("DELETE", "/store/items", {}, body=item),
    ]


def _case(
    api: OpenApiSchema, template: str, method: str, path: dict[str, str], query: dict[str, Any] | None, body: Any
) -> Any:
    """The schemathesis case describing a request we sent ourselves (a body only when there is one)."""
    extra: dict[str, Any] = {} if body is None else {"body": body, "media_type": "application/json"}
    return api[template][method].Case(path_parameters=path or None, query=query, **extra)


@pytest.fixture
async def api(server: Server) -> OpenApiSchema:
    """The served document, loaded by schemathesis."""
    loaded = schemathesis.openapi.from_dict(await _document(server.url))
    assert isinstance(loaded, OpenApiSchema)
    return loaded


@pytest.fixture
async def raw(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client whose responses schemathesis can validate."""
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        yield http


async def test_real_responses_of_every_route_conform_to_the_document(
    api: OpenApiSchema, raw: httpx.AsyncClient, world: World
) -> None:
    """A valid request to each declared operation gets a success whose status, type, body and headers conform."""
    calls = _calls(world)
    declared = {
        (method.upper(), path)
        for path, item in api.raw_schema["paths"].items()
        for method, spec in item.items()
        if "default" not in spec["responses"]
    }
    assert {(c.method, c.template) for c in calls} == declared
    problems: list[str] = []
    for call in calls:
        case = _case(api, call.template, call.method, call.path, call.query, call.body)
        url = call.template.format(**call.path)
        async with raw.stream(call.method, url, params=call.query, json=call.body) as response:
            if call.streaming_forever:
                # A thread's stream never ends: its status and type are what can be checked.
                documented = api.raw_schema["paths"][call.template][call.method.lower()]["responses"]
                assert str(response.status_code) in documented
                assert response.headers["content-type"].startswith("text/event-stream")
                continue
            await response.aread()
        if response.status_code >= 300:
            problems.append(f"{call.method} {url}: {response.status_code} {response.text[:200]}")
            continue
        try:
            case.validate_response(response, checks=CHECKS)
        except Exception as exc:  # noqa: BLE001 - each failure is collected with its operation, then asserted
            problems.append(f"{call.method} {url}: {exc}")
    assert not problems, "\n\n".join(problems)


BOTH = {"config": {"configurable": {"a": 1}}, "context": {"a": 1}}
ECHO_ID = system_assistant_id("echo")


async def test_error_responses_conform_to_the_document(api: OpenApiSchema, raw: httpx.AsyncClient) -> None:
    """Typical 404, 422, 409 and 400 answers are documented for their operations and match their schemas."""
    missing = str(uuid.uuid4())
    thread_id = (await raw.post("/threads", json={})).json()["thread_id"]
    cron = await raw.post("/runs/crons", json={"assistant_id": "echo", "schedule": "0 0 1 1 *"})
    cron_id = cron.json()["cron_id"]
    cases: list[tuple[str, str, dict[str, str], Any, dict[str, Any] | None, int]] = [
        ("GET", "/threads/{thread_id}", {"thread_id": missing}, None, None, 404),
        ("GET", "/threads/{thread_id}", {"thread_id": "nope"}, None, None, 422),
        ("POST", "/threads", {}, {"thread_id": thread_id}, None, 409),
        ("POST", "/threads/search", {}, {"offset": 2**63}, None, 422),
        ("GET", "/threads/{thread_id}/runs", {"thread_id": thread_id}, None, {"offset": "-1"}, 422),
        ("POST", "/threads/{thread_id}/state", {"thread_id": thread_id}, {"values": {}}, None, 400),
        ("GET", "/store/items", {}, None, {"namespace": "a"}, 400),
        ("PUT", "/store/items", {}, {"namespace": ["a.b"], "key": "k", "value": {}}, None, 422),
        ("POST", "/assistants/{assistant_id}/latest", {"assistant_id": missing}, {"version": 1}, None, 404),
        # Found by scripts/fuzz: an empty cron update is a 400 the document did not list.
        ("PATCH", "/runs/crons/{cron_id}", {"cron_id": cron_id}, {}, None, 400),
        # Found by scripts/fuzz: both configurable and context is the reference's 400.
        ("POST", "/assistants", {}, {"graph_id": "echo", **BOTH}, None, 400),
        ("PATCH", "/assistants/{assistant_id}", {"assistant_id": ECHO_ID}, BOTH, None, 400),
    ]
    for method, template, path, body, query, status in cases:
        response = await raw.request(method, template.format(**path), json=body, params=query)
        assert response.status_code == status, (method, template, response.text)
        case = _case(api, template, method, path, query, body)
        case.validate_response(response, checks=CHECKS)


# --- /docs ------------------------------------------------------------------------------------------


async def test_docs_page_renders_the_document_from_local_assets(server: Server) -> None:
    """/docs is an HTML page that loads Swagger UI from this server (no CDN) and points it at /openapi.json."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        page = await http.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert '"/openapi.json"' in page.text
        assert "http://" not in page.text and "https://" not in page.text  # every asset is a path here
        for asset in ("/docs/static/swagger-ui-bundle.js", "/docs/static/swagger-ui.css"):
            response = await http.get(asset)
            assert response.status_code == 200, asset
            assert len(response.content) > 10_000
        assert (await http.get("/docs/static/no-such-file.js")).status_code == 404


async def test_document_names_the_auth_scheme_when_auth_is_configured(start_server: StartServer) -> None:
    """With custom auth, the document has a security scheme and 401/403 answers, and /openapi.json, /docs stay open."""
    server = await start_server(config=GRAPHS_DIR / "auth" / "langgraph.json")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as anonymous:
        assert (await anonymous.get("/threads/search")).status_code in (401, 403, 405)
        assert (await anonymous.get("/docs")).status_code == 200
        assert (await anonymous.get("/docs/static/swagger-ui.css")).status_code == 200
        doc = await _document(server.url)
    assert doc["components"]["securitySchemes"]
    assert doc["security"] == [{name: []} for name in doc["components"]["securitySchemes"]]
    assert {"401", "403"} <= set(doc["paths"]["/threads/search"]["post"]["responses"])
    assert doc["paths"]["/ok"]["get"]["security"] == []
    assert "401" not in doc["paths"]["/ok"]["get"]["responses"]


async def test_document_without_auth_has_no_security(server: Server) -> None:
    """Without custom auth, the document declares no security scheme."""
    doc = await _document(server.url)
    assert "security" not in doc
    assert "securitySchemes" not in doc["components"]
