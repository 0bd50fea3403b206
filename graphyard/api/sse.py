"""SSE framing and the relay from a broker subscription to a client, with keep-alives and disconnects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.responses import StreamingResponse

from graphyard import metrics
from graphyard.broker.ports import StreamEvent, Subscription
from graphyard.logs import get_logger
from graphyard.serde import dumps

log = get_logger("graphyard.sse")

HEARTBEAT_SECONDS = 5.0
HEARTBEAT = b": heartbeat\r\n\r\n"
SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no", "Connection": "keep-alive"}


EVENTS_LOST = (
    "The run ended but this stream lost its last events (the broker was unreachable); "
    "read the run's outcome with runs.join or the thread's state"
)


def frame(event: str, data: bytes, event_id: str | None = None) -> bytes:
    out = b"event: " + event.encode() + b"\r\ndata: " + data + b"\r\n"
    if event_id is not None:
        out += b"id: " + event_id.encode() + b"\r\n"
    return out + b"\r\n"


def error_frame(error: str, message: str) -> bytes:
    return frame("error", dumps({"error": error, "message": message}))


def wants(event: str, modes: set[str] | None) -> bool:
    """Join filter: an event passes if its base mode is requested; `messages*` pass for either messages mode."""
    if not modes:
        return True
    base = event.split("|", 1)[0]
    if base.startswith("messages") and ("messages" in modes or "messages-tuple" in modes):
        return True
    return base in modes


async def relay(
    sub: Subscription,
    *,
    with_ids: bool,
    accept: Callable[[str], bool] | None = None,
    on_disconnect: Callable[[], Awaitable[None]] | None = None,
    settled: Callable[[], Awaitable[bool]] | None = None,
) -> AsyncIterator[bytes]:
    """Frames for every accepted event of the subscription until its channel closes; heartbeats during
    silence. If the client goes away first, on_disconnect runs (e.g. to cancel the run). Once the
    response has started, a failure becomes an `error` event and a clean end. With `settled` (has the run
    ended?), a stream still silent a whole heartbeat after its run ended says its last events were lost
    and ends, instead of waiting for events that will never come."""
    finished = False
    silent_after_end = 0
    metrics.STREAM_SUBSCRIBERS.inc()
    try:
        while True:
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for wraps every event in a new task.
                async with asyncio.timeout(HEARTBEAT_SECONDS):
                    item: StreamEvent = await anext(sub)
            except TimeoutError:
                yield HEARTBEAT
                if settled is not None and await settled():
                    silent_after_end += 1
                    if silent_after_end >= 2:
                        finished = True
                        yield error_frame("EventsLost", EVENTS_LOST)
                        return
                continue
            except StopAsyncIteration:
                finished = True
                return
            except Exception as exc:
                log.error("stream relay failed", exc_info=exc)
                finished = True
                yield error_frame(type(exc).__name__, "The event stream failed; reconnect with Last-Event-ID")
                return
            # What else has arrived meanwhile goes out in the same chunk (one write, not one per event).
            frames = [
                frame(event.event, event.data, event.id if with_ids else None)
                for event in (item, *sub.received())
                if not event.event.startswith("__") and (accept is None or accept(event.event))
            ]
            if frames:
                yield frames[0] if len(frames) == 1 else b"".join(frames)
    finally:
        metrics.STREAM_SUBSCRIBERS.dec()
        await sub.aclose()
        if not finished and on_disconnect is not None:
            await asyncio.shield(on_disconnect())


def sse_response(body: AsyncIterator[bytes], headers: dict[str, str] | None = None) -> StreamingResponse:
    return StreamingResponse(
        body, media_type="text/event-stream; charset=utf-8", headers={**SSE_HEADERS, **(headers or {})}
    )
