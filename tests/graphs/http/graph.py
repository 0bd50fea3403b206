"""A graph that answers the request headers its run's configurable carries (the x-* ones)."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    headers: dict[str, Any]


def seen(state: State, config: RunnableConfig) -> dict[str, Any]:
    """Copy the configurable keys that look like headers into the state."""
    configurable = config.get("configurable") or {}
    return {"headers": {k: v for k, v in configurable.items() if k.startswith(("x-", "authorization"))}}


graph = StateGraph(State).add_node("seen", seen).add_edge(START, "seen").add_edge("seen", END).compile()
