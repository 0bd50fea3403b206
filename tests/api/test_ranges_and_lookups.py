"""Numbers reaching storage are range-checked (422 naming the field); lookups of missing things are 4xx."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import Checkpoint

from tests.api.support import obj

# Offsets and limits the databases cannot hold or that are not integers: 2^63 was a 500 on every search
# (`datatype mismatch` on SQLite, `bigint out of range` on PostgreSQL).
BAD_OFFSETS: list[Any] = [2**63, 2**64, 10**30, -1, 1.5, 1.0, 1e3, "1", True, None, [1]]
BAD_LIMITS: list[Any] = [2**63, 0, -1, 1001, 2.5, 10.0, "10", False]
# POST routes whose body takes limit and offset: (path template, extra body).
PAGED_BODIES: list[tuple[str, dict[str, Any]]] = [
    ("/assistants/search", {}),
    ("/assistants/{assistant_id}/versions", {}),
    ("/threads/search", {}),
    ("/runs/crons/search", {}),
    ("/store/items/search", {}),
    ("/store/namespaces", {}),
]


@pytest.fixture
async def assistant_id(client: LangGraphClient) -> str:
    """A user-made assistant on the shared server."""
    return str((await client.assistants.create("echo", name="ranges"))["assistant_id"])


def _ids(values: list[Any]) -> list[str]:
    return [repr(v)[:24] for v in values]


@pytest.mark.parametrize(("template", "extra"), PAGED_BODIES, ids=[p for p, _ in PAGED_BODIES])
@pytest.mark.parametrize("value", BAD_OFFSETS, ids=_ids(BAD_OFFSETS))
async def test_bad_offset_in_a_body_is_422_naming_it(
    http: httpx.AsyncClient, assistant_id: str, template: str, extra: dict[str, Any], value: Any
) -> None:
    """An offset past 2^63 - 1, negative or not an integer is a 422 whose detail names `offset`."""
    response = await http.post(template.format(assistant_id=assistant_id), json={**extra, "offset": value})
    assert response.status_code == 422, response.text
    assert "offset" in response.json()["detail"]


@pytest.mark.parametrize(("template", "extra"), PAGED_BODIES, ids=[p for p, _ in PAGED_BODIES])
@pytest.mark.parametrize("value", BAD_LIMITS, ids=_ids(BAD_LIMITS))
async def test_bad_limit_in_a_body_is_422_naming_it(
    http: httpx.AsyncClient, assistant_id: str, template: str, extra: dict[str, Any], value: Any
) -> None:
    """A limit outside 1..1000 or not an integer is a 422 whose detail names `limit`."""
    response = await http.post(template.format(assistant_id=assistant_id), json={**extra, "limit": value})
    assert response.status_code == 422, response.text
    assert "limit" in response.json()["detail"]


@pytest.mark.parametrize(("template", "extra"), PAGED_BODIES, ids=[p for p, _ in PAGED_BODIES])
async def test_largest_offset_is_an_empty_page(
    http: httpx.AsyncClient, assistant_id: str, template: str, extra: dict[str, Any]
) -> None:
    """The largest offset the databases hold (2^63 - 1) is valid and answers an empty page."""
    response = await http.post(template.format(assistant_id=assistant_id), json={**extra, "offset": 2**63 - 1})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body in ([], {"items": []}, {"namespaces": []})


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("offset", str(2**63)),
        ("offset", "-1"),
        ("offset", "1.5"),
        ("offset", "ten"),
        ("limit", "0"),
        ("limit", "1001"),
        ("limit", str(2**64)),
        ("limit", "2.0"),
    ],
)
async def test_bad_paging_query_on_runs_list_and_history_is_422(
    http: httpx.AsyncClient, client: LangGraphClient, name: str, raw: str
) -> None:
    """runs.list and GET history answer a bad limit or offset query parameter with a 422 naming it."""
    thread_id = (await client.threads.create())["thread_id"]
    response = await http.get(f"/threads/{thread_id}/runs", params={name: raw})
    assert response.status_code == 422, response.text
    assert name in response.json()["detail"]
    if name == "limit":
        history = await http.get(f"/threads/{thread_id}/history", params={name: raw})
        assert history.status_code == 422, history.text
        assert name in history.json()["detail"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/store/namespaces", {"max_depth": 2**63}, "max_depth"),
        ("/store/namespaces", {"max_depth": 0}, "max_depth"),
        ("/store/namespaces", {"max_depth": 1.5}, "max_depth"),
        ("/threads", {"ttl": -1}, "ttl"),
        ("/threads", {"ttl": 1e300}, "ttl"),
        ("/threads", {"ttl": {"strategy": "delete", "ttl": -5}}, "ttl"),
        ("/threads/{thread_id}/history", {"limit": 2**63}, "limit"),
        ("/assistants/{assistant_id}/latest", {"version": 2**31}, "version"),
        ("/assistants/{assistant_id}/latest", {"version": 0}, "version"),
        ("/assistants/{assistant_id}/latest", {"version": 1.5}, "version"),
        ("/assistants/{assistant_id}/latest", {"version": 10**20}, "version"),
    ],
)
async def test_numbers_reaching_storage_are_range_checked(
    http: httpx.AsyncClient, client: LangGraphClient, assistant_id: str, path: str, body: dict[str, Any], field: str
) -> None:
    """max_depth, ttl, history limit and assistant versions outside their range are 422 naming the field."""
    thread_id = (await client.threads.create())["thread_id"]
    response = await http.post(path.format(thread_id=thread_id, assistant_id=assistant_id), json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]


async def test_store_put_with_negative_or_huge_ttl_is_422(http: httpx.AsyncClient) -> None:
    """A store item's ttl (minutes) below 0 or past a century is a 422 naming `ttl`; a sane one is accepted."""
    item = {"namespace": ["ranges"], "key": "k", "value": {"a": 1}}
    for ttl in (-1, 1e300):
        response = await http.put("/store/items", json={**item, "ttl": ttl})
        assert response.status_code == 422, response.text
        assert "ttl" in response.json()["detail"]
    assert (await http.put("/store/items", json={**item, "ttl": 60})).status_code == 204


async def test_unknown_version_is_404(http: httpx.AsyncClient, assistant_id: str) -> None:
    """Setting an assistant's latest version to one it does not have is a 404 naming the version."""
    response = await http.post(f"/assistants/{assistant_id}/latest", json={"version": 2**31 - 1})
    assert response.status_code == 404
    assert str(2**31 - 1) in response.json()["detail"]


# --- lookups of things that do not exist -------------------------------------------------------------


async def _ran_nested(client: LangGraphClient) -> str:
    thread_id = str((await client.threads.create())["thread_id"])
    await client.runs.wait(thread_id, "nested", input={})
    return thread_id


async def test_state_update_on_a_missing_subgraph_is_400(http: httpx.AsyncClient, client: LangGraphClient) -> None:
    """POST /threads/{id}/state whose checkpoint_ns names no subgraph is a 400 with a detail (was a 500)."""
    thread_id = await _ran_nested(client)
    before = await client.threads.get_state(thread_id)
    response = await http.post(
        f"/threads/{thread_id}/state", json={"values": {}, "checkpoint": {"checkpoint_ns": "nope"}}
    )
    assert response.status_code == 400, response.text
    assert "nope" in response.json()["detail"]
    after = await client.threads.get_state(thread_id)
    assert obj(after["checkpoint"])["checkpoint_id"] == obj(before["checkpoint"])["checkpoint_id"]


async def test_state_update_on_a_real_subgraph_namespace_still_works(client: LangGraphClient) -> None:
    """A state update addressed to the graph's real subgraph namespace is still accepted."""
    thread_id = await _ran_nested(client)
    checkpoint = Checkpoint(thread_id=thread_id, checkpoint_ns="child", checkpoint_id=None, checkpoint_map=None)
    result = await client.threads.update_state(thread_id, {"child_steps": ["x"]}, checkpoint=checkpoint)
    assert obj(result["checkpoint"])["checkpoint_ns"] == "child"


@pytest.mark.parametrize("how", ["path", "body"])
async def test_state_at_an_unknown_checkpoint_is_404(
    http: httpx.AsyncClient, client: LangGraphClient, how: str
) -> None:
    """The state at a checkpoint id the thread never had is a 404 naming the checkpoint, not an empty 200."""
    thread_id = await _ran_nested(client)
    missing = str(uuid.uuid4())
    if how == "path":
        response = await http.get(f"/threads/{thread_id}/state/{missing}")
    else:
        response = await http.post(
            f"/threads/{thread_id}/state/checkpoint", json={"checkpoint": {"checkpoint_id": missing}}
        )
    assert response.status_code == 404, response.text
    assert missing in response.json()["detail"]


async def test_state_at_a_known_checkpoint_still_answers(client: LangGraphClient) -> None:
    """The state at a checkpoint from the thread's history answers that checkpoint."""
    thread_id = await _ran_nested(client)
    history = await client.threads.get_history(thread_id, limit=3)
    older = str(obj(history[-1]["checkpoint"])["checkpoint_id"])
    state = await client.threads.get_state(thread_id, checkpoint_id=older)
    assert obj(state["checkpoint"])["checkpoint_id"] == older


async def test_state_update_from_an_unknown_checkpoint_is_404(http: httpx.AsyncClient, client: LangGraphClient) -> None:
    """Forking state from a checkpoint id the thread never had is a 404, and writes no checkpoint."""
    thread_id = await _ran_nested(client)
    before = await client.threads.get_state(thread_id)
    missing = str(uuid.uuid4())
    for body in ({"values": {}, "checkpoint_id": missing}, {"values": {}, "checkpoint": {"checkpoint_id": missing}}):
        response = await http.post(f"/threads/{thread_id}/state", json=body)
        assert response.status_code == 404, response.text
        assert missing in response.json()["detail"]
    after = await client.threads.get_state(thread_id)
    assert obj(after["checkpoint"])["checkpoint_id"] == obj(before["checkpoint"])["checkpoint_id"]


@pytest.mark.parametrize("field", ["checkpoint_id", "checkpoint"])
async def test_run_from_an_unknown_checkpoint_is_404_and_creates_nothing(
    http: httpx.AsyncClient, client: LangGraphClient, field: str
) -> None:
    """A run asked to start from a checkpoint id the thread never had is a 404 naming it, and no run is made."""
    thread_id = await _ran_nested(client)
    missing = str(uuid.uuid4())
    value: Any = missing if field == "checkpoint_id" else {"checkpoint_id": missing}
    for suffix in ("", "/wait", "/stream"):
        response = await http.post(
            f"/threads/{thread_id}/runs{suffix}", json={"assistant_id": "nested", "input": None, field: value}
        )
        assert response.status_code == 404, f"{suffix}: {response.text}"
        assert missing in response.json()["detail"]
    assert len(await client.runs.list(thread_id)) == 1


async def test_run_from_a_known_checkpoint_still_starts(client: LangGraphClient) -> None:
    """A run from a checkpoint in the thread's history starts there, as time travel needs."""
    thread_id = await _ran_nested(client)
    history = await client.threads.get_history(thread_id, limit=10)
    first = str(obj(history[-1]["checkpoint"])["checkpoint_id"])
    result = await client.runs.wait(thread_id, "nested", input=None, checkpoint_id=first)
    assert obj(result)["steps"] == ["emit"]
