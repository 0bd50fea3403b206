"""Streaming: every stream mode with a real graph, subgraphs, resumption from every event, joins, disconnects."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import StreamPart

from tests.api.support import (
    CHAT_REPLY,
    CHAT_TOKENS,
    FAILURE_MESSAGE,
    SSE,
    Server,
    collect_sse,
    eventually,
    obj,
    read_sse,
    wait_for_file,
)


async def stream(client: LangGraphClient, thread_id: str | None, graph: str, **kwargs: Any) -> list[StreamPart]:
    """Every part of one runs.stream call."""
    return [part async for part in client.runs.stream(thread_id, graph, **kwargs)]


async def new_thread(client: LangGraphClient) -> str:
    """A fresh thread's id."""
    return str((await client.threads.create())["thread_id"])


def names(parts: list[StreamPart]) -> list[str]:
    """The event names of a stream, in order."""
    return [p.event for p in parts]


async def test_values_mode_sends_metadata_then_each_state(client: LangGraphClient) -> None:
    """stream_mode=values: metadata with the run id first, then the state after the input and after each step."""
    tid = await new_thread(client)
    parts = await stream(client, tid, "slow", input={"delay": 0}, stream_mode="values")
    assert names(parts) == ["metadata"] + ["values"] * 4
    metadata = obj(parts[0].data)
    assert metadata["run_id"] == (await client.runs.list(tid))[0]["run_id"]
    assert [obj(p.data).get("steps", []) for p in parts[1:]] == [[], ["s1"], ["s1", "s2"], ["s1", "s2", "s3"]]
    assert all(obj(p.data)["delay"] == 0 for p in parts[1:])


async def test_updates_mode_sends_one_update_per_node(client: LangGraphClient) -> None:
    """stream_mode=updates: one event per node with exactly that node's write."""
    parts = await stream(client, None, "slow", input={"delay": 0}, stream_mode="updates")
    assert names(parts) == ["metadata", "updates", "updates", "updates"]
    assert [p.data for p in parts[1:]] == [
        {"s1": {"steps": ["s1"]}},
        {"s2": {"steps": ["s2"]}},
        {"s3": {"steps": ["s3"]}},
    ]


async def test_several_modes_interleave_in_execution_order(client: LangGraphClient) -> None:
    """stream_mode=[values, updates]: input values, then each node's update followed by the values after it."""
    parts = await stream(client, None, "slow", input={"delay": 0}, stream_mode=["values", "updates"])
    assert names(parts) == ["metadata", "values", "updates", "values", "updates", "values", "updates", "values"]


async def test_messages_tuple_mode_streams_the_fake_models_tokens(client: LangGraphClient) -> None:
    """stream_mode=messages-tuple: one `messages` event per token of the fake chat model, with its metadata."""
    parts = await stream(
        client, None, "chat", input={"messages": [{"role": "user", "content": "hi"}]}, stream_mode="messages-tuple"
    )
    tokens = [p for p in parts if p.event == "messages"]
    assert [p.data[0]["content"] for p in tokens] == CHAT_TOKENS
    assert {p.data[0]["type"] for p in tokens} == {"AIMessageChunk"}
    assert len({p.data[0]["id"] for p in tokens}) == 1
    assert all(p.data[1]["langgraph_node"] == "respond" for p in tokens)
    assert names(parts)[0] == "metadata"


async def test_messages_mode_streams_partial_messages(client: LangGraphClient) -> None:
    """stream_mode=messages: messages/metadata once, then messages/partial with the accumulated content."""
    parts = await stream(
        client, None, "chat", input={"messages": [{"role": "user", "content": "hi"}]}, stream_mode="messages"
    )
    assert "messages/metadata" in names(parts)
    partials = [p.data[0]["content"] for p in parts if p.event == "messages/partial"]
    assert partials
    assert partials[-1] == CHAT_REPLY
    assert all(CHAT_REPLY.startswith(text) for text in partials)
    assert partials == sorted(partials, key=len)


async def test_custom_mode_with_subgraphs_namespaces_the_childs_events(client: LangGraphClient) -> None:
    """stream_mode=custom with stream_subgraphs: parent writes as `custom`, child writes as `custom|child:<id>`."""
    parts = await stream(client, None, "nested", input={}, stream_mode="custom", stream_subgraphs=True)
    custom = [p for p in parts if p.event.startswith("custom")]
    assert [p.data for p in custom] == [
        {"from": "parent", "i": 0},
        {"from": "child", "i": 0},
        {"from": "child", "i": 1},
    ]
    assert custom[0].event == "custom"
    namespace = custom[1].event.split("|", 1)[1]
    assert namespace.startswith("child:")
    uuid.UUID(namespace.split(":", 1)[1])
    assert custom[2].event == custom[1].event


async def test_custom_mode_without_subgraphs_sends_only_the_parents_events(client: LangGraphClient) -> None:
    """Without stream_subgraphs, the subgraph's custom writes are not streamed."""
    parts = await stream(client, None, "nested", input={}, stream_mode="custom")
    assert [(p.event, p.data) for p in parts if p.event != "metadata"] == [("custom", {"from": "parent", "i": 0})]


async def test_updates_with_subgraphs_include_the_childs_updates(client: LangGraphClient) -> None:
    """stream_mode=updates with stream_subgraphs adds `updates|child:<id>` events for the child's node."""
    parts = await stream(client, None, "nested", input={}, stream_mode="updates", stream_subgraphs=True)
    child = [p for p in parts if p.event.startswith("updates|child:")]
    assert [p.data for p in child] == [{"child_work": {"child_steps": ["child_work"]}}]


async def test_events_mode_sends_astream_events(client: LangGraphClient) -> None:
    """stream_mode=events: astream_events dicts from on_chain_start to on_chain_end."""
    parts = await stream(client, None, "echo", input={"value": 1}, stream_mode="events")
    events = [obj(p.data) for p in parts if p.event == "events"]
    assert events[0]["event"] == "on_chain_start"
    assert events[-1]["event"] == "on_chain_end"
    assert {"event", "data", "name", "run_id"} <= set(events[0])


async def test_debug_mode_sends_checkpoints_tasks_and_results(client: LangGraphClient) -> None:
    """stream_mode=debug: typed debug records, with a task and a task_result per node."""
    parts = await stream(client, await new_thread(client), "slow", input={"delay": 0}, stream_mode="debug")
    records = [obj(p.data) for p in parts if p.event == "debug"]
    kinds = [r["type"] for r in records]
    assert set(kinds) == {"checkpoint", "task", "task_result"}
    assert [r["payload"]["name"] for r in records if r["type"] == "task"] == ["s1", "s2", "s3"]
    assert kinds.count("task_result") == 3


async def test_tasks_mode_sends_a_start_and_a_result_per_node(client: LangGraphClient) -> None:
    """stream_mode=tasks: for every node a start (with input) and then a result (with its write)."""
    parts = await stream(client, None, "slow", input={"delay": 0}, stream_mode="tasks")
    tasks = [obj(p.data) for p in parts if p.event == "tasks"]
    assert [(t["name"], "result" in t) for t in tasks] == [
        ("s1", False),
        ("s1", True),
        ("s2", False),
        ("s2", True),
        ("s3", False),
        ("s3", True),
    ]
    assert tasks[1]["result"] == {"steps": ["s1"]}


async def test_checkpoints_mode_sends_every_checkpoint_on_a_thread(client: LangGraphClient) -> None:
    """stream_mode=checkpoints on a thread: one event per checkpoint, `next` walking the graph."""
    parts = await stream(client, await new_thread(client), "slow", input={"delay": 0}, stream_mode="checkpoints")
    checkpoints = [obj(p.data) for p in parts if p.event == "checkpoints"]
    assert [c["next"] for c in checkpoints] == [["__start__"], ["s1"], ["s2"], ["s3"], []]
    assert checkpoints[-1]["values"]["steps"] == ["s1", "s2", "s3"]


async def test_graph_error_is_the_last_event(client: LangGraphClient) -> None:
    """A graph that raises ends its stream with an `error` event carrying the exception."""
    parts = await stream(client, await new_thread(client), "failing", input={}, stream_mode=["values", "updates"])
    assert parts[-1].event == "error"
    assert parts[-1].data == {"error": "ValueError", "message": FAILURE_MESSAGE}
    assert names(parts).count("error") == 1


async def test_interrupt_shows_in_updates_and_values(client: LangGraphClient) -> None:
    """A graph that calls interrupt() streams an `__interrupt__` update and ends with it in the values."""
    parts = await stream(
        client, await new_thread(client), "ask", input={"question": "q?"}, stream_mode=["updates", "values"]
    )
    updates = [obj(p.data) for p in parts if p.event == "updates"]
    [pending] = updates[-1]["__interrupt__"]
    assert pending["value"] == {"question": "q?"}
    assert obj([p for p in parts if p.event == "values"][-1].data)["__interrupt__"][0]["id"] == pending["id"]


async def test_reject_on_a_busy_thread_fails_before_any_event(
    client: LangGraphClient, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A reject stream on a busy thread is a 409 JSON answer, not a stream."""
    tid = await new_thread(client)
    gate = tmp_path / "gate"
    run = await client.runs.create(tid, "gate", input={"gate": str(gate)})
    await wait_for_file(Path(f"{gate}.entered"))
    response, events = await collect_sse(
        http, "POST", f"/threads/{tid}/runs/stream", json={"assistant_id": "echo", "multitask_strategy": "reject"}
    )
    assert response.status_code == 409
    assert events == []
    gate.touch()
    await client.runs.join(tid, run["run_id"])


# --- resumable streams and joins ------------------------------------------------------------------


async def resumable_run(http: httpx.AsyncClient, tid: str) -> tuple[str, list[SSE]]:
    """Stream a resumable run with several modes to the end; return its run id and every event."""
    response, events = await collect_sse(
        http,
        "POST",
        f"/threads/{tid}/runs/stream",
        json={
            "assistant_id": "nested",
            "input": {},
            "stream_mode": ["values", "updates", "custom", "debug"],
            "stream_subgraphs": True,
            "stream_resumable": True,
        },
    )
    assert response.status_code == 200
    run_id = response.headers["content-location"].rsplit("/", 1)[1]
    return run_id, events


def id_key(event_id: str | None) -> tuple[int, ...]:
    """Sort key of an event id of the form `<ms>-<seq>`."""
    assert event_id is not None
    return tuple(int(part) for part in event_id.split("-"))


async def test_resumable_stream_ids_are_unique_and_increasing(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    """With stream_resumable, every event carries an id, all distinct and strictly increasing."""
    _, events = await resumable_run(http, await new_thread(client))
    assert len(events) > 10
    keys = [id_key(e.id) for e in events]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)


async def test_last_event_id_replays_exactly_what_followed_every_event(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    """join_stream with Last-Event-ID set to each event's id replays exactly the events after it."""
    tid = await new_thread(client)
    run_id, events = await resumable_run(http, tid)
    for index, event in enumerate(events):
        assert event.id is not None
        response, replay = await collect_sse(
            http, "GET", f"/threads/{tid}/runs/{run_id}/stream", headers={"Last-Event-ID": event.id}
        )
        assert response.status_code == 200
        assert replay == events[index + 1 :], f"resuming after event {index} ({event.id})"


async def test_last_event_id_from_the_start_replays_everything(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    """Last-Event-ID `-` replays the whole stream of a finished resumable run."""
    tid = await new_thread(client)
    run_id, events = await resumable_run(http, tid)
    _, replay = await collect_sse(http, "GET", f"/threads/{tid}/runs/{run_id}/stream", headers={"Last-Event-ID": "-"})
    assert replay == events


async def test_sdk_join_stream_with_last_event_id(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    """runs.join_stream(last_event_id=...) through the SDK resumes after that event."""
    tid = await new_thread(client)
    run_id, events = await resumable_run(http, tid)
    middle = len(events) // 2
    parts = [p async for p in client.runs.join_stream(tid, run_id, last_event_id=events[middle].id)]
    assert [(p.event, p.data) for p in parts] == [(e.event, e.data) for e in events[middle + 1 :]]


async def test_two_listeners_on_one_run_see_identical_events(
    client: LangGraphClient, http: httpx.AsyncClient, server: Server, tmp_path: Path
) -> None:
    """Two join_stream listeners that attach before the run proceeds receive the same events in the same order."""
    tid = await new_thread(client)
    gate = tmp_path / "gate"
    run = await client.runs.create(
        tid, "gate", input={"gate": str(gate)}, stream_mode=["values", "updates", "debug"], stream_resumable=True
    )
    await wait_for_file(Path(f"{gate}.entered"))
    url = f"/threads/{tid}/runs/{run['run_id']}/stream"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as other:
        async with http.stream("GET", url) as first, other.stream("GET", url) as second:
            assert (first.status_code, second.status_code) == (200, 200)
            gate.touch()
            seen_first, seen_second = await asyncio.gather(_all(read_sse(first)), _all(read_sse(second)))
    assert seen_first == seen_second
    assert [e.event for e in seen_first].count("updates") == 2  # hold and after, both after attaching
    assert obj([e for e in seen_first if e.event == "values"][-1].data)["steps"] == ["before", "hold", "after"]


async def _all(events: Any) -> list[SSE]:
    return [event async for event in events]


async def test_join_stream_filters_by_stream_mode(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    """join_stream with stream_mode=updates replays only the updates events."""
    tid = await new_thread(client)
    run_id, events = await resumable_run(http, tid)
    _, replay = await collect_sse(
        http, "GET", f"/threads/{tid}/runs/{run_id}/stream?stream_mode=updates", headers={"Last-Event-ID": "-"}
    )
    assert replay == [e for e in events if e.event.split("|")[0] == "updates"]
    assert {e.event for e in replay} > {"updates"}  # the subgraph's namespaced updates pass the filter too


async def test_join_stream_of_an_unknown_run_is_an_error_event(
    http: httpx.AsyncClient, client: LangGraphClient
) -> None:
    """Joining the stream of a run that does not exist yields an `error` event (or a 404), never a hang."""
    tid = await new_thread(client)
    response, events = await collect_sse(http, "GET", f"/threads/{tid}/runs/{uuid.uuid4()}/stream")
    assert response.status_code == 404 or [e.event for e in events] == ["error"]


async def test_thread_stream_follows_runs_on_the_thread(
    client: LangGraphClient, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """threads.join_stream (GET /threads/{id}/stream) carries the events of a run started after it attached."""
    tid = await new_thread(client)
    async with http.stream("GET", f"/threads/{tid}/stream") as response:
        assert response.status_code == 200
        run = await client.runs.create(tid, "slow", input={"delay": 0})
        seen: list[SSE] = []
        async with asyncio.timeout(20):
            async for event in read_sse(response):
                seen.append(event)
                if event.event == "values" and obj(event.data).get("steps") == ["s1", "s2", "s3"]:
                    break
    assert all(e.id for e in seen)
    assert any(obj(e.data).get("run_id") == run["run_id"] for e in seen if e.event == "metadata")


# --- on_disconnect -------------------------------------------------------------------------------------


async def open_and_drop(http: httpx.AsyncClient, tid: str, gate: Path, on_disconnect: str) -> str:
    """Start a gate run as a stream, read until the node is running, then close the connection."""
    payload = {"assistant_id": "gate", "input": {"gate": str(gate)}, "on_disconnect": on_disconnect}
    async with http.stream("POST", f"/threads/{tid}/runs/stream", json=payload) as response:
        assert response.status_code == 200
        run_id = response.headers["content-location"].rsplit("/", 1)[1]
        # Keep the reader referenced: a generator dropped mid-way would close the connection early.
        events = read_sse(response)
        assert (await anext(events)).event == "metadata"
        await wait_for_file(Path(f"{gate}.entered"))
        assert (await client_status(http, tid, run_id)) == "running"
    return run_id


async def client_status(http: httpx.AsyncClient, tid: str, run_id: str) -> str:
    """The run's status, read over a separate connection."""
    async with httpx.AsyncClient(base_url=str(http.base_url), timeout=30) as other:
        return str((await other.get(f"/threads/{tid}/runs/{run_id}")).json()["status"])


async def test_on_disconnect_cancel_interrupts_the_run(client: LangGraphClient, server: Server, tmp_path: Path) -> None:
    """on_disconnect=cancel: closing the stream interrupts the run, keeping its progress."""
    tid = await new_thread(client)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        run_id = await open_and_drop(http, tid, tmp_path / "gate", "cancel")
    status = await eventually(
        lambda: client.runs.get(tid, run_id), lambda r: r["status"] != "running", what="run stopped"
    )
    assert status["status"] == "interrupted"
    assert obj((await client.threads.get_state(tid))["values"])["steps"] == ["before"]
    assert (await client.threads.get(tid))["status"] != "busy"


async def test_on_disconnect_continue_lets_the_run_finish(
    client: LangGraphClient, server: Server, tmp_path: Path
) -> None:
    """on_disconnect=continue: closing the stream leaves the run running, and it finishes."""
    tid = await new_thread(client)
    gate = tmp_path / "gate"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        run_id = await open_and_drop(http, tid, gate, "continue")
    await asyncio.sleep(0.3)  # give a wrongful cancel the time to land before checking it did not
    assert (await client.runs.get(tid, run_id))["status"] == "running"
    gate.touch()
    await client.runs.join(tid, run_id)
    assert (await client.runs.get(tid, run_id))["status"] == "success"
    assert obj((await client.threads.get_state(tid))["values"])["steps"] == ["before", "hold", "after"]


@pytest.mark.parametrize("mode", ["checkpoints"])
async def test_stateless_stream_sends_no_checkpoints(client: LangGraphClient, mode: str) -> None:
    """A stateless run streams no `checkpoints` events, as the reference does."""
    parts = await stream(client, None, "slow", input={"delay": 0}, stream_mode=[mode, "updates"])
    assert "checkpoints" not in names(parts)
    assert names(parts).count("updates") == 3


async def test_thread_stream_resumes_after_last_event_id(
    client: LangGraphClient, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A thread stream reopened with Last-Event-ID first replays the thread's events that came after that id."""
    tid = await new_thread(client)
    gate = tmp_path / "gate"
    seen: list[SSE] = []
    async with http.stream("GET", f"/threads/{tid}/stream") as response:
        events = read_sse(response)
        run = await client.runs.create(tid, "gate", input={"gate": str(gate)})
        async with asyncio.timeout(20):
            async for event in events:
                seen.append(event)
                if event.event == "values" and obj(event.data).get("steps") == ["before"]:
                    break
    await wait_for_file(Path(f"{gate}.entered"))
    assert len(seen) >= 3
    resumed: list[SSE] = []
    async with http.stream("GET", f"/threads/{tid}/stream", headers={"Last-Event-ID": str(seen[0].id)}) as response:
        events = read_sse(response)
        gate.touch()
        async with asyncio.timeout(20):
            async for event in events:
                resumed.append(event)
                if event.event == "values" and obj(event.data).get("steps") == ["before", "hold", "after"]:
                    break
    await client.runs.join(tid, run["run_id"])
    assert resumed[: len(seen) - 1] == seen[1:]


async def test_a_silent_stream_gets_keep_alive_comments(
    server: Server, client: LangGraphClient, tmp_path: Path
) -> None:
    """While a run is silent for longer than the heartbeat interval, the stream carries `:` comment lines."""
    tid = await new_thread(client)
    gate = tmp_path / "gate"
    payload = {"assistant_id": "gate", "input": {"gate": str(gate)}, "stream_mode": "updates"}
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        http.stream("POST", f"/threads/{tid}/runs/stream", json=payload) as response,
    ):
        lines = response.aiter_lines()
        async with asyncio.timeout(15):
            async for line in lines:
                if line.startswith(":"):
                    break
        await wait_for_file(Path(f"{gate}.entered"))
        gate.touch()
        rest = [line async for line in lines]
    assert "event: updates" in rest


async def test_a_thread_recreated_after_delete_replays_none_of_the_deleted_threads_events(backend: Server) -> None:
    """Deleting a thread drops its stream's kept events at once (not after the retention window): a thread
    made again under the same id and read from the start replays only its own run's events."""
    tid = str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=backend.url, timeout=60) as http:
        sdk = get_client(url=backend.url, api_key=None, timeout=60)
        try:
            await sdk.threads.create(thread_id=tid)
            old = await sdk.runs.create(tid, "slow", input={"delay": 0})
            await sdk.runs.join(tid, old["run_id"])
            await sdk.threads.delete(tid)
            await sdk.threads.create(thread_id=tid)
            seen: list[SSE] = []
            async with http.stream("GET", f"/threads/{tid}/stream", headers={"Last-Event-ID": "-"}) as response:
                assert response.status_code == 200
                events = read_sse(response)
                new = await sdk.runs.create(tid, "slow", input={"delay": 0})
                async with asyncio.timeout(20):
                    async for event in events:
                        seen.append(event)
                        if event.event == "metadata" and obj(event.data).get("status") == "run_done":
                            break
        finally:
            await sdk.http.client.aclose()
    run_ids = {obj(e.data).get("run_id") for e in seen if e.event == "metadata"}
    assert run_ids == {new["run_id"]}
