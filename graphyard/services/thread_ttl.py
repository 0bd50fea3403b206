"""Thread TTL: a thread's own `ttl` or `checkpointer.ttl.default_ttl`, and the sweep that enforces it.

A thread expires `ttl` minutes after it was created or its TTL was last set. The sweep runs in every
worker process, but each pass is claimed by one process (a conditional update of its graphyard_sweeps
row), and it handles at most `sweep_limit` threads per batch. A thread with a run in flight is never
swept; it is looked at again on the next pass. Temporary threads a stateless run left behind (its
process died before deleting it) are deleted by the same sweep.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from graphyard.errors import Unprocessable
from graphyard.logs import get_logger
from graphyard.records import Json, isoformat
from graphyard.services.channels import drop_thread_streams
from graphyard.services.context import Services
from graphyard.storage.ports import Session

log = get_logger("graphyard.thread_ttl")

SWEEP = "thread_ttl"
STRATEGIES = ("delete", "keep_latest")


def requested(svc: Services, ttl: Any) -> tuple[str, float] | None:
    """The (strategy, minutes) a create or update asks for: its `ttl` ({"strategy", "ttl"} or a number of
    minutes), else nothing."""
    if ttl is None:
        return None
    strategy: Any
    minutes: Any
    if isinstance(ttl, (int, float)) and not isinstance(ttl, bool):
        strategy, minutes = svc.plugins.thread_ttl.strategy, ttl
    elif isinstance(ttl, dict):
        strategy = ttl.get("strategy") or svc.plugins.thread_ttl.strategy
        minutes = ttl.get("ttl")
    else:
        raise Unprocessable(f'ttl must be {{"strategy": "delete", "ttl": minutes}}, got {ttl!r}')
    if strategy not in STRATEGIES:
        raise Unprocessable(f"ttl strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or minutes <= 0:
        raise Unprocessable(f"ttl.ttl must be a positive number of minutes, got {minutes!r}")
    return strategy, float(minutes)


def for_new_thread(svc: Services, ttl: Any) -> tuple[str, float] | None:
    """The TTL a new thread gets: its own, else the project's default (checkpointer.ttl.default_ttl)."""
    own = requested(svc, ttl)
    if own is not None:
        return own
    policy = svc.plugins.thread_ttl
    return None if policy.default_minutes is None else (policy.strategy, float(policy.default_minutes))


async def apply(tx: Session, thread_id: str, ttl: tuple[str, float] | None) -> None:
    """Start the thread's TTL clock now (nothing when ttl is None)."""
    if ttl is None:
        return
    strategy, minutes = ttl
    await tx.set_thread_ttl(thread_id, strategy=strategy, minutes=minutes, expires_at=time.time() + minutes * 60)


def ttl_json(stored: Json | None) -> Json | None:
    """A thread's `ttl` field as the reference shows it with `include=ttl`."""
    if stored is None:
        return None
    expires = datetime.fromtimestamp(stored["expires_at"], UTC)
    return {"strategy": stored["strategy"], "ttl_minutes": stored["ttl_minutes"], "expires_at": isoformat(expires)}


async def get(svc: Services, thread_id: str) -> Json | None:
    async with svc.storage.read() as db:
        return ttl_json(await db.thread_ttl(thread_id))


async def sweep(svc: Services) -> int:
    """One sweep pass, if this process wins it: delete (or prune to the latest checkpoint) every expired
    thread, batch after batch; how many threads it handled."""
    policy = svc.plugins.thread_ttl
    handled = 0
    claimed = False
    while True:
        moment = time.time()
        async with svc.storage.transaction() as tx:
            if not claimed:
                # Moved on by slightly less than the interval, so the claimant's next pass finds it due.
                if not await tx.claim_sweep(SWEEP, moment, moment + policy.sweep_minutes * 60 * 0.9):
                    return 0
                claimed = True
            batch = await tx.expired_threads(moment, policy.sweep_limit)
            deleted: list[str] = []
            kept: list[str] = []
            for thread in batch:
                if thread["strategy"] == "keep_latest":
                    kept.append(thread["thread_id"])
                    minutes = thread["ttl_minutes"]
                    await tx.set_thread_ttl(
                        thread["thread_id"], strategy="keep_latest", minutes=minutes, expires_at=moment + minutes * 60
                    )
                else:
                    await tx.delete_thread(thread["thread_id"])
                    deleted.append(thread["thread_id"])
        # Checkpoints go after the commit: on SQLite the saver shares the write lock.
        saver = svc.storage.checkpointer
        for thread_id in deleted:
            await saver.adelete_thread(thread_id)
            await drop_thread_streams(svc.broker, thread_id)
        for thread_id in kept:
            await _keep_latest(svc, thread_id)
        handled += len(batch)
        if deleted or kept:
            log.info("thread TTL sweep", deleted=len(deleted), pruned=len(kept))
        if len(batch) < policy.sweep_limit:
            return handled


async def _keep_latest(svc: Services, thread_id: str) -> None:
    """Drop every checkpoint of the thread but its latest (with that one's pending writes)."""
    saver = svc.storage.checkpointer
    try:
        await saver.aprune([thread_id], strategy="keep_latest")
        return
    except NotImplementedError:
        pass
    # Savers without prune (SQLite's): keep the latest by deleting the thread's checkpoints and putting it back.
    config: Any = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    latest = await saver.aget_tuple(config)
    if latest is None:
        return
    await saver.adelete_thread(thread_id)
    saved = await saver.aput(config, latest.checkpoint, latest.metadata, dict(latest.checkpoint["channel_versions"]))
    by_task: dict[str, list[tuple[str, Any]]] = {}
    for task_id, channel, value in latest.pending_writes or []:
        by_task.setdefault(task_id, []).append((channel, value))
    for task_id, writes in by_task.items():
        await saver.aput_writes(saved, writes, task_id)
