"""Broker: open the adapter named by a URL (in-process memory, or Redis)."""

from __future__ import annotations

from graphyard.broker.ports import Broker, StreamEvent

__all__ = ["Broker", "StreamEvent", "open_broker"]


async def open_broker(url: str | None) -> Broker:
    """`None` or `memory://` → in-process broker; `redis://host:port/db` (or `rediss://`) → Redis."""
    # Adapters are imported here so that choosing one adapter never imports another's driver.
    if url and url.startswith(("redis://", "rediss://")):
        from graphyard.broker.redis import RedisBroker

        return await RedisBroker.connect(url)
    # Imported here so that choosing one adapter never imports another's driver.
    from graphyard.broker.memory import MemoryBroker

    return MemoryBroker()
