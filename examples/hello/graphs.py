"""Two tiny graphs that need no API key and no network: a chat agent that replies
deterministically, and an approval flow that pauses with interrupt() until resumed."""

from typing import Annotated, TypedDict

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import interrupt


class ChatState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def reply(state: ChatState) -> dict[str, list[AnyMessage]]:
    """Answer the last message by echoing it, so every run has the same output."""
    last = state["messages"][-1].text if state["messages"] else ""
    return {"messages": [AIMessage(content=f"Hello! You said: {last}")]}


agent = StateGraph(ChatState).add_node("reply", reply).add_edge(START, "reply").add_edge("reply", END).compile()


class ApprovalState(TypedDict, total=False):
    request: str
    approved: bool


def ask(state: ApprovalState) -> ApprovalState:
    """Pause the run; resume it with Command(resume=True) or Command(resume=False)."""
    answer = interrupt({"question": f"Approve {state.get('request', 'this')}?"})
    return {"approved": bool(answer)}


approval = StateGraph(ApprovalState).add_node("ask", ask).add_edge(START, "ask").add_edge("ask", END).compile()
