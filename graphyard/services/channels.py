"""Names of the broker channels runs and threads publish on."""

from __future__ import annotations

from typing import Any

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
