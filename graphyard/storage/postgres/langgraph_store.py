"""LangGraph's PostgreSQL store as graphyard uses it: driver errors translated to storage errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from langgraph.store.postgres.aio import AsyncPostgresStore
from psycopg import AsyncCursor
from psycopg.rows import DictRow

from graphyard.storage.postgres.session import translated


class TranslatingPostgresStore(AsyncPostgresStore):
    """AsyncPostgresStore whose psycopg errors surface as storage errors (Unavailable), like our own
    queries: a graph's `runtime.store` call during a database outage then ends only the attempt, which
    is retried from its checkpoint, instead of failing the run as if the graph had raised; and the
    /store routes answer 503 instead of 500."""

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        with translated():
            async with super()._cursor(pipeline=pipeline) as cur:
                yield cur
