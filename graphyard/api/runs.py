"""/threads/{id}/runs… and /runs…: create, stream, wait, join, get, list, delete, cancel, batch."""

from __future__ import annotations

import copy
import functools
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from graphyard.api import responses as r
from graphyard.api import schemas as s
from graphyard.api.deps import auth_user, authorize, copied_headers, project_auth, services
from graphyard.api.openapi import SSE, Query, operation
from graphyard.api.sse import error_frame, relay, sse_response, wants
from graphyard.api.waiting import WaitResponse
from graphyard.broker.ports import Subscription
from graphyard.errors import NotFound, Unprocessable
from graphyard.records import RUN_TERMINAL, CancelAction, Json, Run, system_assistant_id
from graphyard.serde import dumps
from graphyard.services import runs
from graphyard.services.channels import run_channel
from graphyard.services.context import Services

RUN_STATUSES = ["pending", "running", "error", "success", "timeout", "interrupted"]
COMMAND: Json = {
    "type": ["object", "null"],
    "properties": {"update": {}, "resume": {}, "goto": {}},
}
RUN_PROPERTIES: Json = {
    "assistant_id": {"type": "string", "minLength": 1},
    "input": {},
    "command": COMMAND,
    "metadata": s.OBJ_OR_NULL,
    "config": s.CONFIG,
    "context": s.OBJ_OR_NULL,
    "checkpoint": s.CHECKPOINT,
    "checkpoint_id": s.STR_OR_NULL,
    "checkpoint_during": {"type": ["boolean", "null"]},
    "interrupt_before": s.NODES,
    "interrupt_after": s.NODES,
    "stream_mode": s.STREAM_MODE,
    "stream_subgraphs": {"type": ["boolean", "null"]},
    "stream_resumable": {"type": ["boolean", "null"]},
    "feedback_keys": {"type": ["array", "null"], "items": {"type": "string"}},
    "webhook": {"type": ["string", "null"], "minLength": 1, "maxLength": 65536},
    "multitask_strategy": {"enum": ["reject", "interrupt", "rollback", "enqueue", None]},
    "if_not_exists": {"enum": ["create", "reject", None]},
    "on_completion": {"enum": ["delete", "keep", None]},
    "on_disconnect": {"enum": ["cancel", "continue", None]},
    # Up to a year: further is a mistake, and would overflow date arithmetic.
    "after_seconds": {"type": ["number", "null"], "minimum": 0, "maximum": 31_536_000},
    "durability": {"enum": ["sync", "async", "exit", None]},
    "langsmith_tracer": s.OBJ_OR_NULL,
}
RUN_CREATE = s.schema(RUN_PROPERTIES, ["assistant_id"])
CANCEL_MANY = s.schema(
    {
        "thread_id": s.UUID_STR,
        "run_ids": {"type": "array", "items": s.UUID_STR},
        "status": {"enum": ["pending", "running", "all"]},
    }
)


RUN_ERRORS = (400, 404, 409)
LOCATION = {"Content-Location": r.STR}
WAIT_DESCRIPTION = (
    "The body is the run's final values (or its error as `__error__`), sent when it ends; until then the "
    "server sends whitespace every few seconds to keep the connection open."
)
STREAM_DESCRIPTION = "Server-sent events: `metadata`, then one event per stream mode chunk, then `end`."
CANCEL_ON_DISCONNECT = Query(s.QUERY_BOOL, "cancel the run if the client goes away")


def _thread_id(request: Request) -> str:
    return s.path_uuid(request, "thread_id", "thread")


def _run_id(request: Request) -> str:
    return s.path_uuid(request, "run_id", "run")


def _locations(run: Run, stateless: bool, tail: str) -> dict[str, str]:
    base = f"/threads/{run.thread_id}/runs/{run.run_id}"
    return {"Content-Location": base, "Location": f"{base}/{tail}"}


async def _create(request: Request, *, stateless: bool, run_id: str | None = None) -> tuple[Run, Json]:
    thread_id = None if stateless else _thread_id(request)
    payload = await s.body(request, RUN_CREATE)
    run = await create_run(request, payload, thread_id=thread_id, run_id=run_id)
    return run, payload


async def create_run(request: HTTPConnection, payload: Json, *, thread_id: str | None, run_id: str | None) -> Run:
    """runs.create, after the project's auth (if any) has seen and possibly changed the payload.
    The one way a run is made from an HTTP request (also by /mcp, /a2a and the thread protocol), so auth
    is never skipped."""
    svc = services(request)
    user = auth_user(request)
    if project_auth(request) is None or user is None:
        return await runs.create(svc, payload, thread_id=thread_id, run_id=run_id, headers=copied_headers(request))
    run_id = run_id or runs.new_run_id()
    payload, flt, assistant_flt = await _authorize_run(request, svc, payload, thread_id, run_id)
    return await runs.create(
        svc,
        payload,
        thread_id=thread_id,
        run_id=run_id,
        auth=flt,
        assistant_auth=assistant_flt,
        auth_user=user.json(),
        caller=user.dict(),
        headers=copied_headers(request),
    )


async def create_listened(request: Request, payload: Json, *, thread_id: str | None) -> tuple[Run, Subscription]:
    """create_run with a subscription to the run's events made before the run exists, so not even its
    first event can be missed, and a temporary run that deletes itself still leaves its end event to read."""
    svc = services(request)
    run_id = runs.new_run_id()
    sub = await svc.broker.subscribe(run_channel(run_id))
    try:
        run = await create_run(request, payload, thread_id=thread_id, run_id=run_id)
        if run.run_id != run_id:
            # The thread's run in flight came back instead (prevent_insert_if_inflight): listen to that one,
            # from the start of its stream, since it may have ended already.
            await sub.aclose()
            sub = await svc.broker.subscribe(run_channel(run.run_id), last_event_id="-")
    except BaseException:
        await sub.aclose()
        raise
    return run, sub


def _as_uuid(value: Any) -> Any:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return value


# RunsCreate.kwargs keys that are request fields of another name.
KWARG_FIELDS = {"subgraphs": "stream_subgraphs", "resumable": "stream_resumable"}
RUN_OPTIONS = ("metadata", "prevent_insert_if_inflight", "multitask_strategy", "if_not_exists", "after_seconds")


async def _authorize_run(
    request: HTTPConnection, svc: Services, payload: Json, thread_id: str | None, run_id: str
) -> tuple[Json, Json | None, Json | None]:
    """threads.create_run with the reference's RunsCreate value, then assistants.read for a user-made
    assistant. Returns the payload with the handler's changes, the thread filter, the assistant filter."""
    ref = str(payload["assistant_id"])
    assistant_id = system_assistant_id(ref) if ref in svc.graphs else ref
    system = assistant_id in {system_assistant_id(g) for g in svc.graphs.graph_ids()}
    stateless = thread_id is None
    value: Json = {
        "thread_id": None if stateless else uuid.UUID(thread_id),
        "assistant_id": _as_uuid(assistant_id),
        "run_id": uuid.UUID(run_id),
        "status": "pending",
        "metadata": dict(payload.get("metadata") or {}),
        "prevent_insert_if_inflight": bool(payload.get("prevent_insert_if_inflight", False)),
        "multitask_strategy": payload.get("multitask_strategy") or "enqueue",
        "if_not_exists": payload.get("if_not_exists") or "reject",
        "after_seconds": payload.get("after_seconds") or 0,
        "kwargs": {
            "input": payload.get("input"),
            "command": payload.get("command"),
            "config": payload.get("config") or {},
            "context": payload.get("context") or {},
            "stream_mode": payload.get("stream_mode") or "values",
            "interrupt_before": payload.get("interrupt_before"),
            "interrupt_after": payload.get("interrupt_after"),
            "webhook": payload.get("webhook"),
            "feedback_keys": payload.get("feedback_keys"),
            "temporary": stateless and payload.get("on_completion", "delete") != "keep",
            "subgraphs": bool(payload.get("stream_subgraphs", False)),
            "resumable": bool(payload.get("stream_resumable", False)),
            "checkpoint_during": payload.get("checkpoint_during", True),
            "durability": payload.get("durability"),
        },
    }
    before = copy.deepcopy(value)
    flt = await authorize(request, "threads", "create_run", value)
    assistant_flt = None
    if not system:
        assistant_flt = await authorize(request, "assistants", "read", {"assistant_id": _as_uuid(assistant_id)})
    # What the handler changed goes into the run; ids stay as the request and the server chose them.
    changed = dict(payload)
    for key in RUN_OPTIONS:
        if value.get(key) != before.get(key):
            changed[key] = value.get(key)
    raw_kwargs = value.get("kwargs")
    kwargs: Json = raw_kwargs if isinstance(raw_kwargs, dict) else {}
    for key, original in before["kwargs"].items():
        if key != "temporary" and key in kwargs and kwargs[key] != original:
            changed[KWARG_FIELDS.get(key, key)] = kwargs[key]
    return changed, flt, assistant_flt


@operation(
    "Start a run on a thread",
    "runs",
    body=RUN_CREATE,
    body_required=True,
    response=r.ref("Run"),
    errors=RUN_ERRORS,
    headers=LOCATION,
)
async def create_stateful(request: Request) -> Response:
    return await _created(request, stateless=False)


@operation(
    "Start a run on a temporary thread",
    "runs",
    body=RUN_CREATE,
    body_required=True,
    response=r.ref("Run"),
    errors=RUN_ERRORS,
    headers=LOCATION,
)
async def create_stateless(request: Request) -> Response:
    return await _created(request, stateless=True)


async def _created(request: Request, *, stateless: bool) -> Response:
    """The run just created, with where to read it (the reference's Content-Location)."""
    run, _ = await _create(request, stateless=stateless)
    location = _locations(run, stateless, "")["Content-Location"]
    return s.json_response(s.run_json(run), headers={"Content-Location": location})


@operation(
    "Start several stateless runs",
    "runs",
    body={"type": "array", "items": RUN_CREATE.schema},
    body_required=True,
    response=r.array(r.ref("Run")),
    errors=RUN_ERRORS,
)
async def batch(request: Request) -> Response:
    raw = await s.read_json(request)
    if not isinstance(raw, list):
        raise Unprocessable("Expected a JSON array of run payloads")
    payloads = [s.validate(RUN_CREATE, item) for item in raw]
    created = [await create_run(request, payload, thread_id=None, run_id=None) for payload in payloads]
    return s.json_response([s.run_json(r) for r in created])


# --- waiting ------------------------------------------------------------------------------------


async def _final_json(svc: Services, run: Run, sub: Subscription | None = None) -> bytes:
    """The run's output as the reference's wait/join send it (or the error of a run that is gone)."""
    found, output = await runs.result(svc, run.run_id, sub)
    if not found:
        return dumps({"__error__": {"error": "NotFound", "message": "Run not found"}})
    return dumps(output)


def _wait_response(
    svc: Services, run: Run, headers: dict[str, str], *, sub: Subscription | None = None, cancel_if_abandoned: bool
) -> WaitResponse:
    """The output when the run ends, whitespace keep-alives until then; with cancel_if_abandoned, a client
    that goes away before the end cancels the run."""
    on_abandoned = functools.partial(_cancel_quietly, svc, run) if cancel_if_abandoned else None
    return WaitResponse(functools.partial(_final_json, svc, run, sub), headers, on_abandoned=on_abandoned)


async def _wait(request: Request, *, stateless: bool) -> Response:
    thread_id = None if stateless else _thread_id(request)
    payload = await s.body(request, RUN_CREATE)
    run, sub = await create_listened(request, payload, thread_id=thread_id)
    headers = _locations(run, stateless, "join")
    cancel = payload.get("on_disconnect") == "cancel"
    return _wait_response(services(request), run, headers, sub=sub, cancel_if_abandoned=cancel)


async def _cancel_quietly(svc: Services, run: Run) -> None:
    try:
        await runs.cancel(
            svc, thread_id=run.thread_id, run_ids=[run.run_id], status=None, action=CancelAction.INTERRUPT, wait=False
        )
    except NotFound:
        pass  # it finished meanwhile


@operation(
    "Start a run on a thread and wait for its output",
    "runs",
    body=RUN_CREATE,
    body_required=True,
    response=r.ANY,
    errors=RUN_ERRORS,
    description=WAIT_DESCRIPTION,
)
async def wait_stateful(request: Request) -> Response:
    return await _wait(request, stateless=False)


@operation(
    "Start a stateless run and wait for its output",
    "runs",
    body=RUN_CREATE,
    body_required=True,
    response=r.ANY,
    errors=RUN_ERRORS,
    description=WAIT_DESCRIPTION,
)
async def wait_stateless(request: Request) -> Response:
    return await _wait(request, stateless=True)


async def _read_filter(request: Request, thread_id: str, run_id: str) -> Json | None:
    return await authorize(request, "threads", "read", {"thread_id": uuid.UUID(thread_id), "run_id": uuid.UUID(run_id)})


@operation(
    "Wait for a run's output",
    "runs",
    query={"cancel_on_disconnect": CANCEL_ON_DISCONNECT},
    response=r.ANY,
    errors=(404,),
    description=WAIT_DESCRIPTION,
)
async def join(request: Request) -> Response:
    thread_id, run_id = _thread_id(request), _run_id(request)
    svc = services(request)
    flt = await _read_filter(request, thread_id, run_id)
    location = {"Location": f"/threads/{thread_id}/runs/{run_id}/join"}
    run = await runs.find_joinable(svc, thread_id, run_id, flt)
    if isinstance(run, runs.Ended):
        return s.json_response(run.output, headers=location)
    return _wait_response(svc, run, location, cancel_if_abandoned=s.query_bool(request, "cancel_on_disconnect"))


# --- streaming ------------------------------------------------------------------------------------


async def _stream(request: Request, *, stateless: bool) -> Response:
    svc = services(request)
    thread_id = None if stateless else _thread_id(request)
    payload = await s.body(request, RUN_CREATE)
    run, sub = await create_listened(request, payload, thread_id=thread_id)
    headers = _locations(run, stateless, "stream")
    on_disconnect = None
    if payload.get("on_disconnect") == "cancel":

        async def on_disconnect() -> None:
            await _cancel_quietly(svc, run)

    body = relay(
        sub,
        with_ids=bool(run.kwargs.get("resumable")),
        on_disconnect=on_disconnect,
        settled=functools.partial(runs.settled, svc, run.run_id),
    )
    return sse_response(body, headers)


@operation(
    "Start a run on a thread and stream its events",
    "runs",
    body=RUN_CREATE,
    body_required=True,
    media=SSE,
    response=r.SSE_EVENT,
    errors=RUN_ERRORS,
    description=STREAM_DESCRIPTION,
)
async def stream_stateful(request: Request) -> Response:
    return await _stream(request, stateless=False)


@operation(
    "Start a stateless run and stream its events",
    "runs",
    body=RUN_CREATE,
    body_required=True,
    media=SSE,
    response=r.SSE_EVENT,
    errors=RUN_ERRORS,
    description=STREAM_DESCRIPTION,
)
async def stream_stateless(request: Request) -> Response:
    return await _stream(request, stateless=True)


def _mode_filter(request: Request) -> set[str] | None:
    values: list[str] = []
    for raw in request.query_params.getlist("stream_mode"):
        raw = raw.strip()
        if raw.startswith("["):
            try:
                parsed: Any = orjson.loads(raw)
            except ValueError:
                raise Unprocessable("stream_mode must be a mode, a comma list or a JSON array") from None
            values.extend(str(v) for v in parsed)
        else:
            values.extend(v for v in raw.split(",") if v)
    return set(values) or None


@operation(
    "Stream a run's events (from the start with Last-Event-ID on a resumable run)",
    "runs",
    query={
        "stream_mode": Query(r.STR, "only these modes: a mode, a comma list or a JSON array", repeated=True),
        "cancel_on_disconnect": CANCEL_ON_DISCONNECT,
    },
    media=SSE,
    response=r.SSE_EVENT,
    description="An unknown run answers 200 with one `error` event, as the reference does.",
)
async def join_stream(request: Request) -> Response:
    thread_id, run_id = _thread_id(request), _run_id(request)
    svc = services(request)
    flt = await _read_filter(request, thread_id, run_id)
    last_event_id = request.headers.get("last-event-id")
    sub = await svc.broker.subscribe(run_channel(run_id), last_event_id=last_event_id)
    try:
        run = await runs.get(svc, thread_id, run_id, flt)
    except NotFound:
        await sub.aclose()

        async def not_found() -> AsyncIterator[bytes]:
            yield error_frame("HTTPException", "404: Run not found")

        return sse_response(not_found())
    if run.status in RUN_TERMINAL:
        # Nothing more will be published; what a Last-Event-ID asks for is already buffered.
        await svc.broker.close_channel(run_channel(run_id))
    on_disconnect = None
    if s.query_bool(request, "cancel_on_disconnect"):

        async def on_disconnect() -> None:
            await _cancel_quietly(svc, run)

    modes = _mode_filter(request)
    body = relay(
        sub,
        with_ids=bool(run.kwargs.get("resumable")),
        accept=(lambda event: wants(event, modes)) if modes else None,
        on_disconnect=on_disconnect,
        settled=functools.partial(runs.settled, svc, run.run_id),
    )
    return sse_response(body, {"Location": f"/threads/{thread_id}/runs/{run_id}/stream"})


# --- reads, delete, cancel ------------------------------------------------------------------------


@operation("Get a run", "runs", response=r.ref("Run"), errors=(404,))
async def get(request: Request) -> Response:
    thread_id, run_id = _thread_id(request), _run_id(request)
    flt = await _read_filter(request, thread_id, run_id)
    run = await runs.get(services(request), thread_id, run_id, flt)
    return s.json_response(s.run_json(run))


def _metadata_filter(request: Request) -> Json | None:
    """`?metadata={"k": "v"}` (JSON): only runs whose metadata contains it; the SDK sends it with `params=`."""
    raw = request.query_params.get("metadata")
    if not raw:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Unprocessable("metadata must be a JSON object") from None
    if not isinstance(value, dict):
        raise Unprocessable("metadata must be a JSON object")
    return value


LIST_QUERY = {
    "limit": Query(s.LIMIT),
    "offset": Query(s.OFFSET),
    "status": Query({"enum": RUN_STATUSES}),
    "metadata": Query(r.STR, "a JSON object the runs' metadata must contain"),
    "select": Query({"enum": sorted(r.RUN["properties"])}, "only these fields", repeated=True),
}


@operation("A thread's runs, newest first", "runs", query=LIST_QUERY, response=r.array(r.partial(r.RUN)), errors=(404,))
async def list_runs(request: Request) -> Response:
    thread_id = _thread_id(request)
    status = request.query_params.get("status") or None
    if status is not None and status not in RUN_STATUSES:
        raise Unprocessable(f"status must be one of {RUN_STATUSES}")
    limit = s.query_int(request, "limit", LIST_QUERY["limit"].schema, 10)
    offset = s.query_int(request, "offset", LIST_QUERY["offset"].schema, 0)
    flt = await authorize(request, "threads", "search", {"thread_id": uuid.UUID(thread_id), "metadata": {}})
    found = await runs.list_runs(
        services(request),
        thread_id,
        status=status,
        limit=limit,
        offset=offset,
        metadata=_metadata_filter(request),
        auth=flt,
    )
    fields = request.query_params.getlist("select") or None
    return s.json_response([s.select(s.run_json(r), fields) for r in found])


@operation("Delete a run (cancelling it first)", "runs", status=204, errors=(404, 409))
async def delete(request: Request) -> Response:
    thread_id, run_id = _thread_id(request), _run_id(request)
    value: Json = {"thread_id": uuid.UUID(thread_id), "run_id": uuid.UUID(run_id)}
    flt = await authorize(request, "threads", "delete", value)
    await runs.delete(services(request), thread_id, run_id, flt)
    return Response(status_code=204)


def _action(request: Request) -> CancelAction:
    # The reference treats an unknown action as interrupt; we refuse it so a typo cannot lose a rollback.
    raw = request.query_params.get("action") or "interrupt"
    try:
        return CancelAction(raw)
    except ValueError:
        raise Unprocessable("action must be 'interrupt' or 'rollback'") from None


ACTION = Query({"enum": [a.value for a in CancelAction]}, "interrupt (keep progress) or rollback (delete the run)")


@operation(
    "Cancel a run",
    "runs",
    query={"wait": Query(s.QUERY_BOOL, "answer when the run has stopped"), "action": ACTION},
    status=202,
    more={200: r.OBJ},
    errors=(404, 409),
    description="With `wait=true` the answer is 200 `{}` once the run has stopped.",
)
async def cancel(request: Request) -> Response:
    thread_id, run_id = _thread_id(request), _run_id(request)
    svc = services(request)
    wait = s.query_bool(request, "wait")
    action = _action(request)
    flt = await authorize(request, "threads", "update", cancel_value(thread_id, action, [run_id], None))
    await runs.get(svc, thread_id, run_id, flt)
    await runs.cancel(svc, thread_id=thread_id, run_ids=[run_id], status=None, action=action, wait=wait, auth=flt)
    if wait:
        return s.json_response({}, headers={"Location": f"/threads/{thread_id}/runs/{run_id}/join"})
    return Response(status_code=202)


def cancel_value(thread_id: str | None, action: CancelAction, run_ids: list[str] | None, status: str | None) -> Json:
    """threads.update for a cancel, in the reference's shape."""
    return {
        "thread_id": uuid.UUID(thread_id) if thread_id else None,
        "action": action.value,
        "metadata": {"run_ids": [uuid.UUID(r) for r in run_ids] if run_ids is not None else None, "status": status},
    }


@operation(
    "Cancel runs by id or by status", "runs", body=CANCEL_MANY, query={"action": ACTION}, status=204, errors=(404,)
)
async def cancel_many(request: Request) -> Response:
    body = await s.body(request, CANCEL_MANY)
    has_ids = "run_ids" in body or "thread_id" in body
    if has_ids == ("status" in body):
        raise Unprocessable("Give either status, or thread_id with run_ids")
    if has_ids and not ("run_ids" in body and "thread_id" in body):
        raise Unprocessable("run_ids must come with thread_id")
    action = _action(request)
    value = cancel_value(body.get("thread_id"), action, body.get("run_ids"), body.get("status"))
    flt = await authorize(request, "threads", "update", value)
    await runs.cancel(
        services(request),
        thread_id=body.get("thread_id"),
        run_ids=body.get("run_ids"),
        status=body.get("status"),
        action=action,
        wait=False,
        auth=flt,
    )
    return Response(status_code=204)
