"""An attempt's events on their way to the broker: in order, never making the run wait on (or fail because
of) the broker. While the broker is away, events queue here (up to a bound) and a flusher retries with
backoff; past the bound, the rest of the run's events are dropped and the stream, once the broker is
back, ends with an `error` event that says so, so that no client waits for events that will never come."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

from graphyard.broker.errors import BrokerUnavailable
from graphyard.broker.ports import Broker
from graphyard.logs import Outage, backoff, get_logger
from graphyard.serde import dumps

log = get_logger("graphyard.outbox")

# Events one attempt may hold while the broker is away; a run streaming faster than this for longer
# than the outage loses the rest of its stream (never its outcome: the run goes on and commits).
MAX_QUEUED_EVENTS = 10_000
MAX_QUEUED_BYTES = 64 * 1024 * 1024
# After this long without reaching the broker, queued events are given up (the outcome is committed
# anyway, and a reader that rejoins after the broker is back gets an honest end; see api/sse.py).
GIVE_UP_SECONDS = 120.0


@dataclass(frozen=True, slots=True)
class _Item:
    channel: str
    event: str | None  # None: close the channel
    data: bytes
    keep: bool


class Outbox:
    """Ordered delivery of one attempt's events and channel closes to the broker."""

    def __init__(self, broker: Broker, *, run_id: str) -> None:
        self._broker = broker
        self._run_id = run_id
        self._queue: deque[_Item] = deque()
        self._bytes = 0
        self._dropped = 0
        self._flusher: asyncio.Task[None] | None = None
        self._outage_log: Outage | None = None

    @property
    def _outage(self) -> Outage:
        # Made at the first failure: binding a logger for every run's outbox costs more than the run's events.
        if self._outage_log is None:
            self._outage_log = Outage(log.bind(run_id=self._run_id), "broker")
        return self._outage_log

    @property
    def dropped(self) -> int:
        return self._dropped

    async def publish(self, channel: str, event: str, data: bytes, *, keep: bool) -> None:
        await self._send(_Item(channel, event, data, keep))

    async def close_channel(self, channel: str) -> None:
        await self._send(_Item(channel, None, b"", True))

    async def _send(self, item: _Item) -> None:
        if not self._queue:
            try:
                await self._deliver(item)
                return
            except BrokerUnavailable as exc:
                self._outage.down(exc)
        self._enqueue(item)

    def _enqueue(self, item: _Item) -> None:
        if item.event is not None:
            if self._dropped or len(self._queue) >= MAX_QUEUED_EVENTS or self._bytes >= MAX_QUEUED_BYTES:
                if not self._dropped:
                    log.error("broker away too long: dropping the rest of the run's events", run_id=self._run_id)
                    # Where the gap starts, the stream will say so and end for its readers.
                    lost = dumps(
                        {
                            "error": "EventsLost",
                            "message": "The broker was unreachable and this stream lost events; the run went on: "
                            "read its outcome with runs.join or the thread's state",
                        }
                    )
                    self._queue.append(_Item(item.channel, "error", lost, True))
                self._dropped += 1
                return
        self._queue.append(item)
        self._bytes += len(item.data)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name=f"outbox-{self._run_id}")

    async def _deliver(self, item: _Item) -> None:
        if item.event is None:
            await self._broker.close_channel(item.channel)
        else:
            await self._broker.publish(item.channel, item.event, item.data, keep=item.keep)

    async def _flush(self) -> None:
        failures = 0
        while self._queue:
            item = self._queue[0]
            try:
                await self._deliver(item)
            except BrokerUnavailable as exc:
                self._outage.down(exc)
                failures += 1
                since = self._outage.down_since
                if since is not None and time.monotonic() - since > GIVE_UP_SECONDS:
                    log.error(
                        "broker unreachable for too long: giving up the run's undelivered events",
                        run_id=self._run_id,
                        undelivered=len(self._queue) + self._dropped,
                    )
                    self._queue.clear()
                    return
                await asyncio.sleep(backoff(failures, base=0.1, cap=2.0))
                continue
            self._queue.popleft()
            self._bytes -= len(item.data)
            failures = 0
            self._outage.up()

    async def drain(self, timeout: float) -> bool:
        """Wait up to timeout seconds for everything queued to reach the broker; False if it did not (the
        undelivered events are given up, and the log says how many)."""
        flusher = self._flusher
        if flusher is None or flusher.done():
            return not self._queue
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(flusher)
        except TimeoutError:
            flusher.cancel()
            log.error(
                "broker still unreachable: the run's last events were not delivered",
                run_id=self._run_id,
                undelivered=len(self._queue) + self._dropped,
            )
            return False
        return True

    def abandon(self) -> None:
        """Stop delivering (the attempt ended and another attempt owns the stream now)."""
        if self._flusher is not None:
            self._flusher.cancel()
