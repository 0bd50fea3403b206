"""A project's own Starlette app for the `http` tests: routes, a lifespan that yields state, and a
middleware that stamps every response (ours included) with what it saw of authentication."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class StampMiddleware:
    """Adds `x-project-middleware` (who the request was authenticated as when it passed: "-" if nobody)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        user = scope.get("state", {}).get("auth_user")
        seen = getattr(user, "identity", None) or "-"

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-project-middleware", seen.encode()))
            await send(message)

        await self.app(scope, receive, stamped)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    """The project's startup work: its state reaches its routes."""
    yield {"greeting": "hello from the project's lifespan"}


async def hello(request: Request) -> JSONResponse:
    """A custom route reading its lifespan's state."""
    return JSONResponse({"greeting": request.state.greeting})


async def shadow_info(request: Request) -> JSONResponse:
    """The project may shadow /info (not a pinned meta route)."""
    return JSONResponse({"info": "the project's own"})


async def shadow_ok(request: Request) -> JSONResponse:
    """The project cannot shadow /ok: this is never served."""
    return JSONResponse({"ok": "shadowed"})


app = Starlette(
    routes=[Route("/hello", hello), Route("/info", shadow_info), Route("/ok", shadow_ok)],
    middleware=[Middleware(StampMiddleware)],
    lifespan=lifespan,
)
