"""Projects made for `langgraph dev` start unchanged: the shape of LangChain's own templates.

The project written here has what `new-langgraph-project` and `react-agent` have: `"env": ".env"`
with only a `.env.example` beside it, build-only keys, a src/ package on "dependencies", a graph
compiled with its own name, a dataclass state with defaults and a context schema.
"""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.api.support import StartServer, obj, system_assistant_id
from tests.api.test_cli import one_error_line, run_dev, write

GRAPH_PY = """
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langgraph.graph import StateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict


class Context(TypedDict):
    greeting: str


@dataclass
class State:
    note: str = "unset"


async def respond(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    return {"note": f"{(runtime.context or {}).get('greeting', 'hello')}: {state.note}"}


graph = StateGraph(State, context_schema=Context).add_node(respond).add_edge("__start__", "respond").compile(
    name="Template Graph"
)
"""


def template_project(root: Path, **extra: object) -> Path:
    """A project laid out like LangChain's templates; returns its langgraph.json."""
    package = root / "src" / "tmpl_agent"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "graph.py").write_text(textwrap.dedent(GRAPH_PY))
    (root / ".env.example").write_text("SOME_API_KEY=...\n")
    config = {
        "$schema": "https://langgra.ph/schema.json",
        "dependencies": ["."],
        "graphs": {"agent": "./src/tmpl_agent/graph.py:graph"},
        "env": ".env",
        "image_distro": "wolfi",
        **extra,
    }
    return write(root / "langgraph.json", config)


@pytest.fixture
async def template(tmp_path: Path, start_server: StartServer) -> AsyncIterator[LangGraphClient]:
    """A server on the template-shaped project, and the official client for it."""
    server = await start_server(config=template_project(tmp_path / "project", mystery_key=True))
    log = server.log()
    assert 'env file ".env" not found' in log
    assert "unknown keys ignored: mystery_key" in log
    sdk = get_client(url=server.url, api_key=None, timeout=60)
    try:
        yield sdk
    finally:
        await sdk.http.client.aclose()


async def test_template_project_starts_without_its_env_file_and_runs(template: LangGraphClient) -> None:
    """A missing .env and unknown keys are warnings; the graph runs with its context."""
    result = await template.runs.wait(None, "agent", input={"note": "hi"}, context={"greeting": "hey"})
    assert result == {"note": "hey: hi"}


async def test_system_assistant_is_named_after_the_compiled_graph(template: LangGraphClient) -> None:
    """The reference names a graph's system assistant after `compile(name=...)`, not the graph id."""
    assistant = await template.assistants.get(system_assistant_id("agent"))
    assert (assistant["name"], assistant["graph_id"]) == ("Template Graph", "agent")


async def test_state_schema_has_the_references_title_and_defaults(template: LangGraphClient) -> None:
    """state_schema is titled `<graph name>State` and every field defaults to null, as the reference's."""
    schemas = await template.assistants.get_schemas(system_assistant_id("agent"))
    state = obj(schemas["state_schema"])
    assert state["title"] == "Template GraphState"
    assert state["properties"]["note"]["default"] is None
    assert "required" not in state
    assert obj(schemas["input_schema"])["properties"]["note"]["default"] == "unset"


def test_graph_path_without_variable_is_an_error(tmp_path: Path) -> None:
    """`./graph.py` without `:graph` stops startup with one line saying how to name the graph."""
    config = template_project(tmp_path)
    (tmp_path / ".env").write_text("")
    write(config, config.read_text().replace("graph.py:graph", "graph.py"))
    line = one_error_line(run_dev(config, tmp_path))
    assert 'add ":variable", e.g. "./src/tmpl_agent/graph.py:graph"' in line
