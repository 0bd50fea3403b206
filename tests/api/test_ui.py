"""Generative UI (langgraph.json `ui`): the components are built with the reference's bundler at startup
and served as the JS client's LoadExternalComponent fetches them; a graph's push_ui_message reaches the
stream. The project is tests/graphs/ui (ui.tsx + ui.css, graph.py, auth.py).

Needs Node.js (skipped without it, except with CI=true, where that is a failure). The first build
downloads the pinned bundler into npm's cache (~/.npm, which CI may cache); later builds are offline."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client

from graphyard.config import load_project_config
from graphyard.ui import build_ui
from tests.api.support import (
    GRAPHS_DIR,
    Server,
    StartServer,
    eventually,
    obj,
    running,
    wait_ready,
)
from tests.api.test_cli import one_error_line, run_dev
from tests.api.test_dev import STARTUP, start_dev

PROJECT = GRAPHS_DIR / "ui"
CONFIG = PROJECT / "langgraph.json"
TOKEN = {"Authorization": "Bearer ui-token"}
# The first build may download the bundler (the `built` fixture does it once, before any server starts).
# One xdist worker runs this module: its tests build into (and reuse) tests/graphs/ui/.graphyard, one
# folder that two builds at once would both write.
pytestmark = [pytest.mark.timeout(240), pytest.mark.xdist_group("ui")]


def _node() -> str:
    node = shutil.which("node")
    if node is None or shutil.which("npx") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node and npx are required in CI for the generative UI tests")
        pytest.skip("node is not installed")
    return node


@pytest.fixture(scope="module")
def built() -> None:
    """Build tests/graphs/ui once (into its .graphyard/ui), so every server below starts on a cached build."""
    _node()
    build_ui(load_project_config(CONFIG))


@pytest.fixture(scope="module")
def ui_server(built: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server of tests/graphs/ui for the tests that only read from it (it reuses the fixture's build)."""
    with running(CONFIG, tmp_path_factory.mktemp("ui-server")) as server:
        yield server


@pytest.fixture
async def http(ui_server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """A raw client on the shared server."""
    assert "generative UI bundles unchanged; reusing them" in ui_server.log()
    async with httpx.AsyncClient(base_url=ui_server.url, timeout=30) as client:
        yield client


class _Tags(HTMLParser):
    """The tags of an HTML snippet with their (entity-decoded) attributes, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(snippet: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(snippet)
    return parser.tags


async def test_component_snippet_loads_the_built_bundle(http: httpx.AsyncClient, tmp_path: Path) -> None:
    """POST /ui/{graph} answers HTML linking the bundle's CSS then JS by absolute URL, with the client's
    placeholder once; the files come back as CSS and JS; running the JS and the script's onload the way
    the page does mounts the named component in the shadow root."""
    response = await http.post("/ui/agent", json={"name": "weather"}, headers={"Accept": "text/html"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    snippet = response.text
    assert snippet.count("{{shadowRootId}}") == 1
    # The client replaces the placeholder with its element's id before inserting the snippet.
    tags = _tags(snippet.replace("{{shadowRootId}}", "child-shadow-r1"))
    assert [tag for tag, _ in tags] == ["link", "script"]
    link, script = tags[0][1], tags[1][1]
    assert link["rel"] == "stylesheet"
    assert link["href"] == f"{str(http.base_url).rstrip('/')}/ui/agent/entrypoint.css"
    assert script["src"] == f"{str(http.base_url).rstrip('/')}/ui/agent/entrypoint.js"

    css = await http.get(str(link["href"]))
    assert css.status_code == 200
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    assert "color: rgb(12, 34, 56)" in css.text
    js = await http.get(str(script["src"]))
    assert js.status_code == 200
    assert js.headers["content-type"] == "text/javascript; charset=utf-8"
    assert js.text.startswith("var __LGUI_agent")

    bundle = tmp_path / "entrypoint.js"
    bundle.write_bytes(js.content)
    onload = script["onload"]
    assert onload is not None
    rendered = await asyncio.to_thread(
        subprocess.run,
        [_node(), str(PROJECT / "render_check.mjs"), str(bundle), onload, "child-shadow-r1", '{"city": "Oslo"}'],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(rendered.stdout) == {
        "shadowRootId": "child-shadow-r1",
        "target": "div",
        "mountedInShadowRoot": True,
        "element": "div",
        "className": "weather-card",
        "text": "Weather in Oslo",
    }


async def test_unknown_graphs_files_and_bodies(http: httpx.AsyncClient) -> None:
    """A graph without UI and a file the bundle does not have are 404 (paths outside it included); a body
    without a component name is 422; a name that looks like the placeholder cannot add a second one."""
    missing = await http.post("/ui/nope", json={"name": "weather"})
    assert missing.status_code == 404
    assert "nope" in missing.json()["detail"]
    assert (await http.get("/ui/nope/entrypoint.js")).status_code == 404
    for path in ("/ui/agent/schemas.json", "/ui/agent/ui.tsx", "/ui/agent/..%2F..%2Fschemas.json", "/ui/agent/%2e%2e"):
        answer = await http.get(path)
        assert answer.status_code == 404, path
        assert "detail" in answer.json()
    raw = await http.send(http.build_request("GET", "/ui/agent/../../langgraph.json"))
    assert raw.status_code == 404
    assert (await http.post("/ui/agent", json={})).status_code == 422
    assert (await http.post("/ui/agent", json={"name": 3})).status_code == 422
    tricky = await http.post("/ui/agent", json={"name": "{{shadowRootId}}"})
    assert tricky.status_code == 200
    assert tricky.text.count("{{shadowRootId}}") == 1


async def test_component_by_assistant_id_uses_its_graphs_bundle(http: httpx.AsyncClient) -> None:
    """POST /ui/{assistant UUID} answers the snippet of the assistant's graph (what the JS client sends when
    it was given an assistant id); an unknown assistant is 404."""
    assistant = (await http.post("/assistants", json={"graph_id": "agent", "name": "ui by id"})).json()
    by_graph = await http.post("/ui/agent", json={"name": "weather"})
    by_id = await http.post(f"/ui/{assistant['assistant_id']}", json={"name": "weather"})
    assert by_id.status_code == 200, by_id.text
    assert by_id.text == by_graph.text
    missing = await http.post(f"/ui/{uuid.uuid4()}", json={"name": "weather"})
    assert missing.status_code == 404, missing.text


async def test_push_ui_message_streams_in_custom_and_values(http: httpx.AsyncClient) -> None:
    """The ui message a node pushes arrives as a `custom` event and lands in the state's `ui` list."""
    client = get_client(url=str(http.base_url).rstrip("/"), api_key=None)
    try:
        thread = await client.threads.create()
        events = [
            (part.event, part.data)
            async for part in client.runs.stream(
                thread["thread_id"], "agent", input={"city": "Lima"}, stream_mode=["custom", "values"]
            )
        ]
        state = await client.threads.get_state(thread["thread_id"])
    finally:
        await client.http.client.aclose()
    custom = [data for event, data in events if event == "custom"]
    assert len(custom) == 1
    message = obj(custom[0])
    assert {k: message[k] for k in ("type", "id", "name", "props")} == {
        "type": "ui",
        "id": "weather-1",
        "name": "weather",
        "props": {"city": "Lima"},
    }
    assert obj(message["metadata"])["merge"] is False
    values = [obj(data) for event, data in events if event == "values"]
    assert values[-1]["ui"] == [message]
    assert obj(state["values"])["ui"] == [message]


async def test_post_needs_auth_files_do_not(built: None, start_server: StartServer) -> None:
    """Under the project's auth POST /ui/{graph} is authenticated like the API; the bundle's files are
    not (a browser loads them from plain tags), and /openapi.json says so."""
    server = await start_server(config=PROJECT / "langgraph_auth.json")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        assert (await http.post("/ui/agent", json={"name": "weather"})).status_code == 401
        allowed = await http.post("/ui/agent", json={"name": "weather"}, headers=TOKEN)
        assert allowed.status_code == 200
        assert (await http.get("/ui/agent/entrypoint.js")).status_code == 200
        assert (await http.get("/ui/agent/missing.js")).status_code == 404
        doc = (await http.get("/openapi.json")).json()
    post = doc["paths"]["/ui/{graph_id}"]["post"]
    files = doc["paths"]["/ui/{graph_id}/{file}"]["get"]
    assert "security" not in post
    assert "401" in post["responses"]
    assert files["security"] == []
    assert "text/html" in post["responses"]["200"]["content"]
    assert set(files["responses"]["200"]["content"]) == {"text/javascript", "text/css"}


async def test_disable_ui_drops_the_routes(built: None, start_server: StartServer) -> None:
    """`http.disable_ui` leaves both routes out: 404, and not in /openapi.json."""
    server = await start_server(config=PROJECT / "langgraph_no_ui_routes.json")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        assert (await http.post("/ui/agent", json={"name": "weather"})).status_code == 404
        assert (await http.get("/ui/agent/entrypoint.js")).status_code == 404
        paths = (await http.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith("/ui")]


def _copy(tmp_path: Path) -> Path:
    """tests/graphs/ui without its build cache, in tmp_path; returns its langgraph.json."""
    copy = tmp_path / "project"
    shutil.copytree(PROJECT, copy, ignore=shutil.ignore_patterns(".graphyard", "__pycache__"))
    return copy / "langgraph.json"


async def test_startup_without_node_fails_with_one_line(tmp_path: Path) -> None:
    """With no node on PATH, dev (reloading or not) stops with one line saying Node.js is needed."""
    config = _copy(tmp_path)
    env = {**os.environ, "PATH": str(tmp_path / "empty-bin")}

    async def dev(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "graphyard", "dev", "--config", str(config), "--port", "0", *args]
        command += ["--database", str(tmp_path / f"graphyard{len(args)}.sqlite")]
        return await asyncio.to_thread(
            subprocess.run, command, env=env, capture_output=True, text=True, timeout=60, check=False
        )

    for result in await asyncio.gather(dev(), dev("--no-reload")):
        line = one_error_line(result)
        assert result.returncode == 2
        assert "Node.js" in line
        assert "not on PATH" in line
    assert not (config.parent / ".graphyard" / "ui").exists()


def test_failed_build_stops_startup_naming_the_error(built: None, tmp_path: Path) -> None:
    """A component that does not compile stops startup with one error line quoting esbuild, the full
    output kept in a log file."""
    config = _copy(tmp_path)
    (config.parent / "ui.tsx").write_text("export default { weather: () => <div> };\n")
    result = run_dev(config, tmp_path)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("graphyard:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert 'building "ui" failed' in errors[0]
    assert "ERROR" in errors[0]
    log = re.search(r"full output in (\S+)\)", errors[0])
    assert log is not None
    assert "ui.tsx" in Path(log.group(1)).read_text()


async def test_dev_reloads_and_rebuilds_when_a_component_source_changes(built: None, tmp_path: Path) -> None:
    """`graphyard dev` (reloading) builds at startup; editing the stylesheet restarts the server, which
    rebuilds and serves the new bundle (an unchanged project reuses its build: see the first test)."""
    config = _copy(tmp_path)
    server = start_dev(config, tmp_path / "dev.log")
    try:
        await wait_ready(server, timeout=STARTUP)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:

            async def css() -> str:
                try:
                    return (await http.get("/ui/agent/entrypoint.css")).text
                except httpx.TransportError:
                    return ""  # restarting

            assert "rgb(12, 34, 56)" in await css()
            assert "building the generative UI" in server.log()
            (config.parent / "ui.css").write_text(".weather-card { color: rgb(200, 100, 50); }\n")
            await eventually(
                css, lambda text: "rgb(200, 100, 50)" in text, timeout=STARTUP, interval=0.2, what="the rebuilt CSS"
            )
        # One reload: the build's own output (.graphyard/ui) never triggers another.
        assert server.log(tail=10_000).count("graphyard: reloading after changes") == 1, server.log()
        assert "reloading after changes to ui.css" in server.log()
        cache = config.parent / ".graphyard" / "ui"
        assert len([d for d in cache.iterdir() if d.is_dir() and not d.name.startswith(".")]) == 2
    finally:
        server.stop()
