"""Storage: open the backend named by a URL (sqlite path or postgres URI)."""

from __future__ import annotations

from pathlib import Path

from graphyard.storage.ports import Session, Storage, StoreOptions

__all__ = ["Session", "Storage", "StoreOptions", "check_store_support", "open_storage"]


async def check_store_support(url: str, store: StoreOptions) -> None:
    """Raise StoreUnsupported (one line naming the key and the fix) when the database at `url` cannot
    hold the configured store: a semantic index needs sqlite-vec on SQLite, pgvector on PostgreSQL."""
    if store.index is None:
        return
    if url.startswith(("postgres://", "postgresql://")):
        from graphyard.storage.postgres.storage import check_vector_extension

        await check_vector_extension(url)
        return
    from graphyard.storage.sqlite.storage import check_extension_loading

    check_extension_loading()


async def open_storage(url: str, *, store: StoreOptions | None = None) -> Storage:
    """Open and migrate the database at `url`: `sqlite:///path` or a plain path, or a postgres URI.
    `store` configures LangGraph's store (semantic index, item TTL and its sweeper)."""
    store = store or StoreOptions()
    if url.startswith(("postgres://", "postgresql://")):
        from graphyard.storage.postgres.storage import PostgresStorage

        return await PostgresStorage.open(url, store=store)
    # Imported here so that choosing one backend never imports another's driver.
    from graphyard.storage.sqlite.storage import SqliteStorage

    path = url.removeprefix("sqlite:///").removeprefix("sqlite://")
    return await SqliteStorage.open(Path(path), store=store)
