"""Every field of RunsCreate, end to end through langgraph_sdk and raw HTTP against a real server."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError
from langgraph_sdk.schema import RunCreateMetadata

from tests.api.support import (
    FAILURE_MESSAGE,
    RUN_TERMINAL,
    StartServer,
    eventually,
    obj,
    system_assistant_id,
    wait_for_file,
)
from tests.graphs.graphs import ask as ask_graph


async def new_thread(client: LangGraphClient, **metadata: Any) -> str:
    """A fresh thread's id."""
    return str((await client.threads.create(metadata=metadata or None))["thread_id"])


async def run_status(client: LangGraphClient, thread_id: str, run_id: str) -> str:
    """The run's current status."""
    return str((await client.runs.get(thread_id, run_id))["status"])


async def until_status(client: LangGraphClient, thread_id: str, run_id: str, *wanted: str) -> str:
    """Poll the run until its status is one of `wanted` or terminal, and return that status."""

    async def probe() -> str:
        return await run_status(client, thread_id, run_id)

    return await eventually(probe, lambda s: s in wanted or s in RUN_TERMINAL, what=f"run {run_id} in {wanted}")


async def thread_settled(client: LangGraphClient, thread_id: str) -> dict[str, Any]:
    """Poll the thread until it is no longer busy, and return it."""
    thread = await eventually(
        lambda: client.threads.get(thread_id), lambda t: t["status"] != "busy", what="thread not busy"
    )
    return dict(thread)


async def steps(client: LangGraphClient, thread_id: str) -> list[str]:
    """The `steps` channel of the thread's current state."""
    values = obj((await client.threads.get_state(thread_id))["values"])
    return list(values.get("steps", []))


class Gate:
    """A file the gate graph's `hold` node waits for; `entered` appears once the node is running."""

    def __init__(self, folder: Path, name: str = "gate") -> None:
        self.path = folder / name
        self.entered = Path(f"{self.path}.entered")

    @property
    def input(self) -> dict[str, Any]:
        """The run input that makes the gate graph wait on this gate."""
        return {"gate": str(self.path)}

    def open(self) -> Gate:
        """Let the node through."""
        self.path.touch()
        return self

    async def reached(self) -> None:
        """Wait until a run is inside `hold`, waiting on this gate."""
        await wait_for_file(self.entered)


# --- assistant_id -----------------------------------------------------------------------------------


async def test_assistant_id_graph_name_resolves_to_the_system_assistant(client: LangGraphClient) -> None:
    """A graph name as assistant_id runs that graph and the Run carries its system assistant's UUID."""
    tid = await new_thread(client)
    run = await client.runs.create(tid, "echo", input={"value": 1})
    assert run["assistant_id"] == system_assistant_id("echo")
    assert obj(await client.runs.join(tid, run["run_id"]))["echoed"] == 1


async def test_assistant_id_uuid_runs_with_that_assistants_config(client: LangGraphClient) -> None:
    """A created assistant's UUID runs its graph with the assistant's own configuration."""
    assistant = await client.assistants.create("configured", config={"configurable": {"greeting": "ahoy"}})
    tid = await new_thread(client)
    result = await client.runs.wait(tid, assistant["assistant_id"], input={})
    assert result == {"greeting": "ahoy", "steps": ["greet"]}
    assert (await client.runs.list(tid))[0]["assistant_id"] == assistant["assistant_id"]


async def test_factory_graph_on_a_thread_saves_its_state(client: LangGraphClient) -> None:
    """A graph built by a factory gets the server's checkpointer: its thread state and history are saved."""
    tid = await new_thread(client)
    await client.runs.wait(tid, "configured", input={}, config={"configurable": {"greeting": "hey"}})
    await client.runs.wait(tid, "configured", input={}, config={"configurable": {"greeting": "yo"}})
    assert obj((await client.threads.get_state(tid))["values"]) == {"greeting": "yo", "steps": ["greet", "greet"]}
    assert len(await client.threads.get_history(tid, limit=100)) == 6


async def test_unknown_assistant_uuid_is_404_and_creates_nothing(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    """An assistant UUID that does not exist answers 404 and leaves the thread without runs and idle."""
    tid = await new_thread(client)
    response = await http.post(f"/threads/{tid}/runs", json={"assistant_id": str(uuid.uuid4())})
    assert response.status_code == 404
    assert "detail" in response.json()
    assert await client.runs.list(tid) == []
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_unknown_graph_name_is_refused(http: httpx.AsyncClient) -> None:
    """A name that is neither a UUID nor a graph answers 404 or 422 with a detail, on thread and stateless runs."""
    for url in ("/runs", "/runs/wait", "/runs/stream"):
        response = await http.post(url, json={"assistant_id": "no-such-graph"})
        assert response.status_code in (404, 422), response.text
        assert response.json()["detail"]


# --- thread_id ------------------------------------------------------------------------------------


async def test_stateless_wait_deletes_its_temporary_thread(client: LangGraphClient) -> None:
    """runs.wait(None, ...) returns the values and the temporary thread is gone afterwards."""
    created: list[RunCreateMetadata] = []
    result = await client.runs.wait(None, "echo", input={"value": "x"}, on_run_created=created.append)
    assert result == {"value": "x", "echoed": "x", "steps": ["echo"]}
    assert len(created) == 1
    with pytest.raises(NotFoundError):
        await eventually(
            lambda: client.threads.get(str(created[0]["thread_id"])), lambda _: False, timeout=5, what="deletion"
        )


async def test_stateless_create_then_join_deletes_the_thread(client: LangGraphClient) -> None:
    """runs.create(None, ...) runs on a temporary thread that disappears once the run has finished."""
    run = await client.runs.create(None, "echo", input={"value": 3})
    assert run["status"] == "pending"
    assert obj(await client.runs.join(run["thread_id"], run["run_id"]))["echoed"] == 3

    async def gone() -> bool:
        try:
            await client.threads.get(run["thread_id"])
        except NotFoundError:
            return True
        return False

    assert await eventually(gone, bool, what="temporary thread deleted")


async def test_stateless_run_with_on_completion_keep_keeps_the_thread(client: LangGraphClient) -> None:
    """on_completion="keep" leaves the temporary thread in place, idle, with the final values."""
    created: list[RunCreateMetadata] = []
    await client.runs.wait(None, "echo", input={"value": 5}, on_completion="keep", on_run_created=created.append)
    thread = await thread_settled(client, str(created[0]["thread_id"]))
    assert thread["status"] == "idle"
    assert obj(thread["values"])["echoed"] == 5


async def test_stateless_stream_runs_and_deletes_its_thread(client: LangGraphClient) -> None:
    """runs.stream(None, ...) streams metadata then values, and the temporary thread is deleted."""
    events = [part async for part in client.runs.stream(None, "echo", input={"value": 9})]
    assert events[0].event == "metadata"
    assert events[-1].event == "values"
    assert obj(events[-1].data)["echoed"] == 9
    run_id = obj(events[0].data)["run_id"]
    assert isinstance(run_id, str)


async def test_resume_without_a_thread_is_refused(http: httpx.AsyncClient) -> None:
    """A stateless run with command.resume is a 4xx: there is no thread to resume."""
    response = await http.post("/runs", json={"assistant_id": "ask", "command": {"resume": "x"}})
    assert 400 <= response.status_code < 500
    assert response.json()["detail"]


# --- run_id and Content-Location --------------------------------------------------------------------


async def test_run_id_is_in_content_location_and_is_the_stored_id(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    """The Run's run_id matches Content-Location, runs.get, runs.list and the stream's metadata event."""
    tid = await new_thread(client)
    response = await http.post(f"/threads/{tid}/runs", json={"assistant_id": "echo", "input": {"value": 1}})
    assert response.status_code == 200
    run = response.json()
    assert response.headers["content-location"] == f"/threads/{tid}/runs/{run['run_id']}"
    uuid.UUID(run["run_id"])
    assert (await client.runs.get(tid, run["run_id"]))["run_id"] == run["run_id"]
    created: list[RunCreateMetadata] = []
    parts = [p async for p in client.runs.stream(tid, "echo", input={"value": 2}, on_run_created=created.append)]
    assert obj(parts[0].data)["run_id"] == str(created[0]["run_id"])
    ids = {r["run_id"] for r in await client.runs.list(tid)}
    assert ids == {run["run_id"], str(created[0]["run_id"])}


# --- status ----------------------------------------------------------------------------------------


async def test_status_moves_pending_running_success_and_thread_follows(client: LangGraphClient, tmp_path: Path) -> None:
    """A run goes pending/running → success while its thread goes busy → idle with the final values."""
    gate = Gate(tmp_path)
    tid = await new_thread(client)
    run = await client.runs.create(tid, "gate", input=gate.input)
    assert run["status"] in ("pending", "running")
    assert (await client.threads.get(tid))["status"] == "busy"
    await gate.reached()
    assert await run_status(client, tid, run["run_id"]) == "running"
    assert (await client.threads.get(tid))["status"] == "busy"
    gate.open()
    assert await until_status(client, tid, run["run_id"], "success", "error") == "success"
    thread = await client.threads.get(tid)
    assert thread["status"] == "idle"
    assert obj(thread["values"])["steps"] == ["before", "hold", "after"]


async def test_graph_exception_is_status_error_with_its_message(client: LangGraphClient) -> None:
    """A node that raises makes the run `error`, the thread `error`, and join returns the error."""
    tid = await new_thread(client)
    run = await client.runs.create(tid, "failing", input={})
    output = obj(await client.runs.join(tid, run["run_id"]))
    assert output["__error__"] == {"error": "ValueError", "message": FAILURE_MESSAGE}
    assert await run_status(client, tid, run["run_id"]) == "error"
    thread = await client.threads.get(tid)
    assert thread["status"] == "error"
    with pytest.raises(Exception, match=FAILURE_MESSAGE):
        await client.runs.wait(tid, "failing", input={})


async def test_run_over_the_time_limit_is_status_timeout(start_server: StartServer, tmp_path: Path) -> None:
    """With BG_JOB_TIMEOUT_SECS=1, a run stuck in a node ends as `timeout` and frees its thread."""
    server = await start_server(env={"BG_JOB_TIMEOUT_SECS": "1"})
    sdk = get_client(url=server.url, api_key=None)
    try:
        gate = Gate(tmp_path)
        tid = await new_thread(sdk)
        run = await sdk.runs.create(tid, "gate", input=gate.input)
        await gate.reached()
        assert await until_status(sdk, tid, run["run_id"], *("success", "error", "timeout", "interrupted")) == "timeout"
        thread = await thread_settled(sdk, tid)
        assert thread["status"] != "busy"
        assert await steps(sdk, tid) == ["before"]
    finally:
        await sdk.http.client.aclose()


# --- metadata --------------------------------------------------------------------------------------


async def test_metadata_is_stored_merged_with_thread_metadata_and_returned(client: LangGraphClient) -> None:
    """Run metadata holds the request's keys, the thread's metadata and graph ids, on create, get and list."""
    tid = await new_thread(client, team="blue")
    run = await client.runs.create(tid, "echo", input={}, metadata={"purpose": "metadata-test", "n": 1})
    for seen in (run, await client.runs.get(tid, run["run_id"]), (await client.runs.list(tid))[0]):
        metadata = obj(seen["metadata"])
        assert metadata["purpose"] == "metadata-test"
        assert metadata["n"] == 1
        assert metadata["team"] == "blue"
        assert metadata["graph_id"] == "echo"
        assert metadata["assistant_id"] == system_assistant_id("echo")


async def test_runs_list_filters_by_metadata(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    """runs.list with a JSON `metadata` query parameter returns only runs whose metadata contains it."""
    tid = await new_thread(client)
    tagged = await client.runs.create(tid, "echo", input={}, metadata={"batch": "a", "tags": ["x", "y"]})
    await client.runs.join(tid, tagged["run_id"])
    other = await client.runs.create(tid, "echo", input={}, metadata={"batch": "b"})
    await client.runs.join(tid, other["run_id"])
    found = await client.runs.list(tid, params={"metadata": json.dumps({"batch": "a"})})
    assert [r["run_id"] for r in found] == [tagged["run_id"]]
    by_tag = await client.runs.list(tid, params={"metadata": json.dumps({"tags": ["y"]})})
    assert [r["run_id"] for r in by_tag] == [tagged["run_id"]]
    assert await client.runs.list(tid, params={"metadata": json.dumps({"batch": "c"})}) == []
    for bad in ("{not json", "[1]"):
        response = await http.get(f"/threads/{tid}/runs", params={"metadata": bad})
        assert response.status_code == 422


async def test_runs_list_filters_by_status(client: LangGraphClient) -> None:
    """runs.list(status=...) returns only the runs in that status, newest first, and honours limit/offset."""
    tid = await new_thread(client)
    ok1 = await client.runs.create(tid, "echo", input={}, metadata={"i": 1})
    await client.runs.join(tid, ok1["run_id"])
    bad = await client.runs.create(tid, "failing", input={})
    await client.runs.join(tid, bad["run_id"])
    ok2 = await client.runs.create(tid, "echo", input={}, metadata={"i": 2})
    await client.runs.join(tid, ok2["run_id"])
    assert [r["run_id"] for r in await client.runs.list(tid, status="success")] == [ok2["run_id"], ok1["run_id"]]
    assert [r["run_id"] for r in await client.runs.list(tid, status="error")] == [bad["run_id"]]
    assert await client.runs.list(tid, status="pending") == []
    assert [obj(r["metadata"]).get("i") for r in await client.runs.list(tid, limit=1, offset=2)] == [1]


# --- multitask_strategy and prevent_insert_if_inflight ----------------------------------------------


async def test_reject_on_a_busy_thread_is_409_and_the_first_run_continues(
    client: LangGraphClient, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """multitask_strategy=reject answers 409 on create, wait and stream while a run is in flight."""
    gate = Gate(tmp_path)
    tid = await new_thread(client)
    first = await client.runs.create(tid, "gate", input=gate.input)
    await gate.reached()
    for suffix in ("", "/wait", "/stream"):
        response = await http.post(
            f"/threads/{tid}/runs{suffix}", json={"assistant_id": "echo", "multitask_strategy": "reject"}
        )
        assert response.status_code == 409, response.text
        assert "detail" in response.json()
    assert [r["run_id"] for r in await client.runs.list(tid)] == [first["run_id"]]
    gate.open()
    assert await until_status(client, tid, first["run_id"], "success", "error") == "success"
    assert await steps(client, tid) == ["before", "hold", "after"]


async def test_interrupt_stops_the_first_run_keeping_its_progress(client: LangGraphClient, tmp_path: Path) -> None:
    """multitask_strategy=interrupt: the first run is `interrupted` when create returns; the second builds on it."""
    gate = Gate(tmp_path)
    second_gate = Gate(tmp_path, "second").open()
    tid = await new_thread(client)
    first = await client.runs.create(tid, "gate", input=gate.input)
    await gate.reached()
    second = await client.runs.create(tid, "gate", input=second_gate.input, multitask_strategy="interrupt")
    assert await run_status(client, tid, first["run_id"]) == "interrupted"
    assert await until_status(client, tid, second["run_id"], "success", "error") == "success"
    assert await steps(client, tid) == ["before", "before", "hold", "after"]
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_rollback_deletes_the_first_run_and_its_checkpoints(client: LangGraphClient, tmp_path: Path) -> None:
    """multitask_strategy=rollback: the first run is gone (404) when create returns and left no state behind."""
    gate = Gate(tmp_path)
    second_gate = Gate(tmp_path, "second").open()
    tid = await new_thread(client)
    first = await client.runs.create(tid, "gate", input=gate.input)
    await gate.reached()
    second = await client.runs.create(tid, "gate", input=second_gate.input, multitask_strategy="rollback")
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, first["run_id"])
    assert await until_status(client, tid, second["run_id"], "success", "error") == "success"
    assert await steps(client, tid) == ["before", "hold", "after"]
    assert [r["run_id"] for r in await client.runs.list(tid)] == [second["run_id"]]


async def test_enqueue_waits_for_the_first_run_then_runs_on_its_state(client: LangGraphClient, tmp_path: Path) -> None:
    """multitask_strategy=enqueue (the default) keeps the second run pending until the first has finished."""
    gate = Gate(tmp_path)
    second_gate = Gate(tmp_path, "second").open()
    tid = await new_thread(client)
    first = await client.runs.create(tid, "gate", input=gate.input)
    await gate.reached()
    second = await client.runs.create(tid, "gate", input=second_gate.input)
    assert second["multitask_strategy"] == "enqueue"
    assert await run_status(client, tid, second["run_id"]) == "pending"
    gate.open()
    assert await until_status(client, tid, second["run_id"], "success", "error") == "success"
    assert await run_status(client, tid, first["run_id"]) == "success"
    assert await steps(client, tid) == ["before", "hold", "after", "before", "hold", "after"]


async def test_prevent_insert_if_inflight_returns_the_inflight_run(
    client: LangGraphClient, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """prevent_insert_if_inflight=true on a busy thread inserts nothing and answers with the in-flight run."""
    gate = Gate(tmp_path)
    tid = await new_thread(client)
    first = await client.runs.create(tid, "gate", input=gate.input)
    await gate.reached()
    response = await http.post(
        f"/threads/{tid}/runs", json={"assistant_id": "echo", "prevent_insert_if_inflight": True}
    )
    assert response.status_code == 200, response.text
    assert response.json()["run_id"] == first["run_id"]
    assert len(await client.runs.list(tid)) == 1
    gate.open()
    await until_status(client, tid, first["run_id"], "success")
    idle = await http.post(f"/threads/{tid}/runs", json={"assistant_id": "echo", "prevent_insert_if_inflight": True})
    assert idle.status_code == 200
    assert idle.json()["run_id"] != first["run_id"]


async def test_wait_with_prevent_insert_answers_when_the_inflight_run_ends(
    client: LangGraphClient, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """runs.wait with prevent_insert_if_inflight=true on a busy thread answers the in-flight run's output as soon
    as that run ends: it listens to that run's stream, not only to storage every few seconds."""
    gate = Gate(tmp_path)
    tid = await new_thread(client)
    first = await client.runs.create(tid, "gate", input=gate.input)
    await gate.reached()
    body = {"assistant_id": "echo", "prevent_insert_if_inflight": True}
    async with http.stream("POST", f"/threads/{tid}/runs/wait", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-location"].endswith(f"/runs/{first['run_id']}")
        gate.open()
        opened = time.monotonic()
        answer = json.loads(await response.aread())
        # Storage is re-read every 5 s; the end event comes at once.
        assert time.monotonic() - opened < 4.5
    assert answer == await client.runs.join(tid, first["run_id"])
    assert len(await client.runs.list(tid)) == 1


# --- if_not_exists ----------------------------------------------------------------------------------


async def test_if_not_exists_create_makes_the_thread(client: LangGraphClient) -> None:
    """if_not_exists=create on a missing thread id creates that thread and runs on it."""
    tid = str(uuid.uuid4())
    result = await client.runs.wait(tid, "echo", input={"value": 4}, if_not_exists="create", metadata={"o": "me"})
    assert obj(result)["echoed"] == 4
    thread = await client.threads.get(tid)
    assert thread["thread_id"] == tid
    assert obj(thread["metadata"])["o"] == "me"


async def test_if_not_exists_create_on_an_existing_thread_just_runs(client: LangGraphClient) -> None:
    """if_not_exists=create on an existing thread keeps it and its state."""
    tid = await new_thread(client, keep="yes")
    await client.runs.wait(tid, "echo", input={"value": 1})
    await client.runs.wait(tid, "echo", input={"value": 2}, if_not_exists="create")
    assert await steps(client, tid) == ["echo", "echo"]
    assert obj((await client.threads.get(tid))["metadata"])["keep"] == "yes"


@pytest.mark.parametrize("suffix", ["", "/wait", "/stream"])
@pytest.mark.parametrize("if_not_exists", [None, "reject"])
async def test_if_not_exists_reject_on_a_missing_thread_is_404(
    http: httpx.AsyncClient, client: LangGraphClient, suffix: str, if_not_exists: str | None
) -> None:
    """A run on a missing thread with if_not_exists reject (the default) answers 404 and creates nothing."""
    tid = str(uuid.uuid4())
    payload: dict[str, Any] = {"assistant_id": "echo"}
    if if_not_exists:
        payload["if_not_exists"] = if_not_exists
    response = await http.post(f"/threads/{tid}/runs{suffix}", json=payload)
    assert response.status_code == 404
    assert response.json()["detail"]
    with pytest.raises(NotFoundError):
        await client.threads.get(tid)


# --- after_seconds ---------------------------------------------------------------------------------


async def test_after_seconds_delays_the_run_without_holding_back_later_runs(client: LangGraphClient) -> None:
    """A delayed run stays pending until due while a later enqueued run on its thread runs first."""
    tid = await new_thread(client)
    started = time.monotonic()
    delayed = await client.runs.create(tid, "echo", input={"value": "late"}, after_seconds=1)
    assert delayed["status"] == "pending"
    assert (await client.threads.get(tid))["status"] == "busy"
    quick = await client.runs.create(tid, "echo", input={"value": "early"})
    assert await until_status(client, tid, quick["run_id"], "success") == "success"
    if time.monotonic() - started < 0.9:  # only meaningful while the delay has not passed yet
        assert await run_status(client, tid, delayed["run_id"]) == "pending"
    assert await until_status(client, tid, delayed["run_id"], "success") == "success"
    assert time.monotonic() - started >= 1.0
    values = obj((await client.threads.get_state(tid))["values"])
    assert (values["echoed"], values["steps"]) == ("late", ["echo", "echo"])
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_wait_with_after_seconds_returns_after_the_delay(client: LangGraphClient) -> None:
    """runs.wait with after_seconds=1 returns the result no sooner than one second later."""
    started = time.monotonic()
    result = await client.runs.wait(None, "echo", input={"value": 1}, after_seconds=1)
    assert time.monotonic() - started >= 1.0
    assert obj(result)["echoed"] == 1


async def test_fractional_after_seconds_is_accepted(http: httpx.AsyncClient, client: LangGraphClient) -> None:
    """A fractional after_seconds is honoured: the run is pending at first and later succeeds."""
    tid = await new_thread(client)
    response = await http.post(f"/threads/{tid}/runs", json={"assistant_id": "echo", "input": {}, "after_seconds": 0.3})
    assert response.status_code == 200
    run_id = response.json()["run_id"]
    assert await run_status(client, tid, run_id) == "pending"
    assert await until_status(client, tid, run_id, "success") == "success"


# --- input and command ------------------------------------------------------------------------------


async def test_command_resume_continues_an_interrupted_thread(client: LangGraphClient) -> None:
    """interrupt() leaves the thread `interrupted` with its interrupt; Command(resume=...) finishes the graph."""
    tid = await new_thread(client)
    first = obj(await client.runs.wait(tid, "ask", input={"question": "name?"}))
    assert first["steps"] == ["prepare"]
    [pending] = first["__interrupt__"]
    assert pending["value"] == {"question": "name?"}
    thread = await client.threads.get(tid)
    assert thread["status"] == "interrupted"
    state = await client.threads.get_state(tid)
    assert state["next"] == ["ask"]
    assert [i["id"] for i in state["interrupts"]] == [pending["id"]]
    done = obj(await client.runs.wait(tid, "ask", command={"resume": "Ada"}))
    assert (done["answer"], done["steps"]) == ("Ada", ["prepare", "ask", "finish"])
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_command_resume_by_interrupt_id(client: LangGraphClient) -> None:
    """A resume keyed by the interrupt's id delivers the value to that interrupt."""
    tid = await new_thread(client)
    [pending] = obj(await client.runs.wait(tid, "ask", input={}))["__interrupt__"]
    done = obj(await client.runs.wait(tid, "ask", command={"resume": {pending["id"]: {"n": 1}}}))
    assert done["answer"] == {"n": 1}


async def test_command_goto_and_update_match_langgraph(client: LangGraphClient) -> None:
    """Command(update=..., goto=...) on an interrupted thread leaves the same state LangGraph itself does."""
    tid = await new_thread(client)
    await client.runs.wait(tid, "ask", input={})
    await client.runs.wait(tid, "ask", command={"update": {"note": "patched"}, "goto": "side", "resume": "r"})
    served = obj((await client.threads.get_state(tid))["values"])

    local = ask_graph.copy(update={"checkpointer": InMemorySaver()})
    config: Any = {"configurable": {"thread_id": "local"}}
    await local.ainvoke({}, config)
    await local.ainvoke(Command(update={"note": "patched"}, goto="side", resume="r"), config)
    expected = (await local.aget_state(config)).values
    assert served == expected
    assert served["note"] == "patched"
    assert "side" in served["steps"]


async def test_command_update_while_interrupted_applies_and_interrupts_again(client: LangGraphClient) -> None:
    """Command(update=...) without resume writes the update and the graph stops at the interrupt again."""
    tid = await new_thread(client)
    await client.runs.wait(tid, "ask", input={})
    result = obj(await client.runs.wait(tid, "ask", command={"update": {"note": "n1"}}))
    assert result["note"] == "n1"
    assert (await client.threads.get(tid))["status"] == "interrupted"


# --- config and context -----------------------------------------------------------------------------


async def test_context_reaches_the_graph_runtime(client: LangGraphClient) -> None:
    """Run context is what the nodes read from Runtime.context."""
    result = obj(await client.runs.wait(None, "slow", input={}, context={"delay": 0, "tag": "ctx"}))
    assert result["steps"] == ["s1:ctx", "s2:ctx", "s3:ctx"]


async def test_config_configurable_reaches_a_graph_factory(client: LangGraphClient) -> None:
    """A factory graph is built from the run's config.configurable."""
    result = await client.runs.wait(None, "configured", input={}, config={"configurable": {"greeting": "bonjour"}})
    assert result == {"greeting": "bonjour", "steps": ["greet"]}
    assert await client.runs.wait(None, "configured", input={}) == {"greeting": "hello", "steps": ["greet"]}


async def test_configurable_and_context_together_are_refused(http: httpx.AsyncClient) -> None:
    """Giving both config.configurable and context is a 400 with a detail, as for assistants."""
    response = await http.post(
        "/runs/wait",
        json={"assistant_id": "slow", "config": {"configurable": {"tag": "a"}}, "context": {"tag": "b"}},
    )
    assert response.status_code == 400
    assert "context" in response.json()["detail"]


# --- interrupt_before / interrupt_after -------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "nodes", "done"),
    [("interrupt_before", ["s2"], ["s1"]), ("interrupt_after", ["s2"], ["s1", "s2"]), ("interrupt_before", "*", [])],
)
async def test_static_interrupts_pause_and_a_null_input_continues(
    client: LangGraphClient, field: str, nodes: Any, done: list[str]
) -> None:
    """interrupt_before/after pause the run (success, thread interrupted); a run with input None continues."""
    tid = await new_thread(client)
    kwargs: dict[str, Any] = {field: nodes}
    run = await client.runs.create(tid, "slow", input={"delay": 0}, **kwargs)
    await client.runs.join(tid, run["run_id"])
    assert await run_status(client, tid, run["run_id"]) == "success"
    assert (await client.threads.get(tid))["status"] == "interrupted"
    assert await steps(client, tid) == done
    assert (await client.threads.get_state(tid))["next"]
    await client.runs.wait(tid, "slow", input=None)
    assert await steps(client, tid) == ["s1", "s2", "s3"]
    assert (await client.threads.get(tid))["status"] == "idle"


# --- checkpoint / checkpoint_id -------------------------------------------------------------------


@pytest.mark.parametrize("how", ["checkpoint_id", "checkpoint"])
async def test_run_from_an_earlier_checkpoint_forks_the_thread(client: LangGraphClient, how: str) -> None:
    """A run from the checkpoint after s1 replays s2 and s3 only, on a new branch of the history."""
    tid = await new_thread(client)
    await client.runs.wait(tid, "slow", input={"delay": 0})
    history = await client.threads.get_history(tid, limit=100)
    [after_s1] = [h for h in history if h["next"] == ["s2"]]
    checkpoint_id = str(after_s1["checkpoint"]["checkpoint_id"])
    kwargs: dict[str, Any] = (
        {"checkpoint_id": checkpoint_id} if how == "checkpoint_id" else {"checkpoint": {"checkpoint_id": checkpoint_id}}
    )
    result = obj(await client.runs.wait(tid, "slow", input=None, context={"delay": 0, "tag": "fork"}, **kwargs))
    assert result["steps"] == ["s1", "s2:fork", "s3:fork"]
    children = [
        h
        for h in await client.threads.get_history(tid, limit=100)
        if h["parent_checkpoint"] and h["parent_checkpoint"]["checkpoint_id"] == checkpoint_id
    ]
    assert len(children) == 2


async def test_unknown_checkpoint_id_does_not_crash_the_server(
    http: httpx.AsyncClient, client: LangGraphClient
) -> None:
    """A run from a checkpoint id that does not exist is refused or runs, but is never a 500."""
    tid = await new_thread(client)
    response = await http.post(
        f"/threads/{tid}/runs/wait", json={"assistant_id": "echo", "checkpoint_id": str(uuid.uuid4())}
    )
    assert response.status_code < 500


# --- durability, stream_mode and the stored kwargs -----------------------------------------------


async def test_durability_exit_saves_only_the_final_checkpoint(client: LangGraphClient) -> None:
    """durability=exit writes one checkpoint for the run, durability=sync writes one per step."""
    exit_tid, sync_tid = await new_thread(client), await new_thread(client)
    await client.runs.wait(exit_tid, "slow", input={"delay": 0}, durability="exit")
    await client.runs.wait(sync_tid, "slow", input={"delay": 0}, durability="sync")
    assert len(await client.threads.get_history(exit_tid, limit=100)) == 1
    assert len(await client.threads.get_history(sync_tid, limit=100)) == 5
    assert await steps(client, exit_tid) == await steps(client, sync_tid) == ["s1", "s2", "s3"]


async def test_kwargs_record_what_was_asked(client: LangGraphClient) -> None:
    """The Run's kwargs keep input, stream_mode as a list, durability and the static interrupts."""
    tid = await new_thread(client)
    run = await client.runs.create(
        tid,
        "slow",
        input={"delay": 0},
        stream_mode="updates",
        durability="sync",
        interrupt_after=["s3"],
    )
    kwargs = obj(dict(run)["kwargs"])
    assert kwargs["input"] == {"delay": 0}
    assert kwargs["stream_mode"] == ["updates"]
    assert kwargs["durability"] == "sync"
    assert kwargs["interrupt_after"] == ["s3"]
    await client.runs.join(tid, run["run_id"])


async def test_unknown_top_level_fields_are_ignored(http: httpx.AsyncClient) -> None:
    """A run payload with an unknown extra field is accepted, as the reference does."""
    response = await http.post("/runs/wait", json={"assistant_id": "echo", "input": {"value": 1}, "bogus_field": 1})
    assert response.status_code == 200
    assert response.json()["echoed"] == 1


# --- cancel -----------------------------------------------------------------------------------------


async def test_cancel_interrupt_with_wait_keeps_checkpoints(client: LangGraphClient, tmp_path: Path) -> None:
    """cancel(action=interrupt, wait=True) returns once the run is `interrupted`, with its progress kept."""
    gate = Gate(tmp_path)
    tid = await new_thread(client)
    run = await client.runs.create(tid, "gate", input=gate.input)
    await gate.reached()
    await client.runs.cancel(tid, run["run_id"], wait=True, action="interrupt")
    assert await run_status(client, tid, run["run_id"]) == "interrupted"
    assert (await client.threads.get(tid))["status"] == "interrupted"
    state = await client.threads.get_state(tid)
    assert obj(state["values"])["steps"] == ["before"]
    assert state["next"] == ["hold"]
    gate.open()
    await client.runs.wait(tid, "gate", input=None)
    assert await steps(client, tid) == ["before", "hold", "after"]


async def test_cancel_rollback_with_wait_restores_the_thread(client: LangGraphClient, tmp_path: Path) -> None:
    """cancel(action=rollback, wait=True) deletes the run and its checkpoints; the thread is idle as before."""
    done_gate = Gate(tmp_path, "done").open()
    gate = Gate(tmp_path)
    tid = await new_thread(client)
    await client.runs.wait(tid, "gate", input=done_gate.input)
    before = await client.threads.get_history(tid, limit=100)
    run = await client.runs.create(tid, "gate", input=gate.input)
    await gate.reached()
    await client.runs.cancel(tid, run["run_id"], wait=True, action="rollback")
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, run["run_id"])
    assert (await client.threads.get(tid))["status"] == "idle"
    assert await client.threads.get_history(tid, limit=100) == before


async def test_cancel_rollback_without_wait_does_not_leave_the_thread_busy(
    client: LangGraphClient, tmp_path: Path
) -> None:
    """cancel(action=rollback, wait=False) answers at once and the thread soon stops being busy."""
    gate = Gate(tmp_path)
    tid = await new_thread(client)
    run = await client.runs.create(tid, "gate", input=gate.input)
    await gate.reached()
    await client.runs.cancel(tid, run["run_id"], wait=False, action="rollback")
    thread = await thread_settled(client, tid)
    assert thread["status"] == "idle"
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, run["run_id"])


async def test_cancel_a_pending_run_means_it_never_runs(client: LangGraphClient, tmp_path: Path) -> None:
    """Cancelling a queued run marks it `interrupted` at once; it never executes after the first finishes."""
    gate = Gate(tmp_path)
    tid = await new_thread(client)
    first = await client.runs.create(tid, "gate", input=gate.input)
    await gate.reached()
    queued = await client.runs.create(tid, "echo", input={"value": "never"})
    await client.runs.cancel(tid, queued["run_id"])
    assert await run_status(client, tid, queued["run_id"]) == "interrupted"
    gate.open()
    await until_status(client, tid, first["run_id"], "success")
    assert "echoed" not in obj((await client.threads.get_state(tid))["values"])
    assert await run_status(client, tid, queued["run_id"]) == "interrupted"


async def test_cancel_finished_or_unknown_run_is_404(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    """Cancelling a finished run or an unknown run id answers 404 with a detail."""
    tid = await new_thread(client)
    run = await client.runs.create(tid, "echo", input={})
    await client.runs.join(tid, run["run_id"])
    for rid in (run["run_id"], str(uuid.uuid4())):
        response = await http.post(f"/threads/{tid}/runs/{rid}/cancel")
        assert response.status_code == 404
        assert response.json()["detail"]


async def test_cancel_with_unknown_action_is_422(
    client: LangGraphClient, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """An unknown cancel action is refused with 422 and the run keeps running."""
    gate = Gate(tmp_path)
    tid = await new_thread(client)
    run = await client.runs.create(tid, "gate", input=gate.input)
    await gate.reached()
    response = await http.post(f"/threads/{tid}/runs/{run['run_id']}/cancel?action=explode")
    assert response.status_code == 422
    assert await run_status(client, tid, run["run_id"]) == "running"
    gate.open()
    assert await until_status(client, tid, run["run_id"], "success", "interrupted") == "success"


async def test_cancel_many_by_ids_stops_running_and_pending_runs(client: LangGraphClient, tmp_path: Path) -> None:
    """runs.cancel_many(thread_id, run_ids) interrupts both the running and the queued run."""
    gate = Gate(tmp_path)
    tid = await new_thread(client)
    running = await client.runs.create(tid, "gate", input=gate.input)
    await gate.reached()
    queued = await client.runs.create(tid, "echo", input={})
    await client.runs.cancel_many(thread_id=tid, run_ids=[running["run_id"], queued["run_id"]])
    assert await until_status(client, tid, running["run_id"], *("success", "interrupted", "error")) == "interrupted"
    assert await run_status(client, tid, queued["run_id"]) == "interrupted"
    assert (await thread_settled(client, tid))["status"] in ("interrupted", "idle")


async def test_delete_an_inflight_run_frees_the_thread(
    client: LangGraphClient, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Deleting a running run answers 204, the run is gone, and the thread does not stay busy."""
    gate = Gate(tmp_path)
    tid = await new_thread(client)
    run = await client.runs.create(tid, "gate", input=gate.input)
    await gate.reached()
    response = await http.delete(f"/threads/{tid}/runs/{run['run_id']}")
    assert response.status_code == 204
    assert response.content == b""
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, run["run_id"])
    assert (await thread_settled(client, tid))["status"] == "idle"
    assert await client.runs.wait(tid, "echo", input={"value": "after"}) is not None


async def test_delete_a_finished_run_then_404(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    """Deleting a finished run answers 204, then the run and a second delete are 404."""
    tid = await new_thread(client)
    run = await client.runs.create(tid, "echo", input={})
    await client.runs.join(tid, run["run_id"])
    assert (await http.delete(f"/threads/{tid}/runs/{run['run_id']}")).status_code == 204
    assert (await http.get(f"/threads/{tid}/runs/{run['run_id']}")).status_code == 404
    assert (await http.delete(f"/threads/{tid}/runs/{run['run_id']}")).status_code == 404


# --- create_batch ------------------------------------------------------------------------------------


async def test_create_batch_starts_one_stateless_run_per_payload(client: LangGraphClient) -> None:
    """runs.create_batch returns one pending Run per payload, each on its own thread, and all of them run."""
    payloads: list[Any] = [
        {"assistant_id": "echo", "input": {"value": "a"}, "on_completion": "keep"},
        {"assistant_id": "echo", "input": {"value": "b"}, "on_completion": "keep"},
    ]
    runs = await client.runs.create_batch(payloads)
    assert len(runs) == 2
    assert len({r["thread_id"] for r in runs}) == 2
    outputs = [obj(await client.runs.join(r["thread_id"], r["run_id"]))["echoed"] for r in runs]
    assert outputs == ["a", "b"]


async def test_create_batch_with_an_invalid_item_creates_nothing(http: httpx.AsyncClient) -> None:
    """A batch with one invalid payload answers 422 and a batch that is not an array answers 422."""
    response = await http.post("/runs/batch", json=[{"assistant_id": "echo"}, {"input": {}}])
    assert response.status_code == 422
    response = await http.post("/runs/batch", json={"assistant_id": "echo"})
    assert response.status_code == 422
