"""Crons through a real server: create, get, search, count, patch, delete, validation, and firing.

Firing tests do not wait for a minute boundary: they start a server whose scheduler looks every 0.1 s
(CRON_SCHEDULER_SLEEP_TIME), create a cron, and then make it due by moving its next_run_date into
the past in the server's SQLite file, as a stopped-then-restarted deployment would find it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.api.support import Server, StartServer, eventually, obj, system_assistant_id

PAST = "2000-01-01T00:00:00.000000+00:00"
FAST_SCHEDULER = {"CRON_SCHEDULER_SLEEP_TIME": "0.1"}


def when(value: Any) -> datetime:
    """A timestamp field as an aware datetime."""
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def make_due(database: Path, cron_id: str, next_run_date: str = PAST) -> None:
    """Move a cron's next run into the past, straight in the server's database."""
    with sqlite3.connect(database, timeout=10) as conn:
        changed = conn.execute(
            "UPDATE graphyard_crons SET next_run_date = ? WHERE cron_id = ?", (next_run_date, cron_id)
        ).rowcount
    assert changed == 1


def fires(database: Path, cron_id: str) -> int:
    """How many occurrences of the cron some worker claimed (the pruned history keeps the last)."""
    with sqlite3.connect(database, timeout=10) as conn:
        row = conn.execute("SELECT count(*) FROM graphyard_cron_fires WHERE cron_id = ?", (cron_id,)).fetchone()
    return int(row[0])


async def new_cron(client: LangGraphClient, assistant_id: str, **kwargs: Any) -> dict[str, Any]:
    """client.crons.create, typed as the Cron object the server answers (the SDK says Run)."""
    return obj(await client.crons.create(assistant_id, **kwargs))


async def thread_cron(client: LangGraphClient, thread_id: str, assistant_id: str, **kwargs: Any) -> dict[str, Any]:
    """client.crons.create_for_thread, typed as the Cron object the server answers."""
    return obj(await client.crons.create_for_thread(thread_id, assistant_id, **kwargs))


async def update_cron(client: LangGraphClient, cron_id: str, **kwargs: Any) -> dict[str, Any]:
    """client.crons.update, typed as the Cron object the server answers."""
    return obj(await client.crons.update(cron_id, **kwargs))


@pytest.fixture
async def fast(start_server: StartServer) -> Server:
    """A server of this test's own whose cron scheduler wakes every 0.1 s."""
    return await start_server(env=FAST_SCHEDULER)


@pytest.fixture
async def fast_client(fast: Server) -> AsyncIterator[LangGraphClient]:
    """An SDK client for the fast-scheduler server."""
    sdk = get_client(url=fast.url, api_key=None, timeout=60)
    try:
        yield sdk
    finally:
        await sdk.http.client.aclose()


# --- CRUD ---------------------------------------------------------------------------------------


async def test_info_advertises_crons(http: httpx.AsyncClient) -> None:
    """/info says crons are supported."""
    assert (await http.get("/info")).json()["flags"]["crons"] is True


async def test_thread_cron_lifecycle(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    """A thread cron is created with the reference's fields, read, found, counted, patched and deleted."""
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    cron = obj(
        await thread_cron(
            client,
            thread_id,
            "echo",
            schedule="15 3 * * *",
            input={"value": 1},
            metadata={"m": 1},
            config={"tags": ["t"]},
        )
    )
    assert set(cron) == {
        "cron_id",
        "assistant_id",
        "thread_id",
        "user_id",
        "end_time",
        "schedule",
        "timezone",
        "payload",
        "next_run_date",
        "metadata",
        "on_run_completed",
        "enabled",
        "created_at",
        "updated_at",
    }
    cron_id = cron["cron_id"]
    assert (cron["thread_id"], cron["assistant_id"]) == (thread_id, system_assistant_id("echo"))
    assert (cron["user_id"], cron["timezone"], cron["end_time"], cron["on_run_completed"]) == ("", None, None, None)
    assert cron["enabled"] is True and cron["metadata"] == {"m": 1}
    assert cron["payload"]["assistant_id"] == system_assistant_id("echo")
    assert cron["payload"]["config"] == {"tags": ["t"], "configurable": {"cron_id": cron_id}}
    assert cron["payload"]["input"] == {"value": 1}
    next_run = when(cron["next_run_date"])
    assert next_run > datetime.now(UTC) and (next_run.hour, next_run.minute) == (3, 15)

    got = await http.get(f"/runs/crons/{cron_id}")
    assert got.status_code == 200 and got.json() == cron
    assert [c["cron_id"] for c in await client.crons.search(thread_id=thread_id)] == [cron_id]
    assert await client.crons.count(thread_id=thread_id) == 1
    assert await client.crons.count(thread_id=thread_id, metadata={"m": 2}) == 0

    updated = obj(
        await update_cron(client, cron_id, schedule="45 6 * * *", enabled=False, metadata={"n": 2}, input={"value": 2})
    )
    assert (updated["schedule"], updated["enabled"], updated["metadata"]) == ("45 6 * * *", False, {"m": 1, "n": 2})
    assert (when(updated["next_run_date"]).hour, when(updated["next_run_date"]).minute) == (6, 45)
    assert updated["payload"]["input"] == {"value": 2}
    assert updated["payload"]["config"]["configurable"]["cron_id"] == cron_id
    assert updated["created_at"] == cron["created_at"] and updated["updated_at"] > cron["updated_at"]
    assert [c["cron_id"] for c in await client.crons.search(thread_id=thread_id, enabled=False)] == [cron_id]
    assert await client.crons.search(thread_id=thread_id, enabled=True) == []

    assert (await http.delete(f"/runs/crons/{cron_id}")).status_code == 204
    assert (await http.get(f"/runs/crons/{cron_id}")).status_code == 404
    assert (await http.delete(f"/runs/crons/{cron_id}")).status_code == 404
    assert (await http.patch(f"/runs/crons/{cron_id}", json={"enabled": True})).status_code == 404


async def test_stateless_cron_timezone_and_end_time(client: LangGraphClient) -> None:
    """A stateless cron defaults to on_run_completed delete; its schedule is read in its timezone."""
    cron = obj(
        await new_cron(
            client,
            "echo",
            schedule="0 9 * * *",
            timezone="Asia/Tokyo",
            end_time=datetime(2999, 1, 1, tzinfo=UTC),
            on_run_completed="keep",
        )
    )
    try:
        assert cron["thread_id"] is None and cron["on_run_completed"] == "keep"
        assert cron["timezone"] == "Asia/Tokyo"
        # 09:00 in Tokyo (UTC+9, no daylight saving) is 00:00 UTC.
        assert (when(cron["next_run_date"]).hour, when(cron["next_run_date"]).minute) == (0, 0)
        assert when(cron["end_time"]) == datetime(2999, 1, 1, tzinfo=UTC)
        plain = obj(await new_cron(client, "echo", schedule="0 9 * * *"))
        assert plain["on_run_completed"] == "delete"
        assert when(plain["next_run_date"]).hour == 9
        await client.crons.delete(plain["cron_id"])
    finally:
        await client.crons.delete(cron["cron_id"])


async def test_search_filters_sorting_and_select(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    """Search filters by assistant (id or graph name) and metadata, sorts, pages and selects fields."""
    marker = uuid.uuid4().hex
    made = [
        obj(await new_cron(client, "echo", schedule=f"{i} 1 * * *", metadata={"suite": marker, "i": i}))
        for i in range(3)
    ]
    made.append(obj(await new_cron(client, "slow", schedule="0 2 * * *", metadata={"suite": marker})))
    ids = [c["cron_id"] for c in made]
    try:
        res = await http.post("/runs/crons/search", json={"metadata": {"suite": marker}})
        assert [c["cron_id"] for c in res.json()] == ids[::-1]
        asc = await client.crons.search(metadata={"suite": marker}, sort_by="created_at", sort_order="asc", limit=2)
        assert [c["cron_id"] for c in asc] == ids[:2]
        by_name = await http.post("/runs/crons/search", json={"assistant_id": "slow", "metadata": {"suite": marker}})
        assert [c["cron_id"] for c in by_name.json()] == [ids[3]]
        by_id = await client.crons.search(assistant_id=system_assistant_id("echo"), metadata={"suite": marker})
        assert len(by_id) == 3
        picked = await http.post(
            "/runs/crons/search", json={"metadata": {"suite": marker, "i": 1}, "select": ["cron_id", "schedule"]}
        )
        assert picked.json() == [{"cron_id": ids[1], "schedule": "1 1 * * *"}]
        count = await http.post("/runs/crons/count", json={"assistant_id": "echo", "metadata": {"suite": marker}})
        assert count.json() == 3
    finally:
        for cron_id in ids:
            await client.crons.delete(cron_id)


async def test_deleting_the_thread_deletes_its_crons(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    """A thread's crons go with it."""
    thread = await client.threads.create()
    cron = await thread_cron(client, thread["thread_id"], "echo", schedule="0 1 * * *")
    await client.threads.delete(thread["thread_id"])
    assert (await http.get(f"/runs/crons/{cron['cron_id']}")).status_code == 404


async def test_deleting_the_assistant_deletes_its_crons(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    """An assistant's crons go with it."""
    assistant = await client.assistants.create("echo")
    cron = await new_cron(client, assistant["assistant_id"], schedule="0 1 * * *")
    assert cron["assistant_id"] == assistant["assistant_id"]
    await client.assistants.delete(assistant["assistant_id"])
    assert (await http.get(f"/runs/crons/{cron['cron_id']}")).status_code == 404


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"assistant_id": "echo", "schedule": "not a schedule"},
        {"assistant_id": "echo", "schedule": "61 * * * *"},
        {"assistant_id": "echo", "schedule": "* * * *"},
        {"assistant_id": "echo", "schedule": "0 0 31 2 *"},
        {"assistant_id": "echo", "schedule": "0 1 * * *", "timezone": "Mars/Olympus"},
        {"assistant_id": "echo", "schedule": "0 1 * * *", "end_time": "tomorrow"},
        {"assistant_id": "echo"},
        {"schedule": "0 1 * * *"},
        {"assistant_id": "echo", "schedule": "0 1 * * *", "on_run_completed": "archive"},
    ],
)
async def test_invalid_create_is_422(http: httpx.AsyncClient, body: dict[str, Any]) -> None:
    """Bad schedules, timezones, end times, missing fields and bad enums are 422."""
    res = await http.post("/runs/crons", json=body)
    assert res.status_code == 422, res.text


async def test_unknown_assistant_and_thread_are_404(http: httpx.AsyncClient) -> None:
    """An unknown assistant (name or UUID) or thread is 404, with the reference's assistant message."""
    res = await http.post("/runs/crons", json={"assistant_id": "nope", "schedule": "0 1 * * *"})
    assert (res.status_code, res.json()["detail"]) == (404, "Assistant 'nope' not found")
    missing = str(uuid.uuid4())
    res = await http.post("/runs/crons", json={"assistant_id": missing, "schedule": "0 1 * * *"})
    assert (res.status_code, res.json()["detail"]) == (404, f"Assistant '{missing}' not found")
    res = await http.post(f"/threads/{uuid.uuid4()}/runs/crons", json={"assistant_id": "echo", "schedule": "0 1 * * *"})
    assert res.status_code == 404


async def test_patch_validation(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    """PATCH: empty body 400, bad schedule or timezone 422, non-UUID id 422; a rejected patch changes nothing."""
    cron = await new_cron(client, "echo", schedule="0 1 * * *")
    url = f"/runs/crons/{cron['cron_id']}"
    try:
        assert (await http.patch(url, json={})).status_code == 400
        assert (await http.patch(url, json={"schedule": "nope"})).status_code == 422
        assert (await http.patch(url, json={"timezone": "Nowhere/Land"})).status_code == 422
        assert (await http.patch("/runs/crons/not-a-uuid", json={"enabled": False})).status_code == 422
        assert (await http.get("/runs/crons/not-a-uuid")).status_code == 422
        assert (await http.get(url)).json() == cron
    finally:
        await client.crons.delete(cron["cron_id"])


# --- firing -------------------------------------------------------------------------------------


async def test_due_thread_cron_fires_once_and_moves_on(fast: Server, fast_client: LangGraphClient) -> None:
    """A due thread cron creates one run on its thread with its input, metadata and cron_id, then its
    next_run_date is in the future again and it does not fire twice."""
    client = fast_client
    thread_id = (await client.threads.create())["thread_id"]
    cron = await thread_cron(
        client, thread_id, "echo", schedule="0 0 1 1 *", input={"value": "fired"}, metadata={"from": "cron"}
    )
    make_due(fast.database, cron["cron_id"])
    runs = await eventually(
        lambda: client.runs.list(thread_id),
        lambda rs: any(r["status"] == "success" for r in rs),
        what="the cron's run",
    )
    assert len(runs) == 1
    run = runs[0]
    assert run["assistant_id"] == system_assistant_id("echo")
    assert obj(run["metadata"])["from"] == "cron"
    assert obj(run)["kwargs"]["config"]["configurable"]["cron_id"] == cron["cron_id"]
    state = await client.threads.get_state(thread_id)
    assert obj(state["values"])["echoed"] == "fired"
    after = await fast_client.http.get(f"/runs/crons/{cron['cron_id']}")
    assert when(obj(after)["next_run_date"]) > datetime.now(UTC)
    await asyncio.sleep(0.5)  # five more scheduler passes
    assert len(await client.runs.list(thread_id)) == 1
    assert fires(fast.database, cron["cron_id"]) == 1


async def test_due_stateless_crons_keep_or_delete_their_thread(fast: Server, fast_client: LangGraphClient) -> None:
    """A stateless cron with on_run_completed=keep leaves its run's thread (metadata from the cron);
    with delete the thread is gone after the run."""
    client = fast_client
    marker = uuid.uuid4().hex
    keep = await new_cron(
        client,
        "echo",
        schedule="0 0 1 1 *",
        input={"value": 1},
        metadata={"suite": marker, "kind": "keep"},
        on_run_completed="keep",
    )
    drop = await new_cron(
        client, "echo", schedule="0 0 1 1 *", input={"value": 2}, metadata={"suite": marker, "kind": "drop"}
    )
    make_due(fast.database, keep["cron_id"])
    make_due(fast.database, drop["cron_id"])
    threads = await eventually(
        lambda: client.threads.search(metadata={"suite": marker, "kind": "keep"}),
        lambda ts: len(ts) == 1 and ts[0]["status"] == "idle",
        what="the kept thread",
    )
    assert obj(threads[0]["values"])["echoed"] == 1
    fired = f"cron_id={drop['cron_id']}"
    await eventually(lambda: asyncio.to_thread(fast.log, 2000), lambda log: fired in log and "cron fired" in log)
    # The dropped run's thread is deleted after its run; only the kept one stays.
    await eventually(
        lambda: client.threads.search(metadata={"suite": marker}),
        lambda ts: [t["thread_id"] for t in ts] == [threads[0]["thread_id"]],
        what="the dropped thread to go",
    )
    assert fires(fast.database, drop["cron_id"]) == 1


async def test_disabled_or_ended_crons_do_not_fire(fast: Server, fast_client: LangGraphClient) -> None:
    """Due crons that are disabled or past their end_time do not fire; re-enabling reschedules, not fires."""
    client = fast_client
    t1 = (await client.threads.create())["thread_id"]
    t2 = (await client.threads.create())["thread_id"]
    off = await thread_cron(client, t1, "echo", schedule="0 0 1 1 *", input={"value": 1})
    await update_cron(client, off["cron_id"], enabled=False)
    ended = await thread_cron(
        client, t2, "echo", schedule="0 0 1 1 *", input={"value": 1}, end_time=datetime(2001, 1, 1, tzinfo=UTC)
    )
    make_due(fast.database, off["cron_id"])
    make_due(fast.database, ended["cron_id"])
    await asyncio.sleep(1.0)  # ten scheduler passes
    assert await client.runs.list(t1) == [] and await client.runs.list(t2) == []
    again = await update_cron(client, off["cron_id"], enabled=True)
    assert when(again["next_run_date"]) > datetime.now(UTC)


async def test_a_failing_fire_is_logged_and_the_schedule_continues(fast: Server, fast_client: LangGraphClient) -> None:
    """When a fire cannot create its run (here: a thread cron whose payload the run API rejects), the
    error is logged, the cron moves on to its next run, and other crons still fire."""
    client = fast_client
    thread_id = (await client.threads.create())["thread_id"]
    bad = await thread_cron(client, thread_id, "echo", schedule="0 0 1 1 *", input={"value": 1})
    # A payload no run can be made from: an invalid checkpoint id.
    with sqlite3.connect(fast.database, timeout=10) as conn:
        conn.execute(
            "UPDATE graphyard_crons SET payload = json_set(payload, '$.checkpoint_id', 'nope') WHERE cron_id = ?",
            (bad["cron_id"],),
        )
    other_thread = (await client.threads.create())["thread_id"]
    good = await thread_cron(client, other_thread, "echo", schedule="0 0 1 1 *", input={"value": 2})
    make_due(fast.database, bad["cron_id"])
    make_due(fast.database, good["cron_id"])
    await eventually(lambda: client.runs.list(other_thread), lambda rs: len(rs) == 1, what="the good cron's run")
    await eventually(lambda: asyncio.to_thread(fast.log, 2000), lambda log: "cron could not create its run" in log)
    assert await client.runs.list(thread_id) == []
    moved = await client.crons.search(thread_id=thread_id)
    assert when(moved[0]["next_run_date"]) > datetime.now(UTC)
    assert fast.alive


@pytest.mark.timeout(90)
async def test_schedule_fires_on_its_own(fast: Server, fast_client: LangGraphClient) -> None:
    """Without any help a `* * * * *` cron fires at the next minute boundary (the one test that waits for it)."""
    client = fast_client
    thread_id = (await client.threads.create())["thread_id"]
    cron = await thread_cron(client, thread_id, "echo", schedule="* * * * *", input={"value": "tick"})
    due = when(cron["next_run_date"])
    assert due.second == 0 and 0 < (due - datetime.now(UTC)).total_seconds() <= 60
    started = time.monotonic()
    runs = await eventually(
        lambda: client.runs.list(thread_id), lambda rs: len(rs) >= 1, timeout=75, interval=0.2, what="the first tick"
    )
    assert obj(runs[0])["kwargs"]["config"]["configurable"]["cron_id"] == cron["cron_id"]
    assert datetime.now(UTC) >= due and time.monotonic() - started <= 65
    await client.crons.delete(cron["cron_id"])
