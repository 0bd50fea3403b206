"""Pure metadata matching, for backends that evaluate filters in process (SQLite registers these)."""

from __future__ import annotations

from typing import Any


def _same(doc: Any, want: Any) -> bool:
    # JSON has no bool/int identity: true must not match 1, as PostgreSQL jsonb keeps them apart.
    if isinstance(doc, bool) or isinstance(want, bool):
        return isinstance(doc, bool) and isinstance(want, bool) and doc is want
    return bool(doc == want)


def contains(doc: Any, want: Any) -> bool:
    """PostgreSQL `@>` semantics: objects match key by key, a list matches a list holding all its items,
    and (only at the top level, as in PostgreSQL) an array contains a bare primitive it holds."""
    if isinstance(doc, list) and not isinstance(want, list | dict):
        return any(_same(item, want) for item in doc)
    return _contains(doc, want)


def _contains(doc: Any, want: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(doc, dict) and all(k in doc and _contains(doc[k], v) for k, v in want.items())
    if isinstance(want, list):
        if not isinstance(doc, list):
            return False
        return all(any(_contains(item, w) for item in doc) for w in want)
    return _same(doc, want)


def auth_match(metadata: Any, flt: dict[str, Any]) -> bool:
    """The langgraph_sdk.Auth filter language, applied to a resource's metadata."""
    if not isinstance(metadata, dict):
        metadata = {}
    for key, cond in flt.items():
        if key == "$or":
            if not any(auth_match(metadata, sub) for sub in cond):
                return False
        elif key == "$and":
            if not all(auth_match(metadata, sub) for sub in cond):
                return False
        elif isinstance(cond, dict) and "$contains" in cond:
            have = metadata.get(key)
            want = cond["$contains"]
            wanted = want if isinstance(want, list) else [want]
            if not isinstance(have, list) or not all(any(_same(h, w) for h in have) for w in wanted):
                return False
        elif isinstance(cond, dict) and "$eq" in cond:
            if key not in metadata or not _same(metadata[key], cond["$eq"]):
                return False
        elif key not in metadata or not _same(metadata[key], cond):
            return False
    return True
