"""An ASGI app built on its first request: for protocol surfaces whose SDKs are slow to import."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send


class LazyApp:
    """Calls `load` once, on the first request, and serves every request with what it returned."""

    def __init__(self, load: Callable[[], ASGIApp]) -> None:
        self._load = load
        self._app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            # Importing takes a while: in a thread, so the event loop keeps serving other requests.
            self._app = await asyncio.to_thread(self._load)
        await self._app(scope, receive, send)
