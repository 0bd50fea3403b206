"""Request parsing and response shaping: wire field names and request schemas live only here."""

from __future__ import annotations

import uuid
from dataclasses import fields
from typing import Any, cast

import orjson
from jsonschema import Draft202012Validator, TypeChecker, validators
from jsonschema.exceptions import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from graphyard.errors import Unprocessable
from graphyard.records import Assistant, AssistantVersion, Json, Run, Thread
from graphyard.serde import dumps_to_send

# The largest integer either database stores (a signed 64-bit BIGINT); offsets past it are refused
# here, with the field named, instead of failing in the driver as a 500.
INT64_MAX = 2**63 - 1
# PostgreSQL `integer` columns (assistant versions) and LangGraph's namespace depth.
INT32_MAX = 2**31 - 1
# TTLs are minutes, as in the reference; a century is far past any sensible one and within date arithmetic.
TTL_MINUTES_MAX = 100 * 366 * 24 * 60

OBJ: Json = {"type": "object"}
OBJ_OR_NULL: Json = {"type": ["object", "null"]}
STR_OR_NULL: Json = {"type": ["string", "null"]}
# A RunnableConfig: every field LangGraph reads is checked here, so a wrong type is a 422 naming it at
# creation rather than a run that fails later. Other keys pass through untouched.
CONFIG: Json = {
    "type": ["object", "null"],
    "properties": {
        "configurable": OBJ_OR_NULL,
        "metadata": OBJ_OR_NULL,
        "tags": {"type": ["array", "null"], "items": {"type": "string"}},
        "run_name": STR_OR_NULL,
        "run_id": {"anyOf": [{"type": "string", "format": "uuid"}, {"type": "null"}]},
        "recursion_limit": {"type": ["integer", "null"], "minimum": 1},
        "max_concurrency": {"type": ["integer", "null"], "minimum": 1},
        # Callbacks are Python objects; nothing sent as JSON can be one.
        "callbacks": {"type": "null"},
    },
}
LIMIT: Json = {"type": "integer", "minimum": 1, "maximum": 1000}
OFFSET: Json = {"type": "integer", "minimum": 0, "maximum": INT64_MAX}
VERSION: Json = {"type": "integer", "minimum": 1, "maximum": INT32_MAX}
TTL: Json = {"type": ["number", "null"], "minimum": 0, "maximum": TTL_MINUTES_MAX}
SORT_ORDER: Json = {"enum": ["asc", "desc", None]}
# Query flags: "true", "1" or "yes" (any case) is true, anything else false, as the reference reads them.
QUERY_BOOL: Json = {"type": "boolean"}
# What page_headers() sends with a search's page.
PAGE_HEADERS: dict[str, Json] = {
    "X-Pagination-Total": {"type": "string", "pattern": "^[0-9]+$"},
    "X-Pagination-Next": {"type": "string", "pattern": "^[0-9]+$"},
}
UUID_STR: Json = {"type": "string", "format": "uuid"}
NODES: Json = {"anyOf": [{"const": "*"}, {"type": "array", "items": {"type": "string"}}, {"type": "null"}]}
CHECKPOINT: Json = {
    "type": ["object", "null"],
    "properties": {
        "thread_id": STR_OR_NULL,
        "checkpoint_ns": STR_OR_NULL,
        "checkpoint_id": STR_OR_NULL,
        "checkpoint_map": OBJ_OR_NULL,
    },
}
STREAM_MODES = ["values", "messages", "messages-tuple", "updates", "events", "tasks", "checkpoints", "debug", "custom"]
STREAM_MODE: Json = {
    "anyOf": [
        {"enum": STREAM_MODES},
        {"type": "array", "items": {"enum": STREAM_MODES}},
        {"type": "null"},
    ]
}


def _is_int(checker: TypeChecker, value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# "integer" means a JSON number written without a fraction or exponent: 1.0 or 1e3 would reach SQL as
# a float (which PostgreSQL refuses for LIMIT/OFFSET), and integers past 64 bits arrive as floats.
TYPES = Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_int)
# jsonschema's extend() is untyped; what it returns is a Draft 2020-12 validator class.
Validator = cast(
    type[Draft202012Validator],
    validators.extend(Draft202012Validator, type_checker=TYPES),  # type: ignore[no-untyped-call]
)


def schema(properties: Json, required: list[str] | None = None) -> Draft202012Validator:
    """The validator of a JSON object body; its `.schema` is what /openapi.json shows for it."""
    spec: Json = {"type": "object", "properties": properties}
    if required:
        spec["required"] = required
    validator: Draft202012Validator = Validator(spec, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return validator


async def read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Unprocessable("Invalid JSON in request body") from None
    # Keys become SQL JSON paths and LangGraph config keys; a NUL in one is never meaningful.
    if b"\\u0000" in raw and _has_nul_key(value):
        raise Unprocessable("Object keys must not contain NUL (\\u0000) characters")
    return value


def _has_nul_key(value: Any) -> bool:
    if isinstance(value, dict):
        return any("\x00" in key or _has_nul_key(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul_key(item) for item in value)
    return False


def _message(error: ValidationError) -> str:
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{error.message} (at '{where}')" if where else error.message


def validate(validator: Draft202012Validator, value: Any) -> Json:
    if validator.is_valid(value):
        assert isinstance(value, dict)
        return value
    error = next(iter(sorted(validator.iter_errors(value), key=lambda e: e.path)), None)
    if error is not None:
        raise Unprocessable(_message(error))
    assert isinstance(value, dict)
    return value


async def body(request: Request, validator: Draft202012Validator, *, default: Json | None = None) -> Json:
    """The request's JSON body, validated; an empty body counts as `default` (or `{}`)."""
    value = await read_json(request)
    if value is None:
        value = dict(default or {})
    return validate(validator, value)


def path_uuid(request: Request, name: str, kind: str) -> str:
    raw = request.path_params[name]
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise Unprocessable(f"Invalid {kind} ID: must be a UUID") from None


def query_bool(request: Request, name: str, default: bool = False) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in ("true", "1", "yes")


def query_int(request: Request, name: str, spec: Json, default: int) -> int:
    """An integer query parameter within the bounds of `spec` (the schema /openapi.json shows for it)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise Unprocessable(f"Query parameter '{name}' must be an integer") from None
    minimum, maximum = spec.get("minimum"), spec.get("maximum")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise Unprocessable(f"Query parameter '{name}' must be between {minimum} and {maximum}")
    return value


def json_response(content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps_to_send(content), status_code=status_code, media_type="application/json", headers=headers)


def page_headers(offset: int, limit: int, count: int, total: int | None = None) -> dict[str, str]:
    """X-Pagination-Total / -Next as the reference sends them."""
    if count >= limit:
        return {"X-Pagination-Next": str(offset + limit), "X-Pagination-Total": str(total or offset + limit + 1)}
    return {"X-Pagination-Total": str(offset + count)}


def select(item: Json, fields: list[str] | None) -> Json:
    return {k: v for k, v in item.items() if k in fields} if fields else item


# --- responses --------------------------------------------------------------------------------


def assistant_json(a: Assistant) -> Json:
    # The record's fields are the wire's, one for one (and hold only plain JSON).
    return {f.name: getattr(a, f.name) for f in fields(a)}


def version_json(v: AssistantVersion) -> Json:
    return {f.name: getattr(v, f.name) for f in fields(v)}


def thread_json(t: Thread) -> Json:
    return {
        "thread_id": t.thread_id,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
        "state_updated_at": t.state_updated_at,
        "metadata": t.metadata,
        "status": t.status.value,
        "config": t.config,
        "values": t.values,
        "interrupts": t.interrupts,
        "error": t.error,
    }


def run_json(r: Run) -> Json:
    return {
        "run_id": r.run_id,
        "thread_id": r.thread_id,
        "assistant_id": r.assistant_id,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "status": r.status.value,
        "metadata": r.metadata,
        "kwargs": r.kwargs,
        "multitask_strategy": str(r.multitask_strategy),
        "langsmith_session_name": None,
    }
