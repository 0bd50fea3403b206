"""Whether the dependencies a process needs answer right now (for /ok)."""

from __future__ import annotations

import asyncio

from graphyard.broker.errors import BrokerUnavailable
from graphyard.services.context import Services
from graphyard.storage.errors import Unavailable


async def unreachable(svc: Services, *, timeout: float) -> list[str]:
    """The names of the dependencies that do not answer within timeout seconds (empty: all healthy)."""

    async def answers(ping: asyncio.Future[None] | asyncio.Task[None]) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await ping
        except (Unavailable, BrokerUnavailable, TimeoutError):
            return False
        return True

    database, broker = await asyncio.gather(
        answers(asyncio.ensure_future(svc.storage.ping())), answers(asyncio.ensure_future(svc.broker.ping()))
    )
    return [name for name, ok in (("the database", database), ("the broker (Redis)", broker)) if not ok]
