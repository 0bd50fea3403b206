"""The broker port: ordered, resumable event streams per channel, and cancel signals to run owners."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One published event: its id (unique and increasing within a channel), name and encoded data."""

    id: str
    event: str
    data: bytes


CancelCallback = Callable[[str], None]


class Subscription(Protocol):
    """Events of one channel for one listener; registered when created, so nothing later is missed."""

    def __aiter__(self) -> AsyncIterator[StreamEvent]: ...

    async def __anext__(self) -> StreamEvent: ...

    def received(self) -> list[StreamEvent]:
        """The events already here, in order, taken without waiting (often none): how a reader takes a burst
        in one go. The end of the stream is never among them; the next __anext__ says so."""

    async def aclose(self) -> None:
        """Stop listening, without suspending: it runs in `finally` blocks of cancelled tasks."""


class Broker(Protocol):
    """Moves already-encoded events from the process running a graph to every listener."""

    async def publish(self, channel: str, event: str, data: bytes, *, keep: bool) -> str:
        """Append an event to the channel and return its id. With keep, it can be replayed later."""

    async def append_numbered(self, channel: str, event: str, data: bytes, *, mark: bool = False) -> int:
        """Append a kept event numbered n, the channel's next number (1, 2, ... across every process), with
        the id `<n>-0`, and return n. With mark, n also becomes the channel's mark (where its latest run
        began). The numbering and the mark expire with the channel, then start again from 1."""

    async def numbered_head(self, channel: str) -> tuple[int, int]:
        """(the last number given on the channel, its mark), each 0 when there is none."""

    async def close_channel(self, channel: str) -> None:
        """Mark the channel finished: live subscribers end after the events already published."""

    async def subscribe(self, channel: str, *, last_event_id: str | None = None) -> Subscription:
        """Live events of the channel from now on; with last_event_id, first replay the kept events after it.
        Ends when the channel is closed. Subscribing before the first publish misses nothing."""

    async def drop_channel(self, channel: str) -> None:
        """Forget the channel's kept events, numbering and closed flag now, as if it had expired (its thread
        was deleted: nothing could resume it). Live subscribers are not ended: they get what is published
        on the channel's name later, as they would after an expiry."""

    async def is_closed(self, channel: str) -> bool:
        """Whether close_channel was called for the channel (and it has not expired)."""

    async def send_cancel(self, run_id: str, action: str) -> None:
        """Tell whichever process runs run_id to stop it with this action."""

    def on_cancel(self, run_id: str, callback: CancelCallback) -> Callable[[], None]:
        """Call callback(action) when a cancel for run_id arrives; returns the function that unregisters."""

    def listen_for_cancels(self) -> None:
        """Start receiving cancel signals now rather than with the first run (a worker calls it when it
        starts): a signal sent before the process listens is only delivered by the lease heartbeat."""

    def cancel_here(self, run_id: str, action: str) -> None:
        """Deliver a cancel for run_id to this process's callbacks only, without the broker's server (the
        lease heartbeat read it from the run's row, so it arrives while the broker is away too)."""

    async def ping(self) -> None:
        """Return when the broker answers; BrokerUnavailable when it cannot be reached."""

    async def close(self) -> None:
        """Release connections and drop buffers."""
