"""The cron scheduler: a side task of every Worker that fires due crons.

Every process runs it; nobody is elected. Each pass takes the enabled crons that are due and, per
cron, claims the occurrence in one transaction: a conditional advance of next_run_date plus a row in
graphyard_cron_fires, whose (cron_id, scheduled_at) key stops a second process from firing it again.
Only the claimant creates the run, after that commit; if creating it fails (the assistant's graph
is gone, the thread rejects it, the database blips) the error is logged and the schedule goes on.
A process that dies between the claim and the run loses that one occurrence (at most once).
"""

from __future__ import annotations

import asyncio

from graphyard.errors import GraphyardError
from graphyard.logs import Outage, get_logger
from graphyard.records import now
from graphyard.services import crons, encryption, runs, thread_ttl
from graphyard.services.context import Services
from graphyard.storage.errors import Unavailable

log = get_logger("graphyard.scheduler")


async def fire_due(svc: Services) -> int:
    """One scheduler pass: fire every due cron this process wins the claim for; how many fired."""
    at = now()
    fired = 0
    for cron in await crons.due(svc, at):
        try:
            claimed = await crons.claim(svc, cron, at)
        except GraphyardError as exc:
            # A stored schedule this process cannot evaluate (say, a timezone its tzdata lacks):
            # that cron waits, the others fire, and the worker lives on.
            log.error("cron schedule cannot be evaluated", cron_id=cron.cron_id, error=exc.message)
            continue
        if not claimed:
            continue
        fired += 1
        try:
            with encryption.context_scope(cron.encryption_context):
                run = await runs.create(
                    svc,
                    crons.run_payload(cron),
                    thread_id=cron.thread_id,
                    user_id=cron.user_id,
                    cron_id=cron.cron_id,
                    # What a priority handler knows of the cron's owner: who made it.
                    caller={"identity": cron.user_id} if cron.user_id else None,
                )
        except GraphyardError as exc:
            log.warning("cron could not create its run", cron_id=cron.cron_id, error=exc.message)
        except Exception:
            log.exception("cron could not create its run", cron_id=cron.cron_id)
        else:
            log.info("cron fired", cron_id=cron.cron_id, **run.log_fields())
    return fired


async def scheduler(svc: Services, stop: asyncio.Event) -> None:
    """Fire due crons every `cron_sleep_seconds` (CRON_SCHEDULER_SLEEP_TIME) until stop is set."""
    interval = max(0.05, svc.settings.cron_sleep_seconds)
    outage = Outage(log, "database")
    while not stop.is_set():
        try:
            await fire_due(svc)
            outage.up()
        except Unavailable as exc:
            outage.down(exc)  # the next pass fires what is due by then
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            pass


async def thread_sweeper(svc: Services, stop: asyncio.Event) -> None:
    """Sweep expired threads every `checkpointer.ttl.sweep_interval_minutes` until stop is set; each pass
    is claimed by one process across all of them (see services.thread_ttl)."""
    interval = max(0.05, svc.plugins.thread_ttl.sweep_minutes * 60)
    while not stop.is_set():
        await thread_ttl.sweep(svc)
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            pass
