"""/store: put, get, delete and search items; list namespaces."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from graphyard.api import responses as r
from graphyard.api import schemas as s
from graphyard.api.deps import authorize, services
from graphyard.api.openapi import Query, operation
from graphyard.errors import InvalidNamespace
from graphyard.records import Json
from graphyard.services import store

LABELS: Json = {"type": "array", "items": {"type": "string"}}
LABELS_OR_NULL: Json = {"type": ["array", "null"], "items": {"type": "string"}}
PUT = s.schema(
    {
        "namespace": LABELS,
        "key": {"type": "string"},
        "value": s.OBJ,
        "index": {"anyOf": [{"const": False}, {"type": "array", "items": {"type": "string"}}, {"type": "null"}]},
        "ttl": s.TTL,
    },
    ["namespace", "key", "value"],
)
DELETE = s.schema({"namespace": LABELS_OR_NULL, "key": {"type": "string"}}, ["key"])
SEARCH = s.schema(
    {
        "namespace_prefix": LABELS_OR_NULL,
        "filter": s.OBJ_OR_NULL,
        "limit": s.LIMIT,
        "offset": s.OFFSET,
        "query": s.STR_OR_NULL,
        "refresh_ttl": {"type": ["boolean", "null"]},
    }
)
NAMESPACES = s.schema(
    {
        "prefix": LABELS_OR_NULL,
        "suffix": LABELS_OR_NULL,
        "max_depth": {"type": ["integer", "null"], "minimum": 1, "maximum": s.INT32_MAX},
        "limit": s.LIMIT,
        "offset": s.OFFSET,
    }
)

# The store answers a bad namespace label with a bare JSON string (422) and a missing key with
# {"error": ...} (400), as the reference does; other errors carry a `detail`.
STORE_ERROR: Json = {"anyOf": [r.ref("Error"), r.STR, r.record({"error": r.STR})]}
GET_QUERY = {
    "namespace": Query(r.STR, "the namespace's labels joined with '.'"),
    "key": Query(r.STR, "the item's key", required=True),
    "refresh_ttl": Query(s.QUERY_BOOL),
}

Handler = Callable[[Request], Awaitable[Response]]


def _bare_namespace_errors(handler: Handler) -> Handler:
    """A bad namespace label answers 422 with the message as a bare JSON string, as the reference does."""

    @wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except InvalidNamespace as exc:
            return s.json_response(exc.message, status_code=422)

    return wrapped


async def _authorize(request: Request, action: str, value: Json) -> tuple[tuple[str, ...], Json | None]:
    """Run the store handler; it may rewrite value["namespace"], which is checked again afterwards."""
    flt = await authorize(request, "store", action, value)
    return store.namespace(value.get("namespace")), flt


@operation("Put an item", "store", body=PUT, body_required=True, status=204, errors=(400,), error_schema=STORE_ERROR)
@_bare_namespace_errors
async def put_item(request: Request) -> Response:
    body = await s.body(request, PUT)
    value: dict[str, Any] = {
        "namespace": store.namespace(body["namespace"]),
        "key": body["key"],
        "value": body["value"],
        "index": body.get("index"),
    }
    if body.get("ttl") is not None:
        value["ttl"] = body["ttl"]
    ns, _ = await _authorize(request, "put", value)
    await store.put(services(request), ns, value["key"], value["value"], index=value.get("index"), ttl=value.get("ttl"))
    return Response(status_code=204)


@operation(
    "Get an item (null when there is none)",
    "store",
    query=GET_QUERY,
    response={"anyOf": [r.ref("Item"), {"type": "null"}]},
    errors=(400,),
    error_schema=STORE_ERROR,
)
@_bare_namespace_errors
async def get_item(request: Request) -> Response:
    key = request.query_params.get("key")
    if not key:
        return s.json_response({"error": "Key is required"}, status_code=400)
    value: dict[str, Any] = {"namespace": store.parse_namespace(request.query_params.get("namespace", "")), "key": key}
    refresh = request.query_params.get("refresh_ttl")
    if refresh:
        value["refresh_ttl"] = s.query_bool(request, "refresh_ttl")
    ns, _ = await _authorize(request, "get", value)
    item = await store.get(services(request), ns, value["key"], refresh_ttl=value.get("refresh_ttl"))
    return s.json_response(item)


@operation(
    "Delete an item", "store", body=DELETE, body_required=True, status=204, errors=(400,), error_schema=STORE_ERROR
)
@_bare_namespace_errors
async def delete_item(request: Request) -> Response:
    body = await s.body(request, DELETE)
    value: dict[str, Any] = {"namespace": store.namespace(body.get("namespace")), "key": body["key"]}
    ns, _ = await _authorize(request, "delete", value)
    await store.delete(services(request), ns, value["key"])
    return Response(status_code=204)


@operation(
    "Search items under a namespace prefix",
    "store",
    body=SEARCH,
    response=r.record({"items": r.array(r.ref("SearchItem"))}),
    errors=(400,),
    error_schema=STORE_ERROR,
)
@_bare_namespace_errors
async def search_items(request: Request) -> Response:
    body = await s.body(request, SEARCH)
    value: dict[str, Any] = {
        "namespace": store.namespace(body.get("namespace_prefix")),
        "filter": body.get("filter"),
        "limit": body.get("limit", 10),
        "offset": body.get("offset", 0),
        "query": body.get("query"),
    }
    if body.get("refresh_ttl") is not None:
        value["refresh_ttl"] = body["refresh_ttl"]
    ns, flt = await _authorize(request, "search", value)
    items = await store.search(
        services(request),
        ns,
        filter=value.get("filter"),
        limit=value.get("limit", 10),
        offset=value.get("offset", 0),
        query=value.get("query"),
        refresh_ttl=value.get("refresh_ttl"),
        auth=flt,
    )
    return s.json_response({"items": items})


@operation(
    "List namespaces",
    "store",
    body=NAMESPACES,
    response=r.record({"namespaces": r.array(r.LABELS)}),
    errors=(400,),
    error_schema=STORE_ERROR,
)
@_bare_namespace_errors
async def list_namespaces(request: Request) -> Response:
    body = await s.body(request, NAMESPACES)
    value: dict[str, Any] = {
        "namespace": store.namespace(body.get("prefix")),
        "suffix": store.namespace(body.get("suffix")),
        "max_depth": body.get("max_depth"),
        "limit": body.get("limit", 100),
        "offset": body.get("offset", 0),
    }
    prefix, _ = await _authorize(request, "list_namespaces", value)
    namespaces = await store.list_namespaces(
        services(request),
        prefix=prefix,
        suffix=store.namespace(value.get("suffix")),
        max_depth=value.get("max_depth"),
        limit=value.get("limit", 100),
        offset=value.get("offset", 0),
    )
    return s.json_response({"namespaces": namespaces})
