"""The thread protocol through the official JS client (`@langchain/langgraph-sdk`): tests/js/protocol.mjs
runs values, interrupt + respond and messages against a real server, on SQLite and on PostgreSQL +
Redis. Skipped where node is not installed, except with CI=true, where that is a failure."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from langgraph_sdk.client import LangGraphClient

from tests.api.support import CHAT_REPLY, ROOT, Server
from tests.engine.test_distributed import Cluster, clients, cluster, sdk

__all__ = ["clients", "cluster"]  # fixtures used here, from the distributed suite

JS_DIR = ROOT / "tests" / "js"
NODE_SECONDS = 120.0


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is required in CI for the JS client test")
        pytest.skip("node is not installed")
    return node


async def _install() -> None:
    """`npm ci` once (the lock file pins the client), so the test runs offline afterwards."""
    if (JS_DIR / "node_modules" / "@langchain" / "langgraph-sdk").exists():
        return
    npm = shutil.which("npm")
    assert npm is not None, "npm comes with node"
    process = await asyncio.create_subprocess_exec(
        npm,
        "ci",
        "--no-audit",
        "--no-fund",
        cwd=JS_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), NODE_SECONDS)
    assert process.returncode == 0, output.decode(errors="replace")


async def _run_js(url: str) -> dict[str, Any]:
    node = _node()
    await _install()
    process = await asyncio.create_subprocess_exec(
        node,
        str(JS_DIR / "protocol.mjs"),
        cwd=JS_DIR,
        env={**os.environ, "GRAPHYARD_URL": url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), NODE_SECONDS)
    assert process.returncode == 0, err.decode(errors="replace")
    found: dict[str, Any] = orjson.loads(out.decode().strip().splitlines()[-1])
    return found


def _check(found: dict[str, Any]) -> None:
    assert found["values"]["output"] == {"delay": 0, "steps": ["s1", "s2", "s3"]}
    assert found["interrupt"]["payload"] == {"question": "js?"}
    assert found["interrupt"]["state"]["answer"] == "from js"
    assert found["messages"]["texts"] == [CHAT_REPLY]


@pytest.mark.timeout(180)
async def test_js_client_on_sqlite(server: Server, client: LangGraphClient) -> None:
    """The JS client's thread stream: output, an interrupt answered with input.respond, and a message's text."""
    _node()
    found = await _run_js(server.url)
    _check(found)
    thread = await client.threads.get(found["values"]["threadId"])
    assert thread["status"] == "idle"


@pytest.mark.timeout(240)
async def test_js_client_on_postgres_and_redis(cluster: Cluster, clients: list[LangGraphClient]) -> None:
    """The same JS program against `graphyard serve` with a separate worker on PostgreSQL and Redis."""
    _node()
    api = await cluster.api()
    cluster.worker()
    found = await _run_js(api.url)
    _check(found)
    thread = await sdk(api, clients).threads.get(found["values"]["threadId"])
    assert thread["status"] == "idle", cluster.logs()


def test_js_lock_pins_the_client() -> None:
    """package.json and its lock name the same exact @langchain/langgraph-sdk version."""
    wanted = orjson.loads((JS_DIR / "package.json").read_bytes())["dependencies"]["@langchain/langgraph-sdk"]
    lock = orjson.loads((JS_DIR / "package-lock.json").read_bytes())
    assert lock["packages"]["node_modules/@langchain/langgraph-sdk"]["version"] == wanted
    assert Path(JS_DIR / "protocol.mjs").exists()
