"""/assistants: create, get, patch, delete, search, count, versions, latest, graph, schemas, subgraphs."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from graphyard.api import responses as r
from graphyard.api import schemas as s
from graphyard.api.deps import auth_user, authorize, services
from graphyard.api.openapi import Query, operation
from graphyard.errors import AssistantNotFound, GraphNotFound, Unprocessable
from graphyard.records import Json, system_assistant_id
from graphyard.services import assistants

SELECT_FIELDS = [
    "assistant_id",
    "graph_id",
    "name",
    "description",
    "config",
    "context",
    "created_at",
    "updated_at",
    "metadata",
    "version",
]
CREATE = s.schema(
    {
        "graph_id": {"type": "string"},
        "assistant_id": s.UUID_STR,
        "config": s.CONFIG,
        "context": s.OBJ_OR_NULL,
        "metadata": s.OBJ_OR_NULL,
        "if_exists": {"enum": ["raise", "do_nothing"]},
        "name": s.STR_OR_NULL,
        "description": s.STR_OR_NULL,
    },
    ["graph_id"],
)
PATCH = s.schema(
    {
        "graph_id": s.STR_OR_NULL,
        "config": s.CONFIG,
        "context": s.OBJ_OR_NULL,
        "metadata": s.OBJ_OR_NULL,
        "name": s.STR_OR_NULL,
        "description": s.STR_OR_NULL,
    }
)
SEARCH = s.schema(
    {
        "metadata": s.OBJ_OR_NULL,
        "graph_id": s.STR_OR_NULL,
        "name": s.STR_OR_NULL,
        "limit": s.LIMIT,
        "offset": s.OFFSET,
        "sort_by": {"enum": ["assistant_id", "graph_id", "name", "created_at", "updated_at", None]},
        "sort_order": s.SORT_ORDER,
        "select": {"type": ["array", "null"], "items": {"enum": SELECT_FIELDS}},
    }
)
COUNT = s.schema({"metadata": s.OBJ_OR_NULL, "graph_id": s.STR_OR_NULL, "name": s.STR_OR_NULL})
VERSIONS = s.schema({"metadata": s.OBJ_OR_NULL, "limit": s.LIMIT, "offset": s.OFFSET})
LATEST = s.schema({"version": s.VERSION}, ["version"])


# The graph routes take a graph name as well as an assistant UUID.
GRAPH_PATH = {"assistant_id": {"type": "string", "description": "an assistant UUID or a graph name"}}
XRAY = Query(
    {"anyOf": [{"type": "boolean"}, {"type": "integer", "minimum": 1}]},
    "include subgraphs: true, or how many levels deep",
)


async def _read_filter(request: Request, assistant_id: str) -> Json | None:
    return await authorize(request, "assistants", "read", {"assistant_id": uuid.UUID(assistant_id)})


@operation(
    "Create an assistant",
    "assistants",
    body=CREATE,
    body_required=True,
    response=r.ref("Assistant"),
    errors=(400, 404, 409),
)
async def create(request: Request) -> Response:
    body = await s.body(request, CREATE)
    assistant_id = body.get("assistant_id") or str(uuid.uuid4())
    if_exists = body.get("if_exists") or "raise"
    value: Json = {
        "assistant_id": uuid.UUID(assistant_id),
        "graph_id": body["graph_id"],
        "config": body.get("config"),
        "context": body.get("context"),
        "metadata": body.get("metadata"),
        "if_exists": if_exists,
        "name": body.get("name"),
    }
    flt = await authorize(request, "assistants", "create", value)
    assistant = await assistants.create(
        services(request),
        graph_id=body["graph_id"],
        assistant_id=assistant_id,
        config=value.get("config"),
        context=value.get("context"),
        metadata=value.get("metadata"),
        if_exists=if_exists,
        name=value.get("name"),
        description=body.get("description"),
        auth=flt,
    )
    return s.json_response(s.assistant_json(assistant))


@operation("Get an assistant", "assistants", response=r.ref("Assistant"), errors=(404,))
async def get(request: Request) -> Response:
    assistant_id = s.path_uuid(request, "assistant_id", "assistant")
    flt = await _read_filter(request, assistant_id)
    return s.json_response(s.assistant_json(await assistants.get(services(request), assistant_id, flt)))


@operation(
    "Update an assistant (a new version)", "assistants", body=PATCH, response=r.ref("Assistant"), errors=(400, 404)
)
async def patch(request: Request) -> Response:
    assistant_id = s.path_uuid(request, "assistant_id", "assistant")
    body = await s.body(request, PATCH)
    value: Json = {
        "assistant_id": uuid.UUID(assistant_id),
        "graph_id": body.get("graph_id"),
        "config": body.get("config"),
        "context": body.get("context"),
        "metadata": body.get("metadata"),
        "name": body.get("name"),
    }
    flt = await authorize(request, "assistants", "update", value)
    assistant = await assistants.patch(
        services(request),
        assistant_id,
        graph_id=body.get("graph_id"),
        config=value.get("config"),
        context=value.get("context"),
        metadata=value.get("metadata"),
        name=value.get("name"),
        description=body.get("description"),
        auth=flt,
    )
    return s.json_response(s.assistant_json(assistant))


@operation("Delete an assistant", "assistants", status=204, errors=(404,))
async def delete(request: Request) -> Response:
    assistant_id = s.path_uuid(request, "assistant_id", "assistant")
    flt = await authorize(request, "assistants", "delete", {"assistant_id": uuid.UUID(assistant_id)})
    await assistants.delete(services(request), assistant_id, flt)
    return Response(status_code=204)


def _known_graph(request: Request, graph_id: str | None) -> None:
    svc = services(request)
    if graph_id is not None and graph_id not in svc.graphs:
        raise GraphNotFound(f"Graph '{graph_id}' not found. Expected one of: {svc.graphs.graph_ids()}")


@operation(
    "Search assistants",
    "assistants",
    body=SEARCH,
    response=r.array(r.partial(r.ASSISTANT)),
    errors=(404,),
    headers=s.PAGE_HEADERS,
)
async def search(request: Request) -> Response:
    body = await s.body(request, SEARCH)
    _known_graph(request, body.get("graph_id"))
    limit, offset = body.get("limit", 10), body.get("offset", 0)
    value: Json = {"graph_id": body.get("graph_id"), "metadata": body.get("metadata"), "limit": limit, "offset": offset}
    flt = await authorize(request, "assistants", "search", value)
    items, total = await assistants.search(
        services(request),
        graph_id=body.get("graph_id"),
        metadata=value.get("metadata"),
        name=body.get("name"),
        limit=limit,
        offset=offset,
        sort_by=body.get("sort_by"),
        sort_order=body.get("sort_order"),
        auth=flt,
    )
    fields = body.get("select")
    return s.json_response(
        [s.select(s.assistant_json(a), fields) for a in items],
        headers=s.page_headers(offset, limit, len(items), total),
    )


@operation("Count assistants", "assistants", body=COUNT, response={"type": "integer"}, errors=(404,))
async def count(request: Request) -> Response:
    body = await s.body(request, COUNT)
    _known_graph(request, body.get("graph_id"))
    value: Json = {"graph_id": body.get("graph_id"), "metadata": body.get("metadata"), "limit": 0, "offset": 0}
    flt = await authorize(request, "assistants", "search", value)
    n = await assistants.count(
        services(request),
        graph_id=body.get("graph_id"),
        metadata=value.get("metadata"),
        name=body.get("name"),
        auth=flt,
    )
    return s.json_response(n)


@operation(
    "List an assistant's versions",
    "assistants",
    body=VERSIONS,
    response=r.array(r.ref("AssistantVersion")),
    errors=(404,),
)
async def versions(request: Request) -> Response:
    assistant_id = s.path_uuid(request, "assistant_id", "assistant")
    body = await s.body(request, VERSIONS)
    flt = await _read_filter(request, assistant_id)
    found = await assistants.versions(
        services(request),
        assistant_id,
        metadata=body.get("metadata"),
        limit=body.get("limit", 10),
        offset=body.get("offset", 0),
        auth=flt,
    )
    return s.json_response([s.version_json(v) for v in found])


@operation(
    "Make a version the assistant's latest",
    "assistants",
    body=LATEST,
    body_required=True,
    response=r.ref("Assistant"),
    errors=(404,),
)
async def set_latest(request: Request) -> Response:
    assistant_id = s.path_uuid(request, "assistant_id", "assistant")
    body = await s.body(request, LATEST)
    value: Json = {"assistant_id": uuid.UUID(assistant_id), "version": body["version"]}
    flt = await authorize(request, "assistants", "update", value)
    assistant = await assistants.set_latest(services(request), assistant_id, body["version"], flt)
    return s.json_response(s.assistant_json(assistant))


async def _graph_of(request: Request) -> tuple[str, Any]:
    """Graph endpoints accept a UUID or a graph name."""
    svc = services(request)
    raw = request.path_params["assistant_id"]
    try:
        assistant_id = str(uuid.UUID(raw))
    except ValueError:
        if raw not in svc.graphs:
            raise Unprocessable("Invalid assistant ID: must be a UUID") from None
        assistant_id = system_assistant_id(raw)
    flt = await _read_filter(request, assistant_id)
    assistant = await assistants.get(svc, assistant_id, flt)
    if assistant.graph_id not in svc.graphs:
        raise AssistantNotFound(f"Graph '{assistant.graph_id}' of assistant {assistant_id} is not loaded")
    return assistant.graph_id, assistants.graph_config(assistant)


def _xray(request: Request) -> bool | int:
    raw = (request.query_params.get("xray") or "false").strip().lower()
    if raw in ("true", "false"):
        return raw == "true"
    try:
        value = int(raw)
    except ValueError:
        raise Unprocessable("Invalid xray value: use true, false or a positive integer") from None
    if value <= 0:
        raise Unprocessable("Invalid xray value: use true, false or a positive integer")
    return value


@operation(
    "Drawable graph of an assistant",
    "assistants",
    path=GRAPH_PATH,
    query={"xray": XRAY},
    response=r.record({"nodes": {"type": "array"}, "edges": {"type": "array"}}),
    errors=(404,),
)
async def graph(request: Request) -> Response:
    graph_id, config = await _graph_of(request)
    xray = _xray(request)
    svc = services(request)
    try:
        drawn = await svc.graphs.drawable(graph_id, xray, config, user=auth_user(request), store=svc.storage.store)
    except ValueError as exc:
        raise Unprocessable(str(exc)) from exc
    return s.json_response(drawn)


@operation(
    "Input, output, state, config and context schemas", "assistants", path=GRAPH_PATH, response=r.OBJ, errors=(404,)
)
async def graph_schemas(request: Request) -> Response:
    graph_id, config = await _graph_of(request)
    svc = services(request)
    schemas = await svc.graphs.schemas(graph_id, config, user=auth_user(request), store=svc.storage.store)
    return s.json_response(schemas)


@operation(
    "Schemas of an assistant's subgraphs",
    "assistants",
    path=GRAPH_PATH,
    query={"recurse": Query(s.QUERY_BOOL, "also the subgraphs of subgraphs")},
    response=r.OBJ,
    errors=(404,),
)
async def subgraphs(request: Request) -> Response:
    graph_id, config = await _graph_of(request)
    namespace = request.path_params.get("namespace")
    recurse = s.query_bool(request, "recurse")
    svc = services(request)
    found = await svc.graphs.subgraphs(
        graph_id, namespace, recurse, config, user=auth_user(request), store=svc.storage.store
    )
    return s.json_response(found)
