"""Composition root: build storage, broker, graphs and the engine, and the Starlette app around them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Mount

from graphyard.api import a2a_routes, enabled, mcp_routes, routes, ui_routes
from graphyard.api.access import AccessMiddleware
from graphyard.api.errors import HANDLERS
from graphyard.api.http import ProjectRoutes, cors_options, header_copier, public_paths
from graphyard.api.middleware import AuthMiddleware, BodyLimitMiddleware, EncryptionContextMiddleware
from graphyard.auth import ProjectAuth
from graphyard.broker import open_broker
from graphyard.broker.errors import BrokerUnavailable
from graphyard.config import ProjectConfig
from graphyard.engine.worker import Worker
from graphyard.graphs import GraphRegistry
from graphyard.logs import backoff, get_logger
from graphyard.plugins import Plugins
from graphyard.services.assistants import ensure_system_assistants
from graphyard.services.context import Services
from graphyard.services.encryption import at_rest_for, encrypting
from graphyard.settings import Settings
from graphyard.storage import open_storage
from graphyard.storage.errors import Unavailable
from graphyard.ui import UiBundles

log = get_logger("graphyard.server")


@contextlib.asynccontextmanager
async def running_services(
    settings: Settings, graphs: GraphRegistry, *, exclusive: bool = False, plugins: Plugins | None = None
) -> AsyncIterator[Services]:
    """Open storage and broker, make system assistants, run workers; close everything on exit.
    `exclusive`: this is the only process on the database (dev), so runs left running are orphans."""
    plugins = plugins or Plugins()
    storage = encrypting(
        await patiently("database", lambda: open_storage(settings.database_url, store=plugins.store)), plugins
    )
    try:
        broker = await patiently(
            "broker",
            lambda: open_broker(
                settings.broker_url, prefix=settings.redis_prefix, ttl_seconds=settings.stream_ttl_seconds
            ),
        )
    except BaseException:
        await storage.close()
        raise
    svc = Services(storage=storage, broker=broker, graphs=graphs, settings=settings, plugins=plugins)
    stop = asyncio.Event()
    worker_task: asyncio.Task[None] | None = None
    worker: Worker | None = None
    try:
        await patiently("database", lambda: ensure_system_assistants(svc))
        if settings.run_graphs:
            worker = Worker(svc, concurrency=settings.n_jobs_per_worker)
            if exclusive:
                await worker.recover()
            worker_task = asyncio.create_task(worker.run(stop), name="graphyard-worker")
            worker_task.add_done_callback(_die_loudly)
        yield svc
    finally:
        stop.set()
        if worker is not None and worker_task is not None:
            await asyncio.gather(worker_task, return_exceptions=True)
            running = worker.running_run_ids()
            if running:
                log.warning(
                    f"stopping: waiting up to {settings.drain_seconds:g}s for {len(running)} running run(s) to finish; "
                    "press Ctrl-C again to hand them back to the queue now",
                    run_ids=running,
                )
            else:
                log.info("stopping: no run is executing")
            with _second_signal() as urgent:
                await worker.drain(settings.drain_seconds, urgent=urgent)
        await broker.close()
        await storage.close()


@contextlib.contextmanager
def _second_signal() -> Iterator[asyncio.Event]:
    """While draining, a second SIGINT/SIGTERM sets the returned event: stop waiting, hand runs back now."""
    urgent = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, urgent.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
            continue
    try:
        yield urgent
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


FATAL = asyncio.Event()

T = TypeVar("T")


async def patiently(dependency: str, connect: Callable[[], Awaitable[T]]) -> T:
    """Connect to a dependency at startup, waiting for it with backoff (one line per attempt) rather than
    failing: processes may start before their database or broker, or during an outage."""
    attempt = 0
    while True:
        try:
            return await connect()
        except (Unavailable, BrokerUnavailable) as exc:
            attempt += 1
            delay = min(5.0, 0.5 * attempt) + backoff(0, base=0.5)
            log.warning(
                f"{dependency} unreachable at startup; retrying",
                attempt=attempt,
                retry_in=round(delay, 1),
                error=str(exc),
            )
            await asyncio.sleep(delay)


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
    plugins: Plugins | None = None,
    user_app: Starlette | None = None,
    ui: UiBundles | None = None,
) -> Starlette:
    """The server's app; `user_app` is the project's own (`http.app`): it answers the requests its
    routes match (after the pinned meta routes, before ours), its lifespan runs inside ours and its
    middleware also wraps our routes."""
    http = project.http_config

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with running_services(settings, graphs, exclusive=exclusive, plugins=plugins) as svc:
            state = {
                "services": svc,
                "auth": auth,
                "auth_openapi": (project.auth or {}).get("openapi"),
                "configurable_headers": header_copier(http),
                "ui": ui,
            }
            if user_app is None:
                log.info("graphyard ready", database=settings.database_url, graphs=graphs.graph_ids())
                yield state
                return
            async with user_app.router.lifespan_context(user_app) as user_state:
                log.info("graphyard ready", database=settings.database_url, graphs=graphs.graph_ids())
                yield {**(user_state or {}), **state}

    ui_table = ui_routes() if ui is not None else []
    table = enabled([*routes(), *mcp_routes(), *a2a_routes(), *ui_table], http.disabled)
    pinned = [r for r in table if getattr(r, "path", "") in PINNED]
    served: list[BaseRoute] = table
    if http.mount_prefix:
        at_root = [r for r in table if getattr(r, "path", "") in AT_ROOT]
        served = [*at_root, Mount(http.mount_prefix, routes=table)]
    middleware = [
        Middleware(AccessMiddleware),
        Middleware(CORSMiddleware, **cors_options(http.cors)),
        Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes),
    ]
    user_middleware: list[Middleware] = []
    if user_app is not None:
        custom_auth = auth if http.enable_custom_route_auth else None
        middleware.append(
            Middleware(
                ProjectRoutes,
                project_app=user_app,
                ours=table,
                pinned=pinned,
                prefix=http.mount_prefix,
                auth=custom_auth,
            )
        )
        user_middleware = list(user_app.user_middleware)
    if http.middleware_order == "middleware_first":
        middleware += user_middleware
    if auth is not None:
        log.info("custom auth enabled", source=auth.source)
        middleware.append(Middleware(AuthMiddleware, auth=auth, public=public_paths(http.mount_prefix)))
    if http.middleware_order == "auth_first":
        middleware += user_middleware
    at_rest = at_rest_for(plugins or Plugins())
    if at_rest is not None:
        log.info("custom encryption at rest enabled", source=plugins.encryption_ref if plugins else None)
        middleware.append(Middleware(EncryptionContextMiddleware, at_rest=at_rest))
    app = Starlette(routes=served, middleware=middleware, exception_handlers=HANDLERS, lifespan=lifespan)
    app.state.mount_prefix = http.mount_prefix or ""  # /openapi.json marks the open routes under it too
    if user_app is not None:
        # Listed in /openapi.json beside ours, where the project's app answers them.
        project_routes = list(user_app.routes)
        app.state.project_routes = (
            [Mount(http.mount_prefix, routes=project_routes)] if http.mount_prefix else project_routes
        )
    return app


# Built-in routes a project's app cannot shadow, and those also served at the root under a mount prefix.
PINNED = frozenset({"/ok", "/metrics", "/docs", "/openapi.json"})
AT_ROOT = frozenset({"/", "/ok", "/metrics"})


async def run_worker_only(settings: Settings, graphs: GraphRegistry, plugins: Plugins | None = None) -> int:
    """`graphyard worker`: execute runs, no HTTP; SIGTERM/SIGINT drain and stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ready = asyncio.Event()

    async def work() -> None:
        async with running_services(settings, graphs, plugins=plugins):
            ready.set()
            log.info("graphyard worker ready", graphs=graphs.graph_ids(), jobs=settings.n_jobs_per_worker)
            await _first_of(stop.wait(), FATAL.wait())

    main = asyncio.ensure_future(work())
    await _first_of(asyncio.shield(main), stop.wait())
    if not ready.is_set():
        main.cancel()  # stopped while still waiting for the database or broker: nothing to drain
    with contextlib.suppress(asyncio.CancelledError):
        await main
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
