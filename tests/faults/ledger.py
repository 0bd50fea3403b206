"""The fault tests' graph: three nodes, each recording its start and its end (or its cancellation) in an
append-only ledger file named by GRAPHYARD_TEST_LEDGER, with the process id and wall-clock times.
The ledger lives outside the database and the broker, so it still tells the truth while they are away."""

from __future__ import annotations

import asyncio
import operator
import os
import time
from typing import Annotated, Any, TypedDict

import orjson
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

STEP_SECONDS = float(os.environ.get("GRAPHYARD_TEST_STEP_SECONDS", "0.3"))


class LedgerState(TypedDict, total=False):
    seq: int
    seconds: float  # how long each node works (default GRAPHYARD_TEST_STEP_SECONDS)
    steps: Annotated[list[str], operator.add]


def _record(event: str, node: str, config: RunnableConfig, state: LedgerState) -> None:
    path = os.environ.get("GRAPHYARD_TEST_LEDGER")
    if not path:
        return
    configurable = config.get("configurable") or {}
    line = orjson.dumps(
        {
            "event": event,
            "node": node,
            "run_id": configurable.get("run_id"),
            "thread_id": configurable.get("thread_id"),
            "seq": state.get("seq"),
            "pid": os.getpid(),
            "t": time.time(),
        }
    )
    # One write of one short line with O_APPEND: lines from several processes never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line + b"\n")
    finally:
        os.close(fd)


def _step(name: str, *, remember: bool = False) -> Any:
    async def step(state: LedgerState, config: RunnableConfig, runtime: Runtime[Any]) -> LedgerState:
        _record("start", name, config, state)
        try:
            await asyncio.sleep(state.get("seconds", STEP_SECONDS))  # the node's work
            if remember and runtime.store is not None:
                # Long-term memory goes to the database too: an outage here must not fail the run.
                run_id = str((config.get("configurable") or {}).get("run_id"))
                await runtime.store.aput(("ledger",), run_id, {"seq": state.get("seq")})
        except asyncio.CancelledError:
            _record("cancelled", name, config, state)
            raise
        except Exception:
            _record("failed", name, config, state)  # e.g. the store unreachable: this attempt ends here
            raise
        _record("end", name, config, state)
        return {"steps": [name]}

    return step


ledger = (
    StateGraph(LedgerState)
    .add_node("one", _step("one"))
    .add_node("two", _step("two", remember=True))
    .add_node("three", _step("three"))
    .add_edge(START, "one")
    .add_edge("one", "two")
    .add_edge("two", "three")
    .add_edge("three", END)
    .compile()
)
