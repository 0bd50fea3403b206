"""GET /metrics: Prometheus exposition whose numbers move as runs are queued, executed and streamed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.api.clients import open_client
from tests.api.support import Server, StartServer, eventually, wait_for_file


async def scrape(server: Server) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /metrics, keyed by (name, labels)."""
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """One sample's value (0 when the series does not exist yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_follow_runs_through_queue_execution_and_streams(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Running, pending and delayed runs, worker slots and stream subscribers show while a run holds;
    wait and execution histograms, runs by status and HTTP counts grow once it finishes; process
    metrics are there."""
    server = await start_server(args=["--n-jobs-per-worker", "3"])
    before = await scrape(server)
    assert value(before, "lg_api_workers_max") == 3
    assert value(before, "lg_api_workers_available") == 3
    assert value(before, "lg_api_num_running_runs") == 0
    assert value(before, "process_resident_memory_bytes") > 0
    gate_file = tmp_path / "gate"
    gate = str(gate_file)
    async with open_client(server) as client:
        held = await client.threads.create()
        run = await client.runs.create(held["thread_id"], "gate", input={"gate": gate})
        await wait_for_file(Path(f"{gate}.entered"))
        queued = await client.runs.create(held["thread_id"], "echo", input={"value": 1})  # waits behind `run`
        later = await client.threads.create()
        await client.runs.create(later["thread_id"], "echo", input={}, after_seconds=600)
        stream = asyncio.create_task(_drain(client.runs.join_stream(held["thread_id"], run["run_id"])))
        try:
            during = await eventually(
                lambda: scrape(server),
                lambda s: value(s, "graphyard_stream_subscribers") == 1,
                what="the stream subscriber to show",
            )
            assert value(during, "lg_api_num_running_runs") == 1
            assert value(during, "lg_api_workers_active") == 1
            assert value(during, "lg_api_workers_available") == 2
            assert value(during, "lg_api_num_pending_runs") == 2
            assert value(during, "graphyard_queue_depth", state="due") == 1
            assert value(during, "graphyard_queue_depth", state="delayed") == 1
            assert value(during, "graphyard_runs", status="running") == 1
            gate_file.touch()
            await client.runs.join(held["thread_id"], queued["run_id"])
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(stream, 20)
    after = await eventually(
        lambda: scrape(server),
        lambda s: value(s, "lg_api_run_execution_latency_count", status="success") >= 2,
        what="both runs to be counted",
    )
    assert value(after, "lg_api_num_running_runs") == 0
    assert value(after, "lg_api_workers_active") == 0
    assert value(after, "graphyard_stream_subscribers") == 0
    assert value(after, "graphyard_runs", status="success") == 2
    assert value(after, "graphyard_runs_finished_total", status="success") == 2
    assert value(after, "lg_api_run_queue_wait_time_1st_attempt_count") == 2
    assert value(after, "lg_api_run_execution_latency_sum", status="success") > 0
    created = value(after, "lg_api_http_requests_total", method="POST", path="/threads/{thread_id}/runs", status="200")
    assert created == 3
    assert value(after, "lg_api_http_requests_total", method="POST", path="/threads", status="200") == 2
    latency = value(after, "lg_api_http_requests_latency_count", method="POST", path="/threads/{thread_id}/runs")
    assert latency == 3


async def _drain(parts: AsyncIterator[Any]) -> None:
    async for _ in parts:
        pass


async def test_metrics_json_and_bad_format(start_server: StartServer) -> None:
    """`?format=json` answers the queue and worker numbers as JSON; an unknown format is a 422 naming it."""
    server = await start_server()
    async with httpx.AsyncClient(base_url=server.url) as http:
        body = (await http.get("/metrics", params={"format": "json"})).json()
        assert body["queue"]["n_pending"] == 0 and body["queue"]["n_running"] == 0
        assert body["workers"] == {"max": 10, "active": 0, "available": 10}
        bad = await http.get("/metrics", params={"format": "xml"})
    assert bad.status_code == 422
    assert "xml" in bad.json()["detail"]
