"""Fenced leases, on every storage backend: a worker's writes about a run land only while it holds the lease."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import empty_checkpoint

from graphyard.records import Lease, RunStatus, ThreadStatus
from graphyard.storage import Storage, open_storage
from graphyard.storage.errors import LeaseLost
from tests.contract.test_storage import add_runs, claim, make_run, new_thread, stamp


def _config(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


async def test_claim_hands_out_a_lease_whose_attempt_is_the_fencing_token(storage: Storage) -> None:
    """A claimed run carries its lease (owner, attempt); a requeue and a new claim make a new one."""
    thread = await new_thread(storage)
    run = make_run(thread.thread_id)
    await add_runs(storage, run)
    first = await claim(storage, worker="w1")
    assert first is not None and first.lease == Lease(run.run_id, "w1", 1)
    async with storage.transaction() as tx:
        await tx.requeue_run(run.run_id, stamp())
    again = await claim(storage, worker="w1")
    assert again is not None and again.lease == Lease(run.run_id, "w1", 2)


async def test_stale_lease_writes_nothing_after_takeover(storage: Storage) -> None:
    """After a takeover, hold_lease refuses the old attempt, and its whole transaction (a finish) is rolled back."""
    thread = await new_thread(storage)
    run = make_run(thread.thread_id)
    await add_runs(storage, run)
    stale = await claim(storage, worker="w1", at=1000.0, lease=5.0)
    assert stale is not None and stale.lease is not None
    async with storage.transaction() as tx:
        [expired] = await tx.runs_leased_by_others(1010.0)
        await tx.requeue_run(expired.run_id, stamp())
    fresh = await claim(storage, worker="w2", at=1011.0)
    assert fresh is not None and fresh.lease == Lease(run.run_id, "w2", 2)
    with pytest.raises(LeaseLost):
        async with storage.transaction() as tx:
            await tx.hold_lease(stale.lease)
            await tx.finish_run(run.run_id, RunStatus.ERROR, {"__error__": {"error": "Stale"}}, stamp())
    async with storage.transaction() as tx:
        await tx.hold_lease(fresh.lease)
        await tx.finish_run(run.run_id, RunStatus.SUCCESS, {"ok": True}, stamp())
        await tx.set_thread_status(thread.thread_id, ThreadStatus.IDLE, stamp())
    async with storage.read() as db:
        done = await db.get_run(run.run_id)
    assert done is not None and (done.status, done.output) == (RunStatus.SUCCESS, {"ok": True})


async def test_same_worker_reclaiming_is_still_a_new_lease(storage: Storage) -> None:
    """The attempt, not the owner, fences: a worker's own earlier attempt is refused after it claims again."""
    thread = await new_thread(storage)
    run = make_run(thread.thread_id)
    await add_runs(storage, run)
    old = await claim(storage, worker="w1")
    assert old is not None and old.lease is not None
    async with storage.transaction() as tx:
        await tx.requeue_run(run.run_id, stamp())
    assert await claim(storage, worker="w1") is not None
    with pytest.raises(LeaseLost):
        async with storage.transaction() as tx:
            await tx.hold_lease(old.lease)


async def test_renewal_reports_the_leases_still_held(storage: Storage) -> None:
    """renew_leases returns exactly the leases the worker still holds, so it can stop the others."""
    threads = [await new_thread(storage) for _ in range(2)]
    kept, taken = make_run(threads[0].thread_id), make_run(threads[1].thread_id)
    await add_runs(storage, kept, taken)
    first = await claim(storage, worker="w1")
    second = await claim(storage, worker="w1")
    assert first is not None and second is not None
    async with storage.transaction() as tx:
        await tx.requeue_run(taken.run_id, stamp())
        renewed = await tx.renew_leases("w1", 5000.0)
    assert renewed == [Lease(kept.run_id, "w1", 1)]


async def test_transfer_lease_fences_out_the_old_holder(storage: Storage) -> None:
    """transfer_lease gives a sweeper the run's current lease; the old holder's writes are refused."""
    thread = await new_thread(storage)
    run = make_run(thread.thread_id)
    await add_runs(storage, run)
    held = await claim(storage, worker="w1")
    assert held is not None and held.lease is not None
    async with storage.transaction() as tx:
        taken = await tx.transfer_lease(held.lease, "sweeper", 9999.0)
        assert taken == Lease(run.run_id, "sweeper", 1)
        assert await tx.transfer_lease(held.lease, "other", 9999.0) is None
    with pytest.raises(LeaseLost):
        async with storage.transaction() as tx:
            await tx.hold_lease(held.lease)


async def test_fenced_checkpointer_refuses_a_stale_attempt(storage: Storage) -> None:
    """A checkpoint write through an attempt's fenced saver lands while it holds the lease, and is refused
    (nothing written) once the run was taken over."""
    thread = await new_thread(storage)
    run = make_run(thread.thread_id)
    await add_runs(storage, run)
    held = await claim(storage, worker="w1")
    assert held is not None and held.lease is not None
    saver = storage.fenced_checkpointer(held.lease)
    first = empty_checkpoint()
    await saver.aput(_config(thread.thread_id), first, {"run_id": run.run_id, "step": 0}, {})
    async with storage.transaction() as tx:
        await tx.requeue_run(run.run_id, stamp())
    second = empty_checkpoint()
    with pytest.raises(LeaseLost):
        await saver.aput(_config(thread.thread_id), second, {"run_id": run.run_id, "step": 1}, {})
    at_first: RunnableConfig = {
        "configurable": {"thread_id": thread.thread_id, "checkpoint_ns": "", "checkpoint_id": first["id"]}
    }
    with pytest.raises(LeaseLost):
        await saver.aput_writes(at_first, [("x", 1)], "task-1")
    latest = await storage.checkpointer.aget_tuple(_config(thread.thread_id))
    assert latest is not None and latest.checkpoint["id"] == first["id"]
    assert latest.pending_writes == []


@pytest.mark.postgres
async def test_takeover_waits_for_a_fenced_write_in_flight(postgres_url: str) -> None:
    """On PostgreSQL, a requeue that races a fenced transaction waits for its commit: the write lands before
    the takeover, never after it. (SQLite serializes every writer of its one process already.)"""
    storage = await open_storage(postgres_url)
    try:
        thread = await new_thread(storage)
        run = make_run(thread.thread_id)
        await add_runs(storage, run)
        held = await claim(storage, worker="w1")
        assert held is not None and held.lease is not None
        lease = held.lease
        order: list[str] = []
        inside = asyncio.Event()
        release = asyncio.Event()

        async def fenced_write() -> None:
            async with storage.transaction() as tx:
                await tx.hold_lease(lease)
                inside.set()
                await release.wait()
                order.append("write")

        async def takeover() -> None:
            await inside.wait()
            async with storage.transaction() as tx:
                await tx.requeue_run(run.run_id, stamp())
                order.append("requeue")

        writer = asyncio.create_task(fenced_write())
        taker = asyncio.create_task(takeover())
        await _until_a_backend_waits_on_a_lock(postgres_url)
        assert order == []
        release.set()
        await asyncio.gather(writer, taker)
        assert order == ["write", "requeue"]
        with pytest.raises(LeaseLost):
            async with storage.transaction() as tx:
                await tx.hold_lease(lease)
    finally:
        await storage.close()


async def _until_a_backend_waits_on_a_lock(url: str, deadline: float = 10.0) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            cur = await conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            row = await cur.fetchone()
            if row is not None and row[0] > 0:
                return
            await asyncio.sleep(0.02)
    raise AssertionError("the takeover never waited on the fenced transaction's row lock")
