"""The claim loop: take runnable runs as soon as they are due, up to N at once, and stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from graphyard import metrics, tracing
from graphyard.broker.errors import BrokerUnavailable
from graphyard.engine.attempts import Attempt
from graphyard.engine.execute import Outcome, execute, finish, mark_failed
from graphyard.engine.leases import heartbeat, sweeper
from graphyard.engine.scheduler import scheduler, thread_sweeper
from graphyard.engine.webhooks import deliver
from graphyard.logs import Outage, backoff, get_logger
from graphyard.records import Lease, Run, RunStatus, isoformat, now
from graphyard.services import protocol
from graphyard.services.channels import run_channel
from graphyard.services.context import Services
from graphyard.storage.errors import LeaseLost, StorageError, Unavailable

log = get_logger("graphyard.worker")

# Nothing waits longer than this without looking at the queue again (a safety net, not the wake-up path).
MAX_IDLE_SECONDS = 5.0


class Worker:
    """Claims runs from storage and executes each in its own task."""

    def __init__(self, svc: Services, *, concurrency: int, worker_id: str | None = None) -> None:
        self.svc = svc
        self.concurrency = max(1, concurrency)
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:12]}"
        self._tasks: dict[asyncio.Task[None], Attempt] = {}
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
        if one dies, the loop stops and run() raises, so the process does not go on half-dead. A dependency
        being away is not a death: every loop waits for it with backoff."""
        self.svc.broker.listen_for_cancels()
        side = [
            asyncio.create_task(
                heartbeat(self.svc, self.worker_id, stop, self._live_attempts, self._lose, self._hand_back_orphans),
                name="graphyard-heartbeat",
            ),
            asyncio.create_task(sweeper(self.svc, self.worker_id, stop), name="graphyard-sweeper"),
            asyncio.create_task(scheduler(self.svc, stop), name="graphyard-cron-scheduler"),
            asyncio.create_task(thread_sweeper(self.svc, stop), name="graphyard-thread-sweeper"),
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
        outage = Outage(self.log, "database")
        failures = 0
        # One task waits for stop for the loop's whole life; each wait below races it against one other
        # awaitable, instead of making (and cancelling) a task for stop at every wake-up (one per run).
        stopped = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                if len(self._tasks) >= self.concurrency:
                    self._slot_free.clear()
                    await _until(stopped, self._slot_free.wait())
                    continue
                claim_started = time.time_ns()
                sent = time.monotonic()
                try:
                    run, next_at = await storage.claim_next(
                        self.worker_id, time.time(), self.svc.settings.lease_seconds
                    )
                except Unavailable as exc:
                    outage.down(exc)
                    failures += 1
                    await _until(stopped, asyncio.sleep(backoff(failures)))
                    continue
                outage.up()
                failures = 0
                if run is not None:
                    assert run.lease is not None  # a claimed run is leased to us
                    attempt = Attempt.claimed(run.lease, sent, time.monotonic(), self.svc.settings.lease_seconds)
                    if tracing.enabled():  # only claims that took a run: idle polls would be noise
                        attributes = {**tracing.run_attributes(run.log_fields()), "graphyard.worker_id": self.worker_id}
                        parent = tracing.run_context(run.kwargs["config"].get("configurable") or {})
                        claim = tracing.tracer.start_span(
                            "run claim", context=parent, start_time=claim_started, attributes=attributes
                        )
                        claim.end()
                    task = asyncio.create_task(self._execute(run, attempt), name=f"run-{run.run_id}")
                    self._tasks[task] = attempt
                    metrics.set_worker_slots(self.concurrency, len(self._tasks))
                    task.add_done_callback(self._done)
                    if next_at is not None and next_at <= time.time():
                        continue  # another run is runnable now
                # Nothing (more) is runnable: sleep until a wake-up or the next run falls due. A run
                # committed after the claim looked wakes us (NOTIFY, or notify_work in this process);
                # one committed before it is in next_at, so no wake-up is lost by not claiming again.
                timeout = (
                    MAX_IDLE_SECONDS if next_at is None else min(MAX_IDLE_SECONDS, max(0.0, next_at - time.time()))
                )
                await _until(stopped, storage.wait_for_work(timeout))
        finally:
            stopped.cancel()

    def _live_attempts(self) -> list[Attempt]:
        return list(self._tasks.values())

    async def _hand_back_orphans(self, renewed: set[Lease]) -> None:
        """Leases this worker still holds in the database but no live attempt uses (an attempt stopped when
        it could not be sure of its lease): hand those runs back now rather than when the lease expires."""
        live = {a.lease for a in self._tasks.values() if not a.lost}
        for lease in renewed - live:
            orphan = Attempt(lease, time.monotonic(), time.monotonic() + 1.0)
            try:
                await self._hand_back(orphan, deadline=time.monotonic() + 2.0)
            except (LeaseLost, Unavailable, TimeoutError):
                continue  # gone meanwhile, or the database blinked: the next beat or the sweeper handles it

    def _lose(self, attempt: Attempt, why: str) -> None:
        """Stop an attempt at once: its lease is gone (or may be), so it must write nothing more."""
        attempt.lost = True
        self.log.warning(
            "stopping run: lease lost", run_id=attempt.lease.run_id, attempt=attempt.lease.attempt, why=why
        )
        for task, held in self._tasks.items():
            if held is attempt:
                task.cancel()

    async def _execute(self, run: Run, attempt: Attempt) -> None:
        run_id, lease = run.run_id, attempt.lease
        try:
            call = await execute(self.svc, run, attempt)
            attempt.settled = True
            if call is not None:
                # Delivery runs beside the worker's slots, so a slow receiver never holds up runs.
                hook = asyncio.create_task(deliver(call.url, call.body, run=run), name=f"webhook-{run_id}")
                self._webhooks.add(hook)
                hook.add_done_callback(self._webhooks.discard)
        except asyncio.CancelledError:
            if attempt.lost:
                return  # the run belongs to another attempt (or will, once its lease expires)
            # Shutdown mid-run: hand the run back so it resumes from its last checkpoint.
            with contextlib.suppress(StorageError):
                await self._hand_back(attempt, deadline=time.monotonic() + 2.0)
            raise
        except LeaseLost:
            attempt.lost = True
            self.log.warning("run taken over by another attempt; this one stops", run_id=run_id, attempt=lease.attempt)
        except (StorageError, BrokerUnavailable) as exc:
            await self._retry_later(run, attempt, exc)
        except Exception:
            self.log.exception("run crashed the executor", **run.log_fields())
            body = {"error": "InternalError", "message": "An internal error occurred"}
            try:
                await finish(self.svc, run, Outcome(RunStatus.ERROR, {"__error__": body}, error=body), lease)
            except LeaseLost:
                return
            except Exception:
                self.log.exception("finishing the run failed; marking it failed", **run.log_fields())
                await mark_failed(self.svc, run, body, lease)
            with contextlib.suppress(BrokerUnavailable):
                await self.svc.broker.close_channel(run_channel(run_id))
                await protocol.run_ended(self.svc, run, RunStatus.ERROR, error=body)

    async def _retry_later(self, run: Run, attempt: Attempt, exc: BaseException) -> None:
        """A dependency failed under this attempt: it ends, not the run. After a backoff the run goes back to
        the queue (and resumes from its last checkpoint), or ends `error` once its attempts are used up. While
        the database stays away we keep trying until the lease may have expired; the sweeper takes it from there."""
        lease = attempt.lease
        log = self.log.bind(run_id=run.run_id, attempt=lease.attempt)
        if lease.attempt >= self.svc.settings.max_attempts:
            log.error("attempt failed on a dependency; no attempts left", error=str(exc))
            body = {"error": "RetryLimitExceeded", "message": f"Run failed {lease.attempt} times: {exc}"}
            outcome = Outcome(RunStatus.ERROR, {"__error__": body}, error=body)
            await self._with_db(attempt, lambda: finish(self.svc, run, outcome, lease))
            return
        delay = backoff(lease.attempt, base=0.5, cap=10.0)
        log.warning("attempt failed on a dependency; the run will resume", error=str(exc), retry_in=round(delay, 2))
        await asyncio.sleep(min(delay, max(0.0, attempt.valid_until - time.monotonic())))
        await self._with_db(attempt, lambda: self._hand_back(attempt, deadline=None))

    async def _with_db(self, attempt: Attempt, write: Callable[[], Awaitable[object]]) -> None:
        """Retry a fenced write while the database is away, for as long as the attempt may still hold its lease."""
        failures = 0
        while True:
            try:
                await write()
                attempt.settled = True
                return
            except LeaseLost:
                attempt.lost = True
                return
            except Unavailable:
                failures += 1
                if time.monotonic() + 0.5 >= attempt.valid_until:
                    self.log.warning(
                        "cannot hand the run back: database unreachable; it resumes when its lease expires",
                        run_id=attempt.lease.run_id,
                    )
                    attempt.lost = True
                    return
                await asyncio.sleep(min(backoff(failures), max(0.0, attempt.valid_until - time.monotonic())))

    async def _hand_back(self, attempt: Attempt, *, deadline: float | None) -> None:
        """Return the run to the queue, if this attempt still holds it."""
        async with asyncio.timeout_at(None if deadline is None else _loop_time(deadline)):
            async with self.svc.storage.transaction() as tx:
                await tx.hold_lease(attempt.lease)
                await tx.requeue_run(attempt.lease.run_id, isoformat(now()))
        attempt.settled = True
        self.log.info("run handed back to the queue", run_id=attempt.lease.run_id, attempt=attempt.lease.attempt)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        metrics.set_worker_slots(self.concurrency, len(self._tasks))
        self._slot_free.set()

    def running_run_ids(self) -> list[str]:
        return [attempt.lease.run_id for attempt in self._tasks.values()]

    async def drain(self, deadline: float, *, urgent: asyncio.Event | None = None) -> None:
        """Wait for running runs up to deadline seconds (or until urgent is set), then cancel the rest:
        each hands its run back to the queue, to resume from its last checkpoint."""
        urgent = urgent or asyncio.Event()
        tasks = list(self._tasks)
        if self._webhooks:
            await _first(asyncio.wait(list(self._webhooks), timeout=deadline), urgent.wait())
        if not tasks:
            return
        await _first(asyncio.wait(tasks, timeout=deadline), urgent.wait())
        pending = [task for task in tasks if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            self.log.warning("handing unfinished runs back to the queue", run_ids=self.running_run_ids())
            await asyncio.wait(pending, timeout=5.0)


async def _first(*aws: Awaitable[object]) -> None:
    """Wait until the first of these coroutines finishes; cancel the others."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def _until(stopped: asyncio.Future[Any], aw: Awaitable[object]) -> None:
    """Wait for `aw` or for `stopped` (a long-lived future), whichever comes first; cancel `aw` if unfinished."""
    task = asyncio.ensure_future(aw)
    try:
        await asyncio.wait((task, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        task.cancel()


def _loop_time(monotonic_deadline: float) -> float:
    """A time.monotonic() deadline on the event loop's clock."""
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_deadline - time.monotonic())
