"""Deterministic graphs for graphyard's own behaviour tests: no network, no model, no randomness.

Every graph records the nodes it ran in `steps`, so a test can tell exactly what executed.
"""

from __future__ import annotations

import asyncio
import operator
import time
from pathlib import Path
from typing import Annotated, Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode
from langgraph.runtime import Runtime
from langgraph.types import interrupt
from typing_extensions import TypedDict

Steps = Annotated[list[str], operator.add]

# --- echo: one node, returns what it was given -------------------------------------------------


class EchoState(TypedDict, total=False):
    value: Any
    echoed: Any
    steps: Steps


def _echo(state: EchoState) -> dict[str, Any]:
    return {"echoed": state.get("value"), "steps": ["echo"]}


echo = StateGraph(EchoState).add_node("echo", _echo).add_edge(START, "echo").add_edge("echo", END).compile()

# --- slow: s1 -> s2 -> s3, each sleeping `delay` seconds (from the input or the context) -------


class SlowState(TypedDict, total=False):
    delay: float
    steps: Steps


class SlowContext(TypedDict, total=False):
    delay: float
    tag: str


def _sleeper(name: str) -> Any:
    async def node(state: SlowState, runtime: Runtime[SlowContext]) -> dict[str, Any]:
        context = runtime.context or {}
        delay = state.get("delay")
        await asyncio.sleep(float(delay if delay is not None else context.get("delay", 0.0)))
        tag = context.get("tag")
        return {"steps": [f"{name}:{tag}" if tag else name]}

    node.__name__ = name
    return node


slow = (
    StateGraph(SlowState, context_schema=SlowContext)
    .add_node("s1", _sleeper("s1"))
    .add_node("s2", _sleeper("s2"))
    .add_node("s3", _sleeper("s3"))
    .add_edge(START, "s1")
    .add_edge("s1", "s2")
    .add_edge("s2", "s3")
    .add_edge("s3", END)
    .compile()
)

# --- gate: before -> hold -> after; `hold` waits until the test creates the file `gate` ----------
# It first creates `<gate>.entered`, so a test knows the run is inside `hold` without guessing.

GATE_LIMIT_SECONDS = 45.0


class GateState(TypedDict, total=False):
    gate: str
    steps: Steps


def _before(state: GateState) -> dict[str, Any]:
    return {"steps": ["before"]}


def _enter(gate: str) -> None:
    Path(f"{gate}.entered").touch()


def _is_open(gate: str) -> bool:
    return Path(gate).exists()


async def _hold(state: GateState) -> dict[str, Any]:
    gate = state["gate"]
    _enter(gate)
    deadline = time.monotonic() + GATE_LIMIT_SECONDS
    while not _is_open(gate):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate} was never opened")
        await asyncio.sleep(0.01)
    return {"steps": ["hold"]}


def _after(state: GateState) -> dict[str, Any]:
    return {"steps": ["after"]}


gate = (
    StateGraph(GateState)
    .add_node("before", _before)
    .add_node("hold", _hold)
    .add_node("after", _after)
    .add_edge(START, "before")
    .add_edge("before", "hold")
    .add_edge("hold", "after")
    .add_edge("after", END)
    .compile()
)

# --- ask: prepare -> ask (interrupt) -> finish; also c, reachable only by Command(goto="c") ------


class AskState(TypedDict, total=False):
    question: str
    answer: Any
    note: str
    steps: Steps


def _prepare(state: AskState) -> dict[str, Any]:
    return {"steps": ["prepare"]}


def _ask(state: AskState) -> dict[str, Any]:
    answer = interrupt({"question": state.get("question", "continue?")})
    return {"answer": answer, "steps": ["ask"]}


def _finish(state: AskState) -> dict[str, Any]:
    return {"steps": ["finish"]}


def _side(state: AskState) -> dict[str, Any]:
    return {"steps": ["side"]}


ask = (
    StateGraph(AskState)
    .add_node("prepare", _prepare)
    .add_node("ask", _ask)
    .add_node("finish", _finish)
    .add_node("side", _side)
    .add_edge(START, "prepare")
    .add_edge("prepare", "ask")
    .add_edge("ask", "finish")
    .add_edge("finish", END)
    .add_edge("side", END)
    .compile()
)

# --- failing: ok -> boom, which raises ----------------------------------------------------------

FAILURE_MESSAGE = "boom node failed on purpose"


class FailState(TypedDict, total=False):
    steps: Steps


def _ok(state: FailState) -> dict[str, Any]:
    return {"steps": ["ok"]}


def _boom(state: FailState) -> dict[str, Any]:
    raise ValueError(FAILURE_MESSAGE)


failing = (
    StateGraph(FailState)
    .add_node("ok", _ok)
    .add_node("boom", _boom)
    .add_edge(START, "ok")
    .add_edge("ok", "boom")
    .add_edge("boom", END)
    .compile()
)

# --- nested: a parent node and a subgraph node, both writing custom stream events ----------------


class ChildState(TypedDict, total=False):
    child_steps: Steps


def _child_work(state: ChildState) -> dict[str, Any]:
    writer = get_stream_writer()
    writer({"from": "child", "i": 0})
    writer({"from": "child", "i": 1})
    return {"child_steps": ["child_work"]}


_child = StateGraph(ChildState).add_node("child_work", _child_work).add_edge(START, "child_work").compile()


class NestedState(TypedDict, total=False):
    steps: Steps
    child_steps: Steps


def _emit(state: NestedState) -> dict[str, Any]:
    get_stream_writer()({"from": "parent", "i": 0})
    return {"steps": ["emit"]}


nested = (
    StateGraph(NestedState)
    .add_node("emit", _emit)
    .add_node("child", _child)
    .add_edge(START, "emit")
    .add_edge("emit", "child")
    .add_edge("child", END)
    .compile()
)

# --- chat: token streaming from langchain-core's fake chat model -------------------------------

CHAT_REPLY = "the quick brown fox"
CHAT_TOKENS = ["the", " ", "quick", " ", "brown", " ", "fox"]


class ChatState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


async def _respond(state: ChatState) -> dict[str, Any]:
    model = GenericFakeChatModel(messages=iter([AIMessage(content=CHAT_REPLY)]))
    reply = await model.ainvoke(state["messages"])
    return {"messages": [reply]}


chat = StateGraph(ChatState).add_node("respond", _respond).add_edge(START, "respond").add_edge("respond", END).compile()

# --- configured: a factory that builds its graph from the run's RunnableConfig ------------------


class ConfiguredState(TypedDict, total=False):
    greeting: str
    steps: Steps


def make_configured(config: RunnableConfig) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Build a graph whose one node greets with `configurable.greeting` (default "hello")."""
    greeting = str((config.get("configurable") or {}).get("greeting", "hello"))

    def greet(state: ConfiguredState) -> dict[str, Any]:
        return {"greeting": greeting, "steps": ["greet"]}

    return StateGraph(ConfiguredState).add_node("greet", greet).add_edge(START, "greet").compile()


# --- remember: long-term memory through runtime.store ------------------------------------------


class RememberState(TypedDict, total=False):
    namespace: list[str]
    key: str
    value: dict[str, Any]
    found: Any


async def _remember(state: RememberState, runtime: Runtime[Any]) -> dict[str, Any]:
    """Put `value` (when given) at namespace/key in the runtime store, then read that item back."""
    store = runtime.store
    assert store is not None, "graphyard binds a store to every graph"
    namespace = tuple(state.get("namespace") or ["remember"])
    key = state.get("key", "default")
    if state.get("value") is not None:
        await store.aput(namespace, key, state["value"])
    item = await store.aget(namespace, key)
    return {"found": item.value if item else None}


remember = StateGraph(RememberState).add_node("remember", _remember).add_edge(START, "remember").compile()


# --- agent: a planned tool call, the tool, then a streamed reply (thread protocol `tools`) -------

AGENT_REPLY = "the sum is 3"


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def _plan(state: ChatState) -> dict[str, Any]:
    call = {"name": "add", "args": {"a": 1, "b": 2}, "id": "call-add-1", "type": "tool_call"}
    return {"messages": [AIMessage(content="adding", tool_calls=[call], id="plan-1")]}


async def _reply(state: ChatState) -> dict[str, Any]:
    get_stream_writer()({"name": "progress", "step": "reply"})
    model = GenericFakeChatModel(messages=iter([AIMessage(content=AGENT_REPLY)]))
    return {"messages": [await model.ainvoke(state["messages"])]}


agent = (
    StateGraph(ChatState)
    .add_node("plan", _plan)
    .add_node("tools", ToolNode([add]))
    .add_node("reply", _reply)
    .add_edge(START, "plan")
    .add_edge("plan", "tools")
    .add_edge("tools", "reply")
    .add_edge("reply", END)
    .compile()
)

# --- team: a parent node, then a `researcher` subgraph whose chat model streams tokens ----------

_researcher = (
    StateGraph(ChatState).add_node("respond", _respond).add_edge(START, "respond").add_edge("respond", END).compile()
)


def _intro(state: ChatState) -> dict[str, Any]:
    get_stream_writer()({"name": "progress", "step": "intro"})
    return {}


team = (
    StateGraph(ChatState)
    .add_node("intro", _intro)
    .add_node("researcher", _researcher)
    .add_edge(START, "intro")
    .add_edge("intro", "researcher")
    .add_edge("researcher", END)
    .compile()
)
