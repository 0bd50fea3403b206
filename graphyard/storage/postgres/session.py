"""PostgreSQL queries on one pooled connection: the Session port, and the one place driver errors are translated."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import psycopg
from psycopg import AsyncConnection
from psycopg.rows import DictRow

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
from graphyard.storage.errors import LeaseLost, Unavailable, UniqueViolation
from graphyard.storage.postgres.filters import auth_clause
from graphyard.storage.queries import load_queries

Q = load_queries("graphyard.storage.postgres")
_CLAIM_ATTEMPTS = 5

_ASSISTANT_ORDER = {"assistant_id", "graph_id", "name", "created_at", "updated_at"}
_THREAD_ORDER = {"thread_id", "status", "created_at", "updated_at", "state_updated_at"}
_NOCASE = {"name", "graph_id"}
_CRON_ORDER = {"cron_id", "assistant_id", "thread_id", "next_run_date", "end_time", "created_at", "updated_at"}


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Driver errors become storage errors, here and nowhere else."""
    try:
        yield
    except psycopg.errors.UniqueViolation as exc:
        raise UniqueViolation(exc.diag.constraint_name or "unknown") from exc
    except psycopg.OperationalError as exc:  # also psycopg_pool.PoolTimeout
        raise Unavailable(f"PostgreSQL unavailable: {exc}") from exc


# jsonb cannot hold U+0000; an escaped NUL (preceded by an even run of backslashes) becomes U+FFFD,
# as the reference answers, instead of failing the write.
_ESCAPED_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _dumps(value: Any) -> str:
    text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    return _ESCAPED_NUL.sub(r"\1\\ufffd", text) if "\\u0000" in text else text


def _jsonb(value: Any) -> Any:
    """jsonb columns arrive decoded already."""
    return value


def _assistant(row: DictRow) -> Assistant:
    return rows.assistant(row, _jsonb)


def _version(row: DictRow) -> AssistantVersion:
    return rows.version(row, _jsonb)


def _thread(row: DictRow) -> Thread:
    return rows.thread(row, _jsonb)


def _run(row: DictRow) -> Run:
    return rows.run(row, _jsonb)


def _cron(row: DictRow) -> Cron:
    return rows.cron(row, _jsonb)


def _opt(value: Any) -> str | None:
    return None if value is None else _dumps(value)


def json_loads(data: str | bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # jsonb holds numbers orjson refuses (integers past 64 bits); the standard library takes them.
        return json.loads(data)


def _order(sort_by: str, sort_order: str, allowed: set[str], default: str) -> str:
    column = sort_by if sort_by in allowed else default
    direction = "ASC" if sort_order.lower() == "asc" else "DESC"
    key = f'lower("{column}")' if column in _NOCASE else f'"{column}"'
    return f"{key} {direction}, seq {direction}"


class PostgresSession:
    """Our queries on one pooled connection (in a transaction, or autocommit for reads)."""

    def __init__(self, conn: AsyncConnection[DictRow], origin: str) -> None:
        self._conn = conn
        # Sent as the NOTIFY payload, so this process can skip wake-ups it already gave itself.
        self._origin = origin

    async def _one(self, sql: str, params: dict[str, Any]) -> DictRow | None:
        with translated():
            cur = await self._conn.execute(sql, params)
            return await cur.fetchone()

    async def _all(self, sql: str, params: dict[str, Any]) -> list[DictRow]:
        with translated():
            cur = await self._conn.execute(sql, params)
            return await cur.fetchall()

    async def _exec(self, sql: str, params: dict[str, Any]) -> int:
        with translated():
            cur = await self._conn.execute(sql, params)
            return cur.rowcount

    # --- assistants ---------------------------------------------------------------------------
    async def insert_assistant(self, assistant: Assistant) -> None:
        params = rows.assistant_params(assistant, _dumps)
        # ON CONFLICT DO NOTHING rather than catching the error: the transaction stays usable, as on SQLite.
        if await self._one(Q["insert_assistant"], params) is None:
            raise UniqueViolation("graphyard_assistants_pkey")
        await self._exec(Q["insert_assistant_version"], params)

    async def get_assistant(self, assistant_id: str, auth: Json | None = None) -> Assistant | None:
        params: dict[str, Any] = {"assistant_id": assistant_id}
        row = await self._one(Q["get_assistant"].format(auth=auth_clause(auth, params)), params)
        return _assistant(row) if row else None

    async def update_assistant(self, assistant: Assistant, *, new_version: bool) -> None:
        params = rows.assistant_params(assistant, _dumps)
        await self._exec(Q["update_assistant"], params)
        if new_version:
            await self._exec(Q["insert_assistant_version"], params)

    async def delete_assistant(self, assistant_id: str) -> bool:
        return await self._exec(Q["delete_assistant"], {"assistant_id": assistant_id}) > 0

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
            "metadata": _opt(metadata),
            "name": name,
            "limit": limit,
            "offset": offset,
        }
        sql = Q["search_assistants"].format(
            auth=auth_clause(auth, params), order=_order(sort_by, sort_order, _ASSISTANT_ORDER, "created_at")
        )
        return [_assistant(r) for r in await self._all(sql, params)]

    async def count_assistants(
        self, *, graph_id: str | None, metadata: Json | None, name: str | None, auth: Json | None
    ) -> int:
        params: dict[str, Any] = {"graph_id": graph_id, "metadata": _opt(metadata), "name": name}
        row = await self._one(Q["count_assistants"].format(auth=auth_clause(auth, params)), params)
        return int(row["n"]) if row else 0

    async def assistant_versions(
        self, assistant_id: str, *, metadata: Json | None, limit: int, offset: int
    ) -> list[AssistantVersion]:
        params = {"assistant_id": assistant_id, "metadata": _opt(metadata), "limit": limit, "offset": offset}
        return [_version(r) for r in await self._all(Q["assistant_versions"], params)]

    async def assistant_version(self, assistant_id: str, version: int) -> AssistantVersion | None:
        row = await self._one(Q["assistant_version"], {"assistant_id": assistant_id, "version": version})
        return _version(row) if row else None

    # --- threads ------------------------------------------------------------------------------
    async def insert_thread(self, thread: Thread) -> None:
        if await self._one(Q["insert_thread"], rows.thread_params(thread, _dumps)) is None:
            raise UniqueViolation("graphyard_threads_pkey")

    async def get_thread(self, thread_id: str, auth: Json | None = None) -> Thread | None:
        params: dict[str, Any] = {"thread_id": thread_id}
        row = await self._one(Q["get_thread"].format(auth=auth_clause(auth, params)), params)
        return _thread(row) if row else None

    async def update_thread_metadata(self, thread_id: str, metadata: Json, updated_at: str) -> None:
        params = {"thread_id": thread_id, "metadata": _dumps(metadata), "updated_at": updated_at}
        await self._exec(Q["update_thread_metadata"], params)

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
            "values": _opt(values),
            "interrupts": _dumps(interrupts),
            "error": _opt(error),
            "updated_at": updated_at,
        }
        await self._exec(Q["set_thread_state"], params)

    async def set_thread_status(self, thread_id: str, status: ThreadStatus, updated_at: str) -> None:
        params = {"thread_id": thread_id, "status": status.value, "updated_at": updated_at}
        await self._exec(Q["set_thread_status"], params)

    async def delete_thread(self, thread_id: str) -> bool:
        return await self._exec(Q["delete_thread"], {"thread_id": thread_id}) > 0

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
            "ids": None if ids is None else list(ids),
            "metadata": _opt(metadata),
            "values": _opt(values),
            "status": status,
            "limit": limit,
            "offset": offset,
        }
        sql = Q["search_threads"].format(
            auth=auth_clause(auth, params), order=_order(sort_by, sort_order, _THREAD_ORDER, "updated_at")
        )
        return [_thread(r) for r in await self._all(sql, params)]

    async def count_threads(
        self, *, metadata: Json | None, values: Json | None, status: str | None, auth: Json | None
    ) -> int:
        params: dict[str, Any] = {"metadata": _opt(metadata), "values": _opt(values), "status": status}
        row = await self._one(Q["count_threads"].format(auth=auth_clause(auth, params)), params)
        return int(row["n"]) if row else 0

    # --- thread TTL and priority ---------------------------------------------------------------
    async def set_thread_ttl(
        self, thread_id: str, *, strategy: str | None, minutes: float | None, expires_at: float | None
    ) -> None:
        params = {"thread_id": thread_id, "strategy": strategy, "minutes": minutes, "expires_at": expires_at}
        await self._exec(Q["set_thread_ttl"], params)

    async def thread_ttl(self, thread_id: str) -> Json | None:
        row = await self._one(Q["thread_ttl"], {"thread_id": thread_id})
        if row is None:
            return None
        return {"strategy": row["ttl_strategy"], "ttl_minutes": row["ttl_minutes"], "expires_at": row["expires_at"]}

    async def expired_threads(self, now: float, limit: int) -> list[Json]:
        found = await self._all(Q["expired_threads"], {"now": now, "limit": limit})
        return [
            {"thread_id": row["thread_id"], "strategy": row["ttl_strategy"], "ttl_minutes": row["ttl_minutes"]}
            for row in found
        ]

    async def claim_sweep(self, name: str, now: float, next_at: float) -> bool:
        return await self._one(Q["claim_sweep"], {"name": name, "now": now, "next_at": next_at}) is not None

    async def thread_priority(self, thread_id: str) -> Json | None:
        row = await self._one(Q["thread_priority"], {"thread_id": thread_id})
        if row is None or row["priority"] is None:
            return None
        return {"priority": row["priority"], "fairness_group": row["fairness_group"]}

    async def set_thread_priority(self, thread_id: str, priority: int, fairness_group: str) -> None:
        params = {"thread_id": thread_id, "priority": priority, "fairness_group": fairness_group}
        await self._exec(Q["set_thread_priority"], params)

    # --- runs ---------------------------------------------------------------------------------
    async def insert_run(self, run: Run) -> None:
        params = {**rows.run_params(run, _dumps), "origin": self._origin}
        if await self._one(Q["insert_run"], params) is None:
            raise UniqueViolation("graphyard_runs_pkey")

    async def get_run(self, run_id: str, thread_id: str | None = None) -> Run | None:
        row = await self._one(Q["get_run"], {"run_id": run_id, "thread_id": thread_id})
        return _run(row) if row else None

    async def list_runs(
        self, thread_id: str, *, status: str | None, limit: int, offset: int, metadata: Json | None = None
    ) -> list[Run]:
        params = {
            "thread_id": thread_id,
            "status": status,
            "limit": limit,
            "offset": offset,
            "metadata": _opt(metadata),
        }
        return [_run(r) for r in await self._all(Q["list_runs"], params)]

    async def inflight_runs(self, thread_id: str) -> list[Run]:
        return [_run(r) for r in await self._all(Q["inflight_runs"], {"thread_id": thread_id})]

    async def delete_run(self, run_id: str) -> bool:
        row = await self._one(Q["delete_run"], {"run_id": run_id, "origin": self._origin})
        return row is not None and row["deleted"] > 0

    async def claim_run(self, worker_id: str, now: float, lease_seconds: float) -> Run | None:
        params = {
            "worker_id": worker_id,
            "now": now,
            "lease_expires_at": now + lease_seconds,
            "updated_at": _isoformat_now(),
        }
        for _ in range(_CLAIM_ATTEMPTS):
            try:
                # A savepoint, so that losing the race below leaves the caller's transaction usable.
                with translated():
                    async with self._conn.transaction():
                        cur = await self._conn.execute(Q["claim_run"], params)
                        row = await cur.fetchone()
            except UniqueViolation:
                # Another worker started a run on this thread between our look and our update
                # (the partial unique index said no): nothing was claimed, look again.
                continue
            return _run(row) if row else None
        return None

    async def next_available_at(self) -> float | None:
        row = await self._one(Q["next_available_at"], {})
        return None if row is None or row["at"] is None else float(row["at"])

    async def finish_run(self, run_id: str, status: RunStatus, output: Any, updated_at: str) -> None:
        params = {
            "run_id": run_id,
            "status": status.value,
            "output": _opt(output),
            "updated_at": updated_at,
            "origin": self._origin,
        }
        await self._exec(Q["finish_run"], params)

    async def request_cancel(self, run_id: str, action: CancelAction, updated_at: str) -> None:
        params = {"run_id": run_id, "action": action.value, "updated_at": updated_at}
        await self._exec(Q["request_cancel"], params)

    async def requeue_run(self, run_id: str, updated_at: str) -> None:
        await self._exec(Q["requeue_run"], {"run_id": run_id, "updated_at": updated_at, "origin": self._origin})

    async def runs_leased_by_others(self, now: float) -> list[Run]:
        return [_run(r) for r in await self._all(Q["expired_leases"], {"now": now})]

    async def running_runs(self) -> list[Run]:
        return [_run(r) for r in await self._all(Q["running_runs"], {})]

    async def renew_leases(self, worker_id: str, expires_at: float) -> list[Lease]:
        renewed = await self._all(Q["renew_leases"], {"worker_id": worker_id, "lease_expires_at": expires_at})
        return [Lease(row["run_id"], row["lease_owner"], row["attempt"]) for row in renewed]

    async def hold_lease(self, lease: Lease) -> None:
        params = {"run_id": lease.run_id, "owner": lease.owner, "attempt": lease.attempt}
        if await self._one(Q["hold_lease"], params) is None:
            raise LeaseLost(f"run {lease.run_id}: attempt {lease.attempt} of {lease.owner} no longer holds its lease")

    async def transfer_lease(self, lease: Lease, owner: str, expires_at: float) -> Lease | None:
        params = {
            "run_id": lease.run_id,
            "owner": lease.owner,
            "attempt": lease.attempt,
            "new_owner": owner,
            "lease_expires_at": expires_at,
        }
        if await self._one(Q["transfer_lease"], params) is None:
            return None
        return Lease(lease.run_id, owner, lease.attempt)

    async def cancel_requests(self, worker_id: str) -> list[tuple[str, CancelAction]]:
        rows = await self._all(Q["cancel_requests"], {"worker_id": worker_id})
        return [(row["run_id"], CancelAction(row["cancel_action"])) for row in rows]

    async def delete_run_checkpoints(self, thread_id: str, run_id: str) -> None:
        params = {"thread_id": thread_id, "run_id": run_id}
        await self._exec(Q["delete_run_checkpoint_writes"], params)
        await self._exec(Q["delete_run_checkpoints"], params)

    async def cancellable_runs(
        self, *, thread_id: str | None, run_ids: Sequence[str] | None, status: str | None
    ) -> list[Run]:
        params = {"thread_id": thread_id, "ids": None if run_ids is None else list(run_ids), "status": status}
        return [_run(r) for r in await self._all(Q["cancellable_runs"], params)]

    # --- operators ----------------------------------------------------------------------------
    async def queue_stats(self, now: float) -> QueueStats:
        by_status = await self._all(Q["run_status_counts"], {})
        counts = await self._one(Q["queue_counts"], {"now": now})
        assert counts is not None  # an aggregate always answers one row
        return rows.queue_stats(by_status, counts, await self._all(Q["running_by_worker"], {}))

    async def leased_runs(
        self, *, status: str | None, thread_id: str | None, created_before: str | None, limit: int
    ) -> list[LeasedRun]:
        params = {"status": status, "thread_id": thread_id, "created_before": created_before, "limit": limit}
        return [rows.leased_run(r, _jsonb) for r in await self._all(Q["leased_runs"], params)]

    async def leased_run(self, run_id: str) -> LeasedRun | None:
        row = await self._one(Q["leased_run"], {"run_id": run_id})
        return None if row is None else rows.leased_run(row, _jsonb)

    # --- crons --------------------------------------------------------------------------------
    async def insert_cron(self, cron: Cron) -> None:
        if await self._one(Q["insert_cron"], rows.cron_params(cron, _dumps)) is None:
            raise UniqueViolation("graphyard_crons_pkey")

    async def get_cron(self, cron_id: str, auth: Json | None = None) -> Cron | None:
        params: dict[str, Any] = {"cron_id": cron_id}
        row = await self._one(Q["get_cron"].format(auth=auth_clause(auth, params)), params)
        return _cron(row) if row else None

    async def update_cron(self, cron: Cron) -> None:
        await self._exec(Q["update_cron"], rows.cron_params(cron, _dumps))

    async def delete_cron(self, cron_id: str, auth: Json | None = None) -> bool:
        params: dict[str, Any] = {"cron_id": cron_id}
        return await self._exec(Q["delete_cron"].format(auth=auth_clause(auth, params)), params) > 0

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
            "metadata": _opt(metadata),
            "limit": limit,
            "offset": offset,
        }
        sql = Q["search_crons"].format(
            auth=auth_clause(auth, params), order=_order(sort_by, sort_order, _CRON_ORDER, "created_at")
        )
        return [_cron(r) for r in await self._all(sql, params)]

    async def count_crons(
        self, *, assistant_id: str | None, thread_id: str | None, metadata: Json | None, auth: Json | None
    ) -> int:
        params: dict[str, Any] = {"assistant_id": assistant_id, "thread_id": thread_id, "metadata": _opt(metadata)}
        row = await self._one(Q["count_crons"].format(auth=auth_clause(auth, params)), params)
        return int(row["n"]) if row else 0

    async def due_crons(self, now: str, limit: int) -> list[Cron]:
        return [_cron(r) for r in await self._all(Q["due_crons"], {"now": now, "limit": limit})]

    async def claim_cron_fire(self, cron_id: str, scheduled_at: str, next_run_date: str | None, fired_at: str) -> bool:
        # The conditional advance first: it locks the row, so a second process claiming the same
        # occurrence waits for our commit and then finds next_run_date moved on (0 rows).
        params = {"cron_id": cron_id, "scheduled_at": scheduled_at, "next_run_date": next_run_date}
        if await self._exec(Q["advance_cron"], params) == 0:
            return False
        fire = {"cron_id": cron_id, "scheduled_at": scheduled_at, "fired_at": fired_at}
        if await self._one(Q["insert_cron_fire"], fire) is None:
            return False
        await self._exec(Q["prune_cron_fires"], {"cron_id": cron_id, "before": scheduled_at})
        return True


def _isoformat_now() -> str:
    return isoformat(now())
