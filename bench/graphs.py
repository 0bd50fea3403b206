"""The benchmark graphs the server loads (as `bench.graphs:noop` and `bench.graphs:custom`).

Both do no I/O and no network, so a run's time is the server's overhead, not the graph's.
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages


class State(TypedDict, total=False):
    n: int


def noop_node(state: State) -> State:
    """Return no update: the run is pure server overhead."""
    return {}


def custom_node(state: State) -> State:
    """Write one `custom` event, then finish with no update."""
    get_stream_writer()({"n": 1})
    return {}


noop = StateGraph(State).add_node("noop", noop_node).add_edge(START, "noop").add_edge("noop", END).compile()
custom = StateGraph(State).add_node("emit", custom_node).add_edge(START, "emit").add_edge("emit", END).compile()


# 100 words: the fake model streams each word and each space as its own token, 200 in all.
REPLY = " ".join(f"word{i}" for i in range(100)) + " "
TOKENS = 200


class ChatState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


async def respond_node(state: ChatState) -> dict[str, Any]:
    """Stream a 200-token reply from langchain-core's fake chat model and add it to the messages."""
    model = GenericFakeChatModel(messages=iter([AIMessage(content=REPLY)]))
    reply = await model.ainvoke(state["messages"])
    return {"messages": [reply]}


tokens = StateGraph(ChatState).add_node("respond", respond_node).add_edge(START, "respond").compile()


class BlobState(TypedDict, total=False):
    blob: str
    n: int


def count_node(state: BlobState) -> BlobState:
    """Bump a counter beside whatever large value the state holds."""
    return {"n": state.get("n", 0) + 1}


blob = StateGraph(BlobState).add_node("count", count_node).add_edge(START, "count").compile()

GRAPHS = {
    "noop": "bench.graphs:noop",
    "custom": "bench.graphs:custom",
    "tokens": "bench.graphs:tokens",
    "blob": "bench.graphs:blob",
}
