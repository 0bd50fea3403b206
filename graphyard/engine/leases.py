"""Leases: a worker renews the leases of the runs it holds and picks up durable cancel requests;
a sweeper returns runs whose worker died to the queue (or fails them after the retry limit)."""

from __future__ import annotations

import asyncio
import time

from graphyard.engine.execute import Outcome, finish
from graphyard.logs import get_logger
from graphyard.records import Run, RunStatus, isoformat, now
from graphyard.services.channels import run_channel
from graphyard.services.context import Services

log = get_logger("graphyard.leases")


async def heartbeat(svc: Services, worker_id: str, stop: asyncio.Event) -> None:
    """Every third of the lease: extend our leases, and deliver cancels recorded on our runs' rows
    (the broker signal is the fast path; this is the one that cannot be lost)."""
    interval = svc.settings.lease_seconds / 3
    while not stop.is_set():
        async with svc.storage.transaction() as tx:
            await tx.renew_leases(worker_id, time.time() + svc.settings.lease_seconds)
            requests = await tx.cancel_requests(worker_id)
        for run_id, action in requests:
            await svc.broker.send_cancel(run_id, action.value)
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            pass


async def sweep_once(svc: Services) -> int:
    """Requeue runs whose lease expired (resuming from their last checkpoint) up to the retry limit,
    then fail them. Returns how many runs were swept."""
    failed: list[Run] = []
    async with svc.storage.transaction() as tx:
        expired = await tx.runs_leased_by_others(time.time())
        for run in expired:
            if run.attempt >= svc.settings.max_attempts:
                failed.append(run)
            else:
                await tx.requeue_run(run.run_id, isoformat(now()))
                log.warning("run lease expired, requeued", **run.log_fields())
    for run in failed:
        body = {"error": "RetryLimitExceeded", "message": f"Run lost its worker {run.attempt} times"}
        await finish(svc, run, Outcome(RunStatus.ERROR, {"__error__": body}, error=body))
        await svc.broker.close_channel(run_channel(run.run_id))
        log.error("run failed after retries", **run.log_fields())
    if expired:
        svc.storage.notify_work()
    return len(expired)


async def sweeper(svc: Services, stop: asyncio.Event) -> None:
    interval = max(1.0, svc.settings.lease_seconds / 2)
    while not stop.is_set():
        await sweep_once(svc)
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            pass
