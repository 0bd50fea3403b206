"""The thread streaming protocol: `POST /threads/{id}/commands`, and `/threads/{id}/stream/events` as
SSE (POST) and as a WebSocket carrying the same commands and events."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from graphyard import errors
from graphyard.api import responses as r
from graphyard.api import schemas as s
from graphyard.api.deps import authorize, services
from graphyard.api.openapi import SSE, operation
from graphyard.api.runs import create_run
from graphyard.api.sse import HEARTBEAT, HEARTBEAT_SECONDS, frame, sse_response
from graphyard.auth import AuthFailed
from graphyard.broker.ports import Subscription
from graphyard.logs import get_logger
from graphyard.records import Json, ThreadStatus
from graphyard.serde import dumps
from graphyard.services import protocol, threads
from graphyard.services.protocol import CommandError, EventFilter

log = get_logger("graphyard.protocol")

COMMANDS = (
    "run.start",
    "input.respond",
    "agent.getTree",
    "subscription.subscribe",
    "subscription.unsubscribe",
    "subscription.reconnect",
)


COMMAND_BODY: Json = {
    "type": "object",
    "properties": {
        "id": {"type": "integer", "minimum": 0},
        "method": {"type": "string", "enum": list(COMMANDS)},
        "params": {"type": "object"},
    },
    "required": ["id", "method"],
}
COMMAND_REPLY: Json = {
    "type": "object",
    "properties": {
        "type": {"enum": ["success", "error"]},
        "id": {"type": ["integer", "null"]},
        "result": {"type": "object"},
        "meta": {"type": "object", "properties": {"applied_through_seq": {"type": "integer"}}},
        "error": {"type": "string"},
        "message": {"type": "string"},
    },
    "required": ["type", "id"],
}
EVENTS_BODY: Json = {
    "type": "object",
    "properties": {
        "channels": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "namespaces": {"type": "array", "items": {"type": "array", "items": {"type": "string"}}},
        "depth": {"type": "integer", "minimum": 0},
        "since": {"type": "integer", "minimum": 0},
    },
    "required": ["channels"],
}


def _thread_id(conn: HTTPConnection) -> str:
    raw = conn.path_params["thread_id"]
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise errors.InvalidRequest("Invalid thread ID: must be a UUID") from None


def envelope(raw: Any) -> tuple[int, str, Json]:
    """(id, method, params) of a command; InvalidRequest (400) when it is not a protocol command."""
    if not isinstance(raw, dict):
        raise errors.InvalidRequest('A command is a JSON object: {"id": int, "method": str, "params": object}')
    command_id, method, params = raw.get("id"), raw.get("method"), raw.get("params", {})
    if not isinstance(command_id, int) or isinstance(command_id, bool) or command_id < 0:
        raise errors.InvalidRequest("A command needs an 'id': a non-negative integer")
    if not isinstance(method, str) or not method:
        raise errors.InvalidRequest(f"A command needs a 'method', one of {list(COMMANDS)}")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise errors.InvalidRequest("A command's 'params' must be an object")
    return command_id, method, params


def success(command_id: int, result: Json, applied: int) -> Json:
    return {"type": "success", "id": command_id, "result": result, "meta": {"applied_through_seq": applied}}


def failure(command_id: int | None, code: str, message: str) -> Json:
    return {"type": "error", "id": command_id, "error": code, "message": message}


async def _thread_or_none(conn: HTTPConnection, thread_id: str, action: str) -> tuple[ThreadStatus, Json, Any] | None:
    """(status, metadata, interrupts) of a thread the caller may `action`; None when it does not exist.
    A thread the caller's auth filter hides is a permission error, never data."""
    svc = services(conn)
    flt = await authorize(conn, "threads", action, {"thread_id": uuid.UUID(thread_id)})
    try:
        thread = await threads.get(svc, thread_id)
    except errors.NotFound:
        return None
    if flt is not None:
        try:
            await threads.get(svc, thread_id, flt)
        except errors.NotFound:
            raise CommandError("permission_denied", f"Thread {thread_id} not found") from None
    return thread.status, thread.metadata, thread.interrupts


async def _readable_thread(conn: HTTPConnection, thread_id: str) -> tuple[ThreadStatus, Json, Any]:
    found = await _thread_or_none(conn, thread_id, "read")
    if found is None:
        raise CommandError("permission_denied", f"Thread {thread_id} not found")
    return found


async def _start(conn: HTTPConnection, thread_id: str, payload: Json) -> Json:
    """Create the run under the project's auth (threads.create_run), with domain errors as replies."""
    try:
        run = await create_run(conn, payload, thread_id=thread_id, run_id=None)
    except errors.NotFound as exc:
        raise CommandError("permission_denied", exc.message) from None
    except (errors.Unprocessable, errors.InvalidRequest, errors.Conflict) as exc:
        raise CommandError("invalid_argument", exc.message) from None
    return {"run_id": run.run_id}


async def execute(conn: HTTPConnection, thread_id: str, command_id: int, method: str, params: Json) -> Json:
    """One command's reply: `success` with its result and `meta.applied_through_seq`, or `error`."""
    svc = services(conn)
    try:
        # Read before anything runs: every event a started run publishes comes after this number.
        applied = await protocol.applied_through(svc, thread_id)
        if method == "run.start":
            existing = await _thread_or_none(conn, thread_id, "read")
            payload = protocol.start_payload(params, existing[0] if existing else None)
            result = await _start(conn, thread_id, payload)
        elif method == "input.respond":
            status, metadata, interrupts = await _readable_thread(conn, thread_id)
            await _start(conn, thread_id, protocol.respond_payload(params, status, interrupts, metadata))
            result = {}
        elif method == "agent.getTree":
            status, metadata, _ = await _readable_thread(conn, thread_id)
            result = protocol.agent_tree(status, metadata)
        elif method == "subscription.subscribe":
            protocol.parse_filter(params)
            await _readable_thread(conn, thread_id)
            result = {"subscription_id": str(uuid.uuid4()), "replayed_events": 0}
        elif method == "subscription.unsubscribe":
            result = {}
        elif method == "subscription.reconnect":
            await _readable_thread(conn, thread_id)
            result = {"restored": True, "missed_events": 0}
        else:
            raise CommandError("unknown_command", f"Unknown command '{method}'; graphyard knows {list(COMMANDS)}")
    except CommandError as exc:
        return failure(command_id, exc.code, exc.message)
    except AuthFailed as exc:
        return failure(command_id, "permission_denied", str(exc.detail))
    return success(command_id, result, applied)


@operation(
    "Run one thread-protocol command (client.threads.stream): run.start, input.respond, agent.getTree, subscription.*",
    "threads",
    body=COMMAND_BODY,
    body_required=True,
    response=COMMAND_REPLY,
    errors=(400,),
    description="Protocol errors are answered 200 with `type: error` and the protocol's code; a body that is "
    "not a command is a 400.",
)
async def commands(request: Request) -> Response:
    thread_id = _thread_id(request)
    try:
        raw = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise errors.InvalidRequest("The command body is not valid JSON") from None
    command_id, method, params = envelope(raw)
    return s.json_response(await execute(request, thread_id, command_id, method, params))


# --- events ----------------------------------------------------------------------------------------


async def _open(conn: HTTPConnection, thread_id: str, params: Json) -> tuple[Subscription, EventFilter]:
    """A subscription to the thread's events after checking the caller may read the thread
    (threads.read): NotFound when it does not exist or is hidden."""
    found, since = protocol.parse_filter(params)
    svc = services(conn)
    flt = await authorize(conn, "threads", "read", {"thread_id": uuid.UUID(thread_id)})
    sub = await protocol.subscribe(svc, thread_id, since)
    try:
        await threads.get(svc, thread_id, flt)
    except BaseException:
        await sub.aclose()
        raise
    return sub, found


async def _events(sub: Subscription, found: EventFilter) -> AsyncIterator[tuple[int, str, bytes] | None]:
    """The subscription's matching events as (seq, method, JSON); None after each quiet spell."""
    try:
        while True:
            try:
                item = await asyncio.wait_for(anext(sub), HEARTBEAT_SECONDS)
            except TimeoutError:
                yield None
                continue
            except StopAsyncIteration:
                return
            if found.matches(item):
                yield protocol.wire_event(item)
    finally:
        await sub.aclose()


def _stream_failed(exc: BaseException) -> bytes:
    log.error("thread event stream failed", exc_info=exc)
    return dumps(failure(None, "unknown_error", "The event stream failed; reconnect with `since`"))


async def _sse(sub: Subscription, found: EventFilter) -> AsyncIterator[bytes]:
    try:
        async for event in _events(sub, found):
            if event is None:
                yield HEARTBEAT
            else:
                seq, method, body = event
                yield frame(method, body, str(seq))
    except Exception as exc:  # noqa: BLE001 - the response has started: report in-band, then end cleanly
        yield frame("error", _stream_failed(exc))


@operation(
    "The thread's protocol events from `since` on, filtered (SSE; the same path also takes a WebSocket)",
    "threads",
    body=EVENTS_BODY,
    body_required=True,
    media=SSE,
    response=r.SSE_EVENT,
    errors=(400, 404),
)
async def stream_events(request: Request) -> Response:
    thread_id = _thread_id(request)
    try:
        params = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise errors.InvalidRequest("The body is not valid JSON") from None
    if not isinstance(params, dict):
        raise errors.InvalidRequest('The body is {"channels": [...], "namespaces"?, "depth"?, "since"?}')
    try:
        sub, found = await _open(request, thread_id, params)
    except CommandError as exc:
        raise errors.InvalidRequest(exc.message) from None
    return sse_response(_sse(sub, found))


class _Socket:
    """One WebSocket: commands in, replies and subscribed events out, one frame each."""

    def __init__(self, ws: WebSocket, thread_id: str) -> None:
        self.ws = ws
        self.thread_id = thread_id
        self.lock = asyncio.Lock()
        self.relays: dict[str, asyncio.Task[None]] = {}

    async def send(self, body: bytes | Json) -> None:
        text = (body if isinstance(body, bytes) else dumps(body)).decode()
        async with self.lock:
            await self.ws.send_text(text)

    async def relay(self, sub: Subscription, found: EventFilter) -> None:
        try:
            async for event in _events(sub, found):
                if event is not None:
                    await self.send(event[2])
        except (WebSocketDisconnect, asyncio.CancelledError):
            raise
        except Exception as exc:  # noqa: BLE001 - report in-band, then close: the client reconnects with `since`
            await self.send(_stream_failed(exc))
            await self.ws.close(code=1011)

    async def subscribe(self, command_id: int, params: Json) -> None:
        applied = await protocol.applied_through(services(self.ws), self.thread_id)
        try:
            sub, found = await _open(self.ws, self.thread_id, params)
        except CommandError as exc:
            await self.send(failure(command_id, exc.code, exc.message))
            return
        except (errors.NotFound, AuthFailed) as exc:
            await self.send(failure(command_id, "permission_denied", f"Thread {self.thread_id} not found"))
            # 4000 + the HTTP status: a client reads a refused stream from the close code.
            await self.ws.close(code=4404 if isinstance(exc, errors.NotFound) else 4403)
            return
        subscription_id = str(uuid.uuid4())
        await self.send(success(command_id, {"subscription_id": subscription_id, "replayed_events": 0}, applied))
        self.relays[subscription_id] = asyncio.create_task(self.relay(sub, found))

    async def handle(self, raw: str) -> None:
        try:
            command_id, method, params = envelope(orjson.loads(raw))
        except (orjson.JSONDecodeError, errors.InvalidRequest) as exc:
            message = exc.message if isinstance(exc, errors.InvalidRequest) else "The frame is not valid JSON"
            await self.send(failure(None, "invalid_argument", message))
            return
        if method == "subscription.subscribe":
            await self.subscribe(command_id, params)
        elif method == "subscription.unsubscribe" and isinstance(params.get("subscription_id"), str):
            task = self.relays.pop(params["subscription_id"], None)
            if task is None:
                await self.send(failure(command_id, "no_such_subscription", "No such subscription on this socket"))
                return
            task.cancel()
            applied = await protocol.applied_through(services(self.ws), self.thread_id)
            await self.send(success(command_id, {}, applied))
        else:
            await self.send(await execute(self.ws, self.thread_id, command_id, method, params))

    async def serve(self) -> None:
        try:
            while True:
                await self.handle(await self.ws.receive_text())
        except WebSocketDisconnect:
            pass
        finally:
            for task in self.relays.values():
                task.cancel()
            for task in self.relays.values():
                with contextlib.suppress(BaseException):
                    await task


async def websocket(ws: WebSocket) -> None:
    try:
        thread_id = _thread_id(ws)
    except errors.InvalidRequest:
        await ws.close(code=4400)
        return
    await ws.accept()
    await _Socket(ws, thread_id).serve()
