"""Access to what the lifespan built, from a request or a WebSocket: the services, and the project's auth."""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection

from graphyard.auth import AuthUser, ProjectAuth
from graphyard.records import Json
from graphyard.services.context import Services


def _state(request: HTTPConnection, key: str) -> Any:
    # The request's state dict itself: `getattr(request.state, key, None)` raises and catches an
    # AttributeError (with its message formatted) for every key that is absent, on every request.
    state = request.scope.get("state")
    return state.get(key) if state is not None else None


def services(request: HTTPConnection) -> Services:
    svc = _state(request, "services")
    assert isinstance(svc, Services)
    return svc


def project_auth(request: HTTPConnection) -> ProjectAuth | None:
    """The project's auth, or None when langgraph.json configures none (the server is open)."""
    auth: ProjectAuth | None = _state(request, "auth")
    return auth


def copied_headers(request: HTTPConnection) -> Json:
    """The request headers `http.configurable_headers` copies into a run's configurable ({} by default)."""
    copier = _state(request, "configurable_headers")
    return copier(request.headers) if copier is not None else {}


def auth_user(request: HTTPConnection) -> AuthUser | None:
    """The user the auth middleware authenticated, or None without auth."""
    user: AuthUser | None = _state(request, "auth_user")
    return user


async def authorize(request: HTTPConnection, resource: str, action: str, value: dict[str, Any]) -> Json | None:
    """Run the project's handler for resource.action on `value` (which it may change in place):
    None means allowed without a filter, a dict is the metadata filter to pass to the service."""
    auth = project_auth(request)
    if auth is None:
        return None
    user = auth_user(request)
    assert user is not None, "the auth middleware runs before every authorized route"
    return await auth.authorize(user, resource, action, value)
