"""Write transactions as the sessions run them: on PostgreSQL pipelined (BEGIN with the first statement,
unread writes with the next read, COMMIT with the last writes), so these pin what that must not change."""

from __future__ import annotations

import dataclasses

import pytest

from graphyard.storage import Storage
from graphyard.storage.errors import UniqueViolation
from graphyard.storage.postgres.storage import PostgresStorage
from tests.contract.test_storage import Boom, add_threads, make_assistant, make_thread, stamp


async def _reads_work(storage: Storage, thread_id: str) -> None:
    # Each statement twice: the second run of a statement is the one that uses its prepared form.
    for _ in range(2):
        async with storage.read() as db:
            assert await db.get_thread(thread_id) is not None
            assert await db.count_threads(metadata=None, values=None, status=None, auth=None) >= 1
        async with storage.transaction() as tx:
            assert await tx.get_thread(thread_id) is not None
            assert [t.thread_id for t in await tx.inflight_runs(thread_id)] == []


async def test_a_write_that_fails_late_fails_its_whole_transaction(storage: Storage) -> None:
    """A write whose answer is not read may reach the database with a later statement; when it fails, the
    transaction still fails as a whole (nothing it wrote lands) and the storage goes on working."""
    assistant = make_assistant()
    async with storage.transaction() as tx:
        await tx.insert_assistant(assistant)
    kept = make_thread()
    await add_threads(storage, kept)
    lost = make_thread()
    with pytest.raises(UniqueViolation):
        async with storage.transaction() as tx:
            await tx.insert_thread(lost)
            # Same version number again: its version row collides with the one the insert recorded.
            changed = dataclasses.replace(assistant, name="renamed", updated_at=stamp())
            await tx.update_assistant(changed, new_version=True)
    async with storage.read() as db:
        assert await db.get_thread(lost.thread_id) is None
        found = await db.get_assistant(assistant.assistant_id)
        assert found is not None and found.name == assistant.name
    await _reads_work(storage, kept.thread_id)


async def test_statements_run_again_after_a_rolled_back_transaction(storage: Storage) -> None:
    """After a transaction rolls back (an exception in its block), every statement still runs, twice over."""
    thread = make_thread()
    await add_threads(storage, thread)
    for _ in range(3):
        with pytest.raises(Boom):
            async with storage.transaction() as tx:
                assert await tx.get_thread(thread.thread_id) is not None
                await tx.update_thread_metadata(thread.thread_id, {"rolled": "back"}, stamp())
                raise Boom
        await _reads_work(storage, thread.thread_id)
    async with storage.read() as db:
        found = await db.get_thread(thread.thread_id)
        assert found is not None and found.metadata == thread.metadata


@pytest.mark.postgres
async def test_one_connection_keeps_its_prepared_statements_through_rollbacks(postgres_url: str) -> None:
    """On a pool of one connection (so every session reuses it), rolled-back transactions never leave it
    believing in prepared statements the server no longer has ("prepared statement … does not exist")."""
    storage = await PostgresStorage.open(postgres_url, min_size=1, max_size=1)
    try:
        await test_statements_run_again_after_a_rolled_back_transaction(storage)
        await test_a_write_that_fails_late_fails_its_whole_transaction(storage)
    finally:
        await storage.close()
