"""Runs: creation under the thread lock (multitask, if_not_exists, after_seconds), cancel, join, delete."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from graphyard import tracing
from graphyard.broker.ports import Subscription
from graphyard.errors import (
    InvalidRequest,
    NothingToCancel,
    RunNotFound,
    ThreadBusy,
    ThreadNotFound,
    ThreadOrAssistantNotFound,
    Unprocessable,
)
from graphyard.logs import get_logger
from graphyard.records import (
    RUN_TERMINAL,
    Assistant,
    CancelAction,
    IfNotExists,
    Json,
    MultitaskStrategy,
    Run,
    RunStatus,
    ThreadStatus,
    isoformat,
    now,
    uuid7,
)
from graphyard.serde import dumps, loads
from graphyard.services import assistants, priority, protocol, thread_ttl
from graphyard.services.channels import END_EVENT, end_payload, run_channel, send_cancels
from graphyard.services.context import Services
from graphyard.services.run_kwargs import RESERVED_METADATA, build_kwargs, strip_reserved
from graphyard.services.state import require_checkpoint
from graphyard.services.threads import new_thread
from graphyard.services.webhooks import validate_webhook
from graphyard.storage.errors import Unavailable
from graphyard.storage.ports import Session

log = get_logger("graphyard.runs")

# How long a create with interrupt/rollback waits for the superseded runs to stop.
SUPERSEDE_DEADLINE = 30.0


def new_run_id() -> str:
    return uuid7()


async def _resolve_assistant(svc: Services, assistant_id: str, auth: Json | None = None) -> Assistant:
    try:
        uuid.UUID(assistant_id)
    except ValueError:
        if assistant_id not in svc.graphs:
            raise Unprocessable(
                f"Assistant '{assistant_id}' is neither a UUID nor a graph. Expected one of: {svc.graphs.graph_ids()}"
            ) from None
    assistant = await assistants.resolve(svc, assistant_id, auth)
    if assistant is None:
        raise ThreadOrAssistantNotFound()
    return assistant


async def create(
    svc: Services,
    payload: Json,
    *,
    thread_id: str | None,
    run_id: str | None = None,
    user_id: str = "",
    auth: Json | None = None,
    assistant_auth: Json | None = None,
    auth_user: Json | None = None,
    caller: Mapping[str, Any] | None = None,
    cron_id: str | None = None,
    headers: Json | None = None,
) -> Run:
    """Create a run in one transaction that holds the thread: create or find the thread, apply the
    multitask strategy to its in-flight runs, insert the pending run. Then wake the workers.
    `auth` hides existing threads it does not match (as missing), `assistant_auth` likewise assistants.
    `caller` (the authenticated user's fields) and `cron_id` are what a priority handler is told."""
    if payload.get("webhook"):
        validate_webhook(payload["webhook"], svc.settings.webhooks)
    for key in ("feedback_keys", "langsmith_tracer"):
        # These need LangSmith; refusing them beats accepting and silently ignoring them.
        if payload.get(key):
            raise Unprocessable(f"'{key}' needs LangSmith, which graphyard does not integrate with; remove it")
    assistant = await _resolve_assistant(svc, str(payload["assistant_id"]), assistant_auth)
    stateless = thread_id is None
    command = payload.get("command") or None
    if stateless and command and command.get("resume") is not None:
        raise InvalidRequest("You must provide a thread_id when resuming.")
    run_id = run_id or uuid7()
    thread_id = thread_id or uuid7()
    temporary = stateless and payload.get("on_completion", "delete") != "keep"
    kwargs = build_kwargs(
        payload,
        assistant,
        run_id=run_id,
        thread_id=thread_id,
        temporary=temporary,
        user_id=user_id,
        auth_user=auth_user,
        headers=headers,
    )
    configurable = kwargs["config"]["configurable"]
    await require_checkpoint(
        svc, thread_id, {k: configurable.get(k) for k in ("checkpoint_id", "checkpoint_ns") if configurable.get(k)}
    )
    strategy = MultitaskStrategy(payload.get("multitask_strategy") or "enqueue")
    if_not_exists = IfNotExists(payload.get("if_not_exists") or "reject")
    after = float(payload.get("after_seconds") or 0)
    prevent_insert = bool(payload.get("prevent_insert_if_inflight")) or strategy is MultitaskStrategy.REJECT
    moment = now()
    start = moment + timedelta(seconds=max(after, 0))
    stamp = isoformat(moment)
    request_metadata = strip_reserved(payload.get("metadata"), RESERVED_METADATA)
    config_metadata = kwargs["config"]["metadata"]
    ids = {"graph_id": assistant.graph_id, "assistant_id": assistant.assistant_id}

    settings = await _priority_settings(
        svc,
        thread_id=thread_id,
        stateless=stateless,
        assistant=assistant,
        run_metadata=request_metadata,
        caller=caller if caller is not None else auth_user,
        cron_id=cron_id,
    )
    superseded: list[Run] = []
    stopped: list[Run] = []
    action = CancelAction.INTERRUPT
    async with svc.storage.transaction() as tx:
        # Only the thread's metadata matters here; its values (possibly a large state) stay unread.
        thread = await tx.get_thread(thread_id, values=False)
        if thread is not None and auth is not None and not stateless:
            if await tx.get_thread(thread_id, auth, values=False) is None:
                raise ThreadOrAssistantNotFound()
        inflight: list[Run] = []
        if thread is None:
            if not stateless and if_not_exists is IfNotExists.REJECT:
                raise ThreadOrAssistantNotFound()
            thread = new_thread(thread_id, {**ids, **config_metadata, **request_metadata}, status=ThreadStatus.BUSY)
            await tx.insert_thread(thread)
            if not stateless:
                await thread_ttl.apply(tx, thread_id, thread_ttl.for_new_thread(svc, None))
        elif thread.status is ThreadStatus.BUSY:
            # A thread with a run pending or running is busy (every write of a thread's status keeps that
            # true), so only a busy thread has in-flight runs to look for: the look walks the thread's
            # whole run history, which grows with every run.
            inflight = await tx.inflight_runs(thread_id)
        if inflight and prevent_insert:
            if strategy is MultitaskStrategy.REJECT:
                raise ThreadBusy()
            return inflight[0]
        await priority.store(tx, thread_id, settings)
        metadata = {**assistant.metadata, **thread.metadata}
        if stateless:
            metadata.pop("graph_id", None)
        else:
            metadata.update(ids)
        metadata.update(config_metadata)
        metadata.update(request_metadata)
        metadata["assistant_id"] = assistant.assistant_id
        kwargs["config"]["metadata"] = {**metadata, **kwargs["config"]["metadata"]}
        kwargs["config"]["configurable"].update(tracing.trace_carrier())
        run = Run(
            run_id=run_id,
            thread_id=thread_id,
            assistant_id=assistant.assistant_id,
            created_at=isoformat(start),
            updated_at=stamp,
            status=RunStatus.PENDING,
            metadata=metadata,
            kwargs=kwargs,
            multitask_strategy=strategy,
            available_at=start.timestamp(),
            temporary=temporary,
        )
        await tx.insert_run(run)
        if not stateless:
            merged = {**thread.metadata, **ids}
            if merged != thread.metadata:
                await tx.update_thread_metadata(thread_id, merged, stamp)
        await tx.set_thread_status(thread_id, ThreadStatus.BUSY, stamp)
        if strategy in (MultitaskStrategy.INTERRUPT, MultitaskStrategy.ROLLBACK):
            action = CancelAction(strategy.value)
            for other in inflight:
                (superseded if await _cancel_in_tx(tx, other, action) else stopped).append(other)
    svc.storage.notify_work()
    log.info("run created", **run.log_fields(), multitask_strategy=strategy.value)
    await _end_streams(svc, stopped, action)
    if superseded:
        await _signal_and_wait(svc, superseded, action)
    return run


async def _cancel_in_tx(tx: Session, run: Run, action: CancelAction) -> bool:
    """Cancel inside the creating transaction: a pending run stops at once; a running one is asked
    to stop (True: the caller signals its worker after commit)."""
    stamp = isoformat(now())
    # A worker may claim the run between our read and this write: then it is running, and asked.
    if run.status is RunStatus.PENDING and await tx.stop_pending_run(run.run_id, action, stamp):
        return False
    await tx.request_cancel(run.run_id, action, stamp)
    return True


async def _signal(svc: Services, runs: Sequence[Run], action: CancelAction) -> None:
    await send_cancels(svc.broker, [run.run_id for run in runs], action.value)


async def _signal_and_wait(svc: Services, runs: Sequence[Run], action: CancelAction) -> None:
    await _signal(svc, runs, action)
    deadline = time.monotonic() + SUPERSEDE_DEADLINE
    for run in runs:
        await result(svc, run.run_id, deadline=deadline)


async def result(
    svc: Services, run_id: str, sub: Subscription | None = None, *, deadline: float | None = None
) -> tuple[bool, Any]:
    """(True, output) once the run is terminal, or (False, None) if it was deleted (rolled back,
    or a temporary run whose thread is gone before we looked) or the monotonic `deadline` passed.
    Pass a subscription made before the run was created (or one that replays its stream from the start)
    to be sure to see the end event of a run that deletes itself; storage is then first read only if no
    end event came. Storage is re-read every few seconds: the stream may end in another process."""
    listened = sub is not None
    while True:
        if sub is None:
            sub = await svc.broker.subscribe(run_channel(run_id))
        try:
            run: Run | None = None
            if not listened:
                async with svc.storage.read() as db:
                    run = await db.get_run(run_id)
                if run is not None and run.status in RUN_TERMINAL:
                    return True, output_of(run)
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False, None
            try:
                async with asyncio.timeout(5.0 if remaining is None else min(5.0, remaining)):
                    async for event in sub:
                        if event.event == END_EVENT:
                            output = loads(event.data)["output"]
                            return (output is not None), output
            except TimeoutError:
                pass
            if run is None and not listened:
                return False, None
            listened = False  # no end event on that subscription: storage says what became of the run
        finally:
            await sub.aclose()
            sub = None


async def settled(svc: Services, run_id: str) -> bool:
    """Whether the run has ended (or is gone), so no worker will publish to its stream again. False while
    the database cannot say."""
    try:
        async with svc.storage.read() as db:
            run = await db.get_run(run_id)
    except Unavailable:
        return False
    return run is None or run.status in RUN_TERMINAL


async def ended_output(svc: Services, thread_id: str, run_id: str) -> tuple[bool, Any]:
    """The output a finished run left on its stream: how a join that comes after a temporary run
    deleted itself (with its thread) still gets the result, for as long as streams are kept."""
    sub = await svc.broker.subscribe(run_channel(run_id), last_event_id="-")
    try:
        async with asyncio.timeout(1.0):
            async for event in sub:
                if event.event == END_EVENT:
                    ended = loads(event.data)
                    if ended.get("thread_id") == thread_id and ended.get("output") is not None:
                        return True, ended["output"]
                    return False, None
    except TimeoutError:
        pass
    finally:
        await sub.aclose()
    return False, None


async def get(svc: Services, thread_id: str, run_id: str, auth: Json | None = None) -> Run:
    """The run on that thread; with `auth`, a thread the filter hides has no runs to find."""
    async with svc.storage.read() as db:
        if auth is not None and await db.get_thread(thread_id, auth) is None:
            raise RunNotFound()
        run = await db.get_run(run_id, thread_id)
    if run is None:
        raise RunNotFound()
    return run


async def thread_of(svc: Services, run_id: str) -> str | None:
    """The thread a run belongs to, or None if there is no such run. For protocols that name a run
    by its id alone (an A2A task); authorize on the thread, then read the run with `get`."""
    async with svc.storage.read() as db:
        run = await db.get_run(run_id)
    return None if run is None else run.thread_id


async def list_runs(
    svc: Services,
    thread_id: str,
    *,
    status: str | None,
    limit: int,
    offset: int,
    metadata: Json | None = None,
    auth: Json | None = None,
) -> list[Run]:
    async with svc.storage.read() as db:
        if await db.get_thread(thread_id, auth) is None:
            raise ThreadNotFound(f"Thread with ID {thread_id} not found")
        return await db.list_runs(thread_id, status=status, limit=limit, offset=offset, metadata=metadata)


@dataclass(frozen=True, slots=True)
class Ended:
    """The output a run left on its stream after it was deleted with its temporary thread."""

    output: Any


async def find_joinable(svc: Services, thread_id: str, run_id: str, auth: Json | None = None) -> Run | Ended:
    """The run a join waits for. Without auth, a temporary run that already finished and deleted
    itself (with its thread) still answers, from its kept end event; otherwise RunNotFound."""
    try:
        return await get(svc, thread_id, run_id, auth)
    except RunNotFound:
        if auth is None:
            found, output = await ended_output(svc, thread_id, run_id)
            if found:
                return Ended(output)
        raise


def output_of(run: Run) -> Any:
    return run.output if run.output is not None else {}


async def cancel(
    svc: Services,
    *,
    thread_id: str | None,
    run_ids: Sequence[str] | None,
    status: str | None,
    action: CancelAction,
    wait: bool,
    auth: Json | None = None,
) -> None:
    """Cancel pending runs at once and signal running ones; with wait, return once they have stopped.
    `auth` limits it to runs on threads the filter matches."""
    async with svc.storage.transaction() as tx:
        targets = await tx.cancellable_runs(thread_id=thread_id, run_ids=run_ids, status=status)
        if auth is not None:
            visible: dict[str, bool] = {}
            for run in targets:
                if run.thread_id not in visible:
                    visible[run.thread_id] = await tx.get_thread(run.thread_id, auth) is not None
            targets = [run for run in targets if visible[run.thread_id]]
        if not targets:
            hidden = auth is not None and thread_id is not None and await tx.get_thread(thread_id, auth) is None
            if run_ids and thread_id is not None and not hidden:
                for run_id in run_ids:
                    if await tx.get_run(run_id, thread_id) is not None:
                        raise NothingToCancel(
                            "No matching runs to cancel. Please verify the thread ID and run IDs are correct, "
                            "and the runs haven't been deleted or completed."
                        )
            raise NothingToCancel()
        running: list[Run] = []
        stopped: list[Run] = []
        stamp = isoformat(now())
        for run in targets:
            (running if await _cancel_in_tx(tx, run, action) else stopped).append(run)
        for tid in {run.thread_id for run in stopped}:
            await _settle_idle_thread(tx, tid, stamp)
    await _end_streams(svc, stopped, action)
    await (_signal_and_wait if wait else _signal)(svc, running, action)


async def _end_streams(svc: Services, runs: Sequence[Run], action: CancelAction) -> None:
    """Pending runs stopped before they started: end their streams as a worker would have."""
    for run in runs:
        output = None if action is CancelAction.ROLLBACK else output_of(run)
        payload = dumps(end_payload(run.thread_id, output))
        await svc.broker.publish(run_channel(run.run_id), END_EVENT, payload, keep=True)
        await svc.broker.close_channel(run_channel(run.run_id))
    await protocol.runs_stopped(svc, runs, action)


async def _settle_idle_thread(tx: Session, thread_id: str, stamp: str) -> None:
    """After pending runs were cancelled, a thread with nothing in flight is no longer busy."""
    if await tx.inflight_runs(thread_id):
        return
    thread = await tx.get_thread(thread_id)
    if thread is not None and thread.status is ThreadStatus.BUSY:
        status = ThreadStatus.INTERRUPTED if thread.interrupts else ThreadStatus.IDLE
        await tx.set_thread_status(thread_id, status, stamp)


async def delete(svc: Services, thread_id: str, run_id: str, auth: Json | None = None) -> None:
    """Delete a run; an in-flight run is rolled back first, so its thread is never left busy."""
    run = await get(svc, thread_id, run_id, auth)
    if run.is_inflight:
        await cancel(svc, thread_id=thread_id, run_ids=[run_id], status=None, action=CancelAction.ROLLBACK, wait=True)
    async with svc.storage.transaction() as tx:
        await tx.delete_run(run_id)
        await tx.delete_run_checkpoints(thread_id, run_id)


async def _priority_settings(
    svc: Services,
    *,
    thread_id: str,
    stateless: bool,
    assistant: Assistant,
    run_metadata: Json,
    caller: Mapping[str, Any] | None,
    cron_id: str | None,
) -> Json | None:
    """The priority settings to give the thread, when the project has a priority handler and the thread
    has none yet (asked before the transaction: the handler is user code)."""
    if svc.plugins.priority is None:
        return None
    async with svc.storage.read() as db:
        existing = await db.get_thread(thread_id)
        if existing is not None and await db.thread_priority(thread_id) is not None:
            return None
    return await priority.decide(
        svc,
        thread_id=None if stateless else thread_id,
        thread_metadata=existing.metadata if existing is not None else {},
        assistant=assistant,
        run_metadata=run_metadata,
        user=caller,
        cron_id=cron_id,
    )
