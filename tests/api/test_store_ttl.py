"""`store.ttl` in langgraph.json: items put with a TTL (per item or the default) expire and are swept."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.api.backends import Backend, sdk
from tests.api.support import GRAPHS_DIR, eventually

# 0.01 minutes = 0.6 s: the sweeper passes often enough for a test to see it work.
SWEEP_MINUTES = 0.01
SHORT_TTL_MINUTES = 0.02


async def put_with_ttl(url: str, where: list[str], key: str, minutes: float) -> None:
    """PUT an item with a fractional-minute TTL (the SDK types `ttl` as whole minutes; the API takes any number)."""
    async with httpx.AsyncClient(base_url=url) as http:
        body = {"namespace": where, "key": key, "value": {"v": 1}, "ttl": minutes}
        response = await http.put("/store/items", json=body)
        assert response.status_code == 204, response.text


def project(tmp_path: Path, ttl: dict[str, Any]) -> Path:
    """A langgraph.json serving the test graphs with `store.ttl` set to `ttl`."""
    path = tmp_path / "langgraph.json"
    config = {"graphs": {"echo": f"{GRAPHS_DIR / 'graphs.py'}:echo"}, "store": {"ttl": ttl}}
    path.write_text(json.dumps(config))
    return path


async def test_item_with_a_ttl_is_swept_and_one_without_stays(fresh_backend: Backend, tmp_path: Path) -> None:
    """An item put with `ttl` disappears after it, while an item put without one (no default) stays."""
    server = await fresh_backend.start(project(tmp_path, {"sweep_interval_minutes": SWEEP_MINUTES}))
    where = ["ttl", uuid.uuid4().hex[:12]]
    async with sdk(server) as client:
        await put_with_ttl(server.url, where, "short", SHORT_TTL_MINUTES)
        await client.store.put_item(where, "forever", {"v": 2})
        assert await client.store.get_item(where, "short") is not None

        async def short_item() -> Any:
            return await client.store.get_item(where, "short", refresh_ttl=False)

        await eventually(short_item, lambda item: item is None, timeout=30, what="the short item to be swept")
        kept = await client.store.get_item(where, "forever")
        assert kept is not None
        assert kept["value"] == {"v": 2}


async def test_default_ttl_applies_to_items_put_without_one(fresh_backend: Backend, tmp_path: Path) -> None:
    """With `default_ttl`, an item put without `ttl` expires too, and search no longer finds it."""
    ttl = {"default_ttl": SHORT_TTL_MINUTES, "sweep_interval_minutes": SWEEP_MINUTES, "refresh_on_read": False}
    server = await fresh_backend.start(project(tmp_path, ttl))
    where = ["ttl", uuid.uuid4().hex[:12]]
    async with sdk(server) as client:
        await client.store.put_item(where, "k", {"v": 1})
        found = await client.store.search_items(where)
        assert [item["key"] for item in found["items"]] == ["k"]

        async def search() -> Any:
            return await client.store.search_items(where)

        await eventually(search, lambda found: found["items"] == [], timeout=30, what="the item to be swept")


async def test_without_store_ttl_a_per_item_ttl_never_expires(fresh_backend: Backend, tmp_path: Path) -> None:
    """Without `store.ttl` nothing sweeps, so an item put with a `ttl` is still there after it has passed."""
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps({"graphs": {"echo": f"{GRAPHS_DIR / 'graphs.py'}:echo"}}))
    server = await fresh_backend.start(path)
    where = ["ttl", uuid.uuid4().hex[:12]]
    async with sdk(server) as client:
        await put_with_ttl(server.url, where, "k", SHORT_TTL_MINUTES)

        # Put a second item after the first's TTL has passed, as a clock that needs no sleep.
        async def later() -> Any:
            await client.store.put_item(where, "clock", {"v": 0})
            return await client.store.get_item(where, "clock")

        started = await client.store.get_item(where, "k")
        assert started is not None
        await eventually(
            later,
            lambda clock: str(clock["updated_at"]) > _plus_minutes(str(started["updated_at"]), SHORT_TTL_MINUTES * 3),
            timeout=30,
            what="the TTL to pass",
        )
        assert await client.store.get_item(where, "k") is not None


def _plus_minutes(stamp: str, minutes: float) -> str:
    """An ISO timestamp `minutes` after `stamp`, in the server's fixed-width format."""
    moment = datetime.fromisoformat(stamp) + timedelta(minutes=minutes)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
