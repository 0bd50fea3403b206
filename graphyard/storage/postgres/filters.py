"""Compile langgraph_sdk.Auth filters into a SQL condition on a jsonb `metadata` column.

Every key and value is a bound parameter; only the shape of the filter becomes SQL text. Wherever the
semantics allow it the condition is written as `metadata @> …` so that the GIN index serves it:
for a primitive v, `metadata @> {"k": v}` holds exactly when `metadata->'k' = v` (PostgreSQL lets an
array contain a primitive only at the top level), and `$contains` is array containment one level down.
Semantics match `graphyard.storage.filters.auth_match`, which SQLite evaluates in Python.
"""

from __future__ import annotations

from typing import Any

import orjson

from graphyard.records import Json


def auth_clause(flt: Json | None, params: dict[str, Any]) -> str:
    """A SQL boolean expression for the filter; adds its parameters to `params`. None allows everything."""
    if flt is None:
        return "TRUE"
    return _all_of(flt, params)


def _all_of(flt: Json, params: dict[str, Any]) -> str:
    parts = [_condition(key, cond, params) for key, cond in flt.items()]
    return "(" + " AND ".join(parts) + ")" if parts else "TRUE"


def _condition(key: str, cond: Any, params: dict[str, Any]) -> str:
    if key == "$or":
        alternatives = [_all_of(sub, params) for sub in cond]
        return "(" + " OR ".join(alternatives) + ")" if alternatives else "FALSE"
    if key == "$and":
        parts = [_all_of(sub, params) for sub in cond]
        return "(" + " AND ".join(parts) + ")" if parts else "TRUE"
    if isinstance(cond, dict) and "$contains" in cond:
        want = cond["$contains"]
        # Wrapping in a list also demands that the stored value is an array, as auth_match does.
        wanted = want if isinstance(want, list) else [want]
        return f"metadata @> {_json(params, {key: wanted})}"
    value = cond["$eq"] if isinstance(cond, dict) and "$eq" in cond else cond
    if value is None or isinstance(value, str | int | float | bool):
        return f"metadata @> {_json(params, {key: value})}"
    # Objects and arrays: `@>` would accept a superset, equality is what the filter asks for.
    return f"metadata -> {_text(params, key)} = {_json(params, value)}"


def _json(params: dict[str, Any], value: Any) -> str:
    name = f"auth_{len(params)}"
    params[name] = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    return f"%({name})s::jsonb"


def _text(params: dict[str, Any], value: str) -> str:
    name = f"auth_{len(params)}"
    params[name] = value
    return f"%({name})s::text"
