"""SQLite storage: one WAL file holding our tables, LangGraph's checkpoints and its store.

All writers (our transactions, the saver, the store) share one asyncio lock, so there is exactly
one writer at a time in this process and "database is locked" cannot come from ourselves.
Reads use a separate connection and see committed data only.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore
from langgraph.store.sqlite.aio import AsyncSqliteStore

from graphyard.records import Lease, Run
from graphyard.storage.errors import StoreUnsupported, Unavailable
from graphyard.storage.ports import StoreOptions
from graphyard.storage.queries import load_migrations
from graphyard.storage.sqlite.saver import FencedSqliteSaver, InlineSqliteSaver
from graphyard.storage.sqlite.session import SqliteSession, sql_auth, sql_contains

MIGRATIONS = load_migrations("graphyard.storage.sqlite")

_PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=10000", "foreign_keys=ON")


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    for pragma in _PRAGMAS:
        conn.execute(f"PRAGMA {pragma}")
    conn.create_function("graphyard_contains", 2, sql_contains, deterministic=True)
    conn.create_function("graphyard_auth", 2, sql_auth, deterministic=True)
    return conn


def check_extension_loading() -> None:
    """store.index on SQLite is LangGraph's store with sqlite-vec, a loadable extension: this Python's
    sqlite3 must be able to load extensions (some builds, e.g. pyenv's default, cannot)."""
    if not hasattr(sqlite3.Connection, "enable_load_extension"):
        raise StoreUnsupported(
            '"store.index" needs the sqlite-vec extension, but this Python\'s sqlite3 cannot load extensions '
            f"({sys.executable}); run graphyard on a Python built with --enable-loadable-sqlite-extensions "
            "(most system and python.org builds), or remove store.index"
        )


async def _connect_store(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    for pragma in _PRAGMAS:
        await conn.execute(f"PRAGMA {pragma}")
    return conn


class SqliteStorage:
    """The embedded backend: everything in one SQLite file."""

    def __init__(
        self,
        writer: sqlite3.Connection,
        reader: sqlite3.Connection,
        store_conn: aiosqlite.Connection,
        lock: asyncio.Lock,
        saver: InlineSqliteSaver,
        store: AsyncSqliteStore,
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._store_conn = store_conn
        self._lock = lock
        self._saver = saver
        self._store = store
        self._work = asyncio.Event()

    @classmethod
    async def open(cls, path: Path, *, store: StoreOptions | None = None) -> SqliteStorage:
        options = store or StoreOptions()
        if options.index is not None:
            check_extension_loading()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            writer = _connect(path)
            reader = _connect(path)
            store_conn = await _connect_store(path)
        except sqlite3.Error as exc:
            raise Unavailable(f"cannot open SQLite database {path}: {exc}") from exc
        lock = asyncio.Lock()
        # Sharing the lock makes the saver and store wait for our transactions instead of failing.
        saver = InlineSqliteSaver(writer, lock)
        langgraph_store = AsyncSqliteStore(store_conn, index=options.index, ttl=options.ttl)
        langgraph_store.lock = lock
        self = cls(writer, reader, store_conn, lock, saver, langgraph_store)
        await self._migrate()
        async with lock:
            saver.setup()
        await langgraph_store.setup()
        if options.ttl:
            await langgraph_store.start_ttl_sweeper()
        return self

    async def _migrate(self) -> None:
        async with self._lock:
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                self._writer.execute(
                    "CREATE TABLE IF NOT EXISTS graphyard_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)"
                )
                done = {row[0] for row in self._writer.execute("SELECT version FROM graphyard_migrations")}
                for number, name, sql in MIGRATIONS:
                    if number in done:
                        continue
                    code = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
                    for statement in code.split(";"):
                        if statement.strip():
                            self._writer.execute(statement)
                    self._writer.execute(
                        "INSERT INTO graphyard_migrations (version, name) VALUES (?, ?)", (number, name)
                    )
                self._writer.commit()
            except BaseException:
                self._writer.rollback()
                raise

    @property
    def checkpointer(self) -> BaseCheckpointSaver[Any]:
        return self._saver

    @property
    def store(self) -> BaseStore:
        return self._store

    def fenced_checkpointer(self, lease: Lease) -> BaseCheckpointSaver[Any]:
        saver = FencedSqliteSaver(self._writer, self._lock, lease)
        saver.serde = self._saver.serde
        saver.metadata_codec = self._saver.metadata_codec
        saver.is_setup = True  # the storage ran setup() at open; a fresh saver must not run it per run
        return saver

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteSession]:
        async with self._lock:
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield SqliteSession(self._writer)
            except BaseException:
                self._writer.rollback()
                raise
            self._writer.commit()

    async def claim_next(self, worker_id: str, now: float, lease_seconds: float) -> tuple[Run | None, float | None]:
        async with self.transaction() as tx:
            run = await tx.claim_run(worker_id, now, lease_seconds)
            return run, await tx.next_available_at()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[SqliteSession]:
        yield SqliteSession(self._reader)

    async def ping(self) -> None:
        return None  # a local file: if it was opened, it answers

    def notify_work(self) -> None:
        self._work.set()

    async def wait_for_work(self, timeout: float | None) -> None:
        try:
            await asyncio.wait_for(self._work.wait(), timeout)
        except TimeoutError:
            pass
        self._work.clear()

    async def close(self) -> None:
        await self._store.stop_ttl_sweeper(timeout=5.0)
        await self._store_conn.close()
        async with self._lock:
            self._reader.close()
            self._writer.close()
