"""Assistants: system assistants per graph, create / patch (new version) / delete / search."""

from __future__ import annotations

import contextlib
import copy
import uuid

from langchain_core.runnables import RunnableConfig

from graphyard.errors import AssistantExists, AssistantNotFound, GraphNotFound, InvalidRequest
from graphyard.records import Assistant, AssistantVersion, Json, isoformat, now, system_assistant_id
from graphyard.services.context import Services
from graphyard.storage.errors import UniqueViolation

BOTH_CONFIGURABLE_AND_CONTEXT = (
    "Cannot specify both configurable and context. Prefer setting context alone. "
    "Context was introduced in LangGraph 0.6.0 and is the long term planned replacement for configurable."
)


def mirror_context(config: Json | None, context: Json | None) -> tuple[Json, Json]:
    """Keep config.configurable and context equal: whichever is given fills the other (both → 400)."""
    config = copy.deepcopy(config) if config else {}
    context = copy.deepcopy(context) if context else {}
    configurable = config.get("configurable") or {}
    if configurable and context:
        raise InvalidRequest(BOTH_CONFIGURABLE_AND_CONTEXT)
    if context:
        config["configurable"] = dict(context)
    elif configurable:
        context = dict(configurable)
    return config, context


def _graph_missing(svc: Services, graph_id: str) -> GraphNotFound:
    return GraphNotFound(f"Graph '{graph_id}' not found. Expected one of: {svc.graphs.graph_ids()}")


async def ensure_system_assistants(svc: Services) -> None:
    """One assistant per graph with the reference's deterministic id; kept in sync on restart."""
    stamp = isoformat(now())
    async with svc.storage.transaction() as tx:
        for graph_id in svc.graphs.graph_ids():
            assistant_id = system_assistant_id(graph_id)
            existing = await tx.get_assistant(assistant_id)
            if existing is None:
                with contextlib.suppress(UniqueViolation):  # another process starting now made it first
                    await tx.insert_assistant(
                        Assistant(
                            assistant_id=assistant_id,
                            graph_id=graph_id,
                            config={},
                            context={},
                            metadata={"created_by": "system"},
                            name=svc.graphs.name(graph_id),
                            description=svc.graphs.description(graph_id),
                            version=1,
                            created_at=stamp,
                            updated_at=stamp,
                        )
                    )


async def create(
    svc: Services,
    *,
    graph_id: str,
    assistant_id: str | None,
    config: Json | None,
    context: Json | None,
    metadata: Json | None,
    if_exists: str,
    name: str | None,
    description: str | None,
    auth: Json | None = None,
) -> Assistant:
    if graph_id not in svc.graphs:
        raise _graph_missing(svc, graph_id)
    config, context = mirror_context(config, context)
    stamp = isoformat(now())
    assistant = Assistant(
        assistant_id=assistant_id or str(uuid.uuid4()),
        graph_id=graph_id,
        config=config,
        context=context,
        metadata=metadata or {},
        name=name or "Untitled",
        description=description,
        version=1,
        created_at=stamp,
        updated_at=stamp,
    )
    async with svc.storage.transaction() as tx:
        existing = await tx.get_assistant(assistant.assistant_id)
        if existing is not None:
            visible = auth is None or await tx.get_assistant(assistant.assistant_id, auth) is not None
            if if_exists == "do_nothing" and visible:
                return existing
            raise AssistantExists(f"Assistant {assistant.assistant_id} already exists")
        try:
            await tx.insert_assistant(assistant)
        except UniqueViolation as exc:
            raise AssistantExists(f"Assistant {assistant.assistant_id} already exists") from exc
    return assistant


async def get(svc: Services, assistant_id: str, auth: Json | None = None) -> Assistant:
    async with svc.storage.read() as db:
        assistant = await db.get_assistant(assistant_id, auth)
    if assistant is None:
        raise AssistantNotFound(f"Assistant {assistant_id} not found")
    return assistant


async def resolve(svc: Services, assistant_id: str, auth: Json | None = None) -> Assistant | None:
    """An assistant by UUID, or the system assistant of a graph name; None when neither exists."""
    try:
        uuid.UUID(assistant_id)
    except ValueError:
        if assistant_id not in svc.graphs:
            return None
        assistant_id = system_assistant_id(assistant_id)
    async with svc.storage.read() as db:
        return await db.get_assistant(assistant_id, auth)


async def patch(
    svc: Services,
    assistant_id: str,
    *,
    graph_id: str | None,
    config: Json | None,
    context: Json | None,
    metadata: Json | None,
    name: str | None,
    description: str | None,
    auth: Json | None = None,
) -> Assistant:
    if graph_id is not None and graph_id not in svc.graphs:
        raise _graph_missing(svc, graph_id)
    async with svc.storage.transaction() as tx:
        current = await tx.get_assistant(assistant_id, auth)
        if current is None:
            raise AssistantNotFound()
        new_config, new_context = current.config, current.context
        if config is not None or context is not None:
            new_config, new_context = mirror_context(
                config if config is not None else ({} if context is not None else current.config),
                context if context is not None else ({} if config is not None else current.context),
            )
        latest = await tx.assistant_versions(assistant_id, metadata=None, limit=1, offset=0)
        version = (latest[0].version if latest else current.version) + 1
        updated = Assistant(
            assistant_id=assistant_id,
            graph_id=graph_id or current.graph_id,
            config=new_config,
            context=new_context,
            metadata={**current.metadata, **(metadata or {})},
            name=name if name is not None else current.name,
            description=description if description is not None else current.description,
            version=version,
            created_at=current.created_at,
            updated_at=isoformat(now()),
        )
        await tx.update_assistant(updated, new_version=True)
    return updated


async def delete(svc: Services, assistant_id: str, auth: Json | None = None) -> None:
    async with svc.storage.transaction() as tx:
        if await tx.get_assistant(assistant_id, auth) is None:
            raise AssistantNotFound(f"Assistant with ID {assistant_id} not found")
        await tx.delete_assistant(assistant_id)


async def search(
    svc: Services,
    *,
    graph_id: str | None,
    metadata: Json | None,
    name: str | None,
    limit: int,
    offset: int,
    sort_by: str | None,
    sort_order: str | None,
    auth: Json | None = None,
) -> tuple[list[Assistant], int]:
    """A page of assistants and the total count matching the filters."""
    async with svc.storage.read() as db:
        items = await db.search_assistants(
            graph_id=graph_id,
            metadata=metadata,
            name=name,
            auth=auth,
            limit=limit,
            offset=offset,
            sort_by=sort_by or "created_at",
            sort_order=sort_order or "desc",
        )
        total = await db.count_assistants(graph_id=graph_id, metadata=metadata, name=name, auth=auth)
    return items, total


async def count(
    svc: Services, *, graph_id: str | None, metadata: Json | None, name: str | None, auth: Json | None = None
) -> int:
    async with svc.storage.read() as db:
        return await db.count_assistants(graph_id=graph_id, metadata=metadata, name=name, auth=auth)


async def versions(
    svc: Services, assistant_id: str, *, metadata: Json | None, limit: int, offset: int, auth: Json | None = None
) -> list[AssistantVersion]:
    async with svc.storage.read() as db:
        if await db.get_assistant(assistant_id, auth) is None:
            raise AssistantNotFound(f"Assistant {assistant_id} not found")
        found = await db.assistant_versions(assistant_id, metadata=metadata, limit=limit, offset=offset)
    return found


async def set_latest(svc: Services, assistant_id: str, version: int, auth: Json | None = None) -> Assistant:
    async with svc.storage.transaction() as tx:
        current = await tx.get_assistant(assistant_id, auth)
        if current is None:
            raise AssistantNotFound(f"Assistant {assistant_id} not found")
        stored = await tx.assistant_version(assistant_id, version)
        if stored is None:
            raise AssistantNotFound(f"Version {version} not found for assistant {assistant_id}")
        updated = Assistant(
            assistant_id=assistant_id,
            graph_id=stored.graph_id,
            config=stored.config,
            context=stored.context,
            metadata=stored.metadata,
            name=stored.name,
            description=stored.description,
            version=stored.version,
            created_at=current.created_at,
            updated_at=isoformat(now()),
        )
        await tx.update_assistant(updated, new_version=False)
    return updated


def graph_config(assistant: Assistant) -> RunnableConfig:
    """The RunnableConfig an assistant's graph is built with for schema and drawing calls."""
    return RunnableConfig(
        configurable={**(assistant.config.get("configurable") or {}), "assistant_id": assistant.assistant_id}
    )
