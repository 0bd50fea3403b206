"""The storage port: what services and the engine may ask of a database, whatever the backend."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore, IndexConfig, TTLConfig

from graphyard.records import (
    Assistant,
    AssistantVersion,
    CancelAction,
    Cron,
    Json,
    Lease,
    LeasedRun,
    QueueStats,
    Run,
    RunStatus,
    Thread,
    ThreadStatus,
)

# Filters are plain JSON: `metadata` filters use containment (PostgreSQL `@>` semantics: a list
# filter matches a list that holds all of its items); `auth` filters use the langgraph_sdk.Auth
# filter language ({"k": v}, {"k": {"$eq": v}}, {"k": {"$contains": v}}, {"$or": [...]}, {"$and": [...]}).


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """How to build LangGraph's store: semantic `index` (its `embed` already resolved to a function or
    Embeddings object) and item `ttl`, both as LangGraph's own store takes them."""

    index: IndexConfig | None = None
    ttl: TTLConfig | None = None


class CheckpointMetadataCodec(Protocol):
    """How a saver stores checkpoint metadata (langgraph.json `encryption`): `encode` turns the metadata
    LangGraph would store (with the config's keys merged in) into what is stored, `decode` reverses it,
    `encode_filter` turns a list() metadata filter into one that matches what is stored. Savers that
    take one (the `metadata_codec` attribute) apply it in their async methods."""

    async def encode(self, metadata: Json) -> Json: ...

    async def decode(self, metadata: Json) -> Json: ...

    async def encode_filter(self, filter: Json | None) -> Json | None: ...


class Session(Protocol):
    """Queries on one connection: inside a write transaction, or on a read snapshot."""

    # --- assistants ---------------------------------------------------------------------------
    async def insert_assistant(self, assistant: Assistant) -> None:
        """Insert an assistant and its first version row; UniqueViolation if the id exists."""

    async def get_assistant(self, assistant_id: str, auth: Json | None = None) -> Assistant | None:
        """The assistant, or None when missing or hidden by the auth filter."""

    async def update_assistant(self, assistant: Assistant, *, new_version: bool) -> None:
        """Overwrite the assistant row; with new_version also record it as a version row."""

    async def delete_assistant(self, assistant_id: str) -> bool:
        """Delete the assistant and its versions; False when it did not exist."""

    async def search_assistants(
        self,
        *,
        graph_id: str | None,
        metadata: Json | None,
        name: str | None,
        auth: Json | None,
        limit: int,
        offset: int,
        sort_by: str,
        sort_order: str,
    ) -> list[Assistant]:
        """A page of assistants matching every given filter, in the given order."""

    async def count_assistants(
        self, *, graph_id: str | None, metadata: Json | None, name: str | None, auth: Json | None
    ) -> int:
        """How many assistants match."""

    async def assistant_versions(
        self, assistant_id: str, *, metadata: Json | None, limit: int, offset: int
    ) -> list[AssistantVersion]:
        """Versions of an assistant, newest first."""

    async def assistant_version(self, assistant_id: str, version: int) -> AssistantVersion | None:
        """One stored version."""

    # --- threads ------------------------------------------------------------------------------
    async def insert_thread(self, thread: Thread) -> None:
        """Insert a thread; UniqueViolation if the id exists."""

    async def get_thread(
        self, thread_id: str, auth: Json | None = None, *, values: bool = True, encoded_values: bool = False
    ) -> Thread | None:
        """The thread, or None when missing or hidden by the auth filter; with `values=False` its `values`
        are None (not read: a state read takes them from the checkpoint). With `encoded_values` they may
        come as their stored JSON (an orjson.Fragment), for a caller that only encodes them again."""

    async def update_thread_metadata(self, thread_id: str, metadata: Json, updated_at: str) -> None:
        """Replace a thread's metadata."""

    async def set_thread_state(
        self,
        thread_id: str,
        *,
        status: ThreadStatus,
        values: Any,
        interrupts: Json,
        error: Json | None,
        updated_at: str,
    ) -> None:
        """Record a thread's status and the state its latest checkpoint holds."""

    async def set_thread_status(self, thread_id: str, status: ThreadStatus, updated_at: str) -> None:
        """Change only a thread's status."""

    async def delete_thread(self, thread_id: str) -> bool:
        """Delete a thread and its runs; False when it did not exist."""

    async def search_threads(
        self,
        *,
        ids: Sequence[str] | None,
        metadata: Json | None,
        values: Json | None,
        status: str | None,
        auth: Json | None,
        limit: int,
        offset: int,
        sort_by: str,
        sort_order: str,
    ) -> list[Thread]:
        """A page of threads matching every given filter."""

    async def count_threads(
        self, *, metadata: Json | None, values: Json | None, status: str | None, auth: Json | None
    ) -> int:
        """How many threads match."""

    # --- thread TTL and priority ---------------------------------------------------------------
    async def set_thread_ttl(
        self, thread_id: str, *, strategy: str | None, minutes: float | None, expires_at: float | None
    ) -> None:
        """Set a thread's TTL: its strategy (delete, keep_latest), length and expiry time (epoch seconds);
        all None removes it."""

    async def thread_ttl(self, thread_id: str) -> Json | None:
        """{"strategy", "ttl_minutes", "expires_at" (epoch seconds)}, or None when the thread has no TTL."""

    async def expired_threads(self, now: float, limit: int) -> list[Json]:
        """Up to `limit` threads to sweep, as {"thread_id", "strategy", "ttl_minutes"}: expired by `now`, or
        temporary threads a stateless run left behind (strategy None); never one with a pending or running
        run. On PostgreSQL they are locked until the transaction ends (other sweepers skip them)."""

    async def claim_sweep(self, name: str, now: float, next_at: float) -> bool:
        """Take the periodic sweep `name` when it is due at `now`, moving it on to `next_at`, so that one
        process runs each sweep; False when it is not due or another process took it."""

    async def thread_priority(self, thread_id: str) -> Json | None:
        """{"priority", "fairness_group"} assigned to the thread, or None when none was assigned yet."""

    async def set_thread_priority(self, thread_id: str, priority: int, fairness_group: str) -> None:
        """Record a thread's priority settings; runs enqueued afterwards on it take that priority."""

    # --- runs ---------------------------------------------------------------------------------
    async def insert_run(self, run: Run) -> None:
        """Insert a pending run (its own queue entry)."""

    async def get_run(self, run_id: str, thread_id: str | None = None) -> Run | None:
        """The run, optionally only if it belongs to that thread."""

    async def list_runs(
        self, thread_id: str, *, status: str | None, limit: int, offset: int, metadata: Json | None = None
    ) -> list[Run]:
        """A thread's runs, newest first, optionally only those whose metadata contains `metadata`."""

    async def inflight_runs(self, thread_id: str) -> list[Run]:
        """The thread's pending and running runs, oldest first."""

    async def delete_run(self, run_id: str) -> bool:
        """Delete a run row; False when it did not exist."""

    async def claim_run(self, worker_id: str, now: float, lease_seconds: float) -> Run | None:
        """Mark the most urgent runnable run running and leased to worker_id: pending, available_at <= now,
        and no other run running on its thread; lowest priority first, then oldest. None when nothing is
        runnable."""

    async def next_available_at(self) -> float | None:
        """The earliest available_at among pending runs, to sleep until. Runs waiting behind a running
        run on their thread do not count: that run's finish wakes the workers instead."""

    async def finish_run(self, run_id: str, status: RunStatus, output: Any, updated_at: str) -> None:
        """Record a run's terminal status and its join output, and release its lease."""

    async def stop_pending_run(self, run_id: str, action: CancelAction, updated_at: str) -> bool:
        """Stop a run that has not started: interrupted, or deleted for a rollback. False when it is no
        longer pending (a worker claimed it since it was read): its worker must be asked instead."""

    async def request_cancel(self, run_id: str, action: CancelAction, updated_at: str) -> None:
        """Record that a running run must stop, with the action to take."""

    async def requeue_run(self, run_id: str, updated_at: str) -> None:
        """Return a running run to the queue (pending), keeping its attempt count."""

    async def hold_lease(self, lease: Lease) -> None:
        """Check that `lease` is still the run's current lease (running, same owner, same attempt) and hold
        it until this transaction ends: a takeover (requeue, transfer) waits for our commit. LeaseLost
        otherwise. Every write a worker makes about a run it executes goes after this call, in the same
        transaction, so it lands only while the worker still owns that attempt."""

    async def transfer_lease(self, lease: Lease, owner: str, expires_at: float) -> Lease | None:
        """Take a running run's lease from its current holder (same attempt): the old holder's writes are
        refused from now on. None when `lease` is no longer current."""

    async def runs_leased_by_others(self, now: float) -> list[Run]:
        """Running runs whose lease has expired, held until this transaction ends (another sweeper skips
        them, and a late renewal waits and then finds them requeued)."""

    async def end_stalled_sessions(self, seconds: float) -> int:
        """End other database sessions stuck for `seconds` inside a pipelined transaction that touched runs,
        waiting for a client that went silent (frozen or cut off); how many. The server counts such a
        session as active, so its idle-in-transaction timeout never fires, and the run rows it locked
        would stay out of every sweep. Always 0 where one process owns the database (SQLite)."""

    async def running_runs(self) -> list[Run]:
        """Every running run (for recovery when this process is the only one on the database)."""

    async def renew_leases(self, worker_id: str, expires_at: float) -> list[Lease]:
        """Extend every lease worker_id holds; the leases it still holds (a run missing from them was
        taken over, and its attempt must stop)."""

    async def cancel_requests(self, worker_id: str) -> list[tuple[str, CancelAction]]:
        """Runs leased by worker_id that were asked to stop, with the requested action."""

    async def delete_run_checkpoints(self, thread_id: str, run_id: str) -> None:
        """Delete the checkpoints (and their pending writes) that a run wrote, for rollback."""

    async def cancellable_runs(
        self, *, thread_id: str | None, run_ids: Sequence[str] | None, status: str | None
    ) -> list[Run]:
        """Pending/running runs selected by thread and ids, or by status (pending, running, all)."""

    # --- operators ----------------------------------------------------------------------------
    async def queue_stats(self, now: float) -> QueueStats:
        """Runs by status; pending runs due by `now` and delayed past it; the available_at of the oldest
        due run; running runs per lease owner; running runs whose lease expired before `now`."""

    async def leased_runs(
        self, *, status: str | None, thread_id: str | None, created_before: str | None, limit: int
    ) -> list[LeasedRun]:
        """Runs of any thread with their leases, oldest first, filtered by status, thread, and
        created_at strictly before `created_before`."""

    async def leased_run(self, run_id: str) -> LeasedRun | None:
        """One run with its lease, or None when missing."""

    # --- crons --------------------------------------------------------------------------------
    async def insert_cron(self, cron: Cron) -> None:
        """Insert a cron; UniqueViolation if the id exists. Its thread and assistant must exist."""

    async def get_cron(self, cron_id: str, auth: Json | None = None) -> Cron | None:
        """The cron, or None when missing or hidden by the auth filter (matched on its metadata)."""

    async def update_cron(self, cron: Cron) -> None:
        """Overwrite a cron's schedule, timezone, end_time, payload, metadata, on_run_completed,
        enabled, next_run_date and updated_at (its ids, user and created_at never change)."""

    async def delete_cron(self, cron_id: str, auth: Json | None = None) -> bool:
        """Delete a cron and its fires; False when it did not exist or the auth filter hides it.
        Deleting its thread or its assistant deletes it too."""

    async def search_crons(
        self,
        *,
        assistant_id: str | None,
        thread_id: str | None,
        enabled: bool | None,
        metadata: Json | None,
        auth: Json | None,
        limit: int,
        offset: int,
        sort_by: str,
        sort_order: str,
    ) -> list[Cron]:
        """A page of crons matching every given filter, in the given order (default created_at)."""

    async def count_crons(
        self, *, assistant_id: str | None, thread_id: str | None, metadata: Json | None, auth: Json | None
    ) -> int:
        """How many crons match."""

    async def due_crons(self, now: str, limit: int) -> list[Cron]:
        """Enabled crons with next_run_date <= now and no end_time or end_time >= now, earliest first."""

    async def claim_cron_fire(self, cron_id: str, scheduled_at: str, next_run_date: str | None, fired_at: str) -> bool:
        """Claim the occurrence of a cron due at scheduled_at and move its next_run_date on, atomically
        with the caller's transaction. False when it is not this caller's to fire: another process
        fired it (the unique (cron_id, scheduled_at) key), or the cron changed or vanished meanwhile."""


class Storage(Protocol):
    """A database: sessions for our tables, plus LangGraph's saver and store on the same database."""

    @property
    def checkpointer(self) -> BaseCheckpointSaver[Any]:
        """LangGraph's checkpoint saver on this database."""

    @property
    def store(self) -> BaseStore:
        """LangGraph's long-term store on this database."""

    def fenced_checkpointer(self, lease: Lease) -> BaseCheckpointSaver[Any]:
        """LangGraph's saver for one attempt of a run: each checkpoint write (put, put_writes) runs in a
        transaction that first holds the lease (Session.hold_lease), so it lands only while the attempt
        still owns the run, and a takeover waits for it to commit; LeaseLost otherwise. Reads are not fenced."""

    def transaction(self) -> AbstractAsyncContextManager[Session]:
        """A write transaction: committed on exit, rolled back on error. Writes are serialized."""

    async def claim_next(self, worker_id: str, now: float, lease_seconds: float) -> tuple[Run | None, float | None]:
        """Session.claim_run in a transaction of its own, with Session.next_available_at as seen right after
        it: the run claimed (or None), and when the next run is due among those left (None: none pending),
        so that a worker claims again only when another run is runnable."""

    def read(self) -> AbstractAsyncContextManager[Session]:
        """A read-only session that sees committed data."""

    async def ping(self) -> None:
        """Return when the database answers; Unavailable when it cannot be reached."""

    def notify_work(self) -> None:
        """Wake workers waiting in wait_for_work (call after committing a runnable run)."""

    async def wait_for_work(self, timeout: float | None) -> None:
        """Return when notify_work was called (here or, for shared backends, anywhere) or at timeout."""

    async def close(self) -> None:
        """Release connections."""
