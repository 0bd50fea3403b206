"""LangGraph's PostgreSQL saver as graphyard uses it: driver errors translated, and a fenced variant
whose checkpoint writes land only while a run's attempt still holds its lease."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from graphyard.records import Lease
from graphyard.storage.checkpoint_metadata import decoded, encoded
from graphyard.storage.ports import CheckpointMetadataCodec
from graphyard.storage.postgres.session import Q, translated


@dataclass(frozen=True, slots=True)
class _Write:
    durable: bool


_DURABLE, _RELAXED = _Write(durable=True), _Write(durable=False)
# Set while a fenced saver is inside one of its write methods: _cursor then opens a fenced transaction,
# waiting for the WAL flush at commit or not (see _durable). A context variable, because LangGraph may
# write from several tasks of one run at once.
_WRITING: ContextVar[_Write | None] = ContextVar("graphyard_fenced_write", default=None)
# Where LangGraph puts the run's durability mode in the config it hands the saver.
_DURABILITY_KEY = "__pregel_durability"


def _durable(config: RunnableConfig) -> _Write:
    """Whether a checkpoint write must reach the disk before its commit returns. Under the `async` and
    `exit` durability modes (LangGraph's default is `async`) a run accepts losing its latest checkpoint
    in a crash and resuming from an earlier one, so these writes skip the WAL flush (synchronous_commit
    off, about 4 ms per commit on an ordinary disk). They still become durable, in order, with the next
    flushed commit (PostgreSQL writes its log in order): at the latest the run's finish, which is flushed,
    so a run reported finished never has a checkpoint less. Only a crash of PostgreSQL itself in the
    ~0.6 s before that can lose them, and the run then resumes from an earlier checkpoint, as after a
    worker crash. `sync` keeps every write flushed."""
    mode = (config.get("configurable") or {}).get(_DURABILITY_KEY)
    return _DURABLE if mode == "sync" else _RELAXED


@dataclass(frozen=True, slots=True)
class _Boxed:
    """A plain string/number/boolean channel value sent to the blobs table instead of the checkpoint row."""

    value: Any


class TranslatingPostgresSaver(AsyncPostgresSaver):
    """AsyncPostgresSaver whose psycopg errors surface as storage errors (Unavailable), like our own queries,
    so the engine can tell a database outage from an exception raised by a graph.

    With an encrypting serializer (langgraph.json `encryption`), channel values that are plain strings,
    numbers or booleans go to the blobs table too, where they are encrypted: LangGraph keeps them inline
    in the checkpoint's jsonb otherwise, in plaintext. With a `metadata_codec`, checkpoint metadata is
    encoded on the way in and decoded on the way out."""

    metadata_codec: CheckpointMetadataCodec | None = None

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        if isinstance(self.serde, EncryptedSerializer):
            checkpoint, new_versions = _primitives_as_blobs(checkpoint, new_versions)
        if self.metadata_codec is not None:
            metadata = await encoded(self.metadata_codec, config, metadata)
        return await super().aput(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        # The library serializes a task's writes in a worker thread (asyncio.to_thread). They are usually
        # small, and the hop costs more than the work (~0.15 ms of CPU and a thread wake-up per call on the
        # 2-core bench box, twice per step), so they are serialized here, as the SQLite saver does.
        configurable = config["configurable"]
        params = self._dump_writes(
            configurable["thread_id"],
            configurable["checkpoint_ns"],
            configurable["checkpoint_id"],
            task_id,
            task_path,
            writes,
        )
        special = all(channel in WRITES_IDX_MAP for channel, _ in writes)
        query = self.UPSERT_CHECKPOINT_WRITES_SQL if special else self.INSERT_CHECKPOINT_WRITES_SQL
        async with self._cursor(pipeline=True) as cur:
            await cur.executemany(query, params)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        found = await super().aget_tuple(config)
        return found if self.metadata_codec is None else await decoded(self.metadata_codec, found)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        if self.metadata_codec is None:
            async for found in super().alist(config, filter=filter, before=before, limit=limit):
                yield found
            return
        filter = await self.metadata_codec.encode_filter(filter)
        async for found in super().alist(config, filter=filter, before=before, limit=limit):
            yield cast(CheckpointTuple, await decoded(self.metadata_codec, found))

    def _dump_blobs(
        self, thread_id: str, checkpoint_ns: str, values: dict[str, Any], versions: ChannelVersions
    ) -> list[tuple[str, str, str, str, str, bytes | None]]:
        unboxed = {k: v.value if isinstance(v, _Boxed) else v for k, v in values.items()}
        return super()._dump_blobs(thread_id, checkpoint_ns, unboxed, versions)

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        with translated():
            async with super()._cursor(pipeline=pipeline) as cur:
                yield cur


def _primitives_as_blobs(checkpoint: Checkpoint, new_versions: ChannelVersions) -> tuple[Checkpoint, ChannelVersions]:
    """Box the primitive channel values so that LangGraph stores them as blobs. An unchanged one is
    written again at its current version (a no-op when its blob row exists): it may have been inline
    in a checkpoint written before encryption was enabled, and would otherwise be lost."""
    boxed = {k: _Boxed(v) for k, v in checkpoint["channel_values"].items() if isinstance(v, str | int | float | bool)}
    if not boxed:
        return checkpoint, new_versions
    versions = checkpoint["channel_versions"]
    extra = {k: versions[k] for k in boxed if k not in new_versions and k in versions}
    return (
        cast(Checkpoint, {**checkpoint, "channel_values": {**checkpoint["channel_values"], **boxed}}),
        {**new_versions, **extra},
    )


class FencedPostgresSaver(TranslatingPostgresSaver):
    """The saver one attempt of a run writes its thread's checkpoints with. Each write runs in one
    transaction that first share-locks the run's row if the attempt's lease is current (LeaseLost
    otherwise): a sweeper or another worker taking the run over waits for that commit, and every
    write after the takeover is refused. So no checkpoint of a stale attempt lands after a newer one.
    Each such transaction is one round trip."""

    def __init__(
        self,
        pool: AsyncConnectionPool[AsyncConnection[DictRow]],
        lease: Lease,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(pool, serde=serde)
        self._pool = pool
        self._lease_params = {"run_id": lease.run_id, "owner": lease.owner, "attempt": lease.attempt}

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        token = _WRITING.set(_durable(config))
        try:
            return await super().aput(config, checkpoint, metadata, new_versions)
        finally:
            _WRITING.reset(token)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        token = _WRITING.set(_durable(config))
        try:
            await super().aput_writes(config, writes, task_id, task_path)
        finally:
            _WRITING.reset(token)

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        write = _WRITING.get()
        if write is None:
            async with super()._cursor(pipeline=pipeline) as cur:
                yield cur
            return
        # The lease check and the writes commit together or not at all, in one round trip: on an autocommit
        # connection in pipeline mode, everything sent before the Sync (the pipeline's exit) is one implicit
        # transaction. The check raises when the lease is gone (migrations/0007), so PostgreSQL skips the
        # writes and rolls back, and the error comes back as LeaseLost.
        params = {**self._lease_params, "flush": write.durable}
        with translated():
            async with self.lock, self._pool.connection() as conn, conn.pipeline():
                await conn.execute(Q["hold_lease_or_raise"], params)
                async with conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
