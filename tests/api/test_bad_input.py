"""Bad input on every route: never a 500, always a 4xx with a JSON `detail` (or an honest success)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from langgraph_sdk.client import LangGraphClient

from tests.api.support import StartServer, obj

# Every route of the API, with the id placeholders it takes. Streaming routes are marked: their
# bodies are not read to the end (a stream on an idle thread would wait for runs forever).
ROUTES: list[tuple[str, str, bool]] = [
    ("GET", "/ok", False),
    ("GET", "/info", False),
    ("POST", "/assistants", False),
    ("POST", "/assistants/search", False),
    ("POST", "/assistants/count", False),
    ("GET", "/assistants/{assistant_id}", False),
    ("PATCH", "/assistants/{assistant_id}", False),
    ("DELETE", "/assistants/{assistant_id}", False),
    ("POST", "/assistants/{assistant_id}/versions", False),
    ("POST", "/assistants/{assistant_id}/latest", False),
    ("GET", "/assistants/{assistant_id}/graph", False),
    ("GET", "/assistants/{assistant_id}/schemas", False),
    ("GET", "/assistants/{assistant_id}/subgraphs", False),
    ("GET", "/assistants/{assistant_id}/subgraphs/child", False),
    ("POST", "/threads", False),
    ("POST", "/threads/search", False),
    ("POST", "/threads/count", False),
    ("POST", "/threads/prune", False),
    ("GET", "/threads/{thread_id}", False),
    ("PATCH", "/threads/{thread_id}", False),
    ("DELETE", "/threads/{thread_id}", False),
    ("POST", "/threads/{thread_id}/copy", False),
    ("GET", "/threads/{thread_id}/state", False),
    ("POST", "/threads/{thread_id}/state", False),
    ("POST", "/threads/{thread_id}/state/checkpoint", False),
    ("GET", "/threads/{thread_id}/state/{checkpoint_id}", False),
    ("GET", "/threads/{thread_id}/history", False),
    ("POST", "/threads/{thread_id}/history", False),
    ("GET", "/threads/{thread_id}/stream", True),
    ("POST", "/threads/{thread_id}/commands", False),
    ("POST", "/threads/{thread_id}/stream/events", True),
    ("POST", "/threads/{thread_id}/runs", False),
    ("GET", "/threads/{thread_id}/runs", False),
    ("POST", "/threads/{thread_id}/runs/stream", True),
    ("POST", "/threads/{thread_id}/runs/wait", False),
    ("GET", "/threads/{thread_id}/runs/{run_id}", False),
    ("DELETE", "/threads/{thread_id}/runs/{run_id}", False),
    ("GET", "/threads/{thread_id}/runs/{run_id}/join", False),
    ("GET", "/threads/{thread_id}/runs/{run_id}/stream", True),
    ("POST", "/threads/{thread_id}/runs/{run_id}/cancel", False),
    ("POST", "/runs", False),
    ("POST", "/runs/stream", True),
    ("POST", "/runs/wait", False),
    ("POST", "/runs/batch", False),
    ("POST", "/runs/cancel", False),
    ("POST", "/runs/crons", False),
    ("POST", "/runs/crons/search", False),
    ("POST", "/runs/crons/count", False),
    ("GET", "/runs/crons/{cron_id}", False),
    ("PATCH", "/runs/crons/{cron_id}", False),
    ("DELETE", "/runs/crons/{cron_id}", False),
    ("POST", "/threads/{thread_id}/runs/crons", False),
]
# The store answers some bad input with the reference's other error shapes: a bare JSON string (bad
# namespace label, 422) or {"error": ...} (missing key, 400). Its routes are checked for no 500s and JSON.
STORE_ROUTES: list[tuple[str, str]] = [
    ("PUT", "/store/items"),
    ("GET", "/store/items"),
    ("DELETE", "/store/items"),
    ("POST", "/store/items/search"),
    ("POST", "/store/namespaces"),
]

# Bodies that are not JSON objects, or not JSON at all.
RAW_BODIES: list[bytes] = [
    b"{not json",
    b'{"a": ',
    b"[]",
    b"[1, 2]",
    b"null",
    b'"a string"',
    b"123",
    b"true",
    b"\xff\xfe\x00garbage",
    b'"\\ud800"',
    b'{"metadata": {"k": "\\ud800"}}',
    b"[" * 5000 + b"]" * 5000,
    b'{"limit": 123456789012345678901234567890}',
    b'{"metadata": {"big": 1e400}}',
]
# JSON objects with wrong types, unknown enum values and odd strings, for any route.
OBJECT_BODIES: list[Any] = [
    {"metadata": "not an object"},
    {"metadata": {"nul": "a\u0000b", "k\u0000ey": 1, "emoji": "😀", "rtl": "שלום"}},
    {"metadata": [1, 2]},
    {"config": []},
    {"config": {"configurable": "x"}},
    {"context": 5},
    {"values": "x"},
    {"limit": -1},
    {"limit": 0},
    {"limit": "ten"},
    {"limit": 100000},
    {"offset": -5},
    {"offset": 1.5},
    {"status": "bogus"},
    {"sort_by": "bogus"},
    {"sort_order": "sideways"},
    {"select": ["no_such_field"]},
    {"select": "thread_id"},
    {"ids": ["not-a-uuid"]},
    {"ids": "x"},
    {"thread_id": "not-a-uuid"},
    {"thread_id": 5},
    {"thread_ids": "x"},
    {"thread_ids": ["not-a-uuid"]},
    {"run_ids": ["not-a-uuid"], "thread_id": "not-a-uuid"},
    {"graph_id": 5},
    {"graph_id": "no-such-graph"},
    {"graph_id": "echo", "config": {"configurable": "x"}},
    {"graph_id": "echo", "config": {"configurable": [1]}, "context": {"a": 1}},
    {"graph_id": "echo", "context": "x"},
    {"graph_id": "echo", "if_exists": "bogus"},
    {"assistant_id": 123},
    {"assistant_id": ""},
    {"assistant_id": "not-a-graph"},
    {"assistant_id": str(uuid.UUID(int=0))},
    {"if_exists": "bogus"},
    {"version": "x"},
    {"version": -1},
    {"name": 5},
    {"checkpoint": "x"},
    {"checkpoint_id": 5},
    {"checkpoint_id": "not-a-uuid"},
    {"as_node": 5},
    {"before": "x"},
    {"supersteps": "x"},
    {"supersteps": [{"updates": "x"}]},
    {"multitask_strategy": "bogus"},
    {"stream_mode": "bogus"},
    {"after_seconds": -1},
    {"after_seconds": "soon"},
    {"durability": "forever"},
    {"input": "\u0000"},
    {"command": "resume"},
    {"namespace": 5},
]
# Path ids: a non-UUID, an unknown UUID, a very long one, unicode and an encoded NUL.
BAD_IDS = ["not-a-uuid", str(uuid.uuid4()), "a" * 3000, "é", "%00", "00000000-0000-0000-0000-00000000000g"]


DROPPED = -1  # the status recorded when the server closed the connection without answering


@dataclass
class Ids:
    """Real ids on the shared server that the routes' placeholders are filled with."""

    thread_id: str
    run_id: str
    assistant_id: str
    checkpoint_id: str
    cron_id: str

    def fill(self, template: str, **override: str) -> str:
        """The path with every placeholder filled, some of them overridden."""
        values = {
            "thread_id": self.thread_id,
            "run_id": self.run_id,
            "assistant_id": self.assistant_id,
            "checkpoint_id": self.checkpoint_id,
            "cron_id": self.cron_id,
            **override,
        }
        return template.format(**values)


@pytest.fixture
async def ids(client: LangGraphClient) -> Ids:
    """A finished run on a thread of its own, and an assistant of its own, for one route's corpus."""
    assistant = await client.assistants.create("echo", name="bad-input")
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "echo", input={"value": 1})
    await client.runs.join(thread["thread_id"], run["run_id"])
    state = await client.threads.get_state(thread["thread_id"])
    checkpoint_id = str(obj(state["checkpoint"])["checkpoint_id"])
    cron = await client.crons.create_for_thread(thread["thread_id"], "echo", schedule="0 0 1 1 *")
    return Ids(thread["thread_id"], run["run_id"], assistant["assistant_id"], checkpoint_id, str(obj(cron)["cron_id"]))


async def send(
    http: httpx.AsyncClient, method: str, path: str, streaming: bool, content: bytes | None
) -> tuple[int, bytes, str]:
    """Send one request; for a stream answering 200, only the headers are read."""
    # A fresh connection per request, so one bad answer cannot spoil the next request's connection.
    headers = {"connection": "close"}
    if content is not None:
        headers["content-type"] = "application/json"
    try:
        async with http.stream(method, path, content=content, headers=headers) as response:
            if streaming and response.status_code == 200:
                return response.status_code, b"", response.headers.get("content-type", "")
            body = await response.aread()
            return response.status_code, body, response.headers.get("content-type", "")
    except httpx.TransportError as exc:
        return DROPPED, repr(exc).encode(), ""


def verdict(status: int, body: bytes, content_type: str) -> str | None:
    """What is wrong with a response to bad input, or None if it is acceptable."""
    if status == DROPPED:
        return f"connection dropped without a response: {body[:200]!r}"
    if status >= 500:
        return f"{status}: {body[:300]!r}"
    if status >= 400:
        if "json" not in content_type:
            return f"{status} with content-type {content_type!r}: {body[:200]!r}"
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return f"{status} with a body that is not JSON: {body[:200]!r}"
        if not isinstance(parsed, dict) or not parsed.get("detail"):
            return f"{status} without a `detail`: {body[:200]!r}"
    return None


async def bodies() -> AsyncIterator[bytes | None]:
    """Every body of the corpus, raw and JSON-encoded, plus no body at all."""
    yield None
    for raw in RAW_BODIES:
        yield raw
    for value in OBJECT_BODIES:
        yield orjson.dumps(value)


# Bodies that hit a known graphyard bug on a route (each with its own strict-xfail test below). None now.
KNOWN_BUGS: set[tuple[str, str, bytes]] = set()


@pytest.mark.parametrize(("method", "template", "streaming"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_bad_input_corpus_never_gets_a_500(
    http: httpx.AsyncClient, ids: Ids, method: str, template: str, streaming: bool
) -> None:
    """Every bad body and bad path id on this route gets a 4xx with a JSON detail or a success, never a 500."""
    failures: list[str] = []
    placeholders = [
        name
        for name in ("thread_id", "run_id", "assistant_id", "checkpoint_id", "cron_id")
        if f"{{{name}}}" in template
    ]
    for name in placeholders:
        for bad in BAD_IDS:
            path = ids.fill(template, **{name: bad})
            problem = verdict(*await send(http, method, path, streaming, None))
            if problem:
                failures.append(f"{method} {path[:120]}: {problem}")
    if method in ("POST", "PATCH", "PUT"):
        async for content in bodies():
            if (method, template, content) in KNOWN_BUGS:
                continue
            path = ids.fill(template)
            problem = verdict(*await send(http, method, path, streaming, content))
            if problem:
                failures.append(f"{method} {path} body {(content or b'')[:80]!r}: {problem}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(("method", "path"), STORE_ROUTES, ids=[f"{m} {p}" for m, p in STORE_ROUTES])
async def test_bad_input_corpus_on_store_routes_never_gets_a_500(
    http: httpx.AsyncClient, method: str, path: str
) -> None:
    """Every bad body and bad query on a store route gets a JSON 4xx or a success, never a 500."""
    failures: list[str] = []
    queries = ["", "?namespace=a.b", "?key=k", "?namespace=a..b&key=k", "?namespace=%00&key=k", "?key="]
    for query in queries:
        status, body, content_type = await send(http, method, path + query, False, None)
        if status == DROPPED or status >= 500 or (status >= 400 and "json" not in content_type):
            failures.append(f"{method} {path}{query}: {status} {body[:200]!r}")
    if method in ("PUT", "POST", "DELETE"):
        async for content in bodies():
            status, body, content_type = await send(http, method, path, False, content)
            if status == DROPPED or status >= 500 or (status >= 400 and "json" not in content_type):
                failures.append(f"{method} {path} body {(content or b'')[:80]!r}: {status} {body[:200]!r}")
    assert not failures, "\n".join(failures)


async def test_unknown_path_and_wrong_method_answer_json(http: httpx.AsyncClient) -> None:
    """An unknown path is 404 and a wrong method 405, each with a JSON detail."""
    missing = await http.get("/no/such/route")
    assert missing.status_code == 404
    assert missing.json()["detail"]
    wrong = await http.put("/threads")
    assert wrong.status_code == 405
    assert wrong.json()["detail"]


async def test_non_uuid_path_ids_are_422_and_unknown_ones_404(http: httpx.AsyncClient) -> None:
    """A non-UUID thread or assistant id is 422; a well-formed id that does not exist is 404."""
    assert (await http.get("/threads/not-a-uuid")).status_code == 422
    assert "UUID" in (await http.get("/threads/not-a-uuid")).json()["detail"]
    assert (await http.get("/assistants/not-a-uuid")).status_code == 422
    assert (await http.get(f"/threads/{uuid.uuid4()}")).status_code == 404
    assert (await http.get(f"/assistants/{uuid.uuid4()}")).status_code == 404
    assert (await http.get(f"/threads/{uuid.uuid4()}/runs/{uuid.uuid4()}")).status_code == 404


async def test_invalid_json_and_arrays_are_422(http: httpx.AsyncClient) -> None:
    """Invalid JSON answers 422 "Invalid JSON in request body"; an array where an object belongs is 422."""
    response = await http.post("/threads", content=b"{oops", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"] == "Invalid JSON in request body"
    assert (await http.post("/threads", json=[1, 2])).status_code == 422
    assert (await http.post("/threads/search", json=[])).status_code == 422


# --- every RunsCreate field with a value of the wrong type or outside its enum ------------------------

BAD_RUN_FIELDS: list[tuple[str, Any]] = [
    ("assistant_id", 123),
    ("assistant_id", None),
    ("command", "resume"),
    ("command", ["resume"]),
    ("metadata", "x"),
    ("config", []),
    ("context", 5),
    ("checkpoint", "x"),
    ("checkpoint_id", 5),
    ("checkpoint_id", "not-a-uuid"),
    ("checkpoint_during", "yes"),
    ("interrupt_before", 5),
    ("interrupt_before", "s1"),
    ("interrupt_after", {"s1": True}),
    ("stream_mode", "bogus"),
    ("stream_mode", ["values", "bogus"]),
    ("stream_mode", 5),
    ("stream_subgraphs", "yes"),
    ("stream_resumable", "yes"),
    ("feedback_keys", "x"),
    ("webhook", 5),
    ("multitask_strategy", "bogus"),
    ("multitask_strategy", 1),
    ("if_not_exists", "bogus"),
    ("on_completion", "bogus"),
    ("on_disconnect", "bogus"),
    ("after_seconds", -1),
    ("after_seconds", "soon"),
    ("after_seconds", [1]),
    ("durability", "bogus"),
]


@pytest.mark.parametrize(("field", "value"), BAD_RUN_FIELDS, ids=[f"{f}={v!r}" for f, v in BAD_RUN_FIELDS])
async def test_bad_run_field_is_422_and_creates_nothing(
    http: httpx.AsyncClient, client: LangGraphClient, field: str, value: Any
) -> None:
    """A RunsCreate field with a wrong type or unknown enum value is a 422 naming it, and no run is created."""
    tid = (await client.threads.create())["thread_id"]
    payload: dict[str, Any] = {"assistant_id": "echo", "input": {}, field: value}
    for suffix in ("", "/wait", "/stream"):
        response = await http.post(f"/threads/{tid}/runs{suffix}", json=payload)
        assert response.status_code == 422, f"{suffix}: {response.status_code} {response.text}"
        assert response.json()["detail"]
    stateless = await http.post("/runs", json=payload)
    assert stateless.status_code == 422
    assert await client.runs.list(tid) == []
    assert (await client.threads.get(tid))["status"] == "idle"


@pytest.mark.parametrize("after", [1e308, 10**15])
async def test_absurd_after_seconds_is_not_a_500(
    http: httpx.AsyncClient, client: LangGraphClient, after: float
) -> None:
    """An after_seconds too large for a date is refused with a 4xx, or accepted as a far-future run."""
    tid = (await client.threads.create())["thread_id"]
    response = await http.post(
        f"/threads/{tid}/runs", json={"assistant_id": "echo", "input": {}, "after_seconds": after}
    )
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        await client.runs.cancel(tid, response.json()["run_id"])


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_assistant_with_non_object_configurable_is_422(http: httpx.AsyncClient, ids: Ids, method: str) -> None:
    """Creating or patching an assistant whose config.configurable is a string is a 422, not a 500."""
    path = "/assistants" if method == "POST" else f"/assistants/{ids.assistant_id}"
    body = {"graph_id": "echo", "config": {"configurable": "x"}}
    response = await http.request(method, path, json=body, headers={"connection": "close"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"]


@pytest.mark.parametrize("route", ["graph", "schemas", "subgraphs"])
async def test_assistant_with_null_config_fields_draws_and_runs(http: httpx.AsyncClient, route: str) -> None:
    """An assistant saved with `configurable: null` (the schema allows it) is drawn and run, not a 500."""
    config = {"configurable": None, "tags": None, "metadata": None, "recursion_limit": None}
    created = await http.post("/assistants", json={"graph_id": "nested", "config": config})
    assert created.status_code == 200, created.text
    assistant_id = created.json()["assistant_id"]
    drawn = await http.get(f"/assistants/{assistant_id}/{route}", headers={"connection": "close"})
    assert drawn.status_code == 200, drawn.text
    ran = await http.post("/runs/wait", json={"assistant_id": assistant_id, "input": {"value": 1}})
    assert ran.status_code == 200, ran.text


async def test_history_filter_with_nul_in_a_metadata_key_is_not_a_500(http: httpx.AsyncClient, ids: Ids) -> None:
    """A history metadata filter whose key holds a NUL answers 200 (no match) or a 4xx, never a 500."""
    response = await http.post(
        f"/threads/{ids.thread_id}/history", json={"metadata": {"k\u0000ey": 1}}, headers={"connection": "close"}
    )
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        assert response.json() == []


async def test_unicode_and_nul_in_metadata_round_trip(client: LangGraphClient) -> None:
    """Unicode metadata round-trips unchanged; a NUL comes back as itself or as U+FFFD, never a 500."""
    metadata = {"emoji": "😀🚀", "rtl": "שלום", "cjk": "漢字", "nul": "a\u0000b", "nested": {"é": ["ü", 1]}}
    thread = await client.threads.create(metadata=metadata)
    for seen in (obj(thread["metadata"]), obj((await client.threads.get(thread["thread_id"]))["metadata"])):
        assert {k: seen[k] for k in ("emoji", "rtl", "cjk", "nested")} == {
            k: metadata[k] for k in ("emoji", "rtl", "cjk", "nested")
        }
        assert seen["nul"] in ("a\u0000b", "a\ufffdb")
    found = await client.threads.search(metadata={"rtl": "שלום", "emoji": "😀🚀"})
    assert thread["thread_id"] in [t["thread_id"] for t in found]


# --- oversize bodies ----------------------------------------------------------------------------------


async def test_oversize_bodies_are_413(start_server: StartServer) -> None:
    """With HTTP_MAX_REQUEST_BODY_BYTES small, a larger body is 413 with a detail, sized or chunked."""
    server = await start_server(env={"HTTP_MAX_REQUEST_BODY_BYTES": "4096"})
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        small = await http.post("/threads", json={"metadata": {"pad": "x" * 100}})
        assert small.status_code == 200
        big = await http.post("/threads", json={"metadata": {"pad": "x" * 10_000}})
        assert big.status_code == 413
        assert big.json()["detail"]
        run = await http.post("/runs/wait", json={"assistant_id": "echo", "input": {"value": "x" * 10_000}})
        assert run.status_code == 413

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"metadata": {"pad": "'
            for _ in range(10):
                yield b"y" * 1000
            yield b'"}}'

        chunked = await http.post("/threads", content=chunks(), headers={"content-type": "application/json"})
        assert chunked.status_code == 413
        assert chunked.json()["detail"]
        assert (await http.get("/ok")).status_code == 200
        assert await http.post("/threads/count", json={}) is not None
        assert (await http.post("/threads/count", json={})).json() == 1
