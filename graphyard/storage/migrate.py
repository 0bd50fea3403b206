"""The migration runner: numbered files applied in order, each atomically with its version row, under a lock.

The runner knows no SQL. A backend supplies a `MigrationTarget` that takes its cross-process lock,
reads the applied versions, applies one migration together with its bookkeeping row in a single
transaction, and finally runs LangGraph's own `setup()` while the lock is still held, because that
setup is not safe to run from several processes at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered migration file."""

    number: int
    name: str
    sql: str


class MigrationTarget(Protocol):
    """What the runner needs from a database."""

    def locked(self) -> AbstractAsyncContextManager[None]:
        """Hold the cross-process migration lock for the duration of the block."""

    async def applied(self) -> set[int]:
        """The versions already applied (creating the bookkeeping table if needed)."""

    async def apply(self, migration: Migration) -> None:
        """Run the migration and record its version row in one transaction."""

    async def after(self) -> None:
        """Work that must also run under the lock once our schema is current (LangGraph's setup)."""


def as_migrations(found: Sequence[tuple[int, str, str]]) -> list[Migration]:
    """Check that numbers run 1, 2, 3… without gaps or repeats, and wrap them."""
    migrations = [Migration(number, name, sql) for number, name, sql in sorted(found)]
    numbers = [m.number for m in migrations]
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"migration numbers must be contiguous from 1, found {numbers}")
    return migrations


async def migrate(target: MigrationTarget, migrations: Sequence[Migration]) -> list[int]:
    """Apply every pending migration in order; return the numbers this call applied."""
    done: list[int] = []
    async with target.locked():
        applied = await target.applied()
        for migration in migrations:
            if migration.number not in applied:
                await target.apply(migration)
                done.append(migration.number)
        await target.after()
    return done
