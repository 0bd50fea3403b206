"""A graph pushing one generative UI message (langgraph.graph.ui) for tests/api/test_ui.py."""

from __future__ import annotations

from typing import Annotated, Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.ui import AnyUIMessage, push_ui_message, ui_message_reducer
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    city: str
    ui: Annotated[list[AnyUIMessage], ui_message_reducer]


def forecast(state: State) -> dict[str, Any]:
    """Show the weather card for the state's city (the UI message goes to the stream and to `ui`)."""
    push_ui_message("weather", {"city": state.get("city", "Paris")}, id="weather-1")
    return {}


graph = StateGraph(State).add_node("forecast", forecast).add_edge(START, "forecast").add_edge("forecast", END).compile()
