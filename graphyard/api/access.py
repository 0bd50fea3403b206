"""Pure-ASGI access middleware: one INFO line per request (not /ok) with the route template, status and
time, and the HTTP request metrics."""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graphyard import metrics, tracing
from graphyard.logs import get_logger

log = get_logger("graphyard.access")

# Health checks are polled constantly; a line for each would drown the rest.
QUIET_PATHS = frozenset({"/ok"})


_Series = tuple[Any, Any]
# The metric children of each (method, route, status): prometheus_client's labels() locks and validates
# on every call. Same cardinality as the metrics themselves.
_SERIES: dict[tuple[str, str, int], _Series] = {}


def _series(method: str, route: str, status: int) -> _Series:
    key = (method, route, status)
    series = _SERIES.get(key)
    if series is None:
        series = _SERIES[key] = (
            metrics.HTTP_REQUESTS.labels(method=method, path=route, status=str(status)),
            metrics.HTTP_LATENCY.labels(method=method, path=route),
        )
    return series


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
        method = scope["method"]
        span = None
        if tracing.enabled():
            # A caller's traceparent makes this request a child of its trace.
            carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
            span = tracing.tracer.start_span(
                method,
                context=tracing.extract(carrier),
                kind=SpanKind.SERVER,
                attributes={"http.request.method": method, "url.path": scope["path"]},
            )

        async def recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if span is None:
                await self.app(scope, receive, recording)
            else:
                # Current while the app runs: runs created by this request join its trace.
                with trace.use_span(span, end_on_exit=False):
                    await self.app(scope, receive, recording)
        finally:
            ms = (time.perf_counter() - started) * 1000
            route = route_template(scope)
            requests, latency = _series(method, route, status)
            requests.inc()
            latency.observe(ms)
            if scope["path"] not in QUIET_PATHS:
                log.info("request", method=method, route=route, status=status, ms=round(ms, 1))
            if span is not None:
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                span.end()
