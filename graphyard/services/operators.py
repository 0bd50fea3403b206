"""What an operator does to a live deployment: look at the queue, list and show runs, cancel, requeue a
stuck run, free a thread left busy. Each refuses what would corrupt state, saying what to do instead."""

from __future__ import annotations

import time
from datetime import timedelta

from graphyard.errors import Conflict, NothingToCancel, RunNotFound, ThreadNotFound
from graphyard.logs import get_logger
from graphyard.records import CancelAction, LeasedRun, QueueStats, RunStatus, ThreadStatus, isoformat, now
from graphyard.services import runs
from graphyard.services.context import Services

log = get_logger("graphyard.operators")


class Refused(Conflict):
    """The operation would corrupt state."""


async def queue_stats(svc: Services) -> QueueStats:
    async with svc.storage.read() as db:
        return await db.queue_stats(time.time())


async def list_runs(
    svc: Services,
    *,
    status: str | None = None,
    thread_id: str | None = None,
    older_than_seconds: float | None = None,
    limit: int = 100,
) -> list[LeasedRun]:
    """Runs of every thread, oldest first; `older_than_seconds` keeps runs created that long ago or more."""
    before = None
    if older_than_seconds is not None:
        before = isoformat(now() - timedelta(seconds=older_than_seconds))
    async with svc.storage.read() as db:
        return await db.leased_runs(status=status, thread_id=thread_id, created_before=before, limit=limit)


async def show_run(svc: Services, run_id: str) -> LeasedRun:
    async with svc.storage.read() as db:
        found = await db.leased_run(run_id)
    if found is None:
        raise RunNotFound(f"Run {run_id} not found")
    return found


async def cancel_run(svc: Services, run_id: str, action: CancelAction = CancelAction.INTERRUPT) -> LeasedRun:
    """Cancel the way the API does: a pending run stops at once; a running one is asked to stop (recorded
    on its row and signalled through the broker, so the worker executing it stops it)."""
    found = await show_run(svc, run_id)
    if not found.run.is_inflight:
        raise Refused(f"Run {run_id} already ended with status {found.run.status.value}; nothing to cancel")
    try:
        await runs.cancel(svc, thread_id=found.run.thread_id, run_ids=[run_id], status=None, action=action, wait=False)
    except NothingToCancel as exc:
        raise Refused(f"Run {run_id} ended while being cancelled; nothing to cancel") from exc
    log.info("operator cancelled run", **found.run.log_fields(), action=action.value)
    return await show_run(svc, run_id)


async def requeue_run(svc: Services, run_id: str) -> LeasedRun:
    """Return a running run whose worker is gone (lease expired) to the queue; it resumes from its last
    checkpoint. A live lease means a worker still runs it: refused."""
    found = await show_run(svc, run_id)
    run = found.run
    if run.status is RunStatus.PENDING:
        raise Refused(f"Run {run_id} is already pending in the queue; nothing to requeue")
    if run.status is not RunStatus.RUNNING:
        raise Refused(
            f"Run {run_id} ended with status {run.status.value}; a finished run is not requeued, create a new run"
        )
    remaining = (found.lease_expires_at or 0.0) - time.time()
    if remaining > 0:
        raise Refused(
            f"Run {run_id} is held by worker {found.lease_owner} whose lease is live for {remaining:.0f} more "
            "seconds; requeueing it would run it twice. Cancel it, or wait for the lease to expire"
        )
    async with svc.storage.transaction() as tx:
        await tx.requeue_run(run_id, isoformat(now()))
    svc.storage.notify_work()
    log.info("operator requeued run", **run.log_fields(), previous_owner=found.lease_owner)
    return await show_run(svc, run_id)


async def unlock_thread(svc: Services, thread_id: str) -> ThreadStatus:
    """A thread left `busy` with no run in flight becomes idle again (interrupted if it waits at an
    interrupt). Refused while any run of the thread is pending or running."""
    async with svc.storage.transaction() as tx:
        thread = await tx.get_thread(thread_id)
        if thread is None:
            raise ThreadNotFound(f"Thread {thread_id} not found")
        inflight = await tx.inflight_runs(thread_id)
        if inflight:
            listed = ", ".join(f"{r.run_id} ({r.status.value})" for r in inflight)
            raise Refused(
                f"Thread {thread_id} has runs in flight: {listed}; it is busy for a reason. "
                "Cancel them, or requeue a running one whose worker died"
            )
        if thread.status is not ThreadStatus.BUSY:
            raise Refused(f"Thread {thread_id} is {thread.status.value}, not busy; nothing to unlock")
        status = ThreadStatus.INTERRUPTED if thread.interrupts else ThreadStatus.IDLE
        await tx.set_thread_status(thread_id, status, isoformat(now()))
    log.info("operator unlocked thread", thread_id=thread_id, status=status.value)
    return status
