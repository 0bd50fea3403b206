"""Truly concurrent double-submits: exactly one consistent outcome for each race."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from langgraph_sdk.client import LangGraphClient

from tests.api.support import Server, eventually, obj, wait_for_file

N = 8


async def racing_posts(server: Server, url: str, payloads: list[dict[str, Any]]) -> list[httpx.Response]:
    """POST every payload at once, each on its own connection, released together by one event."""
    go = asyncio.Event()
    clients = [httpx.AsyncClient(base_url=server.url, timeout=30) for _ in payloads]
    try:
        # Open every connection first, so the POSTs are not serialised behind connection setup.
        await asyncio.gather(*(c.get("/ok") for c in clients))

        async def post(c: httpx.AsyncClient, payload: dict[str, Any]) -> httpx.Response:
            await go.wait()
            return await c.post(url, json=payload)

        tasks = [asyncio.ensure_future(post(c, p)) for c, p in zip(clients, payloads, strict=True)]
        await asyncio.sleep(0)  # let every task reach go.wait()
        go.set()
        return list(await asyncio.gather(*tasks))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))


async def test_concurrent_reject_runs_on_an_idle_thread_accept_exactly_one(
    server: Server, client: LangGraphClient, tmp_path: Path
) -> None:
    """N simultaneous multitask_strategy=reject runs on one idle thread: one 200, every other one 409."""
    gate = tmp_path / "gate"
    tid = (await client.threads.create())["thread_id"]
    payload = {"assistant_id": "gate", "input": {"gate": str(gate)}, "multitask_strategy": "reject"}
    responses = await racing_posts(server, f"/threads/{tid}/runs", [payload] * N)
    assert Counter(r.status_code for r in responses) == {200: 1, 409: N - 1}, [r.text for r in responses]
    for refused in (r for r in responses if r.status_code == 409):
        assert refused.json()["detail"]
    [accepted] = [r.json() for r in responses if r.status_code == 200]
    assert [r["run_id"] for r in await client.runs.list(tid)] == [accepted["run_id"]]
    await wait_for_file(Path(f"{gate}.entered"))
    # While it runs, a second wave is refused in full.
    again = await racing_posts(server, f"/threads/{tid}/runs", [payload] * N)
    assert Counter(r.status_code for r in again) == {409: N}
    gate.touch()
    await client.runs.join(tid, accepted["run_id"])
    assert obj((await client.threads.get_state(tid))["values"])["steps"] == ["before", "hold", "after"]


async def test_concurrent_thread_creates_with_one_id_make_one_thread(server: Server, client: LangGraphClient) -> None:
    """N simultaneous threads.create with the same thread_id: one 200, every other one 409."""
    tid = str(uuid.uuid4())
    payloads = [{"thread_id": tid, "metadata": {"writer": i}} for i in range(N)]
    responses = await racing_posts(server, "/threads", payloads)
    assert Counter(r.status_code for r in responses) == {200: 1, 409: N - 1}, [r.text for r in responses]
    [winner] = [r.json() for r in responses if r.status_code == 200]
    thread = await client.threads.get(tid)
    assert thread["metadata"] == winner["metadata"]
    assert await client.threads.count(metadata={"writer": winner["metadata"]["writer"]}) >= 1
    assert len(await client.threads.search(ids=[tid])) == 1


async def test_concurrent_thread_creates_with_do_nothing_all_get_the_same_thread(
    server: Server, client: LangGraphClient
) -> None:
    """N simultaneous threads.create(if_exists=do_nothing) with one id all answer 200 with the same thread."""
    tid = str(uuid.uuid4())
    payloads = [{"thread_id": tid, "if_exists": "do_nothing", "metadata": {"w": i}} for i in range(N)]
    responses = await racing_posts(server, "/threads", payloads)
    assert {r.status_code for r in responses} == {200}
    assert len({(r.json()["thread_id"], r.json()["created_at"]) for r in responses}) == 1


async def test_concurrent_if_not_exists_create_runs_make_one_thread_and_queue_fifo(
    server: Server, client: LangGraphClient
) -> None:
    """N simultaneous if_not_exists=create runs on one new id: one thread, all N runs, executed one by one."""
    tid = str(uuid.uuid4())
    payloads = [
        {"assistant_id": "slow", "input": {}, "context": {"delay": 0.01, "tag": str(i)}, "if_not_exists": "create"}
        for i in range(N)
    ]
    responses = await racing_posts(server, f"/threads/{tid}/runs", payloads)
    assert {r.status_code for r in responses} == {200}, [r.text for r in responses]
    assert len(await client.threads.search(ids=[tid])) == 1
    runs = await client.runs.list(tid, limit=100)
    assert len(runs) == N
    statuses = await eventually(
        lambda: client.runs.list(tid, limit=100),
        lambda rs: all(r["status"] in ("success", "error", "interrupted") for r in rs),
        what="all runs finished",
    )
    assert {r["status"] for r in statuses} == {"success"}
    done = obj((await client.threads.get_state(tid))["values"])["steps"]
    # One run at a time on the thread: each run's three steps are contiguous.
    tags = [step.split(":")[1] for step in done]
    assert len(tags) == 3 * N
    groups = [tags[i : i + 3] for i in range(0, 3 * N, 3)]
    assert all(len(set(g)) == 1 for g in groups), done
    assert sorted(g[0] for g in groups) == sorted(str(i) for i in range(N))
    # FIFO: they ran in the order the server queued them (the order of their created_at).
    queued = [
        obj(dict(r)["kwargs"])["context"]["tag"] for r in sorted(runs, key=lambda r: (r["created_at"], r["run_id"]))
    ]
    assert [g[0] for g in groups] == queued
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_concurrent_runs_on_different_threads_run_in_parallel(client: LangGraphClient, tmp_path: Path) -> None:
    """Runs on different threads do not queue behind one another: all of them are inside a node at once."""
    gates = [tmp_path / f"gate-{i}" for i in range(3)]
    threads = [(await client.threads.create())["thread_id"] for _ in gates]
    runs = [
        await client.runs.create(tid, "gate", input={"gate": str(gate)})
        for tid, gate in zip(threads, gates, strict=True)
    ]
    for gate in gates:
        await wait_for_file(Path(f"{gate}.entered"))
    statuses = [(await client.runs.get(t, r["run_id"]))["status"] for t, r in zip(threads, runs, strict=True)]
    assert statuses == ["running"] * 3
    for gate in gates:
        gate.touch()
    for tid, run in zip(threads, runs, strict=True):
        await client.runs.join(tid, run["run_id"])
        assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"
