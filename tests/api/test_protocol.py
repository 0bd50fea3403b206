"""The thread streaming protocol through the official client: `client.threads.stream` over SSE and
WebSocket (values, interrupts, messages, tools, subgraphs, custom channels, reconnects), the raw
commands and their errors, and RemoteGraph's v3 run stream."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from langgraph.pregel.remote import RemoteGraph
from langgraph.types import Command
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.api.support import CHAT_REPLY, CHAT_TOKENS, DEADLINE, FAILURE_MESSAGE, Server, eventually, obj, wait_for_file

TRANSPORTS = ["sse", "websocket"]
AGENT_REPLY = "the sum is 3"
EVERY_CHANNEL = ["values", "updates", "messages", "tools", "custom", "lifecycle", "input", "tasks", "checkpoints"]


def text(message: Any) -> str:
    """A message's text, whether its content is a string or a list of content blocks."""
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if isinstance(block, dict))


async def command(http: httpx.AsyncClient, thread_id: str, method: str, params: Any, cid: int = 1) -> Any:
    """POST one protocol command and return its reply (the HTTP status must be 200)."""
    response = await http.post(f"/threads/{thread_id}/commands", json={"id": cid, "method": method, "params": params})
    assert response.status_code == 200, response.text
    return response.json()


async def sse_events(http: httpx.AsyncClient, thread_id: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """The protocol events of one SSE connection to /stream/events, as parsed JSON, with their SSE ids checked."""
    async with http.stream("POST", f"/threads/{thread_id}/stream/events", json=body) as response:
        assert response.status_code == 200, await response.aread()
        frame: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line.startswith(("event: ", "data: ", "id: ")):
                key, _, value = line.partition(": ")
                frame[key] = value
            elif line == "" and "data" in frame:
                event = orjson.loads(frame["data"])
                assert "id" in frame, frame
                assert frame["id"] == str(event["seq"]) == event["event_id"]
                assert frame["event"] == event["method"]
                yield event
                frame = {}


def is_root_end(event: dict[str, Any]) -> bool:
    """Whether the event is the root lifecycle event ending a run (completed, failed or interrupted)."""
    params = event["params"]
    return (
        event["method"] == "lifecycle"
        and params["namespace"] == []
        and params["data"]["event"] in ("completed", "failed", "interrupted")
    )


async def until_root_end(
    events: AsyncIterator[dict[str, Any]], ends: int = 1, deadline: float = DEADLINE
) -> list[dict[str, Any]]:
    """Events up to and including the `ends`-th root terminal lifecycle event, under a deadline."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(deadline):
        async for event in events:
            seen.append(event)
            if is_root_end(event):
                ends -= 1
                if ends == 0:
                    return seen
    raise AssertionError(f"the stream ended before the run did: {seen}")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_values_stream_from_run_start_on_a_new_thread(client: LangGraphClient, transport: Any) -> None:
    """run.start creates the client-minted thread; thread.values yields each state and output is the final one."""
    async with client.threads.stream(assistant_id="slow", transport=transport) as thread:
        started = await thread.run.start(input={"delay": 0})
        states = [state async for state in thread.values]
        output = await thread.output
    assert [s.get("steps") for s in states][-4:] == [[], ["s1"], ["s1", "s2"], ["s1", "s2", "s3"]]
    assert output == {"delay": 0, "steps": ["s1", "s2", "s3"]}
    run = await client.runs.get(thread.thread_id, started["run_id"])
    assert run["status"] == "success"
    assert (await client.threads.get(thread.thread_id))["status"] == "idle"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_interrupt_then_respond_resumes_the_thread(client: LangGraphClient, transport: Any) -> None:
    """A run stopping at interrupt() reports it (input.requested); run.respond resumes it to the end."""
    async with client.threads.stream(assistant_id="ask", transport=transport) as thread:
        await thread.run.start(input={"question": "proceed?"})
        [state async for state in thread.values]
        assert thread.interrupted
        assert [i["value"] for i in thread.interrupts] == [{"question": "proceed?"}]
        assert (await client.threads.get(thread.thread_id))["status"] == "interrupted"
        await thread.run.respond("yes")
        output = await thread.output
    assert output["answer"] == "yes"
    assert output["steps"] == ["prepare", "ask", "finish"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_messages_projection_yields_one_stream_per_chat_model_call(
    client: LangGraphClient, transport: Any
) -> None:
    """thread.messages yields one stream per chat-model call, whose text is the model's reply."""
    async with client.threads.stream(assistant_id="chat", transport=transport) as thread:
        await thread.run.start(input={"messages": [{"role": "user", "content": "hi"}]})
        streams = [stream async for stream in thread.messages]
        output = await thread.output
    assert len(streams) == 1
    assert streams[0].node == "respond"
    assert await streams[0].text == CHAT_REPLY
    assert text(output["messages"][-1]) == CHAT_REPLY


async def test_message_events_are_content_blocks_of_the_tokens(http: httpx.AsyncClient) -> None:
    """`messages` events: message-start (with the node), a text block whose deltas are the tokens, message-finish."""
    tid = str(uuid.uuid4())
    await command(
        http, tid, "run.start", {"assistant_id": "chat", "input": {"messages": [{"role": "user", "content": "x"}]}}
    )
    events = await until_root_end(sse_events(http, tid, {"channels": ["messages", "lifecycle"], "since": 0}))
    data = [e["params"]["data"] for e in events if e["method"] == "messages"]
    kinds = [d["event"] for d in data]
    assert kinds == ["message-start", "content-block-start"] + ["content-block-delta"] * len(CHAT_TOKENS) + [
        "content-block-finish",
        "message-finish",
    ]
    assert [d["delta"]["text"] for d in data if d["event"] == "content-block-delta"] == CHAT_TOKENS
    assert data[0]["role"] == "ai"
    assert data[0]["metadata"]["langgraph_node"] == "respond"
    assert data[-2]["content"] == {"type": "text", "text": CHAT_REPLY}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_tool_calls_report_start_input_and_output(client: LangGraphClient, transport: Any) -> None:
    """thread.tool_calls yields a handle per tool call with its name, input and the tool's output."""
    async with client.threads.stream(assistant_id="agent", transport=transport) as thread:
        await thread.run.start(input={"messages": [{"role": "user", "content": "add 1 and 2"}]})
        calls = [call async for call in thread.tool_calls]
        output = await thread.output
    assert [(c.tool_call_id, c.name, c.input) for c in calls] == [("call-add-1", "add", {"a": 1, "b": 2})]
    result = await calls[0].output
    assert result["content"] == "3"
    assert result["status"] == "success"
    assert text(output["messages"][-1]) == AGENT_REPLY


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_subgraphs_yield_child_handles_with_their_messages(client: LangGraphClient, transport: Any) -> None:
    """thread.subgraphs discovers the subgraph from its `started` lifecycle; its handle streams its own messages."""
    async with client.threads.stream(assistant_id="team", transport=transport) as thread:
        await thread.run.start(input={"messages": [{"role": "user", "content": "hi"}]})
        handles = []
        async for handle in thread.subgraphs:
            handles.append(handle)
        await thread.output
        assert [h.graph_name for h in handles] == ["researcher"]
        child = handles[0]
        assert child.namespace[0].startswith("researcher:")
        streams = [stream async for stream in child.messages]
    assert len(streams) == 1
    assert await streams[0].text == CHAT_REPLY


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_custom_channel_by_name(client: LangGraphClient, transport: Any) -> None:
    """thread.extensions[name] yields the stream-writer payloads whose `name` is that name."""
    async with client.threads.stream(assistant_id="agent", transport=transport) as thread:
        await thread.run.start(input={"messages": [{"role": "user", "content": "hi"}]})
        payloads = [payload async for payload in thread.extensions["progress"]]
        await thread.output
    assert payloads == [{"name": "progress", "step": "reply"}]


async def test_two_threads_stream_at_once(client: LangGraphClient) -> None:
    """Two thread streams side by side each see only their own run's events."""

    async def one(graph: str, body: dict[str, Any], transport: Any) -> tuple[str, Any]:
        async with client.threads.stream(assistant_id=graph, transport=transport) as thread:
            await thread.run.start(input=body)
            [state async for state in thread.values]
            return thread.thread_id, await thread.output

    (tid_a, out_a), (tid_b, out_b) = await asyncio.gather(
        one("slow", {"delay": 0.01}, "sse"), one("echo", {"value": "b"}, "websocket")
    )
    assert tid_a != tid_b
    assert out_a["steps"] == ["s1", "s2", "s3"]
    assert out_b == {"value": "b", "echoed": "b", "steps": ["echo"]}


async def test_seq_grows_across_runs_and_since_replays_without_gaps_or_repeats(
    client: LangGraphClient, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A client that drops mid-run and reconnects with `since` gets every later event once, across runs."""
    tid = str(uuid.uuid4())
    gate = tmp_path / "gate"
    first = await command(http, tid, "run.start", {"assistant_id": "gate", "input": {"gate": str(gate)}})
    assert first["type"] == "success"
    assert first["meta"]["applied_through_seq"] == 0
    body = {"channels": EVERY_CHANNEL, "since": 0}
    before: list[dict[str, Any]] = []
    async with asyncio.timeout(DEADLINE):
        async for event in sse_events(http, tid, body):
            before.append(event)
            if event["method"] == "updates" and "before" in event["params"]["data"]:
                break  # drop the connection mid-run
    await wait_for_file(Path(f"{gate}.entered"))
    gate.touch()
    after = await until_root_end(sse_events(http, tid, {**body, "since": before[-1]["seq"]}))
    everything = await until_root_end(sse_events(http, tid, body))
    ids = [e["event_id"] for e in before + after]
    assert len(ids) == len(set(ids))
    assert ids == [e["event_id"] for e in everything]
    # A second run on the thread continues the numbering.
    second = await command(http, tid, "run.start", {"assistant_id": "echo", "input": {"value": 1}}, cid=2)
    assert second["meta"]["applied_through_seq"] == everything[-1]["seq"]
    later = await until_root_end(sse_events(http, tid, {**body, "since": second["meta"]["applied_through_seq"]}))
    assert later[0]["seq"] > everything[-1]["seq"]
    assert [e["seq"] for e in later] == sorted(e["seq"] for e in later)
    assert (await client.runs.get(tid, second["result"]["run_id"]))["status"] == "success"


async def test_failed_run_ends_with_failed_lifecycle(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    """A graph error ends the thread stream with a root `failed` event carrying the message."""
    tid = str(uuid.uuid4())
    await command(http, tid, "run.start", {"assistant_id": "failing", "input": {}})
    events = await until_root_end(sse_events(http, tid, {"channels": ["lifecycle"], "since": 0}))
    assert events[-1]["params"]["data"]["event"] == "failed"
    assert FAILURE_MESSAGE in events[-1]["params"]["data"]["error"]
    async with client.threads.stream(tid, assistant_id="failing") as thread:
        with pytest.raises(RuntimeError, match="Run errored"):
            await thread.run.start(input={})
            await thread.output


async def test_run_cancelled_before_it_starts_still_ends_the_stream(
    client: LangGraphClient, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A queued run cancelled while pending leaves a terminal lifecycle event (the reference leaves none)."""
    tid = str(uuid.uuid4())
    gate = tmp_path / "gate"
    await command(http, tid, "run.start", {"assistant_id": "gate", "input": {"gate": str(gate)}})
    queued = await command(http, tid, "run.start", {"assistant_id": "echo", "input": {"value": 1}}, cid=2)
    queued_id = queued["result"]["run_id"]
    await client.runs.cancel(tid, queued_id)
    gate.touch()
    events = await until_root_end(sse_events(http, tid, {"channels": ["lifecycle"], "since": 0}), ends=2)
    ends = [(e["params"]["data"]["run_id"], e["params"]["data"]["event"]) for e in events if is_root_end(e)]
    assert (queued_id, "failed") in ends
    assert (await client.runs.get(tid, queued_id))["status"] == "interrupted"


async def test_commands_answer_protocol_errors(http: httpx.AsyncClient) -> None:
    """Bad commands: malformed is 400, unknown is unknown_command, nothing to answer is no_such_run."""
    tid = str(uuid.uuid4())
    for bad in (b"not json", b"[]", b'{"method": "run.start"}', b'{"id": 1}', b'{"id": 1, "method": "x", "params": 3}'):
        response = await http.post(f"/threads/{tid}/commands", content=bad)
        assert response.status_code == 400, bad
        assert response.json()["detail"]
    assert (
        await http.post("/threads/not-a-uuid/commands", json={"id": 1, "method": "agent.getTree"})
    ).status_code == 400
    unknown = await command(http, tid, "run.explode", {})
    assert (unknown["type"], unknown["id"], unknown["error"]) == ("error", 1, "unknown_command")
    missing = await command(http, tid, "run.start", {"input": {}})
    assert missing["error"] == "invalid_argument"
    bad_graph = await command(http, tid, "run.start", {"assistant_id": "no-such-graph", "input": {}})
    assert bad_graph["error"] == "invalid_argument"
    nothing = await command(http, tid, "input.respond", {"interrupt_id": "x", "namespace": [], "response": 1})
    assert nothing["error"] in ("no_such_run", "permission_denied")
    started = await command(http, tid, "run.start", {"assistant_id": "ask", "input": {}})
    await until_root_end(sse_events(http, tid, {"channels": ["lifecycle"], "since": 0}))
    wrong = await command(http, tid, "input.respond", {"interrupt_id": "nope", "namespace": [], "response": 1})
    assert wrong["error"] == "no_such_interrupt"
    tree = await command(http, tid, "agent.getTree", {})
    assert tree["result"]["tree"]["status"] == "interrupted"
    assert tree["result"]["tree"]["graph_name"] == "ask"
    subscribed = await command(http, tid, "subscription.subscribe", {"channels": ["values"]})
    assert subscribed["result"]["replayed_events"] == 0
    assert started["meta"]["applied_through_seq"] == 0
    bad_channel = await command(http, tid, "subscription.subscribe", {"channels": ["everything"]})
    assert bad_channel["error"] == "invalid_argument"


async def test_input_respond_resumes_by_interrupt_id(http: httpx.AsyncClient) -> None:
    """input.respond with the interrupt id from input.requested starts the resuming run."""
    tid = str(uuid.uuid4())
    await command(http, tid, "run.start", {"assistant_id": "ask", "input": {"question": "why?"}})
    events = await until_root_end(sse_events(http, tid, {"channels": ["lifecycle", "input"], "since": 0}))
    requested = [e for e in events if e["method"] == "input.requested"]
    assert [e["params"]["data"]["payload"] for e in requested] == [{"question": "why?"}]
    assert events[-1]["params"]["data"]["event"] == "interrupted"
    since = events[-1]["seq"]
    interrupt_id = requested[0]["params"]["data"]["interrupt_id"]
    reply = await command(
        http, tid, "input.respond", {"responses": [{"interrupt_id": interrupt_id, "namespace": [], "response": 42}]}
    )
    assert reply == {"type": "success", "id": 1, "result": {}, "meta": {"applied_through_seq": since}}
    resumed = await until_root_end(sse_events(http, tid, {"channels": ["lifecycle", "values"], "since": since}))
    assert resumed[0]["params"]["data"]["event"] == "running"
    assert resumed[-1]["params"]["data"]["event"] == "completed"
    assert [e for e in resumed if e["method"] == "values"][-1]["params"]["data"]["answer"] == 42


async def test_stream_filters_by_namespace_depth_and_custom_name(http: httpx.AsyncClient) -> None:
    """namespaces/depth select the subgraph's events; custom:<name> selects writer payloads by name."""
    tid = str(uuid.uuid4())
    await command(http, tid, "run.start", {"assistant_id": "team", "input": {"messages": []}})
    everything = await until_root_end(sse_events(http, tid, {"channels": EVERY_CHANNEL, "since": 0}))
    root_only = [e for e in everything if e["params"]["namespace"] == []]
    depth0 = await until_root_end(
        sse_events(http, tid, {"channels": EVERY_CHANNEL, "namespaces": [[]], "depth": 0, "since": 0})
    )
    assert [e["seq"] for e in depth0] == [e["seq"] for e in root_only]
    child = [e for e in everything if e["params"]["namespace"][:1] and e["method"] == "values"]
    assert child
    received: list[dict[str, Any]] = []
    async with asyncio.timeout(DEADLINE):
        async for event in sse_events(http, tid, {"channels": ["values"], "namespaces": [["researcher"]], "since": 0}):
            received.append(event)
            if len(received) == len(child):
                break
    assert [e["seq"] for e in received] == [e["seq"] for e in child]
    named: list[dict[str, Any]] = []
    async with asyncio.timeout(DEADLINE):
        async for event in sse_events(http, tid, {"channels": ["custom:progress", "lifecycle"], "since": 0}):
            named.append(event)
            if is_root_end(event):
                break
    assert [e["params"]["data"] for e in named if e["method"] == "custom"] == [{"name": "progress", "step": "intro"}]
    bodies: list[Any] = [{"channels": []}, {"channels": ["nope"]}, {"channels": ["values"], "since": -1}, [1]]
    for bad in bodies:
        response = await http.post(f"/threads/{tid}/stream/events", json=bad)
        assert response.status_code == 400, bad
    missing = await http.post(f"/threads/{uuid.uuid4()}/stream/events", json={"channels": ["values"]})
    assert missing.status_code == 404


async def test_stream_without_since_starts_at_the_latest_run(http: httpx.AsyncClient, tmp_path: Path) -> None:
    """A subscriber without `since` gets the current run from its start, not the runs before it."""
    tid = str(uuid.uuid4())
    await command(http, tid, "run.start", {"assistant_id": "echo", "input": {"value": 1}})
    first = await until_root_end(sse_events(http, tid, {"channels": ["lifecycle"], "since": 0}))
    gate = tmp_path / "gate"
    second = await command(http, tid, "run.start", {"assistant_id": "gate", "input": {"gate": str(gate)}}, cid=2)
    await wait_for_file(Path(f"{gate}.entered"))
    events = sse_events(http, tid, {"channels": ["lifecycle"]})
    async with asyncio.timeout(DEADLINE):
        opening = await anext(events)
        gate.touch()
        rest = await until_root_end(events)
    assert opening["params"]["data"] == {"event": "running", "graph_name": "gate", "run_id": second["result"]["run_id"]}
    assert opening["seq"] > first[-1]["seq"]
    assert rest[-1]["params"]["data"]["event"] == "completed"


async def test_remote_graph_v3_interrupt_and_resume(client: LangGraphClient) -> None:
    """RemoteGraph.astream_events(version="v3") runs on the protocol: interrupted, then resumed by Command."""
    remote = RemoteGraph("ask", client=client)
    config: Any = {"configurable": {"thread_id": str(uuid.uuid4())}}
    async with await remote.astream_events({"question": "go?"}, config, version="v3") as run:
        [state async for state in run.values]
        assert await run.interrupted()
        assert [i["value"] for i in await run.interrupts()] == [{"question": "go?"}]
    async with await remote.astream_events(Command(resume="go"), config, version="v3") as run:
        output = await run.output()
    assert output["answer"] == "go"
    assert output["steps"] == ["prepare", "ask", "finish"]


async def test_remote_graph_invoke_stream_and_v3_messages(client: LangGraphClient) -> None:
    """RemoteGraph invoke and stream (classic runs) and its v3 messages projection agree on one chat thread."""
    remote = RemoteGraph("chat", client=client)
    config: Any = {"configurable": {"thread_id": str(uuid.uuid4())}}
    invoked = await remote.ainvoke({"messages": [{"role": "user", "content": "hi"}]}, config)
    assert text(invoked["messages"][-1]) == CHAT_REPLY
    chunks = [chunk async for chunk in remote.astream({"messages": [{"role": "user", "content": "again"}]}, config)]
    assert chunks
    async with await remote.astream_events(
        {"messages": [{"role": "user", "content": "v3"}]}, config, version="v3"
    ) as run:
        streams = [stream async for stream in run.messages]
        output = await run.output()
    assert [await s.text for s in streams] == [CHAT_REPLY]
    assert len(output["messages"]) == 6


async def test_remote_graph_abort_cancels_the_run(client: LangGraphClient, tmp_path: Path) -> None:
    """RemoteGraph's v3 abort() cancels the remote run; the thread ends its stream and is not left busy."""
    gate = tmp_path / "gate"
    remote = RemoteGraph("gate", client=client)
    tid = str(uuid.uuid4())
    config: Any = {"configurable": {"thread_id": tid}}
    run = await remote.astream_events({"gate": str(gate)}, config, version="v3")
    async with run:
        await wait_for_file(Path(f"{gate}.entered"))
        await run.abort()
    runs = await client.runs.list(tid)
    await eventually(lambda: _run_status(client, tid, runs[0]["run_id"]), lambda s: s == "interrupted")
    # Stopped inside `hold`: the thread keeps its progress and waits there, it is not left busy.
    await eventually(lambda: _thread_status(client, tid), lambda s: s == "interrupted")
    gate.touch()


async def _run_status(client: LangGraphClient, tid: str, run_id: str) -> str:
    return str((await client.runs.get(tid, run_id))["status"])


async def _thread_status(client: LangGraphClient, tid: str) -> str:
    return str((await client.threads.get(tid))["status"])


class Proxy:
    """A TCP relay in front of the server whose live connections a test can cut, as a network drop would."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None
        self.port = 0
        self.accepted = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers.update((writer, upstream_writer))
        try:
            await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))
        finally:
            self.writers.discard(writer)
            self.writers.discard(upstream_writer)

    def cut(self) -> None:
        """Reset every connection open now; new ones are relayed as before."""
        for writer in list(self.writers):
            transport = writer.transport
            transport.abort()

    async def stop(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_sdk_reconnects_mid_iteration_without_duplicates(server: Server, transport: Any, tmp_path: Path) -> None:
    """The connection drops mid-run; the client reconnects from its cursor and its iterator sees every event once."""
    proxy = Proxy(server.port)
    await proxy.start()
    sdk = get_client(url=f"http://127.0.0.1:{proxy.port}", api_key=None, timeout=60)
    gate = tmp_path / "gate"
    seen: list[str] = []
    accepted_at_cut = 0
    try:
        async with sdk.threads.stream(assistant_id="gate", transport=transport) as thread:
            await thread.run.start(input={"gate": str(gate)})
            async with asyncio.timeout(DEADLINE):
                async for event in thread.subscribe(["values", "updates", "lifecycle"]):
                    seen.append(str(event["event_id"]))
                    if event["method"] == "updates" and "before" in event["params"]["data"]:
                        await wait_for_file(Path(f"{gate}.entered"))
                        accepted_at_cut = proxy.accepted
                        proxy.cut()  # events of `hold` and `after` are published while the client is away
                        gate.touch()
                    if is_root_end(dict(event)):
                        break
        state = await sdk.threads.get_state(thread.thread_id)
    finally:
        await sdk.http.client.aclose()
        await proxy.stop()
    assert proxy.accepted > accepted_at_cut > 0, "the client reconnected after the drop"
    assert len(seen) == len(set(seen))
    assert obj(state["values"])["steps"] == ["before", "hold", "after"]
    everything = [e async for e in _all_events(server, thread.thread_id)]
    assert seen == [e["event_id"] for e in everything]


async def _all_events(server: Server, thread_id: str) -> AsyncIterator[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        body = {"channels": ["values", "updates", "lifecycle"], "since": 0}
        for event in await until_root_end(sse_events(http, thread_id, body)):
            yield event
