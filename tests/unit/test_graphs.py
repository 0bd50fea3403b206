"""GraphRegistry: loading the graphs of a real project on disk, binding, schemas, drawing, subgraphs."""

from __future__ import annotations

import json
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.pregel import Pregel
from langgraph.store.memory import InMemoryStore

from graphyard.config import ConfigError, ProjectConfig, apply_project, load_project_config
from graphyard.graphs import GraphAccess, GraphRegistry

READ = GraphAccess("assistants.read")

GRAPHS_PY = """
import operator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel
from typing_extensions import TypedDict

EVENTS: list[str] = []


class State(TypedDict, total=False):
    value: int
    trail: Annotated[list[str], operator.add]


class Context(TypedDict, total=False):
    greeting: str
    level: int


@dataclass
class DataContext:
    region: str = "eu"


class ModelContext(BaseModel):
    model: str = "fake"


class ChildState(TypedDict, total=False):
    child_log: Annotated[list[str], operator.add]


def work(state: State) -> dict[str, list[str]]:
    return {"trail": ["work"]}


def child_work(state: ChildState) -> dict[str, list[str]]:
    return {"child_log": ["child_work"]}


def builder(context_schema=None):
    graph = StateGraph(State, context_schema=context_schema).add_node("work", work)
    return graph.add_edge(START, "work").add_edge("work", END)


uncompiled = builder()
compiled = builder(Context).compile()
with_dataclass_context = builder(DataContext).compile()
with_model_context = builder(ModelContext).compile()
grandchild = StateGraph(ChildState).add_node("leaf", child_work).add_edge(START, "leaf").add_edge("leaf", END).compile()
child = (
    StateGraph(ChildState)
    .add_node("child_work", child_work)
    .add_node("inner", grandchild)
    .add_edge(START, "child_work")
    .add_edge("child_work", "inner")
    .add_edge("inner", END)
    .compile()
)
parent = StateGraph(ChildState).add_node("child", child).add_edge(START, "child").add_edge("child", END).compile()


def factory(config: RunnableConfig):
    return builder(Context).compile(name="made-" + config["configurable"].get("flavour", "plain"))


@asynccontextmanager
async def managed():
    EVENTS.append("enter")
    yield builder()
    EVENTS.append("exit")


async def async_factory():
    return managed()


def two_params(a, b):
    return compiled


def three_params(a, b, c):
    return compiled


def with_runtime(runtime):
    SEEN.append(runtime)
    return compiled


SEEN: list = []
not_a_graph = 42
"""


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo sys.path changes and forget every module a test imported."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]


def make_project(tmp_path: Path, graphs: dict[str, Any], files: dict[str, str] | None = None) -> ProjectConfig:
    """Write graphs.py, the extra files and a langgraph.json naming ``graphs``; return the loaded config."""
    (tmp_path / "graphs.py").write_text(GRAPHS_PY)
    for name, text in (files or {}).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps({"graphs": graphs, "dependencies": ["."]}))
    config = load_project_config(path)
    apply_project(config)
    return config


def project_module(tmp_path: Path) -> ModuleType:
    """The module the registry imported for tmp_path/graphs.py."""
    target = str((tmp_path / "graphs.py").resolve())
    return next(m for m in list(sys.modules.values()) if getattr(m, "__file__", None) == target)


def load_error(config: ProjectConfig) -> str:
    """Load expecting a one-line ConfigError that names the file; return its text."""
    with pytest.raises(ConfigError) as info:
        GraphRegistry.load(config)
    message = str(info.value)
    assert "\n" not in message
    assert str(config.path) in message
    return message


async def test_compiled_and_uncompiled_graphs_load(tmp_path: Path) -> None:
    """A compiled graph and a StateGraph both load, keep config order and answer their description."""
    config = make_project(
        tmp_path, {"b": "./graphs.py:compiled", "a": {"path": "./graphs.py:uncompiled", "description": "A graph"}}
    )
    registry = GraphRegistry.load(config)
    assert registry.graph_ids() == ["b", "a"]
    assert "a" in registry and "zzz" not in registry
    assert (registry.description("a"), registry.description("b")) == ("A graph", None)
    async with registry.graph("a", access=READ) as graph:
        assert isinstance(graph, Pregel)
        assert await graph.ainvoke({"value": 1}) == {"value": 1, "trail": ["work"]}


async def test_graph_is_bound_to_saver_and_store_without_mutation(tmp_path: Path) -> None:
    """The yielded graph uses the given saver and store and the id as name; the module's graph is untouched."""
    registry = GraphRegistry.load(make_project(tmp_path, {"g": "./graphs.py:compiled"}))
    saver, store = InMemorySaver(), InMemoryStore()
    async with registry.graph("g", access=READ, checkpointer=saver, store=store) as graph:
        assert (graph.checkpointer, graph.store, graph.name) == (saver, store, "g")
        await graph.ainvoke({"value": 2}, {"configurable": {"thread_id": "t1"}})
    assert saver.get_tuple({"configurable": {"thread_id": "t1"}}) is not None
    shared = project_module(tmp_path).compiled
    assert (shared.checkpointer, shared.store, shared.name) == (None, None, "LangGraph")


async def test_factory_receives_the_config(tmp_path: Path) -> None:
    """A one-parameter factory is called per use with the run's config, configurable always present."""
    registry = GraphRegistry.load(make_project(tmp_path, {"f": "./graphs.py:factory"}))
    async with registry.graph("f", {"configurable": {"flavour": "spicy"}}, access=READ) as graph:
        assert graph.name == "made-spicy"
    async with registry.graph("f", access=READ) as graph:
        assert graph.name == "made-plain"


async def test_async_factory_returning_a_context_manager(tmp_path: Path) -> None:
    """An async factory's context manager is entered for the use and exited after it."""
    registry = GraphRegistry.load(make_project(tmp_path, {"m": "./graphs.py:async_factory"}))
    events = project_module(tmp_path).EVENTS
    async with registry.graph("m", access=READ) as graph:
        assert events == ["enter"]
        assert graph.name == "m"
        assert await graph.ainvoke({"value": 3}) == {"value": 3, "trail": ["work"]}
    assert events == ["enter", "exit"]


async def test_module_path_source(tmp_path: Path) -> None:
    """A "package.module:attr" source is imported from a dependency directory."""
    package = f"gy_pkg_{uuid.uuid4().hex[:8]}"
    files = {
        f"{package}/__init__.py": "",
        f"{package}/agent.py": "from graphs import compiled as graph\n",
    }
    registry = GraphRegistry.load(make_project(tmp_path, {"p": f"{package}.agent:graph"}, files))
    async with registry.graph("p", access=READ) as graph:
        assert await graph.ainvoke({"value": 4}) == {"value": 4, "trail": ["work"]}


@pytest.mark.parametrize(
    ("source", "files", "expected"),
    [
        ("./missing.py:graph", {}, "not found; fix the path"),
        ("./broken.py:graph", {"broken.py": "raise RuntimeError('boom at import')\n"}, "RuntimeError: boom at import"),
        ("./graphs.py:nope", {}, "has no attribute 'nope'"),
        ("./graphs.py:not_a_graph", {}, "int is not a graph"),
        ("./graphs.py:two_params", {}, "unusable factory"),
        ("./graphs.py", {}, 'add ":variable", e.g. "./graphs.py:graph"'),
        ("./graphs.py:three_params", {}, "it requires a, b, c"),
        ("gy_no_such_pkg.mod:graph", {}, "module 'gy_no_such_pkg.mod' not found"),
        ("./ui.tsx:graph", {"ui.tsx": ""}, "JavaScript graphs are not supported"),
    ],
)
def test_load_errors_name_graph_source_and_fix(
    tmp_path: Path, source: str, files: dict[str, str], expected: str
) -> None:
    """Every way a graph can fail to load is one ConfigError line naming the graph, its source and a fix."""
    message = load_error(make_project(tmp_path, {"bad": source}, files))
    assert f'graph "bad" ({source})' in message
    assert expected in message


async def test_schemas_with_context_schema(tmp_path: Path) -> None:
    """Schemas give input, output and state from the state class, and context mirrored into config."""
    registry = GraphRegistry.load(
        make_project(tmp_path, {"ctx": "./graphs.py:compiled", "plain": "./graphs.py:uncompiled"})
    )
    schemas = await registry.schemas("ctx")
    assert schemas["graph_id"] == "ctx"
    for key in ("input_schema", "output_schema", "state_schema"):
        assert set(schemas[key]["properties"]) == {"value", "trail"}, key
    assert schemas["state_schema"]["title"] == "ctx_state"  # the reference: graph.get_name("State")
    assert set(schemas["context_schema"]["properties"]) == {"greeting", "level"}
    assert schemas["config_schema"] == schemas["context_schema"]
    plain = await registry.schemas("plain")
    assert (plain["context_schema"], plain["config_schema"]) == (None, None)


@pytest.mark.parametrize(
    ("attr", "expected"),
    [
        ("compiled", frozenset({"greeting", "level"})),
        ("with_dataclass_context", frozenset({"region"})),
        ("with_model_context", frozenset({"model"})),
        ("uncompiled", None),
    ],
)
def test_context_keys(tmp_path: Path, attr: str, expected: frozenset[str] | None) -> None:
    """Context keys come from a TypedDict, dataclass or pydantic context schema, None without one."""
    registry = GraphRegistry.load(make_project(tmp_path, {"g": f"./graphs.py:{attr}"}))
    assert registry.context_keys("g") == expected


async def test_factory_context_keys_are_known_after_first_build(tmp_path: Path) -> None:
    """A factory's context schema is unknown until it has built a graph once."""
    registry = GraphRegistry.load(make_project(tmp_path, {"f": "./graphs.py:factory"}))
    assert registry.context_keys("f") is None
    async with registry.graph("f", access=READ):
        pass
    assert registry.context_keys("f") == frozenset({"greeting", "level"})


async def test_drawable_with_and_without_xray(tmp_path: Path) -> None:
    """Drawing shows the subgraph as one node, or its inner nodes as "child:child_work" under xray."""
    registry = GraphRegistry.load(make_project(tmp_path, {"parent": "./graphs.py:parent"}))
    flat = await registry.drawable("parent", False)
    assert [n["id"] for n in flat["nodes"]] == ["__start__", "child", "__end__"]
    assert {(e["source"], e["target"]) for e in flat["edges"]} == {("__start__", "child"), ("child", "__end__")}
    assert all("id" not in n.get("data", {}) for n in flat["nodes"])
    one_level = {n["id"] for n in (await registry.drawable("parent", 1))["nodes"]}
    assert {"child:child_work", "child:inner"} <= one_level
    deep = {n["id"] for n in (await registry.drawable("parent", True))["nodes"]}
    assert {"child:child_work", "child:inner:leaf"} <= deep


async def test_subgraphs(tmp_path: Path) -> None:
    """Subgraphs are keyed by namespace with their schemas, recurse into nested ones, and are {} when absent."""
    registry = GraphRegistry.load(make_project(tmp_path, {"parent": "./graphs.py:parent", "g": "./graphs.py:compiled"}))
    direct = await registry.subgraphs("parent", None, False)
    assert set(direct) == {"child"}
    assert set(direct["child"]["input_schema"]["properties"]) == {"child_log"}
    assert set(direct["child"]) == {"input_schema", "output_schema", "state_schema", "config_schema", "context_schema"}
    assert set(await registry.subgraphs("parent", None, True)) == {"child", "child|inner"}
    assert set(await registry.subgraphs("parent", "child|inner", True)) == {"child|inner"}
    assert await registry.subgraphs("g", None, True) == {}


async def test_runtime_factory_without_auth_sees_no_user(tmp_path: Path) -> None:
    """Without custom auth the runtime's user is None (ensure_user raises); only execution has a context."""
    registry = GraphRegistry.load(make_project(tmp_path, {"r": "./graphs.py:with_runtime"}))
    store = InMemoryStore()
    async with registry.graph("r", access=GraphAccess("threads.read"), store=store):
        pass
    run = GraphAccess("threads.create_run", run_context={"greeting": "hi"})
    async with registry.graph("r", access=run, store=store):
        pass
    read, execution = project_module(tmp_path).SEEN
    assert (read.access_context, read.user, read.store, read.execution_runtime) == ("threads.read", None, store, None)
    with pytest.raises(PermissionError):
        read.ensure_user()
    assert execution.access_context == "threads.create_run"
    assert execution.execution_runtime.context == {"greeting": "hi"}
