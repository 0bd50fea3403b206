"""The thread streaming protocol (`client.threads.stream`): a thread's numbered events, the root
lifecycle every run leaves on them, and the rules of the commands (start or resume a run, answer
interrupts, the agent tree, where a subscription starts).

Events live on the broker's numbered channel `protocol:<thread_id>`: the entry's id is `<seq>-0`,
its name is the method and the namespace joined by tabs (so filters need not parse the data), its
data the JSON `params` (`namespace`, `timestamp`, `data`). The wire event is put together around
those bytes when it is sent.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from graphyard.broker.ports import StreamEvent, Subscription
from graphyard.records import CancelAction, Json, Run, RunStatus, ThreadStatus
from graphyard.serde import dumps, loads
from graphyard.services.channels import protocol_channel
from graphyard.services.context import Services

# Stream modes a run started through the protocol produces; its classic run stream carries values.
RUN_STREAM_MODES = ["values"]
CHANNELS = frozenset({"values", "updates", "checkpoints", "messages", "tools", "custom", "lifecycle", "input", "tasks"})
NO_INTERRUPTED_RUN = "No interrupted run is bound to this thread."


class CommandError(Exception):
    """A command the protocol answers with an error reply (HTTP 200, `"type": "error"`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- publishing ----------------------------------------------------------------------------------


def event_name(method: str, namespace: Sequence[str]) -> str:
    return "\t".join([method, *namespace])


async def publish(
    svc: Services, thread_id: str, method: str, namespace: Sequence[str], data: Any, *, mark: bool = False
) -> int:
    """Append one event to the thread's protocol stream; returns its seq."""
    params = {"namespace": list(namespace), "timestamp": int(time.time() * 1000), "data": data}
    channel = protocol_channel(thread_id)
    return await svc.broker.append_numbered(channel, event_name(method, namespace), dumps(params), mark=mark)


def _graph_name(run: Run) -> str:
    configurable = (run.kwargs.get("config") or {}).get("configurable") or {}
    return str(configurable.get("graph_id") or run.assistant_id)


async def run_started(svc: Services, run: Run) -> None:
    """The root `running` event; it marks where a subscriber without `since` starts reading."""
    data = {"event": "running", "graph_name": _graph_name(run), "run_id": run.run_id}
    await publish(svc, run.thread_id, "lifecycle", [], data, mark=True)


def interrupt_list(interrupts: Any) -> list[Json]:
    """The thread's interrupts (`{task_id: [interrupt, ...]}`) as one list."""
    if not isinstance(interrupts, dict):
        return []
    return [i for items in interrupts.values() if isinstance(items, list) for i in items if isinstance(i, dict)]


async def run_ended(
    svc: Services,
    run: Run,
    status: RunStatus,
    *,
    interrupts: Any = None,
    waiting: bool = False,
    error: Json | None = None,
) -> None:
    """Root events after the run's outcome is committed: one `input.requested` per pending interrupt,
    then `interrupted` (stopped at interrupts, or `waiting` before a node), `completed` or `failed`
    (a cancelled run is `failed`, so clients waiting for its end stop waiting)."""
    if run.temporary:
        return
    base = {"graph_name": _graph_name(run), "run_id": run.run_id}
    pending = interrupt_list(interrupts) if status is RunStatus.SUCCESS else []
    for item in pending:
        data = {"interrupt_id": item.get("id"), "payload": item.get("value"), "value": item.get("value")}
        await publish(svc, run.thread_id, "input.requested", [], data)
    if pending or (waiting and status is RunStatus.SUCCESS):
        await publish(svc, run.thread_id, "lifecycle", [], {"event": "interrupted", **base})
    elif status is RunStatus.SUCCESS:
        await publish(svc, run.thread_id, "lifecycle", [], {"event": "completed", **base})
    else:
        message = (error or {}).get("message") or f"Run {run.run_id} ended {status.value}"
        await publish(svc, run.thread_id, "lifecycle", [], {"event": "failed", "error": message, **base})


async def runs_stopped(svc: Services, runs: Sequence[Run], action: CancelAction) -> None:
    """Pending runs cancelled before they started still end the thread's stream."""
    for run in runs:
        error = {"message": f"Run {run.run_id} was cancelled before it started ({action.value})"}
        await run_ended(svc, run, RunStatus.INTERRUPTED, error=error)


async def applied_through(svc: Services, thread_id: str) -> int:
    head, _ = await svc.broker.numbered_head(protocol_channel(thread_id))
    return head


# --- subscribing -----------------------------------------------------------------------------------


async def subscribe(svc: Services, thread_id: str, since: int | None) -> Subscription:
    """Events after `since`; without it, from the start of the thread's latest run (so a client that
    connects just after starting a run misses none of it), or live when no run left events."""
    channel = protocol_channel(thread_id)
    head, mark = await svc.broker.numbered_head(channel)
    if since is None:
        after = mark - 1 if mark else head
    elif since > head:
        after = 0  # the stream expired and its numbering began again: everything kept is new
    else:
        after = since
    return await svc.broker.subscribe(channel, last_event_id=f"{after}-0")


@dataclass(frozen=True, slots=True)
class EventFilter:
    """A subscription's `channels`, `namespaces` (prefixes) and `depth` (levels below a prefix)."""

    channels: frozenset[str]
    namespaces: tuple[tuple[str, ...], ...] | None = None
    depth: int | None = None

    def matches(self, item: StreamEvent) -> bool:
        method, *namespace = item.event.split("\t")
        channel = _channel_of(method)
        if channel == "custom":
            if "custom" not in self.channels:
                name = _custom_name(item.data)
                if name is None or f"custom:{name}" not in self.channels:
                    return False
        elif channel not in self.channels:
            return False
        return self._namespace_ok(namespace)

    def _namespace_ok(self, namespace: list[str]) -> bool:
        if self.namespaces is None:
            return True
        for prefix in self.namespaces:
            if _has_prefix(namespace, prefix) and (self.depth is None or len(namespace) - len(prefix) <= self.depth):
                return True
        return False


def _channel_of(method: str) -> str:
    return "input" if method == "input.requested" else method


def _custom_name(data: bytes) -> str | None:
    payload = loads(data).get("data")
    name = payload.get("name") if isinstance(payload, dict) else None
    return name if isinstance(name, str) and name else None


def _has_prefix(namespace: list[str], prefix: tuple[str, ...]) -> bool:
    """A prefix segment without a task id (`child`) matches any invocation of that node (`child:<id>`)."""
    if len(prefix) > len(namespace):
        return False
    for want, got in zip(prefix, namespace, strict=False):
        if want != got and (":" in want or got.split(":", 1)[0] != want):
            return False
    return True


def parse_filter(params: Json) -> tuple[EventFilter, int | None]:
    """A subscription's filter and `since` from its parameters; CommandError(invalid_argument) if bad."""
    channels = params.get("channels")
    if not isinstance(channels, list) or not channels or not all(isinstance(c, str) for c in channels):
        raise CommandError("invalid_argument", "'channels' must be a non-empty list of channel names")
    unknown = [c for c in channels if c not in CHANNELS and not (c.startswith("custom:") and len(c) > 7)]
    if unknown:
        raise CommandError("invalid_argument", f"Unknown channel(s) {unknown}; use {sorted(CHANNELS)} or custom:<name>")
    namespaces = params.get("namespaces")
    if namespaces is not None and not (
        isinstance(namespaces, list)
        and all(isinstance(ns, list) and all(isinstance(seg, str) for seg in ns) for ns in namespaces)
    ):
        raise CommandError("invalid_argument", "'namespaces' must be a list of namespaces (lists of strings)")
    depth = params.get("depth")
    if depth is not None and (not isinstance(depth, int) or isinstance(depth, bool) or depth < 0):
        raise CommandError("invalid_argument", "'depth' must be a non-negative integer")
    since = params.get("since")
    if since is not None and (not isinstance(since, int) or isinstance(since, bool) or since < 0):
        raise CommandError("invalid_argument", "'since' must be a non-negative integer (a seq)")
    found = EventFilter(
        frozenset(channels),
        tuple(tuple(ns) for ns in namespaces) if namespaces is not None else None,
        depth,
    )
    return found, since


def wire_event(item: StreamEvent) -> tuple[int, str, bytes]:
    """(seq, method, the event's JSON) of a stored protocol event."""
    seq = int(item.id.partition("-")[0])
    method = item.event.split("\t", 1)[0]
    body = b'{"type":"event","event_id":"%d","seq":%d,"method":%s,"params":%s}' % (seq, seq, dumps(method), item.data)
    return seq, method, body


# --- commands ------------------------------------------------------------------------------------


def _object(params: Json, key: str) -> Json | None:
    value = params.get(key)
    if value is not None and not isinstance(value, dict):
        raise CommandError("invalid_argument", f"'{key}' must be an object")
    return value


def start_payload(params: Json, thread_status: ThreadStatus | None) -> Json:
    """The run payload for `run.start`: on a thread waiting at an interrupt, `input` is the resume value."""
    assistant_id = params.get("assistant_id")
    if not isinstance(assistant_id, str) or not assistant_id:
        raise CommandError("invalid_argument", "'assistant_id' (a graph id or an assistant UUID) is required")
    payload: Json = {
        "assistant_id": assistant_id,
        "config": _object(params, "config") or {},
        "metadata": _object(params, "metadata") or {},
        "if_not_exists": "create",
        "stream_mode": RUN_STREAM_MODES,
        "stream_subgraphs": True,
        "stream_resumable": True,
        "thread_protocol": True,
    }
    context = _object(params, "context")
    if context:
        payload["context"] = context
    strategy = params.get("multitask_strategy")
    if strategy is not None:
        if strategy not in ("reject", "interrupt", "rollback", "enqueue"):
            raise CommandError(
                "invalid_argument", "'multitask_strategy' must be reject, interrupt, rollback or enqueue"
            )
        payload["multitask_strategy"] = strategy
    if thread_status is ThreadStatus.INTERRUPTED:
        payload["command"] = {"resume": params.get("input")}
    else:
        payload["input"] = params.get("input")
    return payload


def respond_payload(params: Json, status: ThreadStatus, interrupts: Any, metadata: Json) -> Json:
    """The resume run for `input.respond` (one response, or `responses`), checked against the thread's
    pending interrupts."""
    pending = {str(i.get("id")) for i in interrupt_list(interrupts)}
    if status is not ThreadStatus.INTERRUPTED or not pending:
        raise CommandError("no_such_run", NO_INTERRUPTED_RUN)
    raw = params.get("responses") if "responses" in params else [params]
    if not isinstance(raw, list) or not raw or not all(isinstance(r, dict) for r in raw):
        raise CommandError("invalid_argument", "'responses' must be a non-empty list of {interrupt_id, response}")
    resume: Json = {}
    for entry in raw:
        interrupt_id = entry.get("interrupt_id")
        if not isinstance(interrupt_id, str) or not interrupt_id:
            raise CommandError("invalid_argument", "each response needs its 'interrupt_id'")
        if interrupt_id not in pending:
            raise CommandError("no_such_interrupt", f"Interrupt {interrupt_id} is not pending on this thread")
        resume[interrupt_id] = entry.get("response")
    command: Json = {"resume": resume}
    for key in ("update", "goto"):
        if params.get(key) is not None:
            command[key] = params[key]
    assistant_id = metadata.get("assistant_id") or metadata.get("graph_id")
    if not isinstance(assistant_id, str):
        raise CommandError("no_such_run", NO_INTERRUPTED_RUN)
    return {
        "assistant_id": assistant_id,
        "command": command,
        "config": _object(params, "config") or {},
        "metadata": _object(params, "metadata") or {},
        "stream_mode": RUN_STREAM_MODES,
        "stream_subgraphs": True,
        "stream_resumable": True,
        "thread_protocol": True,
    }


_TREE_STATUS = {
    ThreadStatus.BUSY: "running",
    ThreadStatus.INTERRUPTED: "interrupted",
    ThreadStatus.ERROR: "failed",
    ThreadStatus.IDLE: "completed",
}


def agent_tree(status: ThreadStatus, metadata: Json) -> Json:
    """The root agent of the thread and its status (subgraph children are discovered from events)."""
    graph_name = str(metadata.get("graph_id") or metadata.get("assistant_id") or "")
    return {"tree": {"namespace": [], "status": _TREE_STATUS[status], "graph_name": graph_name, "children": []}}
