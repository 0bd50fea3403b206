"""LangGraph's SQLite saver, driven inline from the event loop under the storage's write lock.

SQLite statements on a local WAL file take microseconds; a thread hop per statement (aiosqlite)
costs more than the statement. So the library's own synchronous SqliteSaver does the work, and its
async methods run it directly while holding the lock every writer in this process shares: no thread
hop, and never a writer waiting on SQLite's own lock (which would block the loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.sqlite import SqliteSaver

from graphyard.records import Lease
from graphyard.storage.checkpoint_metadata import decoded, encoded
from graphyard.storage.ports import CheckpointMetadataCodec
from graphyard.storage.sqlite.session import SqliteSession


class InlineSqliteSaver(SqliteSaver):
    """SqliteSaver whose async API runs the sync implementation under an asyncio lock. With a
    `metadata_codec` (encryption), checkpoint metadata is encoded before the lock and decoded after it."""

    metadata_codec: CheckpointMetadataCodec | None = None

    def __init__(self, conn: Any, lock: asyncio.Lock) -> None:
        super().__init__(conn)
        self.async_lock = lock

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        async with self.async_lock:
            found = self.get_tuple(config)
        return found if self.metadata_codec is None else await decoded(self.metadata_codec, found)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        if self.metadata_codec is not None:
            filter = await self.metadata_codec.encode_filter(filter)
        async with self.async_lock:
            found = list(self.list(config, filter=filter, before=before, limit=limit))
        for item in found:
            yield (
                item if self.metadata_codec is None else cast(CheckpointTuple, await decoded(self.metadata_codec, item))
            )

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        if self.metadata_codec is not None:
            metadata = await encoded(self.metadata_codec, config, metadata)
        async with self.async_lock:
            return self.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        async with self.async_lock:
            self.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        async with self.async_lock:
            self.delete_thread(thread_id)

    async def aget_delta_channel_history(self, *, config: RunnableConfig, channels: Sequence[str]) -> Mapping[str, Any]:
        async with self.async_lock:
            return self.get_delta_channel_history(config=config, channels=channels)


class FencedSqliteSaver(InlineSqliteSaver):
    """The saver one attempt of a run writes with: under the storage's write lock, a write lands only if
    the attempt still holds the run's lease (LeaseLost otherwise). The lock makes the check and the
    write one step for this process, and `graphyard dev` holds the file alone (a lock file beside it)."""

    def __init__(self, conn: Any, lock: asyncio.Lock, lease: Lease) -> None:
        super().__init__(conn, lock)
        self._lease = lease

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        if self.metadata_codec is not None:
            metadata = await encoded(self.metadata_codec, config, metadata)
        async with self.async_lock:
            await SqliteSession(self.conn).hold_lease(self._lease)
            return self.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        async with self.async_lock:
            await SqliteSession(self.conn).hold_lease(self._lease)
            self.put_writes(config, writes, task_id, task_path)
