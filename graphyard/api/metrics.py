"""GET /metrics: Prometheus exposition (default) or JSON (`?format=json`), never authenticated."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from graphyard import metrics
from graphyard.api.deps import services
from graphyard.api.openapi import Query, operation
from graphyard.errors import Unprocessable
from graphyard.records import QueueStats
from graphyard.services import operators

# Statuses always exported, so dashboards see a zero rather than a missing series.
_STATUSES = ("pending", "running", "success", "error", "timeout", "interrupted")


def _publish(stats: QueueStats) -> None:
    """Copy the database's numbers (global, the same from every process) into the gauges."""
    metrics.RUNS_PENDING.set(stats.pending_due + stats.pending_delayed)
    metrics.RUNS_RUNNING.set(stats.runs_by_status.get("running", 0))
    for status in {*_STATUSES, *stats.runs_by_status}:
        metrics.RUNS_BY_STATUS.labels(status=status).set(stats.runs_by_status.get(status, 0))
    metrics.QUEUE_DEPTH.labels(state="due").set(stats.pending_due)
    metrics.QUEUE_DEPTH.labels(state="delayed").set(stats.pending_delayed)
    waited = 0.0 if stats.oldest_due_at is None else max(0.0, time.time() - stats.oldest_due_at)
    metrics.QUEUE_OLDEST_SECONDS.set(waited)
    metrics.EXPIRED_LEASES.set(stats.expired_leases)


@operation(
    "Prometheus metrics (or the queue and worker numbers as JSON)",
    "meta",
    query={"format": Query({"type": "string", "enum": ["prometheus", "json"], "default": "prometheus"})},
    response={"type": "string"},
    media="text/plain",
    also={"application/json": {"type": "object"}},
    errors=(422,),
)
async def scrape(request: Request) -> Response:
    wanted = request.query_params.get("format", "prometheus")
    if wanted not in ("prometheus", "json"):
        raise Unprocessable(f"format must be 'prometheus' or 'json', got {wanted!r}")
    stats = await operators.queue_stats(services(request))
    _publish(stats)
    if wanted == "json":
        return JSONResponse(
            {
                "queue": {
                    "n_pending": stats.pending_due + stats.pending_delayed,
                    "n_running": stats.runs_by_status.get("running", 0),
                    "pending_due": stats.pending_due,
                    "pending_delayed": stats.pending_delayed,
                    "oldest_due_at": stats.oldest_due_at,
                    "expired_leases": stats.expired_leases,
                    "runs_by_status": stats.runs_by_status,
                    "running_by_worker": stats.running_by_worker,
                },
                "workers": {
                    "max": metrics.SLOTS.max,
                    "active": metrics.SLOTS.active,
                    "available": max(0, metrics.SLOTS.max - metrics.SLOTS.active),
                },
            }
        )
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
