"""JSON schemas of what the API answers: the wire objects /openapi.json names, written once.

The shapers in schemas.py build these objects; tests validate real responses against the document
built from these schemas, so a shaper that drifts from its schema fails a test."""

from __future__ import annotations

from typing import Any

from graphyard.records import Json

ANY: Json = {}
OBJ: Json = {"type": "object"}
OBJ_OR_NULL: Json = {"type": ["object", "null"]}
STR: Json = {"type": "string"}
STR_OR_NULL: Json = {"type": ["string", "null"]}
UUID: Json = {"type": "string", "format": "uuid"}
TIME: Json = {"type": "string", "format": "date-time"}
TIME_OR_NULL: Json = {"type": ["string", "null"], "format": "date-time"}
LABELS: Json = {"type": "array", "items": STR}


def record(properties: dict[str, Any], *, optional: tuple[str, ...] = ()) -> Json:
    """An object with these properties, all required but `optional`; other keys are allowed."""
    return {"type": "object", "properties": properties, "required": [k for k in properties if k not in optional]}


def partial(schema: Json) -> Json:
    """The same object with nothing required: what a search answers when `select` picks fields."""
    return {key: value for key, value in schema.items() if key != "required"}


def ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


ERROR = record({"detail": ANY})

_ASSISTANT_FIELDS: dict[str, Any] = {
    "assistant_id": UUID,
    "graph_id": STR,
    "config": OBJ,
    "context": OBJ,
    "metadata": OBJ,
    "name": STR,
    "description": STR_OR_NULL,
    "version": {"type": "integer"},
    "created_at": TIME,
}
ASSISTANT = record({**_ASSISTANT_FIELDS, "updated_at": TIME})
ASSISTANT_VERSION = record(_ASSISTANT_FIELDS)
THREAD_STATUS: Json = {"enum": ["idle", "busy", "interrupted", "error"]}
THREAD = record(
    {
        "thread_id": UUID,
        "created_at": TIME,
        "updated_at": TIME,
        "state_updated_at": TIME,
        "metadata": OBJ,
        "status": THREAD_STATUS,
        "config": OBJ,
        "values": ANY,
        "interrupts": OBJ,
        "error": ANY,
        # Only with `include=ttl`: {strategy, ttl_minutes, expires_at}, or null without a TTL.
        "ttl": {"type": ["object", "null"]},
    },
    optional=("ttl",),
)
RUN_STATUS: Json = {"enum": ["pending", "running", "error", "success", "timeout", "interrupted"]}
RUN = record(
    {
        "run_id": UUID,
        "thread_id": UUID,
        "assistant_id": UUID,
        "created_at": TIME,
        "updated_at": TIME,
        "status": RUN_STATUS,
        "metadata": OBJ,
        "kwargs": OBJ,
        "multitask_strategy": STR,
        "langsmith_session_name": STR_OR_NULL,
    }
)
CRON = record(
    {
        "cron_id": UUID,
        "assistant_id": STR,
        "thread_id": {"type": ["string", "null"], "format": "uuid"},
        "user_id": STR_OR_NULL,
        "end_time": TIME_OR_NULL,
        "schedule": STR,
        "timezone": STR_OR_NULL,
        "payload": OBJ,
        "next_run_date": TIME_OR_NULL,
        "metadata": OBJ,
        "on_run_completed": STR_OR_NULL,
        "enabled": {"type": "boolean"},
        "created_at": TIME,
        "updated_at": TIME,
    }
)
CHECKPOINT = record(
    {"thread_id": STR_OR_NULL, "checkpoint_ns": STR, "checkpoint_id": STR_OR_NULL, "checkpoint_map": OBJ_OR_NULL},
    optional=("checkpoint_map",),
)
CHECKPOINT_OR_NULL: Json = {"anyOf": [ref("Checkpoint"), {"type": "null"}]}
INTERRUPT = record({"id": STR, "value": ANY})
TASK = record(
    {
        "id": STR,
        "name": STR,
        "path": {"type": "array"},
        "error": STR_OR_NULL,
        "interrupts": {"type": "array", "items": ref("Interrupt")},
        "checkpoint": CHECKPOINT_OR_NULL,
        "state": {"anyOf": [ref("ThreadState"), {"type": "null"}]},
        "result": ANY,
    }
)
THREAD_STATE = record(
    {
        "values": ANY,
        "next": {"type": "array", "items": STR},
        "tasks": {"type": "array", "items": ref("ThreadTask")},
        "metadata": OBJ_OR_NULL,
        "created_at": TIME_OR_NULL,
        "checkpoint": CHECKPOINT_OR_NULL,
        "parent_checkpoint": CHECKPOINT_OR_NULL,
        "interrupts": {"type": "array", "items": ref("Interrupt")},
        "checkpoint_id": STR_OR_NULL,
        "parent_checkpoint_id": STR_OR_NULL,
    }
)
STATE_UPDATED = record({"checkpoint": ref("Checkpoint"), "configurable": ref("Checkpoint"), "checkpoint_id": STR})
ITEM = record({"namespace": LABELS, "key": STR, "value": OBJ, "created_at": TIME, "updated_at": TIME})
SEARCH_ITEM = {**ITEM, "properties": {**ITEM["properties"], "score": {"type": ["number", "null"]}}}
# One server-sent event as a client parses it; `data` is JSON text.
SSE_EVENT = record({"event": STR, "data": STR, "id": STR}, optional=("id",))
OK = record({"ok": {"type": "boolean"}}, optional=())
INFO = record({"version": STR, "flags": OBJ, "host": OBJ}, optional=())

# The named schemas of the document's components; responses refer to them by name.
COMPONENTS: dict[str, Json] = {
    "Error": ERROR,
    "Assistant": ASSISTANT,
    "AssistantVersion": ASSISTANT_VERSION,
    "Thread": THREAD,
    "Run": RUN,
    "Cron": CRON,
    "Checkpoint": CHECKPOINT,
    "Interrupt": INTERRUPT,
    "ThreadTask": TASK,
    "ThreadState": THREAD_STATE,
    "Item": ITEM,
    "SearchItem": SEARCH_ITEM,
}


def array(items: Json) -> Json:
    return {"type": "array", "items": items}
