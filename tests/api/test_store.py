"""The long-term store API: items, search, namespaces, bad input, the graph's runtime.store, store auth."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import PermissionDeniedError

from tests.api.support import GRAPHS_DIR, StartServer, obj
from tests.api.test_cli import write


def ns(*rest: str) -> list[str]:
    """A namespace no other test uses, with `rest` appended."""
    return ["t", uuid.uuid4().hex[:12], *rest]


def keys(found: Any) -> list[str]:
    """The keys of a search answer, in the order the server gave them."""
    return [item["key"] for item in obj(found)["items"]]


async def test_put_then_get_round_trips_the_item(client: LangGraphClient) -> None:
    """A put item comes back with its namespace, key, value and ISO timestamps."""
    where = ns()
    await client.store.put_item(where, "k", {"color": "red", "n": 1, "nested": {"ok": True, "list": [1, 2]}})
    item = obj(await client.store.get_item(where, "k"))
    assert item["namespace"] == where
    assert item["key"] == "k"
    assert item["value"] == {"color": "red", "n": 1, "nested": {"ok": True, "list": [1, 2]}}
    assert item["created_at"].endswith("+00:00")
    assert item["updated_at"] >= item["created_at"]


async def test_put_answers_204_with_no_body(http: httpx.AsyncClient) -> None:
    """PUT /store/items answers 204 and an empty body."""
    res = await http.put("/store/items", json={"namespace": ns(), "key": "k", "value": {"a": 1}})
    assert res.status_code == 204
    assert res.content == b""


async def test_put_overwrites_the_value(client: LangGraphClient) -> None:
    """A second put on the same key replaces the value; the namespace still holds one item."""
    where = ns()
    await client.store.put_item(where, "k", {"v": 1, "old": True})
    await client.store.put_item(where, "k", {"v": 2})
    assert obj(await client.store.get_item(where, "k"))["value"] == {"v": 2}
    assert keys(await client.store.search_items(where)) == ["k"]


async def test_missing_item_is_200_null(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    """Getting an item that does not exist answers 200 with a JSON null (the SDK returns None)."""
    where = ns()
    assert await client.store.get_item(where, "missing") is None
    res = await http.get("/store/items", params={"namespace": ".".join(where), "key": "missing"})
    assert res.status_code == 200
    assert res.json() is None


async def test_get_without_key_is_400(http: httpx.AsyncClient) -> None:
    """GET /store/items without a key answers 400 {"error": "Key is required"}, as the reference does."""
    res = await http.get("/store/items", params={"namespace": "a.b"})
    assert res.status_code == 400
    assert res.json() == {"error": "Key is required"}


async def test_delete_removes_the_item_and_is_idempotent(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    """A deleted item reads as null; deleting it again still answers 204."""
    where = ns()
    await client.store.put_item(where, "k", {"v": 1})
    await client.store.put_item(where, "other", {"v": 2})
    await client.store.delete_item(where, "k")
    assert await client.store.get_item(where, "k") is None
    assert keys(await client.store.search_items(where)) == ["other"]
    again = await http.request("DELETE", "/store/items", json={"namespace": where, "key": "k"})
    assert again.status_code == 204
    assert again.content == b""


async def test_search_by_prefix_reaches_nested_namespaces_only(client: LangGraphClient) -> None:
    """A prefix search finds items at any depth below the prefix and nothing outside it."""
    root = ns()
    await client.store.put_item(root, "a", {"n": 1})
    await client.store.put_item([*root, "sub", "deeper"], "b", {"n": 2})
    await client.store.put_item([*root[:-1], root[-1] + "x"], "c", {"n": 3})
    found = obj(await client.store.search_items(root))
    assert sorted((tuple(i["namespace"]), i["key"]) for i in found["items"]) == [
        (tuple(root), "a"),
        ((*root, "sub", "deeper"), "b"),
    ]
    assert all(i["score"] is None for i in found["items"])


async def test_search_filters_on_value_keys(client: LangGraphClient) -> None:
    """`filter` keeps items whose value has each given key equal to the given value."""
    where = ns()
    for i, (color, size) in enumerate([("red", 1), ("blue", 1), ("red", 2), ("red", 1)]):
        await client.store.put_item(where, f"k{i}", {"color": color, "size": size})
    assert sorted(keys(await client.store.search_items(where, filter={"color": "red"}))) == ["k0", "k2", "k3"]
    both = await client.store.search_items(where, filter={"color": "red", "size": 1})
    assert sorted(keys(both)) == ["k0", "k3"]
    assert keys(await client.store.search_items(where, filter={"color": "green"})) == []


async def test_search_pages_with_limit_and_offset(client: LangGraphClient) -> None:
    """limit/offset page through the items in a stable order, without repeats or gaps."""
    where = ns()
    for i in range(5):
        await client.store.put_item(where, f"k{i}", {"i": i})
    pages = [keys(await client.store.search_items(where, limit=2, offset=offset)) for offset in (0, 2, 4)]
    assert [len(p) for p in pages] == [2, 2, 1]
    assert sorted(k for p in pages for k in p) == [f"k{i}" for i in range(5)]


async def test_list_namespaces_with_prefix_suffix_and_max_depth(client: LangGraphClient) -> None:
    """Namespaces list under a prefix, end with a suffix, and cut to max_depth without duplicates."""
    root = ns()
    for path in (["a"], ["a", "deep"], ["b"], ["b", "deep"]):
        await client.store.put_item([*root, *path], "k", {"v": 1})
    listed = obj(await client.store.list_namespaces(prefix=root))
    assert sorted(tuple(n) for n in listed["namespaces"]) == [
        (*root, "a"),
        (*root, "a", "deep"),
        (*root, "b"),
        (*root, "b", "deep"),
    ]
    shallow = obj(await client.store.list_namespaces(prefix=root, max_depth=len(root) + 1))
    assert sorted(tuple(n) for n in shallow["namespaces"]) == [(*root, "a"), (*root, "b")]
    suffixed = obj(await client.store.list_namespaces(prefix=root, suffix=["deep"]))
    assert sorted(tuple(n) for n in suffixed["namespaces"]) == [(*root, "a", "deep"), (*root, "b", "deep")]
    paged = obj(await client.store.list_namespaces(prefix=root, limit=3, offset=1))
    assert len(paged["namespaces"]) == 3


@pytest.mark.parametrize("label", ["a.b", "", "."])
async def test_bad_namespace_label_is_422_with_a_bare_string(http: httpx.AsyncClient, label: str) -> None:
    """A label that is empty or has a '.' answers 422 whose body is a bare JSON string naming it."""
    res = await http.put("/store/items", json={"namespace": ["ok", label], "key": "k", "value": {"a": 1}})
    assert res.status_code == 422
    assert res.json() == f"Namespace label '{label}' must be a non-empty string without periods"


async def test_bad_labels_are_refused_on_every_store_route(http: httpx.AsyncClient) -> None:
    """get, delete, search and list_namespaces refuse a bad label the same way as put."""
    answers = [
        await http.get("/store/items", params={"namespace": "a..b", "key": "k"}),
        await http.request("DELETE", "/store/items", json={"namespace": ["a.b"], "key": "k"}),
        await http.post("/store/items/search", json={"namespace_prefix": ["a", ""]}),
        await http.post("/store/namespaces", json={"prefix": ["a.b"]}),
        await http.post("/store/namespaces", json={"suffix": [""]}),
    ]
    assert [r.status_code for r in answers] == [422] * 5
    assert all(isinstance(r.json(), str) for r in answers)


async def test_empty_namespace_is_400(http: httpx.AsyncClient) -> None:
    """Putting into the empty namespace answers 400 "Namespace cannot be empty."."""
    res = await http.put("/store/items", json={"namespace": [], "key": "k", "value": {"a": 1}})
    assert res.status_code == 400
    assert res.json() == {"detail": "Namespace cannot be empty."}


@pytest.mark.parametrize("value", ["plain", 1, [1, 2], None])
async def test_non_object_value_is_422(http: httpx.AsyncClient, value: Any) -> None:
    """An item's value must be a JSON object."""
    res = await http.put("/store/items", json={"namespace": ns(), "key": "k", "value": value})
    assert res.status_code == 422
    assert "detail" in res.json()


@pytest.mark.parametrize("body", [{"value": {"a": 1}}, {"key": "k"}, {"key": 1, "value": {}}])
async def test_put_without_a_key_or_value_is_422(http: httpx.AsyncClient, body: dict[str, Any]) -> None:
    """A put needs a string key and a value."""
    res = await http.put("/store/items", json={"namespace": ns(), **body})
    assert res.status_code == 422


async def test_unicode_keys_values_and_labels_round_trip(client: LangGraphClient) -> None:
    """Non-ASCII namespace labels, keys and values come back unchanged."""
    where = ns("наме", "名前")
    value = {"emoji": "🦜🔗", "text": "naïve café", "ключ": ["日本語", {"ß": "ẞ"}]}
    await client.store.put_item(where, "clé/🔑 key", value)
    assert obj(await client.store.get_item(where, "clé/🔑 key"))["value"] == value
    assert keys(await client.store.search_items(where, filter={"text": "naïve café"})) == ["clé/🔑 key"]
    assert (await client.store.list_namespaces(prefix=where[:2]))["namespaces"] == [where]


async def test_nul_in_a_value_comes_back_as_replacement_character(client: LangGraphClient) -> None:
    """A NUL inside a string value is stored as U+FFFD, the same on every backend."""
    where = ns()
    await client.store.put_item(where, "k", {"text": "a\x00b"})
    assert obj(await client.store.get_item(where, "k"))["value"] == {"text": "a\ufffdb"}


async def test_graph_writes_to_runtime_store_are_visible_through_the_api(client: LangGraphClient) -> None:
    """An item a graph puts with runtime.store is the same item the API reads, even after its thread is gone."""
    where = ns()
    thread = await client.threads.create()
    given: dict[str, Any] = {"namespace": where, "key": "g", "value": {"from": "graph"}}
    result = obj(await client.runs.wait(thread["thread_id"], "remember", input=given))
    assert result["found"] == {"from": "graph"}
    await client.threads.delete(thread["thread_id"])
    assert obj(await client.store.get_item(where, "g"))["value"] == {"from": "graph"}
    assert keys(await client.store.search_items(where)) == ["g"]


async def test_api_writes_are_visible_to_the_graph(client: LangGraphClient) -> None:
    """An item put through the API is what the graph's runtime.store reads."""
    where = ns()
    await client.store.put_item(where, "a", {"from": "api"})
    given: dict[str, Any] = {"namespace": where, "key": "a"}
    result = obj(await client.runs.wait(None, "remember", input=given))
    assert result["found"] == {"from": "api"}


# --- store auth: handlers see the namespace, may rewrite it, may narrow search ---------------------

AUTH_PY = """
from langgraph_sdk import Auth

auth = Auth()


@auth.authenticate
async def authenticate(authorization: str | None) -> str:
    if not authorization:
        raise Auth.exceptions.HTTPException(status_code=401, detail="no token")
    return authorization.removeprefix("Bearer ")


@auth.on.store
async def scoped(ctx: Auth.types.AuthContext, value: dict) -> dict | None:
    namespace = value["namespace"]
    assert isinstance(namespace, tuple), f"namespace arrived as {type(namespace).__name__}"
    if namespace[:1] == ("forbidden",):
        raise Auth.exceptions.HTTPException(status_code=403, detail="not there")
    if namespace[:1] == ("bad",):
        value["namespace"] = ("bad.label",)
        return None
    value["namespace"] = (ctx.user.identity, *namespace)
    if ctx.action == "search":
        return {"owner": ctx.user.identity}
    return None
"""


@pytest.fixture
async def scoped_server_url(start_server: StartServer, tmp_path: Path) -> str:
    """A server whose store handler prefixes namespaces with the user and filters searches by `owner`."""
    project = tmp_path / "project"
    project.mkdir()
    write(project / "auth.py", AUTH_PY)
    config = write(
        project / "langgraph.json",
        {"graphs": {"remember": str(GRAPHS_DIR / "graphs.py") + ":remember"}, "auth": {"path": "./auth.py:auth"}},
    )
    return (await start_server(config=config)).url


@pytest.fixture
async def users(scoped_server_url: str) -> AsyncIterator[tuple[LangGraphClient, LangGraphClient]]:
    """Two SDK clients, alice and bob, on the scoped server."""
    alice = get_client(url=scoped_server_url, api_key=None, headers={"Authorization": "Bearer alice"})
    bob = get_client(url=scoped_server_url, api_key=None, headers={"Authorization": "Bearer bob"})
    try:
        yield alice, bob
    finally:
        await alice.http.client.aclose()
        await bob.http.client.aclose()


async def test_handler_rewritten_namespace_scopes_items_per_user(
    users: tuple[LangGraphClient, LangGraphClient],
) -> None:
    """The namespace a store handler rewrites is the one used: each user's "notes" are their own."""
    alice, bob = users
    await alice.store.put_item(["notes"], "k", {"owner": "alice", "v": 1})
    await bob.store.put_item(["notes"], "k", {"owner": "bob", "v": 2})
    assert obj(await alice.store.get_item(["notes"], "k"))["value"]["v"] == 1
    item = obj(await bob.store.get_item(["notes"], "k"))
    assert item["value"]["v"] == 2
    assert item["namespace"] == ["bob", "notes"]
    assert (await alice.store.list_namespaces())["namespaces"] == [["alice", "notes"]]
    await bob.store.delete_item(["notes"], "k")
    assert obj(await alice.store.get_item(["notes"], "k"))["value"]["v"] == 1


async def test_handler_filter_narrows_search(users: tuple[LangGraphClient, LangGraphClient]) -> None:
    """A filter returned for store.search is ANDed with the caller's: other owners' items stay hidden."""
    alice, _ = users
    await alice.store.put_item(["shared"], "mine", {"owner": "alice", "kind": "x"})
    await alice.store.put_item(["shared"], "theirs", {"owner": "bob", "kind": "x"})
    await alice.store.put_item(["shared"], "mine-y", {"owner": "alice", "kind": "y"})
    assert sorted(keys(await alice.store.search_items(["shared"]))) == ["mine", "mine-y"]
    assert keys(await alice.store.search_items(["shared"], filter={"kind": "x"})) == ["mine"]
    assert keys(await alice.store.search_items(["shared"], filter={"owner": "bob"})) == []
    assert obj(await alice.store.get_item(["shared"], "theirs"))["value"]["owner"] == "bob"


async def test_handler_refusal_and_bad_rewrite(users: tuple[LangGraphClient, LangGraphClient]) -> None:
    """A handler's 403 refuses the action; a namespace it rewrites badly is re-validated into a 422."""
    alice, _ = users
    with pytest.raises(PermissionDeniedError):
        await alice.store.put_item(["forbidden"], "k", {"v": 1})
    with pytest.raises(PermissionDeniedError):
        await alice.store.search_items(["forbidden"])
    res = await alice.http.client.put("/store/items", json={"namespace": ["bad"], "key": "k", "value": {}})
    assert res.status_code == 422
    assert res.json() == "Namespace label 'bad.label' must be a non-empty string without periods"
