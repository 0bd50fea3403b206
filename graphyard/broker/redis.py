"""Redis broker: one stream per channel (XADD MAXLEN + PEXPIRE) for events, pub/sub for cancel signals.

Keys, all under the prefix: `stream:<channel>` holds a channel's entries, each either an event
(`event`, `data`, `keep` fields) or the end marker (`end`) that close_channel appends. The Redis
entry id is the event id. A channel is closed when its last entry is the end marker, so closing
is one atomic append and the flag expires with the stream. Cancel signals travel on the pub/sub
channel `cancel` as `<run_id>:<action>`. Numbered channels (thread protocol streams) also keep
`number:<channel>` (the last number given) and `mark:<channel>`, expiring with the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from importlib import resources
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from graphyard.broker.errors import BrokerUnavailable
from graphyard.broker.ports import CancelCallback, StreamEvent

logger = logging.getLogger(__name__)

_XADD_EXPIRE = resources.files("graphyard.broker").joinpath("lua/xadd_expire.lua").read_text(encoding="utf-8")
_XADD_NUMBERED = resources.files("graphyard.broker").joinpath("lua/xadd_numbered.lua").read_text(encoding="utf-8")
_DISCONNECTED = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)

IdKey = tuple[int, int]
# How long a command may wait for a connection to Redis: a request that needs Redis while it is away
# answers 503 in about this long instead of hanging.
CONNECT_TIMEOUT_SECONDS = 2.0


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Redis being away (refused, reset, timed out, still loading its data) becomes BrokerUnavailable."""
    try:
        yield
    except _DISCONNECTED as exc:
        raise BrokerUnavailable(f"Redis unavailable: {exc}") from exc


def _id_key(event_id: str) -> IdKey | None:
    """`<ms>-<seq>` (or `<ms>`) as a sortable pair; None if it is not an id."""
    ms, _, seq = event_id.partition("-")
    try:
        key = int(ms), int(seq or 0)
    except ValueError:
        return None
    return key if key >= (0, 0) else None


def _entries(response: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """The entries of a single-stream XREAD reply, in either protocol's shape (RESP2 list, RESP3 dict)."""
    if not response:
        return []
    streams = response.values() if isinstance(response, dict) else (item[1] for item in response)
    return [(entry[0], entry[1]) for entries in streams for entry in entries]


class RedisSubscription:
    """Reads one channel's stream from a cursor: replay up to the snapshot taken at subscribe, then live.

    Entries up to the snapshot are replay: only kept events after `after` are delivered. Entries past
    it are live: all are delivered until the end marker. Reads block in a task of their own, so a
    caller that times out waiting (the SSE heartbeat) does not abort a Redis command mid-reply; the
    next call picks up the same read. Backpressure is the stream itself: nothing is read ahead of the
    consumer beyond one batch, and a consumer slower than MAXLEN trimming skips what was trimmed.
    """

    def __init__(
        self,
        broker: RedisBroker,
        key: str,
        *,
        snapshot: IdKey,
        closed: bool,
        after: IdKey | None,
    ) -> None:
        self._broker = broker
        self._key = key
        self._snapshot = snapshot
        self._after = after
        self._closed_at_start = closed
        start = snapshot if after is None else min(after, snapshot)
        self._cursor = f"{start[0]}-{start[1]}"
        self._buffer: deque[StreamEvent] = deque()
        self._aclosed = False
        self._fetch: asyncio.Task[list[tuple[bytes, dict[bytes, bytes]]]] | None = None
        # Closed and nothing to replay: the end marker is at or before where we would start reading.
        self._done = closed and start >= snapshot

    def __aiter__(self) -> RedisSubscription:
        return self

    async def __anext__(self) -> StreamEvent:
        while not self._buffer:
            if self._done:
                raise StopAsyncIteration
            if self._fetch is None:
                self._fetch = asyncio.get_running_loop().create_task(self._read(self._cursor))
            fetch = self._fetch
            try:
                with translated():
                    entries = await asyncio.shield(fetch)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if fetch.cancelled() and self._aclosed and (task is None or not task.cancelling()):
                    raise StopAsyncIteration from None  # aclose() from another task ended the read
                raise
            finally:
                if fetch.done() and self._fetch is fetch:
                    self._fetch = None
            self._accept(entries)
        return self._buffer.popleft()

    def received(self) -> list[StreamEvent]:
        events = list(self._buffer)
        self._buffer.clear()
        return events

    async def _read(self, cursor: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
        # Each XREAD waits at most block_ms; looping keeps the wait cancellable and bounded per call.
        redis = self._broker.redis
        while True:
            response = await redis.xread(
                {self._key: cursor}, count=self._broker.batch_size, block=self._broker.block_ms
            )
            entries = _entries(response)
            if entries:
                return entries

    def _accept(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        for raw_id, fields in entries:
            event_id = raw_id.decode()
            self._cursor = event_id
            key = _id_key(event_id) or (0, 0)
            name = fields.get(b"event")
            if key <= self._snapshot:
                # Replay: kept events after the requested id; end markers of earlier closes are skipped.
                kept = fields.get(b"keep") == b"1"
                if name is not None and kept and self._after is not None and key > self._after:
                    self._buffer.append(StreamEvent(event_id, name.decode(), fields.get(b"data", b"")))
                if self._closed_at_start and key >= self._snapshot:
                    self._done = True
                    return
            elif name is None:
                self._done = True
                return
            else:
                self._buffer.append(StreamEvent(event_id, name.decode(), fields.get(b"data", b"")))

    async def aclose(self) -> None:
        # Never suspends: callers close subscriptions in `finally` blocks of cancelled tasks (a client
        # disconnect), where under anyio's level-triggered cancellation any await raises again.
        self.stop()

    def stop(self) -> asyncio.Task[Any] | None:
        """End the subscription now; returns the read it cancelled, if any, for the broker to await."""
        self._done = self._aclosed = True
        self._broker.forget(self)
        fetch, self._fetch = self._fetch, None
        if fetch is not None:
            fetch.cancel()  # redis-py drops the connection of a read cancelled mid-reply
            fetch.add_done_callback(_retrieve)
        return fetch


class RedisBroker:
    """The production broker; any number of processes share one Redis through the same key prefix.

    Replay differs from the memory broker in one documented way only: a channel's history is the
    Redis stream, bounded by `maxlen` (approximately) and by `ttl_seconds` since the last publish.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "graphyard:",
        ttl_seconds: float = 120.0,
        maxlen: int = 10_000,
        block_seconds: float = 5.0,
        batch_size: int = 500,
        max_backoff_seconds: float = 5.0,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_ms = max(1, int(ttl_seconds * 1000))
        self.maxlen = maxlen
        self.block_ms = max(1, int(block_seconds * 1000))
        self.batch_size = batch_size
        self.close_timeout = 5.0
        self._max_backoff = max_backoff_seconds
        self._xadd_expire = redis.register_script(_XADD_EXPIRE)
        self._xadd_numbered = redis.register_script(_XADD_NUMBERED)
        self._cancel_channel = f"{prefix}cancel"
        self._callbacks: dict[str, list[CancelCallback]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._subscriptions: set[RedisSubscription] = set()

    @classmethod
    async def connect(cls, url: str, *, max_connections: int = 1_000, **options: Any) -> RedisBroker:
        """Open a pool on `redis://host:port/db` and check that Redis answers.
        Every waiting subscription holds one pooled connection, hence the large pool."""
        # Only connecting gets a short timeout. A read blocks up to block_seconds on the server, and redis-py 8
        # gives up on a reply after 5 s by default: a blocking XREAD must be allowed to outlast its BLOCK, or
        # every subscription idle that long fails (a thread stream between runs).
        block_seconds = float(options.get("block_seconds", 5.0))
        redis = Redis.from_url(
            url,
            max_connections=max_connections,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            socket_timeout=block_seconds + 5.0,
        )
        try:
            with translated():
                await redis.ping()
        except BaseException:
            await redis.aclose()
            raise
        return cls(redis, **options)

    def _stream_key(self, channel: str) -> str:
        return f"{self.prefix}stream:{channel}"

    async def _append(self, channel: str, *fields: bytes | str) -> str:
        with translated():
            event_id = await self._xadd_expire(
                keys=[self._stream_key(channel)], args=[self.maxlen, self.ttl_ms, *fields]
            )
        return event_id.decode() if isinstance(event_id, bytes) else str(event_id)

    async def publish(self, channel: str, event: str, data: bytes, *, keep: bool) -> str:
        return await self._append(channel, b"event", event, b"data", data, b"keep", b"1" if keep else b"0")

    async def append_numbered(self, channel: str, event: str, data: bytes, *, mark: bool = False) -> int:
        keys = [self._stream_key(channel), self._number_key(channel), self._mark_key(channel)]
        args = [self.maxlen, self.ttl_ms, b"1" if mark else b"0", b"event", event, b"data", data, b"keep", b"1"]
        with translated():
            number = await self._xadd_numbered(keys=keys, args=args)
        return int(number)

    async def numbered_head(self, channel: str) -> tuple[int, int]:
        with translated():
            number, mark = await self.redis.mget([self._number_key(channel), self._mark_key(channel)])
        return int(number or 0), int(mark or 0)

    def _number_key(self, channel: str) -> str:
        return f"{self.prefix}number:{channel}"

    def _mark_key(self, channel: str) -> str:
        return f"{self.prefix}mark:{channel}"

    async def close_channel(self, channel: str) -> None:
        await self._append(channel, b"end", b"1")

    async def drop_channel(self, channel: str) -> None:
        with translated():
            await self.redis.delete(self._stream_key(channel), self._number_key(channel), self._mark_key(channel))

    async def _last_entry(self, channel: str) -> tuple[IdKey, bool] | None:
        """(id, is end marker) of the stream's newest entry, or None if the stream does not exist."""
        with translated():
            last = await self.redis.xrevrange(self._stream_key(channel), "+", "-", count=1)
        if not last:
            return None
        raw_id, fields = last[0]
        event_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        return _id_key(event_id) or (0, 0), not (fields and b"event" in fields)

    async def is_closed(self, channel: str) -> bool:
        last = await self._last_entry(channel)
        return last is not None and last[1]

    async def subscribe(self, channel: str, *, last_event_id: str | None = None) -> RedisSubscription:
        last = await self._last_entry(channel)
        snapshot, closed = last if last is not None else ((0, 0), False)
        after: IdKey | None = None
        if last_event_id is not None:
            # "-", "0" and anything that is not an id mean "from the start", as in the memory broker.
            after = _id_key(last_event_id) if last_event_id not in ("-", "") else None
            after = after or (0, 0)
        sub = RedisSubscription(self, self._stream_key(channel), snapshot=snapshot, closed=closed, after=after)
        self._subscriptions.add(sub)
        return sub

    def forget(self, sub: RedisSubscription) -> None:
        self._subscriptions.discard(sub)

    async def send_cancel(self, run_id: str, action: str) -> None:
        with translated():
            await self.redis.publish(self._cancel_channel, f"{run_id}:{action}")

    async def ping(self) -> None:
        with translated():
            await self.redis.ping()

    def listen_for_cancels(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen(), name="graphyard-cancel-listener")
            self._listener.add_done_callback(_report_listener_death)

    def on_cancel(self, run_id: str, callback: CancelCallback) -> Callable[[], None]:
        self._callbacks.setdefault(run_id, []).append(callback)
        self.listen_for_cancels()

        def unregister() -> None:
            callbacks = self._callbacks.get(run_id)
            if callbacks and callback in callbacks:
                callbacks.remove(callback)
                if not callbacks:
                    del self._callbacks[run_id]

        return unregister

    async def _listen(self) -> None:
        """Dispatch cancel messages to local callbacks; reconnect with backoff when Redis goes away.
        Messages sent while disconnected are lost (pub/sub); storage's cancel requests cover that."""
        delay = 0.05
        lost = False
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self._cancel_channel)
                while True:
                    message = await pubsub.get_message(timeout=self.block_ms / 1000)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        delay = 0.05
                        if lost:
                            lost = False
                            logger.warning("cancel listener reconnected to Redis")
                    elif message["type"] == "message":
                        run_id, _, action = message["data"].decode(errors="replace").rpartition(":")
                        self.cancel_here(run_id, action)
            except _DISCONNECTED as exc:
                if not lost:  # one line per outage, not one per reconnect attempt
                    lost = True
                    logger.warning("cancel listener lost Redis, reconnecting with backoff: %r", exc)
            finally:
                release: Callable[[], Awaitable[None]] = pubsub.aclose  # untyped in redis-py
                with contextlib.suppress(*_DISCONNECTED):
                    await release()
            await asyncio.sleep(random.uniform(delay / 2, delay))  # jitter: processes do not reconnect in lockstep
            delay = min(delay * 2, self._max_backoff)

    def cancel_here(self, run_id: str, action: str) -> None:
        for callback in list(self._callbacks.get(run_id, ())):
            try:
                callback(action)
            except Exception:  # one run's faulty callback must not stop cancel delivery to the others
                logger.exception("cancel callback failed for run %s (action %s)", run_id, action)

    async def close(self) -> None:
        pending: list[asyncio.Task[Any]] = [t for sub in list(self._subscriptions) if (t := sub.stop()) is not None]
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            pending.append(listener)
        if pending:
            await asyncio.wait(pending, timeout=self.close_timeout)
        self._callbacks.clear()
        await self.redis.aclose()


def _retrieve(task: asyncio.Task[Any]) -> None:
    # A read that failed after its reader left is not news; retrieving it keeps asyncio quiet.
    if not task.cancelled():
        task.exception()


def _report_listener_death(task: asyncio.Task[None]) -> None:
    # The listener only ends by cancellation; anything else means cancels silently stop arriving.
    if not task.cancelled() and task.exception() is not None:
        logger.error("cancel listener died; cancel signals will not arrive", exc_info=task.exception())
