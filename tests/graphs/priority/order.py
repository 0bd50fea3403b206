"""A graph that appends its `tag` to the file `log`, so a test sees the order runs executed in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict


class OrderState(TypedDict, total=False):
    log: str
    tag: str


def _record(state: OrderState) -> dict[str, Any]:
    with Path(state["log"]).open("a") as log:
        log.write(f"{state['tag']}\n")
    return {}


order = StateGraph(OrderState).add_node("record", _record).add_edge(START, "record").add_edge("record", END).compile()
