"""Create and remove the throwaway PostgreSQL databases and Redis key prefixes that test runs use.

    python scripts/backends.py create-db NAME      (prints the database URI)
    python scripts/backends.py drop-db NAME
    python scripts/backends.py redis-clean PREFIX

Server URLs come from GRAPHYARD_TEST_POSTGRES_URL and GRAPHYARD_TEST_REDIS_URL (this machine's by default).
"""

from __future__ import annotations

import os
import sys

import psycopg
import redis
from psycopg import sql

ADMIN_URL = os.environ.get("GRAPHYARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("GRAPHYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def database_uri(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


def create_db(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    print(database_uri(name))


def drop_db(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def redis_clean(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("create-db", "drop-db", "redis-clean"):
        print(__doc__, file=sys.stderr)
        return 2
    command, name = argv
    {"create-db": create_db, "drop-db": drop_db, "redis-clean": redis_clean}[command](name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
