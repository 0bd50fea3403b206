"""Broker: open the adapter named by a URL (in-process memory, or Redis)."""

from __future__ import annotations

from graphyard.broker.ports import Broker, StreamEvent

__all__ = ["Broker", "StreamEvent", "open_broker"]


async def open_broker(url: str | None, *, prefix: str = "graphyard:", ttl_seconds: float = 120.0) -> Broker:
    """`None` or `memory://` → in-process broker; `redis://host:port/db` (or `rediss://`) → Redis.
    `prefix` namespaces Redis keys; `ttl_seconds` is how long a finished stream can be replayed."""
    # Adapters are imported here so that choosing one adapter never imports another's driver.
    if url and url.startswith(("redis://", "rediss://")):
        from graphyard.broker.redis import RedisBroker

        return await RedisBroker.connect(url, prefix=prefix, ttl_seconds=ttl_seconds)
    # Imported here so that choosing one adapter never imports another's driver.
    from graphyard.broker.memory import MemoryBroker

    return MemoryBroker(grace_seconds=ttl_seconds)
