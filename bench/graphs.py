"""The benchmark graphs the server loads (as `bench.graphs:noop` and `bench.graphs:custom`).

Both do no I/O and no network, so a run's time is the server's overhead, not the graph's.
"""

from __future__ import annotations

from typing import TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph


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

GRAPHS = {"noop": "bench.graphs:noop", "custom": "bench.graphs:custom"}
