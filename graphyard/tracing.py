"""OpenTelemetry tracing: spans exported with OTLP/HTTP when the standard OTEL_* variables ask for it.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set. Off, `tracer`
is OpenTelemetry's no-op tracer and the graph-node callback is never attached, so nothing is recorded.
The exporter reads the rest of the standard variables itself (headers, timeout, compression), and the
batch processor its OTEL_BSP_* ones.
"""

from __future__ import annotations

import contextlib
import os
from contextlib import AbstractContextManager
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode

tracer = trace.get_tracer("graphyard")

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_provider: Any = None


def wanted() -> bool:
    """Whether the environment asks for traces."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return any(os.environ.get(name) for name in _ENDPOINTS)


def configure(default_service: str = "graphyard") -> bool:
    """Install the SDK with an OTLP/HTTP exporter if wanted; True when traces are exported."""
    global _provider
    if _provider is not None or not wanted():
        return _provider is not None
    # Imported only when tracing is on: the SDK and exporter cost nothing otherwise.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, when set, override the default name.
    resource = Resource.create({SERVICE_NAME: default_service}).merge(Resource.create())
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _provider = provider
    return True


def enabled() -> bool:
    return _provider is not None


def shutdown() -> None:
    """Export what is buffered and stop (at process exit)."""
    if _provider is not None:
        _provider.shutdown()


def span(
    name: str, attributes: dict[str, Any] | None = None, parent: Context | None = None
) -> AbstractContextManager[Span | None]:
    """A span around a block, current inside it; nothing at all when tracing is off."""
    if _provider is None:
        return contextlib.nullcontext()
    return tracer.start_as_current_span(name, context=parent, attributes=attributes)


# Where a run keeps the trace it was created in (the reference's reserved configurable keys, stripped
# from requests), so its execution on any worker joins the creating request's trace.
_CARRIER_KEYS = {"traceparent": "__otel_traceparent__", "tracestate": "__otel_tracestate__"}


def trace_carrier() -> dict[str, str]:
    """The current trace context as configurable keys; empty when tracing is off."""
    if _provider is None:
        return {}
    from opentelemetry import propagate  # reads its entry points at import: only when tracing is on

    headers: dict[str, str] = {}
    propagate.inject(headers)
    return {_CARRIER_KEYS[k]: v for k, v in headers.items() if k in _CARRIER_KEYS}


def run_context(configurable: dict[str, Any]) -> Context | None:
    """The trace context a run was created in (None: start a new trace)."""
    headers = {k: configurable[key] for k, key in _CARRIER_KEYS.items() if isinstance(configurable.get(key), str)}
    return extract(headers) if headers else None


def extract(headers: dict[str, str]) -> Context:
    """The trace context W3C headers (traceparent, tracestate) carry."""
    from opentelemetry import propagate

    return propagate.extract(headers)


def run_attributes(fields: dict[str, Any]) -> dict[str, Any]:
    """A run's log fields as span attributes (graphyard.run_id, ...), without empty values."""
    return {f"graphyard.{key}": value for key, value in fields.items() if value is not None}


class NodeSpans(BaseCallbackHandler):
    """A span per graph node (LangChain callbacks), children of the run's span."""

    run_inline = True  # called in the node's own context, so spans nest and no executor is used

    def __init__(self, parent: Span) -> None:
        self._parent = trace.set_span_in_context(parent)
        self._spans: dict[UUID, Span] = {}

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        node = (metadata or {}).get("langgraph_node")
        name = kwargs.get("name")
        if node is None or name != node:
            return  # the graph itself, or a runnable inside a node
        # Subgraph nodes hang under their parent node's span when LangChain says which one it is.
        parent_span = self._spans.get(parent_run_id) if parent_run_id is not None else None
        parent = trace.set_span_in_context(parent_span) if parent_span is not None else self._parent
        span = tracer.start_span(
            f"node {node}",
            context=parent,
            attributes={
                "langgraph.node": node,
                "langgraph.step": (metadata or {}).get("langgraph_step", -1),
                "langgraph.checkpoint_ns": (metadata or {}).get("langgraph_checkpoint_ns", ""),
            },
        )
        self._spans[run_id] = span

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._spans.pop(run_id, None)
        if span is not None:
            span.end()

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._spans.pop(run_id, None)
        if span is not None:
            if type(error).__name__ in ("GraphInterrupt", "GraphBubbleUp", "ParentCommand"):
                span.set_attribute("langgraph.interrupted", True)  # control flow, not a failure
            else:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            span.end()
