"""The long-term store: namespace and key rules, item shapes, auth filters on search.

The store itself is LangGraph's (`svc.storage.store`), the one graphs reach as `runtime.store`, so an
item a graph writes is visible here and the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from langgraph.store.base import NOT_PROVIDED, BaseStore, InvalidNamespaceError, Item, NotProvided, SearchItem

from graphyard.errors import InvalidNamespace, InvalidRequest
from graphyard.records import Json, isoformat
from graphyard.services.context import Services

EMPTY_NAMESPACE = "Namespace cannot be empty."
# PostgreSQL text and jsonb cannot hold NUL; both backends store U+FFFD in its place instead.
NUL, REPLACEMENT = "\x00", "\ufffd"


def namespace(labels: Any) -> tuple[str, ...]:
    """`labels` as a namespace tuple; InvalidNamespace unless every label is a non-empty string without '.'."""
    if labels is None:
        return ()
    if isinstance(labels, str) or not isinstance(labels, Sequence):
        raise TypeError(f"a store namespace must be a list of strings, got {labels!r}")
    for label in labels:
        if not isinstance(label, str) or not label or "." in label:
            raise InvalidNamespace(f"Namespace label '{label}' must be a non-empty string without periods")
        if NUL in label:
            raise InvalidNamespace(f"Namespace label '{label}' must not contain NUL characters")
    return tuple(labels)


def parse_namespace(dotted: str) -> tuple[str, ...]:
    """The namespace of a query string: labels joined by '.', '' being the empty namespace."""
    return namespace(dotted.split(".")) if dotted else ()


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace(NUL, REPLACEMENT) if NUL in value else value
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _timestamp(moment: datetime) -> str:
    # The SQLite store keeps naive UTC times; PostgreSQL's are aware.
    return isoformat(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def item_json(item: Item) -> Json:
    return {
        "namespace": list(item.namespace),
        "key": item.key,
        "value": item.value,
        "created_at": _timestamp(item.created_at),
        "updated_at": _timestamp(item.updated_at),
    }


def search_item_json(item: SearchItem) -> Json:
    return {**item_json(item), "score": item.score}


def _ttl(store: BaseStore, ttl: float | None) -> float | NotProvided | None:
    """The TTL to put: none at all when the store has no TTL config, as nothing would ever sweep it."""
    if not store.ttl_config:
        return None
    return NOT_PROVIDED if ttl is None else ttl


def _refresh(store: BaseStore, refresh_ttl: bool | None) -> bool | None:
    # Without a TTL config there is nothing to refresh; False spares the store its refresh UPDATE.
    return refresh_ttl if store.ttl_config else False


async def put(
    svc: Services,
    ns: tuple[str, ...],
    key: str,
    value: Json,
    *,
    index: Any = None,
    ttl: float | None = None,
) -> None:
    """Insert or replace the item; the namespace must have at least one label and not start with 'langgraph'."""
    if not ns:
        raise InvalidRequest(EMPTY_NAMESPACE)
    store = svc.storage.store
    try:
        await store.aput(ns, _clean(key), _clean(value), index=index, ttl=_ttl(store, ttl))
    except InvalidNamespaceError as exc:
        raise InvalidRequest(str(exc)) from exc


async def get(svc: Services, ns: tuple[str, ...], key: str, *, refresh_ttl: bool | None = None) -> Json | None:
    """The item, or None when there is none."""
    store = svc.storage.store
    item = await store.aget(ns, _clean(key), refresh_ttl=_refresh(store, refresh_ttl))
    return None if item is None else item_json(item)


async def delete(svc: Services, ns: tuple[str, ...], key: str) -> None:
    """Delete the item; deleting one that does not exist is not an error."""
    await svc.storage.store.adelete(ns, _clean(key))


class _NoMatch(Exception):
    """The caller's filter and the auth filter contradict each other: nothing can match both."""


def _equality(cond: Any) -> Any:
    if isinstance(cond, dict) and len(cond) == 1 and "$eq" in cond:
        return cond["$eq"]
    if isinstance(cond, dict) and any(str(k).startswith("$") for k in cond):
        raise TypeError(
            f"a store search can only apply equality auth filters ({{'k': v}} or {{'$eq': v}}), got {cond!r}"
        )
    return cond


def narrow(flt: Json | None, auth: Json | None) -> Json | None:
    """One filter the LangGraph store can evaluate that means `flt AND auth` (auth: the handler's filter).

    The stores know per-key conditions only, not $and/$or, so the auth filter's equalities are merged
    into the caller's filter key by key. _NoMatch when they contradict (the same key, different values)."""
    if not auth:
        return flt
    out: Json = dict(flt or {})
    for key, cond in auth.items():
        if key == "$and":
            for sub in cond:
                out = narrow(out, sub) or {}
            continue
        if key == "$or":
            raise TypeError("a store search cannot apply an auth filter with $or; return equalities instead")
        want = _equality(cond)
        if key not in out:
            out[key] = want
            continue
        have = out[key]
        if isinstance(have, dict) and any(str(k).startswith("$") for k in have):
            if "$eq" not in have:
                out[key] = {**have, "$eq": want}
            elif have["$eq"] != want:
                raise _NoMatch
        elif have != want:
            raise _NoMatch
    return out


async def search(
    svc: Services,
    prefix: tuple[str, ...],
    *,
    filter: Json | None = None,
    limit: int = 10,
    offset: int = 0,
    query: str | None = None,
    refresh_ttl: bool | None = None,
    auth: Json | None = None,
) -> list[Json]:
    """Items under `prefix` (any depth) whose value matches `filter` and the auth filter, newest-updated
    first (best score first with a `query` on a store with an index)."""
    try:
        combined = narrow(filter, auth)
    except _NoMatch:
        return []
    store = svc.storage.store
    try:
        items = await store.asearch(
            prefix,
            query=query,
            filter=_clean(combined) if combined else None,
            limit=limit,
            offset=offset,
            refresh_ttl=_refresh(store, refresh_ttl),
        )
    except ValueError as exc:
        # The store's own verdict on a filter it cannot evaluate (unknown operator, bad key).
        raise InvalidRequest(str(exc)) from exc
    return [search_item_json(item) for item in items]


async def list_namespaces(
    svc: Services,
    *,
    prefix: tuple[str, ...] = (),
    suffix: tuple[str, ...] = (),
    max_depth: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[list[str]]:
    """Distinct namespaces matching prefix and suffix, cut to `max_depth` labels (then de-duplicated)."""
    found = await svc.storage.store.alist_namespaces(
        prefix=prefix or None, suffix=suffix or None, max_depth=max_depth, limit=limit, offset=offset
    )
    return [list(ns) for ns in found]
