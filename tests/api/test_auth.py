"""Custom auth from langgraph.json: authentication, owner isolation, filter forms, handler payloads.

The project is tests/graphs/auth/: tokens token-alice, token-bob, token-admin; see its auth.py for
which filter form guards which thread action.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.support import GRAPHS_DIR, Server, collect_sse, obj, running, system_assistant_id
from tests.api.test_cli import one_error_line, run_dev, write

AUTH_DIR = GRAPHS_DIR / "auth"
AUTH_CONFIG = AUTH_DIR / "langgraph.json"


# One xdist worker runs this module, so its module-scoped server starts once (not once per worker).
pytestmark = pytest.mark.xdist_group("auth")


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One graphyard serving the auth test project, shared by this module's tests."""
    with running(AUTH_CONFIG, tmp_path_factory.mktemp("auth-server")) as server:
        yield server


def _client(server: Server, token: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60)


@pytest.fixture
async def anon(auth_server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """A client without credentials."""
    async with _client(auth_server, None) as c:
        yield c


@pytest.fixture
async def alice(auth_server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """Alice: read and write."""
    async with _client(auth_server, "token-alice") as c:
        yield c


@pytest.fixture
async def bob(auth_server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """Bob: read only."""
    async with _client(auth_server, "token-bob") as c:
        yield c


@pytest.fixture
async def admin(auth_server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """Admin: may delete assistants."""
    async with _client(auth_server, "token-admin") as c:
        yield c


async def _thread(http: httpx.AsyncClient, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    res = await http.post("/threads", json={"metadata": metadata or {}})
    assert res.status_code == 200, res.text
    return obj(res.json())


def _masked(res: httpx.Response, *ids: str) -> tuple[int, str]:
    """Status and body with ids replaced, to compare a hidden resource's answer with a missing one's."""
    text = res.text
    for i in ids:
        text = text.replace(i, "<id>")
    return res.status_code, text


# --- authentication -------------------------------------------------------------------------------


async def test_missing_token_is_401_but_health_and_info_are_open(anon: httpx.AsyncClient) -> None:
    """Without a token every API route, even an unknown one, is 401 with the handler's detail; /ok and /info answer."""
    for method, path in (("POST", "/threads"), ("POST", "/assistants/search"), ("PUT", "/store/items")):
        res = await anon.request(method, path, json={})
        assert res.status_code == 401, path
        assert res.json() == {"detail": "Missing bearer token"}
    assert (await anon.get("/ok")).status_code == 200
    assert (await anon.get("/info")).status_code == 200


async def test_bad_token_is_401_with_the_handlers_headers(anon: httpx.AsyncClient) -> None:
    """A wrong token or scheme is refused with 401, the handler's detail and its WWW-Authenticate header."""
    for header in ("Bearer nope", "Basic token-alice"):
        res = await anon.post("/threads", json={}, headers={"Authorization": header})
        assert res.status_code == 401
        assert res.json() == {"detail": "Invalid bearer token"}
        assert res.headers["www-authenticate"] == "Bearer"


# --- threads ------------------------------------------------------------------------------------


async def test_owner_is_stamped_and_a_spoofed_owner_overwritten(alice: httpx.AsyncClient) -> None:
    """The create handler's metadata change is stored: the caller becomes `owner`, whatever the request said."""
    thread = await _thread(alice, {"owner": "bob", "k": 1})
    assert thread["metadata"] == {"owner": "alice", "k": 1}
    stored = (await alice.get(f"/threads/{thread['thread_id']}")).json()
    assert stored["metadata"]["owner"] == "alice"


async def test_hidden_thread_answers_exactly_like_a_missing_one(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    """Bob's get/patch/delete/state/history/thread-stream on Alice's thread are 404s identical to a missing thread's."""
    tid = (await _thread(alice))["thread_id"]
    missing = str(uuid.uuid4())
    probes: list[tuple[str, str, Any]] = [
        ("GET", "/threads/{}", None),
        ("PATCH", "/threads/{}", {"metadata": {"hacked": True}}),
        ("GET", "/threads/{}/state", None),
        ("POST", "/threads/{}/state", {"values": {"value": 1}}),
        ("POST", "/threads/{}/history", {}),
        ("GET", "/threads/{}/stream", None),
        ("POST", "/threads/{}/copy", None),
        ("DELETE", "/threads/{}", None),
    ]
    for method, template, body in probes:
        hidden = await bob.request(method, template.format(tid), json=body)
        absent = await bob.request(method, template.format(missing), json=body)
        assert hidden.status_code == 404, (method, template, hidden.text)
        assert _masked(hidden, tid) == _masked(absent, missing), (method, template)
    intact = (await alice.get(f"/threads/{tid}")).json()
    assert "hacked" not in intact["metadata"]


async def test_search_and_count_see_only_own_threads(alice: httpx.AsyncClient, bob: httpx.AsyncClient) -> None:
    """Search and count apply the search handler's plain filter: Bob sees none of Alice's threads."""
    tag = uuid.uuid4().hex
    mine = await _thread(alice, {"tag": tag})
    assert (await bob.post("/threads/search", json={"metadata": {"tag": tag}})).json() == []
    assert (await bob.post("/threads/count", json={"metadata": {"tag": tag}})).json() == 0
    found = (await alice.post("/threads/search", json={"metadata": {"tag": tag}})).json()
    assert [t["thread_id"] for t in found] == [mine["thread_id"]]
    assert (await alice.post("/threads/count", json={"metadata": {"tag": tag}})).json() == 1


async def test_or_and_contains_filter_lets_listed_readers_read_only(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    """A thread listing Bob in `readers` is readable by him ($or/$contains) but not writable ($eq on owner)."""
    shared = await _thread(alice, {"readers": ["carol", "bob"]})
    tid = shared["thread_id"]
    assert (await bob.get(f"/threads/{tid}")).status_code == 200
    assert (await bob.get(f"/threads/{tid}/state")).status_code == 200
    assert (await bob.patch(f"/threads/{tid}", json={"metadata": {"x": 1}})).status_code == 404
    assert (await bob.delete(f"/threads/{tid}")).status_code == 404
    assert (await alice.delete(f"/threads/{tid}")).status_code == 204


async def test_create_with_a_hidden_existing_id_is_409(alice: httpx.AsyncClient, bob: httpx.AsyncClient) -> None:
    """Creating a thread whose id another user already owns is a conflict, even with if_exists=do_nothing."""
    tid = (await _thread(alice))["thread_id"]
    for if_exists in ("raise", "do_nothing"):
        res = await bob.post("/threads", json={"thread_id": tid, "if_exists": if_exists})
        assert res.status_code == 409, if_exists
        assert "owner" not in res.text


# --- runs -----------------------------------------------------------------------------------------


async def test_runs_on_a_hidden_thread_answer_404(alice: httpx.AsyncClient, bob: httpx.AsyncClient) -> None:
    """Bob can neither start, list, get, join, join-stream, cancel nor delete runs on Alice's thread."""
    tid = (await _thread(alice))["thread_id"]
    run = obj((await alice.post(f"/threads/{tid}/runs", json={"assistant_id": "slow", "input": {"delay": 0.2}})).json())
    rid = run["run_id"]
    for suffix in ("runs", "runs/wait", "runs/stream"):
        res = await bob.post(f"/threads/{tid}/{suffix}", json={"assistant_id": "echo", "input": {}})
        assert res.status_code == 404, suffix
    assert (await bob.get(f"/threads/{tid}/runs")).status_code == 404
    assert (await bob.get(f"/threads/{tid}/runs/{rid}")).status_code == 404
    assert (await bob.get(f"/threads/{tid}/runs/{rid}/join")).status_code == 404
    assert (await bob.post(f"/threads/{tid}/runs/{rid}/cancel")).status_code == 404
    assert (await bob.delete(f"/threads/{tid}/runs/{rid}")).status_code == 404
    res, events = await collect_sse(bob, "GET", f"/threads/{tid}/runs/{rid}/stream")
    assert res.status_code == 200
    assert [(e.event, e.data["message"]) for e in events] == [("error", "404: Run not found")]
    final = (await alice.get(f"/threads/{tid}/runs/{rid}/join")).json()
    assert final["steps"] == ["s1", "s2", "s3"]
    assert [r["run_id"] for r in (await alice.get(f"/threads/{tid}/runs")).json()] == [rid]


async def test_bulk_cancel_only_reaches_own_runs(alice: httpx.AsyncClient, bob: httpx.AsyncClient) -> None:
    """POST /runs/cancel by status, or with Alice's thread and run ids, leaves Alice's pending run alone for Bob."""
    tid = (await _thread(alice))["thread_id"]
    run = obj(
        (
            await alice.post(f"/threads/{tid}/runs", json={"assistant_id": "echo", "input": {}, "after_seconds": 60})
        ).json()
    )
    assert (await bob.post("/runs/cancel", json={"status": "pending"})).status_code in (204, 404)
    res = await bob.post("/runs/cancel", json={"thread_id": tid, "run_ids": [run["run_id"]]})
    assert res.status_code == 404
    assert res.json() == {"detail": "No runs found to cancel."}
    assert (await alice.get(f"/threads/{tid}/runs/{run['run_id']}")).json()["status"] == "pending"
    assert (await alice.post(f"/threads/{tid}/runs/{run['run_id']}/cancel")).status_code == 202


async def test_create_run_handler_sees_the_runs_create_payload(alice: httpx.AsyncClient) -> None:
    """threads.create_run gets UUID ids, the assigned run id, pending status, defaults, kwargs; its metadata is kept."""
    tid = (await _thread(alice))["thread_id"]
    body = {"assistant_id": "echo", "input": {"value": 7}, "metadata": {"rm": 1}}
    run = obj((await alice.post(f"/threads/{tid}/runs", json=body)).json())
    saw = run["metadata"]["saw"]
    assert saw["types"] == {"assistant_id": "UUID", "thread_id": "UUID", "run_id": "UUID"}
    assert saw["assistant_id"] == system_assistant_id("echo")
    assert saw["thread_id"] == tid
    assert saw["run_id"] == run["run_id"]
    assert (saw["status"], saw["multitask_strategy"], saw["if_not_exists"]) == ("pending", "enqueue", "reject")
    assert (saw["after_seconds"], saw["prevent_insert_if_inflight"]) == (0, False)
    assert (saw["resource"], saw["action"]) == ("threads", "create_run")
    assert saw["input"] == {"value": 7}
    assert saw["kwargs_keys"] == sorted(
        [
            "input",
            "command",
            "config",
            "context",
            "stream_mode",
            "interrupt_before",
            "interrupt_after",
            "webhook",
            "feedback_keys",
            "temporary",
            "subgraphs",
            "resumable",
            "checkpoint_during",
            "durability",
        ]
    )
    assert run["metadata"]["owner"] == "alice"
    assert run["metadata"]["rm"] == 1
    stored = (await alice.get(f"/threads/{tid}/runs/{run['run_id']}")).json()
    assert stored["metadata"]["saw"] == saw
    await alice.get(f"/threads/{tid}/runs/{run['run_id']}/join")


async def test_stateless_run_payload_has_no_thread(alice: httpx.AsyncClient) -> None:
    """A stateless run's RunsCreate carries thread_id None and runs as the caller."""
    res = await alice.post("/runs/wait", json={"assistant_id": "echo", "input": {"value": "x"}})
    assert res.status_code == 200
    assert res.json()["echoed"] == "x"


async def test_create_run_handler_can_refuse_with_403(alice: httpx.AsyncClient) -> None:
    """An HTTPException(403) from threads.create_run refuses create and stream, and no run is created."""
    tid = (await _thread(alice))["thread_id"]
    body = {"assistant_id": "echo", "input": {}, "metadata": {"forbidden": True}}
    for suffix in ("runs", "runs/stream", "runs/wait"):
        res = await alice.post(f"/threads/{tid}/{suffix}", json=body)
        assert res.status_code == 403, suffix
        assert res.json() == {"detail": "Run forbidden by policy"}
    assert (await alice.get(f"/threads/{tid}/runs")).json() == []


async def test_graph_sees_the_authenticated_user(alice: httpx.AsyncClient) -> None:
    """The run's configurable carries langgraph_auth_user, its id and permissions, and user_id."""
    tid = (await _thread(alice))["thread_id"]
    res = await alice.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "whoami", "input": {}})
    seen = res.json()["seen"]
    assert seen == {
        "langgraph_auth_user": {
            "identity": "alice",
            "is_authenticated": True,
            "display_name": "alice",
            "permissions": ["read", "write"],
        },
        "langgraph_auth_user_id": "alice",
        "langgraph_auth_permissions": ["read", "write"],
        "user_id": "alice",
    }


async def test_if_not_exists_create_makes_a_thread_the_caller_owns(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    """A run with if_not_exists=create makes a thread stamped with the caller as owner, hidden from others."""
    tid = str(uuid.uuid4())
    res = await alice.post(
        f"/threads/{tid}/runs/wait", json={"assistant_id": "echo", "input": {"value": 1}, "if_not_exists": "create"}
    )
    assert res.status_code == 200
    assert (await alice.get(f"/threads/{tid}")).json()["metadata"]["owner"] == "alice"
    assert (await bob.get(f"/threads/{tid}")).status_code == 404
    again = await bob.post(
        f"/threads/{tid}/runs", json={"assistant_id": "echo", "input": {}, "if_not_exists": "create"}
    )
    assert again.status_code == 404


# --- assistants -----------------------------------------------------------------------------------


async def test_handler_returning_false_is_403_forbidden(alice: httpx.AsyncClient) -> None:
    """An authorization handler answering False refuses the request with 403 {"detail": "Forbidden"}."""
    res = await alice.post("/assistants", json={"graph_id": "echo", "name": "forbidden"})
    assert res.status_code == 403
    assert res.json() == {"detail": "Forbidden"}


async def test_failed_assertion_is_403_with_its_message(alice: httpx.AsyncClient, admin: httpx.AsyncClient) -> None:
    """An AssertionError in a handler is a 403 carrying the assertion's message; actions without a handler stay open."""
    assistant = obj((await alice.post("/assistants", json={"graph_id": "echo", "name": "mine"})).json())
    aid = assistant["assistant_id"]
    res = await alice.delete(f"/assistants/{aid}")
    assert res.status_code == 403
    assert res.json() == {"detail": "Only admins may delete assistants"}
    assert (await alice.get(f"/assistants/{aid}")).status_code == 200
    assert (await admin.delete(f"/assistants/{aid}")).status_code == 204


# --- startup --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth_path", "expected"),
    [
        ("./missing_auth.py:auth", "missing_auth.py"),
        ("./auth.py:nope", "'nope'"),
        ("./auth.py:value", "not a langgraph_sdk.Auth"),
        ("./auth.py:empty", "no @auth.authenticate"),
        ("./auth.py", '"path" must look like'),
    ],
)
def test_bad_auth_path_stops_startup_with_one_line(tmp_path: Path, auth_path: str, expected: str) -> None:
    """An auth path to a missing file or attribute, a non-Auth object or an Auth without authenticate stops startup."""
    write(tmp_path / "auth.py", "from langgraph_sdk import Auth\nvalue = 1\nempty = Auth()\n")
    graphs = str(GRAPHS_DIR / "graphs.py") + ":echo"
    config = write(tmp_path / "langgraph.json", {"graphs": {"echo": graphs}, "auth": {"path": auth_path}})
    line = one_error_line(run_dev(config, tmp_path))
    assert str(config) in line
    assert expected in line
