"""Storage.claim_next, on every storage backend: a claim that also says when to look again."""

from __future__ import annotations

from graphyard.records import Lease, RunStatus
from graphyard.storage import Storage
from tests.contract.test_storage import add_runs, make_run, new_thread


async def test_claim_next_on_an_empty_queue_claims_nothing_and_names_no_time(storage: Storage) -> None:
    """With nothing pending, claim_next returns no run and no time to wake at."""
    assert await storage.claim_next("w1", 1000.0, 30.0) == (None, None)


async def test_claim_next_says_another_run_is_runnable_now(storage: Storage) -> None:
    """With two runnable runs on two threads, the first claim takes the older and reports the other as due."""
    first, second = make_run((await new_thread(storage)).thread_id), make_run((await new_thread(storage)).thread_id)
    await add_runs(storage, first, second)
    run, next_at = await storage.claim_next("w1", 1000.0, 30.0)
    assert run is not None and run.run_id == first.run_id
    assert run.status is RunStatus.RUNNING and run.lease == Lease(first.run_id, "w1", 1)
    assert next_at is not None and next_at <= 1000.0
    run, next_at = await storage.claim_next("w1", 1000.0, 30.0)
    assert run is not None and run.run_id == second.run_id
    assert next_at is None


async def test_claim_next_does_not_count_runs_waiting_behind_the_one_it_claimed(storage: Storage) -> None:
    """A run queued behind the claimed one on its thread is not due: that run's finish wakes the workers."""
    thread = await new_thread(storage)
    head, behind = make_run(thread.thread_id), make_run(thread.thread_id)
    await add_runs(storage, head, behind)
    run, next_at = await storage.claim_next("w1", 1000.0, 30.0)
    assert run is not None and run.run_id == head.run_id
    assert next_at is None


async def test_claim_next_names_when_a_delayed_run_falls_due(storage: Storage) -> None:
    """A run not yet available is not claimed; its available_at is the time to look again."""
    later = make_run((await new_thread(storage)).thread_id, available_at=2000.0)
    await add_runs(storage, later)
    assert await storage.claim_next("w1", 1000.0, 30.0) == (None, 2000.0)
    run, next_at = await storage.claim_next("w1", 2000.0, 30.0)
    assert run is not None and run.run_id == later.run_id and next_at is None
