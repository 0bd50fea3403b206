"""Durability across a clean restart: everything written is there again, and a delayed run still runs."""

from __future__ import annotations

import time

from langgraph_sdk import get_client

from tests.api.support import GRACEFUL_EXIT, StartServer, eventually, obj


async def test_data_survives_a_restart_on_the_same_sqlite_file(start_server: StartServer) -> None:
    """Assistants, threads, runs, state and a still-pending delayed run are all there after a restart."""
    first = await start_server()
    sdk = get_client(url=first.url, api_key=None)
    try:
        assistant = await sdk.assistants.create("configured", config={"configurable": {"greeting": "hi"}}, name="kept")
        assistant = await sdk.assistants.update(assistant["assistant_id"], metadata={"v": 2})
        thread = await sdk.threads.create(metadata={"owner": "restart-test"})
        tid = thread["thread_id"]
        result = await sdk.runs.wait(tid, "slow", input={"delay": 0}, metadata={"tag": "first"})
        assert result == {"delay": 0, "steps": ["s1", "s2", "s3"]}
        run = (await sdk.runs.list(tid))[0]
        history = await sdk.threads.get_history(tid, limit=100)
        delayed_thread = await sdk.threads.create()
        delayed_at = time.monotonic()
        delayed = await sdk.runs.create(delayed_thread["thread_id"], "echo", input={"value": 7}, after_seconds=3)
        assert (await sdk.runs.get(delayed_thread["thread_id"], delayed["run_id"]))["status"] == "pending"
    finally:
        await sdk.http.client.aclose()
    assert first.stop() in GRACEFUL_EXIT, first.log()
    assert time.monotonic() - delayed_at < 3, "the delayed run was due before the server stopped"

    second = await start_server(database=first.database)
    sdk = get_client(url=second.url, api_key=None)
    try:
        again = await sdk.assistants.get(assistant["assistant_id"])
        assert (again["name"], again["version"], again["metadata"]) == ("kept", 2, {"v": 2})
        assert obj(again["config"])["configurable"] == {"greeting": "hi"}
        assert [v["version"] for v in await sdk.assistants.get_versions(assistant["assistant_id"])] == [2, 1]
        assert await sdk.runs.wait(None, assistant["assistant_id"], input={}) == {"greeting": "hi", "steps": ["greet"]}

        thread_again = await sdk.threads.get(tid)
        assert obj(thread_again["metadata"])["owner"] == "restart-test"
        assert thread_again["status"] == "idle"
        assert thread_again["values"] == {"delay": 0, "steps": ["s1", "s2", "s3"]}
        run_again = await sdk.runs.get(tid, run["run_id"])
        assert run_again["status"] == "success"
        assert obj(run_again["metadata"])["tag"] == "first"
        assert (await sdk.threads.get_state(tid))["values"] == result
        assert await sdk.threads.get_history(tid, limit=100) == history

        async def delayed_status() -> str:
            return str((await sdk.runs.get(delayed_thread["thread_id"], delayed["run_id"]))["status"])

        assert await eventually(delayed_status, lambda s: s != "pending", what="delayed run to start") in (
            "running",
            "success",
        )
        assert await eventually(delayed_status, lambda s: s == "success", what="delayed run to finish") == "success"
        assert time.monotonic() - delayed_at >= 3
        assert obj((await sdk.threads.get_state(delayed_thread["thread_id"]))["values"])["echoed"] == 7
        assert (await sdk.threads.get(delayed_thread["thread_id"]))["status"] == "idle"
    finally:
        await sdk.http.client.aclose()


async def test_thread_state_written_after_restart_builds_on_the_old_checkpoints(start_server: StartServer) -> None:
    """A run after a restart continues the thread's history instead of starting a new one."""
    first = await start_server()
    sdk = get_client(url=first.url, api_key=None)
    try:
        tid = (await sdk.threads.create())["thread_id"]
        await sdk.runs.wait(tid, "echo", input={"value": 1})
    finally:
        await sdk.http.client.aclose()
    assert first.stop() in GRACEFUL_EXIT
    second = await start_server(database=first.database)
    sdk = get_client(url=second.url, api_key=None)
    try:
        assert await sdk.runs.wait(tid, "echo", input={"value": 2}) == {
            "value": 2,
            "echoed": 2,
            "steps": ["echo", "echo"],
        }
        assert len(await sdk.threads.get_history(tid, limit=100)) == 6
    finally:
        await sdk.http.client.aclose()
