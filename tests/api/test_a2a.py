"""/a2a/{assistant_id}: A2A JSON-RPC (send, stream, get, cancel) and agent cards, on both backends.

Requests are raw JSON-RPC over httpx; every result is read back through the A2A SDK's own (protocol 0.3)
models, so a shape the SDK would not accept fails the test.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from a2a import types as sdk_types
from a2a.client import ClientConfig, create_client
from a2a.compat.v0_3 import types as a2a
from google.protobuf import json_format, struct_pb2
from langgraph_sdk import get_client

from tests.api.support import (
    CHAT_REPLY,
    FAILURE_MESSAGE,
    GRAPHS_DIR,
    Server,
    launch,
    read_sse,
    system_assistant_id,
    wait_ready_blocking,
)
from tests.api.test_bad_input import BAD_IDS, DROPPED, bodies, send


@pytest.fixture
async def http(backend: Server) -> AsyncIterator[httpx.AsyncClient]:
    """A raw HTTP client for the backend under test."""
    async with httpx.AsyncClient(base_url=backend.url, timeout=60) as raw:
        yield raw


def _message(*parts: dict[str, Any], context_id: str | None = None, task_id: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "user", "messageId": uuid.uuid4().hex, "parts": list(parts)}
    if context_id is not None:
        message["contextId"] = context_id
    if task_id is not None:
        message["taskId"] = task_id
    return message


def _text(text: str) -> dict[str, Any]:
    return {"kind": "text", "text": text}


def _data(data: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "data", "data": data}


async def _call(http: httpx.AsyncClient, assistant: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    res = await http.post(
        f"/a2a/{assistant}", json={"jsonrpc": "2.0", "id": "req-1", "method": method, "params": params}
    )
    assert res.status_code == 200, res.text
    body: dict[str, Any] = res.json()
    assert body["jsonrpc"] == "2.0"
    assert body["id"] == "req-1"
    return body


async def _task(http: httpx.AsyncClient, assistant: str, method: str, params: dict[str, Any]) -> a2a.Task:
    body = await _call(http, assistant, method, params)
    assert "result" in body, body
    return a2a.Task.model_validate(body["result"])


def _error(body: dict[str, Any]) -> a2a.JSONRPCError:
    assert "error" in body, body
    return a2a.JSONRPCError.model_validate(body["error"])


def _only_text(parts: list[a2a.Part]) -> str:
    assert len(parts) == 1
    inner = parts[0].root
    assert isinstance(inner, a2a.TextPart)
    return inner.text


def _only_data(parts: list[a2a.Part]) -> dict[str, Any]:
    assert len(parts) == 1
    inner = parts[0].root
    assert isinstance(inner, a2a.DataPart)
    return inner.data


async def test_send_answers_with_the_completed_task_and_the_reply(http: httpx.AsyncClient) -> None:
    """message/send with text runs a chat graph on a new thread; the task holds the AI reply as text."""
    task = await _task(http, "chat", "message/send", {"message": _message(_text("hi there"))})
    assert task.status.state is a2a.TaskState.completed
    uuid.UUID(task.id)
    uuid.UUID(task.context_id)
    assert task.artifacts is not None
    assert _only_text(task.artifacts[0].parts) == CHAT_REPLY
    assert task.history is not None
    assert [m.role for m in task.history] == [a2a.Role.user, a2a.Role.agent]
    assert _only_text(task.history[0].parts) == "hi there"


async def test_a_context_is_a_thread_that_remembers(http: httpx.AsyncClient, backend: Server) -> None:
    """Two messages with one contextId run on one thread: its state holds both exchanges."""
    first = await _task(http, "chat", "message/send", {"message": _message(_text("one"))})
    second = await _task(http, "chat", "message/send", {"message": _message(_text("two"), context_id=first.context_id)})
    assert second.context_id == first.context_id
    assert second.id != first.id
    sdk = get_client(url=backend.url, api_key=None)
    try:
        state = await sdk.threads.get_state(first.context_id)
    finally:
        await sdk.http.client.aclose()
    values = state["values"]
    assert isinstance(values, dict)
    assert [m["content"] for m in values["messages"]] == ["one", CHAT_REPLY, "two", CHAT_REPLY]


async def test_data_parts_are_the_graphs_input(http: httpx.AsyncClient) -> None:
    """A data part drives a graph without messages; its final state comes back as a data part."""
    task = await _task(http, "echo", "message/send", {"message": _message(_data({"value": [1, 2]}))})
    assert task.status.state is a2a.TaskState.completed
    assert task.artifacts is not None
    assert _only_data(task.artifacts[0].parts) == {"value": [1, 2], "echoed": [1, 2], "steps": ["echo"]}


async def test_stream_sends_the_task_then_working_then_the_result_and_a_final_status(http: httpx.AsyncClient) -> None:
    """message/stream is SSE of JSON-RPC responses: task (submitted), working, artifact, final completed."""
    body = {"jsonrpc": "2.0", "id": 5, "method": "message/stream", "params": {"message": _message(_text("yo"))}}
    async with http.stream("POST", "/a2a/chat", json=body) as res:
        assert res.status_code == 200
        assert res.headers["content-type"].startswith("text/event-stream")
        frames = [event.data async for event in read_sse(res)]
    assert all(frame["jsonrpc"] == "2.0" and frame["id"] == 5 for frame in frames)
    results = [frame["result"] for frame in frames]
    assert [r["kind"] for r in results] == ["task", "status-update", "artifact-update", "status-update"]
    task = a2a.Task.model_validate(results[0])
    working = a2a.TaskStatusUpdateEvent.model_validate(results[1])
    artifact = a2a.TaskArtifactUpdateEvent.model_validate(results[2])
    final = a2a.TaskStatusUpdateEvent.model_validate(results[3])
    assert task.status.state is a2a.TaskState.submitted
    assert (working.status.state, working.final) == (a2a.TaskState.working, False)
    assert _only_text(artifact.artifact.parts) == CHAT_REPLY
    assert (final.status.state, final.final) == (a2a.TaskState.completed, True)
    assert {working.task_id, artifact.task_id, final.task_id} == {task.id}


async def test_get_returns_the_task_with_at_most_the_history_asked_for(http: httpx.AsyncClient) -> None:
    """tasks/get reads a task back by id; historyLength trims its history to the latest messages."""
    sent = await _task(http, "chat", "message/send", {"message": _message(_text("remember me"))})
    got = await _task(http, "chat", "tasks/get", {"id": sent.id})
    assert (got.id, got.context_id, got.status.state) == (sent.id, sent.context_id, a2a.TaskState.completed)
    assert got.artifacts == sent.artifacts
    short = await _task(http, "chat", "tasks/get", {"id": sent.id, "historyLength": 1})
    assert short.history is not None
    assert [m.role for m in short.history] == [a2a.Role.agent]


async def test_cancel_stops_a_running_task(http: httpx.AsyncClient, backend: Server) -> None:
    """A non-blocking send answers at once; tasks/cancel stops the run and the task reads canceled."""
    params = {"message": _message(_data({"delay": 30})), "configuration": {"blocking": False}}
    started = await _task(http, "slow", "message/send", params)
    assert started.status.state in (a2a.TaskState.submitted, a2a.TaskState.working)
    canceled = await _task(http, "slow", "tasks/cancel", {"id": started.id})
    assert canceled.status.state is a2a.TaskState.canceled, backend.log(400)
    again = await _task(http, "slow", "tasks/get", {"id": started.id})
    assert again.status.state is a2a.TaskState.canceled
    assert again.artifacts is None


async def test_cancel_of_an_ended_task_or_a_missing_one_is_an_a2a_error(http: httpx.AsyncClient) -> None:
    """An ended task is TaskNotCancelable (-32002); an unknown or another agent's task is TaskNotFound (-32001)."""
    done = await _task(http, "echo", "message/send", {"message": _message(_data({"value": 1}))})
    assert _error(await _call(http, "echo", "tasks/cancel", {"id": done.id})).code == -32002
    assert _error(await _call(http, "echo", "tasks/get", {"id": str(uuid.uuid4())})).code == -32001
    assert _error(await _call(http, "echo", "tasks/get", {"id": "not-a-uuid"})).code == -32001
    assert _error(await _call(http, "chat", "tasks/get", {"id": done.id})).code == -32001


async def test_a_failing_graph_is_a_failed_task_with_its_error(http: httpx.AsyncClient) -> None:
    """A graph that raises ends its task `failed`, the error in the status message."""
    task = await _task(http, "failing", "message/send", {"message": _message(_data({}))})
    assert task.status.state is a2a.TaskState.failed
    assert task.status.message is not None
    assert FAILURE_MESSAGE in _only_text(task.status.message.parts)
    assert task.artifacts is None


async def test_an_interrupt_asks_for_input_and_a_reply_resumes_it(http: httpx.AsyncClient) -> None:
    """A graph at interrupt() is `input-required` with its question; a message with that taskId resumes it."""
    asked = await _task(http, "ask", "message/send", {"message": _message(_data({"question": "ship it?"}))})
    assert asked.status.state is a2a.TaskState.input_required
    assert asked.status.message is not None
    assert _only_data(asked.status.message.parts) == {"question": "ship it?"}
    reply = _message(_text("yes"), context_id=asked.context_id, task_id=asked.id)
    resumed = await _task(http, "ask", "message/send", {"message": reply})
    assert resumed.status.state is a2a.TaskState.completed
    assert resumed.context_id == asked.context_id
    assert resumed.artifacts is not None
    final = _only_data(resumed.artifacts[0].parts)
    assert (final["answer"], final["steps"]) == ("yes", ["prepare", "ask", "finish"])
    again = _message(_text("no"), context_id=asked.context_id, task_id=asked.id)
    assert _error(await _call(http, "ask", "message/send", {"message": again})).code == -32602


async def test_agent_cards_describe_the_assistant(http: httpx.AsyncClient) -> None:
    """The card is served under the agent's path and at the root with ?assistant_id, pointing at /a2a/{id}."""
    echo_id = system_assistant_id("echo")
    paths = [
        "/a2a/echo/.well-known/agent-card.json",
        f"/a2a/{echo_id}/.well-known/agent.json",
        "/.well-known/agent-card.json?assistant_id=echo",
    ]
    for path in paths:
        res = await http.get(path)
        assert res.status_code == 200, path
        card = a2a.AgentCard.model_validate(res.json())
        assert card.name == "echo"
        assert card.url.endswith(f"/a2a/{echo_id}")
        assert card.capabilities.streaming is True
        assert card.skills[0].tags == ["echo"]
    assert (await http.get("/.well-known/agent-card.json")).status_code == 400
    assert (await http.get("/a2a/nope/.well-known/agent-card.json")).status_code == 404


async def test_bad_requests_are_json_rpc_errors(http: httpx.AsyncClient) -> None:
    """Bad JSON, a bad envelope, an unknown method, bad params, a bad contextId, a file part: each its code."""
    assert _error((await http.post("/a2a/echo", content=b"{nope")).json()).code == -32700
    assert _error((await http.post("/a2a/echo", json=[1, 2])).json()).code == -32600
    assert _error(await _call(http, "echo", "tasks/resubscribe-all", {})).code == -32601
    missing = await _call(http, "echo", "message/send", {"message": {"role": "user"}})
    assert _error(missing).code == -32602
    bad_context = await _call(http, "echo", "message/send", {"message": _message(_text("x"), context_id="thread-1")})
    assert _error(bad_context).code == -32602
    file_part = {"kind": "file", "file": {"uri": "https://example.com/a.txt"}}
    assert _error(await _call(http, "echo", "message/send", {"message": _message(file_part)})).code == -32005
    unknown = await http.post("/a2a/nope", json={"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {}})
    assert unknown.status_code == 404
    assert (await http.get("/a2a/echo")).status_code == 405


# --- custom auth -------------------------------------------------------------------------------


# One xdist worker runs this module, so its module-scoped server starts once (not once per worker).
pytestmark = pytest.mark.xdist_group("a2a")


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A graphyard serving the auth test app (bearer tokens; threads owned by their creator)."""
    folder = tmp_path_factory.mktemp("a2a-auth")
    server = launch(GRAPHS_DIR / "auth" / "langgraph.json", folder / "graphyard.sqlite", folder / "server.log")
    try:
        wait_ready_blocking(server)
        yield server
    finally:
        server.stop()


def _as(server: Server, token: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60)


async def test_a2a_goes_through_the_projects_auth(auth_server: Server) -> None:
    """No token is 401; a task runs as its sender, and another user can neither read nor cancel it."""
    async with (
        _as(auth_server, None) as anon,
        _as(auth_server, "token-alice") as alice,
        _as(auth_server, "token-bob") as bob,
    ):
        refused = await anon.post("/a2a/whoami", json={"jsonrpc": "2.0", "id": 1, "method": "tasks/get"})
        assert refused.status_code == 401
        assert (await anon.get("/a2a/whoami/.well-known/agent-card.json")).status_code == 401
        task = await _task(alice, "whoami", "message/send", {"message": _message(_data({}))})
        assert task.artifacts is not None
        seen = _only_data(task.artifacts[0].parts)["seen"]
        assert seen["langgraph_auth_user_id"] == "alice"
        assert (await _task(alice, "whoami", "tasks/get", {"id": task.id})).id == task.id
        assert _error(await _call(bob, "whoami", "tasks/get", {"id": task.id})).code == -32001
        assert _error(await _call(bob, "whoami", "tasks/cancel", {"id": task.id})).code == -32001
        hijack = _message(_data({}), context_id=task.context_id)
        assert (
            await bob.post(
                "/a2a/whoami", json={"jsonrpc": "2.0", "id": 2, "method": "message/send", "params": {"message": hijack}}
            )
        ).status_code == 404


async def test_bad_input_corpus_on_mcp_and_a2a_never_gets_a_500(server: Server) -> None:
    """The shared bad-input corpus, as bodies to /mcp and /a2a and as assistant ids, never gets a 500."""
    failures: list[str] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as raw:
        for bad in BAD_IDS:
            for method, path in (("POST", f"/a2a/{bad}"), ("GET", f"/a2a/{bad}/.well-known/agent-card.json")):
                status, body, _ = await send(raw, method, path, False, b"{}")
                if status >= 500 or status == DROPPED:
                    failures.append(f"{method} {path[:80]}: {status} {body[:200]!r}")
        async for content in bodies():
            for path in ("/a2a/echo", "/mcp"):
                status, body, content_type = await send(raw, "POST", path, False, content)
                if status >= 500 or status == DROPPED or "json" not in content_type:
                    failures.append(f"POST {path} body {(content or b'')[:80]!r}: {status} {body[:200]!r}")
    assert not failures, "\n".join(failures)


async def test_the_a2a_sdk_client_sends_streams_gets_and_cancels(backend: Server) -> None:
    """The A2A SDK's own client, from the agent card on: send, stream, get, and cancel a running task."""
    message = sdk_types.Message(
        role=sdk_types.Role.ROLE_USER, message_id=uuid.uuid4().hex, parts=[sdk_types.Part(text="hi sdk")]
    )
    long_one = sdk_types.Message(
        role=sdk_types.Role.ROLE_USER,
        message_id=uuid.uuid4().hex,
        parts=[sdk_types.Part(data=json_format.ParseDict({"delay": 30}, struct_pb2.Value()))],
    )
    # The SDK's default HTTP client gives up after 5 s, too short on a loaded 2-core machine.
    async with httpx.AsyncClient(timeout=60) as http:
        for streaming in (False, True):
            config = ClientConfig(streaming=streaming, httpx_client=http)
            async with await create_client(f"{backend.url}/a2a/chat", client_config=config) as client:
                request = sdk_types.SendMessageRequest(message=message)
                updates = [item async for item in client.send_message(request)]
                task_id = next(u.task.id for u in updates if u.HasField("task"))
                got = await client.get_task(sdk_types.GetTaskRequest(id=task_id))
            assert got.status.state == sdk_types.TaskState.TASK_STATE_COMPLETED
            assert got.artifacts[0].parts[0].text == CHAT_REPLY
            if streaming:
                assert updates[-1].status_update.status.state == sdk_types.TaskState.TASK_STATE_COMPLETED
        config = ClientConfig(streaming=False, httpx_client=http)
        async with await create_client(f"{backend.url}/a2a/slow", client_config=config) as slow:
            request = sdk_types.SendMessageRequest(
                message=long_one, configuration=sdk_types.SendMessageConfiguration(return_immediately=True)
            )
            sent = [item async for item in slow.send_message(request)]
            started = sent[0].task
            canceled = await slow.cancel_task(sdk_types.CancelTaskRequest(id=started.id))
    assert started.status.state in (sdk_types.TaskState.TASK_STATE_SUBMITTED, sdk_types.TaskState.TASK_STATE_WORKING)
    assert canceled.status.state == sdk_types.TaskState.TASK_STATE_CANCELED
