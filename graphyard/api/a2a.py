"""/a2a/{assistant_id}: each assistant as an Agent2Agent (protocol 0.3) agent, JSON-RPC over HTTP.

message/send and message/stream run the assistant on the thread named by the message's contextId (a new
one without it); tasks/get and tasks/cancel read and cancel that run. Runs are made through the same
`create_run` as the runs API and reads and cancels go through the same auth handlers (threads.read,
threads.update), so a project's auth sees A2A exactly as it sees its own API. Types are the A2A SDK's.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from a2a.compat.v0_3 import types as a2a
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

import graphyard
from graphyard.api import a2a_tasks
from graphyard.api.deps import authorize, services
from graphyard.api.errors import json_error, status_of
from graphyard.api.runs import cancel_value, create_listened
from graphyard.api.sse import HEARTBEAT, HEARTBEAT_SECONDS, sse_response
from graphyard.broker.ports import Subscription
from graphyard.errors import GraphyardError, NotFound, NothingToCancel
from graphyard.logs import get_logger
from graphyard.records import Assistant, CancelAction, Json, Run, ThreadStatus, system_assistant_id
from graphyard.serde import dumps
from graphyard.services import assistants, runs, threads

REQUESTS: dict[str, type[BaseModel]] = {
    "message/send": a2a.SendMessageRequest,
    "message/stream": a2a.SendStreamingMessageRequest,
    "tasks/get": a2a.GetTaskRequest,
    "tasks/cancel": a2a.CancelTaskRequest,
}
IO_MODES = ["text/plain", "application/json"]

log = get_logger("graphyard.a2a")


class RpcError(Exception):
    """A JSON-RPC error answered to the caller (HTTP 200, an `error` member)."""

    def __init__(self, error: BaseModel) -> None:
        super().__init__(getattr(error, "message", ""))
        self.error = error


def _reply(request_id: Any, result: BaseModel) -> Json:
    return {"jsonrpc": "2.0", "id": request_id, "result": result.model_dump(mode="json", exclude_none=True)}


def _error(request_id: Any, error: BaseModel) -> Response:
    body = {"jsonrpc": "2.0", "id": request_id, "error": error.model_dump(mode="json", exclude_none=True)}
    return Response(dumps(body), media_type="application/json")


async def _assistant(request: Request, ref: str) -> Assistant:
    """The assistant in the path, by id or graph name. A user-made one is read under assistants.read, as
    a run on it would be; graphs' own assistants are there for anyone who may run them."""
    svc = services(request)
    assistant_id = system_assistant_id(ref) if ref in svc.graphs else ref
    flt = None
    if assistant_id not in {system_assistant_id(g) for g in svc.graphs.graph_ids()}:
        try:
            flt = await authorize(request, "assistants", "read", {"assistant_id": uuid.UUID(assistant_id)})
        except ValueError:
            raise NotFound(f"Assistant '{ref}' not found: use an assistant id or a graph name") from None
    found = await assistants.resolve(svc, assistant_id, flt)
    if found is None:
        raise NotFound(f"Assistant '{ref}' not found: use an assistant id or a graph name")
    return found


def _uuid(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise RpcError(a2a.InvalidParamsError(message=f"{what} must be a UUID, got {value!r}")) from None


async def _task_run(request: Request, assistant: Assistant, task_id: str, action: str = "read") -> Run:
    """The run a task id names, read under the thread's auth handler (hidden is the same as missing)."""
    missing = RpcError(a2a.TaskNotFoundError(message=f"Task {task_id} not found"))
    try:
        run_id = str(uuid.UUID(task_id))
    except ValueError:
        raise missing from None
    svc = services(request)
    thread_id = await runs.thread_of(svc, run_id)
    if thread_id is None:
        raise missing
    if action == "read":
        value: Json = {"thread_id": uuid.UUID(thread_id), "run_id": uuid.UUID(run_id)}
    else:
        value = cancel_value(thread_id, CancelAction.INTERRUPT, [run_id], None)
    flt = await authorize(request, "threads", action, value)
    try:
        run = await runs.get(svc, thread_id, run_id, flt)
    except NotFound:
        raise missing from None
    if run.assistant_id != assistant.assistant_id:
        raise missing
    return run


def _from_parts(read: Callable[[a2a.Message], Any], message: a2a.Message) -> Any:
    try:
        return read(message)
    except ValueError as exc:
        raise RpcError(a2a.ContentTypeNotSupportedError(message=str(exc))) from None


async def _start(request: Request, assistant: Assistant, params: a2a.MessageSendParams) -> tuple[Run, Subscription]:
    """A run for the message, and a subscription to it made before it existed (so its end is never
    missed): a reply to an input-required task resumes it, anything else is new input."""
    message = params.message
    thread_id = _uuid(message.context_id, "contextId")
    payload: Json = {"assistant_id": assistant.assistant_id, "if_not_exists": "create"}
    if message.task_id is not None:
        earlier = await _task_run(request, assistant, message.task_id)
        if thread_id is not None and thread_id != earlier.thread_id:
            raise RpcError(a2a.InvalidParamsError(message="taskId belongs to another contextId"))
        thread_id = earlier.thread_id
        flt = await authorize(request, "threads", "read", {"thread_id": uuid.UUID(thread_id)})
        thread = await threads.get(services(request), thread_id, flt)
        if thread.status is not ThreadStatus.INTERRUPTED:
            raise RpcError(
                a2a.InvalidParamsError(
                    message=f"Task {message.task_id} is not waiting for input; send without taskId to start one"
                )
            )
        payload["command"] = {"resume": _from_parts(a2a_tasks.resume_value, message)}
    else:
        payload["input"] = _from_parts(a2a_tasks.run_input, message)
    # A message without a context starts a new thread (kept, so the task can be read and continued).
    return await create_listened(request, payload, thread_id=thread_id or runs.new_run_id())


async def _finished(request: Request, run: Run, sub: Subscription) -> Run:
    """The run once it is terminal (it ends by its own timeout at the latest)."""
    svc = services(request)
    await runs.result(svc, run.run_id, sub)
    return await runs.get(svc, run.thread_id, run.run_id)


async def _send(request: Request, assistant: Assistant, params: a2a.MessageSendParams) -> a2a.Task:
    run, sub = await _start(request, assistant, params)
    config = params.configuration
    if config is not None and config.blocking is False:
        await sub.aclose()
        return a2a_tasks.task(run)
    return a2a_tasks.task(await _finished(request, run, sub), config.history_length if config else None)


async def _get(request: Request, assistant: Assistant, params: a2a.TaskQueryParams) -> a2a.Task:
    return a2a_tasks.task(await _task_run(request, assistant, params.id), params.history_length)


async def _cancel(request: Request, assistant: Assistant, params: a2a.TaskIdParams) -> a2a.Task:
    run = await _task_run(request, assistant, params.id, "update")
    try:
        await runs.cancel(
            services(request),
            thread_id=run.thread_id,
            run_ids=[run.run_id],
            status=None,
            action=CancelAction.INTERRUPT,
            wait=True,
        )
    except NothingToCancel:
        raise RpcError(
            a2a.TaskNotCancelableError(message=f"Task {params.id} already ended ({run.status.value})")
        ) from None
    return a2a_tasks.task(await runs.get(services(request), run.thread_id, run.run_id))


def _frame(request_id: Any, result: BaseModel) -> bytes:
    return b"data: " + dumps(_reply(request_id, result)) + b"\n\n"


def _error_frame(request_id: Any, error: BaseModel) -> bytes:
    body = {"jsonrpc": "2.0", "id": request_id, "error": error.model_dump(mode="json", exclude_none=True)}
    return b"data: " + dumps(body) + b"\n\n"


async def _stream(request: Request, request_id: Any, run: Run, sub: Subscription) -> AsyncIterator[bytes]:
    """The task, `working`, then the result artifact and the final status; heartbeats while it runs."""
    yield _frame(request_id, a2a_tasks.task(run))
    yield _frame(request_id, a2a_tasks.status_event(run, final=False, state=a2a.TaskState.working))
    waiter = asyncio.ensure_future(_finished(request, run, sub))
    try:
        while True:
            done, _ = await asyncio.wait({waiter}, timeout=HEARTBEAT_SECONDS)
            if done:
                break
            yield HEARTBEAT
        ended = waiter.result()
    except NotFound:
        # Rolled back (deleted) while we waited: the response has started, so the error goes in-band.
        yield _error_frame(request_id, a2a.TaskNotFoundError(message=f"Task {run.run_id} was deleted"))
        return
    except Exception as exc:
        log.error("a2a stream failed", run_id=run.run_id, exc_info=exc)
        yield _error_frame(request_id, a2a.InternalError(message="The task's stream failed; read it with tasks/get"))
        return
    finally:
        if not waiter.done():
            waiter.cancel()
    found = a2a_tasks.artifact(ended)
    if found is not None:
        yield _frame(request_id, a2a_tasks.artifact_event(ended, found))
    yield _frame(request_id, a2a_tasks.status_event(ended, final=True))


def _envelope(raw: bytes) -> tuple[Any, Json]:
    """(request id, JSON-RPC request object), or RpcError with the JSON-RPC code for what is wrong."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RpcError(a2a.JSONParseError(message="Request body is not valid JSON")) from None
    if not isinstance(body, dict) or body.get("jsonrpc") != "2.0" or not isinstance(body.get("method"), str):
        raise RpcError(a2a.InvalidRequestError(message="Expected a JSON-RPC 2.0 request object with a method"))
    return body.get("id"), body


def _typed(body: Json) -> BaseModel:
    model = REQUESTS.get(body["method"])
    if model is None:
        raise RpcError(
            a2a.MethodNotFoundError(message=f"Method not found: {body['method']}. Supported: {sorted(REQUESTS)}")
        )
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise RpcError(a2a.InvalidParamsError(message="Invalid params", data=exc.errors(include_url=False))) from None


async def rpc(request: Request) -> Response:
    request_id: Any = None
    try:
        request_id, body = _envelope(await request.body())
        assistant = await _assistant(request, request.path_params["assistant_id"])
        call = _typed(body)
        if isinstance(call, a2a.SendStreamingMessageRequest):
            run, sub = await _start(request, assistant, call.params)
            return sse_response(_stream(request, request_id, run, sub))
        if isinstance(call, a2a.SendMessageRequest):
            result: BaseModel = await _send(request, assistant, call.params)
        elif isinstance(call, a2a.GetTaskRequest):
            result = await _get(request, assistant, call.params)
        else:
            assert isinstance(call, a2a.CancelTaskRequest)
            result = await _cancel(request, assistant, call.params)
    except RpcError as exc:
        return _error(request_id, exc.error)
    except NotFound:
        raise
    except GraphyardError as exc:
        # A run the server refused (busy thread, bad input) is the caller's to fix, said in JSON-RPC.
        if status_of(exc) >= 500:
            return _error(request_id, a2a.InternalError(message=exc.message))
        return _error(request_id, a2a.InvalidParamsError(message=exc.message))
    return Response(dumps(_reply(request_id, result)), media_type="application/json")


def _card(request: Request, assistant: Assistant) -> Response:
    base = str(request.base_url).rstrip("/")
    what = assistant.description or f"The '{assistant.graph_id}' graph served by graphyard"
    card = a2a.AgentCard(
        name=assistant.name,
        description=what,
        url=f"{base}/a2a/{assistant.assistant_id}",
        version=graphyard.__version__,
        protocol_version="0.3.0",
        preferred_transport="JSONRPC",
        capabilities=a2a.AgentCapabilities(streaming=True, push_notifications=False, state_transition_history=False),
        default_input_modes=IO_MODES,
        default_output_modes=IO_MODES,
        skills=[
            a2a.AgentSkill(
                id=f"{assistant.graph_id}-main",
                name=assistant.name,
                description=what,
                tags=[assistant.graph_id],
                input_modes=IO_MODES,
                output_modes=IO_MODES,
            )
        ],
    )
    return Response(dumps(card.model_dump(mode="json", exclude_none=True)), media_type="application/json")


async def agent_card(request: Request) -> Response:
    return _card(request, await _assistant(request, request.path_params["assistant_id"]))


async def root_agent_card(request: Request) -> Response:
    """/.well-known/agent-card.json?assistant_id=…: the card of the assistant the query names."""
    ref = request.query_params.get("assistant_id")
    if not ref:
        return json_error(400, "Pass the assistant as ?assistant_id=<assistant id or graph name>")
    return _card(request, await _assistant(request, ref))
