"""/openapi.json built from the app's route table and the validators the handlers use.

A handler declares its operation with `@operation(...)`, naming the same validator it reads its body
with and the response schema of what it answers. The document is built from whatever routes the app
has when it is first asked for (custom routes included); a route without a declaration is still
listed, with its path parameters and an undescribed response, so nothing the server answers is
missing from it."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from jsonschema import Draft202012Validator
from starlette.routing import BaseRoute, Mount, Route

from graphyard.api import responses as r
from graphyard.records import Json

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])
ATTRIBUTE = "__graphyard_operation__"
JSON = "application/json"
SSE = "text/event-stream"
# Path parameters that are UUIDs wherever they appear; any other is a string unless an operation says.
PATH_PARAMS: dict[str, Json] = {"thread_id": r.UUID, "run_id": r.UUID, "cron_id": r.UUID, "assistant_id": r.UUID}
REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    400: "Bad request: the request cannot be carried out as given",
    401: "Not authenticated (the project's auth handler refused the credentials)",
    403: "Forbidden by the project's auth handlers",
    404: "Not found, or hidden from the caller by auth",
    405: "Method not allowed",
    409: "Conflict with the resource's current state",
    413: "Request body too large (HTTP_MAX_REQUEST_BODY_BYTES)",
    422: "The request does not match the schema; `detail` names the field",
}


@dataclass(frozen=True)
class Query:
    """One query parameter: its schema (also what the handler checks bounds against) and meaning."""

    schema: Json
    description: str = ""
    required: bool = False
    repeated: bool = False


@dataclass(frozen=True)
class Operation:
    """What /openapi.json says about one handler."""

    summary: str
    tag: str
    body: Draft202012Validator | Json | None = None
    body_required: bool = False
    query: Mapping[str, Query] = field(default_factory=dict)
    path: Mapping[str, Json] = field(default_factory=dict)
    response: Json | None = None
    status: int = 200
    media: str = JSON
    # The same success answered in other media types (e.g. a `format` query switch): media -> schema.
    also: Mapping[str, Json] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    error_schema: Json = field(default_factory=lambda: r.ref("Error"))
    headers: Mapping[str, Json] = field(default_factory=dict)
    description: str = ""
    # Other successful answers: status -> body schema (None: no body).
    more: Mapping[int, Json | None] = field(default_factory=dict)


def operation(summary: str, tag: str, **details: Any) -> Callable[[Handler], Handler]:
    """Declare a handler's operation for /openapi.json (see Operation for the fields)."""
    spec = Operation(summary=summary, tag=tag, **details)

    def attach(handler: Handler) -> Handler:
        setattr(handler, ATTRIBUTE, spec)
        return handler

    return attach


def operation_of(endpoint: Any) -> Operation | None:
    spec = getattr(endpoint, ATTRIBUTE, None)
    return spec if isinstance(spec, Operation) else None


# --- the document ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Security:
    """The auth part of the document: the project's `auth.openapi` if it has one, else a bearer scheme."""

    schemes: Json
    requirement: list[Json]
    open_paths: frozenset[str]


def security_for(auth_openapi: Json | None, open_paths: Iterable[str]) -> Security:
    spec = auth_openapi or {}
    schemes = spec.get("securitySchemes") or {
        "auth": {
            "type": "http",
            "scheme": "bearer",
            "description": "Checked by the project's @auth.authenticate handler (langgraph.json `auth.path`)",
        }
    }
    requirement = spec.get("security") or [{name: []} for name in schemes]
    return Security(schemes=schemes, requirement=requirement, open_paths=frozenset(open_paths))


def document(routes: Iterable[BaseRoute], *, title: str, version: str, security: Security | None = None) -> Json:
    """The OpenAPI 3.1 document of these routes."""
    paths: dict[str, Json] = {}
    for path, methods, endpoint in _walk(routes, ""):
        item = paths.setdefault(_openapi_path(path), {})
        for method in methods:
            if method == "HEAD" and "GET" in methods:
                continue  # Starlette answers HEAD for every GET route by itself
            item[method.lower()] = _operation(path, method, operation_of(endpoint), endpoint, security)
    doc: Json = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": dict(r.COMPONENTS)},
    }
    if security is not None:
        doc["components"]["securitySchemes"] = security.schemes
        doc["security"] = security.requirement
    return doc


def _walk(routes: Iterable[BaseRoute], prefix: str) -> Iterable[tuple[str, list[str], Any]]:
    for route in routes:
        if isinstance(route, Route):
            if route.include_in_schema:
                # A route without methods (an ASGI app or endpoint class) takes any: listed as GET and POST.
                yield prefix + route.path, sorted(route.methods or ("GET", "POST")), route.endpoint
        elif isinstance(route, Mount):
            # A mounted app with a route table (a custom Starlette/FastAPI app) is listed route by
            # route; a mounted ASGI app without one (static files) is not an API.
            yield from _walk(getattr(route.app, "routes", None) or (), prefix + route.path)


_CONVERTOR = re.compile(r"{([^}:]+)(:[^}]+)?}")


def _openapi_path(path: str) -> str:
    return _CONVERTOR.sub(r"{\1}", path)


def _operation(path: str, method: str, spec: Operation | None, endpoint: Any, security: Security | None) -> Json:
    names = [m.group(1) for m in _CONVERTOR.finditer(path)]
    if spec is None:
        name = getattr(endpoint, "__name__", type(endpoint).__name__)
        out: Json = {
            "summary": name.replace("_", " "),
            "tags": ["other"],
            "operationId": f"{method.lower()}_{_slug(path)}",
            "parameters": [_path_param(n, {}) for n in names],
            "responses": {"default": {"description": "Not described (a route declared without an operation)"}},
        }
        return _secured(out, path, security)
    out = {
        "summary": spec.summary,
        "tags": [spec.tag],
        "operationId": f"{method.lower()}_{_slug(path)}",
    }
    if spec.description:
        out["description"] = spec.description
    parameters = [_path_param(n, spec.path) for n in names]
    parameters += [_query_param(name, q) for name, q in spec.query.items()]
    if parameters:
        out["parameters"] = parameters
    if spec.body is not None:
        schema = spec.body if isinstance(spec.body, dict) else spec.body.schema
        out["requestBody"] = {"required": spec.body_required, "content": {JSON: {"schema": schema}}}
    secured = security is not None and path not in security.open_paths
    out["responses"] = _responses(spec, bool(names or spec.query or spec.body is not None), secured)
    return _secured(out, path, security)


def _secured(out: Json, path: str, security: Security | None) -> Json:
    if security is not None and path in security.open_paths:
        out["security"] = []
    return out


def _slug(path: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "_", path).strip("_") or "root"


def _path_param(name: str, overrides: Mapping[str, Json]) -> Json:
    schema = overrides.get(name, PATH_PARAMS.get(name, r.STR))
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query_param(name: str, query: Query) -> Json:
    schema = {"type": "array", "items": query.schema} if query.repeated else query.schema
    out: Json = {"name": name, "in": "query", "required": query.required, "schema": schema}
    if query.description:
        out["description"] = query.description
    return out


def _responses(spec: Operation, has_input: bool, secured: bool) -> Json:
    success: Json = {"description": REASONS.get(spec.status, "OK")}
    if spec.response is not None:
        success["content"] = {spec.media: {"schema": spec.response}}
        success["content"].update({media: {"schema": schema} for media, schema in spec.also.items()})
    if spec.headers:
        success["headers"] = {name: {"schema": schema} for name, schema in spec.headers.items()}
    out: Json = {str(spec.status): success}
    for status, schema in spec.more.items():
        out[str(status)] = {"description": REASONS.get(status, "OK")}
        if schema is not None:
            out[str(status)]["content"] = {JSON: {"schema": schema}}
    codes = set(spec.errors)
    if has_input:
        codes.add(422)
    if spec.body is not None:
        codes.add(413)
    if secured:
        codes |= {401, 403}
    for code in sorted(codes):
        out[str(code)] = {"description": REASONS.get(code, "Error"), "content": {JSON: {"schema": spec.error_schema}}}
    return out
