"""Domain error → HTTP status, registered as Starlette exception handlers; the catch-all 500."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from graphyard import errors
from graphyard.auth import AuthFailed
from graphyard.broker.errors import BrokerUnavailable
from graphyard.logs import get_logger
from graphyard.serde import dumps
from graphyard.storage.errors import Unavailable

# What a client is told to wait before retrying a request a dependency outage refused.
RETRY_AFTER_SECONDS = 2

log = get_logger("graphyard.api")

STATUS: dict[type[errors.GraphyardError], int] = {
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.InvalidRequest: 400,
    errors.Unprocessable: 422,
    errors.Forbidden: 403,
    errors.Unauthorized: 401,
    errors.ServiceUnavailable: 503,
}


def json_error(status: int, detail: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps({"detail": detail}), status_code=status, media_type="application/json", headers=headers)


def status_of(exc: errors.GraphyardError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


async def domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.GraphyardError)
    return json_error(status_of(exc), exc.message)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return json_error(exc.status_code, exc.detail, dict(exc.headers or {}))


async def auth_error(request: Request, exc: Exception) -> Response:
    """An Auth.exceptions.HTTPException raised by a project's authorization handler."""
    assert isinstance(exc, AuthFailed)
    status = exc.status_code if 100 <= exc.status_code <= 599 else 500
    return json_error(status, exc.detail, dict(exc.headers or {}))


def dependency_detail(exc: Exception) -> str:
    """The 503 detail for a dependency outage: which one, and that it is worth retrying."""
    which = "the database" if isinstance(exc, Unavailable) else "the broker (Redis)"
    return f"Service unavailable: {which} cannot be reached right now ({exc}); retry in a few seconds"


async def dependency_error(request: Request, exc: Exception) -> Response:
    """A dependency is away: 503 with Retry-After, never a 500 (the processes reconnect by themselves)."""
    log.info("request refused: dependency unavailable", path=request.url.path, error=str(exc))
    return json_error(503, dependency_detail(exc), {"Retry-After": str(RETRY_AFTER_SECONDS)})


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error", path=request.url.path, method=request.method, exc_info=exc)
    return json_error(500, "Internal Server Error")


HANDLERS: dict[Any, Any] = {
    errors.GraphyardError: domain_error,
    HTTPException: http_error,
    AuthFailed: auth_error,
    Unavailable: dependency_error,
    BrokerUnavailable: dependency_error,
    Exception: unexpected_error,
}
