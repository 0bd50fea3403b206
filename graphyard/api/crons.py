"""/runs/crons and /threads/{id}/runs/crons: create, get, patch, delete, search, count."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from graphyard.api import responses as r
from graphyard.api import schemas as s
from graphyard.api.deps import auth_user, authorize, services
from graphyard.api.openapi import operation
from graphyard.api.runs import RUN_PROPERTIES
from graphyard.records import Cron, Json, system_assistant_id, uuid7
from graphyard.services import crons

SORT_FIELDS = ["cron_id", "assistant_id", "thread_id", "next_run_date", "end_time", "created_at", "updated_at"]
SELECT_FIELDS = [
    "cron_id",
    "assistant_id",
    "thread_id",
    "on_run_completed",
    "end_time",
    "schedule",
    "timezone",
    "created_at",
    "updated_at",
    "user_id",
    "payload",
    "next_run_date",
    "metadata",
    "enabled",
]
# The run fields a cron copies into the runs it creates.
RUN_FIELDS = (
    "input",
    "metadata",
    "config",
    "context",
    "webhook",
    "interrupt_before",
    "interrupt_after",
    "multitask_strategy",
    "stream_mode",
    "stream_subgraphs",
    "stream_resumable",
    "durability",
    "checkpoint_during",
)
SCHEDULE_FIELDS: Json = {
    "schedule": {"type": "string", "minLength": 1},
    "timezone": s.STR_OR_NULL,
    "end_time": s.STR_OR_NULL,
    "on_run_completed": {"enum": ["delete", "keep", None]},
    "enabled": {"type": ["boolean", "null"]},
}
RUN_SUBSET: Json = {key: RUN_PROPERTIES[key] for key in RUN_FIELDS}
CREATE = s.schema(
    {**RUN_SUBSET, **SCHEDULE_FIELDS, "assistant_id": {"type": "string", "minLength": 1}},
    ["schedule", "assistant_id"],
)
PATCH = s.schema({**{k: v for k, v in RUN_SUBSET.items() if k != "multitask_strategy"}, **SCHEDULE_FIELDS})
FILTERS: Json = {"assistant_id": s.STR_OR_NULL, "thread_id": {"anyOf": [s.UUID_STR, {"type": "null"}]}}
SEARCH = s.schema(
    {
        **FILTERS,
        "enabled": {"type": ["boolean", "null"]},
        "metadata": s.OBJ_OR_NULL,
        "limit": s.LIMIT,
        "offset": s.OFFSET,
        "sort_by": {"enum": [*SORT_FIELDS, None]},
        "sort_order": s.SORT_ORDER,
        "select": {"type": ["array", "null"], "items": {"enum": SELECT_FIELDS}},
    }
)
COUNT = s.schema({**FILTERS, "metadata": s.OBJ_OR_NULL})


def cron_json(c: Cron) -> Json:
    return {
        "cron_id": c.cron_id,
        "assistant_id": c.assistant_id,
        "thread_id": c.thread_id,
        "user_id": c.user_id,
        "end_time": c.end_time,
        "schedule": c.schedule,
        "timezone": c.timezone,
        "payload": c.payload,
        "next_run_date": c.next_run_date,
        "metadata": c.metadata,
        "on_run_completed": c.on_run_completed,
        "enabled": c.enabled,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    }


def _cron_id(request: Request) -> str:
    return s.path_uuid(request, "cron_id", "cron")


def _as_uuid(value: Any) -> Any:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return value


async def _create(request: Request, thread_id: str | None) -> Response:
    body = await s.body(request, CREATE)
    svc = services(request)
    user = auth_user(request)
    user_id = user.identity if user is not None else ""
    cron_id = uuid7()
    thread_flt = None
    if thread_id is not None:
        # A thread cron reads its thread: a thread the caller may not see is missing (404).
        thread_flt = await authorize(request, "threads", "read", {"thread_id": uuid.UUID(thread_id)})
    value: Json = {
        "payload": body,
        "schedule": body["schedule"],
        "cron_id": uuid.UUID(cron_id),
        "thread_id": None if thread_id is None else uuid.UUID(thread_id),
        "user_id": user_id or None,
        "end_time": body.get("end_time"),
        "metadata": dict(body.get("metadata") or {}),
    }
    await authorize(request, "crons", "create", value)
    ref = str(body["assistant_id"])
    assistant_flt = None
    if ref not in svc.graphs and _as_uuid(ref) not in {
        uuid.UUID(system_assistant_id(g)) for g in svc.graphs.graph_ids()
    }:
        assistant_flt = await authorize(request, "assistants", "read", {"assistant_id": _as_uuid(ref)})
    metadata = value.get("metadata")
    cron = await crons.create(
        svc,
        body,
        thread_id=thread_id,
        cron_id=cron_id,
        user_id=user_id,
        metadata=metadata if isinstance(metadata, dict) else None,
        auth=thread_flt,
        assistant_auth=assistant_flt,
    )
    return s.json_response(cron_json(cron))


@operation(
    "Create a cron creating stateless runs",
    "crons",
    body=CREATE,
    body_required=True,
    response=r.ref("Cron"),
    errors=(404, 422),
)
async def create_stateless(request: Request) -> Response:
    return await _create(request, None)


@operation(
    "Create a cron creating runs on a thread",
    "crons",
    body=CREATE,
    body_required=True,
    response=r.ref("Cron"),
    errors=(404, 422),
)
async def create_for_thread(request: Request) -> Response:
    return await _create(request, s.path_uuid(request, "thread_id", "thread"))


@operation("Get a cron", "crons", response=r.ref("Cron"), errors=(404,))
async def get(request: Request) -> Response:
    cron_id = _cron_id(request)
    flt = await authorize(request, "crons", "read", {"cron_id": uuid.UUID(cron_id)})
    return s.json_response(cron_json(await crons.get(services(request), cron_id, flt)))


@operation("Update a cron", "crons", body=PATCH, response=r.ref("Cron"), errors=(400, 404))
async def patch(request: Request) -> Response:
    cron_id = _cron_id(request)
    body = await s.body(request, PATCH)
    value: Json = {
        "cron_id": uuid.UUID(cron_id),
        "payload": body,
        "schedule": body.get("schedule"),
        "end_time": body.get("end_time"),
        "enabled": body.get("enabled"),
        "on_run_completed": body.get("on_run_completed"),
    }
    if body.get("metadata") is not None:
        value["metadata"] = dict(body["metadata"])
    flt = await authorize(request, "crons", "update", value)
    metadata = value.get("metadata")
    if body and isinstance(metadata, dict):
        body = {**body, "metadata": metadata}
    cron = await crons.patch(services(request), cron_id, body, flt)
    return s.json_response(cron_json(cron))


@operation("Delete a cron", "crons", status=204, errors=(404,))
async def delete(request: Request) -> Response:
    cron_id = _cron_id(request)
    flt = await authorize(request, "crons", "delete", {"cron_id": uuid.UUID(cron_id)})
    await crons.delete(services(request), cron_id, flt)
    return Response(status_code=204)


@operation("Search crons", "crons", body=SEARCH, response=r.array(r.partial(r.CRON)), headers=s.PAGE_HEADERS)
async def search(request: Request) -> Response:
    body = await s.body(request, SEARCH)
    limit, offset = body.get("limit", 10), body.get("offset", 0)
    value: Json = {
        "assistant_id": None if body.get("assistant_id") is None else _as_uuid(body["assistant_id"]),
        "thread_id": None if body.get("thread_id") is None else uuid.UUID(body["thread_id"]),
        "limit": limit,
        "offset": offset,
        "metadata": body.get("metadata"),
    }
    flt = await authorize(request, "crons", "search", value)
    items, total = await crons.search(
        services(request),
        assistant_id=body.get("assistant_id"),
        thread_id=body.get("thread_id"),
        enabled=body.get("enabled"),
        metadata=value.get("metadata"),
        limit=limit,
        offset=offset,
        sort_by=body.get("sort_by"),
        sort_order=body.get("sort_order"),
        auth=flt,
    )
    out = [s.select(cron_json(c), body.get("select")) for c in items]
    return s.json_response(out, headers=s.page_headers(offset, limit, len(items), total))


@operation("Count crons", "crons", body=COUNT, response={"type": "integer"})
async def count(request: Request) -> Response:
    body = await s.body(request, COUNT)
    value: Json = {
        "assistant_id": None if body.get("assistant_id") is None else _as_uuid(body["assistant_id"]),
        "thread_id": None if body.get("thread_id") is None else uuid.UUID(body["thread_id"]),
        "limit": 0,
        "offset": 0,
        "metadata": body.get("metadata"),
    }
    flt = await authorize(request, "crons", "search", value)
    total = await crons.count(
        services(request),
        assistant_id=body.get("assistant_id"),
        thread_id=body.get("thread_id"),
        metadata=value.get("metadata"),
        auth=flt,
    )
    return s.json_response(total)
