"""OpenTelemetry: with OTEL_EXPORTER_OTLP_ENDPOINT set, a real server exports spans for requests, run
claim/execute/finish and graph nodes to an OTLP/HTTP collector (here, one in the test process)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from graphyard import tracing
from tests.api.clients import open_client
from tests.api.otlp import Collector, ReceivedSpan, serve_collector
from tests.api.support import StartServer, eventually

ERROR = 2  # opentelemetry.proto Status.STATUS_CODE_ERROR


@pytest.fixture
def collector() -> Iterator[Collector]:
    """An OTLP/HTTP collector on a free port."""
    yield from serve_collector()


def otel_env(collector: Collector) -> dict[str, str]:
    """The standard variables pointing a server at the collector, exporting within 50 ms."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_SERVICE_NAME": "graphyard-under-test",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }


def one(spans: list[ReceivedSpan], name: str, run_id: str | None = None) -> ReceivedSpan:
    """The single span with this name (and this run id, if given)."""
    found = [s for s in spans if s.name == name and (run_id is None or s.attributes.get("graphyard.run_id") == run_id)]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


async def test_spans_for_requests_runs_and_nodes_reach_the_collector(
    start_server: StartServer, collector: Collector
) -> None:
    """A run gives spans for its HTTP request (route template, status), its claim, its execution with
    one child span per graph node, and its finish; a failing node's span is an error with the exception."""
    server = await start_server(env=otel_env(collector))
    async with open_client(server) as client:
        thread = await client.threads.create()
        run = await client.runs.create(thread["thread_id"], "failing", input={})
        await client.runs.join(thread["thread_id"], run["run_id"])

    def complete(spans: list[ReceivedSpan]) -> bool:
        names = {s.name for s in spans}
        return {"run execute", "run finish", "run claim", "node boom", "POST /threads/{thread_id}/runs"} <= names

    async def received() -> list[ReceivedSpan]:
        return collector.received()

    spans = await eventually(received, complete, what="the run's spans at the collector")
    assert {s.service for s in spans} == {"graphyard-under-test"}
    request = one(spans, "POST /threads/{thread_id}/runs")
    assert request.attributes["http.route"] == "/threads/{thread_id}/runs"
    assert request.attributes["http.response.status_code"] == 200
    execute = one(spans, "run execute", run["run_id"])
    assert execute.attributes["graphyard.thread_id"] == thread["thread_id"]
    assert execute.attributes["graphyard.graph_id"] == "failing"
    assert execute.attributes["graphyard.status"] == "error" and execute.status_code == ERROR
    claim = one(spans, "run claim", run["run_id"])
    assert claim.attributes["graphyard.worker_id"].startswith("worker-")
    assert claim.trace_id == request.trace_id
    assert execute.trace_id == request.trace_id, "the run joins the trace of the request that created it"
    assert execute.parent_span_id == request.span_id
    finish = one(spans, "run finish", run["run_id"])
    assert (finish.trace_id, finish.parent_span_id) == (execute.trace_id, execute.span_id)
    ok, boom = one(spans, "node ok"), one(spans, "node boom")
    for node in (ok, boom):
        assert (node.trace_id, node.parent_span_id) == (execute.trace_id, execute.span_id)
    assert ok.attributes["langgraph.node"] == "ok" and ok.status_code != ERROR
    assert boom.status_code == ERROR


async def test_a_caller_traceparent_makes_the_request_its_child(
    start_server: StartServer, collector: Collector
) -> None:
    """A request carrying a W3C traceparent is traced as a child of the caller's span."""
    server = await start_server(env=otel_env(collector))
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    async with open_client(server) as client:
        await client.http.get("/info", headers={"traceparent": f"00-{trace_id}-{parent_id}-01"})

    async def received() -> list[ReceivedSpan]:
        return collector.received()

    spans = await eventually(received, lambda s: any(x.name == "GET /info" for x in s), what="the /info span")
    info = one(spans, "GET /info")
    assert (info.trace_id, info.parent_span_id) == (trace_id, parent_id)


def test_tracing_is_off_without_otel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an OTLP endpoint, or with OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none, nothing is exported."""
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    assert not tracing.wanted()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert tracing.wanted()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert not tracing.wanted()
    monkeypatch.delenv("OTEL_TRACES_EXPORTER")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not tracing.wanted()
