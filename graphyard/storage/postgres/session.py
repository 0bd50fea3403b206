"""PostgreSQL's driver for the shared session: our named queries on one pooled psycopg connection, the
one place driver errors are translated, and write transactions sent in pipeline mode.

A transaction costs round trips, not statements: in pipeline mode BEGIN travels with the first statement,
a write whose answer nobody reads (Driver.write) travels with the next statement that is read, and COMMIT
with the last writes. So a run's finish (check the lease, record the thread's state, finish the run) is two
round trips instead of five, and its creation four instead of six.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

import orjson
import psycopg
from psycopg import AsyncConnection, AsyncPipeline
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow

from graphyard.records import Json
from graphyard.storage.errors import LeaseLost, Unavailable, UniqueViolation
from graphyard.storage.postgres.filters import auth_clause
from graphyard.storage.queries import load_queries
from graphyard.storage.sql_session import SqlSession

Q = load_queries("graphyard.storage.postgres")
# What graphyard_hold_lease (migrations/0007) raises when a lease is no longer current.
LEASE_LOST_SQLSTATE = "GYL01"


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Driver errors become storage errors, here and nowhere else."""
    try:
        yield
    except psycopg.errors.UniqueViolation as exc:
        raise UniqueViolation(exc.diag.constraint_name or "unknown") from exc
    except psycopg.OperationalError as exc:  # also psycopg_pool.PoolTimeout
        raise Unavailable(f"PostgreSQL unavailable: {exc}") from exc
    except psycopg.DatabaseError as exc:
        if exc.sqlstate == LEASE_LOST_SQLSTATE:
            raise LeaseLost(exc.diag.message_primary or str(exc)) from exc
        raise


# jsonb cannot hold U+0000; an escaped NUL (preceded by an even run of backslashes) becomes U+FFFD,
# as the reference answers, instead of failing the write.
_ESCAPED_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _dumps(value: Any) -> str:
    text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    return _ESCAPED_NUL.sub(r"\1\\ufffd", text) if "\\u0000" in text else text


def json_loads(data: str | bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # jsonb holds numbers orjson refuses (integers past 64 bits); the standard library takes them.
        return json.loads(data)


@contextlib.asynccontextmanager
async def pipelined_transaction(conn: AsyncConnection[DictRow]) -> AsyncIterator[AsyncPipeline]:
    """BEGIN … COMMIT on an autocommit connection in pipeline mode; rolled back when the block raises.
    Written out rather than psycopg's transaction(), whose blocks inside a pipeline sync on entry and at
    each exit (three round trips where the COMMIT alone needs one)."""
    try:
        async with conn.pipeline() as pipeline:
            await conn.execute(Q["begin"], prepare=False)
            yield pipeline
            commit = await conn.execute(Q["commit"], prepare=False)
        if commit.statusmessage == "ROLLBACK":
            # A statement failed and its error was caught, so the server rolled back instead (as it would
            # under psycopg's transaction()). Seeing that, psycopg forgets its prepared statements and
            # deallocates them at its next statement; run that one now, before anything is prepared again.
            await conn.execute(Q["ping"], prepare=False)
    finally:
        if conn.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
            # The block raised. Rolled back outside the pipeline, because psycopg answers a ROLLBACK by
            # deallocating every prepared statement at the end of that same call; in a pipeline the
            # deallocation would wait for the next statement and also drop the one it prepares. A broken
            # connection is the pool's to discard; the error that got us here is the one to report.
            with contextlib.suppress(psycopg.Error):
                await conn.execute(Q["rollback"], prepare=False)


class PostgresDriver:
    """JSON travels as text cast to jsonb and comes back decoded (json_loads, set on every pooled
    connection); id lists are text[]; auth filters compile to jsonb conditions the GIN index serves.
    In a pipelined transaction, reading a row flushes what is queued; other statements wait in the queue."""

    queries = Q

    def __init__(self, conn: AsyncConnection[DictRow], origin: str, pipeline: AsyncPipeline | None = None) -> None:
        self._conn = conn
        self.origin = origin
        self._pipeline = pipeline

    def encode(self, value: Any) -> str:
        return _dumps(value)

    def decode(self, value: Any) -> Any:
        return value

    def id_list(self, ids: Sequence[str]) -> Any:
        return list(ids)

    def auth(self, flt: Json | None, params: dict[str, Any]) -> str:
        return auth_clause(flt, params)

    def order(self, column: str, descending: bool, *, nocase: bool) -> str:
        direction = "DESC" if descending else "ASC"
        key = f'lower("{column}")' if nocase else f'"{column}"'
        return f"{key} {direction}, seq {direction}"

    async def one(self, sql: str, params: Mapping[str, Any]) -> DictRow | None:
        with translated():
            cur = await self._conn.execute(sql, params)
            return await cur.fetchone()

    async def all(self, sql: str, params: Mapping[str, Any]) -> list[DictRow]:
        with translated():
            cur = await self._conn.execute(sql, params)
            return await cur.fetchall()

    async def execute(self, sql: str, params: Mapping[str, Any]) -> int:
        with translated():
            cur = await self._conn.execute(sql, params)
            if self._pipeline is not None:
                await self._pipeline.sync()  # the row count arrives with the statement's result
            return cur.rowcount

    async def write(self, sql: str, params: Mapping[str, Any]) -> None:
        with translated():
            await self._conn.execute(sql, params)


class PostgresSession(SqlSession):
    """The Session port on one pooled connection: in a pipelined transaction (pass its pipeline), in one of
    psycopg's transactions, or autocommit for reads."""

    def __init__(self, conn: AsyncConnection[DictRow], origin: str, pipeline: AsyncPipeline | None = None) -> None:
        super().__init__(PostgresDriver(conn, origin, pipeline))
