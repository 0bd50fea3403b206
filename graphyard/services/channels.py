"""Names of the broker channels runs and threads publish on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from graphyard.broker.errors import BrokerUnavailable
from graphyard.broker.ports import Broker
from graphyard.logs import get_logger

log = get_logger("graphyard.channels")

# Published last on a run's channel with the join output, so waiters need not read a deleted row,
# and kept (for the stream TTL) so a join that arrives after a temporary run deleted itself still
# gets its output. Its data is `end_payload(...)`.
END_EVENT = "__end__"


def end_payload(thread_id: str, output: Any) -> dict[str, Any]:
    """`output` is None for a run that was rolled back (deleted)."""
    return {"thread_id": thread_id, "output": output}


def run_channel(run_id: str) -> str:
    return f"run:{run_id}"


def thread_channel(thread_id: str) -> str:
    return f"thread:{thread_id}"


def protocol_channel(thread_id: str) -> str:
    """The thread's numbered stream of protocol events (`client.threads.stream`)."""
    return f"protocol:{thread_id}"


async def send_cancels(broker: Broker, run_ids: Sequence[str], action: str) -> None:
    """Signal the workers of runs whose cancel (or deletion) is committed. The signal is the fast path:
    while the broker is away each worker still learns it from the database at its next lease heartbeat."""
    for run_id in run_ids:
        try:
            await broker.send_cancel(run_id, action)
        except BrokerUnavailable:
            log.warning("cancel committed; broker unreachable, the worker sees it at its next heartbeat", run_id=run_id)


async def drop_thread_streams(broker: Broker, thread_id: str) -> None:
    """Drop a deleted thread's stream channels now: nothing can resume them, and a server deleting threads as
    fast as it streams on them would otherwise hold every one's events for the retention window."""
    try:
        await broker.drop_channel(thread_channel(thread_id))
        await broker.drop_channel(protocol_channel(thread_id))
    except BrokerUnavailable as exc:  # the thread is gone either way; its streams expire with the broker's TTL
        log.warning("deleted thread's streams left to expire: broker unreachable", thread_id=thread_id, error=str(exc))
