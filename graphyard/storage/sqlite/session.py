"""SQLite's driver for the shared session: our named queries on one sqlite3 connection.

Statements run inline on the event loop: on a local WAL file they take microseconds, less than a
thread hop would (see saver.py); the storage's write lock keeps writers from meeting inside SQLite,
which is also what makes a claim one plain UPDATE here (queries.sql, claim_run): nobody can start a run
on the thread between the statement's look and its update.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from graphyard.records import Json, Thread
from graphyard.storage import rows
from graphyard.storage.errors import UniqueViolation
from graphyard.storage.filters import auth_match, contains
from graphyard.storage.queries import load_queries
from graphyard.storage.sql_session import SqlSession

Q = load_queries("graphyard.storage.sqlite")


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _loads(text: str | bytes | None) -> Any:
    return None if text is None else orjson.loads(text)


def sql_contains(doc: str | None, want: str) -> bool:
    return contains(_loads(doc), _loads(want))


def sql_auth(doc: str | None, flt: str) -> bool:
    return auth_match(_loads(doc), _loads(flt))


class SqliteDriver:
    """JSON travels as text (filters run in Python via graphyard_contains/graphyard_auth), id lists as a
    JSON array read with json_each."""

    queries = Q
    origin = ""  # wake-ups are in-process (SqliteStorage.notify_work)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def encode(self, value: Any) -> str:
        return _dumps(value)

    def decode(self, value: Any) -> Any:
        return _loads(value)

    def id_list(self, ids: Sequence[str]) -> Any:
        return _dumps(list(ids))

    def auth(self, flt: Json | None, params: dict[str, Any]) -> str:
        if flt is None:
            return "1"
        params["auth"] = _dumps(flt)
        return "graphyard_auth(metadata, :auth)"

    def order(self, column: str, descending: bool, *, nocase: bool) -> str:
        direction = "DESC" if descending else "ASC"
        collate = " COLLATE NOCASE" if nocase else ""
        return f'"{column}"{collate} {direction}, rowid {direction}'

    def _cursor(self, sql: str, params: Mapping[str, Any]) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc) or "PRIMARY KEY" in str(exc):
                raise UniqueViolation(str(exc)) from exc
            raise

    async def one(self, sql: str, params: Mapping[str, Any]) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._cursor(sql, params).fetchone()
        return row

    async def all(self, sql: str, params: Mapping[str, Any]) -> list[sqlite3.Row]:
        return self._cursor(sql, params).fetchall()

    async def execute(self, sql: str, params: Mapping[str, Any]) -> int:
        return self._cursor(sql, params).rowcount

    async def write(self, sql: str, params: Mapping[str, Any]) -> None:
        self._cursor(sql, params)


class SqliteSession(SqlSession):
    """The Session port on one sqlite3 connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._driver = SqliteDriver(conn)
        super().__init__(self._driver)

    async def get_thread(
        self, thread_id: str, auth: Json | None = None, *, values: bool = True, encoded_values: bool = False
    ) -> Thread | None:
        if not (values and encoded_values):
            return await super().get_thread(thread_id, auth, values=values)
        # SQLite holds the values as JSON text already: hand them on as a fragment orjson copies verbatim.
        params: dict[str, Any] = {"thread_id": thread_id}
        row = await self._driver.one(Q["get_thread"].format(auth=self._driver.auth(auth, params)), params)
        if row is None:
            return None
        stored = row["values"]
        thread = rows.thread({**dict(row), "values": None}, _loads)
        return thread if stored is None else dataclasses.replace(thread, values=orjson.Fragment(stored))
