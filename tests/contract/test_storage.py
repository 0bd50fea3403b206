"""The storage contract: every rule of graphyard.storage.ports, checked on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.store.postgres.aio import AsyncPostgresStore

from graphyard.records import (
    Assistant,
    CancelAction,
    Cron,
    Json,
    MultitaskStrategy,
    Run,
    RunStatus,
    Thread,
    ThreadStatus,
)
from graphyard.storage import Session, Storage, open_storage
from graphyard.storage.errors import UniqueViolation
from graphyard.storage.queries import load_migrations

# --- record factories ---------------------------------------------------------------------------

_clock = [0]


def stamp() -> str:
    """A strictly increasing timestamp, so ordering by time is deterministic within a test."""
    _clock[0] += 1
    return f"2025-01-01T00:00:00.{_clock[0]:06d}+00:00"


def make_assistant(
    *, graph_id: str = "agent", name: str = "Agent", metadata: Json | None = None, version: int = 1
) -> Assistant:
    """A new assistant record."""
    at = stamp()
    return Assistant(
        assistant_id=str(uuid.uuid4()),
        graph_id=graph_id,
        config={"configurable": {"model": "m"}},
        context={"k": "v"},
        metadata=metadata or {},
        name=name,
        description=None,
        version=version,
        created_at=at,
        updated_at=at,
    )


def make_thread(
    *, metadata: Json | None = None, values: Any = None, status: ThreadStatus = ThreadStatus.IDLE
) -> Thread:
    """A new thread record."""
    at = stamp()
    return Thread(
        thread_id=str(uuid.uuid4()),
        created_at=at,
        updated_at=at,
        state_updated_at=at,
        metadata=metadata or {},
        status=status,
        config={"configurable": {}},
        values=values,
        interrupts={},
        error=None,
    )


def make_run(thread_id: str, *, available_at: float = 0.0, metadata: Json | None = None) -> Run:
    """A new pending run record on a thread."""
    at = stamp()
    return Run(
        run_id=str(uuid.uuid4()),
        thread_id=thread_id,
        assistant_id="a",
        created_at=at,
        updated_at=at,
        status=RunStatus.PENDING,
        metadata=metadata or {},
        kwargs={"input": {"messages": ["hi"]}, "stream_mode": ["values"]},
        multitask_strategy=MultitaskStrategy.ENQUEUE,
        available_at=available_at,
    )


async def add_threads(storage: Storage, *threads: Thread) -> None:
    """Insert threads in one transaction."""
    async with storage.transaction() as tx:
        for thread in threads:
            await tx.insert_thread(thread)


async def add_runs(storage: Storage, *runs: Run) -> None:
    """Insert runs in one transaction."""
    async with storage.transaction() as tx:
        for run in runs:
            await tx.insert_run(run)


async def new_thread(storage: Storage, **kwargs: Any) -> Thread:
    """Insert and return a new thread."""
    thread = make_thread(**kwargs)
    await add_threads(storage, thread)
    return thread


async def claim(storage: Storage, worker: str = "w1", at: float = 1000.0, lease: float = 30.0) -> Run | None:
    """Claim one run in its own transaction."""
    async with storage.transaction() as tx:
        return await tx.claim_run(worker, at, lease)


async def search_threads(db: Session, **kwargs: Any) -> list[Thread]:
    """search_threads with defaults for every filter not given."""
    args: dict[str, Any] = {
        "ids": None,
        "metadata": None,
        "values": None,
        "status": None,
        "auth": None,
        "limit": 100,
        "offset": 0,
        "sort_by": "created_at",
        "sort_order": "asc",
    }
    args.update(kwargs)
    return await db.search_threads(**args)


async def search_assistants(db: Session, **kwargs: Any) -> list[Assistant]:
    """search_assistants with defaults for every filter not given."""
    args: dict[str, Any] = {
        "graph_id": None,
        "metadata": None,
        "name": None,
        "auth": None,
        "limit": 100,
        "offset": 0,
        "sort_by": "created_at",
        "sort_order": "asc",
    }
    args.update(kwargs)
    return await db.search_assistants(**args)


def ids_of(items: Sequence[Thread | Assistant]) -> list[str]:
    """The ids of threads or assistants, in order."""
    return [t.thread_id if isinstance(t, Thread) else t.assistant_id for t in items]


# --- assistants ---------------------------------------------------------------------------------


async def test_insert_and_get_assistant(storage: Storage) -> None:
    """An inserted assistant reads back field for field, with its first version recorded."""
    assistant = make_assistant(metadata={"owner": "ana", "tags": ["x"]})
    async with storage.transaction() as tx:
        await tx.insert_assistant(assistant)
    async with storage.read() as db:
        assert await db.get_assistant(assistant.assistant_id) == assistant
        assert await db.get_assistant(str(uuid.uuid4())) is None
        version = await db.assistant_version(assistant.assistant_id, 1)
    assert version is not None
    assert (version.config, version.metadata, version.created_at) == (
        assistant.config,
        assistant.metadata,
        assistant.updated_at,
    )


async def test_insert_assistant_twice_is_unique_violation(storage: Storage) -> None:
    """Inserting an existing assistant id raises UniqueViolation and leaves the transaction usable."""
    assistant = make_assistant()
    async with storage.transaction() as tx:
        await tx.insert_assistant(assistant)
    async with storage.transaction() as tx:
        with pytest.raises(UniqueViolation):
            await tx.insert_assistant(assistant)
        other = make_assistant()
        await tx.insert_assistant(other)
    async with storage.read() as db:
        assert await db.get_assistant(other.assistant_id) == other


async def test_get_assistant_honours_auth_filter(storage: Storage) -> None:
    """get_assistant returns None when the auth filter hides the assistant."""
    assistant = make_assistant(metadata={"owner": "ana"})
    async with storage.transaction() as tx:
        await tx.insert_assistant(assistant)
    async with storage.read() as db:
        assert await db.get_assistant(assistant.assistant_id, {"owner": "ana"}) == assistant
        assert await db.get_assistant(assistant.assistant_id, {"owner": "bob"}) is None


async def test_update_assistant_records_versions(storage: Storage) -> None:
    """update_assistant overwrites the row, and only with new_version adds a version, listed newest first."""
    first = make_assistant(metadata={"v": 1})
    second = Assistant(**{**_fields(first), "version": 2, "metadata": {"v": 2}, "updated_at": stamp()})
    patched = Assistant(**{**_fields(second), "name": "Renamed", "updated_at": stamp()})
    async with storage.transaction() as tx:
        await tx.insert_assistant(first)
        await tx.update_assistant(second, new_version=True)
        await tx.update_assistant(patched, new_version=False)
    async with storage.read() as db:
        assert await db.get_assistant(first.assistant_id) == patched
        versions = await db.assistant_versions(first.assistant_id, metadata=None, limit=10, offset=0)
        assert [v.version for v in versions] == [2, 1]
        assert [v.name for v in versions] == ["Agent", "Agent"]
        filtered = await db.assistant_versions(first.assistant_id, metadata={"v": 1}, limit=10, offset=0)
        assert [v.version for v in filtered] == [1]
        paged = await db.assistant_versions(first.assistant_id, metadata=None, limit=1, offset=1)
        assert [v.version for v in paged] == [1]
        assert await db.assistant_version(first.assistant_id, 3) is None


def _fields(assistant: Assistant) -> dict[str, Any]:
    return {name: getattr(assistant, name) for name in Assistant.__slots__}


async def test_delete_assistant_removes_its_versions(storage: Storage) -> None:
    """delete_assistant removes the assistant and its versions, and says whether it existed."""
    assistant = make_assistant()
    async with storage.transaction() as tx:
        await tx.insert_assistant(assistant)
        assert await tx.delete_assistant(assistant.assistant_id) is True
        assert await tx.delete_assistant(assistant.assistant_id) is False
    async with storage.read() as db:
        assert await db.get_assistant(assistant.assistant_id) is None
        assert await db.assistant_version(assistant.assistant_id, 1) is None


async def test_search_assistants_filters_sorts_and_pages(storage: Storage) -> None:
    """search_assistants applies graph, metadata, name (any case, substring) and auth filters, then sorts and pages."""
    alpha = make_assistant(graph_id="agent", name="Alpha helper", metadata={"team": "red", "tags": ["a", "b"]})
    beta = make_assistant(graph_id="agent", name="beta", metadata={"team": "blue"})
    gamma = make_assistant(graph_id="other", name="Gamma HELPER", metadata={"team": "red"})
    async with storage.transaction() as tx:
        for assistant in (alpha, beta, gamma):
            await tx.insert_assistant(assistant)
    async with storage.read() as db:
        assert ids_of(await search_assistants(db)) == ids_of([alpha, beta, gamma])
        assert ids_of(await search_assistants(db, graph_id="agent")) == ids_of([alpha, beta])
        assert ids_of(await search_assistants(db, metadata={"team": "red"})) == ids_of([alpha, gamma])
        assert ids_of(await search_assistants(db, metadata={"tags": ["b"]})) == ids_of([alpha])
        assert ids_of(await search_assistants(db, name="helper")) == ids_of([alpha, gamma])
        assert ids_of(await search_assistants(db, auth={"team": "blue"})) == ids_of([beta])
        by_name = await search_assistants(db, sort_by="name", sort_order="desc")
        assert ids_of(by_name) == ids_of([gamma, beta, alpha])
        newest = await search_assistants(db, sort_by="created_at", sort_order="desc", limit=2, offset=1)
        assert ids_of(newest) == ids_of([beta, alpha])
        # An unknown sort column falls back to created_at instead of reaching the SQL.
        assert ids_of(await search_assistants(db, sort_by="1; drop table x")) == ids_of([alpha, beta, gamma])
        assert await db.count_assistants(graph_id=None, metadata=None, name=None, auth=None) == 3
        assert await db.count_assistants(graph_id="agent", metadata={"team": "red"}, name=None, auth=None) == 1
        assert await db.count_assistants(graph_id=None, metadata=None, name="HELP", auth={"team": "red"}) == 2


# --- threads ------------------------------------------------------------------------------------


async def test_insert_and_get_thread(storage: Storage) -> None:
    """An inserted thread reads back field for field, unicode and nesting included."""
    thread = make_thread(
        metadata={"title": "Grüße, 世界 🌍", "nested": {"a": [1, {"b": None}]}},
        values={"messages": [{"content": "ñ ✓"}]},
        status=ThreadStatus.BUSY,
    )
    await add_threads(storage, thread)
    async with storage.read() as db:
        assert await db.get_thread(thread.thread_id) == thread
        assert await db.get_thread(str(uuid.uuid4())) is None


async def test_insert_thread_twice_is_unique_violation(storage: Storage) -> None:
    """Inserting an existing thread id raises UniqueViolation and leaves the transaction usable."""
    thread = await new_thread(storage)
    async with storage.transaction() as tx:
        with pytest.raises(UniqueViolation):
            await tx.insert_thread(thread)
        assert await tx.get_thread(thread.thread_id) == thread


async def test_thread_updates(storage: Storage) -> None:
    """update_thread_metadata, set_thread_state and set_thread_status change exactly their fields."""
    thread = await new_thread(storage, metadata={"a": 1})
    t1, t2, t3 = stamp(), stamp(), stamp()
    async with storage.transaction() as tx:
        await tx.update_thread_metadata(thread.thread_id, {"b": 2}, t1)
    async with storage.read() as db:
        got = await db.get_thread(thread.thread_id)
    assert got is not None
    assert (got.metadata, got.updated_at, got.state_updated_at) == ({"b": 2}, t1, thread.state_updated_at)
    async with storage.transaction() as tx:
        await tx.set_thread_state(
            thread.thread_id,
            status=ThreadStatus.INTERRUPTED,
            values={"x": [1, 2]},
            interrupts={"task": [{"value": "ask"}]},
            error=None,
            updated_at=t2,
        )
    async with storage.read() as db:
        got = await db.get_thread(thread.thread_id)
    assert got is not None
    assert (got.status, got.values, got.interrupts, got.state_updated_at) == (
        ThreadStatus.INTERRUPTED,
        {"x": [1, 2]},
        {"task": [{"value": "ask"}]},
        t2,
    )
    async with storage.transaction() as tx:
        await tx.set_thread_status(thread.thread_id, ThreadStatus.ERROR, t3)
    async with storage.read() as db:
        got = await db.get_thread(thread.thread_id)
    assert got is not None
    assert (got.status, got.values, got.updated_at, got.state_updated_at) == (ThreadStatus.ERROR, {"x": [1, 2]}, t3, t2)


async def test_delete_thread_deletes_its_runs(storage: Storage) -> None:
    """delete_thread removes the thread and its runs, and says whether it existed."""
    thread = await new_thread(storage)
    run = make_run(thread.thread_id)
    await add_runs(storage, run)
    async with storage.transaction() as tx:
        assert await tx.delete_thread(thread.thread_id) is True
        assert await tx.delete_thread(thread.thread_id) is False
    async with storage.read() as db:
        assert await db.get_run(run.run_id) is None


async def test_thread_metadata_filter_is_containment(storage: Storage) -> None:
    """The metadata filter is `@>`: nested objects match key by key, lists as subsets, types kept apart."""
    deep = await new_thread(storage, metadata={"user": {"id": 7, "org": {"name": "acme"}}, "tags": ["a", "b", "c"]})
    flat = await new_thread(storage, metadata={"user": 7, "flag": True, "tags": "a"})
    other = await new_thread(storage, metadata={"flag": 1, "tags": [["a"]], "name": "Zoë"})
    async with storage.read() as db:

        async def match(flt: Json) -> list[str]:
            return ids_of(await search_threads(db, metadata=flt))

        assert await match({}) == ids_of([deep, flat, other])
        assert await match({"user": {"org": {"name": "acme"}}}) == ids_of([deep])
        assert await match({"user": {"org": {}}}) == ids_of([deep])
        assert await match({"tags": ["c", "a"]}) == ids_of([deep])
        assert await match({"tags": []}) == ids_of([deep, other])
        assert await match({"tags": ["a", "z"]}) == []
        # Only a top-level array contains a bare primitive; one level down it must be spelled as a list.
        assert await match({"tags": "a"}) == ids_of([flat])
        assert await match({"user": 7}) == ids_of([flat])
        assert await match({"flag": True}) == ids_of([flat])
        assert await match({"flag": 1}) == ids_of([other])
        assert await match({"name": "Zoë"}) == ids_of([other])
        assert await match({"missing": None}) == []
        assert await db.count_threads(metadata={"tags": ["b"]}, values=None, status=None, auth=None) == 1


async def test_thread_values_filter_is_containment(storage: Storage) -> None:
    """The values filter matches threads whose state values contain it; threads without values never match."""
    chat = await new_thread(storage, values={"messages": [{"role": "user", "content": "hi"}], "n": 2})
    await new_thread(storage, values={"messages": [], "n": 3})
    await new_thread(storage)
    async with storage.read() as db:
        got = await search_threads(db, values={"messages": [{"content": "hi"}]})
        assert ids_of(got) == ids_of([chat])
        assert ids_of(await search_threads(db, values={"n": 2})) == ids_of([chat])
        assert await db.count_threads(metadata=None, values={"messages": []}, status=None, auth=None) == 2


async def test_thread_status_and_ids_filters(storage: Storage) -> None:
    """Threads filter by status and by a list of ids; an empty id list matches nothing."""
    idle = await new_thread(storage)
    busy = await new_thread(storage, status=ThreadStatus.BUSY)
    busy2 = await new_thread(storage, status=ThreadStatus.BUSY)
    async with storage.read() as db:
        assert ids_of(await search_threads(db, status="busy")) == ids_of([busy, busy2])
        assert await db.count_threads(metadata=None, values=None, status="idle", auth=None) == 1
        picked = await search_threads(db, ids=[busy2.thread_id, idle.thread_id, str(uuid.uuid4())])
        assert ids_of(picked) == ids_of([idle, busy2])
        assert await search_threads(db, ids=[]) == []
        assert ids_of(await search_threads(db, ids=[busy.thread_id], status="idle")) == []


async def test_thread_sort_and_pagination(storage: Storage) -> None:
    """Threads sort by a whitelisted column either way, ties broken by insertion order, then page."""
    threads = [make_thread() for _ in range(4)]
    same = stamp()
    # The last two share every timestamp: insertion order must decide between them.
    threads[2:] = [Thread(**{**_thread_fields(t), "created_at": same, "updated_at": same}) for t in threads[2:]]
    await add_threads(storage, *threads)
    async with storage.read() as db:
        asc = await search_threads(db, sort_by="created_at", sort_order="asc")
        assert ids_of(asc) == ids_of(threads)
        desc = await search_threads(db, sort_by="updated_at", sort_order="desc")
        assert ids_of(desc) == ids_of(threads[::-1])
        page = await search_threads(db, sort_by="created_at", sort_order="asc", limit=2, offset=1)
        assert ids_of(page) == ids_of(threads[1:3])
        by_id = await search_threads(db, sort_by="thread_id", sort_order="asc")
        assert ids_of(by_id) == sorted(ids_of(threads))


def _thread_fields(thread: Thread) -> dict[str, Any]:
    return {name: getattr(thread, name) for name in Thread.__slots__}


async def test_thread_auth_filter_language(storage: Storage) -> None:
    """Auth filters ({k: v}, $eq, $contains, $or, $and) hide threads from search, count and get."""
    ana = await new_thread(storage, metadata={"owner": "ana", "org": "acme", "roles": ["admin", "dev"], "n": 1})
    bob = await new_thread(storage, metadata={"owner": "bob", "org": "acme", "roles": ["dev"], "obj": {"a": 1}})
    eve = await new_thread(storage, metadata={"owner": "eve", "roles": "admin", "n": True, "obj": {"a": 1, "b": 2}})
    async with storage.read() as db:

        async def visible(auth: Json) -> list[str]:
            found = ids_of(await search_threads(db, auth=auth))
            assert await db.count_threads(metadata=None, values=None, status=None, auth=auth) == len(found)
            return found

        assert await visible({"owner": "ana"}) == ids_of([ana])
        assert await visible({"owner": {"$eq": "bob"}}) == ids_of([bob])
        assert await visible({"org": "acme", "owner": "bob"}) == ids_of([bob])
        assert await visible({"roles": {"$contains": "admin"}}) == ids_of([ana])
        assert await visible({"roles": {"$contains": ["dev", "admin"]}}) == ids_of([ana])
        assert await visible({"roles": {"$contains": "dev"}}) == ids_of([ana, bob])
        assert await visible({"n": 1}) == ids_of([ana])
        assert await visible({"n": True}) == ids_of([eve])
        assert await visible({"obj": {"a": 1}}) == ids_of([bob])
        assert await visible({"org": None}) == []
        assert await visible({"$or": [{"owner": "ana"}, {"owner": "eve"}]}) == ids_of([ana, eve])
        assert await visible({"$and": [{"org": "acme"}, {"roles": {"$contains": "dev"}}]}) == ids_of([ana, bob])
        nested = {"$or": [{"$and": [{"org": "acme"}, {"owner": {"$eq": "bob"}}]}, {"n": True}]}
        assert await visible(nested) == ids_of([bob, eve])
        assert await visible({"$or": []}) == []
        assert await visible({"$and": []}) == ids_of([ana, bob, eve])
        assert await db.get_thread(ana.thread_id, {"owner": "ana"}) == ana
        assert await db.get_thread(ana.thread_id, {"owner": "bob"}) is None
        # Keys are data, never SQL.
        assert await visible({"owner' OR '1'='1": "x"}) == []


# --- runs ---------------------------------------------------------------------------------------


async def test_insert_and_get_run(storage: Storage) -> None:
    """An inserted run reads back as pending, optionally only within its own thread."""
    thread = await new_thread(storage)
    run = make_run(thread.thread_id, metadata={"source": "test", "ü": [1, 2]})
    await add_runs(storage, run)
    async with storage.read() as db:
        assert await db.get_run(run.run_id) == run
        assert await db.get_run(run.run_id, thread.thread_id) == run
        assert await db.get_run(run.run_id, str(uuid.uuid4())) is None
        assert await db.get_run(str(uuid.uuid4())) is None


async def test_list_runs_newest_first(storage: Storage) -> None:
    """list_runs gives a thread's runs newest first, filtered by status and paged."""
    thread = await new_thread(storage)
    other = await new_thread(storage)
    runs = [make_run(thread.thread_id) for _ in range(3)]
    await add_runs(storage, *runs, make_run(other.thread_id))
    claimed = await claim(storage)
    assert claimed is not None and claimed.run_id == runs[0].run_id
    async with storage.read() as db:
        listed = await db.list_runs(thread.thread_id, status=None, limit=10, offset=0)
        assert [r.run_id for r in listed] == [r.run_id for r in runs[::-1]]
        pending = await db.list_runs(thread.thread_id, status="pending", limit=10, offset=0)
        assert [r.run_id for r in pending] == [runs[2].run_id, runs[1].run_id]
        paged = await db.list_runs(thread.thread_id, status=None, limit=1, offset=1)
        assert [r.run_id for r in paged] == [runs[1].run_id]


async def test_inflight_runs(storage: Storage) -> None:
    """inflight_runs lists a thread's pending and running runs, oldest first, not finished ones."""
    thread = await new_thread(storage)
    runs = [make_run(thread.thread_id) for _ in range(3)]
    await add_runs(storage, *runs)
    first = await claim(storage)
    assert first is not None
    async with storage.transaction() as tx:
        await tx.finish_run(first.run_id, RunStatus.SUCCESS, {"ok": True}, stamp())
    second = await claim(storage)
    assert second is not None
    async with storage.read() as db:
        inflight = await db.inflight_runs(thread.thread_id)
    assert [(r.run_id, r.status) for r in inflight] == [
        (runs[1].run_id, RunStatus.RUNNING),
        (runs[2].run_id, RunStatus.PENDING),
    ]


async def test_claim_is_fifo_across_threads(storage: Storage) -> None:
    """Claims take runnable runs oldest first, leased to the claiming worker, attempt counted."""
    threads = [await new_thread(storage) for _ in range(3)]
    runs = [make_run(t.thread_id) for t in threads]
    await add_runs(storage, *runs)
    claimed = [await claim(storage, worker=f"w{i}", at=1000.0) for i in range(3)]
    assert [r.run_id if r else None for r in claimed] == [r.run_id for r in runs]
    assert all(r is not None and r.status == RunStatus.RUNNING and r.attempt == 1 for r in claimed)
    assert await claim(storage) is None


async def test_claim_skips_threads_with_a_running_run(storage: Storage) -> None:
    """A thread runs one run at a time: its next run waits while another thread's younger run is claimed."""
    busy = await new_thread(storage)
    free = await new_thread(storage)
    first, queued = make_run(busy.thread_id), make_run(busy.thread_id)
    later = make_run(free.thread_id)
    await add_runs(storage, first, queued, later)
    got = await claim(storage)
    assert got is not None and (got.run_id, got.status) == (first.run_id, RunStatus.RUNNING)
    got = await claim(storage)
    assert got is not None and got.run_id == later.run_id
    assert await claim(storage) is None
    async with storage.read() as db:
        # The queued run is due but blocked: it is no reason to wake up before the running one ends.
        assert await db.next_available_at() is None
    async with storage.transaction() as tx:
        await tx.finish_run(first.run_id, RunStatus.SUCCESS, None, stamp())
    got = await claim(storage)
    assert got is not None and got.run_id == queued.run_id


async def test_claim_respects_available_at(storage: Storage) -> None:
    """A run is claimable only once available_at has passed; next_available_at says when."""
    thread = await new_thread(storage)
    other = await new_thread(storage)
    delayed = make_run(thread.thread_id, available_at=2000.0)
    sooner = make_run(other.thread_id, available_at=1500.0)
    await add_runs(storage, delayed, sooner)
    async with storage.read() as db:
        assert await db.next_available_at() == 1500.0
    assert await claim(storage, at=1000.0) is None
    got = await claim(storage, at=1500.0)
    assert got is not None and got.run_id == sooner.run_id
    async with storage.read() as db:
        assert await db.next_available_at() == 2000.0
    got = await claim(storage, at=2500.0)
    assert got is not None and got.run_id == delayed.run_id
    async with storage.read() as db:
        assert await db.next_available_at() is None


async def test_claim_orders_by_available_at_then_insertion(storage: Storage) -> None:
    """Among due runs the earliest available_at goes first, ties in insertion order."""
    threads = [await new_thread(storage) for _ in range(3)]
    late = make_run(threads[0].thread_id, available_at=20.0)
    tie1 = make_run(threads[1].thread_id, available_at=10.0)
    tie2 = make_run(threads[2].thread_id, available_at=10.0)
    await add_runs(storage, late, tie1, tie2)
    order = [await claim(storage) for _ in range(3)]
    assert [r.run_id if r else None for r in order] == [tie1.run_id, tie2.run_id, late.run_id]


async def test_finish_run_records_output_and_releases_lease(storage: Storage) -> None:
    """finish_run stores the status and output and releases the lease (no more renewals or cancel pickups)."""
    thread = await new_thread(storage)
    run = make_run(thread.thread_id)
    await add_runs(storage, run)
    assert await claim(storage, worker="w1") is not None
    async with storage.transaction() as tx:
        await tx.request_cancel(run.run_id, CancelAction.INTERRUPT, stamp())
        await tx.finish_run(run.run_id, RunStatus.ERROR, {"__error__": {"message": "boom ⚡"}}, stamp())
        assert await tx.cancel_requests("w1") == []
        assert await tx.runs_leased_by_others(10_000.0) == []
    async with storage.read() as db:
        done = await db.get_run(run.run_id)
    assert done is not None
    assert (done.status, done.output) == (RunStatus.ERROR, {"__error__": {"message": "boom ⚡"}})


async def test_request_cancel_reaches_the_owning_worker(storage: Storage) -> None:
    """cancel_requests lists the worker's running runs that were asked to stop, with the action."""
    threads = [await new_thread(storage) for _ in range(3)]
    runs = [make_run(t.thread_id) for t in threads]
    await add_runs(storage, *runs)
    for worker in ("w1", "w1", "w2"):
        assert await claim(storage, worker=worker) is not None
    async with storage.transaction() as tx:
        assert await tx.cancel_requests("w1") == []
        await tx.request_cancel(runs[1].run_id, CancelAction.ROLLBACK, stamp())
        await tx.request_cancel(runs[2].run_id, CancelAction.INTERRUPT, stamp())
    async with storage.read() as db:
        assert await db.cancel_requests("w1") == [(runs[1].run_id, CancelAction.ROLLBACK)]
        assert await db.cancel_requests("w2") == [(runs[2].run_id, CancelAction.INTERRUPT)]
        got = await db.get_run(runs[1].run_id)
        assert got is not None and got.cancel_action == CancelAction.ROLLBACK


@pytest.mark.parametrize("action", [CancelAction.INTERRUPT, CancelAction.ROLLBACK])
async def test_stopping_a_pending_run_spares_one_a_worker_claimed(storage: Storage, action: CancelAction) -> None:
    """A cancel reads a run as pending, a worker claims it, then the cancel writes: the claimed run stays
    running and leased (its worker is asked instead); a run still pending is interrupted, or deleted."""
    threads = [await new_thread(storage) for _ in range(2)]
    claimed, waiting = make_run(threads[0].thread_id), make_run(threads[1].thread_id)
    await add_runs(storage, claimed, waiting)
    async with storage.read() as db:
        read = {r.run_id: r.status for r in await db.cancellable_runs(thread_id=None, run_ids=None, status="pending")}
    assert read == {claimed.run_id: RunStatus.PENDING, waiting.run_id: RunStatus.PENDING}
    taken = await claim(storage, worker="w1")
    assert taken is not None and taken.run_id == claimed.run_id
    async with storage.transaction() as tx:
        assert await tx.stop_pending_run(claimed.run_id, action, stamp()) is False
        assert await tx.stop_pending_run(waiting.run_id, action, stamp()) is True
    async with storage.read() as db:
        still = await db.get_run(claimed.run_id)
        assert still is not None and (still.status, still.attempt) == (RunStatus.RUNNING, 1)
        assert [r.run_id for r in await db.running_runs()] == [claimed.run_id]
        stopped = await db.get_run(waiting.run_id)
        if action is CancelAction.ROLLBACK:
            assert stopped is None
        else:
            assert stopped is not None and stopped.status is RunStatus.INTERRUPTED


async def test_requeue_keeps_attempts(storage: Storage) -> None:
    """requeue_run returns a running run to the queue; the next claim counts a second attempt."""
    thread = await new_thread(storage)
    run = make_run(thread.thread_id)
    await add_runs(storage, run)
    assert await claim(storage, worker="w1") is not None
    async with storage.transaction() as tx:
        await tx.requeue_run(run.run_id, stamp())
    async with storage.read() as db:
        back = await db.get_run(run.run_id)
        assert back is not None and (back.status, back.attempt) == (RunStatus.PENDING, 1)
        assert await db.running_runs() == []
    again = await claim(storage, worker="w2")
    assert again is not None and (again.run_id, again.attempt) == (run.run_id, 2)


async def test_expired_leases_and_renewal(storage: Storage) -> None:
    """Runs whose lease expired are listed for the sweeper; renew_leases extends only the worker's own."""
    threads = [await new_thread(storage) for _ in range(2)]
    mine, theirs = make_run(threads[0].thread_id), make_run(threads[1].thread_id)
    await add_runs(storage, mine, theirs)
    assert await claim(storage, worker="me", at=1000.0, lease=10.0) is not None
    assert await claim(storage, worker="them", at=1000.0, lease=10.0) is not None
    async with storage.transaction() as tx:
        assert await tx.runs_leased_by_others(1005.0) == []
        await tx.renew_leases("me", 1100.0)
        expired = await tx.runs_leased_by_others(1020.0)
        assert [r.run_id for r in expired] == [theirs.run_id]
        running = await tx.running_runs()
        assert {r.run_id for r in running} == {mine.run_id, theirs.run_id}
        assert {r.run_id for r in await tx.runs_leased_by_others(1200.0)} == {mine.run_id, theirs.run_id}


async def test_cancellable_runs_selection(storage: Storage) -> None:
    """cancellable_runs picks in-flight runs by thread and ids, or by status (pending, running, all)."""
    thread = await new_thread(storage)
    other = await new_thread(storage)
    a, b, c = make_run(thread.thread_id), make_run(thread.thread_id), make_run(other.thread_id)
    done = make_run(other.thread_id)
    await add_runs(storage, a, b, c, done)
    assert (await claim(storage)) is not None  # a
    assert (await claim(storage)) is not None  # c
    async with storage.transaction() as tx:
        await tx.finish_run(c.run_id, RunStatus.SUCCESS, None, stamp())
    async with storage.read() as db:

        async def picked(**kwargs: Any) -> list[str]:
            args: dict[str, Any] = {"thread_id": None, "run_ids": None, "status": None, **kwargs}
            return [r.run_id for r in await db.cancellable_runs(**args)]

        assert await picked(thread_id=thread.thread_id) == [a.run_id, b.run_id]
        assert await picked(thread_id=thread.thread_id, run_ids=[b.run_id, c.run_id]) == [b.run_id]
        assert await picked(run_ids=[]) == []
        assert await picked(status="running") == [a.run_id]
        assert await picked(status="pending") == [b.run_id, done.run_id]
        assert await picked(status="all") == [a.run_id, b.run_id, done.run_id]


async def test_delete_run(storage: Storage) -> None:
    """delete_run removes one run row and says whether it existed; a deleted running run frees its thread."""
    thread = await new_thread(storage)
    first, second = make_run(thread.thread_id), make_run(thread.thread_id)
    await add_runs(storage, first, second)
    assert await claim(storage) is not None
    async with storage.transaction() as tx:
        assert await tx.delete_run(first.run_id) is True
        assert await tx.delete_run(first.run_id) is False
    got = await claim(storage)
    assert got is not None and got.run_id == second.run_id


async def test_delete_run_checkpoints(storage: Storage) -> None:
    """delete_run_checkpoints removes the run's checkpoints and their writes; other runs' stay."""
    thread = await new_thread(storage)
    saver = storage.checkpointer
    config: RunnableConfig = {"configurable": {"thread_id": thread.thread_id, "checkpoint_ns": ""}}
    written: dict[str, list[str]] = {"keep": [], "drop": []}
    for run_name in ("keep", "drop", "drop"):
        checkpoint = empty_checkpoint()
        config = await saver.aput(config, checkpoint, {"source": "loop", "step": 1, "run_id": run_name}, {})
        await saver.aput_writes(config, [("messages", f"write of {run_name}")], task_id=str(uuid.uuid4()))
        written[run_name].append(checkpoint["id"])
    async with storage.transaction() as tx:
        await tx.delete_run_checkpoints(thread.thread_id, "drop")
    base: RunnableConfig = {"configurable": {"thread_id": thread.thread_id}}
    left = [t async for t in saver.alist(base)]
    assert [t.checkpoint["id"] for t in left] == written["keep"]
    assert [w[1:] for w in left[0].pending_writes or []] == [("messages", "write of keep")]
    for checkpoint_id in written["drop"]:
        gone: RunnableConfig = {
            "configurable": {"thread_id": thread.thread_id, "checkpoint_ns": "", "checkpoint_id": checkpoint_id}
        }
        assert await saver.aget_tuple(gone) is None


# --- transactions and concurrency ---------------------------------------------------------------


class Boom(Exception):
    """Raised inside a transaction to make it roll back."""


async def test_transaction_rolls_back_on_error(storage: Storage) -> None:
    """An exception inside transaction() undoes every write of that transaction and propagates."""
    thread = make_thread()
    with pytest.raises(Boom):
        async with storage.transaction() as tx:
            await tx.insert_thread(thread)
            await tx.insert_run(make_run(thread.thread_id))
            raise Boom
    async with storage.read() as db:
        assert await db.get_thread(thread.thread_id) is None
        assert await db.count_threads(metadata=None, values=None, status=None, auth=None) == 0
    await add_threads(storage, thread)


async def test_concurrent_claims_take_one_run_per_thread(storage: Storage) -> None:
    """Many concurrent claims never start two runs of one thread, and each thread starts its oldest run."""
    threads = [await new_thread(storage) for _ in range(4)]
    runs = {t.thread_id: [make_run(t.thread_id) for _ in range(5)] for t in threads}
    await add_runs(storage, *(r for queue in runs.values() for r in queue))
    claimed = await asyncio.gather(*(claim(storage, worker=f"w{i}") for i in range(16)))
    got = [r for r in claimed if r is not None]
    assert sorted(r.run_id for r in got) == sorted(queue[0].run_id for queue in runs.values())
    async with storage.read() as db:
        assert len(await db.running_runs()) == 4


# --- crons --------------------------------------------------------------------------------------


def make_cron(
    assistant_id: str,
    *,
    thread_id: str | None = None,
    next_run_date: str | None = "2025-01-01T00:05:00.000000+00:00",
    metadata: Json | None = None,
    enabled: bool = True,
    end_time: str | None = None,
) -> Cron:
    """A new cron record on an assistant (and a thread, for a thread cron)."""
    at = stamp()
    return Cron(
        cron_id=str(uuid.uuid4()),
        assistant_id=assistant_id,
        thread_id=thread_id,
        user_id="ana",
        schedule="*/5 * * * *",
        timezone=None,
        end_time=end_time,
        payload={"input": {"value": 1}, "config": {"configurable": {"cron_id": "c"}}},
        metadata=metadata or {},
        on_run_completed=None if thread_id else "delete",
        enabled=enabled,
        next_run_date=next_run_date,
        created_at=at,
        updated_at=at,
    )


async def add_crons(storage: Storage, *crons: Cron) -> None:
    """Insert crons in one transaction."""
    async with storage.transaction() as tx:
        for cron in crons:
            await tx.insert_cron(cron)


async def new_assistant(storage: Storage) -> Assistant:
    """Insert and return a new assistant."""
    assistant = make_assistant()
    async with storage.transaction() as tx:
        await tx.insert_assistant(assistant)
    return assistant


async def search_crons(db: Session, **kwargs: Any) -> list[Cron]:
    """search_crons with defaults for every filter not given."""
    args: dict[str, Any] = {
        "assistant_id": None,
        "thread_id": None,
        "enabled": None,
        "metadata": None,
        "auth": None,
        "limit": 100,
        "offset": 0,
        "sort_by": "created_at",
        "sort_order": "asc",
    }
    args.update(kwargs)
    return await db.search_crons(**args)


def cron_ids(crons: Sequence[Cron]) -> list[str]:
    """The ids of crons, in order."""
    return [c.cron_id for c in crons]


async def test_insert_get_update_delete_cron(storage: Storage) -> None:
    """A cron reads back field for field; update_cron overwrites its changeable fields; delete_cron removes it once."""
    assistant = await new_assistant(storage)
    thread = await new_thread(storage)
    cron = make_cron(assistant.assistant_id, thread_id=thread.thread_id, metadata={"owner": "ana"})
    stateless = make_cron(assistant.assistant_id)
    await add_crons(storage, cron, stateless)
    async with storage.read() as db:
        assert await db.get_cron(cron.cron_id) == cron
        assert await db.get_cron(stateless.cron_id) == stateless
        assert await db.get_cron(str(uuid.uuid4())) is None
    changed = Cron(
        **{
            **{f: getattr(cron, f) for f in Cron.__slots__},
            "schedule": "0 3 * * *",
            "timezone": "Europe/Paris",
            "end_time": "2026-01-01T00:00:00.000000+00:00",
            "payload": {"input": None},
            "metadata": {"owner": "ana", "k": 2},
            "enabled": False,
            "next_run_date": None,
            "updated_at": stamp(),
        }
    )
    async with storage.transaction() as tx:
        await tx.update_cron(changed)
    async with storage.read() as db:
        assert await db.get_cron(cron.cron_id) == changed
    async with storage.transaction() as tx:
        assert await tx.delete_cron(cron.cron_id) is True
        assert await tx.delete_cron(cron.cron_id) is False
    async with storage.read() as db:
        assert await db.get_cron(cron.cron_id) is None
        assert await db.get_cron(stateless.cron_id) == stateless


async def test_insert_cron_twice_is_unique_violation(storage: Storage) -> None:
    """Inserting an existing cron id raises UniqueViolation and leaves the transaction usable."""
    assistant = await new_assistant(storage)
    cron = make_cron(assistant.assistant_id)
    await add_crons(storage, cron)
    async with storage.transaction() as tx:
        with pytest.raises(UniqueViolation):
            await tx.insert_cron(cron)
        other = make_cron(assistant.assistant_id)
        await tx.insert_cron(other)
    async with storage.read() as db:
        assert await db.get_cron(other.cron_id) == other


async def test_cron_auth_filter_hides_get_and_delete(storage: Storage) -> None:
    """get_cron and delete_cron treat a cron the auth filter (on its metadata) hides as missing."""
    assistant = await new_assistant(storage)
    cron = make_cron(assistant.assistant_id, metadata={"owner": "ana"})
    await add_crons(storage, cron)
    async with storage.transaction() as tx:
        assert await tx.get_cron(cron.cron_id, {"owner": "bob"}) is None
        assert await tx.get_cron(cron.cron_id, {"owner": "ana"}) == cron
        assert await tx.delete_cron(cron.cron_id, {"owner": "bob"}) is False
    async with storage.transaction() as tx:
        assert await tx.delete_cron(cron.cron_id, {"owner": {"$eq": "ana"}}) is True


async def test_search_and_count_crons(storage: Storage) -> None:
    """search_crons and count_crons filter by assistant, thread, enabled, metadata containment and auth;
    search sorts and pages."""
    a1, a2 = await new_assistant(storage), await new_assistant(storage)
    t1, t2 = await new_thread(storage), await new_thread(storage)
    crons = [
        make_cron(a1.assistant_id, thread_id=t1.thread_id, metadata={"owner": "ana", "tags": ["x", "y"]}),
        make_cron(a2.assistant_id, thread_id=t1.thread_id, metadata={"owner": "bob"}, enabled=False),
        make_cron(a1.assistant_id, thread_id=t2.thread_id, metadata={"owner": "ana"}),
        make_cron(a1.assistant_id, metadata={"owner": "bob", "tags": ["x"]}),
    ]
    await add_crons(storage, *crons)
    ids = cron_ids(crons)
    async with storage.read() as db:
        assert cron_ids(await search_crons(db)) == ids
        assert cron_ids(await search_crons(db, sort_order="desc")) == ids[::-1]
        assert cron_ids(await search_crons(db, limit=2, offset=1)) == ids[1:3]
        assert cron_ids(await search_crons(db, thread_id=t1.thread_id)) == ids[:2]
        assert cron_ids(await search_crons(db, assistant_id=a1.assistant_id)) == [ids[0], ids[2], ids[3]]
        assert cron_ids(await search_crons(db, enabled=False)) == [ids[1]]
        assert cron_ids(await search_crons(db, enabled=True)) == [ids[0], ids[2], ids[3]]
        assert cron_ids(await search_crons(db, metadata={"tags": ["x"]})) == [ids[0], ids[3]]
        assert cron_ids(await search_crons(db, auth={"owner": "bob"})) == [ids[1], ids[3]]
        assert cron_ids(await search_crons(db, sort_by="nonsense")) == ids
        assert await db.count_crons(assistant_id=None, thread_id=None, metadata=None, auth=None) == 4
        assert await db.count_crons(assistant_id=a1.assistant_id, thread_id=t1.thread_id, metadata=None, auth=None) == 1
        assert await db.count_crons(assistant_id=None, thread_id=None, metadata={"tags": ["x"]}, auth=None) == 2
        assert await db.count_crons(assistant_id=None, thread_id=None, metadata=None, auth={"owner": "ana"}) == 2


async def test_deleting_thread_or_assistant_deletes_its_crons(storage: Storage) -> None:
    """A thread cron goes with its thread, every cron with its assistant."""
    a1, a2 = await new_assistant(storage), await new_assistant(storage)
    thread = await new_thread(storage)
    on_thread = make_cron(a1.assistant_id, thread_id=thread.thread_id)
    stateless = make_cron(a1.assistant_id)
    other = make_cron(a2.assistant_id)
    await add_crons(storage, on_thread, stateless, other)
    async with storage.transaction() as tx:
        assert await tx.delete_thread(thread.thread_id)
    async with storage.read() as db:
        assert await db.get_cron(on_thread.cron_id) is None
        assert await db.get_cron(stateless.cron_id) == stateless
    async with storage.transaction() as tx:
        assert await tx.delete_assistant(a1.assistant_id)
    async with storage.read() as db:
        assert cron_ids(await search_crons(db)) == [other.cron_id]


async def test_due_crons(storage: Storage) -> None:
    """due_crons: enabled, next_run_date at or before now, end_time absent or not passed; earliest first."""
    assistant = await new_assistant(storage)
    a = assistant.assistant_id
    now = "2025-01-01T00:10:00.000000+00:00"
    late = make_cron(a, next_run_date="2025-01-01T00:09:00.000000+00:00")
    early = make_cron(a, next_run_date="2025-01-01T00:01:00.000000+00:00")
    exactly = make_cron(a, next_run_date=now, end_time=now)
    future = make_cron(a, next_run_date="2025-01-01T00:10:00.000001+00:00")
    disabled = make_cron(a, next_run_date=early.next_run_date, enabled=False)
    ended = make_cron(a, next_run_date=early.next_run_date, end_time="2025-01-01T00:09:59.999999+00:00")
    never = make_cron(a, next_run_date=None)
    await add_crons(storage, late, early, exactly, future, disabled, ended, never)
    async with storage.read() as db:
        assert cron_ids(await db.due_crons(now, 10)) == [early.cron_id, late.cron_id, exactly.cron_id]
        assert cron_ids(await db.due_crons(now, 1)) == [early.cron_id]


async def test_claim_cron_fire_once_per_occurrence(storage: Storage) -> None:
    """claim_cron_fire advances next_run_date and succeeds once per (cron, scheduled time); a stale
    claim, or one for a cron that vanished, fails without changing anything."""
    assistant = await new_assistant(storage)
    cron = make_cron(assistant.assistant_id, next_run_date="2025-01-01T00:05:00.000000+00:00")
    await add_crons(storage, cron)
    t5, t10, fired = "2025-01-01T00:05:00.000000+00:00", "2025-01-01T00:10:00.000000+00:00", stamp()
    async with storage.transaction() as tx:
        assert await tx.claim_cron_fire(cron.cron_id, t5, t10, fired) is True
    async with storage.transaction() as tx:
        assert await tx.claim_cron_fire(cron.cron_id, t5, t10, fired) is False
    async with storage.read() as db:
        got = await db.get_cron(cron.cron_id)
        assert got is not None and got.next_run_date == t10
    async with storage.transaction() as tx:
        assert await tx.claim_cron_fire(cron.cron_id, t10, "2025-01-01T00:15:00.000000+00:00", fired) is True
        assert await tx.claim_cron_fire(str(uuid.uuid4()), t10, t10, fired) is False


async def test_claim_cron_fire_rolls_back_with_its_transaction(storage: Storage) -> None:
    """A claim whose transaction fails is undone: the occurrence can be claimed again."""
    assistant = await new_assistant(storage)
    t5 = "2025-01-01T00:05:00.000000+00:00"
    cron = make_cron(assistant.assistant_id, next_run_date=t5)
    await add_crons(storage, cron)
    with pytest.raises(Boom):
        async with storage.transaction() as tx:
            assert await tx.claim_cron_fire(cron.cron_id, t5, "2025-01-01T00:10:00.000000+00:00", stamp())
            raise Boom
    async with storage.transaction() as tx:
        assert await tx.claim_cron_fire(cron.cron_id, t5, "2025-01-01T00:10:00.000000+00:00", stamp()) is True


async def test_concurrent_claims_fire_a_cron_once(storage_url: str) -> None:
    """Claims of one occurrence racing from several storages (processes) on one database: exactly one wins."""
    storages = [await open_storage(storage_url) for _ in range(4)]
    try:
        assistant = await new_assistant(storages[0])
        t5 = "2025-01-01T00:05:00.000000+00:00"
        cron = make_cron(assistant.assistant_id, next_run_date=t5)
        await add_crons(storages[0], cron)

        async def one(storage: Storage) -> bool:
            async with storage.transaction() as tx:
                return await tx.claim_cron_fire(cron.cron_id, t5, "2025-01-01T00:10:00.000000+00:00", stamp())

        won = await asyncio.gather(*(one(s) for s in storages for _ in range(3)))
        assert sorted(won) == [False] * 11 + [True]
    finally:
        for storage in storages:
            await storage.close()


# --- waking workers -----------------------------------------------------------------------------


async def test_wait_for_work_wakes_on_notify_work(storage: Storage) -> None:
    """wait_for_work returns on notify_work, and otherwise only at its timeout."""
    await storage.wait_for_work(0)  # the first wait may return at once (the backend starts listening)
    started = time.monotonic()
    await storage.wait_for_work(0.2)
    assert time.monotonic() - started >= 0.19
    waiter = asyncio.create_task(storage.wait_for_work(10))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    started = time.monotonic()
    storage.notify_work()
    await asyncio.wait_for(waiter, 2)
    assert time.monotonic() - started < 1


@pytest.mark.postgres
async def test_wait_for_work_wakes_on_another_process_insert(postgres_url: str) -> None:
    """A run inserted through another Storage (another process) wakes wait_for_work at commit, not before."""
    waiting = await open_storage(postgres_url)
    writer = await open_storage(postgres_url)
    try:
        await waiting.wait_for_work(0)  # starts the listener
        thread = await new_thread(writer)
        waiter = asyncio.create_task(waiting.wait_for_work(10))
        async with writer.transaction() as tx:
            await tx.insert_run(make_run(thread.thread_id))
            await asyncio.sleep(0.2)
            assert not waiter.done(), "woken before the insert committed"
        started = time.monotonic()
        await asyncio.wait_for(waiter, 5)
        assert time.monotonic() - started < 1
    finally:
        await waiting.close()
        await writer.close()


@pytest.mark.postgres
async def test_wait_for_work_survives_a_dropped_listen_connection(postgres_url: str) -> None:
    """When the LISTEN connection is killed, the listener reconnects and wake-ups resume."""
    waiting = await open_storage(postgres_url)
    writer = await open_storage(postgres_url)
    try:
        await waiting.wait_for_work(0)
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as admin:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query = 'LISTEN graphyard_runs'"
            )
        # The reconnect wakes once (notifications may have been missed while it was down).
        await asyncio.wait_for(waiting.wait_for_work(10), 5)
        thread = await new_thread(writer)
        waiter = asyncio.create_task(waiting.wait_for_work(10))
        await asyncio.sleep(0.1)
        await add_runs(writer, make_run(thread.thread_id))
        started = time.monotonic()
        await asyncio.wait_for(waiter, 5)
        assert time.monotonic() - started < 1
    finally:
        await waiting.close()
        await writer.close()


@pytest.mark.postgres
async def test_a_session_stalled_inside_a_pipeline_is_ended(postgres_url: str) -> None:
    """A client that locked a run row in a pipelined transaction and went silent (no Sync: PostgreSQL counts
    it active, so idle_in_transaction_session_timeout never fires) is ended once stalled long enough; its
    lock goes with it, and the row can be swept. A session that has not stalled that long is left alone."""
    storage = await open_storage(postgres_url)
    try:
        thread = await new_thread(storage)
        run = make_run(thread.thread_id)
        await add_runs(storage, run)
        stalled = psycopg.pq.PGconn.connect(postgres_url.encode())
        try:
            stalled.enter_pipeline_mode()
            stalled.send_query_params(b"BEGIN", None)
            lock = b"SELECT run_id FROM graphyard_runs WHERE run_id = $1 FOR UPDATE"
            stalled.send_query_params(lock, [run.run_id.encode()])
            stalled.send_flush_request()
            assert stalled.flush() == 0

            async def locked() -> bool:
                async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as probe:
                    cur = await probe.execute(
                        "SELECT count(*) FROM pg_locks WHERE relation = 'graphyard_runs'::regclass"
                        " AND pid <> pg_backend_pid()"
                    )
                    row = await cur.fetchone()
                    return row is not None and int(row[0]) > 0

            deadline = time.monotonic() + 10
            while not await locked():
                assert time.monotonic() < deadline, "the pipelined transaction never took its lock"
                await asyncio.sleep(0.05)
            async with storage.transaction() as tx:
                assert await tx.end_stalled_sessions(3600) == 0  # not stalled long enough
            await asyncio.sleep(0.3)
            async with storage.transaction() as tx:
                assert await tx.end_stalled_sessions(0.2) == 1
            deadline = time.monotonic() + 10
            while await locked():
                assert time.monotonic() < deadline, "the ended session's lock was not released"
                await asyncio.sleep(0.05)
        finally:
            stalled.finish()
    finally:
        await storage.close()


async def test_end_stalled_sessions_finds_none_on_its_own(storage: Storage) -> None:
    """With nothing stalled (and on SQLite, never) there is no session to end."""
    async with storage.transaction() as tx:
        assert await tx.end_stalled_sessions(0) == 0


# --- migrations ---------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_concurrent_opens_migrate_an_empty_database_once(empty_postgres_url: str) -> None:
    """Five processes opening an empty database at once apply each migration, and LangGraph's setup, exactly once."""
    opened = await asyncio.gather(*(open_storage(empty_postgres_url) for _ in range(5)))
    try:
        async with await psycopg.AsyncConnection.connect(empty_postgres_url) as conn:
            cur = await conn.execute("SELECT version, count(*) FROM graphyard_migrations GROUP BY version")
            rows = await cur.fetchall()
            assert sorted(rows) == [(number, 1) for number, _, _ in load_migrations("graphyard.storage.postgres")]
            for table, expected in (
                ("checkpoint_migrations", len(AsyncPostgresSaver.MIGRATIONS)),
                ("store_migrations", len(AsyncPostgresStore.MIGRATIONS)),
            ):
                cur = await conn.execute(f"SELECT count(*), max(v) + 1 FROM {table}")
                assert await cur.fetchone() == (expected, expected)
        # Every opened storage works on the one schema.
        for storage in opened:
            await add_threads(storage, make_thread())
        async with opened[0].read() as db:
            assert await db.count_threads(metadata=None, values=None, status=None, auth=None) == 5
    finally:
        for storage in opened:
            await storage.close()


async def test_reopening_is_a_no_op(storage_url: str) -> None:
    """Opening an already migrated database again changes nothing and keeps its data."""
    first = await open_storage(storage_url)
    thread = await new_thread(first)
    await first.close()
    second = await open_storage(storage_url)
    try:
        async with second.read() as db:
            assert await db.get_thread(thread.thread_id) == thread
    finally:
        await second.close()


# --- operators (graphyard queue, graphyard runs, /metrics) -----------------------------------------


async def test_queue_stats_counts_the_queue(storage: Storage) -> None:
    """queue_stats counts runs by status, pending runs due and delayed, the oldest due time, running
    runs per lease owner, and running runs whose lease expired."""
    threads = [await new_thread(storage) for _ in range(4)]
    first, second = (
        make_run(threads[0].thread_id, available_at=100.0),
        make_run(threads[1].thread_id, available_at=50.0),
    )
    due, delayed = (
        make_run(threads[2].thread_id, available_at=900.0),
        make_run(threads[3].thread_id, available_at=5000.0),
    )
    await add_runs(storage, first, second, due, delayed)
    assert await claim(storage, worker="w1", at=1000.0, lease=10.0) is not None  # second (earliest)
    assert await claim(storage, worker="w2", at=1000.0, lease=100.0) is not None  # first
    async with storage.read() as db:
        stats = await db.queue_stats(1050.0)
    assert stats.runs_by_status == {"running": 2, "pending": 2}
    assert (stats.pending_due, stats.pending_delayed) == (1, 1)
    assert stats.oldest_due_at == 900.0
    assert stats.running_by_worker == {"w1": 1, "w2": 1}
    assert stats.expired_leases == 1, "w1's lease ended at 1010"


async def test_queue_stats_of_an_empty_database(storage: Storage) -> None:
    """queue_stats of a database without runs is all zeros and no oldest time."""
    async with storage.read() as db:
        stats = await db.queue_stats(time.time())
    assert stats.runs_by_status == {} and stats.running_by_worker == {}
    assert (stats.pending_due, stats.pending_delayed, stats.expired_leases, stats.oldest_due_at) == (0, 0, 0, None)


async def test_leased_runs_filters_and_shows_leases(storage: Storage) -> None:
    """leased_runs lists runs of every thread oldest first with their leases, filtered by status,
    thread and created-before; leased_run finds one run with its lease."""
    one, two = await new_thread(storage), await new_thread(storage)
    a, b, c = make_run(one.thread_id), make_run(two.thread_id), make_run(two.thread_id)
    await add_runs(storage, a, b, c)
    assert await claim(storage, worker="w9", at=1000.0, lease=30.0) is not None  # a
    async with storage.read() as db:

        async def listed(**kwargs: Any) -> list[str]:
            args: dict[str, Any] = {"status": None, "thread_id": None, "created_before": None, "limit": 100, **kwargs}
            return [r.run.run_id for r in await db.leased_runs(**args)]

        assert await listed() == [a.run_id, b.run_id, c.run_id]
        assert await listed(status="pending") == [b.run_id, c.run_id]
        assert await listed(thread_id=two.thread_id, limit=1) == [b.run_id]
        assert await listed(created_before=b.created_at) == [a.run_id]
        leased = await db.leased_run(a.run_id)
        assert leased is not None and leased.run.status is RunStatus.RUNNING
        assert (leased.lease_owner, leased.lease_expires_at) == ("w9", 1030.0)
        waiting = await db.leased_run(b.run_id)
        assert waiting is not None and (waiting.lease_owner, waiting.lease_expires_at) == (None, None)
        assert await db.leased_run(str(uuid.uuid4())) is None
