"""PostgreSQL storage: one psycopg pool shared by our queries, LangGraph's saver and its store.

Runs are claimed in one statement with FOR UPDATE SKIP LOCKED. Statements that make a run runnable
NOTIFY graphyard_runs inside their transaction, so the wake-up is delivered at commit to every
process; wait_for_work listens on a dedicated connection that reconnects when it drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
import psycopg
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.store.base import BaseStore
from langgraph.store.postgres.aio import AsyncPostgresStore
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool

from graphyard.records import (
    Assistant,
    AssistantVersion,
    CancelAction,
    Json,
    Run,
    RunStatus,
    Thread,
    ThreadStatus,
    isoformat,
    now,
)
from graphyard.storage.errors import Unavailable, UniqueViolation
from graphyard.storage.migrate import Migration, as_migrations
from graphyard.storage.migrate import migrate as run_migrations
from graphyard.storage.postgres.filters import auth_clause
from graphyard.storage.queries import load_migrations, load_queries

Q = load_queries("graphyard.storage.postgres")
MIGRATIONS = as_migrations(load_migrations("graphyard.storage.postgres"))

# pg_advisory_lock key for migrations: the bytes "graphyar" as a signed bigint.
MIGRATION_LOCK_KEY = int.from_bytes(b"graphyar", "big", signed=True)
MIGRATION_LOCK_DEADLINE = 300.0
_CLAIM_ATTEMPTS = 5

_ASSISTANT_ORDER = {"assistant_id", "graph_id", "name", "created_at", "updated_at"}
_THREAD_ORDER = {"thread_id", "status", "created_at", "updated_at", "state_updated_at"}
_NOCASE = {"name", "graph_id"}

Pool = AsyncConnectionPool[AsyncConnection[DictRow]]
log = logging.getLogger(__name__)


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Driver errors become storage errors, here and nowhere else."""
    try:
        yield
    except psycopg.errors.UniqueViolation as exc:
        raise UniqueViolation(exc.diag.constraint_name or "unknown") from exc
    except psycopg.OperationalError as exc:  # also psycopg_pool.PoolTimeout
        raise Unavailable(f"PostgreSQL unavailable: {exc}") from exc


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _opt(value: Any) -> str | None:
    return None if value is None else _dumps(value)


def _json_loads(data: str | bytes) -> Any:
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


def _assistant(row: DictRow) -> Assistant:
    return Assistant(
        assistant_id=row["assistant_id"],
        graph_id=row["graph_id"],
        config=row["config"],
        context=row["context"],
        metadata=row["metadata"],
        name=row["name"],
        description=row["description"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _version(row: DictRow) -> AssistantVersion:
    return AssistantVersion(
        assistant_id=row["assistant_id"],
        graph_id=row["graph_id"],
        config=row["config"],
        context=row["context"],
        metadata=row["metadata"],
        name=row["name"],
        description=row["description"],
        version=row["version"],
        created_at=row["created_at"],
    )


def _thread(row: DictRow) -> Thread:
    return Thread(
        thread_id=row["thread_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        state_updated_at=row["state_updated_at"],
        metadata=row["metadata"],
        status=ThreadStatus(row["status"]),
        config=row["config"],
        values=row["values"],
        interrupts=row["interrupts"],
        error=row["error"],
    )


def _run(row: DictRow) -> Run:
    return Run(
        run_id=row["run_id"],
        thread_id=row["thread_id"],
        assistant_id=row["assistant_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        status=RunStatus(row["status"]),
        metadata=row["metadata"],
        kwargs=row["kwargs"],
        multitask_strategy=row["multitask_strategy"],
        available_at=row["available_at"],
        attempt=row["attempt"],
        cancel_action=CancelAction(row["cancel_action"]) if row["cancel_action"] else None,
        output=row["output"],
        temporary=row["temporary"],
    )


def _assistant_params(a: Assistant) -> dict[str, Any]:
    return {
        "assistant_id": a.assistant_id,
        "graph_id": a.graph_id,
        "config": _dumps(a.config),
        "context": _dumps(a.context),
        "metadata": _dumps(a.metadata),
        "name": a.name,
        "description": a.description,
        "version": a.version,
        "created_at": a.created_at,
        "updated_at": a.updated_at,
    }


class PostgresSession:
    """Our queries on one pooled connection (in a transaction, or autocommit for reads)."""

    def __init__(self, conn: AsyncConnection[DictRow]) -> None:
        self._conn = conn

    async def _one(self, sql: str, params: dict[str, Any]) -> DictRow | None:
        with _translated():
            cur = await self._conn.execute(sql, params)
            return await cur.fetchone()

    async def _all(self, sql: str, params: dict[str, Any]) -> list[DictRow]:
        with _translated():
            cur = await self._conn.execute(sql, params)
            return await cur.fetchall()

    async def _exec(self, sql: str, params: dict[str, Any]) -> int:
        with _translated():
            cur = await self._conn.execute(sql, params)
            return cur.rowcount

    # --- assistants ---------------------------------------------------------------------------
    async def insert_assistant(self, assistant: Assistant) -> None:
        params = _assistant_params(assistant)
        # ON CONFLICT DO NOTHING rather than catching the error: the transaction stays usable, as on SQLite.
        if await self._one(Q["insert_assistant"], params) is None:
            raise UniqueViolation("graphyard_assistants_pkey")
        await self._exec(Q["insert_assistant_version"], params)

    async def get_assistant(self, assistant_id: str, auth: Json | None = None) -> Assistant | None:
        params: dict[str, Any] = {"assistant_id": assistant_id}
        row = await self._one(Q["get_assistant"].format(auth=auth_clause(auth, params)), params)
        return _assistant(row) if row else None

    async def update_assistant(self, assistant: Assistant, *, new_version: bool) -> None:
        params = _assistant_params(assistant)
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
        params = {
            "thread_id": thread.thread_id,
            "created_at": thread.created_at,
            "updated_at": thread.updated_at,
            "state_updated_at": thread.state_updated_at,
            "metadata": _dumps(thread.metadata),
            "status": thread.status.value,
            "config": _dumps(thread.config),
            "values": _opt(thread.values),
            "interrupts": _dumps(thread.interrupts),
            "error": _opt(thread.error),
        }
        if await self._one(Q["insert_thread"], params) is None:
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

    # --- runs ---------------------------------------------------------------------------------
    async def insert_run(self, run: Run) -> None:
        params = {
            "run_id": run.run_id,
            "thread_id": run.thread_id,
            "assistant_id": run.assistant_id,
            "created_at": run.created_at,
            "updated_at": run.updated_at,
            "status": run.status.value,
            "metadata": _dumps(run.metadata),
            "kwargs": _dumps(run.kwargs),
            "multitask_strategy": str(run.multitask_strategy),
            "available_at": run.available_at,
            "attempt": run.attempt,
            "temporary": run.temporary,
        }
        if await self._one(Q["insert_run"], params) is None:
            raise UniqueViolation("graphyard_runs_pkey")

    async def get_run(self, run_id: str, thread_id: str | None = None) -> Run | None:
        row = await self._one(Q["get_run"], {"run_id": run_id, "thread_id": thread_id})
        return _run(row) if row else None

    async def list_runs(self, thread_id: str, *, status: str | None, limit: int, offset: int) -> list[Run]:
        params = {"thread_id": thread_id, "status": status, "limit": limit, "offset": offset}
        return [_run(r) for r in await self._all(Q["list_runs"], params)]

    async def inflight_runs(self, thread_id: str) -> list[Run]:
        return [_run(r) for r in await self._all(Q["inflight_runs"], {"thread_id": thread_id})]

    async def delete_run(self, run_id: str) -> bool:
        row = await self._one(Q["delete_run"], {"run_id": run_id})
        return row is not None and row["deleted"] > 0

    async def claim_run(self, worker_id: str, now: float, lease_seconds: float) -> Run | None:
        params = {
            "worker_id": worker_id,
            "now": now,
            "lease_expires_at": now + lease_seconds,
            "updated_at": isoformat_now(),
        }
        for _ in range(_CLAIM_ATTEMPTS):
            try:
                # A savepoint, so that losing the race below leaves the caller's transaction usable.
                with _translated():
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
        return [_run(r) for r in await self._all(Q["running_runs"], {})]

    async def renew_leases(self, worker_id: str, expires_at: float) -> None:
        await self._exec(Q["renew_leases"], {"worker_id": worker_id, "lease_expires_at": expires_at})

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


def isoformat_now() -> str:
    return isoformat(now())


class _Migrator:
    """The migration runner's view of PostgreSQL: a session advisory lock on a dedicated connection."""

    def __init__(self, conn: AsyncConnection[DictRow], saver: AsyncPostgresSaver, store: AsyncPostgresStore) -> None:
        self._conn = conn
        self._saver = saver
        self._store = store

    @asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        # Poll pg_try_advisory_lock instead of blocking in pg_advisory_lock: a backend blocked inside
        # a statement holds a snapshot, and the CREATE INDEX CONCURRENTLY in LangGraph's setup (run by
        # the lock holder) waits for every older snapshot, so a blocked waiter would deadlock it.
        deadline = time.monotonic() + MIGRATION_LOCK_DEADLINE
        delay = 0.02
        while True:
            cur = await self._conn.execute(Q["try_migration_lock"], {"key": MIGRATION_LOCK_KEY})
            row = await cur.fetchone()
            if row is not None and row["locked"]:
                break
            if time.monotonic() > deadline:
                raise Unavailable(f"another process held the migration lock for {MIGRATION_LOCK_DEADLINE:.0f}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
        try:
            yield
        finally:
            await self._conn.execute(Q["migration_unlock"], {"key": MIGRATION_LOCK_KEY})

    async def applied(self) -> set[int]:
        await self._conn.execute(Q["migrations_table"])
        cur = await self._conn.execute(Q["applied_migrations"])
        return {row["version"] for row in await cur.fetchall()}

    async def apply(self, migration: Migration) -> None:
        async with self._conn.transaction():
            # A whole file in one simple-protocol call; it holds no parameters.
            await self._conn.execute(migration.sql.encode(), prepare=False)
            await self._conn.execute(Q["record_migration"], {"version": migration.number, "name": migration.name})

    async def after(self) -> None:
        # On pooled autocommit connections: their migrations include CREATE INDEX CONCURRENTLY.
        await self._saver.setup()
        await self._store.setup()


async def _configure(conn: AsyncConnection[DictRow]) -> None:
    set_json_loads(_json_loads, conn)


class PostgresStorage:
    """The production backend: a connection pool on one PostgreSQL database."""

    def __init__(self, uri: str, pool: Pool, saver: AsyncPostgresSaver, store: AsyncPostgresStore) -> None:
        self._uri = uri
        self._pool = pool
        self._saver = saver
        self._store = store
        self._work = asyncio.Event()
        self._listen_lock = asyncio.Lock()
        self._listen_conn: AsyncConnection[DictRow] | None = None
        self._listener: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, uri: str, *, min_size: int = 2, max_size: int = 20, timeout: float = 10.0) -> PostgresStorage:
        """Open a pool on `uri` and bring our schema, the saver's and the store's up to date."""
        pool: Pool = AsyncConnectionPool(
            uri,
            connection_class=AsyncConnection[DictRow],
            # What LangGraph's saver and store require of the connections they are handed.
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            configure=_configure,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            open=False,
            name="graphyard",
        )
        try:
            with _translated():
                await pool.open(wait=True, timeout=timeout)
            self = cls(uri, pool, AsyncPostgresSaver(pool), AsyncPostgresStore(pool))
            await self.migrate()
        except BaseException:
            await pool.close()
            raise
        return self

    async def migrate(self) -> list[int]:
        """Apply pending migrations and LangGraph's setup, once across all processes; the numbers applied."""
        with _translated():
            conn = await AsyncConnection.connect(self._uri, autocommit=True, row_factory=dict_row)
            async with conn:
                return await run_migrations(_Migrator(conn, self._saver, self._store), MIGRATIONS)

    @property
    def checkpointer(self) -> BaseCheckpointSaver[Any]:
        return self._saver

    @property
    def store(self) -> BaseStore:
        return self._store

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresSession]:
        with _translated():
            async with self._pool.connection() as conn, conn.transaction():
                yield PostgresSession(conn)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[PostgresSession]:
        with _translated():
            async with self._pool.connection() as conn:
                yield PostgresSession(conn)

    def notify_work(self) -> None:
        self._work.set()

    async def wait_for_work(self, timeout: float | None) -> None:
        if self._listener is None:
            await self._start_listening()
        try:
            await asyncio.wait_for(self._work.wait(), timeout)
        except TimeoutError:
            pass
        self._work.clear()

    async def _start_listening(self) -> None:
        async with self._listen_lock:
            if self._listener is not None:
                return
            self._listen_conn = await self._subscribe()
            self._listener = asyncio.create_task(self._listen(), name="graphyard-pg-listener")

    async def _subscribe(self) -> AsyncConnection[DictRow]:
        with _translated():
            conn = await AsyncConnection.connect(self._uri, autocommit=True, row_factory=dict_row)
            await conn.execute(Q["listen"])
        # A NOTIFY sent before LISTEN took effect is lost: wake once so the caller looks again.
        self._work.set()
        return conn

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            conn = self._listen_conn
            if conn is not None:
                try:
                    async for _ in conn.notifies():
                        self._work.set()
                except psycopg.OperationalError as exc:
                    log.warning("lost the LISTEN connection, reconnecting: %s", exc)
                await conn.close()
                self._listen_conn = None
            try:
                self._listen_conn = await self._subscribe()
                delay = 0.1
            except Unavailable as exc:
                # Until it is back, workers fall back to their idle timeout.
                log.warning("cannot LISTEN yet, retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._listen_conn is not None:
            await self._listen_conn.close()
            self._listen_conn = None
        await self._pool.close()
