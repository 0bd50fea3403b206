"""PostgreSQL storage: one psycopg pool shared by our queries, LangGraph's saver and its store.

Runs are claimed in one statement with FOR UPDATE SKIP LOCKED (a function, migrations/0006). Write
transactions run in pipeline mode (session.pipelined_transaction). Statements that make a run runnable
NOTIFY graphyard_runs inside their transaction, so the wake-up is delivered at commit to every
process; wait_for_work listens on a dedicated connection that reconnects when it drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore
from langgraph.store.postgres.aio import AsyncPostgresStore
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool

from graphyard.logs import backoff
from graphyard.records import Lease, Run
from graphyard.storage import rows
from graphyard.storage.errors import StoreUnsupported, Unavailable
from graphyard.storage.migrate import Migration, as_migrations
from graphyard.storage.migrate import migrate as run_migrations
from graphyard.storage.ports import StoreOptions
from graphyard.storage.postgres.langgraph_store import TranslatingPostgresStore
from graphyard.storage.postgres.saver import FencedPostgresSaver, TranslatingPostgresSaver
from graphyard.storage.postgres.session import PostgresSession, Q, json_loads, pipelined_transaction, translated
from graphyard.storage.queries import load_migrations
from graphyard.storage.sql_session import claim_params

MIGRATIONS = as_migrations(load_migrations("graphyard.storage.postgres"))

# pg_advisory_lock key for migrations: the bytes "graphyar" as a signed bigint.
MIGRATION_LOCK_KEY = int.from_bytes(b"graphyar", "big", signed=True)
MIGRATION_LOCK_DEADLINE = 300.0
# How long a caller waits for a pooled connection: while PostgreSQL is away, a request answers 503 in
# about this long instead of hanging (the pool keeps reconnecting in the background).
CONNECT_TIMEOUT_SECONDS = 2.0
# A process frozen inside one of our (short) transactions (paused, swapped out, partitioned) would hold its
# row locks forever, and a fenced lease's share lock would then block every takeover of its run: PostgreSQL
# ends such a session after this long, releasing them.
IDLE_IN_TRANSACTION_SECONDS = 10

Pool = AsyncConnectionPool[AsyncConnection[DictRow]]
log = logging.getLogger(__name__)


class _Migrator:
    """The migration runner's view of PostgreSQL: a session advisory lock on a dedicated connection."""

    def __init__(
        self, conn: AsyncConnection[DictRow], saver: TranslatingPostgresSaver, store: AsyncPostgresStore
    ) -> None:
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


async def check_vector_extension(uri: str) -> None:
    """store.index on PostgreSQL is LangGraph's store with pgvector: the server must offer "vector"."""
    with translated():
        conn = await AsyncConnection.connect(uri, autocommit=True, row_factory=dict_row)
        async with conn:
            cur = await conn.execute(Q["vector_extension"])
            found = await cur.fetchone()
    if found is None:
        where = uri.split("@")[-1]
        raise StoreUnsupported(
            f'"store.index" needs the PostgreSQL extension "vector" (pgvector), which the server at {where} '
            "does not have; install pgvector on it (https://github.com/pgvector/pgvector) or remove store.index"
        )


def _as_is(value: Any) -> Any:
    return value  # jsonb columns arrive decoded (json_loads, set by _configure)


async def _configure(conn: AsyncConnection[DictRow]) -> None:
    set_json_loads(json_loads, conn)


class PostgresStorage:
    """The production backend: a connection pool on one PostgreSQL database."""

    def __init__(self, uri: str, pool: Pool, saver: TranslatingPostgresSaver, store: AsyncPostgresStore) -> None:
        self._uri = uri
        self._pool = pool
        self._saver = saver
        self._store = store
        self._work = asyncio.Event()
        self._origin = uuid.uuid4().hex
        self._listen_lock = asyncio.Lock()
        self._listen_conn: AsyncConnection[DictRow] | None = None
        self._listener: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        uri: str,
        *,
        store: StoreOptions | None = None,
        min_size: int = 2,
        max_size: int = 20,
        timeout: float = CONNECT_TIMEOUT_SECONDS,
    ) -> PostgresStorage:
        """Open a pool on `uri` and bring our schema, the saver's and the store's up to date."""
        options = store or StoreOptions()
        if options.index is not None:
            await check_vector_extension(uri)
        pool: Pool = AsyncConnectionPool(
            uri,
            connection_class=AsyncConnection[DictRow],
            # What LangGraph's saver and store require of the connections they are handed.
            kwargs={
                "autocommit": True,
                "prepare_threshold": 0,
                "row_factory": dict_row,
                "connect_timeout": max(1, round(timeout)),
                "options": f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_SECONDS * 1000}",
            },
            configure=_configure,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            open=False,
            name="graphyard",
        )
        try:
            with translated():
                await pool.open(wait=True, timeout=timeout)
            langgraph_store = TranslatingPostgresStore(pool, index=options.index, ttl=options.ttl)  # type: ignore[arg-type]
            self = cls(uri, pool, TranslatingPostgresSaver(pool), langgraph_store)
            await self.migrate()
            if options.ttl:
                await langgraph_store.start_ttl_sweeper()
        except BaseException:
            await pool.close()
            raise
        return self

    async def migrate(self) -> list[int]:
        """Apply pending migrations and LangGraph's setup, once across all processes; the numbers applied."""
        with translated():
            conn = await AsyncConnection.connect(self._uri, autocommit=True, row_factory=dict_row)
            async with conn:
                return await run_migrations(_Migrator(conn, self._saver, self._store), MIGRATIONS)

    @property
    def checkpointer(self) -> BaseCheckpointSaver[Any]:
        return self._saver

    @property
    def store(self) -> BaseStore:
        return self._store

    def fenced_checkpointer(self, lease: Lease) -> BaseCheckpointSaver[Any]:
        saver = FencedPostgresSaver(self._pool, lease, serde=self._saver.serde)
        saver.metadata_codec = self._saver.metadata_codec
        return saver

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresSession]:
        with translated():
            async with self._pool.connection() as conn, pipelined_transaction(conn) as pipeline:
                yield PostgresSession(conn, self._origin, pipeline)

    async def claim_next(self, worker_id: str, now: float, lease_seconds: float) -> tuple[Run | None, float | None]:
        # Both statements and the Sync that commits them travel together: one round trip, where a
        # transaction() with BEGIN and COMMIT around them took three.
        params = claim_params(worker_id, now, lease_seconds)
        with translated():
            async with self._pool.connection() as conn:
                async with conn.pipeline():
                    claimed = await conn.execute(Q["claim_run"], params)
                    due = await conn.execute(Q["next_available_at"])
                row = await claimed.fetchone()
                at = await due.fetchone()
        run = rows.run(row, _as_is) if row is not None else None
        return run, None if at is None or at["at"] is None else float(at["at"])

    @asynccontextmanager
    async def read(self) -> AsyncIterator[PostgresSession]:
        with translated():
            async with self._pool.connection() as conn:
                yield PostgresSession(conn, self._origin)

    async def ping(self) -> None:
        with translated():
            async with self._pool.connection() as conn:
                await conn.execute(Q["ping"])

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
            try:
                self._listen_conn = await self._subscribe()
            except Unavailable:
                # The listener keeps trying by itself: until the database is back, workers fall back
                # to their idle timeout.
                self._listen_conn = None
            self._listener = asyncio.create_task(self._listen(), name="graphyard-pg-listener")

    async def _subscribe(self) -> AsyncConnection[DictRow]:
        with translated():
            conn = await AsyncConnection.connect(
                self._uri, autocommit=True, row_factory=dict_row, connect_timeout=round(CONNECT_TIMEOUT_SECONDS)
            )
            await conn.execute(Q["listen"])
        # A NOTIFY sent before LISTEN took effect is lost: wake once so the caller looks again.
        self._work.set()
        return conn

    async def _listen(self) -> None:
        failures = 0
        lost = False
        while True:
            conn = self._listen_conn
            if conn is not None:
                try:
                    async for note in conn.notifies():
                        # Our own NOTIFYs follow a local notify_work(); waking again would only
                        # make an empty claim.
                        if note.payload != self._origin:
                            self._work.set()
                except psycopg.OperationalError as exc:
                    lost = True
                    log.warning("lost the LISTEN connection to PostgreSQL, reconnecting with backoff: %s", exc)
                with contextlib.suppress(psycopg.Error):
                    await conn.close()
                self._listen_conn = None
            try:
                self._listen_conn = await self._subscribe()
            except Unavailable as exc:
                if not lost:  # one line per outage, not one per attempt
                    lost = True
                    log.warning("cannot LISTEN on PostgreSQL, retrying with backoff: %s", exc)
                failures += 1
                await asyncio.sleep(backoff(failures, base=0.1, cap=5.0))
                continue
            if lost:
                log.warning("LISTEN connection to PostgreSQL is back")
            lost = False
            failures = 0

    async def close(self) -> None:
        await self._store.stop_ttl_sweeper(timeout=5.0)
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._listen_conn is not None:
            await self._listen_conn.close()
            self._listen_conn = None
        await self._pool.close()
