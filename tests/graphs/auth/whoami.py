"""A graph that reports who ran it: the auth keys of its run's `configurable`."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

AUTH_KEYS = ("langgraph_auth_user", "langgraph_auth_user_id", "langgraph_auth_permissions", "user_id")


class WhoamiState(TypedDict, total=False):
    seen: dict[str, Any]


def _whoami(state: WhoamiState, config: RunnableConfig) -> dict[str, Any]:
    configurable = config.get("configurable") or {}
    return {"seen": {key: configurable.get(key) for key in AUTH_KEYS}}


whoami = StateGraph(WhoamiState).add_node("whoami", _whoami).add_edge(START, "whoami").add_edge("whoami", END).compile()
