"""Threads: create / copy / prune / delete, search, and state reads and writes through LangGraph."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from langgraph.errors import InvalidUpdateError
from langgraph.types import Command, StateUpdate
from langgraph_sdk.auth.types import BaseUser

from graphyard.errors import Conflict, InvalidRequest, ThreadExists, ThreadNotFound
from graphyard.graphs import GraphAccess
from graphyard.records import Json, Thread, ThreadStatus, isoformat, now, uuid7
from graphyard.serde import dumps
from graphyard.services import state as st
from graphyard.services import thread_ttl
from graphyard.services.channels import drop_thread_streams, send_cancels, thread_channel
from graphyard.services.context import Services
from graphyard.storage.errors import UniqueViolation


def new_thread(
    thread_id: str, metadata: Json, *, status: ThreadStatus = ThreadStatus.IDLE, values: Any = None
) -> Thread:
    stamp = isoformat(now())
    return Thread(
        thread_id=thread_id,
        created_at=stamp,
        updated_at=stamp,
        state_updated_at=stamp,
        metadata=metadata,
        status=status,
        config={},
        values=values,
        interrupts={},
        error=None,
    )


async def create(
    svc: Services,
    *,
    thread_id: str | None,
    metadata: Json | None,
    if_exists: str,
    auth: Json | None = None,
    ttl: Any = None,
) -> Thread:
    """A new thread; `ttl` ({"strategy", "ttl": minutes}) or else the project's default TTL starts now."""
    thread = new_thread(thread_id or uuid7(), metadata or {})
    expiry = thread_ttl.for_new_thread(svc, ttl)
    async with svc.storage.transaction() as tx:
        existing = await tx.get_thread(thread.thread_id)
        if existing is not None:
            visible = auth is None or await tx.get_thread(thread.thread_id, auth) is not None
            if if_exists == "do_nothing" and visible:
                return existing
            raise ThreadExists(f"Thread with ID {thread.thread_id} already exists")
        try:
            await tx.insert_thread(thread)
        except UniqueViolation as exc:
            raise ThreadExists(f"Thread with ID {thread.thread_id} already exists") from exc
        await thread_ttl.apply(tx, thread.thread_id, expiry)
    return thread


async def get(
    svc: Services, thread_id: str, auth: Json | None = None, *, values: bool = True, encoded_values: bool = False
) -> Thread:
    """The thread (404 if missing or hidden); `values=False` leaves its values unread (None),
    `encoded_values` may give them as stored JSON (see Session.get_thread)."""
    async with svc.storage.read() as db:
        thread = await db.get_thread(thread_id, auth, values=values, encoded_values=encoded_values)
    if thread is None:
        raise ThreadNotFound(f"Thread with ID {thread_id} not found")
    return thread


async def patch(
    svc: Services, thread_id: str, *, metadata: Json | None, auth: Json | None = None, ttl: Any = None
) -> Thread:
    """Merge metadata into the thread's; a `ttl` restarts its TTL clock with the new length and strategy."""
    expiry = thread_ttl.requested(svc, ttl)
    async with svc.storage.transaction() as tx:
        thread = await tx.get_thread(thread_id, auth)
        if thread is None:
            raise ThreadNotFound()
        merged = {**thread.metadata, **(metadata or {})}
        await tx.update_thread_metadata(thread_id, merged, isoformat(now()))
        await thread_ttl.apply(tx, thread_id, expiry)
        updated = await tx.get_thread(thread_id)
    assert updated is not None
    return updated


async def delete(svc: Services, thread_id: str, auth: Json | None = None) -> None:
    """Delete a thread, its runs (stopping the running one) and its checkpoints."""
    async with svc.storage.transaction() as tx:
        if await tx.get_thread(thread_id, auth) is None:
            raise ThreadNotFound(f"Thread with ID {thread_id} not found")
        running = await tx.inflight_runs(thread_id)
        await tx.delete_thread(thread_id)
    # Their rows are gone: a worker the signal misses loses its lease at its next heartbeat and stops.
    await send_cancels(svc.broker, [run.run_id for run in running], "rollback")
    await drop_thread_streams(svc.broker, thread_id)
    # The saver shares the write lock, so checkpoints go after our transaction has committed.
    await svc.storage.checkpointer.adelete_thread(thread_id)


async def search(
    svc: Services,
    *,
    ids: Sequence[str] | None,
    metadata: Json | None,
    values: Json | None,
    status: str | None,
    limit: int,
    offset: int,
    sort_by: str | None,
    sort_order: str | None,
    auth: Json | None = None,
) -> tuple[list[Thread], int]:
    async with svc.storage.read() as db:
        items = await db.search_threads(
            ids=ids,
            metadata=metadata,
            values=values,
            status=status,
            auth=auth,
            limit=limit,
            offset=offset,
            sort_by=sort_by or "updated_at",
            sort_order=sort_order or "desc",
        )
        total = offset + len(items)
        if len(items) == limit:
            total = await db.count_threads(metadata=metadata, values=values, status=status, auth=auth)
            if ids is not None:
                total = max(total, offset + len(items) + 1)
    return items, total


async def count(
    svc: Services, *, metadata: Json | None, values: Json | None, status: str | None, auth: Json | None = None
) -> int:
    async with svc.storage.read() as db:
        return await db.count_threads(metadata=metadata, values=values, status=status, auth=auth)


async def copy(
    svc: Services,
    thread_id: str,
    auth: Json | None = None,
    *,
    new_thread_id: str | None = None,
    metadata: Json | None = None,
) -> Thread:
    """A new thread with the source's metadata (`metadata` merged over it) and its latest checkpoint
    (with pending writes)."""
    source = await get(svc, thread_id, auth)
    target = new_thread(
        new_thread_id or str(uuid.uuid4()), {**source.metadata, **(metadata or {})}, values=source.values
    )
    saver = svc.storage.checkpointer
    latest = await saver.aget_tuple(st.thread_config(thread_id))
    async with svc.storage.transaction() as tx:
        await tx.insert_thread(target)
        await thread_ttl.apply(tx, target.thread_id, thread_ttl.for_new_thread(svc, None))
        await tx.set_thread_state(
            target.thread_id,
            status=ThreadStatus.IDLE,
            values=source.values,
            interrupts=source.interrupts,
            error=None,
            updated_at=target.updated_at,
        )
    if latest is not None:
        config = st.thread_config(target.thread_id)
        saved = await saver.aput(
            config, latest.checkpoint, latest.metadata, dict(latest.checkpoint["channel_versions"])
        )
        by_task: dict[str, list[tuple[str, Any]]] = {}
        for task_id, channel, value in latest.pending_writes or []:
            by_task.setdefault(task_id, []).append((channel, value))
        for task_id, writes in by_task.items():
            await saver.aput_writes(saved, writes, task_id)
    return await get(svc, target.thread_id)


async def prune(svc: Services, thread_ids: Sequence[str], auth: Json | None = None) -> int:
    pruned = 0
    for thread_id in thread_ids:
        try:
            await delete(svc, thread_id, auth)
        except ThreadNotFound:
            continue
        pruned += 1
    return pruned


# --- state ----------------------------------------------------------------------------------------


async def get_state(
    svc: Services,
    thread_id: str,
    *,
    checkpoint: Json | None,
    subgraphs: bool,
    auth: Json | None = None,
    user: BaseUser | None = None,
) -> Json:
    # The state comes from the checkpoint: the thread's own copy of its values is not read.
    thread = await get(svc, thread_id, auth, values=False)
    if st.graph_id_of(thread) is None:
        return dict(st.EMPTY_STATE)
    async with st.thread_graph(svc, thread, GraphAccess("threads.read", user)) as graph:
        snap = await graph.aget_state(st.thread_config(thread_id, checkpoint), subgraphs=subgraphs)
    state = st.snapshot_json(snap, encoded_later=True)
    if state["checkpoint"] is None and (checkpoint or {}).get("checkpoint_id"):
        raise st.checkpoint_not_found(thread_id, checkpoint)
    return state


async def history(
    svc: Services,
    thread_id: str,
    *,
    limit: int,
    before: Json | None,
    metadata: Json | None,
    checkpoint: Json | None,
    auth: Json | None = None,
    user: BaseUser | None = None,
) -> list[Json]:
    thread = await get(svc, thread_id, auth, values=False)
    if st.graph_id_of(thread) is None:
        return []
    async with st.thread_graph(svc, thread, GraphAccess("threads.read", user)) as graph:
        config = st.thread_config(thread_id, checkpoint)
        before_config = st.thread_config(thread_id, before) if before else None
        return [
            st.snapshot_json(snap, encoded_later=True)
            async for snap in graph.aget_state_history(config, filter=metadata, before=before_config, limit=limit)
        ]


async def update_state(
    svc: Services,
    thread_id: str,
    *,
    values: Any,
    as_node: str | None,
    checkpoint: Json | None,
    auth: Json | None = None,
    user: BaseUser | None = None,
) -> Json:
    """Write values into the thread's state as if by a node; refused while runs are in flight."""
    thread = await get(svc, thread_id, auth)
    async with svc.storage.read() as db:
        inflight = await db.inflight_runs(thread_id)
    if inflight:
        ids = ", ".join(r.run_id for r in inflight)
        raise Conflict(f"Thread {thread_id} has in-flight runs: {ids}")
    config = st.thread_config(thread_id, checkpoint)
    await st.require_checkpoint(svc, thread_id, checkpoint)
    async with st.thread_graph(svc, thread, GraphAccess("threads.update", user)) as graph:
        try:
            saved = await graph.aupdate_state(config, values, as_node=as_node)
        except (InvalidUpdateError, ValueError) as exc:
            # LangGraph's answer to a bad update, e.g. "Subgraph nope not found" for an unknown
            # checkpoint_ns, or an unknown node: the reference's 400.
            raise InvalidRequest(str(exc)) from exc
        snap = await graph.aget_state(st.thread_config(thread_id))
    await refresh_thread(svc, thread_id, snap)
    event = {"state": st.snapshot_json(snap), "thread_id": thread_id}
    await svc.broker.publish(thread_channel(thread_id), "state_update", dumps(event), keep=True)
    conf = saved["configurable"]
    checkpoint_out = {
        "thread_id": conf.get("thread_id", thread_id),
        "checkpoint_ns": conf.get("checkpoint_ns", ""),
        "checkpoint_id": conf.get("checkpoint_id"),
    }
    return {"checkpoint": checkpoint_out, "configurable": checkpoint_out, "checkpoint_id": conf.get("checkpoint_id")}


async def refresh_thread(svc: Services, thread_id: str, snap: Any) -> None:
    """Re-derive a thread's values, interrupts and status from its latest checkpoint."""
    snapshot = st.thread_snapshot(snap)
    async with svc.storage.transaction() as tx:
        others = await tx.inflight_runs(thread_id)
        status = st.settled_status(snapshot, others_inflight=bool(others), failed=False)
        await tx.set_thread_state(
            thread_id,
            status=status,
            values=snapshot.values,
            interrupts=snapshot.interrupts,
            error=None,
            updated_at=isoformat(now()),
        )


async def apply_supersteps(svc: Services, thread: Thread, supersteps: list[Json], user: BaseUser | None = None) -> None:
    """Replay a thread's history as supersteps of state updates (thread create with `supersteps`)."""
    async with st.thread_graph(svc, thread, GraphAccess("threads.update", user)) as graph:
        steps = [
            [
                StateUpdate(
                    values=Command(**update["command"]) if update.get("command") else update.get("values"),  # type: ignore[arg-type]
                    as_node=update.get("as_node"),
                )
                for update in step.get("updates") or []
            ]
            for step in supersteps
        ]
        await graph.abulk_update_state(st.thread_config(thread.thread_id), steps)
        snap = await graph.aget_state(st.thread_config(thread.thread_id))
    await refresh_thread(svc, thread.thread_id, snap)
