"""Encode graph state and stream payloads as compact JSON bytes with orjson, and decode them back."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections import deque
from typing import Any

import orjson
from langgraph.types import Interrupt, Send
from pydantic import BaseModel

__all__ = ["dumps", "dumps_to_send", "loads", "to_jsonable"]

# Dataclasses pass through to `_default` so Interrupt gets its wire shape instead of every field.
_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS


def dumps(obj: Any) -> bytes:
    """Serialize anything a graph can put in its state or stream; never fails on an unknown type.
    The result owns exactly its length (see `_exact`), so holding it holds no more than it says."""
    try:
        return _exact(orjson.dumps(obj, default=_default, option=_OPTIONS))
    except orjson.JSONEncodeError:
        # orjson refuses ints beyond 64 bits and nesting deeper than 254; the slow path handles both.
        return json.dumps(_plain(obj), separators=(",", ":"), ensure_ascii=False).encode()


def dumps_to_send(obj: Any) -> bytes:
    """`dumps` for bytes sent at once and then dropped (an HTTP response body): without the exact-size
    copy, which only matters for bytes that are kept (a 1 MiB state would be copied once more)."""
    try:
        return orjson.dumps(obj, default=_default, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return dumps(obj)


def _exact(encoded: bytes) -> bytes:
    # orjson >= 3.12 returns its whole output buffer: at least 4 KiB, doubled until the document fits,
    # and a bytes object never gives back capacity. Broker histories hold thousands of events, so an
    # 800-byte token event pinned 8 KiB (10x) until it expired, and the freed 8 KiB blocks then sat
    # between live ones in the heap, so RSS never came back. A copy costs ~1 us per small event.
    return bytes(memoryview(encoded))


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON produced by ``dumps`` (or any JSON) into plain Python data."""
    return orjson.loads(data)


def to_jsonable(obj: Any) -> Any:
    """Reduce ``obj`` to dicts, lists, strings, numbers, booleans and None, exactly as ``dumps`` would."""
    return loads(dumps(obj))


def _default(obj: Any) -> Any:
    """Turn one value orjson cannot encode natively into something it can (called recursively)."""
    if isinstance(obj, BaseModel):
        # LangChain messages land here: model_dump gives {content, additional_kwargs, type, id, ...}.
        return obj.model_dump()
    if isinstance(obj, Interrupt):
        encoded: dict[str, Any] = {"value": obj.value, "id": obj.id}
        # Newer LangGraph adds an optional response schema; keep the wire shape unless it is used.
        if getattr(obj, "response_schema", None) is not None:
            encoded["response_schema"] = obj.response_schema
        return encoded
    if isinstance(obj, Send):
        return {"node": obj.node, "arg": obj.arg}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        # Shallow on purpose: orjson recurses into the values and calls us again where needed.
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, (set, frozenset, deque)):
        return list(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(obj)).decode("ascii")
    for method in ("to_json", "model_dump", "dict"):
        fn = getattr(obj, method, None)
        if callable(fn):
            try:
                return fn()
            except TypeError:
                continue  # a method by that name that wants arguments is not what we hoped for
    return str(obj)


def _plain(obj: Any) -> Any:
    """Convert to plain data in pure Python, for values orjson itself refuses."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, dict):
        return {_key(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    try:
        # Types orjson knows natively (UUID, datetime, Enum, ...) are still fine one at a time.
        return orjson.loads(orjson.dumps(obj, option=_OPTIONS))
    except orjson.JSONEncodeError:
        return _plain(_default(obj))


def _key(key: Any) -> str:
    """Spell a dict key the way OPT_NON_STR_KEYS would."""
    plain = _plain(key)
    if isinstance(plain, str):
        return plain
    if plain is None or isinstance(plain, bool):
        return json.dumps(plain)
    return str(plain)
