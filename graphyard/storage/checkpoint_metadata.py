"""Checkpoint metadata through a saver's `metadata_codec` (langgraph.json `encryption`), the same for
the SQLite and PostgreSQL savers."""

from __future__ import annotations

from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointMetadata, CheckpointTuple, get_serializable_checkpoint_metadata

from graphyard.storage.ports import CheckpointMetadataCodec


async def encoded(
    codec: CheckpointMetadataCodec, config: RunnableConfig, metadata: CheckpointMetadata
) -> CheckpointMetadata:
    """The metadata as stored. The config's keys are merged here, as the saver would merge them: keys
    already present are not merged again, so none goes in plain."""
    full = get_serializable_checkpoint_metadata(config, metadata)
    return cast(CheckpointMetadata, await codec.encode(cast(dict[str, Any], full)))


async def decoded(codec: CheckpointMetadataCodec | None, found: CheckpointTuple | None) -> CheckpointTuple | None:
    """The checkpoint with its metadata as LangGraph wrote it."""
    if found is None or codec is None:
        return found
    metadata = await codec.decode(cast(dict[str, Any], found.metadata))
    return found._replace(metadata=cast(CheckpointMetadata, metadata))
