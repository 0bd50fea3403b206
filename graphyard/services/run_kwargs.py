"""A run's stored kwargs: the creation payload checked and merged with its assistant, as the worker needs it."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from graphyard.errors import InvalidRequest, Unprocessable
from graphyard.records import Assistant, Json
from graphyard.services import assistants

RESERVED_CONFIGURABLE = frozenset(
    {
        "langgraph_auth_user",
        "langgraph_auth_user_id",
        "langgraph_auth_permissions",
        "langgraph_request_id",
        "__langsmith_project__",
        "__langsmith_example_id__",
        "__request_start_time_ms__",
        "__after_seconds__",
        "__otel_traceparent__",
        "__otel_tracestate__",
        "__dd_trace_headers__",
        "__pregel_node_finished",
        "__context_provided__",
    }
)
RESERVED_METADATA = frozenset({"thread_id", "assistant_id", "run_id", "cron_id", "counters_since_delta_snapshot"})


def strip_reserved(mapping: Json | None, reserved: frozenset[str]) -> Json:
    return {k: v for k, v in (mapping or {}).items() if k not in reserved}


def _checkpoint_fields(payload: Json) -> Json:
    checkpoint = dict(payload.get("checkpoint") or {})
    if payload.get("checkpoint_id"):
        checkpoint["checkpoint_id"] = payload["checkpoint_id"]
    for key in ("checkpoint_id",):
        value = checkpoint.get(key)
        if value is not None:
            try:
                uuid.UUID(str(value))
            except ValueError as exc:
                raise Unprocessable("Invalid checkpoint ID") from exc
    checkpoint.pop("thread_id", None)
    return {k: v for k, v in checkpoint.items() if v is not None}


def _stream_modes(value: Any) -> list[str]:
    if value is None:
        return ["values"]
    return [value] if isinstance(value, str) else list(value)


def build_kwargs(
    payload: Json,
    assistant: Assistant,
    *,
    run_id: str,
    thread_id: str,
    temporary: bool,
    user_id: str = "",
    auth_user: Json | None = None,
    headers: Json | None = None,
) -> Json:
    """The run's stored kwargs: what the worker needs to execute it, in the reference's shape.
    `auth_user` (identity, is_authenticated, display_name, permissions) is the caller under custom auth;
    `headers` are request headers `http.configurable_headers` copies (the payload's configurable wins)."""
    config = copy.deepcopy(payload.get("config") or {})
    context = payload.get("context") or None
    config["configurable"] = strip_reserved(config.get("configurable"), RESERVED_CONFIGURABLE)
    context = strip_reserved(context, RESERVED_CONFIGURABLE) if context else None
    if config["configurable"] and context:
        raise InvalidRequest(assistants.BOTH_CONFIGURABLE_AND_CONTEXT)
    # Stored assistants already keep configurable and context mirrored.
    base_config, base_context = assistant.config, assistant.context
    run_config = {**base_config, **{k: v for k, v in config.items() if k != "configurable"}}
    configurable = {
        **strip_reserved(headers, RESERVED_CONFIGURABLE),
        **(base_config.get("configurable") or {}),
        **config["configurable"],
        **(context or {}),
    }
    configurable.update(_checkpoint_fields(payload))
    configurable.update(
        {
            "run_id": run_id,
            "thread_id": thread_id,
            "graph_id": assistant.graph_id,
            "assistant_id": assistant.assistant_id,
            "user_id": user_id,
            "langgraph_auth_user_id": user_id,
        }
    )
    if auth_user is not None:
        configurable.update(
            {
                "langgraph_auth_user": auth_user,
                "langgraph_auth_user_id": auth_user["identity"],
                "langgraph_auth_permissions": list(auth_user.get("permissions") or []),
                "user_id": auth_user["identity"],
            }
        )
    run_config["configurable"] = configurable
    run_config["metadata"] = strip_reserved(config.get("metadata"), RESERVED_METADATA)
    durability = payload.get("durability")
    if durability is None:
        durability = "exit" if payload.get("checkpoint_during") is False else "async"
    kwargs: Json = {
        "input": payload.get("input"),
        "command": payload.get("command"),
        "config": run_config,
        "context": {**base_context, **(context or {})},
        "stream_mode": _stream_modes(payload.get("stream_mode")),
        "interrupt_before": payload.get("interrupt_before"),
        "interrupt_after": payload.get("interrupt_after"),
        "webhook": payload.get("webhook"),
        "feedback_keys": payload.get("feedback_keys"),
        "temporary": temporary,
        "subgraphs": bool(payload.get("stream_subgraphs", False)),
        "resumable": bool(payload.get("stream_resumable", False)),
        "checkpoint_during": payload.get("checkpoint_during", True),
        "durability": durability,
    }
    if payload.get("thread_protocol"):
        # Started through the thread protocol: the engine also streams its full protocol events.
        kwargs["thread_protocol"] = True
    return kwargs
