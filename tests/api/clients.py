"""An SDK client for a server a test started, closed when the test is done with it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.api.support import Server


@contextlib.asynccontextmanager
async def open_client(server: Server) -> AsyncIterator[LangGraphClient]:
    """A langgraph_sdk client for `server`; its connections are closed on exit."""
    sdk = get_client(url=server.url, api_key=None, timeout=60)
    try:
        yield sdk
    finally:
        await sdk.http.client.aclose()
