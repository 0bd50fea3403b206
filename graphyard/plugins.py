"""The project's storage-related settings from langgraph.json, resolved into what the server uses:
LangGraph store options (`store.index`, `store.ttl`) and the thread TTL policy (`checkpointer.ttl`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from langgraph.store.base import TTLConfig

from graphyard.config import ProjectConfig
from graphyard.storage.ports import StoreOptions

__all__ = ["Plugins", "ThreadTTL", "load_plugins"]

# The reference's sweep defaults: every 5 minutes, at most 1,000 threads a pass.
DEFAULT_SWEEP_MINUTES = 5.0
DEFAULT_SWEEP_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class ThreadTTL:
    """`checkpointer.ttl`: what happens to a thread past its TTL, and how often expired threads are swept."""

    strategy: Literal["delete", "keep_latest"] = "delete"
    default_minutes: float | None = None
    sweep_minutes: float = DEFAULT_SWEEP_MINUTES
    sweep_limit: int = DEFAULT_SWEEP_LIMIT


@dataclass(frozen=True, slots=True)
class Plugins:
    """Everything langgraph.json asks of storage beyond the defaults."""

    store: StoreOptions = field(default_factory=StoreOptions)
    thread_ttl: ThreadTTL = field(default_factory=ThreadTTL)


def load_plugins(project: ProjectConfig) -> Plugins:
    """Resolve the project's `store` and `checkpointer` keys (already shape-checked by config)."""
    return Plugins(store=_store_options(project), thread_ttl=_thread_ttl(project.checkpointer))


def _store_options(project: ProjectConfig) -> StoreOptions:
    store = project.store or {}
    ttl: TTLConfig | None = None
    if store.get("ttl") is not None:
        raw = store["ttl"]
        ttl = {"refresh_on_read": raw.get("refresh_on_read", True)}
        if raw.get("default_ttl") is not None:
            ttl["default_ttl"] = float(raw["default_ttl"])
        # LangGraph's sweeper accepts fractions of a minute although the TypedDict says int.
        ttl["sweep_interval_minutes"] = raw.get("sweep_interval_minutes") or DEFAULT_SWEEP_MINUTES  # type: ignore[typeddict-item]
    return StoreOptions(ttl=ttl)


def _thread_ttl(checkpointer: dict[str, Any] | None) -> ThreadTTL:
    raw = (checkpointer or {}).get("ttl") or {}
    return ThreadTTL(
        strategy=raw.get("strategy", "delete"),
        default_minutes=raw.get("default_ttl"),
        sweep_minutes=float(raw.get("sweep_interval_minutes") or DEFAULT_SWEEP_MINUTES),
        sweep_limit=int(raw.get("sweep_limit") or DEFAULT_SWEEP_LIMIT),
    )
