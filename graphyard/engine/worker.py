"""The claim loop: take runnable runs as soon as they are due, up to N at once, and stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable

from graphyard import metrics, tracing
from graphyard.engine.execute import Outcome, execute, finish, mark_failed
from graphyard.engine.leases import heartbeat, sweeper
from graphyard.engine.scheduler import scheduler
from graphyard.engine.webhooks import deliver
from graphyard.logs import get_logger
from graphyard.records import Run, RunStatus, isoformat, now
from graphyard.services.channels import run_channel
from graphyard.services.context import Services

log = get_logger("graphyard.worker")

# Nothing waits longer than this without looking at the queue again (a safety net, not the wake-up path).
MAX_IDLE_SECONDS = 5.0


class Worker:
    """Claims runs from storage and executes each in its own task."""

    def __init__(self, svc: Services, *, concurrency: int, worker_id: str | None = None) -> None:
        self.svc = svc
        self.concurrency = max(1, concurrency)
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:12]}"
        self._tasks: dict[asyncio.Task[None], str] = {}
        self._slot_free = asyncio.Event()
        self._webhooks: set[asyncio.Task[bool]] = set()
        self.log = log.bind(worker_id=self.worker_id)
        metrics.set_worker_slots(self.concurrency, 0)

    async def recover(self) -> None:
        """Runs left `running` by a dead process go back to the queue, or fail after the retry limit."""
        async with self.svc.storage.transaction() as tx:
            orphans = await tx.running_runs()
            for run in orphans:
                stamp = isoformat(now())
                if run.attempt >= self.svc.settings.max_attempts:
                    body = {"error": "RetryLimitExceeded", "message": f"Run failed after {run.attempt} attempts"}
                    await tx.finish_run(run.run_id, RunStatus.ERROR, {"__error__": body}, stamp)
                    self.log.warning("run abandoned after retries", **run.log_fields())
                else:
                    await tx.requeue_run(run.run_id, stamp)
                    self.log.info("run requeued after restart", **run.log_fields())
        for run in orphans:
            if run.attempt >= self.svc.settings.max_attempts:
                body = {"error": "RetryLimitExceeded", "message": f"Run failed after {run.attempt} attempts"}
                await finish(self.svc, run, Outcome(RunStatus.ERROR, {"__error__": body}, error=body))

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and execute until stop is set. Side tasks (lease heartbeat, sweeper, cron scheduler) are supervised:
        if one dies, the loop stops and run() raises, so the process does not go on half-dead."""
        side = [
            asyncio.create_task(heartbeat(self.svc, self.worker_id, stop), name="graphyard-heartbeat"),
            asyncio.create_task(sweeper(self.svc, stop), name="graphyard-sweeper"),
            asyncio.create_task(scheduler(self.svc, stop), name="graphyard-cron-scheduler"),
        ]
        failure: list[BaseException] = []

        def supervise(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None and not stop.is_set():
                failure.append(task.exception())  # type: ignore[arg-type]
                stop.set()

        for task in side:
            task.add_done_callback(supervise)
        try:
            await self._claim_loop(stop)
        finally:
            stop.set()
            await asyncio.gather(*side, return_exceptions=True)
        if failure:
            raise RuntimeError(f"worker {self.worker_id} side task died") from failure[0]

    async def _claim_loop(self, stop: asyncio.Event) -> None:
        storage = self.svc.storage
        while not stop.is_set():
            if len(self._tasks) >= self.concurrency:
                self._slot_free.clear()
                await _first(stop.wait(), self._slot_free.wait())
                continue
            claim_started = time.time_ns()
            async with storage.transaction() as tx:
                run = await tx.claim_run(self.worker_id, time.time(), self.svc.settings.lease_seconds)
                next_at = None if run else await tx.next_available_at()
            if run is not None:
                if tracing.enabled():  # only claims that took a run: idle polls would be noise
                    attributes = {**tracing.run_attributes(run.log_fields()), "graphyard.worker_id": self.worker_id}
                    parent = tracing.run_context(run.kwargs["config"].get("configurable") or {})
                    claim = tracing.tracer.start_span(
                        "run claim", context=parent, start_time=claim_started, attributes=attributes
                    )
                    claim.end()
                task = asyncio.create_task(self._execute(run.run_id, run), name=f"run-{run.run_id}")
                self._tasks[task] = run.run_id
                metrics.set_worker_slots(self.concurrency, len(self._tasks))
                task.add_done_callback(self._done)
                continue
            timeout = MAX_IDLE_SECONDS if next_at is None else min(MAX_IDLE_SECONDS, max(0.0, next_at - time.time()))
            await _first(stop.wait(), storage.wait_for_work(timeout))

    async def _execute(self, run_id: str, run: Run) -> None:
        try:
            call = await execute(self.svc, run)
            if call is not None:
                # Delivery runs beside the worker's slots, so a slow receiver never holds up runs.
                hook = asyncio.create_task(deliver(call.url, call.body, run=run), name=f"webhook-{run_id}")
                self._webhooks.add(hook)
                hook.add_done_callback(self._webhooks.discard)
        except asyncio.CancelledError:
            # Shutdown mid-run: hand the run back so it resumes from its last checkpoint.
            with contextlib.suppress(Exception):
                async with self.svc.storage.transaction() as tx:
                    await tx.requeue_run(run_id, isoformat(now()))
            raise
        except Exception:
            self.log.exception("run crashed the executor", **run.log_fields())
            body = {"error": "InternalError", "message": "An internal error occurred"}
            try:
                await finish(self.svc, run, Outcome(RunStatus.ERROR, {"__error__": body}, error=body))
            except Exception:
                self.log.exception("finishing the run failed; marking it failed", **run.log_fields())
                await mark_failed(self.svc, run, body)
            await self.svc.broker.close_channel(run_channel(run_id))

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        metrics.set_worker_slots(self.concurrency, len(self._tasks))
        self._slot_free.set()

    async def drain(self, deadline: float) -> None:
        """Wait for running runs up to deadline seconds, then cancel (requeue) the rest."""
        tasks = list(self._tasks)
        if self._webhooks:
            await asyncio.wait(list(self._webhooks), timeout=deadline)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=deadline)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5.0)


async def _first(*aws: Awaitable[object]) -> None:
    """Wait until the first of these coroutines finishes; cancel the others."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
