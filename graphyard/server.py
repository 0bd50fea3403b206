"""Composition root: build storage, broker, graphs and the engine, and the Starlette app around them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from graphyard.api import a2a_routes, mcp_routes, routes
from graphyard.api.access import AccessMiddleware
from graphyard.api.errors import HANDLERS
from graphyard.api.middleware import AuthMiddleware, BodyLimitMiddleware
from graphyard.auth import ProjectAuth
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


@contextlib.asynccontextmanager
async def running_services(
    settings: Settings, graphs: GraphRegistry, *, exclusive: bool = False
) -> AsyncIterator[Services]:
    """Open storage and broker, make system assistants, run workers; close everything on exit.
    `exclusive`: this is the only process on the database (dev), so runs left running are orphans."""
    storage = await open_storage(settings.database_url)
    broker = await open_broker(
        settings.broker_url, prefix=settings.redis_prefix, ttl_seconds=settings.stream_ttl_seconds
    )
    svc = Services(storage=storage, broker=broker, graphs=graphs, settings=settings)
    stop = asyncio.Event()
    worker_task: asyncio.Task[None] | None = None
    worker: Worker | None = None
    try:
        await ensure_system_assistants(svc)
        if settings.run_graphs:
            worker = Worker(svc, concurrency=settings.n_jobs_per_worker)
            if exclusive:
                await worker.recover()
            worker_task = asyncio.create_task(worker.run(stop), name="graphyard-worker")
            worker_task.add_done_callback(_die_loudly)
        yield svc
    finally:
        log.info("stopping: draining running runs", deadline_seconds=settings.drain_seconds)
        stop.set()
        if worker is not None and worker_task is not None:
            await asyncio.gather(worker_task, return_exceptions=True)
            await worker.drain(settings.drain_seconds)
        await broker.close()
        await storage.close()


FATAL = asyncio.Event()


def _die_loudly(task: asyncio.Task[None]) -> None:
    # A dead claim loop must not leave a server that accepts runs it will never execute:
    # stop the process (the CLI exits non-zero) so a supervisor restarts it.
    if not task.cancelled() and task.exception() is not None:
        log.critical("worker loop died; stopping", exc_info=task.exception())
        FATAL.set()
        os.kill(os.getpid(), signal.SIGTERM)


def build_app(
    settings: Settings,
    project: ProjectConfig,
    graphs: GraphRegistry,
    *,
    exclusive: bool = False,
    auth: ProjectAuth | None = None,
) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with running_services(settings, graphs, exclusive=exclusive) as svc:
            log.info("graphyard ready", database=settings.database_url, graphs=graphs.graph_ids())
            yield {"services": svc, "auth": auth, "auth_openapi": (project.auth or {}).get("openapi")}

    middleware = [
        Middleware(AccessMiddleware),
        Middleware(
            CORSMiddleware,
            allow_origins=["*"],
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["x-pagination-total", "x-pagination-next", "content-location"],
        ),
        Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes),
    ]
    if auth is not None:
        log.info("custom auth enabled", source=auth.source)
        middleware.append(Middleware(AuthMiddleware, auth=auth))
    table = [*routes(), *mcp_routes(), *a2a_routes()]
    return Starlette(routes=table, middleware=middleware, exception_handlers=HANDLERS, lifespan=lifespan)


async def run_worker_only(settings: Settings, graphs: GraphRegistry) -> int:
    """`graphyard worker`: execute runs, no HTTP; SIGTERM/SIGINT drain and stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running_services(settings, graphs):
        log.info("graphyard worker ready", graphs=graphs.graph_ids(), jobs=settings.n_jobs_per_worker)
        await _first_of(stop.wait(), FATAL.wait())
    return 1 if FATAL.is_set() else 0


async def migrate_only(settings: Settings) -> None:
    """`graphyard migrate`: open (and so migrate) the database, then close it."""
    storage = await open_storage(settings.database_url)
    await storage.close()


async def _first_of(*aws: Any) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
