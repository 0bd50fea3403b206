"""Pure-ASGI access middleware: one INFO line per request (not /ok) with the route template, status and time."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graphyard.logs import get_logger

log = get_logger("graphyard.access")

# Health checks are polled constantly; a line for each would drown the rest.
QUIET_PATHS = frozenset({"/ok"})


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/threads/{thread_id}`), so ids never become labels;
    `unmatched` for a 404 no route answered."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class AccessMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            if scope["path"] not in QUIET_PATHS:
                log.info(
                    "request",
                    method=scope["method"],
                    route=route_template(scope),
                    status=status,
                    ms=round((time.perf_counter() - started) * 1000, 1),
                )
