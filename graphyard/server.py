"""Composition root: build storage, broker, graphs and the engine, and the Starlette app around them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from graphyard.api import routes
from graphyard.api.errors import HANDLERS
from graphyard.api.middleware import BodyLimitMiddleware
from graphyard.broker import open_broker
from graphyard.config import ProjectConfig
from graphyard.engine.worker import Worker
from graphyard.graphs import GraphRegistry
from graphyard.logs import get_logger
from graphyard.services.assistants import ensure_system_assistants
from graphyard.services.context import Services
from graphyard.settings import Settings
from graphyard.storage import open_storage

log = get_logger("graphyard.server")

# How long a stopping server lets running runs finish before requeueing them.
DRAIN_SECONDS = 10.0


@contextlib.asynccontextmanager
async def running_services(settings: Settings, graphs: GraphRegistry) -> AsyncIterator[Services]:
    """Open storage and broker, make system assistants, run workers; close everything on exit."""
    storage = await open_storage(settings.database_url)
    broker = await open_broker(settings.broker_url)
    svc = Services(storage=storage, broker=broker, graphs=graphs, settings=settings)
    stop = asyncio.Event()
    worker_task: asyncio.Task[None] | None = None
    worker: Worker | None = None
    try:
        await ensure_system_assistants(svc)
        if settings.run_graphs:
            worker = Worker(svc, concurrency=settings.n_jobs_per_worker)
            await worker.recover()
            worker_task = asyncio.create_task(worker.run(stop), name="graphyard-worker")
            worker_task.add_done_callback(_die_loudly)
        yield svc
    finally:
        stop.set()
        if worker is not None and worker_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await worker_task
            await worker.drain(DRAIN_SECONDS)
        await broker.close()
        await storage.close()


def _die_loudly(task: asyncio.Task[None]) -> None:
    # A dead claim loop must not leave a server that accepts runs it will never execute.
    if not task.cancelled() and task.exception() is not None:
        log.critical("worker loop died", exc_info=task.exception())
        raise SystemExit(1)


def build_app(settings: Settings, project: ProjectConfig, graphs: GraphRegistry) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with running_services(settings, graphs) as svc:
            log.info("graphyard ready", database=settings.database_url, graphs=graphs.graph_ids())
            yield {"services": svc}

    middleware = [
        Middleware(
            CORSMiddleware,
            allow_origins=["*"],
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["x-pagination-total", "x-pagination-next", "content-location"],
        ),
        Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes),
    ]
    return Starlette(routes=routes(), middleware=middleware, exception_handlers=HANDLERS, lifespan=lifespan)
