"""In-process broker: a bounded ring buffer per channel and direct fan-out to subscriber queues."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from graphyard.broker.ports import CancelCallback, StreamEvent

_END = StreamEvent("", "", b"")


def _id_key(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return -1, -1


class _Channel:
    __slots__ = ("closed", "history", "history_bytes", "last_ms", "mark", "number", "seq", "subscribers", "touched")

    def __init__(self, history_size: int) -> None:
        self.history: deque[StreamEvent] = deque(maxlen=history_size)
        self.history_bytes = 0
        self.subscribers: set[asyncio.Queue[StreamEvent]] = set()
        self.closed = False
        self.last_ms = 0
        self.seq = 0
        self.number = 0
        self.mark = 0
        self.touched = time.monotonic()

    def next_id(self) -> str:
        ms = int(time.time() * 1000)
        # Ids stay strictly increasing even when the clock repeats or steps back.
        if ms <= self.last_ms:
            self.seq += 1
        else:
            self.last_ms, self.seq = ms, 0
        return f"{self.last_ms}-{self.seq}"


class MemorySubscription:
    """One listener's queue on a channel, with the replayed events served first."""

    def __init__(self, channel: _Channel, queue: asyncio.Queue[StreamEvent], replay: list[StreamEvent]) -> None:
        self._channel = channel
        self._queue = queue
        self._replay = deque(replay)
        self._done = False
        self._ended = False  # received() met the end marker: the next __anext__ ends the subscription

    def __aiter__(self) -> MemorySubscription:
        return self

    async def __anext__(self) -> StreamEvent:
        if self._replay:
            return self._replay.popleft()
        if self._done:
            raise StopAsyncIteration
        if self._ended:
            await self.aclose()
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is _END:
            await self.aclose()
            raise StopAsyncIteration
        return item

    def received(self) -> list[StreamEvent]:
        events = list(self._replay)
        self._replay.clear()
        queue = self._queue
        while not self._done and not self._ended and not queue.empty():
            item = queue.get_nowait()
            if item is _END:
                self._ended = True
            else:
                events.append(item)
        return events

    async def aclose(self) -> None:
        self._done = True
        self._channel.subscribers.discard(self._queue)


class MemoryBroker:
    """The embedded broker. Overflow policy: a subscriber whose queue fills up is ended, not blocked on."""

    def __init__(
        self,
        *,
        history_size: int = 10_000,
        history_bytes: int = 4 * 1024 * 1024,
        queue_size: int = 10_000,
        grace_seconds: float = 120.0,
    ) -> None:
        # History is bounded by count and by bytes: a thread whose state is large must not make one
        # channel hold thousands of full-state `values` events.
        self._history_bytes = history_bytes
        self._channels: dict[str, _Channel] = {}
        self._history_size = history_size
        self._queue_size = queue_size
        self._grace = grace_seconds
        self._cancel: dict[str, list[CancelCallback]] = {}
        self._expiry: dict[str, asyncio.TimerHandle] = {}

    def _channel(self, name: str) -> _Channel:
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel(self._history_size)
            self._schedule_expiry(name)
        return channel

    def _schedule_expiry(self, name: str, delay: float | None = None) -> None:
        # Every channel is dropped after a while, so a run that never closes its stream leaks nothing.
        old = self._expiry.pop(name, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._expiry[name] = loop.call_later(self._grace if delay is None else delay, self._expire, name)

    def _expire(self, name: str) -> None:
        channel = self._channels.get(name)
        self._expiry.pop(name, None)
        if channel is None:
            return
        idle = time.monotonic() - channel.touched
        if not channel.closed and (channel.subscribers or idle < self._grace):
            # Checked again when the idle time reaches the grace period, not a whole period later: a
            # thread's channel (never closed) would otherwise keep its history up to twice as long.
            self._schedule_expiry(name, self._grace if channel.subscribers else self._grace - idle)
            return
        del self._channels[name]

    def held_channels(self) -> int:
        """How many channels this broker holds state for (each with its kept history)."""
        return len(self._channels)

    async def publish(self, channel: str, event: str, data: bytes, *, keep: bool) -> str:
        ch = self._channel(channel)
        return self._push(ch, StreamEvent(ch.next_id(), event, data), keep=keep)

    async def append_numbered(self, channel: str, event: str, data: bytes, *, mark: bool = False) -> int:
        ch = self._channel(channel)
        ch.number += 1
        if mark:
            ch.mark = ch.number
        self._push(ch, StreamEvent(f"{ch.number}-0", event, data), keep=True)
        return ch.number

    async def numbered_head(self, channel: str) -> tuple[int, int]:
        ch = self._channels.get(channel)
        return (ch.number, ch.mark) if ch is not None else (0, 0)

    def _push(self, ch: _Channel, item: StreamEvent, *, keep: bool) -> str:
        data = item.data
        ch.touched = time.monotonic()
        if keep:
            if len(ch.history) == ch.history.maxlen:
                ch.history_bytes -= len(ch.history[0].data)
            ch.history.append(item)
            ch.history_bytes += len(data)
            while ch.history_bytes > self._history_bytes and len(ch.history) > 1:
                ch.history_bytes -= len(ch.history.popleft().data)
        for queue in list(ch.subscribers):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                ch.subscribers.discard(queue)
                queue.get_nowait()
                queue.put_nowait(_END)
        return item.id

    async def close_channel(self, channel: str) -> None:
        ch = self._channel(channel)
        ch.closed = True
        for queue in list(ch.subscribers):
            try:
                queue.put_nowait(_END)
            except asyncio.QueueFull:
                queue.get_nowait()
                queue.put_nowait(_END)
        ch.subscribers.clear()
        self._schedule_expiry(channel)

    async def drop_channel(self, channel: str) -> None:
        ch = self._channels.get(channel)
        if ch is None:
            return
        if ch.subscribers:
            # Listeners keep their queues on a channel that starts again from nothing.
            fresh = self._channels[channel] = _Channel(self._history_size)
            fresh.subscribers = ch.subscribers
            fresh.last_ms, fresh.seq = ch.last_ms, ch.seq  # ids still increase for those listeners
            self._schedule_expiry(channel)
            return
        del self._channels[channel]
        handle = self._expiry.pop(channel, None)
        if handle is not None:
            handle.cancel()

    async def is_closed(self, channel: str) -> bool:
        ch = self._channels.get(channel)
        return bool(ch and ch.closed)

    async def subscribe(self, channel: str, *, last_event_id: str | None = None) -> MemorySubscription:
        ch = self._channel(channel)
        queue: asyncio.Queue[StreamEvent] = asyncio.Queue(self._queue_size)
        replay: list[StreamEvent] = []
        if last_event_id is not None:
            after = _id_key(last_event_id) if last_event_id not in ("-", "0", "") else (-1, -1)
            # Ids increase along the history, so the events to replay are its tail: scan from the newest
            # end and stop at the first one already seen (a long-lived thread keeps thousands).
            for item in reversed(ch.history):
                if _id_key(item.id) <= after:
                    break
                replay.append(item)
            replay.reverse()
        if ch.closed:
            queue.put_nowait(_END)
        else:
            ch.subscribers.add(queue)
        return MemorySubscription(ch, queue, replay)

    async def send_cancel(self, run_id: str, action: str) -> None:
        self.cancel_here(run_id, action)

    def listen_for_cancels(self) -> None:
        pass  # signals are delivered by direct calls

    def cancel_here(self, run_id: str, action: str) -> None:
        for callback in list(self._cancel.get(run_id, ())):
            callback(action)

    def on_cancel(self, run_id: str, callback: CancelCallback) -> Callable[[], None]:
        self._cancel.setdefault(run_id, []).append(callback)

        def unregister() -> None:
            callbacks = self._cancel.get(run_id)
            if callbacks and callback in callbacks:
                callbacks.remove(callback)
                if not callbacks:
                    del self._cancel[run_id]

        return unregister

    async def ping(self) -> None:
        return None  # in this process: always there

    async def close(self) -> None:
        for handle in self._expiry.values():
            handle.cancel()
        self._expiry.clear()
        self._channels.clear()
        self._cancel.clear()
