"""Thread state through LangGraph: snapshots as wire JSON, the thread's graph, status derived from state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.pregel import Pregel
from langgraph.types import Interrupt, StateSnapshot

from graphyard.errors import CheckpointNotFound, InvalidRequest
from graphyard.graphs import GraphAccess
from graphyard.records import Json, Thread, ThreadSnapshot, ThreadStatus
from graphyard.serde import to_jsonable
from graphyard.services.context import Services

EMPTY_STATE: Json = {
    "values": {},
    "next": [],
    "tasks": [],
    "metadata": None,
    "created_at": None,
    "checkpoint": None,
    "parent_checkpoint": None,
    "interrupts": [],
    "checkpoint_id": None,
    "parent_checkpoint_id": None,
}


def thread_config(thread_id: str, checkpoint: Json | None = None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    for key, value in (checkpoint or {}).items():
        if key != "thread_id" and value is not None:
            configurable[key] = value
    return RunnableConfig(configurable=configurable)


def checkpoint_not_found(thread_id: str, checkpoint: Json | None) -> CheckpointNotFound:
    wanted = checkpoint or {}
    where = f" in namespace '{wanted['checkpoint_ns']}'" if wanted.get("checkpoint_ns") else ""
    return CheckpointNotFound(
        f"Checkpoint {wanted.get('checkpoint_id')}{where} not found on thread {thread_id}; "
        "take checkpoint ids from the thread's state or history"
    )


async def require_checkpoint(svc: Services, thread_id: str, checkpoint: Json | None) -> None:
    """CheckpointNotFound when `checkpoint` names a checkpoint id the thread does not have: starting or
    forking from it would silently start from an empty state instead."""
    if not (checkpoint or {}).get("checkpoint_id"):
        return
    if await svc.storage.checkpointer.aget_tuple(thread_config(thread_id, checkpoint)) is None:
        raise checkpoint_not_found(thread_id, checkpoint)


def graph_id_of(thread: Thread) -> str | None:
    graph_id = thread.metadata.get("graph_id")
    return graph_id if isinstance(graph_id, str) else None


@asynccontextmanager
async def thread_graph(svc: Services, thread: Thread, access: GraphAccess) -> AsyncIterator[Pregel[Any, Any, Any, Any]]:
    """The thread's graph bound to our checkpointer and store, built for `access` (threads.read or
    threads.update); 400 when the thread has no graph yet."""
    graph_id = graph_id_of(thread)
    if graph_id is None or graph_id not in svc.graphs:
        raise InvalidRequest(f"Thread {thread.thread_id} has no assigned graph ID")
    config = thread_config(thread.thread_id)
    async with svc.graphs.graph(
        graph_id, config, access=access, checkpointer=svc.storage.checkpointer, store=svc.storage.store
    ) as graph:
        yield graph


def _interrupt(item: Interrupt) -> Json:
    return {"id": item.id, "value": to_jsonable(item.value)}


def _checkpoint(config: Any) -> Json | None:
    if not config:
        return None
    conf = config.get("configurable") or {}
    out: Json = {
        "thread_id": conf.get("thread_id"),
        "checkpoint_ns": conf.get("checkpoint_ns", ""),
        "checkpoint_id": conf.get("checkpoint_id"),
    }
    if conf.get("checkpoint_map"):
        out["checkpoint_map"] = conf["checkpoint_map"]
    return out


def _error_text(error: Exception | None) -> str | None:
    return None if error is None else f"{type(error).__name__}({error!s})"


def snapshot_json(snap: StateSnapshot, *, encoded_later: bool = False) -> Json:
    """A LangGraph StateSnapshot as the reference's ThreadState JSON. With `encoded_later` (the caller
    encodes the result with `serde.dumps` and nothing else reads it) the values stay as LangGraph gave
    them: reducing a large state to plain data first would encode and parse it once more for nothing."""
    if not snap.config or (snap.created_at is None and not snap.values and not snap.next):
        return dict(EMPTY_STATE)
    tasks = []
    for task in snap.tasks:
        state = task.state
        tasks.append(
            {
                "id": task.id,
                "name": task.name,
                "path": to_jsonable(list(task.path)),
                "error": _error_text(task.error),
                "interrupts": [_interrupt(i) for i in task.interrupts],
                "checkpoint": _checkpoint(state)
                if state is not None and not isinstance(state, StateSnapshot)
                else None,
                "state": snapshot_json(state, encoded_later=encoded_later)
                if isinstance(state, StateSnapshot)
                else None,
                "result": to_jsonable(task.result) if task.result is not None else None,
            }
        )
    metadata = to_jsonable(dict(snap.metadata or {}))
    checkpoint = _checkpoint(snap.config)
    parent = _checkpoint(snap.parent_config)
    return {
        "values": snap.values if encoded_later else to_jsonable(snap.values),
        "next": list(snap.next),
        "tasks": tasks,
        "metadata": metadata,
        "created_at": snap.created_at,
        "checkpoint": checkpoint,
        "parent_checkpoint": parent,
        "interrupts": [_interrupt(i) for i in snap.interrupts],
        "checkpoint_id": checkpoint["checkpoint_id"] if checkpoint else None,
        "parent_checkpoint_id": parent["checkpoint_id"] if parent else None,
    }


def thread_snapshot(snap: StateSnapshot, error: Json | None = None) -> ThreadSnapshot:
    """What the thread row records about its latest checkpoint."""
    interrupts: Json = {}
    for task in snap.tasks:
        if task.interrupts:
            interrupts[task.id] = [_interrupt(i) for i in task.interrupts]
    return ThreadSnapshot(
        values=to_jsonable(snap.values) if snap.config else None,
        interrupts=interrupts,
        error=error,
        has_next=bool(snap.next),
    )


def settled_status(snapshot: ThreadSnapshot, *, others_inflight: bool, failed: bool) -> ThreadStatus:
    """busy if other runs wait; else error if the run raised; else interrupted if nodes are pending; else idle."""
    if others_inflight:
        return ThreadStatus.BUSY
    if failed:
        return ThreadStatus.ERROR
    if snapshot.has_next or snapshot.interrupts:
        return ThreadStatus.INTERRUPTED
    return ThreadStatus.IDLE
