"""The storage contract for thread TTL, sweep claims and run priority, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses

from graphyard.records import RunStatus
from graphyard.storage import Storage
from tests.contract.test_storage import add_runs, claim, make_run, new_thread, stamp


async def test_thread_ttl_round_trips_and_can_be_removed(storage: Storage) -> None:
    """set_thread_ttl stores strategy, length and expiry; all None removes the TTL."""
    thread = await new_thread(storage)
    async with storage.read() as db:
        assert await db.thread_ttl(thread.thread_id) is None
    async with storage.transaction() as tx:
        await tx.set_thread_ttl(thread.thread_id, strategy="keep_latest", minutes=5.0, expires_at=1300.0)
    async with storage.read() as db:
        assert await db.thread_ttl(thread.thread_id) == {
            "strategy": "keep_latest",
            "ttl_minutes": 5.0,
            "expires_at": 1300.0,
        }
    async with storage.transaction() as tx:
        await tx.set_thread_ttl(thread.thread_id, strategy=None, minutes=None, expires_at=None)
    async with storage.read() as db:
        assert await db.thread_ttl(thread.thread_id) is None


async def test_expired_threads_are_those_past_expiry_without_runs_in_flight(storage: Storage) -> None:
    """Only threads whose expiry has passed and that have no pending or running run are up for sweeping."""
    expired, busy, later, never = [await new_thread(storage) for _ in range(4)]
    async with storage.transaction() as tx:
        await tx.set_thread_ttl(expired.thread_id, strategy="delete", minutes=1.0, expires_at=100.0)
        await tx.set_thread_ttl(busy.thread_id, strategy="delete", minutes=1.0, expires_at=100.0)
        await tx.set_thread_ttl(later.thread_id, strategy="delete", minutes=1.0, expires_at=900.0)
    await add_runs(storage, make_run(busy.thread_id))
    async with storage.transaction() as tx:
        found = await tx.expired_threads(500.0, 100)
    assert found == [{"thread_id": expired.thread_id, "strategy": "delete", "ttl_minutes": 1.0}]
    async with storage.transaction() as tx:
        assert [t["thread_id"] for t in await tx.expired_threads(1000.0, 100)] == [
            expired.thread_id,
            later.thread_id,
        ]
        assert never.thread_id not in [t["thread_id"] for t in await tx.expired_threads(1000.0, 100)]


async def test_expired_threads_include_orphaned_temporary_threads(storage: Storage) -> None:
    """A temporary thread whose stateless run has ended is swept (strategy None); while it runs it is not."""
    orphan = await new_thread(storage)
    run = dataclasses.replace(make_run(orphan.thread_id), temporary=True)
    await add_runs(storage, run)
    async with storage.transaction() as tx:
        assert await tx.expired_threads(1000.0, 100) == []
        await tx.finish_run(run.run_id, RunStatus.SUCCESS, None, stamp())
    async with storage.transaction() as tx:
        assert await tx.expired_threads(1000.0, 100) == [
            {"thread_id": orphan.thread_id, "strategy": None, "ttl_minutes": None}
        ]


async def test_expired_threads_respects_the_batch_limit(storage: Storage) -> None:
    """At most `limit` threads come back per call."""
    threads = [await new_thread(storage) for _ in range(3)]
    async with storage.transaction() as tx:
        for thread in threads:
            await tx.set_thread_ttl(thread.thread_id, strategy="delete", minutes=1.0, expires_at=10.0)
    async with storage.transaction() as tx:
        assert len(await tx.expired_threads(100.0, 2)) == 2


async def test_a_sweep_is_claimed_once_until_it_is_due_again(storage: Storage) -> None:
    """claim_sweep succeeds for the first caller, fails until next_at, then succeeds again."""
    async with storage.transaction() as tx:
        assert await tx.claim_sweep("s", 100.0, 160.0)
    async with storage.transaction() as tx:
        assert not await tx.claim_sweep("s", 120.0, 180.0)
    async with storage.transaction() as tx:
        assert await tx.claim_sweep("s", 160.0, 220.0)
        assert await tx.claim_sweep("other", 160.0, 220.0)


async def test_concurrent_sweep_claims_have_one_winner(storage: Storage) -> None:
    """Five sweepers due at the same moment: exactly one wins the claim."""

    async def try_claim() -> bool:
        async with storage.transaction() as tx:
            return await tx.claim_sweep("race", 100.0, 160.0)

    async with storage.transaction() as tx:
        assert await tx.claim_sweep("race", 0.0, 50.0)
    results = await asyncio.gather(*(try_claim() for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]


async def test_thread_priority_is_none_until_set(storage: Storage) -> None:
    """A thread has no priority settings until set_thread_priority records them."""
    thread = await new_thread(storage)
    async with storage.read() as db:
        assert await db.thread_priority(thread.thread_id) is None
    async with storage.transaction() as tx:
        await tx.set_thread_priority(thread.thread_id, -3, "org-1")
    async with storage.read() as db:
        assert await db.thread_priority(thread.thread_id) == {"priority": -3, "fairness_group": "org-1"}


async def test_claim_takes_the_most_urgent_priority_first(storage: Storage) -> None:
    """Runs inherit their thread's priority when enqueued; lower priority is claimed first, FIFO within one."""
    low, normal, urgent = [await new_thread(storage) for _ in range(3)]
    async with storage.transaction() as tx:
        await tx.set_thread_priority(low.thread_id, 5, "default")
        await tx.set_thread_priority(urgent.thread_id, -5, "default")
    runs = [make_run(low.thread_id), make_run(normal.thread_id), make_run(urgent.thread_id)]
    runs.append(make_run(urgent.thread_id))
    await add_runs(storage, *runs)
    first = await claim(storage, worker="w1")
    second = await claim(storage, worker="w2")
    assert first is not None and first.run_id == runs[2].run_id
    # The urgent thread's second run waits for its first; the normal one comes next, then the low one.
    assert second is not None and second.run_id == runs[1].run_id
    async with storage.transaction() as tx:
        await tx.finish_run(runs[2].run_id, RunStatus.SUCCESS, None, stamp())
    third = await claim(storage, worker="w3")
    assert third is not None and third.run_id == runs[3].run_id
    fourth = await claim(storage, worker="w4")
    assert fourth is not None and fourth.run_id == runs[0].run_id


async def test_a_priority_assigned_later_never_lets_a_thread_run_pass_its_elders(storage: Storage) -> None:
    """A run enqueued after its thread got an urgent priority still waits for the thread's older runs."""
    mixed, other = await new_thread(storage), await new_thread(storage)
    older = make_run(mixed.thread_id)
    await add_runs(storage, older)
    async with storage.transaction() as tx:
        await tx.set_thread_priority(mixed.thread_id, -5, "default")
    middle = make_run(other.thread_id)
    newer = make_run(mixed.thread_id)
    await add_runs(storage, middle, newer)
    first = await claim(storage, worker="w1")
    assert first is not None and first.run_id == older.run_id
    second = await claim(storage, worker="w2")
    assert second is not None and second.run_id == middle.run_id
