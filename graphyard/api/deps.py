"""Access to the services the lifespan built, from a request."""

from __future__ import annotations

from starlette.requests import Request

from graphyard.services.context import Services


def services(request: Request) -> Services:
    svc = request.state.services
    assert isinstance(svc, Services)
    return svc
