"""The answer of runs.wait and runs.join: a JSON document sent when the run ends, with whitespace keep-alives
while it runs, and the client's going away noticed (to cancel the run when it asked for that)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

# Whitespace before a JSON document changes nothing for its reader, and keeps proxies and clients
# from timing out an idle connection while the run goes on.
KEEPALIVE_SECONDS = 5.0
KEEPALIVE = b"\n"


async def _disconnected(receive: Receive) -> None:
    """Return once the client has gone (or the response is complete)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class WaitResponse(Response):
    """Headers at once, then `\\n` every few seconds until `outcome` gives the body, sent as the last chunk
    (one write with the end of the chunked body). This is what starlette's StreamingResponse would do with a
    generator, without its task group per response and its separate empty closing chunk."""

    media_type = "application/json"

    def __init__(
        self,
        outcome: Callable[[], Awaitable[bytes]],
        headers: Mapping[str, str] | None = None,
        *,
        on_abandoned: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.status_code = 200
        self.background = None
        self._outcome = outcome
        self._on_abandoned = on_abandoned
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        answered = False
        waiter = asyncio.ensure_future(self._outcome())
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            while True:
                done, _ = await asyncio.wait(
                    (waiter, gone), timeout=KEEPALIVE_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                if waiter in done:
                    body = waiter.result()
                    await send({"type": "http.response.body", "body": body, "more_body": False})
                    answered = True
                    return
                if gone in done:
                    return  # nobody left to answer
                await send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})
        finally:
            waiter.cancel()
            gone.cancel()
            if not answered and self._on_abandoned is not None:
                await asyncio.shield(self._on_abandoned())
