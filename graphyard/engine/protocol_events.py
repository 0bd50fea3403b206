"""LangGraph's v3 event log → the thread protocol's wire events (method, namespace, JSON data).

LangGraph's `astream_events(version="v3")` already speaks the protocol's vocabulary: content-block
message events, `tools` events, and `lifecycle` events for subgraphs. What remains is the wire's
shape: JSON-safe data, a subgraph's lifecycle on its own namespace (the library files it under the
parent's), whole messages a node returned replayed as content blocks, and the message metadata a
client routes by.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any, ClassVar

from langchain_core._api import LangChainBetaWarning
from langchain_core.language_models._compat_bridge import message_to_events
from langchain_core.messages import AIMessageChunk, BaseMessage, ToolMessage
from langgraph.stream import ProtocolEvent, StreamTransformer

from graphyard.serde import to_jsonable

# The v3 run stream is marked experimental; it is what the protocol is built on, so say it once here
# rather than on every run.
warnings.filterwarnings("ignore", message="The v3 streaming protocol", category=LangChainBetaWarning)

WireEvent = tuple[str, list[str], Any]

# Stream modes whose events go to the wire as they are (after JSON reduction).
_PLAIN = frozenset({"values", "updates", "custom", "tasks", "checkpoints", "debug", "tools"})
# Metadata values a `message-start` may carry (the protocol allows scalars only).
_SCALARS = (str, int, float, bool, type(None))


class ProtocolModes(StreamTransformer):
    """Asks the graph for the stream modes the protocol carries beyond LangGraph's built-in projections."""

    required_stream_modes: ClassVar[tuple[str, ...]] = ("updates", "custom", "tasks", "checkpoints", "tools")

    def init(self) -> dict[str, Any]:
        return {}

    def process(self, event: ProtocolEvent) -> bool:
        return True


class Translator:
    """Translates one run's v3 events; keeps the per-run state message routing needs."""

    def __init__(self) -> None:
        # Tool results stream as messages too; the protocol shows them as `tools` events only.
        self._tool_message_runs: set[str] = set()

    def translate(self, event: ProtocolEvent) -> Iterator[WireEvent]:
        method = event["method"]
        params = event["params"]
        namespace = list(params["namespace"])
        data = params["data"]
        if method == "messages":
            yield from self._messages(namespace, data)
        elif method == "lifecycle":
            payload = to_jsonable(data)
            # The library files a subgraph's lifecycle under its parent; clients discover children by
            # a `started` event on the child's own namespace.
            yield "lifecycle", list(payload.get("namespace") or namespace), payload
        elif method in _PLAIN:
            yield method, namespace, to_jsonable(data)

    def _messages(self, namespace: list[str], data: Any) -> Iterator[WireEvent]:
        payload, metadata = data
        metadata = metadata or {}
        run_id = str(metadata.get("run_id", ""))
        if isinstance(payload, dict) and "event" in payload:
            kind = payload.get("event")
            if kind == "message-start" and payload.get("role") == "tool":
                self._tool_message_runs.add(run_id)
                return
            if run_id in self._tool_message_runs:
                if kind == "message-finish":
                    self._tool_message_runs.discard(run_id)
                return
            out = to_jsonable(payload)
            if kind == "message-start":
                out["metadata"] = {**_scalars(metadata), **(out.get("metadata") or {})}
            yield "messages", namespace, out
        elif isinstance(payload, BaseMessage) and not isinstance(payload, AIMessageChunk | ToolMessage):
            # A node returned a whole message: replay it as the content-block events a live call makes.
            for part in message_to_events(payload, message_id=payload.id):
                out = to_jsonable(part)
                if out.get("event") == "message-start":
                    out["metadata"] = {**_scalars(metadata), **(out.get("metadata") or {})}
                yield "messages", namespace, out


def _scalars(metadata: Any) -> dict[str, Any]:
    if not isinstance(metadata, dict):
        return {}
    return {k: v for k, v in metadata.items() if isinstance(k, str) and isinstance(v, _SCALARS)}
