"""Records to query parameters and rows to records, shared by the adapters.

The backends differ only in how a JSON column travels: SQLite stores text (decode with a JSON
parser), PostgreSQL's jsonb arrives already decoded. Each adapter passes its own `decode` and `encode`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from graphyard.records import (
    Assistant,
    AssistantVersion,
    CancelAction,
    Cron,
    LeasedRun,
    QueueStats,
    Run,
    RunStatus,
    Thread,
    ThreadStatus,
)


class Row(Protocol):
    """A result row read by column name (sqlite3.Row, psycopg's dict rows)."""

    def __getitem__(self, key: str, /) -> Any: ...


Decode = Callable[[Any], Any]
Encode = Callable[[Any], str]


def _maybe(encode: Encode, value: Any) -> str | None:
    return None if value is None else encode(value)


def assistant(row: Row, decode: Decode) -> Assistant:
    return Assistant(
        assistant_id=row["assistant_id"],
        graph_id=row["graph_id"],
        config=decode(row["config"]),
        context=decode(row["context"]),
        metadata=decode(row["metadata"]),
        name=row["name"],
        description=row["description"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def version(row: Row, decode: Decode) -> AssistantVersion:
    return AssistantVersion(
        assistant_id=row["assistant_id"],
        graph_id=row["graph_id"],
        config=decode(row["config"]),
        context=decode(row["context"]),
        metadata=decode(row["metadata"]),
        name=row["name"],
        description=row["description"],
        version=row["version"],
        created_at=row["created_at"],
    )


def thread(row: Row, decode: Decode) -> Thread:
    return Thread(
        thread_id=row["thread_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        state_updated_at=row["state_updated_at"],
        metadata=decode(row["metadata"]),
        status=ThreadStatus(row["status"]),
        config=decode(row["config"]),
        values=decode(row["values"]),
        interrupts=decode(row["interrupts"]),
        error=decode(row["error"]),
    )


def run(row: Row, decode: Decode) -> Run:
    return Run(
        run_id=row["run_id"],
        thread_id=row["thread_id"],
        assistant_id=row["assistant_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        status=RunStatus(row["status"]),
        metadata=decode(row["metadata"]),
        kwargs=decode(row["kwargs"]),
        multitask_strategy=row["multitask_strategy"],
        available_at=row["available_at"],
        attempt=row["attempt"],
        cancel_action=CancelAction(row["cancel_action"]) if row["cancel_action"] else None,
        output=decode(row["output"]),
        temporary=bool(row["temporary"]),
        lease_owner=row["lease_owner"],
    )


def cron(row: Row, decode: Decode) -> Cron:
    return Cron(
        cron_id=row["cron_id"],
        assistant_id=row["assistant_id"],
        thread_id=row["thread_id"],
        user_id=row["user_id"],
        schedule=row["schedule"],
        timezone=row["timezone"],
        end_time=row["end_time"],
        payload=decode(row["payload"]),
        metadata=decode(row["metadata"]),
        on_run_completed=row["on_run_completed"],
        enabled=bool(row["enabled"]),
        next_run_date=row["next_run_date"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def assistant_params(a: Assistant, encode: Encode) -> dict[str, Any]:
    return {
        "assistant_id": a.assistant_id,
        "graph_id": a.graph_id,
        "config": encode(a.config),
        "context": encode(a.context),
        "metadata": encode(a.metadata),
        "name": a.name,
        "description": a.description,
        "version": a.version,
        "created_at": a.created_at,
        "updated_at": a.updated_at,
    }


def thread_params(t: Thread, encode: Encode) -> dict[str, Any]:
    return {
        "thread_id": t.thread_id,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
        "state_updated_at": t.state_updated_at,
        "metadata": encode(t.metadata),
        "status": t.status.value,
        "config": encode(t.config),
        "values": _maybe(encode, t.values),
        "interrupts": encode(t.interrupts),
        "error": _maybe(encode, t.error),
    }


def run_params(r: Run, encode: Encode) -> dict[str, Any]:
    return {
        "run_id": r.run_id,
        "thread_id": r.thread_id,
        "assistant_id": r.assistant_id,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "status": r.status.value,
        "metadata": encode(r.metadata),
        "kwargs": encode(r.kwargs),
        "multitask_strategy": str(r.multitask_strategy),
        "available_at": r.available_at,
        "attempt": r.attempt,
        "temporary": r.temporary,
    }


def cron_params(c: Cron, encode: Encode) -> dict[str, Any]:
    return {
        "cron_id": c.cron_id,
        "assistant_id": c.assistant_id,
        "thread_id": c.thread_id,
        "user_id": c.user_id,
        "schedule": c.schedule,
        "timezone": c.timezone,
        "end_time": c.end_time,
        "payload": encode(c.payload),
        "metadata": encode(c.metadata),
        "on_run_completed": c.on_run_completed,
        "enabled": c.enabled,
        "next_run_date": c.next_run_date,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    }


def leased_run(row: Row, decode: Decode) -> LeasedRun:
    return LeasedRun(run=run(row, decode), lease_owner=row["lease_owner"], lease_expires_at=row["lease_expires_at"])


def queue_stats(by_status: Sequence[Row], counts: Row, by_worker: Sequence[Row]) -> QueueStats:
    return QueueStats(
        runs_by_status={r["status"]: int(r["n"]) for r in by_status},
        pending_due=int(counts["due"] or 0),
        pending_delayed=int(counts["delayed"] or 0),
        oldest_due_at=counts["oldest_due_at"],
        running_by_worker={r["worker"]: int(r["n"]) for r in by_worker},
        expired_leases=int(counts["expired"] or 0),
    )
