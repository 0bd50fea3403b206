"""Leases: a worker renews the leases of the runs it executes and stops an attempt the moment it learns
(or can no longer be sure) that it holds the lease; a sweeper returns runs whose worker died to the queue
(or fails them after the retry limit). Writes about a run are fenced by its lease (Session.hold_lease)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from graphyard.broker.errors import BrokerUnavailable
from graphyard.engine.attempts import SAFE_SHARE, Attempt
from graphyard.engine.execute import Outcome, finish
from graphyard.logs import Outage, backoff, get_logger
from graphyard.records import Lease, Run, RunStatus, isoformat, now
from graphyard.services import protocol
from graphyard.services.channels import run_channel
from graphyard.services.context import Services
from graphyard.storage.errors import LeaseLost, Unavailable

log = get_logger("graphyard.leases")
# A session waiting this long for its client inside a transaction is ended, as PostgreSQL's
# idle_in_transaction_session_timeout (set to the same on our connections) would if it saw it idle.
STALLED_SESSION_SECONDS = 10.0


async def heartbeat(
    svc: Services,
    worker_id: str,
    stop: asyncio.Event,
    attempts: Callable[[], list[Attempt]],
    lose: Callable[[Attempt, str], None],
    orphans: Callable[[set[Lease]], Awaitable[None]],
) -> None:
    """Every third of the lease: extend our leases, stop attempts whose lease was taken over, and deliver
    cancels recorded on our runs' rows (the broker signal is the fast path; this one cannot be lost).
    While the database is away it keeps trying, and stops each attempt when its lease may have run out."""
    lease_seconds = svc.settings.lease_seconds
    interval = lease_seconds / 3
    outage = Outage(log.bind(worker_id=worker_id), "database")
    failures = 0
    while not stop.is_set():
        sent = time.monotonic()
        for attempt in attempts():
            if not attempt.settled and not attempt.lost and attempt.valid_until <= sent:
                lose(attempt, "its lease may have expired while the database was unreachable")
        try:
            async with asyncio.timeout(interval):
                async with svc.storage.transaction() as tx:
                    renewed = set(await tx.renew_leases(worker_id, time.time() + lease_seconds))
                    requests = await tx.cancel_requests(worker_id)
        except (Unavailable, TimeoutError) as exc:
            outage.down(exc)
            failures += 1
            wait = min(interval, backoff(failures, cap=interval))
        else:
            outage.up()
            failures = 0
            for attempt in attempts():
                if attempt.lease in renewed:
                    attempt.valid_until = sent + lease_seconds * SAFE_SHARE
                elif attempt.claimed_at < sent and not attempt.settled and not attempt.lost:
                    lose(attempt, "another worker took the run over")
            await orphans(renewed)
            for run_id, action in requests:
                svc.broker.cancel_here(run_id, action.value)  # our own runs: no round trip through Redis
            wait = interval
        # Wake in time to stop an attempt whose lease runs out before the next beat.
        pending = [a.valid_until for a in attempts() if not a.settled and not a.lost]
        if pending:
            wait = max(0.01, min(wait, min(pending) - time.monotonic()))
        try:
            await asyncio.wait_for(stop.wait(), wait)
        except TimeoutError:
            pass


async def sweep_once(svc: Services, sweeper_id: str) -> int:
    """Requeue runs whose lease expired (resuming from their last checkpoint) up to the retry limit,
    then fail them. Returns how many runs were swept."""
    failed: list[tuple[Run, Lease]] = []
    async with svc.storage.transaction() as tx:
        ended = await tx.end_stalled_sessions(STALLED_SESSION_SECONDS)
    if ended:
        log.warning("ended database sessions stalled inside a transaction", sessions=ended, sweeper_id=sweeper_id)
    async with svc.storage.transaction() as tx:
        expired = await tx.runs_leased_by_others(time.time())
        for run in expired:
            if run.attempt >= svc.settings.max_attempts and run.lease is not None:
                # Take the lease first: the dead (or stalled) holder's writes are refused from here on.
                taken = await tx.transfer_lease(run.lease, sweeper_id, time.time() + svc.settings.lease_seconds)
                if taken is not None:
                    failed.append((run, taken))
            else:
                await tx.requeue_run(run.run_id, isoformat(now()))
                log.warning("run lease expired, requeued", **run.log_fields())
    for run, lease in failed:
        body = {"error": "RetryLimitExceeded", "message": f"Run lost its worker {run.attempt} times"}
        try:
            await finish(svc, run, Outcome(RunStatus.ERROR, {"__error__": body}, error=body), lease)
        except LeaseLost:
            continue  # another sweeper took it meanwhile
        try:
            await svc.broker.close_channel(run_channel(run.run_id))
        except BrokerUnavailable:
            log.warning("could not close the run's stream: broker unreachable", run_id=run.run_id)
        try:
            await protocol.run_ended(svc, run, RunStatus.ERROR, error=body)
        except BrokerUnavailable:
            log.warning("could not end the thread's protocol stream: broker unreachable", run_id=run.run_id)
        log.error("run failed after retries", **run.log_fields())
    if expired:
        svc.storage.notify_work()
    return len(expired)


async def sweeper(svc: Services, sweeper_id: str, stop: asyncio.Event) -> None:
    interval = max(1.0, svc.settings.lease_seconds / 2)
    outage = Outage(log.bind(worker_id=sweeper_id), "database")
    while not stop.is_set():
        try:
            await sweep_once(svc, sweeper_id)
            outage.up()
        except Unavailable as exc:
            outage.down(exc)
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            pass
