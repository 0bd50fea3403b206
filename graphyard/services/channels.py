"""Names of the broker channels runs and threads publish on."""

from __future__ import annotations

# Published last on a run's channel with the join output, so waiters need not read a deleted row.
END_EVENT = "__end__"


def run_channel(run_id: str) -> str:
    return f"run:{run_id}"


def thread_channel(thread_id: str) -> str:
    return f"thread:{thread_id}"
