"""/threads: create, get, patch, delete, search, count, copy, prune; state, history."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from graphyard.api import responses as r
from graphyard.api import schemas as s
from graphyard.api.deps import auth_user, authorize, services
from graphyard.api.openapi import SSE, Query, operation
from graphyard.api.sse import relay, sse_response
from graphyard.errors import GraphyardError, Unprocessable
from graphyard.records import Json, uuid7
from graphyard.services import thread_ttl, threads
from graphyard.services.channels import thread_channel

STATUSES = ["idle", "busy", "interrupted", "error"]
SELECT_FIELDS = [
    "thread_id",
    "created_at",
    "updated_at",
    "state_updated_at",
    "metadata",
    "config",
    "context",
    "status",
    "values",
    "interrupts",
    "error",
]
TTL: Json = {
    "anyOf": [
        s.TTL,
        {"type": "object", "properties": {"strategy": {"enum": ["delete", "keep_latest"]}, "ttl": s.TTL}},
    ]
}
CREATE = s.schema(
    {
        "thread_id": s.UUID_STR,
        "metadata": s.OBJ_OR_NULL,
        "if_exists": {"enum": ["raise", "do_nothing"]},
        "ttl": TTL,
        "supersteps": {"type": ["array", "null"]},
    }
)
PATCH = s.schema({"metadata": s.OBJ_OR_NULL, "ttl": TTL})
FILTERS: Json = {
    "metadata": s.OBJ_OR_NULL,
    "values": s.OBJ_OR_NULL,
    "status": {"enum": [*STATUSES, None]},
}
SEARCH = s.schema(
    {
        **FILTERS,
        "ids": {"type": ["array", "null"], "items": s.UUID_STR},
        "limit": s.LIMIT,
        "offset": s.OFFSET,
        "sort_by": {"enum": ["thread_id", "status", "created_at", "updated_at", "state_updated_at", None]},
        "sort_order": s.SORT_ORDER,
        "select": {"type": ["array", "null"], "items": {"enum": SELECT_FIELDS}},
        "extract": {"type": ["object", "null"], "maxProperties": 10},
    }
)
COUNT = s.schema(FILTERS)
PRUNE = s.schema(
    {"thread_ids": {"type": "array", "items": s.UUID_STR}, "strategy": {"enum": ["delete", "keep_latest"]}},
    ["thread_ids"],
)
STATE_UPDATE = s.schema(
    {
        "values": {"type": ["object", "array", "null"]},
        "checkpoint": s.CHECKPOINT,
        "checkpoint_id": s.STR_OR_NULL,
        "as_node": s.STR_OR_NULL,
    }
)
STATE_AT = s.schema({"checkpoint": s.CHECKPOINT, "subgraphs": {"type": ["boolean", "null"]}}, ["checkpoint"])
BEFORE: Json = {"anyOf": [{"type": "string"}, s.CHECKPOINT, {"type": "object"}]}
HISTORY = s.schema(
    {
        "limit": s.LIMIT,
        "before": BEFORE,
        "metadata": s.OBJ_OR_NULL,
        "checkpoint": s.CHECKPOINT,
    }
)


def _thread_id(request: Request) -> str:
    return s.path_uuid(request, "thread_id", "thread")


async def read_filter(request: Request, thread_id: str) -> Json | None:
    """threads.read for one thread: the filter that must let the caller see it."""
    return await authorize(request, "threads", "read", {"thread_id": uuid.UUID(thread_id)})


@operation(
    "Create a thread",
    "threads",
    body=CREATE,
    response=r.ref("Thread"),
    errors=(404, 409),
    more={201: r.ref("Error")},
    description="When `supersteps` cannot be written, the thread exists and the answer is 201 with a `detail`.",
)
async def create(request: Request) -> Response:
    body = await s.body(request, CREATE)
    svc = services(request)
    thread_id = body.get("thread_id") or uuid7()
    if_exists = body.get("if_exists") or "raise"
    value: Json = {"thread_id": uuid.UUID(thread_id), "metadata": body.get("metadata"), "if_exists": if_exists}
    if body.get("ttl") is not None:
        value["ttl"] = body["ttl"]
    flt = await authorize(request, "threads", "create", value)
    if body.get("supersteps"):
        await authorize(request, "threads", "update", {"thread_id": uuid.UUID(thread_id)})
    thread = await threads.create(
        svc, thread_id=thread_id, metadata=value.get("metadata"), if_exists=if_exists, auth=flt, ttl=value.get("ttl")
    )
    if body.get("supersteps"):
        try:
            await threads.apply_supersteps(svc, thread, body["supersteps"], auth_user(request))
        except (GraphyardError, ValueError, TypeError, KeyError) as exc:
            # The reference's answer: the thread exists, its state could not be written.
            detail = f"Thread {thread.thread_id} was created, but there were problems updating the state: {exc}"
            return s.json_response({"detail": detail}, status_code=201)
        thread = await threads.get(svc, thread.thread_id)
    return s.json_response(s.thread_json(thread))


@operation(
    "Get a thread",
    "threads",
    query={"include": Query({"type": "string"}, "comma-separated extra fields: `ttl` adds the thread's TTL")},
    response=r.ref("Thread"),
    errors=(404,),
)
async def get(request: Request) -> Response:
    thread_id = _thread_id(request)
    flt = await read_filter(request, thread_id)
    svc = services(request)
    # The values go out as they are stored (a thread's state can be large): no decode and encode again.
    found = s.thread_json(await threads.get(svc, thread_id, flt, encoded_values=True))
    include = {part.strip() for part in (request.query_params.get("include") or "").split(",")}
    if "ttl" in include:
        found["ttl"] = await thread_ttl.get(svc, thread_id)
    return s.json_response(found)


@operation(
    "Update a thread's metadata",
    "threads",
    body=PATCH,
    response=r.ref("Thread"),
    errors=(404,),
    more={204: None},
    description="With `Prefer: return=minimal` the answer is 204 with no body.",
)
async def patch(request: Request) -> Response:
    thread_id = _thread_id(request)
    body = await s.body(request, PATCH)
    value: Json = {"thread_id": uuid.UUID(thread_id), "metadata": body.get("metadata")}
    if body.get("ttl") is not None:
        value["ttl"] = body["ttl"]
    flt = await authorize(request, "threads", "update", value)
    thread = await threads.patch(
        services(request), thread_id, metadata=value.get("metadata"), auth=flt, ttl=value.get("ttl")
    )
    if "return=minimal" in (request.headers.get("prefer") or ""):
        return Response(status_code=204)
    return s.json_response(s.thread_json(thread))


@operation("Delete a thread, its runs and checkpoints", "threads", status=204, errors=(404,))
async def delete(request: Request) -> Response:
    thread_id = _thread_id(request)
    flt = await authorize(request, "threads", "delete", {"thread_id": uuid.UUID(thread_id)})
    await threads.delete(services(request), thread_id, flt)
    return Response(status_code=204)


def _extract(thread: Json, paths: dict[str, Any]) -> Json:
    out: Json = {}
    for alias, path in paths.items():
        value: Any = thread
        for part in str(path).replace("]", "").replace("[", ".").split("."):
            if part == "":
                continue
            try:
                value = value[int(part)] if isinstance(value, list) else value[part]
            except (KeyError, IndexError, TypeError, ValueError):
                value = None
                break
        out[alias] = value
    return out


@operation("Search threads", "threads", body=SEARCH, response=r.array(r.partial(r.THREAD)), headers=s.PAGE_HEADERS)
async def search(request: Request) -> Response:
    body = await s.body(request, SEARCH)
    limit, offset = body.get("limit", 10), body.get("offset", 0)
    value: Json = {
        "metadata": body.get("metadata"),
        "values": body.get("values"),
        "status": body.get("status"),
        "limit": limit,
        "offset": offset,
    }
    if body.get("ids") is not None:
        value["ids"] = [uuid.UUID(i) for i in body["ids"]]
    flt = await authorize(request, "threads", "search", value)
    items, total = await threads.search(
        services(request),
        ids=body.get("ids"),
        metadata=value.get("metadata"),
        values=value.get("values"),
        status=value.get("status"),
        limit=limit,
        offset=offset,
        sort_by=body.get("sort_by"),
        sort_order=body.get("sort_order"),
        auth=flt,
    )
    fields = body.get("select")
    out = []
    for thread in items:
        item = s.thread_json(thread)
        shaped = s.select(item, fields)
        if body.get("extract"):
            shaped["extracted"] = _extract(item, body["extract"])
        out.append(shaped)
    return s.json_response(out, headers=s.page_headers(offset, limit, len(items), total))


@operation("Count threads", "threads", body=COUNT, response={"type": "integer"})
async def count(request: Request) -> Response:
    body = await s.body(request, COUNT)
    value: Json = {
        "metadata": body.get("metadata"),
        "values": body.get("values"),
        "status": body.get("status"),
        "limit": 0,
        "offset": 0,
    }
    flt = await authorize(request, "threads", "search", value)
    n = await threads.count(
        services(request),
        metadata=value.get("metadata"),
        values=value.get("values"),
        status=value.get("status"),
        auth=flt,
    )
    return s.json_response(n)


@operation("Copy a thread with its checkpoints", "threads", response=r.ref("Thread"), errors=(404, 409))
async def copy(request: Request) -> Response:
    thread_id = _thread_id(request)
    flt = await read_filter(request, thread_id)
    new_id = str(uuid.uuid4())
    created: Json = {"thread_id": uuid.UUID(new_id)}
    await authorize(request, "threads", "create", created)
    copied = await threads.copy(
        services(request), thread_id, flt, new_thread_id=new_id, metadata=created.get("metadata")
    )
    return s.json_response(s.thread_json(copied))


@operation(
    "Delete threads",
    "threads",
    body=PRUNE,
    body_required=True,
    response=r.record({"pruned_count": {"type": "integer"}}),
)
async def prune(request: Request) -> Response:
    body = await s.body(request, PRUNE)
    if body.get("strategy", "delete") != "delete":
        raise Unprocessable("Only the 'delete' prune strategy is supported")
    value: Json = {"thread_ids": [uuid.UUID(t) for t in body["thread_ids"]]}
    flt = await authorize(request, "threads", "delete", value)
    return s.json_response({"pruned_count": await threads.prune(services(request), body["thread_ids"], flt)})


# --- state ----------------------------------------------------------------------------------------


@operation(
    "A thread's state (latest, or at a checkpoint)",
    "threads",
    query={"subgraphs": Query(s.QUERY_BOOL, "include subgraph states")},
    response=r.ref("ThreadState"),
    errors=(404,),
)
async def get_state(request: Request) -> Response:
    thread_id = _thread_id(request)
    checkpoint_id = request.path_params.get("checkpoint_id")
    checkpoint = {"checkpoint_id": checkpoint_id} if checkpoint_id else None
    flt = await read_filter(request, thread_id)
    state = await threads.get_state(
        services(request),
        thread_id,
        checkpoint=checkpoint,
        subgraphs=s.query_bool(request, "subgraphs"),
        auth=flt,
        user=auth_user(request),
    )
    return s.json_response(state)


@operation(
    "A thread's state at a checkpoint",
    "threads",
    body=STATE_AT,
    body_required=True,
    response=r.ref("ThreadState"),
    errors=(404,),
)
async def get_state_at(request: Request) -> Response:
    thread_id = _thread_id(request)
    body = await s.body(request, STATE_AT)
    flt = await read_filter(request, thread_id)
    state = await threads.get_state(
        services(request),
        thread_id,
        checkpoint=body.get("checkpoint"),
        subgraphs=bool(body.get("subgraphs")),
        auth=flt,
        user=auth_user(request),
    )
    return s.json_response(state)


@operation(
    "Write values into a thread's state",
    "threads",
    body=STATE_UPDATE,
    response=r.STATE_UPDATED,
    errors=(400, 404, 409),
)
async def update_state(request: Request) -> Response:
    thread_id = _thread_id(request)
    body = await s.body(request, STATE_UPDATE)
    checkpoint = dict(body.get("checkpoint") or {})
    if body.get("checkpoint_id"):
        checkpoint["checkpoint_id"] = body["checkpoint_id"]
    flt = await authorize(request, "threads", "update", {"thread_id": uuid.UUID(thread_id)})
    result = await threads.update_state(
        services(request),
        thread_id,
        values=body.get("values"),
        as_node=body.get("as_node"),
        checkpoint=checkpoint or None,
        auth=flt,
        user=auth_user(request),
    )
    return s.json_response(result)


def _before(raw: Any) -> Json | None:
    """`before` as a checkpoint id string, a Checkpoint dict, or a config dict with `configurable`."""
    if raw is None:
        return None
    if isinstance(raw, str):
        return {"checkpoint_id": raw}
    if isinstance(raw, dict):
        nested = raw.get("configurable")
        inner: Json = nested if isinstance(nested, dict) else raw
        return {k: v for k, v in inner.items() if k in ("checkpoint_id", "checkpoint_ns") and v is not None}
    return None


HISTORY_QUERY = {
    "limit": Query(s.LIMIT, "how many checkpoints (default 1)"),
    "before": Query(r.STR, "only checkpoints older than this checkpoint id"),
}


@operation(
    "A thread's checkpoints, newest first",
    "threads",
    query=HISTORY_QUERY,
    response=r.array(r.ref("ThreadState")),
    errors=(400, 404),
)
async def history_get(request: Request) -> Response:
    limit = s.query_int(request, "limit", HISTORY_QUERY["limit"].schema, 1)
    return await _history(request, {"limit": limit, "before": request.query_params.get("before") or None})


@operation(
    "A thread's checkpoints, newest first, filtered",
    "threads",
    body=HISTORY,
    response=r.array(r.ref("ThreadState")),
    errors=(400, 404),
)
async def history(request: Request) -> Response:
    return await _history(request, await s.body(request, HISTORY))


async def _history(request: Request, body: Json) -> Response:
    thread_id = _thread_id(request)
    flt = await read_filter(request, thread_id)
    found = await threads.history(
        services(request),
        thread_id,
        limit=body.get("limit", 1),
        before=_before(body.get("before")),
        metadata=body.get("metadata"),
        checkpoint=body.get("checkpoint"),
        auth=flt,
        user=auth_user(request),
    )
    return s.json_response(found)


THREAD_STREAM_MODES = {"run_modes", "lifecycle", "state_update"}


def _thread_stream_modes(request: Request) -> set[str]:
    """The SDK sends `stream_mode`, the reference reads `stream_modes`: accept both, repeated or comma lists."""
    raw = request.query_params.getlist("stream_mode") + request.query_params.getlist("stream_modes")
    modes = {part.strip() for value in raw for part in value.split(",") if part.strip()}
    unknown = modes - THREAD_STREAM_MODES
    if unknown:
        raise Unprocessable(f"Unknown thread stream mode(s) {sorted(unknown)}; use {sorted(THREAD_STREAM_MODES)}")
    return modes or {"run_modes"}


def _thread_event_filter(modes: set[str]) -> Callable[[str], bool]:
    def accept(event: str) -> bool:
        if event == "state_update":
            return "state_update" in modes
        if "run_modes" in modes:
            return True
        return "lifecycle" in modes and event == "metadata"

    return accept


@operation(
    "Events of every run on the thread, now and later (never ends by itself)",
    "threads",
    query={
        "stream_mode": Query(
            {"enum": sorted(THREAD_STREAM_MODES)}, "run_modes, lifecycle, state_update", repeated=True
        ),
    },
    media=SSE,
    response=r.SSE_EVENT,
    errors=(404,),
)
async def join_stream(request: Request) -> Response:
    """Events of whatever runs on the thread, now and later; never ends on its own."""
    thread_id = _thread_id(request)
    modes = _thread_stream_modes(request)
    svc = services(request)
    flt = await read_filter(request, thread_id)
    sub = await svc.broker.subscribe(thread_channel(thread_id), last_event_id=request.headers.get("last-event-id"))
    try:
        await threads.get(svc, thread_id, flt)
    except BaseException:
        await sub.aclose()
        raise
    return sse_response(relay(sub, with_ids=True, accept=_thread_event_filter(modes)))
