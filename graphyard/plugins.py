"""The project's storage and queue settings from langgraph.json, resolved into what the server uses:
LangGraph store options (`store.index`, `store.ttl`), the thread TTL policy (`checkpointer.ttl`) and
the project's `langgraph_sdk.Priority` object (`priority.path`) and `langgraph_sdk.Encryption` object
(`encryption.path`)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Literal

from langgraph.store.base import IndexConfig, TTLConfig
from langgraph_sdk import Encryption, Priority

from graphyard.config import ConfigError, ProjectConfig
from graphyard.graphs import load_reference
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
    priority: Priority | None = None
    encryption: Encryption | None = None
    # "./encryption.py:name", as langgraph.json spells it: error messages name the handlers by it.
    encryption_ref: str | None = None


def load_plugins(project: ProjectConfig) -> Plugins:
    """Resolve the project's `store`, `checkpointer`, `priority` and `encryption` keys; a problem is one
    ConfigError line."""
    encryption, encryption_ref = load_encryption(project)
    return Plugins(
        store=_store_options(project),
        thread_ttl=_thread_ttl(project.checkpointer),
        priority=_priority(project),
        encryption=encryption,
        encryption_ref=encryption_ref,
    )


def load_encryption(project: ProjectConfig) -> tuple[Encryption | None, str | None]:
    """The project's `encryption` handlers and how langgraph.json names them; (None, None) without the key."""
    block = project.raw.get("encryption")
    if block is None:
        return None, None
    if not isinstance(block, dict) or not isinstance(block.get("path"), str):
        raise ConfigError(f'{project.path}: "encryption" must be {{"path": "./encryption.py:encryption"}}')
    ref = block["path"]
    found = load_reference(project, "encryption.path", ref)
    if not isinstance(found, Encryption):
        raise ConfigError(
            f"{project.path}: encryption.path ({ref}): {type(found).__name__} is not a langgraph_sdk.Encryption"
        )
    # A half-registered pair would write data it cannot read back (or expect ciphertext it never wrote).
    for kind, encrypt, decrypt in (
        ("blob", found._blob_encryptor, found._blob_decryptor),
        ("json", found._json_encryptor, found._json_decryptor),
    ):
        if (encrypt is None) != (decrypt is None):
            missing = "decrypt" if decrypt is None else "encrypt"
            raise ConfigError(
                f"{project.path}: encryption.path ({ref}): @encryption.{missing}.{kind} is missing; "
                f"register both @encryption.encrypt.{kind} and @encryption.decrypt.{kind}, or neither"
            )
    return found, ref


def _priority(project: ProjectConfig) -> Priority | None:
    block = project.raw.get("priority")
    if block is None:
        return None
    if not isinstance(block, dict) or "path" not in block:
        raise ConfigError(f'{project.path}: "priority" must be {{"path": "./priority.py:priority"}}')
    found = load_reference(project, "priority.path", block["path"])
    if not isinstance(found, Priority):
        raise ConfigError(
            f"{project.path}: priority.path ({block['path']}): {type(found).__name__} is not a langgraph_sdk.Priority"
        )
    if found._assign_handler is None:
        raise ConfigError(
            f"{project.path}: priority.path ({block['path']}): no @priority.assign function is registered"
        )
    return found


def _store_options(project: ProjectConfig) -> StoreOptions:
    store = project.store or {}
    index: IndexConfig | None = None
    if store.get("index") is not None:
        raw_index = store["index"]
        index = {"dims": raw_index["dims"], "embed": _embeddings(project, raw_index["embed"])}
        if raw_index.get("fields") is not None:
            index["fields"] = list(raw_index["fields"])
    ttl: TTLConfig | None = None
    if store.get("ttl") is not None:
        raw = store["ttl"]
        ttl = {"refresh_on_read": raw.get("refresh_on_read", True)}
        if raw.get("default_ttl") is not None:
            ttl["default_ttl"] = float(raw["default_ttl"])
        # LangGraph's sweeper accepts fractions of a minute although the TypedDict says int.
        ttl["sweep_interval_minutes"] = raw.get("sweep_interval_minutes") or DEFAULT_SWEEP_MINUTES  # type: ignore[typeddict-item]
    return StoreOptions(index=index, ttl=ttl)


def _embeddings(project: ProjectConfig, embed: str) -> Any:
    """`store.index.embed`: a function (sync or async, texts -> vectors) or Embeddings object named by
    "./file.py:name", or a "provider:model" string for LangChain's init_embeddings."""
    module_ref = embed.partition(":")[0]
    if module_ref.endswith(".py") or module_ref.startswith((".", "/")):
        found = load_reference(project, "store.index.embed", embed)
        if not callable(found) and not hasattr(found, "aembed_documents"):
            raise ConfigError(f"{project.path}: store.index.embed ({embed}): not a function or Embeddings object")
        return found
    try:
        # Optional: only projects that name a provider need LangChain (and that provider's package).
        init_embeddings = importlib.import_module("langchain.embeddings").init_embeddings
    except ImportError:
        raise ConfigError(
            f'{project.path}: store.index.embed "{embed}" is resolved by LangChain\'s init_embeddings; '
            f"install it with the provider's package (pip install langchain langchain-{module_ref}) "
            'or name your own function, e.g. "./embed.py:embed"'
        ) from None
    try:
        return init_embeddings(embed)
    except Exception as exc:
        # Unknown provider, missing provider package, missing API key: one line with LangChain's reason.
        raise ConfigError(f'{project.path}: store.index.embed "{embed}": {type(exc).__name__}: {exc}') from exc


def _thread_ttl(checkpointer: dict[str, Any] | None) -> ThreadTTL:
    raw = (checkpointer or {}).get("ttl") or {}
    return ThreadTTL(
        strategy=raw.get("strategy", "delete"),
        default_minutes=raw.get("default_ttl"),
        sweep_minutes=float(raw.get("sweep_interval_minutes") or DEFAULT_SWEEP_MINUTES),
        sweep_limit=int(raw.get("sweep_limit") or DEFAULT_SWEEP_LIMIT),
    )
