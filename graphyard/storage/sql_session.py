"""The Session port written once, over a backend's named queries and a small driver.

Both backends hold the same tables and answer the same named queries (each `queries.sql` in its own
dialect), so parameter building, row mapping and the port's logic live here. A backend supplies a
`Driver`: how a statement runs on its connection, how JSON and id lists travel, and the SQL fragments
that differ (auth filters, case-insensitive order). What really differs between the databases stays in
the backend, explicitly: claiming a run (PostgreSQL: FOR UPDATE SKIP LOCKED retried inside a function,
postgres/migrations/0006; SQLite: one UPDATE under the single writer), wake-ups (NOTIFY in PostgreSQL's
statements, an in-process event for SQLite), and how a transaction travels (PostgreSQL pipelines it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

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
    isoformat,
    now,
)
from graphyard.storage import rows
from graphyard.storage.errors import LeaseLost, UniqueViolation
from graphyard.storage.rows import Row

_ASSISTANT_ORDER = {"assistant_id", "graph_id", "name", "created_at", "updated_at"}
_THREAD_ORDER = {"thread_id", "status", "created_at", "updated_at", "state_updated_at"}
_CRON_ORDER = {"cron_id", "assistant_id", "thread_id", "next_run_date", "end_time", "created_at", "updated_at"}
_NOCASE = {"name", "graph_id"}


class Driver(Protocol):
    """One connection of one backend, as the shared session uses it."""

    @property
    def queries(self) -> Mapping[str, str]:
        """The backend's named queries (its queries.sql)."""

    @property
    def origin(self) -> str:
        """Sent with the statements that make a run runnable: PostgreSQL's NOTIFY payload, so that a process
        skips the wake-ups it gave itself. Backends that do not broadcast ignore it."""

    def encode(self, value: Any) -> str:
        """A JSON value as the text a JSON column parameter takes."""

    def decode(self, value: Any) -> Any:
        """A JSON column as it arrives in a row, as a Python value."""

    def id_list(self, ids: Sequence[str]) -> Any:
        """A list of ids as the `ids` parameter of the queries that filter by them."""

    def auth(self, flt: Json | None, params: dict[str, Any]) -> str:
        """The `{auth}` condition on a `metadata` column for an auth filter, its parameters added to `params`."""

    def order(self, column: str, descending: bool, *, nocase: bool) -> str:
        """The `{order}` clause: by `column` (case-insensitively with nocase), ties broken by insertion order."""

    async def one(self, sql: str, params: Mapping[str, Any]) -> Row | None:
        """The first row of a statement, or None."""

    async def all(self, sql: str, params: Mapping[str, Any]) -> Sequence[Row]:
        """Every row of a statement."""

    async def execute(self, sql: str, params: Mapping[str, Any]) -> int:
        """Run a statement; how many rows it changed."""

    async def write(self, sql: str, params: Mapping[str, Any]) -> None:
        """Run a statement whose answer nobody reads. It may travel with the next statement (or the commit):
        an error it raises then surfaces there, still inside the transaction, which then fails as a whole.
        Writes to runs never go this way: a takeover (requeue, finish, cancel) must have waited for the row
        lock a fenced write holds by the time it returns, as the lease contract (ports.hold_lease) says."""


def _order(db: Driver, sort_by: str, sort_order: str, allowed: set[str], default: str) -> str:
    column = sort_by if sort_by in allowed else default
    return db.order(column, sort_order.lower() != "asc", nocase=column in _NOCASE)


class SqlSession:
    """The Session port on one connection (in a write transaction, or a read session)."""

    def __init__(self, driver: Driver) -> None:
        self._db = driver
        self._q = driver.queries

    def _opt(self, value: Any) -> str | None:
        return None if value is None else self._db.encode(value)

    def _ids(self, ids: Sequence[str] | None) -> Any:
        return None if ids is None else self._db.id_list(ids)

    async def _insert(self, name: str, params: Mapping[str, Any], constraint: str) -> None:
        # Inserts say ON CONFLICT DO NOTHING RETURNING: no row means the key exists, and the transaction
        # stays usable (no failed statement to roll back).
        if await self._db.one(self._q[name], params) is None:
            raise UniqueViolation(constraint)

    async def _count(self, name: str, params: dict[str, Any], auth: Json | None) -> int:
        row = await self._db.one(self._q[name].format(auth=self._db.auth(auth, params)), params)
        return int(row["n"]) if row else 0

    def _assistant(self, row: Row) -> Assistant:
        return rows.assistant(row, self._db.decode)

    def _version(self, row: Row) -> AssistantVersion:
        return rows.version(row, self._db.decode)

    def _thread(self, row: Row) -> Thread:
        return rows.thread(row, self._db.decode)

    def _run(self, row: Row) -> Run:
        return rows.run(row, self._db.decode)

    def _cron(self, row: Row) -> Cron:
        return rows.cron(row, self._db.decode)

    # --- assistants ---------------------------------------------------------------------------
    async def insert_assistant(self, assistant: Assistant) -> None:
        params = rows.assistant_params(assistant, self._db.encode)
        await self._insert("insert_assistant", params, "graphyard_assistants_pkey")
        await self._db.write(self._q["insert_assistant_version"], params)

    async def get_assistant(self, assistant_id: str, auth: Json | None = None) -> Assistant | None:
        params: dict[str, Any] = {"assistant_id": assistant_id}
        row = await self._db.one(self._q["get_assistant"].format(auth=self._db.auth(auth, params)), params)
        return self._assistant(row) if row else None

    async def update_assistant(self, assistant: Assistant, *, new_version: bool) -> None:
        params = rows.assistant_params(assistant, self._db.encode)
        await self._db.write(self._q["update_assistant"], params)
        if new_version:
            await self._db.write(self._q["insert_assistant_version"], params)

    async def delete_assistant(self, assistant_id: str) -> bool:
        return await self._db.execute(self._q["delete_assistant"], {"assistant_id": assistant_id}) > 0

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
        params: dict[str, Any] = {
            "graph_id": graph_id,
            "metadata": self._opt(metadata),
            "name": name,
            "limit": limit,
            "offset": offset,
        }
        sql = self._q["search_assistants"].format(
            auth=self._db.auth(auth, params),
            order=_order(self._db, sort_by, sort_order, _ASSISTANT_ORDER, "created_at"),
        )
        return [self._assistant(r) for r in await self._db.all(sql, params)]

    async def count_assistants(
        self, *, graph_id: str | None, metadata: Json | None, name: str | None, auth: Json | None
    ) -> int:
        params: dict[str, Any] = {"graph_id": graph_id, "metadata": self._opt(metadata), "name": name}
        return await self._count("count_assistants", params, auth)

    async def assistant_versions(
        self, assistant_id: str, *, metadata: Json | None, limit: int, offset: int
    ) -> list[AssistantVersion]:
        params = {"assistant_id": assistant_id, "metadata": self._opt(metadata), "limit": limit, "offset": offset}
        return [self._version(r) for r in await self._db.all(self._q["assistant_versions"], params)]

    async def assistant_version(self, assistant_id: str, version: int) -> AssistantVersion | None:
        params = {"assistant_id": assistant_id, "version": version}
        row = await self._db.one(self._q["assistant_version"], params)
        return self._version(row) if row else None

    # --- threads ------------------------------------------------------------------------------
    async def insert_thread(self, thread: Thread) -> None:
        await self._insert("insert_thread", rows.thread_params(thread, self._db.encode), "graphyard_threads_pkey")

    async def get_thread(
        self, thread_id: str, auth: Json | None = None, *, values: bool = True, encoded_values: bool = False
    ) -> Thread | None:
        params: dict[str, Any] = {"thread_id": thread_id}
        query = self._q["get_thread" if values else "get_thread_head"]
        row = await self._db.one(query.format(auth=self._db.auth(auth, params)), params)
        return self._thread(row) if row else None

    async def update_thread_metadata(self, thread_id: str, metadata: Json, updated_at: str) -> None:
        params = {"thread_id": thread_id, "metadata": self._db.encode(metadata), "updated_at": updated_at}
        await self._db.write(self._q["update_thread_metadata"], params)

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
        params = {
            "thread_id": thread_id,
            "status": status.value,
            "values": self._opt(values),
            "interrupts": self._db.encode(interrupts),
            "error": self._opt(error),
            "updated_at": updated_at,
        }
        await self._db.write(self._q["set_thread_state"], params)

    async def set_thread_status(self, thread_id: str, status: ThreadStatus, updated_at: str) -> None:
        params = {"thread_id": thread_id, "status": status.value, "updated_at": updated_at}
        await self._db.write(self._q["set_thread_status"], params)

    async def delete_thread(self, thread_id: str) -> bool:
        return await self._db.execute(self._q["delete_thread"], {"thread_id": thread_id}) > 0

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
        params: dict[str, Any] = {
            "ids": self._ids(ids),
            "metadata": self._opt(metadata),
            "values": self._opt(values),
            "status": status,
            "limit": limit,
            "offset": offset,
        }
        sql = self._q["search_threads"].format(
            auth=self._db.auth(auth, params),
            order=_order(self._db, sort_by, sort_order, _THREAD_ORDER, "updated_at"),
        )
        return [self._thread(r) for r in await self._db.all(sql, params)]

    async def count_threads(
        self, *, metadata: Json | None, values: Json | None, status: str | None, auth: Json | None
    ) -> int:
        params: dict[str, Any] = {"metadata": self._opt(metadata), "values": self._opt(values), "status": status}
        return await self._count("count_threads", params, auth)

    # --- thread TTL and priority ---------------------------------------------------------------
    async def set_thread_ttl(
        self, thread_id: str, *, strategy: str | None, minutes: float | None, expires_at: float | None
    ) -> None:
        params = {"thread_id": thread_id, "strategy": strategy, "minutes": minutes, "expires_at": expires_at}
        await self._db.write(self._q["set_thread_ttl"], params)

    async def thread_ttl(self, thread_id: str) -> Json | None:
        row = await self._db.one(self._q["thread_ttl"], {"thread_id": thread_id})
        if row is None:
            return None
        return {"strategy": row["ttl_strategy"], "ttl_minutes": row["ttl_minutes"], "expires_at": row["expires_at"]}

    async def expired_threads(self, now: float, limit: int) -> list[Json]:
        found = await self._db.all(self._q["expired_threads"], {"now": now, "limit": limit})
        return [
            {"thread_id": row["thread_id"], "strategy": row["ttl_strategy"], "ttl_minutes": row["ttl_minutes"]}
            for row in found
        ]

    async def claim_sweep(self, name: str, now: float, next_at: float) -> bool:
        params = {"name": name, "now": now, "next_at": next_at}
        return await self._db.one(self._q["claim_sweep"], params) is not None

    async def thread_priority(self, thread_id: str) -> Json | None:
        row = await self._db.one(self._q["thread_priority"], {"thread_id": thread_id})
        if row is None or row["priority"] is None:
            return None
        return {"priority": row["priority"], "fairness_group": row["fairness_group"]}

    async def set_thread_priority(self, thread_id: str, priority: int, fairness_group: str) -> None:
        params = {"thread_id": thread_id, "priority": priority, "fairness_group": fairness_group}
        await self._db.write(self._q["set_thread_priority"], params)

    # --- runs ---------------------------------------------------------------------------------
    async def insert_run(self, run: Run) -> None:
        params = {**rows.run_params(run, self._db.encode), "origin": self._db.origin}
        await self._insert("insert_run", params, "graphyard_runs_pkey")

    async def get_run(self, run_id: str, thread_id: str | None = None) -> Run | None:
        row = await self._db.one(self._q["get_run"], {"run_id": run_id, "thread_id": thread_id})
        return self._run(row) if row else None

    async def list_runs(
        self, thread_id: str, *, status: str | None, limit: int, offset: int, metadata: Json | None = None
    ) -> list[Run]:
        params = {
            "thread_id": thread_id,
            "status": status,
            "limit": limit,
            "offset": offset,
            "metadata": self._opt(metadata),
        }
        return [self._run(r) for r in await self._db.all(self._q["list_runs"], params)]

    async def inflight_runs(self, thread_id: str) -> list[Run]:
        return [self._run(r) for r in await self._db.all(self._q["inflight_runs"], {"thread_id": thread_id})]

    async def delete_run(self, run_id: str) -> bool:
        row = await self._db.one(self._q["delete_run"], {"run_id": run_id, "origin": self._db.origin})
        return row is not None and row["deleted"] > 0

    async def claim_run(self, worker_id: str, now: float, lease_seconds: float) -> Run | None:
        row = await self._db.one(self._q["claim_run"], claim_params(worker_id, now, lease_seconds))
        return self._run(row) if row else None

    async def next_available_at(self) -> float | None:
        row = await self._db.one(self._q["next_available_at"], {})
        return None if row is None or row["at"] is None else float(row["at"])

    async def finish_run(self, run_id: str, status: RunStatus, output: Any, updated_at: str) -> None:
        params = {
            "run_id": run_id,
            "status": status.value,
            "output": self._opt(output),
            "updated_at": updated_at,
            "origin": self._db.origin,
        }
        await self._db.execute(self._q["finish_run"], params)

    async def stop_pending_run(self, run_id: str, action: CancelAction, updated_at: str) -> bool:
        query = "delete_pending_run" if action is CancelAction.ROLLBACK else "stop_pending_run"
        params = {"run_id": run_id, "updated_at": updated_at, "origin": self._db.origin}
        return await self._db.one(self._q[query], params) is not None

    async def request_cancel(self, run_id: str, action: CancelAction, updated_at: str) -> None:
        params = {"run_id": run_id, "action": action.value, "updated_at": updated_at}
        await self._db.execute(self._q["request_cancel"], params)

    async def requeue_run(self, run_id: str, updated_at: str) -> None:
        params = {"run_id": run_id, "updated_at": updated_at, "origin": self._db.origin}
        await self._db.execute(self._q["requeue_run"], params)

    async def runs_leased_by_others(self, now: float) -> list[Run]:
        return [self._run(r) for r in await self._db.all(self._q["expired_leases"], {"now": now})]

    async def end_stalled_sessions(self, seconds: float) -> int:
        row = await self._db.one(self._q["end_stalled_sessions"], {"seconds": seconds})
        return 0 if row is None else int(row["ended"])

    async def running_runs(self) -> list[Run]:
        return [self._run(r) for r in await self._db.all(self._q["running_runs"], {})]

    async def renew_leases(self, worker_id: str, expires_at: float) -> list[Lease]:
        params = {"worker_id": worker_id, "lease_expires_at": expires_at}
        renewed = await self._db.all(self._q["renew_leases"], params)
        return [Lease(row["run_id"], row["lease_owner"], row["attempt"]) for row in renewed]

    async def hold_lease(self, lease: Lease) -> None:
        params = {"run_id": lease.run_id, "owner": lease.owner, "attempt": lease.attempt}
        if await self._db.one(self._q["hold_lease"], params) is None:
            raise LeaseLost(f"run {lease.run_id}: attempt {lease.attempt} of {lease.owner} no longer holds its lease")

    async def transfer_lease(self, lease: Lease, owner: str, expires_at: float) -> Lease | None:
        params = {
            "run_id": lease.run_id,
            "owner": lease.owner,
            "attempt": lease.attempt,
            "new_owner": owner,
            "lease_expires_at": expires_at,
        }
        if await self._db.one(self._q["transfer_lease"], params) is None:
            return None
        return Lease(lease.run_id, owner, lease.attempt)

    async def cancel_requests(self, worker_id: str) -> list[tuple[str, CancelAction]]:
        found = await self._db.all(self._q["cancel_requests"], {"worker_id": worker_id})
        return [(row["run_id"], CancelAction(row["cancel_action"])) for row in found]

    async def delete_run_checkpoints(self, thread_id: str, run_id: str) -> None:
        params = {"thread_id": thread_id, "run_id": run_id}
        await self._db.write(self._q["delete_run_checkpoint_writes"], params)
        await self._db.write(self._q["delete_run_checkpoints"], params)

    async def cancellable_runs(
        self, *, thread_id: str | None, run_ids: Sequence[str] | None, status: str | None
    ) -> list[Run]:
        params = {"thread_id": thread_id, "ids": self._ids(run_ids), "status": status}
        return [self._run(r) for r in await self._db.all(self._q["cancellable_runs"], params)]

    # --- operators ----------------------------------------------------------------------------
    async def queue_stats(self, now: float) -> QueueStats:
        by_status = await self._db.all(self._q["run_status_counts"], {})
        counts = await self._db.one(self._q["queue_counts"], {"now": now})
        assert counts is not None  # an aggregate always answers one row
        return rows.queue_stats(by_status, counts, await self._db.all(self._q["running_by_worker"], {}))

    async def leased_runs(
        self, *, status: str | None, thread_id: str | None, created_before: str | None, limit: int
    ) -> list[LeasedRun]:
        params = {"status": status, "thread_id": thread_id, "created_before": created_before, "limit": limit}
        return [rows.leased_run(r, self._db.decode) for r in await self._db.all(self._q["leased_runs"], params)]

    async def leased_run(self, run_id: str) -> LeasedRun | None:
        row = await self._db.one(self._q["leased_run"], {"run_id": run_id})
        return None if row is None else rows.leased_run(row, self._db.decode)

    # --- crons --------------------------------------------------------------------------------
    async def insert_cron(self, cron: Cron) -> None:
        await self._insert("insert_cron", rows.cron_params(cron, self._db.encode), "graphyard_crons_pkey")

    async def get_cron(self, cron_id: str, auth: Json | None = None) -> Cron | None:
        params: dict[str, Any] = {"cron_id": cron_id}
        row = await self._db.one(self._q["get_cron"].format(auth=self._db.auth(auth, params)), params)
        return self._cron(row) if row else None

    async def update_cron(self, cron: Cron) -> None:
        await self._db.write(self._q["update_cron"], rows.cron_params(cron, self._db.encode))

    async def delete_cron(self, cron_id: str, auth: Json | None = None) -> bool:
        params: dict[str, Any] = {"cron_id": cron_id}
        return await self._db.execute(self._q["delete_cron"].format(auth=self._db.auth(auth, params)), params) > 0

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
        params: dict[str, Any] = {
            "assistant_id": assistant_id,
            "thread_id": thread_id,
            "enabled": enabled,
            "metadata": self._opt(metadata),
            "limit": limit,
            "offset": offset,
        }
        sql = self._q["search_crons"].format(
            auth=self._db.auth(auth, params),
            order=_order(self._db, sort_by, sort_order, _CRON_ORDER, "created_at"),
        )
        return [self._cron(r) for r in await self._db.all(sql, params)]

    async def count_crons(
        self, *, assistant_id: str | None, thread_id: str | None, metadata: Json | None, auth: Json | None
    ) -> int:
        params: dict[str, Any] = {"assistant_id": assistant_id, "thread_id": thread_id, "metadata": self._opt(metadata)}
        return await self._count("count_crons", params, auth)

    async def due_crons(self, now: str, limit: int) -> list[Cron]:
        return [self._cron(r) for r in await self._db.all(self._q["due_crons"], {"now": now, "limit": limit})]

    async def claim_cron_fire(self, cron_id: str, scheduled_at: str, next_run_date: str | None, fired_at: str) -> bool:
        # The conditional advance first: it fails when the cron moved on, changed or vanished. On PostgreSQL
        # it also locks the row, so a second process claiming the same occurrence waits for our commit and
        # then finds next_run_date moved on (0 rows); SQLite's single writer serializes the two anyway.
        params = {"cron_id": cron_id, "scheduled_at": scheduled_at, "next_run_date": next_run_date}
        if await self._db.execute(self._q["advance_cron"], params) == 0:
            return False
        fire = {"cron_id": cron_id, "scheduled_at": scheduled_at, "fired_at": fired_at}
        if await self._db.one(self._q["insert_cron_fire"], fire) is None:
            return False
        await self._db.write(self._q["prune_cron_fires"], {"cron_id": cron_id, "before": scheduled_at})
        return True


def claim_params(worker_id: str, now: float, lease_seconds: float) -> dict[str, Any]:
    """The parameters of both dialects' `claim_run` query."""
    return {"worker_id": worker_id, "now": now, "lease_expires_at": now + lease_seconds, "updated_at": isoformat_now()}


def isoformat_now() -> str:
    return isoformat(now())
