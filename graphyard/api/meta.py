"""/ok and /info."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from starlette.requests import Request
from starlette.responses import Response

from graphyard import __version__
from graphyard.api import responses as r
from graphyard.api.deps import services
from graphyard.api.errors import RETRY_AFTER_SECONDS, json_error
from graphyard.api.openapi import operation
from graphyard.api.schemas import json_response
from graphyard.services import health

# /ok answers within about this long even when a dependency hangs.
HEALTH_TIMEOUT_SECONDS = 2.0


def _langgraph_version() -> str | None:
    try:
        return version("langgraph")
    except PackageNotFoundError:
        return None


@operation("Health check", "meta", response=r.OK)
async def ok(request: Request) -> Response:
    """200 while the database and the broker answer; 503 naming the one that does not."""
    down = await health.unreachable(services(request), timeout=HEALTH_TIMEOUT_SECONDS)
    if down:
        return json_error(
            503,
            f"Service unavailable: {' and '.join(down)} cannot be reached",
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return json_response({"ok": True, "services": {}})


@operation("Server version and feature flags", "meta", response=r.INFO)
async def info(request: Request) -> Response:
    return json_response(
        {
            "version": __version__,
            "langgraph_py_version": _langgraph_version(),
            "flags": {
                "assistants": True,
                "crons": True,
                "langsmith": False,
                "langsmith_tracing_replicas": False,
                "langsmith_tracing_session_on_runs": False,
            },
            "host": {
                "kind": "graphyard",
                "project_id": None,
                "host_revision_id": None,
                "revision_id": None,
                "tenant_id": None,
            },
        }
    )
