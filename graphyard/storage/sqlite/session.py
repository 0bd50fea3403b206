"""SQLite sessions: our named queries on one sqlite3 connection, rows turned into records.

Statements run inline on the event loop: on a local WAL file they take microseconds, less than a
thread hop would (see saver.py); the storage's write lock keeps writers from meeting inside SQLite.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

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
from graphyard.storage.filters import auth_match, contains
from graphyard.storage.queries import load_queries

Q = load_queries("graphyard.storage.sqlite")

_ASSISTANT_ORDER = {"assistant_id", "graph_id", "name", "created_at", "updated_at"}
_THREAD_ORDER = {"thread_id", "status", "created_at", "updated_at", "state_updated_at"}
_NOCASE = {"name", "graph_id"}
_CRON_ORDER = {"cron_id", "assistant_id", "thread_id", "next_run_date", "end_time", "created_at", "updated_at"}


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _loads(text: str | bytes | None) -> Any:
    return None if text is None else orjson.loads(text)


def sql_contains(doc: str | None, want: str) -> bool:
    return contains(_loads(doc), _loads(want))


def sql_auth(doc: str | None, flt: str) -> bool:
    return auth_match(_loads(doc), _loads(flt))


def _order(sort_by: str, sort_order: str, allowed: set[str], default: str) -> str:
    column = sort_by if sort_by in allowed else default
    direction = "ASC" if sort_order.lower() == "asc" else "DESC"
    collate = " COLLATE NOCASE" if column in _NOCASE else ""
    return f'"{column}"{collate} {direction}, rowid {direction}'


def _id_clause(column: str, ids: Sequence[str] | None, params: dict[str, Any]) -> str:
    if ids is None:
        return "1"
    names = []
    for i, value in enumerate(ids):
        params[f"id{i}"] = value
        names.append(f":id{i}")
    return f"{column} IN ({', '.join(names)})" if names else "0"


def _assistant(row: sqlite3.Row) -> Assistant:
    return rows.assistant(row, _loads)


def _version(row: sqlite3.Row) -> AssistantVersion:
    return rows.version(row, _loads)


def _thread(row: sqlite3.Row) -> Thread:
    return rows.thread(row, _loads)


def _run(row: sqlite3.Row) -> Run:
    return rows.run(row, _loads)


def _cron(row: sqlite3.Row) -> Cron:
    return rows.cron(row, _loads)


def _opt(value: Any) -> str | None:
    return None if value is None else _dumps(value)


class SqliteSession:
    """Our queries on one sqlite3 connection, run inline (see saver.py for why no thread hop)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def _one(self, sql: str, params: dict[str, Any]) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._conn.execute(sql, params).fetchone()
        return row

    async def _all(self, sql: str, params: dict[str, Any]) -> list[sqlite3.Row]:
        return self._conn.execute(sql, params).fetchall()

    async def _exec(self, sql: str, params: dict[str, Any]) -> int:
        try:
            return self._conn.execute(sql, params).rowcount
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc) or "PRIMARY KEY" in str(exc):
                raise UniqueViolation(str(exc)) from exc
            raise

    # --- assistants ---------------------------------------------------------------------------
    async def insert_assistant(self, assistant: Assistant) -> None:
        params = rows.assistant_params(assistant, _dumps)
        await self._exec(Q["insert_assistant"], params)
        await self._exec(Q["insert_assistant_version"], params)

    async def get_assistant(self, assistant_id: str, auth: Json | None = None) -> Assistant | None:
        row = await self._one(Q["get_assistant"], {"assistant_id": assistant_id, "auth": _opt(auth)})
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
        sql = Q["search_assistants"].format(order=_order(sort_by, sort_order, _ASSISTANT_ORDER, "created_at"))
        params = {
            "graph_id": graph_id,
            "metadata": _opt(metadata),
            "name": name,
            "auth": _opt(auth),
            "limit": limit,
            "offset": offset,
        }
        return [_assistant(r) for r in await self._all(sql, params)]

    async def count_assistants(
        self, *, graph_id: str | None, metadata: Json | None, name: str | None, auth: Json | None
    ) -> int:
        params = {"graph_id": graph_id, "metadata": _opt(metadata), "name": name, "auth": _opt(auth)}
        row = await self._one(Q["count_assistants"], params)
        return int(row[0]) if row else 0

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
        await self._exec(Q["insert_thread"], rows.thread_params(thread, _dumps))

    async def get_thread(self, thread_id: str, auth: Json | None = None) -> Thread | None:
        row = await self._one(Q["get_thread"], {"thread_id": thread_id, "auth": _opt(auth)})
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
            "metadata": _opt(metadata),
            "values": _opt(values),
            "status": status,
            "auth": _opt(auth),
            "limit": limit,
            "offset": offset,
        }
        sql = Q["search_threads"].format(
            ids=_id_clause("thread_id", ids, params),
            order=_order(sort_by, sort_order, _THREAD_ORDER, "updated_at"),
        )
        return [_thread(r) for r in await self._all(sql, params)]

    async def count_threads(
        self, *, metadata: Json | None, values: Json | None, status: str | None, auth: Json | None
    ) -> int:
        params = {"metadata": _opt(metadata), "values": _opt(values), "status": status, "auth": _opt(auth)}
        row = await self._one(Q["count_threads"], params)
        return int(row[0]) if row else 0

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
        await self._exec(Q["insert_run"], rows.run_params(run, _dumps))

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
        return await self._exec(Q["delete_run"], {"run_id": run_id}) > 0

    async def claim_run(self, worker_id: str, now: float, lease_seconds: float) -> Run | None:
        params = {
            "worker_id": worker_id,
            "now": now,
            "lease_expires_at": now + lease_seconds,
            "updated_at": isoformat_now(),
        }
        row = await self._one(Q["claim_run"], params)
        return _run(row) if row else None

    async def next_available_at(self) -> float | None:
        row = await self._one(Q["next_available_at"], {})
        return None if row is None or row[0] is None else float(row[0])

    async def finish_run(self, run_id: str, status: RunStatus, output: Any, updated_at: str) -> None:
        params = {"run_id": run_id, "status": status.value, "output": _opt(output), "updated_at": updated_at}
        await self._exec(Q["finish_run"], params)

    async def request_cancel(self, run_id: str, action: CancelAction, updated_at: str) -> None:
        params = {"run_id": run_id, "action": action.value, "updated_at": updated_at}
        await self._exec(Q["request_cancel"], params)

    async def requeue_run(self, run_id: str, updated_at: str) -> None:
        await self._exec(Q["requeue_run"], {"run_id": run_id, "updated_at": updated_at})

    async def runs_leased_by_others(self, now: float) -> list[Run]:
        return [_run(r) for r in await self._all(Q["expired_leases"], {"now": now})]

    async def running_runs(self) -> list[Run]:
        return [_run(r) for r in await self._all(Q["requeue_all_running"], {})]

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
        params: dict[str, Any] = {"thread_id": thread_id, "status": status}
        sql = Q["cancellable_runs"].format(ids=_id_clause("run_id", run_ids, params))
        return [_run(r) for r in await self._all(sql, params)]

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
        return [rows.leased_run(r, _loads) for r in await self._all(Q["leased_runs"], params)]

    async def leased_run(self, run_id: str) -> LeasedRun | None:
        row = await self._one(Q["leased_run"], {"run_id": run_id})
        return None if row is None else rows.leased_run(row, _loads)

    # --- crons --------------------------------------------------------------------------------
    async def insert_cron(self, cron: Cron) -> None:
        await self._exec(Q["insert_cron"], rows.cron_params(cron, _dumps))

    async def get_cron(self, cron_id: str, auth: Json | None = None) -> Cron | None:
        row = await self._one(Q["get_cron"], {"cron_id": cron_id, "auth": _opt(auth)})
        return _cron(row) if row else None

    async def update_cron(self, cron: Cron) -> None:
        await self._exec(Q["update_cron"], rows.cron_params(cron, _dumps))

    async def delete_cron(self, cron_id: str, auth: Json | None = None) -> bool:
        return await self._exec(Q["delete_cron"], {"cron_id": cron_id, "auth": _opt(auth)}) > 0

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
        sql = Q["search_crons"].format(order=_order(sort_by, sort_order, _CRON_ORDER, "created_at"))
        params = {
            "assistant_id": assistant_id,
            "thread_id": thread_id,
            "enabled": None if enabled is None else int(enabled),
            "metadata": _opt(metadata),
            "auth": _opt(auth),
            "limit": limit,
            "offset": offset,
        }
        return [_cron(r) for r in await self._all(sql, params)]

    async def count_crons(
        self, *, assistant_id: str | None, thread_id: str | None, metadata: Json | None, auth: Json | None
    ) -> int:
        params = {"assistant_id": assistant_id, "thread_id": thread_id, "metadata": _opt(metadata), "auth": _opt(auth)}
        row = await self._one(Q["count_crons"], params)
        return int(row[0]) if row else 0

    async def due_crons(self, now: str, limit: int) -> list[Cron]:
        return [_cron(r) for r in await self._all(Q["due_crons"], {"now": now, "limit": limit})]

    async def claim_cron_fire(self, cron_id: str, scheduled_at: str, next_run_date: str | None, fired_at: str) -> bool:
        # The conditional advance first: it fails when the cron moved on, changed or vanished.
        params = {"cron_id": cron_id, "scheduled_at": scheduled_at, "next_run_date": next_run_date}
        if await self._exec(Q["advance_cron"], params) == 0:
            return False
        fire = {"cron_id": cron_id, "scheduled_at": scheduled_at, "fired_at": fired_at}
        if await self._exec(Q["insert_cron_fire"], fire) == 0:
            return False
        await self._exec(Q["prune_cron_fires"], {"cron_id": cron_id, "before": scheduled_at})
        return True


def isoformat_now() -> str:
    return isoformat(now())
