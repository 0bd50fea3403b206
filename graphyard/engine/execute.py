"""Run one claimed run: build the graph, stream its events to the broker, and record how it ended."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, cast

from langchain_core.messages import BaseMessageChunk
from langchain_core.runnables import RunnableConfig
from langgraph.channels import (
    AnyValue,
    BinaryOperatorAggregate,
    EphemeralValue,
    LastValue,
    LastValueAfterFinish,
    NamedBarrierValue,
    NamedBarrierValueAfterFinish,
    Topic,
)
from langgraph.pregel import Pregel
from langgraph.types import Command, Send
from opentelemetry.trace import Span, Status, StatusCode

from graphyard import metrics, tracing
from graphyard.broker.errors import BrokerUnavailable
from graphyard.engine import webhooks
from graphyard.engine.attempts import Attempt
from graphyard.engine.outbox import Outbox
from graphyard.engine.protocol_events import ProtocolModes, Translator
from graphyard.graphs import GraphAccess
from graphyard.logs import get_logger
from graphyard.records import (
    AuthUser,
    CancelAction,
    Json,
    Lease,
    Run,
    RunStatus,
    ThreadSnapshot,
    ThreadStatus,
    isoformat,
    now,
)
from graphyard.serde import dumps, to_jsonable
from graphyard.services import encryption, protocol
from graphyard.services import state as st
from graphyard.services.channels import END_EVENT, end_payload, run_channel, thread_channel
from graphyard.services.context import Services
from graphyard.storage.errors import LeaseLost, StorageError

log = get_logger("graphyard.engine")

# How long a finished run waits for its last events to reach an unreachable broker before freeing its slot.
STREAM_DRAIN_SECONDS = 30.0
# How long a cancelled attempt may take to stop before a repeated cancel signal cancels it again.
RECANCEL_AFTER_SECONDS = 1.0

# Stream modes a client may ask for, and the LangGraph mode that produces each.
_LANGGRAPH_MODE = {
    "values": "values",
    "updates": "updates",
    "custom": "custom",
    "debug": "debug",
    "tasks": "tasks",
    "checkpoints": "checkpoints",
    "messages-tuple": "messages",
    "messages": "messages",
}

# LangGraph's channel types whose checkpoint holds exactly what the channel holds (not UntrackedValue, never
# checkpointed; not a user's own type): with only these among a graph's values, the values of a
# `checkpoints` chunk are what reading that checkpoint back would give.
_CHECKPOINTED_CHANNELS: frozenset[type] = frozenset(
    {
        AnyValue,
        BinaryOperatorAggregate,
        EphemeralValue,
        LastValue,
        LastValueAfterFinish,
        NamedBarrierValue,
        NamedBarrierValueAfterFinish,
        Topic,
    }
)


class RunCancelled(Exception):
    """The run was asked to stop (interrupt or rollback)."""

    def __init__(self, action: CancelAction) -> None:
        self.action = action
        super().__init__(action.value)


@dataclass
class Outcome:
    status: RunStatus
    output: Any
    error: Json | None = None
    values: Any = None
    interrupts: list[Any] = field(default_factory=list)
    snapshot: ThreadSnapshot | None = None


def _command(raw: Json) -> Command[Any]:
    goto = raw.get("goto")
    if isinstance(goto, dict):
        goto = Send(goto["node"], goto.get("input"))
    elif isinstance(goto, list):
        goto = [Send(g["node"], g.get("input")) if isinstance(g, dict) else g for g in goto]
    update = raw.get("update")
    if isinstance(update, list):
        update = [tuple(pair) for pair in update]
    return Command(resume=raw.get("resume"), goto=goto or (), update=update)


def _context(svc: Services, graph_id: str, kwargs: Json) -> Any:
    """The graph's runtime context: configurable and context keys its context schema knows."""
    keys = svc.graphs.context_keys(graph_id)
    context = kwargs.get("context") or {}
    if keys is None:
        return context or None
    merged = {k: v for k, v in (kwargs["config"].get("configurable") or {}).items() if k in keys}
    merged.update({k: v for k, v in context.items() if k in keys})
    return merged


def is_infrastructure(exc: BaseException) -> bool:
    """An error of graphyard's own storage, checkpointer or broker (a dependency away, a lease lost):
    it ends the attempt, never the run. Anything else a graph raises is the graph's own error."""
    return isinstance(exc, StorageError | BrokerUnavailable)


def run_user(run: Run) -> AuthUser | None:
    """The user who created the run under custom auth (None without it), as its graph's runtime shows it."""
    stored = (run.kwargs["config"].get("configurable") or {}).get("langgraph_auth_user")
    return AuthUser.from_json(stored) if isinstance(stored, dict) else None


def reading(run: Run) -> GraphAccess:
    """How the engine builds a run's graph to read its thread's state (after it ended or was cancelled)."""
    return GraphAccess("threads.read", run_user(run))


def error_body(exc: BaseException) -> Json:
    return {"error": type(exc).__name__, "message": str(exc)}


class Execution:
    """The state of one run while it executes in this process."""

    def __init__(self, svc: Services, run: Run, lease: Lease | None) -> None:
        self.svc = svc
        self.run = run
        self.lease = lease
        self.outbox = Outbox(svc.broker, run_id=run.run_id)
        self.channel = run_channel(run.run_id)
        self.thread_channel = thread_channel(run.thread_id)
        self.keep = bool(run.kwargs.get("resumable"))
        # Runs started through the thread protocol stream LangGraph's v3 events to the thread's
        # protocol stream; every run leaves its root lifecycle there.
        self.protocol = bool(run.kwargs.get("thread_protocol")) and not run.temporary
        self.cancel_action: CancelAction | None = None
        self.message_seen: set[str] = set()
        self.message_parts: dict[str, BaseMessageChunk] = {}
        self.log = log.bind(**run.log_fields())
        self.span: Span | None = None
        self.protocol_down = False

    async def to_thread_stream(self, publish: Coroutine[Any, Any, object]) -> None:
        """Append to the thread's protocol stream, best effort: a broker outage must not decide the run's
        fate, so once an append fails this attempt drops its remaining protocol events (one warning) instead
        of waiting out a connect timeout per event. Classic run streams go through the outbox and are kept."""
        if self.protocol_down:
            publish.close()
            return
        try:
            await publish
        except BrokerUnavailable as exc:
            self.protocol_down = True
            self.log.warning("thread protocol events dropped for this attempt: broker unreachable", error=str(exc))

    async def publish(self, event: str, data: Any) -> None:
        """Encode once (anything a graph streams: `dumps` reduces it as `to_jsonable` would, so callers pass
        it as it is rather than encoding it twice); the bytes go to the run's stream and to its thread's."""
        encoded = dumps(data)
        await self.outbox.publish(self.channel, event, encoded, keep=self.keep)
        # Thread streams always carry ids, so they keep events for Last-Event-ID; a temporary
        # thread is deleted with its run, so nothing could resume its stream later.
        await self.outbox.publish(self.thread_channel, event, encoded, keep=not self.run.temporary)

    async def stream(self) -> Outcome:
        """Execute the graph, publishing the requested modes; returns how it ended (never raises for graph errors)."""
        run, svc = self.run, self.svc
        kwargs = run.kwargs
        config = cast(RunnableConfig, dict(kwargs["config"]))
        graph_id = config["configurable"]["graph_id"]
        requested = list(kwargs.get("stream_mode") or ["values"])
        modes = {_LANGGRAPH_MODE[m] for m in requested if m in _LANGGRAPH_MODE} | {"values", "updates"}
        if not run.temporary and not self.protocol and "events" not in requested:
            # The last checkpoint LangGraph wrote comes out of the stream, so the thread's state after the run
            # need not be read back from the checkpointer (see _final_snapshot).
            modes.add("checkpoints")
        subgraphs = bool(kwargs.get("subgraphs"))
        if self.span is not None:
            # The run's config comes from JSON, so it carries no callbacks of its own to keep.
            config["callbacks"] = [tracing.NodeSpans(self.span)]
        checkpointer = None
        if not run.temporary:
            # Checkpoint writes of this attempt land only while it holds the run's lease.
            storage = svc.storage
            checkpointer = storage.fenced_checkpointer(self.lease) if self.lease else storage.checkpointer
        graph_input: Any = kwargs.get("input")
        if kwargs.get("command"):
            graph_input = _command(kwargs["command"])
        if run.attempt > 1 and checkpointer is not None and await self._has_own_checkpoint():
            graph_input = None  # a retried run resumes from the checkpoint it last wrote
        await self.publish("metadata", {"run_id": run.run_id, "attempt": run.attempt})
        last_values: Any = None
        last_checkpoint: Any = None
        interrupted = False
        interrupts: list[Any] = []
        try:
            access = GraphAccess("threads.create_run", run_user(run), run_context=dict(kwargs.get("context") or {}))
            async with svc.graphs.graph(
                graph_id, config, access=access, checkpointer=checkpointer, store=svc.storage.store
            ) as graph:
                source = (
                    self._astream_protocol(graph, graph_input, config, graph_id)
                    if self.protocol
                    else self._astream(graph, graph_input, config, graph_id, modes, subgraphs)
                )
                async for ns, mode, chunk in source:
                    if not ns:
                        if mode == "values":
                            last_values = chunk
                        elif mode == "checkpoints":
                            last_checkpoint = chunk
                        elif mode == "updates" and isinstance(chunk, dict) and "__interrupt__" in chunk:
                            interrupted = True
                            interrupts.extend(chunk["__interrupt__"])
                    await self._forward(requested, ns, mode, chunk)
                snapshot = None
                if checkpointer is not None:
                    streamed = None if interrupted else self._final_snapshot(graph, config, last_checkpoint)
                    snapshot = streamed or await self._snapshot(graph)
        except asyncio.CancelledError:
            raise
        except RunCancelled:
            raise
        except Exception as exc:  # any graph error becomes run status `error` (logged with its traceback)
            if is_infrastructure(exc):
                raise  # our dependency failed, not the graph: the worker retries the attempt
            self.log.error("run failed: the graph raised", error=repr(exc), exc_info=exc)
            body = error_body(exc)
            await self.publish("error", body)
            return Outcome(RunStatus.ERROR, {"__error__": body}, error=body)
        values = to_jsonable(last_values) if last_values is not None else None
        output = values if values is not None else (snapshot.values if snapshot else None)
        if output is None:
            output = {}
        if interrupts and isinstance(output, dict) and "__interrupt__" not in output:
            output = {**output, "__interrupt__": to_jsonable(interrupts)}
        return Outcome(RunStatus.SUCCESS, output, values=values, snapshot=snapshot)

    async def _astream(
        self, graph: Any, graph_input: Any, config: RunnableConfig, graph_id: str, modes: set[str], subgraphs: bool
    ) -> Any:
        kwargs = self.run.kwargs
        options: Json = {
            "context": _context(self.svc, graph_id, kwargs),
            "stream_mode": sorted(modes),
            "subgraphs": True,
            "interrupt_before": kwargs.get("interrupt_before"),
            "interrupt_after": kwargs.get("interrupt_after"),
            "durability": kwargs.get("durability") or "async",
        }
        if self.run.temporary:
            # Nothing is checkpointed; LangGraph warns on every run when told a durability anyway.
            del options["durability"]
        if "events" in (kwargs.get("stream_mode") or ()):
            # astream_events carries the stream-mode chunks as the root graph's on_chain_stream events.
            async for event in graph.astream_events(graph_input, config, version="v2", **options):
                if event["event"] == "on_chain_stream" and not event.get("parent_ids"):
                    ns, mode, chunk = event["data"]["chunk"]
                    if not ns or subgraphs:
                        yield ns, mode, chunk
                    continue
                await self.publish("events", event)
            return
        async for ns, mode, chunk in graph.astream(graph_input, config, **options):
            if ns and not subgraphs:
                continue
            yield ns, mode, chunk

    async def _astream_protocol(self, graph: Any, graph_input: Any, config: RunnableConfig, graph_id: str) -> Any:
        """LangGraph's v3 event log: every event goes to the thread's protocol stream, and the plain
        stream-mode parts also come out as (namespace, mode, chunk) for the run's own stream."""
        kwargs = self.run.kwargs
        run_stream = await graph.astream_events(
            graph_input,
            config,
            version="v3",
            transformers=[ProtocolModes],
            context=_context(self.svc, graph_id, kwargs),
            interrupt_before=kwargs.get("interrupt_before"),
            interrupt_after=kwargs.get("interrupt_after"),
            durability=kwargs.get("durability") or "async",
        )
        translator = Translator()
        async for event in run_stream:
            for method, namespace, data in translator.translate(event):
                await self.to_thread_stream(protocol.publish(self.svc, self.run.thread_id, method, namespace, data))
            method = event["method"]
            if method in _LANGGRAPH_MODE and method != "messages":
                yield tuple(event["params"]["namespace"]), method, event["params"]["data"]

    async def _forward(self, requested: list[str], ns: tuple[str, ...], mode: str, chunk: Any) -> None:
        suffix = "".join(f"|{part}" for part in ns)
        for wanted in requested:
            if _LANGGRAPH_MODE.get(wanted) != mode:
                continue
            if wanted == "messages-tuple":
                await self.publish(f"messages{suffix}", list(chunk))
            elif wanted == "messages":
                await self._forward_message(chunk)
            else:
                await self.publish(f"{wanted}{suffix}", chunk)

    async def _forward_message(self, chunk: Any) -> None:
        """The `messages` protocol: metadata once per message, then the accumulated message so far
        (`partial`) while tokens stream, or the whole message (`complete`) when a node returned it."""
        message, metadata = chunk
        message_id = getattr(message, "id", None) or ""
        if message_id not in self.message_seen:
            self.message_seen.add(message_id)
            await self.publish("messages/metadata", {message_id: {"metadata": metadata}})
        if isinstance(message, BaseMessageChunk):
            previous = self.message_parts.get(message_id)
            merged = message if previous is None else previous + message
            self.message_parts[message_id] = merged
            await self.publish("messages/partial", [merged])
        else:
            await self.publish("messages/complete", [message])

    async def _has_own_checkpoint(self) -> bool:
        config = st.thread_config(self.run.thread_id)
        async for _ in self.svc.storage.checkpointer.alist(config, filter={"run_id": self.run.run_id}, limit=1):
            return True
        return False

    async def _snapshot(self, graph: Any) -> ThreadSnapshot:
        snap = await graph.aget_state(st.thread_config(self.run.thread_id))
        return st.thread_snapshot(snap)

    def _final_snapshot(self, graph: Any, config: RunnableConfig, checkpoint: Any) -> ThreadSnapshot | None:
        """The thread's state after a run that ran to its end, from the last checkpoint LangGraph streamed
        (the one it wrote last), or None when only reading the checkpointer can tell: the run was
        interrupted or stops before a node (breakpoints), it started from an older checkpoint (the thread's
        latest may be another one), or a state channel's checkpoint differs from its value."""
        if self.protocol or not isinstance(checkpoint, dict) or checkpoint.get("next"):
            return None
        if not isinstance(graph, Pregel):
            return None
        kwargs = self.run.kwargs
        if kwargs.get("interrupt_before") or kwargs.get("interrupt_after"):
            return None
        if graph.interrupt_before_nodes or graph.interrupt_after_nodes:
            return None
        configurable = config.get("configurable") or {}
        if configurable.get("checkpoint_id") or configurable.get("checkpoint_map"):
            return None
        keys = graph.stream_channels_asis
        for key in (keys,) if isinstance(keys, str) else keys:
            if type(graph.channels.get(key)) not in _CHECKPOINTED_CHANNELS:
                return None
        values = to_jsonable(checkpoint.get("values"))
        return ThreadSnapshot(values=values, interrupts={}, error=None, has_next=False)


async def thread_snapshot(svc: Services, run: Run) -> ThreadSnapshot | None:
    """The thread's state from its latest checkpoint (None for runs without a checkpointer)."""
    graph_id = run.kwargs["config"]["configurable"]["graph_id"]
    if run.temporary or graph_id not in svc.graphs:
        return None  # no checkpointer, or langgraph.json no longer has the graph
    async with svc.graphs.graph(
        graph_id,
        cast(RunnableConfig, run.kwargs["config"]),
        access=reading(run),
        checkpointer=svc.storage.checkpointer,
        store=svc.storage.store,
    ) as graph:
        snap = await graph.aget_state(st.thread_config(run.thread_id))
    return st.thread_snapshot(snap)


async def finish(svc: Services, run: Run, outcome: Outcome, lease: Lease | None = None) -> ThreadSnapshot | None:
    """Write the run's final status and its thread's status and values in one transaction; with a lease,
    only while it is held (LeaseLost otherwise, and nothing is written). Returns the thread snapshot it
    recorded (None when there was nothing to record)."""
    snapshot = outcome.snapshot or await thread_snapshot(svc, run)
    stamp = isoformat(now())
    async with svc.storage.transaction() as tx:
        if lease is not None:
            await tx.hold_lease(lease)  # LeaseLost if the run is gone: holding the lease proves it exists
        elif await tx.get_run(run.run_id) is None:
            return None  # deleted while running (thread or run deleted): nothing left to record
        await tx.finish_run(run.run_id, outcome.status, outcome.output, stamp)
        if run.temporary:
            await tx.delete_thread(run.thread_id)
            return None
        others = [r for r in await tx.inflight_runs(run.thread_id) if r.run_id != run.run_id]
        if snapshot is None:
            snapshot = ThreadSnapshot(values=outcome.values, interrupts={}, error=None, has_next=False)
        failed = outcome.status in (RunStatus.ERROR, RunStatus.TIMEOUT)
        status = st.settled_status(snapshot, others_inflight=bool(others), failed=failed)
        await tx.set_thread_state(
            run.thread_id,
            status=status,
            values=snapshot.values,
            interrupts=snapshot.interrupts,
            error=outcome.error,
            updated_at=stamp,
        )
    if others:
        # The next run on this thread is runnable now (other processes hear the storage's own wake-up).
        svc.storage.notify_work()
    return snapshot


async def mark_failed(svc: Services, run: Run, body: Json, lease: Lease | None = None) -> None:
    """Record a run as failed without touching its graph: the last resort when finishing it failed,
    so that no run is left `running` and no thread `busy`."""
    stamp = isoformat(now())
    async with svc.storage.transaction() as tx:
        if lease is not None:
            await tx.hold_lease(lease)
        if await tx.get_run(run.run_id) is None:
            return
        await tx.finish_run(run.run_id, RunStatus.ERROR, {"__error__": body}, stamp)
        others = [r for r in await tx.inflight_runs(run.thread_id) if r.run_id != run.run_id]
        await tx.set_thread_status(run.thread_id, ThreadStatus.BUSY if others else ThreadStatus.ERROR, stamp)
    if others:
        svc.storage.notify_work()


async def rollback(svc: Services, run: Run, lease: Lease | None = None) -> None:
    """Delete the run and the checkpoints it wrote, then re-derive the thread from what remains."""
    async with svc.storage.transaction() as tx:
        if lease is not None:
            await tx.hold_lease(lease)
        await tx.delete_run(run.run_id)
        if not run.temporary:
            await tx.delete_run_checkpoints(run.thread_id, run.run_id)
        else:
            await tx.delete_thread(run.thread_id)
    if run.temporary:
        return
    snapshot = await thread_snapshot(svc, run)
    stamp = isoformat(now())
    async with svc.storage.transaction() as tx:
        if await tx.get_thread(run.thread_id) is None or snapshot is None:
            return
        others = await tx.inflight_runs(run.thread_id)
        status = st.settled_status(snapshot, others_inflight=bool(others), failed=False)
        values = snapshot.values if snapshot.values else None
        await tx.set_thread_state(
            run.thread_id,
            status=status,
            values=values,
            interrupts=snapshot.interrupts,
            error=None,
            updated_at=stamp,
        )
    svc.storage.notify_work()


@dataclass(frozen=True)
class WebhookCall:
    url: str
    body: Json


async def execute(svc: Services, run: Run, attempt: Attempt | None = None) -> WebhookCall | None:
    """Run to completion, honouring cancel signals and the run timeout; closes the event stream unless the
    attempt ended for a reason of our own (shutdown, a dependency away, the lease lost: the run goes on in
    another attempt, on the same stream). Every write is fenced by the attempt's lease. Returns the webhook
    to call, if the run has one, for the caller to deliver outside the run's slot. The attempt is marked
    settled as soon as its outcome is committed, so the lease keeper does not mistake the released lease
    for a takeover."""
    execution = Execution(svc, run, attempt.lease if attempt is not None else None)
    configurable = (run.kwargs.get("config") or {}).get("configurable") or {}
    parent = tracing.run_context(configurable) if tracing.enabled() else None
    # Checkpoints, thread values and the output are encrypted under the context the run was created with.
    with (
        encryption.context_scope(run.encryption_context),
        tracing.span("run execute", tracing.run_attributes(run.log_fields()), parent) as span,
    ):
        execution.span = span
        return await _execute(svc, run, execution, attempt)


async def _finish(svc: Services, run: Run, outcome: Outcome, lease: Lease | None) -> ThreadSnapshot | None:
    with tracing.span("run finish", {"graphyard.run_id": run.run_id, "graphyard.status": outcome.status.value}):
        return await finish(svc, run, outcome, lease)


async def _execute(svc: Services, run: Run, execution: Execution, attempt: Attempt | None) -> WebhookCall | None:
    lease = execution.lease

    def settled() -> None:
        if attempt is not None:
            attempt.settled = True

    started_at = isoformat(now())
    started = time.monotonic()
    waited_ms = max(0, round((time.time() - run.available_at) * 1000))
    if run.attempt <= 1:
        metrics.RUN_WAIT.observe(waited_ms)
    execution.log.info("run started", run_wait_time_ms=waited_ms)
    status = RunStatus.SUCCESS
    error: Json | None = None
    values: Any = None
    task = asyncio.current_task()
    assert task is not None

    cancels_sent: list[float] = []  # monotonic times this attempt cancelled its own task

    def on_cancel(action: str) -> None:
        # A cancel is signalled again on every lease heartbeat until the run ends; the first action wins.
        # A repeat that finds the attempt still running means the cancellation was swallowed on its way
        # up (seen inside LangGraph's stream on Python 3.11), so the task is cancelled again; not sooner
        # than a second after the last time, so as not to cut short cleanup a cancellation already runs.
        if execution.cancel_action is None:
            execution.cancel_action = (
                CancelAction(action) if action in ("interrupt", "rollback") else CancelAction.INTERRUPT
            )
        elif task.done() or not cancels_sent or time.monotonic() - cancels_sent[-1] < RECANCEL_AFTER_SECONDS:
            return
        else:
            execution.log.warning("run still running after its cancel; cancelling again")
        cancels_sent.append(time.monotonic())
        task.cancel()

    unregister = svc.broker.on_cancel(run.run_id, on_cancel)
    try:
        if run.cancel_action is not None:
            # Cancelled while it was being claimed: the signal may have been sent before we listened.
            execution.cancel_action = run.cancel_action
            raise asyncio.CancelledError
        if not run.temporary:
            await execution.to_thread_stream(protocol.run_started(svc, run))
        try:
            async with asyncio.timeout(svc.settings.run_timeout_seconds):
                outcome = await execution.stream()
        except TimeoutError:
            body = {"error": "TimeoutError", "message": f"Run exceeded {svc.settings.run_timeout_seconds}s"}
            await execution.publish("error", body)
            outcome = Outcome(RunStatus.TIMEOUT, {"__error__": body}, error=body)
        unregister()
        recorded = await _finish(svc, run, outcome, lease)
        settled()
        final: Any = outcome.output
        status, error, values = outcome.status, outcome.error, outcome.values
        await execution.to_thread_stream(
            protocol.run_ended(
                svc,
                run,
                status,
                interrupts=recorded.interrupts if recorded else None,
                waiting=bool(recorded and recorded.has_next),
                error=error,
            )
        )
    except asyncio.CancelledError:
        unregister()
        action = execution.cancel_action
        if action is None:
            execution.log.info("run handed back", run_exec_ms=round((time.monotonic() - started) * 1000))
            raise  # shutdown (the worker requeues the run) or the lease was lost (nothing to write)
        # The cancel consumed our cancellations; uncancel so the bookkeeping below can await.
        for _ in cancels_sent:
            if task.uncancel() == 0:
                break
        execution.log.info("run cancelled", action=action.value)
        if action is CancelAction.ROLLBACK:
            await rollback(svc, run, lease)
            settled()
            final = None
        else:
            snapshot = await thread_snapshot(svc, run)
            final = snapshot.values if snapshot and snapshot.values is not None else {}
            await _finish(svc, run, Outcome(RunStatus.INTERRUPTED, final, values=final), lease)
            settled()
            status, values = RunStatus.INTERRUPTED, final
        cancelled = {"message": f"Run {run.run_id} was cancelled ({action.value})"}
        await execution.to_thread_stream(protocol.run_ended(svc, run, RunStatus.INTERRUPTED, error=cancelled))
    except BaseException as exc:
        if isinstance(exc, LeaseLost):
            execution.outbox.abandon()  # the stream belongs to the attempt that took over
        elif not is_infrastructure(exc):
            await execution.outbox.close_channel(execution.channel)
        raise
    label = "deleted" if final is None and execution.cancel_action is CancelAction.ROLLBACK else status.value
    exec_ms = round((time.monotonic() - started) * 1000)
    metrics.RUN_EXECUTION.labels(status=label).observe(exec_ms)
    metrics.RUNS_FINISHED.labels(status=label).inc()
    execution.log.info("run finished", status=label, run_exec_ms=exec_ms)
    if execution.span is not None:
        execution.span.set_attribute("graphyard.status", label)
        if status in (RunStatus.ERROR, RunStatus.TIMEOUT):
            execution.span.set_status(Status(StatusCode.ERROR, label))
    outbox = execution.outbox
    # The thread's stream hears first: a client that deletes the thread once the run's stream ends must
    # find nothing published on the thread's channel after that (it would hold the channel for the TTL).
    await outbox.publish(
        execution.thread_channel,
        "metadata",
        dumps({"status": "run_done", "run_id": run.run_id}),
        keep=not run.temporary,
    )
    await outbox.publish(execution.channel, END_EVENT, dumps(end_payload(run.thread_id, final)), keep=True)
    await outbox.close_channel(execution.channel)
    # The outcome is committed; what is left is delivery, bounded so a broker outage frees the slot.
    await outbox.drain(STREAM_DRAIN_SECONDS)
    url = run.kwargs.get("webhook")
    if not url or final is None or not svc.settings.send_webhooks:
        return None
    if values is None and not run.temporary:
        async with svc.storage.read() as db:
            thread = await db.get_thread(run.thread_id)
        values = thread.values if thread else None
    return WebhookCall(url, webhooks.payload(run, status.value, values, error, started_at, isoformat(now())))
