"""The `http` key of langgraph.json as HTTP: the project's own app, CORS, request headers copied into
runs, and which requests skip authentication."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from graphyard.api.middleware import AuthMiddleware, is_open
from graphyard.auth import ProjectAuth
from graphyard.config import ConfigError, HttpConfig, ProjectConfig
from graphyard.graphs import import_file

# Credentials never travel into a run's configurable, whatever the patterns say.
NEVER_COPIED = frozenset({"authorization", "x-api-key", "x-service-key", "x-tenant-id", "cookie"})
# Response headers the official clients read (pagination, the run a stream belongs to).
EXPOSED = ["x-pagination-total", "x-pagination-next", "content-location"]


def load_app(project: ProjectConfig) -> Starlette | None:
    """Import the Starlette (or FastAPI) app named by `http.app`; any problem is one ConfigError line."""
    source = project.http_config.app
    if source is None:
        return None
    module_ref, _, attr = source.partition(":")
    where = f'{project.path}: "http.app" ({source})'
    try:
        if "/" in module_ref or module_ref.endswith(".py"):
            path = (project.root / module_ref).resolve()
            if not path.is_file():
                raise ConfigError(f"{where}: file {path} not found; fix the path (relative to langgraph.json)")
            module: Any = import_file(path)
        else:
            module = importlib.import_module(module_ref)
    except ConfigError:
        raise
    except Exception as exc:
        # Whatever the project's module raises while importing is reported, not crashed on.
        raise ConfigError(f"{where}: import failed ({type(exc).__name__}: {exc}); fix the module") from exc
    app = module
    for part in attr.split("."):
        if not hasattr(app, part):
            raise ConfigError(f"{where}: {module_ref} has no attribute '{attr}'; check the name after \":\"")
        app = getattr(app, part)
    if not isinstance(app, Starlette):
        raise ConfigError(f"{where}: {type(app).__name__} is not a Starlette or FastAPI app; point it at one")
    return app


def cors_options(cors: dict[str, Any] | None) -> dict[str, Any]:
    """CORSMiddleware options: permissive without `http.cors`; the project's policy replaces it otherwise."""
    if cors is None:
        return {"allow_origins": ["*"], "allow_methods": ["*"], "allow_headers": ["*"], "expose_headers": EXPOSED}
    options: dict[str, Any] = {"allow_methods": ["*"], "allow_headers": ["*"], **cors}
    options["expose_headers"] = [*EXPOSED, *cors.get("expose_headers", [])]
    return options


def _glob(pattern: str) -> re.Pattern[str]:
    # Only "*" is special, as in the reference; other characters match themselves.
    return re.compile("".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", pattern)))


def header_copier(http: HttpConfig) -> Callable[[Headers], dict[str, str]] | None:
    """What `http.configurable_headers` copies from a request into its run's configurable (None: nothing)."""
    if http.configurable_headers is None:
        return None
    includes = [_glob(p) for p in http.configurable_headers[0]]
    excludes = [_glob(p) for p in http.configurable_headers[1]]

    def copy(headers: Headers) -> dict[str, str]:
        return {
            name: value
            for name, value in headers.items()
            if name not in NEVER_COPIED
            and any(p.fullmatch(name) for p in includes)
            and not any(p.fullmatch(name) for p in excludes)
        }

    return copy


def public_paths(prefix: str = "") -> Callable[[Scope], bool]:
    """Which requests skip authentication: /ok, /info, the docs and GET of generative UI files (also under
    the mount prefix)."""

    def public(scope: Scope) -> bool:
        path: str = scope.get("path", "")
        if prefix and path.startswith(prefix + "/"):
            path = path[len(prefix) :]
        return is_open(path) or (scope.get("method") in ("GET", "HEAD") and path.startswith("/ui/"))

    return public


class ProjectRoutes:
    """Middleware handing the requests the project's app answers to that app, whole: its own middleware,
    exception handlers and dependencies (FastAPI's included) run as they would standalone. A request
    goes to it when one of its routes matches before ours would (the pinned meta routes first);
    `auth` (with `enable_custom_route_auth`) authenticates them first. Everything else goes on to us."""

    def __init__(
        self,
        app: ASGIApp,
        project_app: Starlette,
        ours: Sequence[BaseRoute],
        pinned: Sequence[BaseRoute],
        prefix: str = "",
        auth: ProjectAuth | None = None,
    ) -> None:
        self.app = app
        self.prefix = prefix
        self.custom = tuple(project_app.routes)
        self.table = (*pinned, *self.custom, *ours)
        self.target: ASGIApp = project_app
        if auth is not None:
            self.target = AuthMiddleware(project_app, auth, public_paths())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        local = scope
        if self.prefix:
            if not path.startswith(self.prefix + "/"):
                await self.app(scope, receive, send)
                return
            # As a Mount would: the project's router sees the path below the prefix.
            local = {**scope, "root_path": scope.get("root_path", "") + self.prefix}
        if self._answers(local):
            await self.target(local, receive, send)
        else:
            await self.app(scope, receive, send)

    def _answers(self, scope: Scope) -> bool:
        """Whether Starlette's router, given the whole table, would pick one of the project's routes:
        the first full match wins, else the first partial one (a method mismatch: 405)."""
        partial: BaseRoute | None = None
        for route in self.table:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return route in self.custom
            if match is Match.PARTIAL and partial is None:
                partial = route
        return partial is not None and partial in self.custom
