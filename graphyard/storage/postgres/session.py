"""PostgreSQL's driver for the shared session: our named queries on one pooled psycopg connection, and
the one place driver errors are translated."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson
import psycopg
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from graphyard.records import Json
from graphyard.storage.errors import Unavailable, UniqueViolation
from graphyard.storage.postgres.filters import auth_clause
from graphyard.storage.queries import load_queries
from graphyard.storage.sql_session import SqlSession

Q = load_queries("graphyard.storage.postgres")
_CLAIM_ATTEMPTS = 5


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


def json_loads(data: str | bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # jsonb holds numbers orjson refuses (integers past 64 bits); the standard library takes them.
        return json.loads(data)


class PostgresDriver:
    """JSON travels as text cast to jsonb and comes back decoded (json_loads, set on every pooled
    connection); id lists are text[]; auth filters compile to jsonb conditions the GIN index serves."""

    queries = Q

    def __init__(self, conn: AsyncConnection[DictRow], origin: str) -> None:
        self._conn = conn
        self.origin = origin

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
            return cur.rowcount

    async def claim(self, sql: str, params: Mapping[str, Any]) -> DictRow | None:
        # FOR UPDATE SKIP LOCKED lets concurrent claimers pass each other, but two may still pick runs of
        # the same thread; the partial unique index (one running run per thread) refuses the second.
        for _ in range(_CLAIM_ATTEMPTS):
            try:
                # A savepoint, so that losing the race leaves the caller's transaction usable.
                with translated():
                    async with self._conn.transaction():
                        cur = await self._conn.execute(sql, params)
                        return await cur.fetchone()
            except UniqueViolation:
                # Another worker started a run on this thread between our look and our update: nothing
                # was claimed, look again.
                continue
        return None


class PostgresSession(SqlSession):
    """The Session port on one pooled connection (in a transaction, or autocommit for reads)."""

    def __init__(self, conn: AsyncConnection[DictRow], origin: str) -> None:
        super().__init__(PostgresDriver(conn, origin))
