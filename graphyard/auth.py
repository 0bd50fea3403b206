"""Bridge to a project's `langgraph_sdk.Auth` object: load it, authenticate requests, authorize actions.

The project's langgraph.json names the object (`"auth": {"path": "./auth.py:auth"}`). Its
`authenticate` handler turns a request into a user; its `@auth.on...` handlers allow, deny, rewrite
the payload of, or return a metadata filter for each resource action. This module knows nothing of
routes: the API layer calls `authenticate` once per request and `authorize` before each service call.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Mapping
from typing import Any, cast

from langgraph_sdk import Auth
from langgraph_sdk.auth import exceptions as auth_exceptions
from langgraph_sdk.auth import types as auth_types
from starlette.requests import Request

from graphyard.config import ConfigError, ProjectConfig
from graphyard.errors import Forbidden
from graphyard.graphs import load_reference
from graphyard.logs import get_logger
from graphyard.records import AuthUser, Json

__all__ = ["AuthFailed", "AuthUser", "ProjectAuth", "load_auth"]

# What an authenticate handler may ask for by parameter name.
AUTHENTICATE_PARAMS = frozenset(
    {"request", "headers", "authorization", "path", "method", "query_params", "path_params", "scopes", "user", "scope"}
)
# A filter nests $or/$and at most this deep, as the reference allows.
MAX_FILTER_DEPTH = 2
# Every action of every resource, for the startup warning about actions no handler guards.
ACTIONS: dict[str, tuple[str, ...]] = {
    "assistants": ("create", "read", "update", "delete", "search"),
    "threads": ("create", "read", "update", "delete", "search", "create_run"),
    "crons": ("create", "read", "update", "delete", "search"),
    "store": ("put", "get", "search", "delete", "list_namespaces"),
}

log = get_logger("graphyard.auth")

AuthFailed = auth_exceptions.HTTPException
"""Raised by user handlers to answer with a status, detail and headers of their choosing."""


def to_user(result: Any) -> AuthUser:
    """Normalize what an authenticate handler returned: a str identity, a mapping with `identity`,
    an object with `.identity`, or a `(permissions, user)` tuple."""
    if isinstance(result, tuple) and len(result) == 2:
        permissions, inner = result
        user = to_user(inner)
        user.permissions = list(permissions or [])
        return user
    if isinstance(result, str):
        return AuthUser(result, source=result)
    if isinstance(result, Mapping):
        identity = result.get("identity")
        if not isinstance(identity, str) or not identity:
            raise TypeError(f"the authenticate handler returned a mapping without a string 'identity': {result!r}")
        standard = {"identity", "display_name", "is_authenticated", "permissions"}
        return AuthUser(
            identity,
            display_name=result.get("display_name"),
            is_authenticated=bool(result.get("is_authenticated", True)),
            permissions=list(result.get("permissions") or []),
            extra={k: v for k, v in result.items() if k not in standard},
            source=result,
        )
    identity = getattr(result, "identity", None)
    if isinstance(identity, str) and identity:
        return AuthUser(
            identity,
            display_name=getattr(result, "display_name", None),
            is_authenticated=bool(getattr(result, "is_authenticated", True)),
            permissions=list(getattr(result, "permissions", None) or []),
            source=result,
        )
    raise TypeError(
        f"the authenticate handler returned {type(result).__name__}; return a str identity, "
        "a dict with 'identity', or an object with an .identity attribute"
    )


def check_filter(flt: Any, depth: int = 0) -> Json:
    """A handler's filter, checked for the shape storage evaluates; anything else is the handler's bug."""
    if not isinstance(flt, dict) or not all(isinstance(k, str) for k in flt):
        raise TypeError(f"an auth filter must be a dict with string keys, got {flt!r}")
    for key, cond in flt.items():
        if key in ("$or", "$and"):
            if depth >= MAX_FILTER_DEPTH:
                raise TypeError(f"auth filter nests {key} deeper than {MAX_FILTER_DEPTH} levels")
            if not isinstance(cond, list) or len(cond) < 2:
                raise TypeError(f"auth filter {key} needs a list of at least two filters, got {cond!r}")
            for sub in cond:
                check_filter(sub, depth + 1)
        elif key.startswith("$"):
            raise TypeError(f"unknown auth filter operator {key!r}; use $or or $and")
        elif isinstance(cond, dict) and len(cond) == 1 and next(iter(cond)) in ("$eq", "$contains"):
            continue
        elif isinstance(cond, dict) and any(str(k).startswith("$") for k in cond):
            raise TypeError(f"auth filter on {key!r}: use {{'$eq': v}} or {{'$contains': v}}, got {cond!r}")
    return flt


class ProjectAuth:
    """One project's Auth object, with its handlers resolved for fast dispatch."""

    def __init__(self, auth: Auth, source: str) -> None:
        handler = auth._authenticate_handler
        if handler is None:
            raise ValueError(f"{source} has no @auth.authenticate handler; add one")
        self.source = source
        self._auth = auth
        self._authenticate: Callable[..., Any] = handler
        self._params = _authenticate_params(handler, source)
        self._is_async = inspect.iscoroutinefunction(handler)
        self._dispatch: dict[tuple[str, str], Callable[..., Any] | None] = {}

    def unguarded(self) -> list[str]:
        """resource.action pairs left open although some handler guards another action of the resource."""
        open_actions: list[str] = []
        for resource, actions in ACTIONS.items():
            missing = [a for a in actions if self.handler_for(resource, a) is None]
            if missing and len(missing) < len(actions):
                open_actions.extend(f"{resource}.{a}" for a in missing)
        return open_actions

    # --- authentication -----------------------------------------------------------------------

    async def authenticate(self, request: Request) -> AuthUser:
        """Run the authenticate handler; its HTTPException (AuthFailed) propagates to the caller."""
        supplied: dict[str, Any] = {}
        for name in self._params:
            supplied[name] = self._param(name, request)
        if self._is_async:
            result = await self._authenticate(**supplied)
        else:
            result = await asyncio.to_thread(self._authenticate, **supplied)
            if inspect.isawaitable(result):
                result = await result
        return to_user(result)

    @staticmethod
    def _param(name: str, request: Request) -> Any:
        scope = request.scope
        if name == "request":
            return request
        if name == "headers":
            return dict(scope.get("headers") or [])
        if name == "authorization":
            return request.headers.get("authorization")
        if name == "path":
            return scope.get("path")
        if name == "method":
            return scope.get("method", "GET")
        if name == "query_params":
            return request.query_params
        if name == "path_params":
            return {}
        if name == "scopes":
            return []
        if name == "user":
            return None
        return scope

    # --- authorization ------------------------------------------------------------------------

    def handler_for(self, resource: str, action: str) -> Callable[..., Any] | None:
        """The most specific handler: (resource, action), (resource, *), (*, action), (*, *), global."""
        key = (resource, action)
        if key not in self._dispatch:
            found: Callable[..., Any] | None = None
            for candidate in (key, (resource, "*"), ("*", action), ("*", "*")):
                handlers = self._auth._handlers.get(candidate)
                if handlers:
                    found = handlers[-1]
                    break
            if found is None and self._auth._global_handlers:
                found = self._auth._global_handlers[-1]
            self._dispatch[key] = found
        return self._dispatch[key]

    async def authorize(self, user: AuthUser, resource: str, action: str, value: Json) -> Json | None:
        """None: allowed with no filter; a dict: allowed for resources whose metadata matches it.
        Forbidden (403) when the handler says False or fails an assertion; a handler may mutate `value`."""
        handler = self.handler_for(resource, action)
        if handler is None:
            return None
        ctx = auth_types.AuthContext(
            permissions=user.permissions,
            user=cast(auth_types.BaseUser, user),
            resource=cast(Any, resource),
            action=cast(Any, action),
        )
        try:
            result = handler(ctx=ctx, value=value)
            if inspect.isawaitable(result):
                result = await result
        except AssertionError as exc:
            raise Forbidden(str(exc) or "Forbidden") from exc
        if result is None or result is True:
            return None
        if result is False:
            raise Forbidden("Forbidden")
        if isinstance(result, dict):
            return check_filter(result) or None
        raise TypeError(
            f"auth handler for {resource}.{action} returned {type(result).__name__}; return None, a bool or a filter"
        )


def _authenticate_params(handler: Callable[..., Any], source: str) -> tuple[str, ...]:
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: cannot read the authenticate handler's parameters ({exc})") from exc
    names: list[str] = []
    for param in signature.parameters.values():
        if param.kind is param.VAR_KEYWORD:
            return tuple(sorted(AUTHENTICATE_PARAMS))
        if param.kind is param.VAR_POSITIONAL:
            continue
        if param.name in AUTHENTICATE_PARAMS:
            names.append(param.name)
        elif param.default is param.empty:
            raise ValueError(
                f"{source}: the authenticate handler's parameter '{param.name}' is not one graphyard can supply; "
                f"use any of {', '.join(sorted(AUTHENTICATE_PARAMS))}"
            )
    return tuple(names)


def load_auth(project: ProjectConfig) -> ProjectAuth | None:
    """The project's Auth object, or None without `auth.path`; any problem is one ConfigError line."""
    settings = project.auth or {}
    ref = settings.get("path")
    if ref is None:
        return None
    where = f"{project.path}: auth"
    obj = load_reference(project, 'auth "path"', ref)
    if not isinstance(obj, Auth):
        raise ConfigError(f"{where} ({ref}): {type(obj).__name__} is not a langgraph_sdk.Auth object")
    try:
        loaded = ProjectAuth(obj, f"{where} ({ref})")
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    unguarded = loaded.unguarded()
    if unguarded:
        log.warning("auth: these actions have no handler and are allowed for any authenticated user", actions=unguarded)
    return loaded
